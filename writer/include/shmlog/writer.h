// The writer: the one process that appends to a log.
//
//   auto w = shmlog::writer::create("quotes", {.capacity = 1 << 20});
//   w.append("hello");                                   // copy one record in
//   auto c = w.claim(64);                                // or fill one in place
//   c.payload()[0] = std::byte{42};
//   c.commit(1);
//
// Appending is wait-free: no system call, no lock, and no look at any reader, unless a reader
// attached as gating (reader_options::gating): then, once per intent chunk (1/16 of the ring),
// the writer may wait a bounded time for it (docs/design.md, "Gating readers"). A reader that
// falls a lap behind finds out on its own (see reader.h). Exactly one writer may have a log open;
// the kernel releases that role when the writer's process exits, however it exits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "shmlog/export.h"
#include "shmlog/framing.h"
#include "shmlog/history.h"
#include "shmlog/segment.h"
#include "shmlog/snapshot.h"

namespace shmlog {

// One record of a batch.
struct record_ref {
  std::span<const std::byte> payload;
  record_type type = default_record_type;
};

// What the producer knows of its own state when it opens the log (docs/design.md, "History
// across restarts"). A producer that rebuilt its state from a snapshot and the backlog passes
// the history and offset the state reflects; one that keeps no state passes nothing.
struct writer_options {
  std::optional<history_id> state_replid;  // unset: no state; the log goes on as it is
  std::uint64_t state_offset = 0;          // every record before this offset is in the state
  // How long this writer waits at most for a gating reader that has no room (reader_options::
  // gating) before it laps it; unset: the log's create_options::max_gating_wait. At most
  // max_max_gating_wait; zero laps gating readers at once (they then gate nothing).
  std::optional<std::chrono::nanoseconds> max_gating_wait;
};

// What a writer found when it opened the log.
struct takeover_info {
  std::uint32_t previous_pid = 0;   // the last writer before this one; 0 if none
  bool previous_crashed = false;    // it exited without closing the log
  std::uint64_t master_offset = 0;  // where this writer continues
  // Bytes beyond the master offset the previous writer had announced it would write (an upper
  // bound on its torn tail). Never published, so no reader has read them; they are dropped.
  std::uint64_t unpublished_bytes = 0;
  std::uint64_t previous_master_offset = 0;  // before any history change
  // Bytes of records the previous writer published by their headers but died before covering
  // with the master offset (docs/design.md, "The one-transfer read"): readers may have read
  // them, so they are kept, and included in previous_master_offset.
  std::uint64_t published_by_header = 0;
  history_plan plan;          // keep, branch (the master went back) or restart
  history_state new_history;  // the history written, unless the plan was keep
  // The previous writer died while changing the history block: its history was unknown, so
  // the plan is a restart (every reader full-resyncs). docs/design.md, "Takeover".
  bool repaired_history = false;
  // The previous producer died while announcing a snapshot: the announcement was withdrawn.
  bool repaired_snapshot_announcement = false;
};

class claimed_record;

class SHMLOG_API writer {
 public:
  // Opens an existing log as its writer; continues at its published master offset. Throws
  // error(writer_exists) naming the live writer's pid if another process holds the role.
  // With options.state_replid set, the writer first makes the log's history match the
  // producer's state: same history if the state is exactly the log's content, else a new
  // history id that keeps the old one as replid2 up to where both agree (the master offset
  // goes back there), or shares nothing (takeover().plan says which).
  static writer open(std::string_view name, const writer_options& options = {});
  // Creates a log and opens it as its writer.
  static writer create(std::string_view name, const create_options& options,
                       const writer_options& writer_opts = {});
  // Opens the log as its writer if it exists, else creates it: what a producer that may be
  // restarted wants. An existing log keeps what it was created with (reader slots, mode,
  // fence), but its capacity must be options.capacity: error(invalid_argument) naming both
  // otherwise. Other errors as open() and create() (writer_exists if a live writer has it).
  static writer open_or_create(std::string_view name, const create_options& options,
                               const writer_options& writer_opts = {});

  writer(writer&&) noexcept;
  writer& operator=(writer&&) noexcept;
  ~writer();  // closes the log cleanly; a pending claim is aborted

  // Writer thread only. Appends one record and publishes it; returns the record's offset.
  // Throws error(record_too_large) if payload.size() > max_payload(); nothing is appended.
  std::uint64_t append(std::span<const std::byte> payload, record_type type = default_record_type);
  std::uint64_t append(std::string_view payload, record_type type = default_record_type);

  // Writer thread only. Appends several records with one publication (one master-offset
  // store) and returns the offset of the first. Every size is checked before anything is
  // written. A batch larger than a quarter of the capacity is published in parts, each part
  // still whole records. Returns master_offset() for an empty batch.
  std::uint64_t append_batch(std::span<const record_ref> records);

  // Writer thread only. Reserves room for a record of up to max_payload bytes in the ring and
  // returns a claim to fill it in place; nothing is visible to readers until commit(). One
  // claim at a time: append() and claim() throw error(claim_pending) while one is open.
  claimed_record claim(std::size_t max_payload, record_type type = default_record_type);

  // Writer thread only (the writer's own view; it is always current).
  std::uint64_t master_offset() const noexcept;
  std::uint64_t capacity() const noexcept;
  std::uint64_t max_payload() const noexcept;  // capacity / 4 - 8, at most 4 GiB - 8
  const std::string& name() const noexcept;
  const takeover_info& takeover() const noexcept;
  fence_mode fence() const noexcept;
  history_state history() const;

  // Any thread, never on the append path (like Redis WAIT): waits until at least `readers`
  // live readers hold the records of the current history up to `offset`, or `timeout` passes.
  // Returns how many did when it returned. A reader holds a record once it has been handed
  // over and the reader asked for the next one; it holds the records before its start only if
  // it was given them otherwise (reader::continue_after_load, or a resync() from a state). A
  // reader of an older history (before a writer restart changed it) does not count until it
  // resynchronised.
  std::size_t wait_for_readers(std::size_t readers, std::uint64_t offset,
                               std::chrono::nanoseconds timeout) const;

  // Mirrors (docs/remote.md): a mirror is the writer of a log that reproduces a source log on
  // another host, record for record at the same offsets, in the same histories.
  //
  // Writer thread only. Appends one record that must start at `offset`, where the source put it.
  // With the same capacity the padding before it is the same as the source's; if it would land
  // elsewhere, throws error(unexpected_offset) naming both offsets and appends nothing.
  std::uint64_t append_at(std::uint64_t offset, std::span<const std::byte> payload,
                          record_type type = default_record_type);
  // Writer thread only. Makes the log's history `history` at master offset `master_offset`, as
  // the source's writer did when it restarted: at most the current master offset (a branch
  // takes it back to its shared prefix; the offset must start a record the ring still holds).
  // Readers resynchronise as for any history change. Throws offset_out_of_range or
  // not_a_record_boundary, changing nothing, if it cannot.
  void follow_history(const history_state& history, std::uint64_t master_offset);
  // Writer thread only. After the mirror loaded the source's snapshot at `offset` (at or beyond
  // the master offset): the log goes on from `offset` in `history`, and holds nothing before it.
  // Every reader resynchronises (its next poll says history_changed) and full-resyncs from the
  // snapshot the mirror announces. Throws offset_out_of_range, changing nothing, if `offset` is
  // below the master offset or not a multiple of 8.
  void reset_to(const history_state& history, std::uint64_t offset);

  // Snapshots (docs/design.md, "Full resync"): readers that need one ask through the log, a
  // producer answers by saving its state and announcing the file. snapshot_service does all
  // of this; these are its pieces, for a producer (or a mirror) that does it its own way.
  //
  // Writer thread only. How many snapshot requests readers have made so far (a count they
  // increment, reader::request_snapshot); requests are pending while it is beyond the
  // requests_served of the newest announcement. One relaxed load of a line that readers write
  // only when they ask.
  std::uint64_t snapshot_requests() const noexcept;
  // Writer thread only. Publishes `snapshot` as the log's newest snapshot, with the generation
  // and requests_served it carries; readers that need a snapshot load it from `path` (which
  // must be absolute, shorter than 256 bytes, and a file that verifies whole: not checked here).
  void announce_snapshot(const snapshot_meta& snapshot);
  // Any thread. The newest announced snapshot (generation 0: none yet).
  snapshot_meta announced_snapshot() const;

  // The writer's mapping, for readers in the same process (reader::attach(const mapped_log&)).
  const mapped_log& mapped() const noexcept;

  struct impl;  // the library's; opaque here

 private:
  friend class claimed_record;
  explicit writer(std::unique_ptr<impl> state) noexcept;
  // claim() when the record needs a new intent chunk: out of line (docs/design.md, "Gating
  // readers").
  [[gnu::noinline, gnu::cold]] claimed_record claim_advancing(std::size_t max_payload,
                                                              record_type type);
  std::unique_ptr<impl> impl_;
};

// A record reserved in place by writer::claim(). Move-only; aborted if destroyed uncommitted.
class SHMLOG_API claimed_record {
 public:
  claimed_record(claimed_record&& other) noexcept;
  claimed_record& operator=(claimed_record&& other) noexcept;
  claimed_record(const claimed_record&) = delete;
  claimed_record& operator=(const claimed_record&) = delete;
  ~claimed_record() {
    if (core_ != nullptr) abort();  // inline: a committed claim costs one test, not two calls
  }

  // The reserved payload bytes, straight in the ring. Valid until commit() or abort().
  std::span<std::byte> payload() const noexcept { return payload_; }
  // Where the record will start.
  std::uint64_t offset() const noexcept { return offset_; }
  bool pending() const noexcept { return core_ != nullptr; }

  // Writer thread only. Publishes the first `used` bytes of payload() as the record
  // (default: all of them). Throws error(invalid_argument) if used > payload().size().
  void commit(std::size_t used);
  void commit() { commit(payload_.size()); }
  // Writer thread only. Drops the reservation; nothing becomes visible.
  void abort() noexcept;

 private:
  friend class writer;
  claimed_record(writer::impl* core, std::span<std::byte> payload, std::uint64_t offset,
                 record_type type) noexcept
      : core_(core), payload_(payload), offset_(offset), type_(type) {}
  writer::impl* core_ = nullptr;
  std::span<std::byte> payload_;
  std::uint64_t offset_ = 0;
  record_type type_ = default_record_type;
};

}  // namespace shmlog
