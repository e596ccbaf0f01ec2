// The shared-memory format of a shmlog segment, shared by the writer, the readers and the tests.
// Private to the library: the public API is in shmlog/framing.h (record framing and limits) and
// the classes built on this. docs/layout.md draws the same picture and explains every field;
// keep the two in step and bump layout_version on any change that an older build would misread.
//
// A segment is one POSIX shared-memory object (/dev/shm/<name>) in three page-aligned parts:
//
//   0               header_size            header_size + capacity                   total
//   +---------------+----------------------+-----------------------------------------+
//   | segment_header|  ring (capacity B)   | reader area: counters, reader slots     |
//   +---------------+----------------------+-----------------------------------------+
//   written by the writer only             written by readers (the writer only reads
//   (readers map this part read-only)      sleep_epoch and gating_readers on the append path)
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shmlog/framing.h"

namespace shmlog {

// One checkpoint per chunk boundary, kept for two laps so a reader looking up the oldest
// chunk never finds its entry already reused.
inline constexpr std::uint32_t checkpoint_count = 2 * intent_chunks_per_ring;

// ---------------------------------------------------------------------------------------------
// Segment header: the first header_size bytes of the segment. Only the writer (or the creator)
// writes it. Each group of fields that changes at a different rate has cache lines of its own.

inline constexpr std::size_t cache_line_size = 64;
inline constexpr std::uint64_t segment_magic = 0x0000474F4C4D4853;  // "SHMLOG\0\0" little-endian
// 2: 64-bit intent_chunk and max_payload (capacities above 16 GiB), a two-line descriptor, and
// two-line reader slots that say which history and which records a reader holds.
// 3: start_offset in the descriptor (a log that begins at an offset other than 0: a mirror).
// 4: a record is published by its header, stored last (release), and the word after the last
// record is cleared before it: a caught-up reader waits on the next header, not on the master
// offset (docs/design.md, "The one-transfer read").
inline constexpr std::uint32_t layout_version = 4;
inline constexpr std::uint32_t header_size = 4096;

// Written once by the creator, before the magic; never changed afterwards.
struct alignas(cache_line_size) segment_descriptor {
  std::atomic<std::uint64_t> magic;  // stored last, with release, when creation is complete
  std::uint32_t layout_version;
  std::uint32_t header_size;         // bytes before the ring
  std::uint64_t capacity;            // ring bytes, a power of two
  std::uint64_t reader_area_offset;  // header_size + capacity
  std::uint32_t reader_area_size;    // bytes, a multiple of the page size
  std::uint32_t reader_slot_count;
  std::uint64_t intent_chunk;      // capacity / 16
  std::uint64_t max_payload;       // max_payload_for(capacity)
  std::uint64_t creation_time_ns;  // CLOCK_REALTIME
  std::uint32_t writer_fence;      // the fence_mode every writer of this log uses
  std::uint32_t reserved0;         // zero
  // The offset the log's first byte has: 0, or where a mirror's log began (the source's offset
  // when the mirror was created). Nothing before it was ever held.
  std::uint64_t start_offset;
  // How long a writer waits for a gating reader that has no room before it laps it
  // (create_options::max_gating_wait; a writer_options value overrides it). 0: the default.
  std::uint64_t max_gating_wait_ns;
  std::uint8_t reserved[36];     // zero
  std::uint32_t descriptor_crc;  // CRC-32C of bytes 8 .. 123 (after the magic, before this)
};

// The history of the log, like a Redis master's replid / replid2 / second_replid_offset.
// Changed only while a starting writer holds the writer lock; seq is odd during a change, so
// a reader copies the block, re-reads seq and retries if it changed (a seqlock, shm/seqlock.h).
// The change also bumps history_epoch and may take master_offset back, both inside the odd
// window, so that a reader sees the history, the epoch and the master offset of one moment.
struct alignas(cache_line_size) history_block {
  std::atomic<std::uint32_t> seq;
  std::uint32_t reserved;
  std::atomic<std::uint64_t> replid[history_id_size / 8];
  std::atomic<std::uint64_t> replid2[history_id_size / 8];  // all '0' characters: none
  // Readers of replid2 at an offset <= this one may continue under replid (no_offset: none).
  std::atomic<std::uint64_t> second_repl_offset;
};

// Who holds (or last held) the writer role. Written when a writer opens the log.
struct alignas(cache_line_size) writer_block {
  std::atomic<std::uint32_t> pid;                   // 0: no writer has opened the log yet
  std::atomic<std::uint32_t> generation;            // writers that have opened the log so far
  std::atomic<std::uint64_t> start_time_ns;         // CLOCK_REALTIME when it took over
  std::atomic<std::uint64_t> recovered_torn_bytes;  // unpublished bytes it found and dropped
  std::atomic<std::uint32_t> fence;                 // the fence_mode it uses (see writer_fence)
  std::atomic<std::uint32_t> open;  // 1 while a writer has it; 1 at takeover: it died
  // Gating readers (docs/design.md, "Gating readers"): intent advances on which a writer had
  // to wait for one, and gating readers it lapped after waiting the bound. Relaxed: counts for
  // monitoring, written only on those slow paths.
  std::atomic<std::uint64_t> gating_waits;
  std::atomic<std::uint64_t> gating_laps;
};

// The newest snapshot file: written by the producer when it publishes one, under a seqlock
// (seq odd while it changes; a block a dead producer left odd is repaired by the next writer).
// Readers that need a full resync read it, and load the file.
struct alignas(cache_line_size) snapshot_block {
  std::atomic<std::uint32_t> seq;
  std::uint32_t reserved;
  std::atomic<std::uint64_t> generation;       // snapshots published so far; 0: none yet
  std::atomic<std::uint64_t> offset;           // the state reflects every record before this
  std::atomic<std::uint64_t> requests_served;  // the snapshot_requests count it answers
  std::atomic<std::uint64_t> created_ns;       // CLOCK_REALTIME when the state was saved
  std::atomic<std::uint64_t> save_ns;          // how long saving it took
  std::atomic<std::uint64_t> bytes;            // file size
  std::atomic<std::uint64_t> replid[history_id_size / 8];   // the history it belongs to
  std::atomic<std::uint64_t> path[snapshot_path_size / 8];  // absolute path, NUL-padded
};

struct segment_header {
  segment_descriptor descriptor;
  history_block history;
  writer_block writer;

  // Hot: stored by the writer once per publish (release), loaded by readers that have caught
  // up (acquire). Alone on its line so that nothing else a reader needs moves with it.
  alignas(cache_line_size) std::atomic<std::uint64_t> master_offset;

  // Stored by the writer once per intent chunk: no byte at or beyond write_intent is being
  // written. Readers load it after copying a record to see whether the writer came round.
  alignas(cache_line_size) std::atomic<std::uint64_t> write_intent;
  // Bumped (release, then a release fence) by a starting writer that changes the history,
  // inside the history seqlock and before it writes any byte of the new one. On the intent's line,
  // so the readers' check after every record loads both at the cost of one: a changed epoch means
  // "resync".
  std::atomic<std::uint64_t> history_epoch;

  // Bumped by the writer when it wakes sleeping readers; they futex-wait on it.
  alignas(cache_line_size) std::atomic<std::uint32_t> wake_seq;

  // checkpoints[(b / intent_chunk) % checkpoint_count] is the offset of the first record that
  // starts at or after chunk boundary b. Lets a reader find the oldest record, and check that
  // an offset is a record boundary, without the writer tracking a tail.
  alignas(cache_line_size) std::atomic<std::uint64_t> checkpoints[checkpoint_count];

  // The newest snapshot the producer published (docs/design.md, "Full resync").
  snapshot_block snapshot;
};

static_assert(sizeof(segment_descriptor) == 2 * cache_line_size);
static_assert(sizeof(history_block) == 2 * cache_line_size);
static_assert(sizeof(writer_block) == 1 * cache_line_size);
static_assert(offsetof(segment_header, descriptor) == 0 * cache_line_size);
static_assert(offsetof(segment_header, history) == 2 * cache_line_size);
static_assert(offsetof(segment_header, writer) == 4 * cache_line_size);
static_assert(offsetof(segment_header, master_offset) == 5 * cache_line_size);
static_assert(offsetof(segment_header, write_intent) == 6 * cache_line_size);
static_assert(offsetof(segment_header, history_epoch) == 6 * cache_line_size + 8);
static_assert(offsetof(segment_header, wake_seq) == 7 * cache_line_size);
static_assert(offsetof(segment_header, checkpoints) == 8 * cache_line_size);
static_assert(offsetof(segment_header, snapshot) == 12 * cache_line_size);
static_assert(sizeof(snapshot_block) == 6 * cache_line_size);
static_assert(offsetof(snapshot_block, replid) == 56);
static_assert(offsetof(snapshot_block, path) == 96);
static_assert(sizeof(segment_header) == 18 * cache_line_size);
static_assert(sizeof(segment_header) <= header_size);
static_assert(offsetof(segment_descriptor, layout_version) == 8);
static_assert(offsetof(segment_descriptor, header_size) == 12);
static_assert(offsetof(segment_descriptor, capacity) == 16);
static_assert(offsetof(segment_descriptor, reader_area_offset) == 24);
static_assert(offsetof(segment_descriptor, reader_area_size) == 32);
static_assert(offsetof(segment_descriptor, reader_slot_count) == 36);
static_assert(offsetof(segment_descriptor, intent_chunk) == 40);
static_assert(offsetof(segment_descriptor, max_payload) == 48);
static_assert(offsetof(segment_descriptor, creation_time_ns) == 56);
static_assert(offsetof(segment_descriptor, writer_fence) == 64);
static_assert(offsetof(segment_descriptor, start_offset) == 72);
static_assert(offsetof(segment_descriptor, max_gating_wait_ns) == 80);
static_assert(offsetof(segment_descriptor, descriptor_crc) == 124);
static_assert(offsetof(history_block, replid) == 8);
static_assert(offsetof(history_block, replid2) == 8 + history_id_size);
static_assert(offsetof(history_block, second_repl_offset) == 8 + 2 * history_id_size);
static_assert(offsetof(writer_block, start_time_ns) == 8);
static_assert(offsetof(writer_block, recovered_torn_bytes) == 16);
static_assert(offsetof(writer_block, fence) == 24);
static_assert(offsetof(writer_block, open) == 28);
static_assert(offsetof(writer_block, gating_waits) == 32);
static_assert(offsetof(writer_block, gating_laps) == 40);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8);

// ---------------------------------------------------------------------------------------------
// Reader area: after the ring, mapped read-write by readers. The writer's append path reads
// exactly one word of it (sleep_epoch) and writes none.

struct alignas(cache_line_size) reader_area_header {
  // A reader about to sleep increments this; a writer that sees it change since its last
  // publish wakes the sleepers. Alone on its line: it changes only when someone goes to sleep.
  std::atomic<std::uint32_t> sleep_epoch;
  // Slots whose gating flag is set (live readers, and dead ones not yet reclaimed). The writer
  // loads it once per intent advance; on sleep_epoch's line, which it loads at every publish,
  // so that costs no cache line the append path did not already touch.
  std::atomic<std::uint32_t> gating_readers;
  std::uint8_t reserved1[56];

  // Resync counters, named after their Redis INFO fields.
  alignas(cache_line_size) std::atomic<std::uint64_t> sync_full;
  std::atomic<std::uint64_t> sync_partial_ok;
  std::atomic<std::uint64_t> sync_partial_err;
  std::atomic<std::uint64_t> lapped_total;  // laps seen by all readers, ever
  // A reader that needs a snapshot increments this; the producer, which loads it every few
  // appends, writes one and publishes the count it answered in snapshot_block.requests_served.
  std::atomic<std::uint64_t> snapshot_requests;
  // Full resyncs that failed because the backlog had moved past the snapshot's offset by the
  // time it was loaded (the backlog is too small for the snapshot's age).
  std::atomic<std::uint64_t> backlog_too_small;
};

// One per attached reader, on two cache lines of its own; owned by the reader holding the
// slot's lock (see docs/design.md, "Reader slots"). Other processes only read it. The first
// line is what the reader updates as it reads, the second what it writes when it attaches.
struct alignas(cache_line_size) reader_slot {
  std::atomic<std::uint64_t> offset;  // next byte this reader will read
  std::atomic<std::uint32_t> state;   // a reader_state
  // Seqlock over a move (epoch, holds_from, offset together): odd while the reader moves. In
  // between moves only offset changes, and only forwards.
  std::atomic<std::uint32_t> move_seq;
  std::atomic<std::uint64_t> epoch;  // history_epoch of the history it reads; no_offset: none
  // The reader holds (has been given, or was loaded with) every record of that history from
  // here up to offset; 0 for a replica whose state reflects the log from its first byte.
  std::atomic<std::uint64_t> holds_from;
  std::atomic<std::uint64_t> heartbeat_ns;  // CLOCK_MONOTONIC of its last poll or wait step
  std::atomic<std::uint64_t> records;       // records delivered to it
  std::atomic<std::uint64_t> lapped;        // times this reader found its data overwritten
  // Bytes it skipped recovering from laps (recover_from_lap): what Aeron's LossStat shows.
  std::atomic<std::uint64_t> bytes_lost;

  alignas(cache_line_size) std::atomic<std::uint32_t> pid;
  // 1: the writer must not overrun this reader while it lives (reader_options::gating).
  // Stored before pid (release) at attach; counted in gating_readers.
  std::atomic<std::uint32_t> gating;
  std::atomic<std::uint64_t> attach_time_ns;    // CLOCK_REALTIME
  char label[16];                               // free text, NUL-padded
  std::atomic<std::uint64_t> last_lap_time_ns;  // CLOCK_REALTIME of its newest lap; 0: none
  std::uint8_t reserved2[24];
};

static_assert(sizeof(reader_area_header) == 2 * cache_line_size);
static_assert(offsetof(reader_area_header, sync_full) == cache_line_size);
static_assert(offsetof(reader_area_header, gating_readers) == 4);
static_assert(sizeof(reader_slot) == 2 * cache_line_size);
static_assert(offsetof(reader_slot, offset) == 0);
static_assert(offsetof(reader_slot, state) == 8);
static_assert(offsetof(reader_slot, move_seq) == 12);
static_assert(offsetof(reader_slot, epoch) == 16);
static_assert(offsetof(reader_slot, holds_from) == 24);
static_assert(offsetof(reader_slot, heartbeat_ns) == 32);
static_assert(offsetof(reader_slot, records) == 40);
static_assert(offsetof(reader_slot, lapped) == 48);
static_assert(offsetof(reader_slot, bytes_lost) == 56);
static_assert(offsetof(reader_slot, pid) == cache_line_size);
static_assert(offsetof(reader_slot, gating) == cache_line_size + 4);
static_assert(offsetof(reader_slot, attach_time_ns) == cache_line_size + 8);
static_assert(offsetof(reader_slot, label) == cache_line_size + 16);
static_assert(offsetof(reader_slot, last_lap_time_ns) == cache_line_size + 32);

inline constexpr std::uint64_t page_size = 4096;

constexpr std::uint64_t reader_area_size_for(std::uint32_t slot_count) noexcept {
  const std::uint64_t bytes =
      sizeof(reader_area_header) + std::uint64_t{slot_count} * sizeof(reader_slot);
  return (bytes + page_size - 1) & ~(page_size - 1);
}

constexpr std::uint64_t segment_size_for(std::uint64_t capacity,
                                         std::uint32_t slot_count) noexcept {
  return header_size + capacity + reader_area_size_for(slot_count);
}

// Byte-range locks on the segment's file (fcntl open-file-description locks): byte 0 is held
// by the live writer, byte 1 + i by the reader holding slot i. The kernel drops them when the
// holder exits, however it exits.
inline constexpr std::uint64_t writer_lock_byte = 0;
constexpr std::uint64_t reader_lock_byte(std::uint32_t slot) noexcept {
  return 1 + std::uint64_t{slot};
}

}  // namespace shmlog
