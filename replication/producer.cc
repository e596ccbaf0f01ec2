#include "shmlog/producer.h"

#include <unistd.h>

#include <charconv>
#include <limits>

#include "shmlog/error.h"
#include "shmlog/reader.h"
#include "shmlog/snapshot_service.h"

namespace shmlog {
namespace {

namespace fs = std::filesystem;

// "<log>-<offset>-<generation>.snap" -> generation (list_snapshots gives only such names).
std::uint64_t generation_of(const fs::path& snapshot) {
  const std::string stem = snapshot.stem().string();
  const std::string digits = stem.substr(stem.rfind('-') + 1);
  std::uint64_t g = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), g);
  return g;
}

// " (history R)" or " (history R, replid2 R2 up to offset S)"
std::string history_text(const history_state& h) {
  std::string s = " (history " + h.replid.str();
  if (!h.replid2.is_none())
    s += ", replid2 " + h.replid2.str() + " up to offset " + std::to_string(h.second_repl_offset);
  return s + ")";
}

// The newest snapshot that verifies and loads, into `state`. This log's own snapshots (those
// whose generation the log has announced) come first, newest first; then any others: files the
// log never announced, left by an earlier log of the same name (say, before a reboot cleared
// /dev/shm) or by a fork-mode save that finished after its producer died. Only regular files are
// candidates (list_snapshots): a link named like a snapshot is never followed.
std::optional<snapshot_meta> load_newest(const fs::path& dir, std::string_view name,
                                         std::uint64_t announced, state_machine& state,
                                         std::vector<std::string>& skipped) {
  std::vector<fs::path> order;
  const std::vector<fs::path> all = list_snapshots(dir, name);
  for (const fs::path& p : all)
    if (generation_of(p) <= announced) order.push_back(p);
  for (const fs::path& p : all)
    if (generation_of(p) > announced) order.push_back(p);
  for (const fs::path& p : order) {
    try {
      // Verified whole before load() sees a byte (a state_machine's load() must replace the
      // state only once it has read all of it, so a failure leaves the state as it was).
      snapshot_meta loaded = load_snapshot(p, state);
      loaded.generation = generation_of(p);
      return loaded;
    } catch (const std::exception& e) {
      skipped.push_back(p.string() + ": " + e.what());
    }
  }
  return std::nullopt;
}

// Applies the backlog from the reader's position up to the master offset. No writer is live
// (checked before), so nothing moves under us; anything but records means one started.
void replay(reader& r, state_machine& state, recovery_report& report) {
  const std::uint64_t from = r.offset();
  std::vector<std::byte> buffer;
  for (;;) {
    const poll_result p = r.poll_copy(buffer);
    if (p.status == poll_status::empty) break;
    if (p.status != poll_status::record)
      throw error(errc::writer_exists,
                  "log '" + r.name() + "' changed while its backlog was replayed (offset " +
                      std::to_string(r.offset()) + "): is another writer running?");
    try {
      state.apply(p.record);
    } catch (const std::exception& e) {
      throw error(errc::apply_failed, "log '" + r.name() + "': the record at offset " +
                                          std::to_string(p.record.offset) +
                                          " cannot be applied to the producer's state (" +
                                          e.what() + "): was the log written by another kind " +
                                          "of producer?");
    }
    ++report.replayed_records;
  }
  report.replayed_bytes = r.offset() - from;
}

// The state's (history, offset) against the backlog: replay if it is held. Returns the
// writer_options the state then reflects.
writer_options plan_replay(std::string_view name, state_machine& state, recovery_report& report) {
  const std::optional<snapshot_meta>& snap = report.snapshot;
  try {
    reader r = reader::attach(name, {.start = start_position::latest(), .label = "recovery"});
    const history_state h = r.history();
    const std::optional<history_id> want_replid = snap ? snap->replid : h.replid;
    const std::uint64_t want_offset = snap ? snap->offset : 0;
    // decide_resync + seek, not reader::resync: the producer's own recovery is no replica's
    // PSYNC and must not count in sync_partial_ok / sync_partial_err.
    resync_decision d = decide_resync(h, r.window(), want_replid, want_offset);
    if (d.is_partial()) {
      try {
        r.seek(want_offset);
      } catch (const error& e) {
        if (e.code() != errc::not_a_record_boundary && e.code() != errc::offset_out_of_range) throw;
        d.kind = resync_kind::full;
        d.reason = e.code() == errc::not_a_record_boundary ? resync_reason::not_a_record_boundary
                                                           : resync_reason::offset_before_backlog;
      }
    }
    report.backlog = d;
    if (!d.is_partial()) return {want_replid, want_offset};
    replay(r, state, report);
    return {r.replid(), r.offset()};
  } catch (const error& e) {
    // A writer died changing the log's history: nobody knows which history the backlog holds,
    // so nothing of it can be replayed. writer::open repairs the block with a history that
    // shares nothing, and every replica reloads. (Thrown before any record was replayed.)
    if (e.code() != errc::interrupted_update) throw;
    report.history_lost = e.what();
    return {};
  }
}

// Snapshot files the log never announced would sort above the ones it announces from now on
// (generations restart with a log), so pruning would remove the new ones and a later restart
// would recover from the old. Once the state is saved as this log's next snapshot, they go.
void retire_unannounced(writer& w, const state_machine& state, const fs::path& dir,
                        std::uint64_t announced, recovery_report& report) {
  std::vector<fs::path> unannounced;
  for (const fs::path& p : list_snapshots(dir, w.name()))
    if (generation_of(p) > announced) unannounced.push_back(p);
  if (unannounced.empty()) return;
  {
    // keep: everything, so that this save cannot prune itself in favour of the old files.
    snapshot_service once(w, state, {.dir = dir, .keep = std::numeric_limits<std::size_t>::max()});
    report.saved = once.snapshot_now();
  }
  for (const fs::path& p : unannounced)  // unlink: a name only, never a link's target or a dir
    if (p != report.saved->path && ::unlink(p.c_str()) == 0) report.retired_snapshots.push_back(p);
}

}  // namespace

recovered_producer open_producer(std::string_view name, state_machine& state,
                                 const producer_options& options) {
  if (options.snapshot_dir.empty())
    throw error(errc::invalid_argument,
                "log '" + std::string(name) + "': no snapshot directory given");
  const fs::path dir = fs::absolute(options.snapshot_dir).lexically_normal();
  check_snapshot_dir(dir, true);
  recovery_report report;
  std::uint64_t announced = 0;
  const bool existing = exists(name);
  if (!existing && !options.create)
    throw error(errc::not_found, "log '" + std::string(name) + "' does not exist");
  if (existing) {
    const log_info info = inspect(name);
    // Fail before loading anything: writer::open would refuse it anyway.
    if (info.writer_alive)
      throw error(errc::writer_exists, "log '" + std::string(name) +
                                           "' already has a live writer (pid " +
                                           std::to_string(info.writer_pid) + ")");
    announced = info.snapshot.generation;
    // The log's snapshots live elsewhere: recovering from this directory would take the
    // producer's state back to whatever (if anything) is here, and every replica with it.
    if (announced != 0 && info.snapshot.path.parent_path() != dir)
      throw error(errc::invalid_argument, "log '" + std::string(name) +
                                              "' publishes its snapshots in '" +
                                              info.snapshot.path.parent_path().string() +
                                              "', not in the snapshot directory given ('" +
                                              dir.string() + "'): recover from that directory");
  } else {
    validate_create_options(*options.create);
  }

  report.snapshot = load_newest(dir, name, announced, state, report.skipped_snapshots);
  writer_options wo;
  std::optional<writer> w;
  if (!existing) {
    // A new log: its history is fresh, so a state from a snapshot of an earlier log is not a
    // prefix of it, and the writer starts the history around the state.
    if (report.snapshot) wo = {report.snapshot->replid, report.snapshot->offset};
    w.emplace(writer::create(name, *options.create, wo));
    report.created = true;
  } else {
    wo = plan_replay(name, state, report);
    w.emplace(writer::open(name, wo));
  }
  retire_unannounced(*w, state, dir, announced, report);
  return {std::move(*w), std::move(report)};
}

std::string recovery_report::describe(const writer& log) const {
  std::string s;
  if (created) {
    const log_info info = inspect(log.name());
    s = "created log with capacity " + std::to_string(info.capacity) + " and " +
        std::to_string(info.reader_slot_count) + " reader slots; ";
  }
  const std::string from_snapshot = snapshot ? "snapshot " + snapshot->path.string() + " (offset " +
                                                   std::to_string(snapshot->offset) + ")"
                                             : "";
  for (const std::string& skip : skipped_snapshots)
    s += "cannot use snapshot " + skip + "; ";
  if (created) {
    s += snapshot ? "recovered " + from_snapshot + " left by an earlier log of that name"
                  : "empty state at offset 0";
  } else if (!history_lost.empty()) {
    s += history_lost + "; the backlog cannot be replayed, starting from " +
         (snapshot ? from_snapshot : std::string("an empty state"));
  } else if (backlog && backlog->is_partial()) {
    s += (snapshot ? "recovered " + from_snapshot + " and "
                   : "no snapshot of '" + log.name() + "'; replayed ") +
         std::to_string(replayed_records) + " records (" + std::to_string(replayed_bytes) +
         " bytes) of the backlog" + (snapshot ? "" : " from offset 0");
  } else if (backlog) {
    s += snapshot
             ? "recovered " + from_snapshot + "; the backlog cannot continue it (" +
                   backlog->describe() + "), so records after offset " +
                   std::to_string(snapshot->offset) + " are lost"
             : "no snapshot of '" + log.name() +
                   "' and the backlog cannot be replayed from offset 0 (" + backlog->describe() +
                   "): starting from an empty state, the log's records are lost";
  }
  const takeover_info& t = log.takeover();
  s += "; " + t.plan.describe() + history_text(log.history());
  if (t.previous_crashed)
    s += " (the previous writer, pid " + std::to_string(t.previous_pid) + ", had crashed; " +
         std::to_string(t.unpublished_bytes) + " unpublished bytes dropped)";
  if (saved)
    s += "; saved the recovered state as " + saved->path.string() + " and removed " +
         std::to_string(retired_snapshots.size()) +
         " snapshot files this log never announced (from an earlier log of that name, or saved "
         "after their producer died)";
  return s;
}

}  // namespace shmlog
