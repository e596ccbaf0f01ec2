#include "record_batch.h"

#include <cstring>

namespace shmlog::remote {
namespace {

template <class T>
void put(std::string& out, T value) {
  char bytes[sizeof value];
  std::memcpy(bytes, &value, sizeof value);  // little-endian: shmlog runs on one kind of host
  out.append(bytes, sizeof value);
}

template <class T>
T get(std::string_view bytes, std::size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof value);
  return value;
}

}  // namespace

void pack_record(std::string& out, std::uint64_t offset, record_type type,
                 std::span<const std::byte> payload) {
  put<std::uint64_t>(out, offset);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(payload.size()));
  put<std::uint16_t>(out, type);
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
}

std::optional<std::vector<unpacked_record>> unpack_records(std::string_view bytes,
                                                           std::uint64_t first_offset,
                                                           std::uint64_t end_offset,
                                                           std::uint64_t max_payload,
                                                           std::string* why) {
  std::vector<unpacked_record> out;
  const auto fail = [&](const std::string& what) -> std::optional<std::vector<unpacked_record>> {
    if (why) *why = what;
    return std::nullopt;
  };
  std::size_t at = 0;
  std::uint64_t next = first_offset;  // the earliest the next record may start
  while (at < bytes.size()) {
    if (bytes.size() - at < packed_record_header)
      return fail("a record header is cut short at byte " + std::to_string(at));
    unpacked_record r;
    r.offset = get<std::uint64_t>(bytes, at);
    const auto length = get<std::uint32_t>(bytes, at + 8);
    r.type = get<std::uint16_t>(bytes, at + 12);
    at += packed_record_header;
    if (length > max_payload || length > bytes.size() - at)
      return fail("the record at offset " + std::to_string(r.offset) + " says " +
                  std::to_string(length) + " bytes, but " +
                  (length > max_payload
                       ? "the log's largest payload is " + std::to_string(max_payload)
                       : std::to_string(bytes.size() - at) + " are left"));
    if (r.offset % record_alignment != 0)
      return fail("record offset " + std::to_string(r.offset) + " is not a multiple of " +
                  std::to_string(record_alignment));
    if (r.offset < next)
      return fail("record offset " + std::to_string(r.offset) + " is out of order (expected at " +
                  "least " + std::to_string(next) + ")");
    if (r.type == padding_record_type)
      return fail("the record at offset " + std::to_string(r.offset) +
                  " is a padding record, which is never shipped");
    r.payload = bytes.substr(at, length);
    at += length;
    next = r.offset + record_frame_size(length);
    if (next > end_offset)
      return fail("the record at offset " + std::to_string(r.offset) + " ends at " +
                  std::to_string(next) + ", beyond the entry's end " + std::to_string(end_offset));
    out.push_back(r);
  }
  if (out.empty()) return fail("the entry holds no record");
  if (next != end_offset)
    return fail("the last record ends at " + std::to_string(next) + ", not at the entry's end " +
                std::to_string(end_offset));
  return out;
}

}  // namespace shmlog::remote
