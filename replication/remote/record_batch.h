// How a shipper packs the records of a log into one engine entry, and how a mirror unpacks
// them. Private to the library. Every record is
//
//   +--------------+------------+----------+---------------------+
//   | offset u64   | length u32 | type u16 | payload (length B)  |
//   +--------------+------------+----------+---------------------+
//
// little-endian, one after another. The offsets are the source's: the mirror appends each
// record at exactly that offset (writer::append_at), so that padding is reproduced and a
// divergence is caught. The bytes come from another host through the engine: unpacking checks
// every length against what is left and against the log's largest payload, and the offsets
// against each other, before anything is appended.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/framing.h"
#include "shmlog/record.h"

namespace shmlog::remote {

inline constexpr std::size_t packed_record_header = 8 + 4 + 2;

// Appends one record to `out`.
void pack_record(std::string& out, std::uint64_t offset, record_type type,
                 std::span<const std::byte> payload);

struct unpacked_record {
  std::uint64_t offset = 0;
  record_type type = default_record_type;
  std::string_view payload;  // into the entry's bytes
};

// The records of an entry that covers [first_offset, end_offset) of the log, or nullopt with
// `*why` saying what is wrong: a truncated record, a length above `max_payload`, an offset that
// is not 8-aligned, not increasing by at least the previous record's frame, or outside the
// entry's range. An entry covers the log from where the previous entry ended, so its first
// record may start after first_offset, by the padding the source put before it (a mirror's
// append_at checks that it is exactly that); the last record ends at end_offset.
std::optional<std::vector<unpacked_record>> unpack_records(std::string_view bytes,
                                                           std::uint64_t first_offset,
                                                           std::uint64_t end_offset,
                                                           std::uint64_t max_payload,
                                                           std::string* why);

}  // namespace shmlog::remote
