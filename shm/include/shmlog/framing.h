// Record framing and the limits every log obeys: what a user of the public API may need to know
// about records and sizes (the largest payload, the capacity range, record types). The
// byte-level segment format built on it is private to the library (shm/segment_layout.h) and
// drawn in docs/layout.md.
//
// Offsets. Every position in the log is a 64-bit byte offset counted from the first byte ever
// appended (zero-based). The master offset is the number of bytes appended so far, i.e. the
// offset one past the last published byte and the offset the next record will start at. The
// byte at offset X lives in ring byte (X & (capacity - 1)).
//
// Records. Every record starts at an offset that is a multiple of 8 with an 8-byte header:
//
//   +------------+---------+--------+----------------------+---------+
//   | length u32 | type u16| tag u16| payload (length B)   | pad 0-7 |
//   +------------+---------+--------+----------------------+---------+
//
// length counts payload bytes only; the record occupies record_header_size + align8(length)
// bytes. tag is the low 16 bits of (offset >> 3) of the record itself: a header read at the
// wrong offset, or left over from an earlier lap, fails the tag check. A record never wraps
// around the ring's end: when it would, the writer first fills the rest of the ring with one
// padding record (type 0), so the record starts again at ring byte 0.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shmlog {

// ---------------------------------------------------------------------------------------------
// Record framing

using record_type = std::uint16_t;

inline constexpr record_type padding_record_type = 0;  // fills the ring's end; never delivered
inline constexpr record_type default_record_type = 1;  // what append() uses unless told
inline constexpr record_type max_user_record_type = 0xFEFF;  // 0xFF00-0xFFFF: reserved

inline constexpr std::size_t record_length_size = 4;
inline constexpr std::size_t record_type_size = 2;
inline constexpr std::size_t record_tag_size = 2;
inline constexpr std::size_t record_header_size =
    record_length_size + record_type_size + record_tag_size;
inline constexpr std::size_t record_alignment = 8;

static_assert(record_header_size == 8, "the header is read and written as one 64-bit word");

constexpr std::uint64_t align_record(std::uint64_t n) noexcept {
  return (n + (record_alignment - 1)) & ~std::uint64_t{record_alignment - 1};
}

// Bytes a record with `payload` bytes occupies in the ring.
constexpr std::uint64_t record_frame_size(std::uint64_t payload) noexcept {
  return record_header_size + align_record(payload);
}

constexpr std::uint16_t record_tag(std::uint64_t offset) noexcept {
  return static_cast<std::uint16_t>(offset >> 3);
}

// The header as one little-endian 64-bit word: length in bits 0-31, type 32-47, tag 48-63.
// Writer and reader move it with single 64-bit atomic accesses, so a header is never torn.
constexpr std::uint64_t pack_record_header(std::uint32_t length, record_type type,
                                           std::uint64_t offset) noexcept {
  return std::uint64_t{length} | (std::uint64_t{type} << 32) |
         (std::uint64_t{record_tag(offset)} << 48);
}
constexpr std::uint32_t header_length(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word);
}
constexpr record_type header_type(std::uint64_t word) noexcept {
  return static_cast<record_type>(word >> 32);
}
constexpr std::uint16_t header_tag(std::uint64_t word) noexcept {
  return static_cast<std::uint16_t>(word >> 48);
}

// ---------------------------------------------------------------------------------------------
// Sizing rules, all derived from the capacity chosen at creation.

inline constexpr std::uint64_t min_capacity = 4096;                    // one page
inline constexpr std::uint64_t max_capacity = std::uint64_t{1} << 40;  // 1 TiB
inline constexpr std::uint32_t default_reader_slots = 64;
inline constexpr std::uint32_t max_reader_slots = 4096;

// The writer announces the bytes it is about to write in chunks of capacity / 16 (see
// docs/design.md, "write intent"), so readers lose at most one chunk of history to it.
inline constexpr std::uint64_t intent_chunks_per_ring = 16;

constexpr std::uint64_t intent_chunk_for(std::uint64_t capacity) noexcept {
  return capacity / intent_chunks_per_ring;
}
// The length field of a record header is 32 bits, so no payload exceeds this (8-aligned, so
// that a frame of the largest payload is exactly 4 GiB and a padding length always fits too).
inline constexpr std::uint64_t max_record_payload = 0xFFFF'FFF8;
// A record's frame may take at most a quarter of the ring, so a reader always has at least
// three records' worth of ring to read one before the writer can come round to it; on rings
// above 16 GiB the 32-bit length field is the tighter limit.
constexpr std::uint64_t max_payload_for(std::uint64_t capacity) noexcept {
  const std::uint64_t quarter = capacity / 4 - record_header_size;
  return quarter < max_record_payload ? quarter : max_record_payload;
}
// The largest frame a sound writer writes, padding included: a record needs padding only when
// its frame does not fit before the ring's end, so padding is always shorter than this.
constexpr std::uint64_t max_frame_for(std::uint64_t capacity) noexcept {
  return record_frame_size(max_payload_for(capacity));
}

// Offsets stay below 2^63 (about 29 years at 10 GB/s), so that offset + capacity and every
// other sum of an offset and a ring length fits in 64 bits. A writer refuses to take over a log
// whose offsets are beyond it.
inline constexpr std::uint64_t max_log_offset = std::uint64_t{1} << 63;

// ---------------------------------------------------------------------------------------------
// Values shared with the segment format

inline constexpr std::size_t history_id_size = 40;  // hex characters, like a Redis replid

inline constexpr std::uint64_t no_offset = ~std::uint64_t{0};

// How a writer orders its publication against the check for sleeping readers (docs/design.md,
// "No lost wake-up"). Chosen when the log is created; every writer of the log uses it.
enum class fence_mode : std::uint32_t {
  none = 0,        // (writer block only) no writer has opened the log yet
  membarrier = 1,  // writer: compiler fence only; a reader going to sleep issues membarrier()
  seq_cst = 2,     // writer: std::atomic_thread_fence(seq_cst) after every publish (default)
};

inline constexpr std::size_t snapshot_path_size = 256;

enum class reader_state : std::uint32_t {
  free = 0,
  reading = 1,  // polling or processing records
  spinning = 2,
  yielding = 3,
  sleeping = 4,  // in futex_wait
};

}  // namespace shmlog
