#include "mapping.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "os.h"
#include "shmlog/crc32c.h"
#include "shmlog/error.h"

namespace shmlog::detail {
namespace bip = boost::interprocess;

namespace {

// Built by appending: GCC 12 at -O3 warns falsely (-Wrestrict, GCC PR 105329) about
// "'" + std::string(...) + "'".
std::string quoted(std::string_view name) {
  std::string s;
  s.reserve(name.size() + 2);
  s.append(1, '\'').append(name).append(1, '\'');
  return s;
}

[[noreturn]] void throw_open_error(std::string_view name, const char* what, int err) {
  const std::string log = "log " + quoted(name);
  switch (err) {
    case ENOENT:
      throw error(errc::not_found, log + " does not exist (no /dev/shm/" + std::string(name) + ")");
    case EEXIST:
      throw error(errc::already_exists, log + " already exists");
    case EACCES:
    case EPERM:
      throw error(errc::permission_denied,
                  log + ": permission denied to " + what + " /dev/shm/" + std::string(name));
    default:
      throw error(errc::system_error, log + ": " + errno_message(what, err));
  }
}

std::uint32_t descriptor_crc(const segment_descriptor& d) {
  // Everything after the magic and before the checksum itself (bytes 8 .. 59).
  const auto* base = reinterpret_cast<const std::byte*>(&d);
  return crc32c(base + sizeof(std::uint64_t),
                offsetof(segment_descriptor, descriptor_crc) - sizeof(std::uint64_t));
}

bool is_power_of_two(std::uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

// Checks every descriptor field against the rules the creator follows, naming the first one
// that is wrong. The magic and version were checked before.
geometry validate_descriptor(std::string_view name, const segment_descriptor& d) {
  const std::string log = "log " + quoted(name) + ": corrupt header: ";
  auto bad = [&](const std::string& what) { throw error(errc::corrupt_header, log + what); };
  if (d.header_size != header_size)
    bad("header_size is " + std::to_string(d.header_size) + ", expected " +
        std::to_string(header_size));
  if (!is_power_of_two(d.capacity) || d.capacity < min_capacity || d.capacity > max_capacity)
    bad("capacity " + std::to_string(d.capacity) + " is not a power of two in [4096, 2^40]");
  if (d.reader_slot_count == 0 || d.reader_slot_count > max_reader_slots)
    bad("reader_slot_count " + std::to_string(d.reader_slot_count) + " is not in [1, " +
        std::to_string(max_reader_slots) + "]");
  if (d.reader_area_offset != header_size + d.capacity)
    bad("reader_area_offset " + std::to_string(d.reader_area_offset) +
        " != header_size + capacity");
  if (d.reader_area_size != reader_area_size_for(d.reader_slot_count))
    bad("reader_area_size " + std::to_string(d.reader_area_size) + " does not fit " +
        std::to_string(d.reader_slot_count) + " slots");
  if (d.intent_chunk != intent_chunk_for(d.capacity))
    bad("intent_chunk " + std::to_string(d.intent_chunk) + " != capacity / 16");
  if (d.max_payload != max_payload_for(d.capacity))
    bad("max_payload " + std::to_string(d.max_payload) + " != capacity / 4 - 8");
  if (d.writer_fence != static_cast<std::uint32_t>(fence_mode::seq_cst) &&
      d.writer_fence != static_cast<std::uint32_t>(fence_mode::membarrier))
    bad("writer_fence " + std::to_string(d.writer_fence) + " is not a known fence mode");
  if (d.descriptor_crc != descriptor_crc(d)) bad("descriptor checksum mismatch");
  geometry g;
  g.capacity = d.capacity;
  g.mask = d.capacity - 1;
  g.intent_chunk = d.intent_chunk;
  g.max_payload = d.max_payload;
  g.reader_area_offset = d.reader_area_offset;
  g.reader_area_size = d.reader_area_size;
  g.slot_count = d.reader_slot_count;
  g.total_size = segment_size_for(d.capacity, d.reader_slot_count);
  return g;
}

}  // namespace

segment_file segment_file::open(std::string_view name, bool writable) {
  validate_name(name);
  try {
    bip::shared_memory_object object(bip::open_only, std::string(name).c_str(),
                                     writable ? bip::read_write : bip::read_only);
    return segment_file(std::string(name), std::move(object), writable);
  } catch (const bip::interprocess_exception& e) {
    throw_open_error(name, writable ? "open read-write" : "open", e.get_native_error());
  }
}

segment_file segment_file::create(std::string_view name, mode_t mode) {
  validate_name(name);
  try {
    bip::permissions perms(static_cast<unsigned>(mode));
    bip::shared_memory_object object(bip::create_only, std::string(name).c_str(), bip::read_write,
                                     perms);
    segment_file file(std::string(name), std::move(object), true);
    // Fresh object, nobody else can hold a lock on it yet.
    try_lock_byte(file.fd(), writer_lock_byte);
    return file;
  } catch (const bip::interprocess_exception& e) {
    throw_open_error(name, "create", e.get_native_error());
  }
}

int segment_file::fd() const noexcept {
  return object_.get_mapping_handle().handle;
}

std::uint64_t segment_file::size() const {
  bip::offset_t size = 0;
  if (!object_.get_size(size))
    throw error(errc::system_error, "log " + quoted(name_) + ": " + errno_message("fstat", errno));
  return static_cast<std::uint64_t>(size);
}

mode_t segment_file::mode() const {
  struct stat st {};
  if (::fstat(fd(), &st) != 0)
    throw error(errc::system_error, "log " + quoted(name_) + ": " + errno_message("fstat", errno));
  return st.st_mode & 07777;
}

bool segment_file::same_object(const segment_file& other) const {
  struct stat mine {};
  struct stat theirs {};
  if (::fstat(fd(), &mine) != 0 || ::fstat(other.fd(), &theirs) != 0)
    throw error(errc::system_error, "log " + quoted(name_) + ": " + errno_message("fstat", errno));
  return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

std::shared_ptr<mapping> mapping::map(segment_file& file, map_access access) {
  const std::string& name = file.name();
  const std::string log = "log " + quoted(name);

  // A creator holds the writer lock from before it sizes the object until after it stores the
  // magic. Seeing no magic while that lock is held means creation is in progress: wait for it
  // (it takes microseconds); seeing no magic without the lock means the creator died.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::uint64_t size = 0;
  bip::mapped_region head;
  const segment_descriptor* d = nullptr;
  for (;;) {
    size = file.size();
    if (size >= sizeof(segment_descriptor)) {
      head = bip::mapped_region(file.object(), bip::read_only, 0, sizeof(segment_descriptor));
      d = static_cast<const segment_descriptor*>(head.get_address());
      // acquire pairs with the creator's release store of the magic: the descriptor is then
      // complete and never changes again.
      const std::uint64_t magic = d->magic.load(std::memory_order_acquire);
      if (magic != 0) {
        if (magic != segment_magic) {
          char hex[32];
          std::snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(magic));
          throw error(errc::bad_magic, log + " is not a shmlog segment (magic " + hex + ")");
        }
        break;
      }
    } else if (size != 0) {
      throw error(errc::truncated, log + " is truncated: " + std::to_string(size) +
                                       " bytes, smaller than its descriptor");
    }
    if (!is_byte_locked(file.fd(), writer_lock_byte) || std::chrono::steady_clock::now() > give_up)
      throw error(errc::not_initialized,
                  log +
                      " was never fully created (no magic number; its creator died or is stuck)."
                      " Destroy it and create it again");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  if (d->layout_version != layout_version)
    throw error(errc::unsupported_version,
                log + " has layout version " + std::to_string(d->layout_version) +
                    "; this build of shmlog reads version " + std::to_string(layout_version));
  const geometry geo = validate_descriptor(name, *d);
  if (size < geo.total_size)
    throw error(errc::truncated, log + " is truncated: " + std::to_string(size) +
                                     " bytes, but its header describes " +
                                     std::to_string(geo.total_size));

  auto m = std::shared_ptr<mapping>(new mapping());
  m->name_ = name;
  m->access_ = access;
  m->geo_ = geo;
  const bool front_writable = access == map_access::writer;
  const bool readers_writable = access != map_access::inspector;
  if ((front_writable || readers_writable) && !file.writable())
    throw error(errc::permission_denied, log + ": opened read-only, cannot map it for writing");
  try {
    m->front_ = bip::mapped_region(file.object(), front_writable ? bip::read_write : bip::read_only,
                                   0, header_size + geo.capacity);
    m->readers_ =
        bip::mapped_region(file.object(), readers_writable ? bip::read_write : bip::read_only,
                           geo.reader_area_offset, geo.reader_area_size);
  } catch (const bip::interprocess_exception& e) {
    throw_open_error(name, "mmap", e.get_native_error());
  }
  auto* front = static_cast<std::byte*>(m->front_.get_address());
  m->header_ = reinterpret_cast<segment_header*>(front);
  m->ring_ = front + header_size;
  auto* readers = static_cast<std::byte*>(m->readers_.get_address());
  m->reader_area_ = reinterpret_cast<reader_area_header*>(readers);
  m->slots_ = reinterpret_cast<reader_slot*>(readers + sizeof(reader_area_header));
  return m;
}

void initialise_segment(std::byte* base, const create_options& options) {
  auto* h = reinterpret_cast<segment_header*>(base);
  segment_descriptor& d = h->descriptor;
  d.layout_version = layout_version;
  d.header_size = header_size;
  d.capacity = options.capacity;
  d.reader_area_offset = header_size + options.capacity;
  d.reader_area_size = static_cast<std::uint32_t>(reader_area_size_for(options.reader_slots));
  d.reader_slot_count = options.reader_slots;
  d.intent_chunk = static_cast<std::uint32_t>(intent_chunk_for(options.capacity));
  d.max_payload = static_cast<std::uint32_t>(max_payload_for(options.capacity));
  d.creation_time_ns = realtime_ns();
  d.writer_fence = static_cast<std::uint32_t>(options.writer_fence);
  d.descriptor_crc = descriptor_crc(d);

  const history_id id = history_id::random();
  const history_id none;
  for (std::size_t w = 0; w < history_id_size / 8; ++w) {
    std::uint64_t a = 0, b = 0;
    std::memcpy(&a, id.view().data() + 8 * w, 8);
    std::memcpy(&b, none.view().data() + 8 * w, 8);
    h->history.replid[w].store(a, std::memory_order_relaxed);
    h->history.replid2[w].store(b, std::memory_order_relaxed);
  }
  h->history.second_repl_offset.store(no_offset, std::memory_order_relaxed);
  h->checkpoints[0].store(0, std::memory_order_relaxed);  // the first record starts at 0
  // Everything above becomes visible to any process that sees the magic.
  d.magic.store(segment_magic, std::memory_order_release);  // pairs with mapping::map's acquire
}

backlog_window read_window(std::string_view name, const segment_header& h, const geometry& geo) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    // acquire pairs with the writer's release store of write_intent, which follows the
    // publication of every checkpoint at or before intent - capacity.
    const std::uint64_t intent = h.write_intent.load(std::memory_order_acquire);
    const std::uint64_t master = h.master_offset.load(std::memory_order_acquire);
    if (intent <= geo.capacity) return {0, master};        // nothing overwritten yet
    const std::uint64_t boundary = intent - geo.capacity;  // a multiple of intent_chunk
    const std::uint64_t first =
        h.checkpoints[(boundary / geo.intent_chunk) % checkpoint_count].load(
            std::memory_order_acquire);
    // If the intent moved, the entry may already describe a later lap: look again.
    if (h.write_intent.load(std::memory_order_acquire) != intent) continue;
    if (first < boundary) break;  // cannot happen with a sound writer
    // After a history branch took the master offset back by more than the ring holds, the
    // oldest intact record is of the old history, beyond the new master: nothing is held.
    if (first > master) return {master, master};
    return {first, master};
  }
  throw error(errc::corrupt_header, "log " + quoted(name) +
                                        ": corrupt header: checkpoint table is inconsistent with"
                                        " write_intent");
}

history_state read_history(std::string_view name, const segment_header& h) {
  history_state s;
  for (;;) {
    const std::uint32_t before =
        h.history.seq.load(std::memory_order_acquire);  // pairs with the writer's release
    if (before & 1) {
      std::this_thread::yield();
      continue;
    }
    char id[history_id_size];
    char id2[history_id_size];
    for (std::size_t w = 0; w < history_id_size / 8; ++w) {
      const std::uint64_t a = h.history.replid[w].load(std::memory_order_relaxed);
      const std::uint64_t b = h.history.replid2[w].load(std::memory_order_relaxed);
      std::memcpy(id + 8 * w, &a, 8);
      std::memcpy(id2 + 8 * w, &b, 8);
    }
    const std::uint64_t second = h.history.second_repl_offset.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);  // the loads above before the re-check
    if (h.history.seq.load(std::memory_order_relaxed) != before) continue;
    auto parsed = history_id::parse({id, history_id_size});
    auto parsed2 = history_id::parse({id2, history_id_size});
    if (!parsed || !parsed2)
      throw error(
          errc::corrupt_header,
          "log " + quoted(name) + ": corrupt header: a history id is not 40 hex characters");
    s.replid = *parsed;
    s.replid2 = *parsed2;
    s.second_repl_offset = second;
    return s;
  }
}

snapshot_announcement read_snapshot_announcement(const segment_header& h) {
  const snapshot_block& b = h.snapshot;
  for (;;) {
    const std::uint32_t before = b.seq.load(std::memory_order_acquire);  // pairs with the writer
    if (before & 1) {
      std::this_thread::yield();
      continue;
    }
    snapshot_announcement a;
    a.generation = b.generation.load(std::memory_order_relaxed);
    a.offset = b.offset.load(std::memory_order_relaxed);
    a.requests_served = b.requests_served.load(std::memory_order_relaxed);
    a.created_ns = b.created_ns.load(std::memory_order_relaxed);
    a.save_ns = b.save_ns.load(std::memory_order_relaxed);
    a.bytes = b.bytes.load(std::memory_order_relaxed);
    char id[history_id_size];
    for (std::size_t w = 0; w < history_id_size / 8; ++w) {
      const std::uint64_t v = b.replid[w].load(std::memory_order_relaxed);
      std::memcpy(id + 8 * w, &v, 8);
    }
    char path[snapshot_path_size];
    for (std::size_t w = 0; w < snapshot_path_size / 8; ++w) {
      const std::uint64_t v = b.path[w].load(std::memory_order_relaxed);
      std::memcpy(path + 8 * w, &v, 8);
    }
    std::atomic_thread_fence(std::memory_order_acquire);  // the loads above before the re-check
    if (b.seq.load(std::memory_order_relaxed) != before) continue;
    if (a.generation == 0) return a;
    const auto replid = history_id::parse({id, history_id_size});
    if (replid) a.replid = *replid;
    a.path.assign(path, strnlen(path, snapshot_path_size));
    return a;
  }
}

void write_snapshot_announcement(segment_header& h, const snapshot_announcement& a) {
  snapshot_block& b = h.snapshot;
  const std::uint32_t seq = b.seq.load(std::memory_order_relaxed);
  b.seq.store(seq + 1, std::memory_order_relaxed);      // odd: readers retry
  std::atomic_thread_fence(std::memory_order_release);  // odd before the fields
  b.generation.store(a.generation, std::memory_order_relaxed);
  b.offset.store(a.offset, std::memory_order_relaxed);
  b.requests_served.store(a.requests_served, std::memory_order_relaxed);
  b.created_ns.store(a.created_ns, std::memory_order_relaxed);
  b.save_ns.store(a.save_ns, std::memory_order_relaxed);
  b.bytes.store(a.bytes, std::memory_order_relaxed);
  for (std::size_t w = 0; w < history_id_size / 8; ++w) {
    std::uint64_t v = 0;
    std::memcpy(&v, a.replid.view().data() + 8 * w, 8);
    b.replid[w].store(v, std::memory_order_relaxed);
  }
  char path[snapshot_path_size] = {};
  std::memcpy(path, a.path.data(), std::min(a.path.size(), snapshot_path_size - 1));
  for (std::size_t w = 0; w < snapshot_path_size / 8; ++w) {
    std::uint64_t v = 0;
    std::memcpy(&v, path + 8 * w, 8);
    b.path[w].store(v, std::memory_order_relaxed);
  }
  b.seq.store(seq + 2, std::memory_order_release);  // pairs with read_snapshot_announcement
}

}  // namespace shmlog::detail
