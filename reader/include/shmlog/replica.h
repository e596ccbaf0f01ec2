// A replica: a reader that keeps a copy of the producer's state (docs/design.md, "Full
// resync"). It applies records in log order; when it is new, lapped, or the history changed
// beyond its position, it asks the producer for a snapshot, verifies and loads it, and goes on
// from the snapshot's offset — Redis's +FULLRESYNC, in shared memory.
//
//   kv_state state;
//   shmlog::replica r("quotes", state, {.snapshot_dir = "/var/lib/quotes"});
//   for (;;) {
//     r.catch_up();                         // full resync if needed, then apply what is there
//     r.wait(std::chrono::seconds(1));
//   }
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/export.h"
#include "shmlog/reader.h"
#include "shmlog/snapshot.h"
#include "shmlog/state_machine.h"

namespace shmlog {

struct replica_event {
  enum class kind {
    full_resync_started,  // the state must be reloaded (new replica, lapped, history changed)
    snapshot_requested,   // no usable snapshot was announced: asked the producer for one
    full_resync_done,     // a snapshot was loaded; the replica goes on from its offset
    partial_resync,       // the history changed, but the replica's position is shared: goes on
    snapshot_rejected,    // a snapshot file failed verification; asking for another
    backlog_too_small,    // the backlog moved past the snapshot's offset while it was loaded
    snapshot_timeout,     // the producer did not answer a request in time; asking again
    lapped,               // the writer overwrote records the replica had not applied
    history_changed,      // a new writer changed the history
  };
  kind what = kind::full_resync_started;
  std::uint64_t offset = 0;  // the replica's offset when it happened (after, for *_done)
  std::string message;       // one line with the offsets, files and reasons
};

SHMLOG_API std::string_view to_string(replica_event::kind k) noexcept;

// What a full resync needs besides the reader and the state.
struct full_resync_options {
  // Where the producer writes its snapshots. A snapshot announced anywhere else is refused:
  // only files from a directory the operator named are loaded.
  std::filesystem::path snapshot_dir;
  // How long to wait for the producer to answer a snapshot request before asking again.
  std::chrono::milliseconds snapshot_timeout = std::chrono::seconds(30);
  // Retries after a refused or failed attempt back off from 10 ms up to this.
  std::chrono::milliseconds max_backoff = std::chrono::seconds(2);
  std::function<void(const replica_event&)> on_event;
  // While a snapshot loads: (payload bytes consumed so far, payload bytes in all).
  std::function<void(std::uint64_t, std::uint64_t)> on_load_progress;
};

struct replica_stats {
  std::uint64_t records_applied = 0;
  std::uint64_t full_resyncs = 0;
  std::uint64_t partial_resyncs = 0;
  std::uint64_t laps = 0;
  std::uint64_t backlog_too_small = 0;
  std::uint64_t snapshots_rejected = 0;
};

// Reader thread. Redis's full resync, on an existing reader: find a snapshot the backlog can
// continue (the announced one if its history and offset are still held, else ask the producer
// for a new one: reader::request_snapshot), verify the whole file and load it into `state`, then
// continue the reader from the snapshot's offset (reader::continue_after_load, which counts
// sync_full, or backlog_too_small when the backlog moved on meanwhile: then again, with a newer
// snapshot). Every refusal is reported through options.on_event and retried with back-off until
// it works or `stop` becomes true. With `state` null the file is verified but not loaded: the
// reader only skips to the snapshot's offset (what `shmlog tail --on-lap=resync` does).
// Returns true once the reader stands at the snapshot's offset, false if stopped first. Counts
// what it did into `stats` if given. Throws what the reader throws for a broken log.
SHMLOG_API bool full_resync(reader& r, state_machine* state, const full_resync_options& options,
                            const std::atomic<bool>& stop, replica_stats* stats = nullptr);

struct replica_options {
  // Where the producer writes its snapshots. A snapshot announced anywhere else is refused:
  // the replica loads files only from a directory its operator named.
  std::filesystem::path snapshot_dir;
  wait_policy wait;
  std::string label = "replica";
  // If the log does not exist yet (or is still being created), wait up to this long for it
  // (reader_options::wait_for_creation). Zero: fail at once.
  std::chrono::milliseconds wait_for_log{0};
  // How long to wait for the producer to answer a snapshot request before asking again.
  std::chrono::milliseconds snapshot_timeout = std::chrono::seconds(30);
  // Retries after a refused or failed full resync back off from 10 ms up to this.
  std::chrono::milliseconds max_backoff = std::chrono::seconds(2);
  std::function<void(const replica_event&)> on_event;
  // While a snapshot loads: (payload bytes consumed so far, payload bytes in all).
  std::function<void(std::uint64_t, std::uint64_t)> on_load_progress;
};

class SHMLOG_API replica {
 public:
  // Attaches to the log; the first catch_up() does a full resync. Throws what reader::attach
  // throws, and error naming the snapshot directory if it is missing or unreadable.
  replica(std::string_view log, state_machine& state, replica_options options);

  // Replica thread. Makes the state current: first a full resync if one is due (this blocks
  // until a snapshot is loaded, or stop() is called: then it returns 0), then applies the
  // records published so far, at most max_records. Returns the records applied.
  std::size_t catch_up(std::size_t max_records = std::numeric_limits<std::size_t>::max());

  // Replica thread, before the first catch_up(): the state already reflects the log's history
  // `replid` up to `offset` (it was loaded from the replica's own saved state, Redis 4.0's
  // PSYNC2 for a restarted replica). Asks for a partial resync from there (reader::resync:
  // counted in sync_partial_ok, or sync_partial_err if refused). Partial: the replica goes on
  // from `offset` without a full resync. Refused: the next catch_up() full-resyncs, replacing
  // the state. Returns the decision.
  resync_decision resume(const history_id& replid, std::uint64_t offset);

  // Replica thread. Waits for a record beyond offset(), per the wait policy; false on timeout.
  bool wait(std::chrono::nanoseconds timeout);

  // Any thread, or a signal handler: makes a full resync in progress give up and return.
  void stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  bool stopping() const noexcept { return stop_.load(std::memory_order_relaxed); }

  std::uint64_t offset() const noexcept;  // the state reflects every record before this
  const history_id& replid() const noexcept;
  bool synced() const noexcept { return !resync_due_; }
  const replica_stats& stats() const noexcept { return stats_; }
  reader& log_reader() noexcept { return reader_; }

 private:
  bool resync_from_snapshot();
  void event(replica_event::kind what, std::string message);
  void back_off();

  state_machine& state_;
  replica_options options_;
  reader reader_;
  std::vector<std::byte> buffer_;
  bool resync_due_ = true;
  replica_stats stats_;
  std::chrono::milliseconds backoff_{10};
  std::atomic<bool> stop_{false};
};

}  // namespace shmlog
