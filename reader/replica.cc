#include "shmlog/replica.h"

#include <bit>
#include <thread>

#include "shmlog/error.h"

namespace shmlog {

std::string_view to_string(replica_event::kind k) noexcept {
  switch (k) {
    case replica_event::kind::full_resync_started:
      return "full_resync_started";
    case replica_event::kind::snapshot_requested:
      return "snapshot_requested";
    case replica_event::kind::full_resync_done:
      return "full_resync_done";
    case replica_event::kind::partial_resync:
      return "partial_resync";
    case replica_event::kind::snapshot_rejected:
      return "snapshot_rejected";
    case replica_event::kind::backlog_too_small:
      return "backlog_too_small";
    case replica_event::kind::snapshot_timeout:
      return "snapshot_timeout";
    case replica_event::kind::lapped:
      return "lapped";
    case replica_event::kind::history_changed:
      return "history_changed";
  }
  return "unknown";
}

replica::replica(std::string_view log, state_machine& state, replica_options options)
    : state_(state),
      options_(std::move(options)),
      reader_(reader::attach(log, {.start = start_position::latest(),
                                   .wait = options_.wait,
                                   .label = options_.label,
                                   .wait_for_creation = options_.wait_for_log})) {
  if (options_.snapshot_dir.empty())
    throw error(errc::invalid_argument,
                "log '" + reader_.name() + "': no snapshot directory given");
  options_.snapshot_dir = std::filesystem::absolute(options_.snapshot_dir).lexically_normal();
  check_snapshot_dir(options_.snapshot_dir, false);
}

std::uint64_t replica::offset() const noexcept {
  return reader_.offset();
}
const history_id& replica::replid() const noexcept {
  return reader_.replid();
}

void replica::event(replica_event::kind what, std::string message) {
  if (!options_.on_event) return;
  options_.on_event(replica_event{what, reader_.offset(), std::move(message)});
}

void replica::back_off() {
  // Sleeping here waits for another process (the producer) to make progress; the back-off
  // keeps a replica that keeps failing from asking for a snapshot every few milliseconds.
  const auto until = std::chrono::steady_clock::now() + backoff_;
  while (!stopping() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
}

std::size_t replica::catch_up(std::size_t max_records) {
  std::size_t applied = 0;
  while (applied < max_records) {
    if (resync_due_ && !resync_from_snapshot()) return applied;
    // Validated copies only: a record applied from a view the writer overwrote mid-apply
    // would corrupt the state; a copy is checked before apply() sees it.
    const poll_result p = reader_.poll_copy(buffer_);
    switch (p.status) {
      case poll_status::record:
        state_.apply(p.record);
        ++applied;
        ++stats_.records_applied;
        break;
      case poll_status::empty:
        return applied;
      case poll_status::lapped:
        ++stats_.laps;
        event(replica_event::kind::lapped,
              "lapped: wanted offset " + std::to_string(p.lap.wanted_offset) +
                  " but the oldest held is " + std::to_string(p.lap.oldest_offset) + " (" +
                  std::to_string(p.lap.bytes_lost()) + " bytes lost); reloading the state");
        resync_due_ = true;
        break;
      case poll_status::history_changed: {
        resync_decision d;
        try {
          d = reader_.resync(reader_.replid(), reader_.offset());
        } catch (const error& e) {
          // The writer that changed the history died half-way: wait for the next one, which
          // repairs the block (this poll will say history_changed again).
          if (e.code() != errc::interrupted_update) throw;
          event(replica_event::kind::history_changed,
                std::string(e.what()) + "; waiting for the next writer");
          back_off();
          return applied;
        }
        if (d.is_partial()) {
          ++stats_.partial_resyncs;
          event(replica_event::kind::partial_resync, "history changed; " + d.describe());
        } else {
          event(replica_event::kind::history_changed,
                "history changed; " + d.describe() + "; reloading the state");
          resync_due_ = true;
        }
        break;
      }
      case poll_status::too_small:  // poll_copy(vector) grows buffer_: never says it
        return applied;
      case poll_status::corrupt:
        event(replica_event::kind::full_resync_started,
              "corrupt record at offset " + std::to_string(p.corruption.offset) + ": " +
                  p.corruption.reason + "; reloading the state");
        resync_due_ = true;
        break;
    }
  }
  return applied;
}

bool replica::wait(std::chrono::nanoseconds timeout) {
  return reader_.wait(timeout);
}

resync_decision replica::resume(const history_id& replid, std::uint64_t offset) {
  const resync_decision d = reader_.resync(replid, offset);
  if (d.is_partial()) {
    resync_due_ = false;
    ++stats_.partial_resyncs;
    event(replica_event::kind::partial_resync, "resumed the saved state; " + d.describe());
  } else {
    event(replica_event::kind::full_resync_started,
          "the saved state cannot be resumed (" + d.describe() + "); reloading the state");
  }
  return d;
}

bool replica::resync_from_snapshot() {
  const full_resync_options o{.snapshot_dir = options_.snapshot_dir,
                              .snapshot_timeout = options_.snapshot_timeout,
                              .max_backoff = options_.max_backoff,
                              .on_event = options_.on_event,
                              .on_load_progress = options_.on_load_progress};
  if (!full_resync(reader_, &state_, o, stop_, &stats_)) return false;
  resync_due_ = false;
  return true;
}

namespace {

// One full resync in progress: its options, its back-off, and how it reports.
class full_resync_run {
 public:
  full_resync_run(reader& r, state_machine* state, const full_resync_options& o,
                  const std::atomic<bool>& stop, replica_stats& stats)
      : r_(r), state_(state), o_(o), stop_(stop), stats_(stats) {}

  bool run();

 private:
  bool stopping() const noexcept { return stop_.load(std::memory_order_relaxed); }

  void event(replica_event::kind what, std::string message) {
    if (o_.on_event) o_.on_event(replica_event{what, r_.offset(), std::move(message)});
  }

  // Sleeping here waits for another process (the producer) to make progress; the back-off
  // keeps a replica that keeps failing from asking for a snapshot every few milliseconds.
  void back_off() {
    const auto until = std::chrono::steady_clock::now() + backoff_;
    while (!stopping() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    backoff_ = std::min(backoff_ * 2, o_.max_backoff);
  }

  bool wait_for_snapshot(std::uint64_t ticket) {
    const auto give_up = std::chrono::steady_clock::now() + o_.snapshot_timeout;
    while (!stopping() && std::chrono::steady_clock::now() < give_up) {
      try {
        if (r_.announced_snapshot().requests_served >= ticket) return true;
      } catch (const error& e) {
        // A producer died announcing a snapshot: nothing is served until the next one repairs
        // the block. run() reports it.
        if (e.code() != errc::interrupted_update) throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the producer's pace
    }
    return false;
  }

  snapshot_meta load(const snapshot_meta& ann) {
    if (state_ == nullptr) return verify_snapshot(ann.path, ann.replid);
    return load_snapshot(ann.path, *state_, ann.replid, o_.on_load_progress);
  }

  void report_backlog_too_small(const snapshot_meta& info, const resync_decision& d,
                                std::uint64_t load_ns);

  reader& r_;
  state_machine* state_;
  const full_resync_options& o_;
  const std::atomic<bool>& stop_;
  replica_stats& stats_;
  std::chrono::milliseconds backoff_{10};
};

std::string ms(std::uint64_t ns) {
  return std::to_string(ns / 1'000'000) + " ms";
}

// The full resync: find a snapshot that the backlog can continue (the announced one if its
// offset is still held, else ask for a new one), verify and load it, then resync from its
// offset. Every failure is reported and retried with back-off until it works or stop.
bool full_resync_run::run() {
  std::uint64_t refused_generation = 0;  // a snapshot we cannot use: do not load it again
  while (!stopping()) {
    snapshot_meta ann;
    history_state history;
    backlog_window window;
    try {
      ann = r_.announced_snapshot();
      history = r_.history();
      window = r_.window();
    } catch (const error& e) {
      // A writer died half-way through changing a header block: the next one repairs it.
      if (e.code() != errc::interrupted_update) throw;
      event(replica_event::kind::snapshot_rejected,
            std::string(e.what()) + "; waiting for the next writer");
      back_off();
      continue;
    }
    const bool usable = ann.generation != 0 && ann.generation != refused_generation &&
                        ann.replid == history.replid && ann.offset >= window.first_byte_offset &&
                        ann.offset <= window.master_offset;
    if (!usable) {
      const std::uint64_t ticket = r_.request_snapshot();
      event(replica_event::kind::snapshot_requested,
            ann.generation == 0 ? "no snapshot published yet: asked the producer for one"
            : ann.generation == refused_generation
                ? "snapshot " + std::to_string(ann.generation) +
                      " could not be used: asked the producer for a new one"
                : "snapshot " + std::to_string(ann.generation) + " (offset " +
                      std::to_string(ann.offset) + ") cannot be continued from the backlog [" +
                      std::to_string(window.first_byte_offset) + ", " +
                      std::to_string(window.master_offset) + "]: asked the producer for a new one");
      if (!wait_for_snapshot(ticket) && !stopping()) {
        event(replica_event::kind::snapshot_timeout,
              "no snapshot within " +
                  ms(static_cast<std::uint64_t>(o_.snapshot_timeout.count()) * 1'000'000) +
                  ": is the producer serving snapshots (snapshot_service, shmlog produce "
                  "--snapshot-dir)? asking again");
        back_off();
      }
      continue;
    }
    if (ann.path.parent_path() != o_.snapshot_dir) {
      ++stats_.snapshots_rejected;
      refused_generation = ann.generation;
      event(replica_event::kind::snapshot_rejected,
            "snapshot '" + ann.path.string() + "' is not in the snapshot directory '" +
                o_.snapshot_dir.string() + "'; asking for another");
      back_off();
      continue;
    }
    event(replica_event::kind::full_resync_started,
          std::string(state_ ? "loading" : "verifying") + " snapshot " +
              std::to_string(ann.generation) + " at offset " + std::to_string(ann.offset) + ": " +
              ann.path.string() + " (" + std::to_string(ann.file_bytes()) + " bytes)");
    snapshot_meta info;
    const auto load_started = std::chrono::steady_clock::now();
    try {
      info = load(ann);
    } catch (const error& e) {
      ++stats_.snapshots_rejected;
      refused_generation = ann.generation;
      event(replica_event::kind::snapshot_rejected, std::string(e.what()) + "; asking for another");
      back_off();
      continue;
    }
    const auto load_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - load_started)
                                       .count());
    // The state reflects every record before info.offset: go on from there.
    const resync_decision d = r_.continue_after_load(info.replid, info.offset);
    if (d.is_partial()) {
      ++stats_.full_resyncs;
      event(replica_event::kind::full_resync_done,
            std::string(state_ ? "loaded" : "verified") + " snapshot " +
                std::to_string(ann.generation) + " at offset " + std::to_string(info.offset) +
                " in " + ms(load_ns) + "; continuing from there");
      return true;
    }
    refused_generation = ann.generation;
    if (d.reason == resync_reason::offset_before_backlog) {
      report_backlog_too_small(info, d, load_ns);  // counted by continue_after_load
    } else {
      event(replica_event::kind::history_changed, d.describe() + "; retrying");
    }
    back_off();
  }
  return false;
}

// The seeds' sizing rule: the ring must hold what the writer appends during the longest gap a
// reader has to bridge — here from saving the snapshot to having loaded it.
void full_resync_run::report_backlog_too_small(const snapshot_meta& info, const resync_decision& d,
                                               std::uint64_t load_ns) {
  ++stats_.backlog_too_small;
  const std::uint64_t appended = d.window.master_offset - info.offset;
  const auto now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  const std::uint64_t age = now > info.created_ns ? now - info.created_ns : 0;
  const std::uint64_t wanted =
      std::bit_ceil(std::max<std::uint64_t>(2 * appended, 2 * r_.capacity()));
  event(replica_event::kind::backlog_too_small,
        "backlog too small: snapshot at offset " + std::to_string(info.offset) + " took " +
            ms(age) + " (saving " + ms(info.save_ns) + ", loading " + ms(load_ns) +
            ") while the writer appended " + std::to_string(appended) + " bytes, more than the " +
            std::to_string(r_.capacity()) + "-byte ring keeps; a capacity of at least " +
            std::to_string(wanted) + " would let readers catch up. Retrying");
}

}  // namespace

bool full_resync(reader& r, state_machine* state, const full_resync_options& options,
                 const std::atomic<bool>& stop, replica_stats* stats) {
  if (options.snapshot_dir.empty())
    throw error(errc::invalid_argument, "log '" + r.name() + "': no snapshot directory given");
  full_resync_options o = options;
  o.snapshot_dir = std::filesystem::absolute(o.snapshot_dir).lexically_normal();
  replica_stats ignored;
  return full_resync_run(r, state, o, stop, stats ? *stats : ignored).run();
}

}  // namespace shmlog
