// Opening, creating, validating and mapping a segment through Boost.Interprocess. Private to the
// library: the public headers never expose Boost types.
#pragma once

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ring.h"
#include "segment_layout.h"
#include "shmlog/segment.h"
#include "shmlog/snapshot.h"

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
  std::pair<uid_t, gid_t> owner() const;
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

// A segment_file whose descriptor carries a role: the writer lock or a reader slot's lock. It
// is never mapped (a mapping holds a reference to the open file description, and the lock
// would outlive the role in any process that still had the mapping), and it is registered so
// that a fork()ed child drops its copy (os.h, register_role_fd). The owner keeps it for as
// long as it holds the role; neither copyable nor movable, so the number stays registered.
class role_file {
 public:
  explicit role_file(segment_file file);
  ~role_file();
  role_file(const role_file&) = delete;
  role_file& operator=(const role_file&) = delete;

  int fd() const noexcept { return file_.fd(); }
  segment_file& file() noexcept { return file_; }

 private:
  segment_file file_;
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
  // Throws shmlog::error naming the log and the first thing found wrong. With
  // map_access::writer the caller holds the writer lock.
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

  // Whether any process holds the writer lock right now (a system call). Any process.
  bool writer_alive() const;
  // Whether any process holds reader slot i's lock right now (a system call). Any process.
  bool reader_alive(std::uint32_t i) const;

  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
  ~mapping();

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
  // A descriptor of the object, only to ask who holds its locks (F_OFD_GETLK), which any
  // descriptor of the file can answer. Holds no lock itself.
  int probe_fd_ = -1;
};

}  // namespace shmlog::detail

// What a mapped_log (the public handle) holds.
struct shmlog::mapped_log::impl {
  std::shared_ptr<detail::mapping> map;
};

namespace shmlog::detail {

// Creates, sizes and initialises a new segment (validating name and options first) and returns
// the description that holds the writer lock, taken before the object had a size: closing it
// releases the lock, or writer::create keeps it as its writer lock. Nothing is left behind if
// this throws.
segment_file create_segment(std::string_view name, const create_options& options);
// Removes the name if it still refers to `created` (a failed writer::create); never throws.
void remove_if_same(const segment_file& created) noexcept;

// Fills a fresh, zero-filled, correctly sized segment (creator only, before anyone can open it
// successfully): descriptor, a new random history id, checkpoint 0; stores the magic last.
void initialise_segment(std::byte* base, const create_options& options);

// The held window [first_byte_offset, master_offset] as of a moment during the call; any
// process, may be stale by the time it returns. Validates what it reads (offsets aligned and
// consistent with the write intent, the checkpoint inside its chunk) and throws corrupt_header
// naming the field otherwise. See docs/design.md, "Checkpoints".
backlog_window read_window(const mapping& m);

// How long a reader waits for a live writer that holds a header seqlock odd before it gives up
// with interrupted_update. A live writer holds it for microseconds.
inline constexpr std::chrono::seconds seqlock_patience{1};

// Copies the history block under its seqlock. Throws interrupted_update if a dead writer left
// it half-written (or a live one holds it longer than seqlock_patience), corrupt_header if an
// id is not 40 hex characters. Any process.
history_state read_history(const mapping& m);

// The history, the history epoch and the master offset of one moment: read together under the
// history seqlock, inside which a starting writer changes all three (docs/design.md, "History
// across restarts"). Where a reader synchronises. Any process.
struct sync_point {
  std::uint64_t epoch = 0;
  history_state history;
  std::uint64_t master_offset = 0;
};
sync_point read_sync_point(const mapping& m);

// The newest snapshot the producer published (snapshot_block), copied under its seqlock
// (generation 0: none yet). Any process. Throws interrupted_update as read_history does.
snapshot_meta read_snapshot_announcement(const mapping& m);
// Producer only (it holds the writer lock).
void write_snapshot_announcement(segment_header& header, const snapshot_meta& a);

// Takeover only (the caller holds the writer lock, so nobody else is mid-update). Whether a
// block was left odd by a process that died while changing it.
bool history_left_odd(const segment_header& header) noexcept;
bool snapshot_announcement_left_odd(const segment_header& header) noexcept;
// Repairs a snapshot block left odd: whatever it announced is withdrawn (no reader loads a
// file from a half-written announcement); the generation and the requests answered are kept,
// each word being either its old or its new value, so neither goes back.
void repair_snapshot_announcement(segment_header& header) noexcept;

// A reader slot's position: which history it reads (the history epoch it synchronised at),
// and the records it holds, [holds_from, offset). Written by the slot's reader under the
// slot's move_seq when it moves; between moves only offset changes, forwards.
struct slot_position {
  std::uint64_t epoch = no_offset;
  std::uint64_t holds_from = 0;
  std::uint64_t offset = 0;
};
// Any process; one attempt, never waits: nullopt while the reader is moving (or died moving).
std::optional<slot_position> read_slot_position(const reader_slot& s) noexcept;
// The slot's reader only.
void write_slot_position(reader_slot& s, const slot_position& p);

// The value of a history id as the 8-byte words of a header block, and back.
void store_history_id(std::atomic<std::uint64_t>* words, const history_id& id) noexcept;
std::optional<history_id> load_history_id(const std::atomic<std::uint64_t>* words) noexcept;

}  // namespace shmlog::detail
