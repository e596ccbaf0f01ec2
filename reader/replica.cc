#include "shmlog/replica.h"

#include <bit>
#include <thread>

#include "mapping.h"
#include "os.h"
#include "shmlog/error.h"

namespace shmlog {
namespace {

std::string ms(std::uint64_t ns) {
  return std::to_string(ns / 1'000'000) + " ms";
}

}  // namespace

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
      reader_(reader::attach(
          log,
          {.start = start_position::latest(), .wait = options_.wait, .label = options_.label})) {
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
    if (resync_due_ && !full_resync()) return applied;
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

bool replica::wait_for_snapshot(std::uint64_t ticket) {
  const detail::mapping& map = *detail::reader_mapping(reader_);
  const auto give_up = std::chrono::steady_clock::now() + options_.snapshot_timeout;
  while (!stopping() && std::chrono::steady_clock::now() < give_up) {
    try {
      if (detail::read_snapshot_announcement(map).requests_served >= ticket) return true;
    } catch (const error& e) {
      // A producer died announcing a snapshot: nothing is served until the next one repairs
      // the block. full_resync() reports it.
      if (e.code() != errc::interrupted_update) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the producer's pace, not ours
  }
  return false;
}

// The full resync: find a snapshot that the backlog can continue (the announced one if its
// offset is still held, else ask for a new one), verify and load it, then resync from its
// offset. Every failure is reported and retried with back-off until it works or stop().
bool replica::full_resync() {
  const auto& map = detail::reader_mapping(reader_);
  reader_area_header& area = map->reader_area();
  backoff_ = std::chrono::milliseconds(10);
  std::uint64_t refused_generation = 0;  // a snapshot we cannot use: do not load it again
  while (!stopping()) {
    detail::snapshot_announcement ann;
    history_state history;
    backlog_window window;
    try {
      ann = detail::read_snapshot_announcement(*map);
      history = reader_.history();
      window = reader_.window();
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
      const std::uint64_t ticket =
          area.snapshot_requests.fetch_add(1, std::memory_order_relaxed) + 1;
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
                  ms(static_cast<std::uint64_t>(options_.snapshot_timeout.count()) * 1'000'000) +
                  ": is the producer serving snapshots (snapshot_service, shmlog produce "
                  "--snapshot-dir)? asking again");
        back_off();
      }
      continue;
    }
    const std::filesystem::path path(ann.path);
    if (path.parent_path() != options_.snapshot_dir) {
      ++stats_.snapshots_rejected;
      refused_generation = ann.generation;
      event(replica_event::kind::snapshot_rejected,
            "snapshot '" + ann.path + "' is not in the snapshot directory '" +
                options_.snapshot_dir.string() + "'; asking for another");
      back_off();
      continue;
    }
    event(replica_event::kind::full_resync_started,
          "loading snapshot " + std::to_string(ann.generation) + " at offset " +
              std::to_string(ann.offset) + ": " + ann.path + " (" + std::to_string(ann.bytes) +
              " bytes)");
    snapshot_info info;
    const std::uint64_t load_started = detail::monotonic_ns();
    try {
      info = load_snapshot(path, state_, ann.replid, options_.on_load_progress);
    } catch (const error& e) {
      ++stats_.snapshots_rejected;
      refused_generation = ann.generation;
      event(replica_event::kind::snapshot_rejected, std::string(e.what()) + "; asking for another");
      back_off();
      continue;
    }
    const std::uint64_t load_ns = detail::monotonic_ns() - load_started;
    // The state reflects every record before info.offset: go on from there.
    const resync_decision d = reader_.continue_after_load(info.replid, info.offset);
    if (d.is_partial()) {
      ++stats_.full_resyncs;
      resync_due_ = false;
      event(replica_event::kind::full_resync_done,
            "loaded snapshot " + std::to_string(ann.generation) + " at offset " +
                std::to_string(info.offset) + " in " + ms(load_ns) + "; continuing from there");
      return true;
    }
    refused_generation = ann.generation;
    if (d.reason == resync_reason::offset_before_backlog) {
      // The seeds' sizing rule: the ring must hold what the writer appends during the longest
      // gap a reader has to bridge — here from saving the snapshot to having loaded it.
      ++stats_.backlog_too_small;
      area.backlog_too_small.fetch_add(1, std::memory_order_relaxed);
      const std::uint64_t appended = d.window.master_offset - info.offset;
      const std::uint64_t now = detail::realtime_ns();
      const std::uint64_t age = now > info.created_ns ? now - info.created_ns : 0;
      const std::uint64_t wanted =
          std::bit_ceil(std::max<std::uint64_t>(2 * appended, 2 * reader_.capacity()));
      event(replica_event::kind::backlog_too_small,
            "backlog too small: snapshot at offset " + std::to_string(info.offset) + " took " +
                ms(age) + " (saving " + ms(info.save_ns) + ", loading " + ms(load_ns) +
                ") while the writer appended " + std::to_string(appended) +
                " bytes, more than the " + std::to_string(reader_.capacity()) +
                "-byte ring keeps; a capacity of at least " + std::to_string(wanted) +
                " would let readers catch up. Retrying");
      back_off();
      continue;
    }
    event(replica_event::kind::history_changed, d.describe() + "; retrying");
    back_off();
  }
  return false;
}

}  // namespace shmlog
