// shmlog produce: a key-value producer driven from stdin, with snapshots and restart recovery.
//
// The invariant it keeps: once the writer is open, the log's content (what a replica reading
// from offset 0 of the current history, or loading a snapshot of it, ends up with) equals the
// producer's state. Every command is applied to the state first (kv_state::execute validates
// it there) and appended only if it applied, so the two never part.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cli.h"
#include "kv_state.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {

namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

// While stdin is quiet, snapshot requests are still looked for this often.
constexpr auto idle_look = std::chrono::milliseconds(10);

void note(const std::string& line) {
  std::fprintf(stderr, "shmlog produce: %s\n", one_line(line).c_str());
  std::fflush(stderr);
}

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

struct loaded_snapshot {
  snapshot_meta info;
  std::uint64_t generation = 0;
};

// The newest snapshot that verifies and loads, into `state`. This log's own snapshots (those
// whose generation the log has announced) come first, newest first; then any others: files the
// log never announced, left by an earlier log of the same name (say, before a reboot cleared
// /dev/shm) or by a fork-mode save that finished after its producer died. Only regular files
// are candidates (list_snapshots): a link named like a snapshot is never followed.
std::optional<loaded_snapshot> load_newest(const fs::path& dir, const std::string& name,
                                           std::uint64_t announced, kv::kv_state& state) {
  std::vector<fs::path> order;
  const std::vector<fs::path> all = list_snapshots(dir, name);
  for (const fs::path& p : all)
    if (generation_of(p) <= announced) order.push_back(p);
  for (const fs::path& p : all)
    if (generation_of(p) > announced) order.push_back(p);
  for (const fs::path& p : order) {
    try {
      // Verified whole before load() sees a byte; kv_state::load replaces the state only
      // once it has read all of it, so a failure here leaves `state` as it was.
      loaded_snapshot l{load_snapshot(p, state), generation_of(p)};
      return l;
    } catch (const std::exception& e) {
      note("cannot use snapshot " + p.string() + ": " + e.what() + "; trying an older one");
    }
  }
  return std::nullopt;
}

// Applies the backlog from the reader's position up to the master offset. No writer is live
// (checked before), so nothing moves under us; anything else than records means one started.
struct replay_result {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
};
replay_result replay(reader& r, kv::kv_state& state) {
  replay_result out;
  const std::uint64_t from = r.offset();
  std::vector<std::byte> buffer;
  for (;;) {
    const poll_result p = r.poll_copy(buffer);
    if (p.status == poll_status::empty) break;
    if (p.status != poll_status::record)
      throw command_failure(
          exit_failure, "log '" + r.name() + "' changed while produce read its backlog (offset " +
                            std::to_string(r.offset()) + "): is another writer running?");
    try {
      state.apply(p.record);
    } catch (const kv::invalid_command& e) {
      throw command_failure(exit_failure,
                            "log '" + r.name() + "': the record at offset " +
                                std::to_string(p.record.offset) +
                                " is not a key-value command the state can apply (" + e.what() +
                                "): only logs written by shmlog produce can be recovered");
    }
    ++out.records;
  }
  out.bytes = r.offset() - from;
  return out;
}

struct opened {
  writer w;
  std::string summary;  // what was recovered, and which history the writer continues
};

std::string create_summary(const create_options& c) {
  return "created log with capacity " + std::to_string(c.capacity) + " and " +
         std::to_string(c.reader_slots) + " reader slots; ";
}

// Recovery (docs/cli.md, "shmlog produce", "Restart recovery"): the newest usable snapshot, or
// an empty state at offset 0 of the log's history if there is none, then the PSYNC decision
// for that (history, offset) against the backlog. Partial: replay up to the master offset, and
// the writer keeps the history. Full: the state is what the snapshot holds, and the writer
// branches or restarts the history from it (the library's plan), so that replicas reload.
opened open_with_recovery(const std::string& name, const fs::path& dir,
                          const std::optional<create_options>& create_with, std::uint64_t announced,
                          kv::kv_state& state) {
  const std::optional<loaded_snapshot> snap = load_newest(dir, name, announced, state);
  // "snapshot PATH (offset X, K keys)"
  const std::string from_snapshot = snap ? "snapshot " + snap->info.path.string() + " (offset " +
                                               std::to_string(snap->info.offset) + ", " +
                                               std::to_string(state.size()) + " keys)"
                                         : "";

  if (create_with) {
    // A new log: its history is fresh, so a state from a snapshot of an earlier log is not a
    // prefix of it and the library restarts the history around the state.
    writer_options wo;
    if (snap) wo = {snap->info.replid, snap->info.offset};
    writer w = writer::create(name, *create_with, wo);
    std::string s = create_summary(*create_with);
    s += snap ? "recovered " + from_snapshot + " left by an earlier log of that name; " +
                    w.takeover().plan.describe()
              : "empty state at offset 0";
    s += history_text(w.history());
    return {std::move(w), s};
  }

  std::optional<history_id> want_replid;
  std::uint64_t want_offset = 0;
  writer_options wo;
  std::string s;
  try {
    reader r = reader::attach(name, {.start = start_position::latest(), .label = "shmlog-produce"});
    const history_state h = r.history();
    const backlog_window win = r.window();
    want_replid = snap ? snap->info.replid : h.replid;
    want_offset = snap ? snap->info.offset : 0;
    // decide_resync, not reader::resync: the producer's own recovery is no replica's PSYNC
    // and must not count in sync_partial_ok / sync_partial_err.
    resync_decision d = decide_resync(h, win, want_replid, want_offset);
    if (d.is_partial()) {
      try {
        r.seek(want_offset);
      } catch (const error& e) {
        if (e.code() != errc::not_a_record_boundary && e.code() != errc::offset_out_of_range) throw;
        d.kind = resync_kind::full;
        d.reason = resync_reason::not_a_record_boundary;
      }
    }
    if (d.is_partial()) {
      const replay_result rr = replay(r, state);
      wo = {r.replid(), r.offset()};
      s = (snap ? "recovered " + from_snapshot + " and "
                : "no snapshot of '" + name + "' in " + dir.string() + "; replayed ") +
          std::to_string(rr.records) + " records (" + std::to_string(rr.bytes) +
          " bytes) of the backlog" + (snap ? "" : " from offset 0") + ": " +
          std::to_string(state.size()) + " keys";
    } else {
      wo = {want_replid, want_offset};
      s = (snap ? "recovered " + from_snapshot + "; the backlog cannot continue it (" +
                      d.describe() + "), so records after offset " + std::to_string(want_offset) +
                      " are lost"
                : "no snapshot of '" + name + "' in " + dir.string() +
                      " and the backlog cannot be replayed from offset 0 (" + d.describe() +
                      "): starting from an empty state, the log's records are lost");
    }
  } catch (const error& e) {
    // A writer died changing the log's history: nobody knows which history the backlog holds,
    // so nothing of it can be replayed. writer::open repairs the block with a history that
    // shares nothing, and every replica reloads.
    // (Thrown before any record was replayed: `state` is still the snapshot's, or empty.)
    if (e.code() != errc::interrupted_update) throw;
    wo = {};
    s = std::string(e.what()) + "; the backlog cannot be replayed, starting from " +
        (snap ? from_snapshot : std::string("an empty state"));
  }
  writer w = writer::open(name, wo);
  const takeover_info& t = w.takeover();
  s += "; " + t.plan.describe() + history_text(w.history());
  if (t.previous_crashed)
    s += " (the previous writer, pid " + std::to_string(t.previous_pid) + ", had crashed; " +
         std::to_string(t.unpublished_bytes) + " unpublished bytes dropped)";
  return {std::move(w), s};
}

// Snapshot files the log never announced would sort above the ones it will publish from now on
// (generations restart with a log), so pruning would remove the new ones and a later restart
// would recover from the old. Once the state is saved as this log's next snapshot, they go.
void retire_unannounced(writer& w, kv::kv_state& state, const fs::path& dir,
                        std::uint64_t announced) {
  std::vector<fs::path> unannounced;
  for (const fs::path& p : list_snapshots(dir, w.name()))
    if (generation_of(p) > announced) unannounced.push_back(p);
  if (unannounced.empty()) return;
  snapshot_meta saved;
  {
    // keep: everything, so that this save cannot prune itself in favour of the old files.
    snapshot_service once(w, state, {.dir = dir, .keep = std::numeric_limits<std::size_t>::max()});
    saved = once.snapshot_now();
  }
  std::size_t removed = 0;
  for (const fs::path& p : unannounced)  // unlink: a name only, never a link's target or a dir
    if (p != saved.path && ::unlink(p.c_str()) == 0) ++removed;
  note("saved the recovered state as " + saved.path.string() + " and removed " +
       std::to_string(removed) + " snapshot files of '" + w.name() +
       "' this log never announced (generation above " + std::to_string(announced) +
       ": from an earlier log of that name, or saved after their producer died)");
}

// One WAIT or SNAPSHOT command, or a KV command.
class producer {
 public:
  producer(writer& w, kv::kv_state& state, snapshot_service& snapshots, std::uint64_t check_every)
      : w_(w), state_(state), snapshots_(snapshots), check_every_(check_every) {}

  void line(std::string_view text) {
    ++line_;
    while (!text.empty() && text.back() == '\r')
      text.remove_suffix(1);
    if (text.empty()) return;  // a blank line is no command
    if (text == "WAIT" || text.starts_with("WAIT ")) return wait_command(text);
    if (text == "SNAPSHOT" || text.starts_with("SNAPSHOT ")) return snapshot_command(text);
    if (text.size() > w_.max_payload())
      return invalid("command of " + std::to_string(text.size()) +
                     " bytes is longer than the log's max_payload of " +
                     std::to_string(w_.max_payload()) + " bytes");
    std::string record;
    try {
      record = state_.execute(text);
    } catch (const kv::invalid_command& e) {
      return invalid(e.what());
    }
    w_.append(record);  // cannot fail: the record is the line, within max_payload
    if (++since_look_ >= check_every_) look();
  }

  // A line longer than run_input keeps (dropped as it came in), of `bytes` bytes.
  void overlong_line(std::uint64_t bytes) {
    ++line_;
    invalid("command of " + std::to_string(bytes) +
            " bytes is longer than the log's max_payload of " + std::to_string(w_.max_payload()) +
            " bytes");
  }

  // Serves snapshot requests: every check_every commands, and whenever idle_look passed.
  void look() {
    snapshots_.poll();
    since_look_ = 0;
    last_look_ = steady::now();
  }
  void look_if_due() {
    if (steady::now() - last_look_ >= idle_look) look();
  }

 private:
  void invalid(const std::string& why) { note("line " + std::to_string(line_) + ": " + why); }

  // WAIT n timeout_ms: Redis WAIT. Snapshot requests are still served while waiting, in steps,
  // so that a replica that needs one before it can catch up is not kept waiting by the WAIT.
  void wait_command(std::string_view text) {
    const auto parse = [](std::string_view s, std::uint64_t max) -> std::optional<std::uint64_t> {
      std::uint64_t v = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > max)
        return std::nullopt;
      return v;
    };
    const std::string_view args = text.size() > 5 ? text.substr(5) : "";
    const std::size_t sp = args.find(' ');
    const auto n = sp == std::string_view::npos ? std::nullopt : parse(args.substr(0, sp), 1 << 20);
    const auto ms =
        sp == std::string_view::npos ? std::nullopt : parse(args.substr(sp + 1), 86'400'000);
    if (!n || !ms)
      return invalid(
          "WAIT needs two whole numbers: readers (at most 1048576) and a timeout in "
          "milliseconds (at most 86400000), e.g. WAIT 2 500");
    const std::uint64_t offset = w_.master_offset();
    const auto deadline = steady::now() + std::chrono::milliseconds(*ms);
    std::size_t reached = 0;
    for (;;) {
      const auto left = deadline - steady::now();
      reached = w_.wait_for_readers(
          *n, offset,
          std::max<steady::duration>(steady::duration::zero(),
                                     std::min<steady::duration>(left, idle_look)));
      if (reached >= *n || steady::now() >= deadline || stop_requested()) break;
      look();
    }
    std::printf("WAIT %llu %llu -> %zu reader%s at offset %llu\n",
                static_cast<unsigned long long>(*n), static_cast<unsigned long long>(*ms), reached,
                reached == 1 ? "" : "s", static_cast<unsigned long long>(offset));
    std::fflush(stdout);
  }

  void snapshot_command(std::string_view text) {
    if (text != "SNAPSHOT") return invalid("SNAPSHOT takes no arguments");
    try {
      const snapshot_meta info = snapshots_.snapshot_now();
      std::printf("SNAPSHOT -> offset %llu: %s (%llu bytes)\n",
                  static_cast<unsigned long long>(info.offset), info.path.c_str(),
                  static_cast<unsigned long long>(snapshot_header_size + info.payload_bytes));
      std::fflush(stdout);
    } catch (const error& e) {
      invalid(std::string("SNAPSHOT failed: ") + e.what());
    }
  }

  writer& w_;
  kv::kv_state& state_;
  snapshot_service& snapshots_;
  std::uint64_t check_every_;
  std::uint64_t since_look_ = 0;
  steady::time_point last_look_ = steady::now();
  std::uint64_t line_ = 0;
};

// Reads stdin with poll(2), so that the producer can serve snapshot requests while no input
// comes, and hands complete lines to the producer. Returns at end of input or on a stop signal.
void run_input(producer& p, std::uint64_t max_line) {
  std::string pending;
  // Inside a line longer than max_line: it is refused whatever it says, so it is dropped as it
  // comes rather than kept in memory; `discarded` counts its bytes so far.
  bool discarding = false;
  std::uint64_t discarded = 0;
  std::vector<char> chunk(1 << 16);
  for (;;) {
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (discarding) {
        p.overlong_line(discarded + (nl - start));
        discarding = false;
        continue;
      }
      p.line(std::string_view(pending).substr(start, nl - start));
      if (stop_requested()) return;
    }
    pending.erase(0, start);
    if (discarding || pending.size() > max_line) {
      discarded = (discarding ? discarded : 0) + pending.size();
      discarding = true;
      pending.clear();
    }
    if (stop_requested()) return;
    pollfd in{STDIN_FILENO, POLLIN, 0};
    const int ready = ::poll(&in, 1, static_cast<int>(idle_look.count()));
    if (ready < 0 && errno != EINTR)
      throw command_failure(exit_failure,
                            std::string("polling stdin failed: ") + std::strerror(errno));
    p.look_if_due();
    if (ready <= 0) continue;
    const ssize_t n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw command_failure(exit_failure,
                            std::string("reading stdin failed: ") + std::strerror(errno));
    }
    if (n == 0) {  // end of input: a last line without a newline is a line too
      if (discarding)
        p.overlong_line(discarded);
      else if (!pending.empty())
        p.line(pending);
      return;
    }
    pending.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

snapshot_mode parse_snapshot_mode(std::string_view text) {
  if (text == "inline") return snapshot_mode::inline_save;
  if (text == "fork") return snapshot_mode::fork;
  throw usage_error("bad --snapshot-mode '" + one_line(text) + "': expected inline or fork");
}

}  // namespace

int run_produce(std::span<const std::string> argv) {
  static constexpr const char* usage =
      "shmlog produce NAME --snapshot-dir DIR [--capacity SIZE] [--readers N] "
      "[--snapshot-mode inline|fork] [--keep N] [--check-every N]";
  const parsed_args args = parse_args(argv, {{"snapshot-dir", true},
                                             {"capacity", true},
                                             {"readers", true},
                                             {"snapshot-mode", true},
                                             {"keep", true},
                                             {"check-every", true}});
  if (args.has("help")) {
    std::printf("usage: %s\n(see shmlog help and docs/cli.md)\n", usage);
    return exit_ok;
  }
  const std::string& name = single_name(args, usage);
  validate_name(name);
  snapshot_options so;
  so.dir = snapshot_dir_option(args, true, "where the producer writes its snapshots");
  if (const auto m = args.value("snapshot-mode")) so.mode = parse_snapshot_mode(*m);
  if (const auto k = args.value("keep")) so.keep = parse_unsigned("keep", *k, 1, 1'000'000);
  std::uint64_t check_every = 64;
  if (const auto c = args.value("check-every"))
    check_every = parse_unsigned("check-every", *c, 1, 1'000'000);
  // The service looks at every poll(); the producer decides when to call it (check_every
  // commands, or idle), so that an idle producer still answers within idle_look.
  so.check_every = 1;
  so.log = [](const std::string& m) { note(m); };
  std::optional<std::uint64_t> capacity;
  if (const auto c = args.value("capacity")) capacity = parse_size("capacity", *c);
  std::optional<std::uint32_t> readers;
  if (const auto r = args.value("readers"))
    readers = static_cast<std::uint32_t>(parse_unsigned("readers", *r, 1, max_reader_slots));

  std::optional<create_options> create_with;
  std::uint64_t announced = 0;
  if (exists(name)) {
    const log_info info = inspect(name);
    if (capacity && *capacity != info.capacity)
      throw command_failure(exit_failure, "log '" + name + "' exists with capacity " +
                                              std::to_string(info.capacity) + ", not " +
                                              std::to_string(*capacity) +
                                              " (--capacity applies to a new log; leave it out)");
    if (readers && *readers != info.reader_slot_count)
      throw command_failure(exit_failure, "log '" + name + "' exists with " +
                                              std::to_string(info.reader_slot_count) +
                                              " reader slots, not " + std::to_string(*readers) +
                                              " (--readers applies to a new log; leave it out)");
    // Fail before loading anything: writer::open would refuse it anyway.
    if (info.writer_alive)
      throw command_failure(exit_failure, "log '" + name + "' already has a live writer (pid " +
                                              std::to_string(info.writer_pid) + ")");
    announced = info.snapshot.generation;
    // The log's snapshots live elsewhere: recovering from this directory would take the
    // producer's state back to whatever (if anything) is here, and every replica with it.
    if (announced != 0 && fs::path(info.snapshot.path).parent_path() != so.dir)
      throw command_failure(exit_failure, "log '" + name + "' publishes its snapshots in '" +
                                              fs::path(info.snapshot.path).parent_path().string() +
                                              "', not in --snapshot-dir '" + so.dir.string() +
                                              "': restart produce with that directory");
  } else {
    create_options c;
    if (capacity) c.capacity = *capacity;
    if (readers) c.reader_slots = *readers;
    validate_create_options(c);
    create_with = c;
  }

  kv::kv_state state;
  opened o = open_with_recovery(name, so.dir, create_with, announced, state);
  writer& w = o.w;
  note("log '" + name + "': " + o.summary);
  retire_unannounced(w, state, so.dir, announced);
  snapshot_service snapshots(w, state, so);

  catch_stop_signals();
  producer p(w, state, snapshots, check_every);
  p.look();  // requests made while no producer was running
  // A line longer than max_payload is refused whatever it says; keep no more of it than that.
  run_input(p, w.max_payload() + 64);

  // Save the state on the way out unless the newest snapshot already is it, so that a restart
  // needs no backlog (and the replicas that ask next get it at once).
  const snapshot_meta newest = w.announced_snapshot();
  const bool saved = newest.generation != 0 && newest.replid == w.history().replid &&
                     newest.offset == w.master_offset();
  const bool nothing = w.master_offset() == 0 && state.size() == 0;
  if (!saved && !nothing) snapshots.snapshot_now();
  return exit_ok;
}

}  // namespace shmlog::cli
