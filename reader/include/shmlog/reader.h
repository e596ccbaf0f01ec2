// A reader: any number of processes attach to a log, each with its own offset.
//
//   auto r = shmlog::reader::attach("quotes", {.start = shmlog::start_position::oldest()});
//   std::vector<std::byte> buf;
//   for (;;) {
//     shmlog::poll_result p = r.poll_copy(buf);
//     if (p.status == shmlog::poll_status::record) use(p.record.payload);
//     else if (p.status == shmlog::poll_status::empty) r.wait();
//     else if (p.status == shmlog::poll_status::lapped)  // the writer came round
//       r.recover_from_lap(shmlog::lap_policy::oldest_safe);
//   }
//
// A reader never writes the log's data: it maps the header and ring read-only and writes only
// its own slot in the reader area. The writer never waits for it, so a reader that falls more
// than a ring behind is *lapped*: its next poll says so, with the offset it wanted and the
// oldest offset still held, and never delivers the overwritten bytes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/export.h"
#include "shmlog/framing.h"
#include "shmlog/history.h"
#include "shmlog/record.h"
#include "shmlog/segment.h"
#include "shmlog/snapshot.h"

namespace shmlog {

class reader;
namespace testing {
SHMLOG_API void set_validation_hook(reader& r, std::function<void()> hook);  // shmlog/testing.h
}  // namespace testing

struct start_position {
  enum class kind { oldest, latest, offset };
  kind where = kind::latest;
  std::uint64_t offset = 0;  // with kind::offset: a record boundary in the held window

  static start_position oldest() noexcept { return {kind::oldest, 0}; }
  static start_position latest() noexcept { return {kind::latest, 0}; }
  static start_position at(std::uint64_t offset) noexcept { return {kind::offset, offset}; }
};

enum class wait_mode {
  spin,      // poll the master offset in a loop (lowest latency, burns a core)
  yield,     // poll, sched_yield() between polls
  sleep,     // sleep on a futex until the writer wakes us (costs the writer a syscall)
  adaptive,  // spin for spin_for, then yield for yield_for, then sleep
};

struct wait_policy {
  wait_mode mode = wait_mode::adaptive;
  std::chrono::nanoseconds spin_for = std::chrono::microseconds(50);
  std::chrono::nanoseconds yield_for = std::chrono::milliseconds(2);
  // Used by wait() only. In a dense stream (more than one record read since the last wait),
  // wait() holds off this long before it looks at the master offset again, so that the writer
  // can publish several records without losing that cache line to the reader each time
  // (docs/design.md, "Catch-up grace"). Records that come one per wait are never delayed.
  // poll() and poll_copy() never apply it: they always look at once. A loop that busy-polls
  // and never calls wait() gets no grace; to have it, call wait() when a poll says empty (with
  // wait_mode::spin it is a spin loop that keeps off the line for the grace first). Zero turns
  // it off.
  std::chrono::nanoseconds catch_up_grace = std::chrono::nanoseconds(250);
  // A sleeping reader wakes on its own at least this often to refresh its heartbeat (shown by
  // shmlog info). nanoseconds::max(): never; only the writer or the timeout wakes it.
  std::chrono::nanoseconds heartbeat_interval = std::chrono::seconds(1);
};

struct reader_options {
  start_position start = start_position::latest();
  wait_policy wait;
  std::string label;  // shown by `shmlog info`; at most 15 bytes are kept
  // attach(name) only: if the log does not exist yet, or exists but its creator has not
  // finished creating it, wait up to this long for it (polling, with a back-off from 1 ms up to
  // 50 ms), then throw not_found (or not_initialized) naming the log and the time waited. Zero:
  // do not wait (fail at once).
  std::chrono::milliseconds wait_for_creation{0};
  // Gating (docs/design.md, "Gating readers"): while this reader lives, the writer does not
  // overrun it; when the ring has no room before this reader's offset it waits (spinning, then
  // yielding) until the reader has read on, for at most a bound (writer_options::
  // max_gating_wait, create_options::max_gating_wait, default 100 ms), and only then laps it
  // (counted in `shmlog info` as gating_laps). Costs the writer only while this reader is
  // behind; a reader that is killed gates nothing. The writer sees a new gating reader at the
  // latest at its second intent advance (a sixteenth of the ring each) after attach; bytes it
  // overwrote before that (only a start near the oldest record can lose any) poll() reports as
  // a lap, as for any reader. The same holds after a seek backwards.
  bool gating = false;
};

// The writer overwrote bytes this reader had not read yet.
struct lap_report {
  std::uint64_t wanted_offset = 0;  // where the reader stood
  std::uint64_t oldest_offset = 0;  // oldest record still held
  std::uint64_t master_offset = 0;
  // Where the reader goes on: from recover_from_lap(), where it now stands; in a poll's
  // report (the reader has not moved yet), the oldest record, the least a recovery can lose.
  std::uint64_t resume_offset = 0;
  // The bytes skipped: from the wanted offset to the resume offset.
  std::uint64_t bytes_lost() const noexcept {
    return resume_offset > wanted_offset ? resume_offset - wanted_offset : 0;
  }
};

// Where a lapped reader goes on (reader::recover_from_lap; docs/design.md, "Laps and policy").
enum class lap_policy {
  // The oldest record still held: loses the least now, but it is the record the writer
  // overwrites next, so a reader not much faster than the writer is lapped again at once.
  oldest,
  // The first record at or after the chunk boundary a quarter of the ring ahead of the oldest:
  // loses up to a quarter ring more than `oldest`, and the writer writes at least a quarter of
  // a ring more before it comes round to the reader again. A reader slower than the writer then
  // delivers records
  // between laps and loses what it must (the rate difference), not everything.
  oldest_safe,
  // The master offset: skips everything held; the reader waits for the next record.
  latest,
};

// A record header that is wrong although the writer has not come round to it: a bug or a
// stray write, never a race. The reader stays put; skip_corruption() moves past it.
struct corruption_report {
  std::uint64_t offset = 0;
  const char* reason = "";
};

enum class poll_status {
  record,   // result.record holds the next record
  empty,    // caught up with the writer
  lapped,   // result.lap says where we were and what is left; the reader did not move
  corrupt,  // result.corruption says where and why; the reader did not move
  // A writer that started since changed the log's history (docs/design.md, "History across
  // restarts"); nothing was delivered and the reader did not move. Call
  // resync(replid(), offset()): partial if the new history shares the reader's position, else
  // a full resync is due.
  history_changed,
  // poll_copy(span) only (poll() and poll_copy(vector) never say it): the next record's
  // payload is larger than the buffer. It was not consumed (the reader did not move);
  // result.needed_size is its payload size. Poll again with a buffer at least that large.
  too_small,
};

struct poll_result {
  poll_status status = poll_status::empty;
  // With too_small: the next record's payload size in bytes (at most max_payload()). 32 bits,
  // next to the status, so that the result is no larger than without it.
  std::uint32_t needed_size = 0;
  record_view record;
  lap_report lap;
  corruption_report corruption;
};

class SHMLOG_API reader {
 public:
  // Attaches to the log in another process's shared memory and takes a reader slot. Throws
  // shmlog::error (not_found, permission_denied, bad_magic, no_free_reader_slot, ...), or
  // offset_out_of_range / not_a_record_boundary for a bad start_position::at(). With
  // options.wait_for_creation, a log that does not exist or is still being created is waited
  // for, up to that long.
  static reader attach(std::string_view name, const reader_options& options = {});
  // Attaches in the writer's own process, sharing its mapping (writer::mapped(); for in-process
  // consumers and thread-sanitizer tests). Still takes a reader slot. The log exists by then:
  // options.wait_for_creation is ignored.
  static reader attach(const mapped_log& log, const reader_options& options = {});

  reader(reader&&) noexcept;
  reader& operator=(reader&&) noexcept;
  ~reader();  // gives the slot back

  // Reader thread only. The next record as a view into shared memory, intact when poll()
  // returned; the writer may overwrite it at any time after. Check still_valid() after using
  // the bytes and discard what you derived from them if it says false.
  poll_result poll();
  // Reader thread only. Copies the next record into `buffer` (grown as needed, never shrunk),
  // then validates: a record returned is exactly what was appended. The view's payload points
  // into `buffer`.
  poll_result poll_copy(std::vector<std::byte>& buffer);
  // Reader thread only. The same into a caller's buffer that is never grown: a record that
  // does not fit is not consumed, and the result says too_small with the size it needs.
  // Validated as above; the view's payload points into `buffer`.
  poll_result poll_copy(std::span<std::byte> buffer);
  // Reader thread only. True if the writer had not yet come round to the view's bytes.
  bool still_valid(const record_view& view) const noexcept;

  // Reader thread only. Waits, per the wait policy, until a record is published beyond
  // offset() or `timeout` passes; returns whether one is. A sleeping reader never misses a
  // wake-up (docs/design.md, "No lost wake-up").
  bool wait(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
  void set_wait_policy(const wait_policy& policy) noexcept;

  // Reader thread only. Moves to `offset`, which must be a record boundary in the held window
  // [oldest, master]. Throws offset_out_of_range or not_a_record_boundary; stays put then.
  void seek(std::uint64_t offset);
  void seek_oldest();
  void seek_latest();
  // Reader thread only. After poll() said lapped: moves to the record boundary `policy` picks
  // (found from the writer's checkpoints, never by walking more than a chunk) and says where it
  // stood, where it now stands and the bytes skipped. A reader that is not lapped stays put (the
  // report then says nothing was lost). Like seek_oldest(), it takes the log's current history.
  // Throws corrupt_header if the header's offsets or checkpoints are inconsistent.
  lap_report recover_from_lap(lap_policy policy);
  // After poll() said corrupt: moves to the first record after the next chunk boundary (or
  // the oldest held record, if that is later) and returns the bytes skipped.
  std::uint64_t skip_corruption();

  // Reader thread only. The PSYNC decision: continue from (replid, offset) if that history and
  // offset are still held (the reader then stands at `offset`), or full resync (the reader does
  // not move). Counts sync_partial_ok or, for a refused request with a history,
  // sync_partial_err. Pass std::nullopt as replid for a reader with no history yet.
  resync_decision resync(std::optional<history_id> replid, std::uint64_t offset);
  // The last step of a full resync: the state was loaded from a snapshot of (replid, offset);
  // move there if the backlog still holds it. The same decision as resync(), but not a PSYNC:
  // it counts sync_full if it succeeds, backlog_too_small if the backlog has moved past
  // `offset` meanwhile (the snapshot is too old for the ring: design.md, "Full resync"), and
  // nothing else. full_resync() (replica.h) runs the whole full resync.
  resync_decision continue_after_load(const history_id& replid, std::uint64_t offset);

  // Any thread. The producer's newest announced snapshot (generation 0: none yet); may be
  // stale. Throws interrupted_update if a producer died announcing one (the next repairs it).
  snapshot_meta announced_snapshot() const;
  // Asks the producer for a new snapshot and returns the ticket: the request is answered once
  // announced_snapshot().requests_served >= ticket. Requests from many readers coalesce.
  std::uint64_t request_snapshot();

  // Any thread. True once the log's name has been destroyed (shmlog destroy): no writer can
  // open it again, so nothing more will arrive. The reader's mapping stays valid.
  bool log_removed() const;

  std::uint64_t offset() const noexcept;  // next byte this reader will read
  // The history the records this reader has been given belong to: the log's replid when it
  // attached or last resynchronised (or sought).
  const history_id& replid() const noexcept;
  std::uint64_t master_offset() const noexcept;  // any thread; a fresh load, may be stale
  backlog_window window() const;                 // any thread; may be stale
  history_state history() const;
  std::uint64_t lapped_count() const noexcept;  // times this reader was lapped
  std::uint32_t slot() const noexcept;
  std::uint64_t capacity() const noexcept;
  std::uint64_t max_payload() const noexcept;
  const std::string& name() const noexcept;

  struct impl;  // the library's; opaque here

 private:
  friend void testing::set_validation_hook(reader& r, std::function<void()> hook);
  explicit reader(std::unique_ptr<impl> state) noexcept;
  std::unique_ptr<impl> impl_;
};

}  // namespace shmlog
