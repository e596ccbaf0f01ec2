// Opening, creating, validating and mapping a segment through Boost.Interprocess. Private to the
// library: the public headers never expose Boost types.
#pragma once

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "shmlog/layout.h"
#include "shmlog/segment.h"

namespace shmlog::detail {

// One open file description of /dev/shm/<name>. Its descriptor is also what the OFD byte locks
// (writer role, reader slots) hang on, so whoever holds a role keeps its segment_file open.
class segment_file {
 public:
  static segment_file open(std::string_view name, bool writable);
  // Creates the object with exactly `mode` and size 0; takes the writer lock at once so that
  // openers can tell "being created" from "creator died half-way".
  static segment_file create(std::string_view name, mode_t mode);

  int fd() const noexcept;
  std::uint64_t size() const;
  mode_t mode() const;
  // Whether both are open descriptions of one object (the name may have been unlinked and
  // created again between two opens).
  bool same_object(const segment_file& other) const;
  const std::string& name() const noexcept { return name_; }
  bool writable() const noexcept { return writable_; }
  boost::interprocess::shared_memory_object& object() noexcept { return object_; }

 private:
  segment_file(std::string name, boost::interprocess::shared_memory_object object, bool writable)
      : name_(std::move(name)), object_(std::move(object)), writable_(writable) {}
  std::string name_;
  boost::interprocess::shared_memory_object object_;
  bool writable_ = false;
};

// The validated geometry of a segment, from its descriptor.
struct geometry {
  std::uint64_t capacity = 0;
  std::uint64_t mask = 0;
  std::uint64_t intent_chunk = 0;
  std::uint64_t max_payload = 0;
  std::uint64_t reader_area_offset = 0;
  std::uint64_t reader_area_size = 0;
  std::uint32_t slot_count = 0;
  std::uint64_t total_size = 0;
};

enum class map_access {
  writer,     // header and ring read-write, reader area read-write
  reader,     // header and ring read-only, reader area read-write
  inspector,  // everything read-only
};

// A mapped, validated segment. Shared (shared_ptr) by a writer and any in-process readers.
class mapping {
 public:
  // Validates the header (magic, version, geometry, checksum, size) and maps the segment.
  // Throws shmlog::error naming the log and the first thing found wrong.
  static std::shared_ptr<mapping> map(segment_file& file, map_access access);

  const std::string& name() const noexcept { return name_; }
  map_access access() const noexcept { return access_; }
  const geometry& geo() const noexcept { return geo_; }

  const segment_header& header() const noexcept { return *header_; }
  // Writer only: the header and ring through a writable view.
  segment_header& writable_header() const noexcept { return *header_; }
  std::byte* ring() const noexcept { return ring_; }
  // Writer and readers (not inspectors).
  reader_area_header& reader_area() const noexcept { return *reader_area_; }
  reader_slot& slot(std::uint32_t i) const noexcept { return slots_[i]; }

 private:
  mapping() = default;
  std::string name_;
  map_access access_ = map_access::inspector;
  geometry geo_;
  boost::interprocess::mapped_region front_;    // [0, header_size + capacity)
  boost::interprocess::mapped_region readers_;  // [reader_area_offset, +reader_area_size)
  segment_header* header_ = nullptr;
  std::byte* ring_ = nullptr;
  reader_area_header* reader_area_ = nullptr;
  reader_slot* slots_ = nullptr;
};

// Fills a fresh, zero-filled, correctly sized segment (creator only, before anyone can open it
// successfully): descriptor, a new random history id, checkpoint 0; stores the magic last.
void initialise_segment(std::byte* base, const create_options& options);

// The held window [first_byte_offset, master_offset] as of a moment during the call; any
// process, may be stale by the time it returns. See docs/design.md, "checkpoints".
backlog_window read_window(std::string_view name, const segment_header& header,
                           const geometry& geo);

// Copies the history block under its seqlock.
history_state read_history(std::string_view name, const segment_header& header);

// The newest snapshot the producer published (snapshot_block), copied under its seqlock.
struct snapshot_announcement {
  std::uint64_t generation = 0;  // 0: none published yet
  std::uint64_t offset = 0;
  std::uint64_t requests_served = 0;
  std::uint64_t created_ns = 0;
  std::uint64_t save_ns = 0;
  std::uint64_t bytes = 0;
  history_id replid;
  std::string path;
};
snapshot_announcement read_snapshot_announcement(const segment_header& header);
// Producer only (it holds the writer lock).
void write_snapshot_announcement(segment_header& header, const snapshot_announcement& a);

}  // namespace shmlog::detail
