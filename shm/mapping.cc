#include "mapping.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "fault.h"
#include "os.h"
#include "seqlock.h"
#include "shmlog/crc32c.h"
#include "shmlog/error.h"

namespace shmlog::detail {
namespace bip = boost::interprocess;

namespace {

// Built by appending: GCC 12 at -O3 warns falsely (-Wrestrict, GCC PR 105329) about
// "'" + std::string(...) + "'".
std::string quote_name(std::string_view name) {
  std::string s;
  s.reserve(name.size() + 2);
  s.append(1, '\'').append(name).append(1, '\'');
  return s;
}

[[noreturn]] void throw_open_error(std::string_view name, const char* what, int err) {
  const std::string log = "log " + quote_name(name);
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
  // Everything after the magic and before the checksum itself (bytes 8 .. 123).
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
  const std::string log = "log " + quote_name(name) + ": corrupt header: ";
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
    bad("max_payload " + std::to_string(d.max_payload) + " != " +
        std::to_string(max_payload_for(d.capacity)) + " (capacity / 4 - 8, at most 4 GiB - 8)");
  if (d.writer_fence != static_cast<std::uint32_t>(fence_mode::seq_cst) &&
      d.writer_fence != static_cast<std::uint32_t>(fence_mode::membarrier))
    bad("writer_fence " + std::to_string(d.writer_fence) + " is not a known fence mode");
  if (d.start_offset % record_alignment != 0 || d.start_offset >= max_log_offset - d.capacity)
    bad("start_offset " + std::to_string(d.start_offset) +
        " is not a multiple of 8 at least a ring below 2^63");
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
  g.start_offset = d.start_offset;
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
    throw error(errc::system_error,
                "log " + quote_name(name_) + ": " + errno_message("fstat", errno));
  return static_cast<std::uint64_t>(size);
}

mode_t segment_file::mode() const {
  struct stat st {};
  if (::fstat(fd(), &st) != 0)
    throw error(errc::system_error,
                "log " + quote_name(name_) + ": " + errno_message("fstat", errno));
  return st.st_mode & 07777;
}

std::pair<uid_t, gid_t> segment_file::owner() const {
  struct stat st {};
  if (::fstat(fd(), &st) != 0)
    throw error(errc::system_error,
                "log " + quote_name(name_) + ": " + errno_message("fstat", errno));
  return {st.st_uid, st.st_gid};
}

bool segment_file::same_object(const segment_file& other) const {
  struct stat mine {};
  struct stat theirs {};
  if (::fstat(fd(), &mine) != 0 || ::fstat(other.fd(), &theirs) != 0)
    throw error(errc::system_error,
                "log " + quote_name(name_) + ": " + errno_message("fstat", errno));
  return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

role_file::role_file(segment_file file) : file_(std::move(file)) {
  register_role_fd(file_.fd());
}

role_file::~role_file() {
  // Before file_ closes the number: afterwards it may belong to someone else's descriptor.
  unregister_role_fd(file_.fd());
}

mapping::~mapping() {
  if (probe_fd_ >= 0) ::close(probe_fd_);
}

bool mapping::writer_alive() const {
  return is_byte_locked(probe_fd_, writer_lock_byte);
}

bool mapping::reader_alive(std::uint32_t i) const {
  return is_byte_locked(probe_fd_, reader_lock_byte(i));
}

std::shared_ptr<mapping> mapping::map(segment_file& file, map_access access) {
  const std::string& name = file.name();
  const std::string log = "log " + quote_name(name);

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
    // A writer maps holding the writer lock (on another description, which is_byte_locked
    // counts as someone else): then no creator can be running, and there is nothing to wait for.
    const bool creator_may_run =
        access != map_access::writer && is_byte_locked(file.fd(), writer_lock_byte);
    if (!creator_may_run || std::chrono::steady_clock::now() > give_up)
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
  m->probe_fd_ = ::fcntl(file.fd(), F_DUPFD_CLOEXEC, 0);
  if (m->probe_fd_ < 0) throw_open_error(name, "duplicate the descriptor of", errno);
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
  d.intent_chunk = intent_chunk_for(options.capacity);
  d.max_payload = max_payload_for(options.capacity);
  d.creation_time_ns = realtime_ns();
  d.writer_fence = static_cast<std::uint32_t>(options.writer_fence);
  d.start_offset = options.start_offset;
  d.max_gating_wait_ns = static_cast<std::uint64_t>(options.max_gating_wait.count());
  d.descriptor_crc = descriptor_crc(d);

  // A log starts empty at start_offset (0, or a mirror's source offset), in a fresh history or
  // the one it was given (a mirror's source's).
  const history_state history = options.history.value_or(history_state{history_id::random()});
  store_history_id(h->history.replid, history.replid);
  store_history_id(h->history.replid2, history.replid2);
  h->history.second_repl_offset.store(
      history.replid2.is_none() ? no_offset : history.second_repl_offset,
      std::memory_order_relaxed);
  const std::uint64_t start = options.start_offset;
  const std::uint64_t chunk = intent_chunk_for(options.capacity);
  h->master_offset.store(start, std::memory_order_relaxed);
  // The intent covers nothing written yet: the first chunk boundary at or after the start.
  h->write_intent.store((start + chunk - 1) & ~(chunk - 1), std::memory_order_relaxed);
  // The first record starts at the start: the checkpoint of its chunk boundary, when it is one.
  h->checkpoints[(start / chunk) % checkpoint_count].store(start, std::memory_order_relaxed);
  // Everything above becomes visible to any process that sees the magic.
  d.magic.store(segment_magic, std::memory_order_release);  // pairs with mapping::map's acquire
}

namespace {

std::string hex64(std::uint64_t v) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(v));
  return hex;
}

[[noreturn]] void throw_corrupt_offsets(std::string_view name, const std::string& what) {
  throw error(errc::corrupt_header, "log " + quote_name(name) + ": corrupt header: " + what);
}

// The 40 bytes of a history id field as they stand, quoted, for an error message: bytes that
// are not printable ASCII as \xNN.
std::string history_id_text(const std::atomic<std::uint64_t>* words) {
  std::string out = "\"";
  for (std::size_t w = 0; w < history_id_size / 8; ++w) {
    const std::uint64_t v = words[w].load(std::memory_order_relaxed);
    for (std::size_t b = 0; b < 8; ++b) {
      const auto c = static_cast<unsigned char>(v >> (8 * b));
      if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
        out += static_cast<char>(c);
      } else {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", c);
        out += hex;
      }
    }
  }
  return out + "\"";
}

// The error for a header seqlock a reader could not read: the block, the writer's pid, and
// whether it died (then the next writer repairs the block) or is alive and stuck.
[[noreturn]] void throw_interrupted(const mapping& m, const char* block,
                                    const seqlock_read_result& r) {
  const std::uint32_t pid = m.header().writer.pid.load(std::memory_order_acquire);
  const std::string who = pid ? "writer pid " + std::to_string(pid) : std::string("a writer");
  const std::string log = "log " + quote_name(m.name()) + ": the " + block + " block";
  if (r.owner_dead)
    throw error(errc::interrupted_update,
                log + " was left half-written (seq " + std::to_string(r.seq) + ") by " + who +
                    ", which died while changing it; the next writer to open the log repairs it");
  if (r.seq & 1)
    throw error(errc::interrupted_update,
                log + " has been half-written (seq " + std::to_string(r.seq) + ") by live " + who +
                    " for more than " + std::to_string(seqlock_patience.count()) +
                    " s; is that process stopped?");
  throw error(errc::interrupted_update, log + " kept changing for more than " +
                                            std::to_string(seqlock_patience.count()) +
                                            " s while being read");
}

}  // namespace

void store_history_id(std::atomic<std::uint64_t>* words, const history_id& id) noexcept {
  for (std::size_t w = 0; w < history_id_size / 8; ++w) {
    std::uint64_t v = 0;
    std::memcpy(&v, id.view().data() + 8 * w, 8);
    words[w].store(v, std::memory_order_relaxed);
  }
}

std::optional<history_id> load_history_id(const std::atomic<std::uint64_t>* words) noexcept {
  char id[history_id_size];
  for (std::size_t w = 0; w < history_id_size / 8; ++w) {
    const std::uint64_t v = words[w].load(std::memory_order_relaxed);
    std::memcpy(id + 8 * w, &v, 8);
  }
  return history_id::parse({id, history_id_size});
}

backlog_window read_window(const mapping& m) {
  const segment_header& h = m.header();
  const geometry& geo = m.geo();
  const std::string_view name = m.name();
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::uint64_t intent = 0;
    std::uint64_t master = 0;
    std::uint64_t first = 0;
    std::uint64_t intent_again = 0;
    bool wrapped = false;
    std::uint64_t boundary = 0;
    // Inside the history seqlock: a history change that takes the master offset back, or a
    // mirror's reset that moves the intent, the checkpoint and the master offset together, is
    // seen whole or not at all.
    const seqlock_read_result r = read_seqlocked(
        h.history.seq,
        [&] {
          // acquire pairs with the writer's release store of write_intent, which follows the
          // publication of every checkpoint at or before intent - capacity.
          intent = h.write_intent.load(std::memory_order_acquire);
          master = h.master_offset.load(std::memory_order_acquire);
          // Wrapped: the ring no longer holds everything since the log's start, and the oldest
          // record is the first one at or after the boundary a ring below the intent.
          const std::optional<std::uint64_t> oldest = geo.oldest_boundary(intent);
          wrapped = oldest.has_value();
          boundary = oldest.value_or(geo.start_offset);
          first = wrapped ? h.checkpoints[(boundary / geo.intent_chunk) % checkpoint_count].load(
                                std::memory_order_acquire)
                          : geo.start_offset;
          intent_again = h.write_intent.load(std::memory_order_acquire);
        },
        [&] { return m.writer_alive(); }, seqlock_patience);
    if (!r.ok) throw_interrupted(m, "history", r);
    // If the intent moved, the entry may already describe a later lap, and the master offset
    // may be beyond the intent we loaded: look again.
    if (intent_again != intent) continue;
    // What a sound writer guarantees (docs/design.md, "What a reader checks"): a chunk-aligned
    // intent below 2^63, an 8-aligned master offset at most a ring behind it.
    if (intent % geo.intent_chunk != 0 || intent >= max_log_offset)
      throw_corrupt_offsets(name, "write_intent " + std::to_string(intent) +
                                      " is not a multiple of the intent chunk below 2^63");
    if (master % record_alignment != 0 || master > intent || intent - master > geo.capacity ||
        master < geo.start_offset)
      throw_corrupt_offsets(name, "master_offset " + std::to_string(master) +
                                      " is not an 8-aligned offset within a ring below "
                                      "write_intent " +
                                      std::to_string(intent));
    if (!wrapped) return {geo.start_offset, master};  // nothing overwritten yet
    if (first % record_alignment != 0 || first < boundary ||
        first - boundary > max_frame_for(geo.capacity))
      throw_corrupt_offsets(name, "checkpoint for chunk boundary " + std::to_string(boundary) +
                                      " is " + hex64(first) +
                                      ", not an 8-aligned offset within a record of it");
    // After a history branch took the master offset back by more than the ring holds, the
    // oldest intact record is of the old history, beyond the new master: nothing is held.
    if (first > master) return {master, master};
    return {first, master};
  }
  throw_corrupt_offsets(name, "write_intent kept moving while the window was read");
}

history_state read_history(const mapping& m) {
  return read_sync_point(m).history;
}

sync_point read_sync_point(const mapping& m) {
  const segment_header& h = m.header();
  std::uint64_t epoch = 0;
  std::uint64_t master = 0;
  std::uint64_t second = 0;
  std::optional<history_id> replid;
  std::optional<history_id> replid2;
  const seqlock_read_result r = read_seqlocked(
      h.history.seq,
      [&] {
        epoch = h.history_epoch.load(std::memory_order_relaxed);
        replid = load_history_id(h.history.replid);
        replid2 = load_history_id(h.history.replid2);
        second = h.history.second_repl_offset.load(std::memory_order_relaxed);
        master = h.master_offset.load(std::memory_order_relaxed);
      },
      [&] { return m.writer_alive(); }, seqlock_patience);
  if (!r.ok) throw_interrupted(m, "history", r);
  if (!replid || !replid2)
    throw error(errc::corrupt_header, "log " + quote_name(m.name()) + ": corrupt header: history " +
                                          (replid ? "replid2 " + history_id_text(h.history.replid2)
                                                  : "replid " + history_id_text(h.history.replid)) +
                                          " is not 40 hex characters");
  sync_point p;
  p.epoch = epoch;
  p.history.replid = *replid;
  p.history.replid2 = *replid2;
  p.history.second_repl_offset = second;
  p.master_offset = master;
  return p;
}

snapshot_meta read_snapshot_announcement(const mapping& m) {
  const snapshot_block& b = m.header().snapshot;
  snapshot_meta a;
  std::uint64_t file_bytes = 0;
  std::optional<history_id> replid;
  char path[snapshot_path_size];
  const seqlock_read_result r = read_seqlocked(
      b.seq,
      [&] {
        a.generation = b.generation.load(std::memory_order_relaxed);
        a.offset = b.offset.load(std::memory_order_relaxed);
        a.requests_served = b.requests_served.load(std::memory_order_relaxed);
        a.created_ns = b.created_ns.load(std::memory_order_relaxed);
        a.save_ns = b.save_ns.load(std::memory_order_relaxed);
        file_bytes = b.bytes.load(std::memory_order_relaxed);
        replid = load_history_id(b.replid);
        for (std::size_t w = 0; w < snapshot_path_size / 8; ++w) {
          const std::uint64_t v = b.path[w].load(std::memory_order_relaxed);
          std::memcpy(path + 8 * w, &v, 8);
        }
      },
      [&] { return m.writer_alive(); }, seqlock_patience);
  if (!r.ok) throw_interrupted(m, "snapshot", r);
  a.payload_bytes = file_bytes > snapshot_header_size ? file_bytes - snapshot_header_size : 0;
  if (a.generation == 0) return a;
  if (replid) a.replid = *replid;  // else none: matches no history, so nobody loads it
  a.path = std::string(path, strnlen(path, snapshot_path_size));
  return a;
}

void write_snapshot_announcement(segment_header& h, const snapshot_meta& a) {
  snapshot_block& b = h.snapshot;
  seqlock_write change(b.seq);
  b.generation.store(a.generation, std::memory_order_relaxed);
  b.offset.store(a.offset, std::memory_order_relaxed);
  b.requests_served.store(a.requests_served, std::memory_order_relaxed);
  fault_injected(fault_point::snapshot_announcement_half_done);
  b.created_ns.store(a.created_ns, std::memory_order_relaxed);
  b.save_ns.store(a.save_ns, std::memory_order_relaxed);
  b.bytes.store(a.file_bytes(), std::memory_order_relaxed);
  store_history_id(b.replid, a.replid);
  const std::string text = a.path.string();
  char path[snapshot_path_size] = {};
  std::memcpy(path, text.data(), std::min(text.size(), snapshot_path_size - 1));
  for (std::size_t w = 0; w < snapshot_path_size / 8; ++w) {
    std::uint64_t v = 0;
    std::memcpy(&v, path + 8 * w, 8);
    b.path[w].store(v, std::memory_order_relaxed);
  }
  change.finish();
}

std::optional<slot_position> read_slot_position(const reader_slot& s) noexcept {
  slot_position p;
  const bool ok = try_read_seqlocked(s.move_seq, [&] {
    p.epoch = s.epoch.load(std::memory_order_relaxed);
    p.holds_from = s.holds_from.load(std::memory_order_relaxed);
    p.offset = s.offset.load(std::memory_order_relaxed);
  });
  if (!ok) return std::nullopt;
  return p;
}

void write_slot_position(reader_slot& s, const slot_position& p) {
  seqlock_write move(s.move_seq);
  s.epoch.store(p.epoch, std::memory_order_relaxed);
  fault_injected(fault_point::slot_move_half_done);
  s.holds_from.store(p.holds_from, std::memory_order_relaxed);
  s.offset.store(p.offset, std::memory_order_relaxed);
  move.finish();
}

bool history_left_odd(const segment_header& h) noexcept {
  return h.history.seq.load(std::memory_order_acquire) & 1;
}

bool snapshot_announcement_left_odd(const segment_header& h) noexcept {
  return h.snapshot.seq.load(std::memory_order_acquire) & 1;
}

void repair_snapshot_announcement(segment_header& h) noexcept {
  snapshot_block& b = h.snapshot;
  seqlock_write change(b.seq);
  // generation and requests_served stay: each word is its old or its new value, and both are
  // counts that must not go back. The rest says "nothing usable": a history id of none
  // matches no log, so no replica loads it, and the next request gets a new snapshot.
  b.offset.store(0, std::memory_order_relaxed);
  b.created_ns.store(0, std::memory_order_relaxed);
  b.save_ns.store(0, std::memory_order_relaxed);
  b.bytes.store(0, std::memory_order_relaxed);
  store_history_id(b.replid, history_id());
  for (std::size_t w = 0; w < snapshot_path_size / 8; ++w)
    b.path[w].store(0, std::memory_order_relaxed);
  change.finish();
}

}  // namespace shmlog::detail
