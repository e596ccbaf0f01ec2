#include "shmlog/segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <tuple>

#include "mapping.h"
#include "os.h"
#include "shmlog/error.h"

namespace shmlog {

using detail::printable;

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_name:
      return "invalid_name";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::not_found:
      return "not_found";
    case errc::already_exists:
      return "already_exists";
    case errc::permission_denied:
      return "permission_denied";
    case errc::bad_magic:
      return "bad_magic";
    case errc::unsupported_version:
      return "unsupported_version";
    case errc::corrupt_header:
      return "corrupt_header";
    case errc::truncated:
      return "truncated";
    case errc::not_initialized:
      return "not_initialized";
    case errc::writer_exists:
      return "writer_exists";
    case errc::record_too_large:
      return "record_too_large";
    case errc::claim_pending:
      return "claim_pending";
    case errc::not_a_record_boundary:
      return "not_a_record_boundary";
    case errc::corrupt_record:
      return "corrupt_record";
    case errc::offset_out_of_range:
      return "offset_out_of_range";
    case errc::no_free_reader_slot:
      return "no_free_reader_slot";
    case errc::bad_snapshot:
      return "bad_snapshot";
    case errc::snapshot_timeout:
      return "snapshot_timeout";
    case errc::interrupted_update:
      return "interrupted_update";
    case errc::apply_failed:
      return "apply_failed";
    case errc::unexpected_offset:
      return "unexpected_offset";
    case errc::system_error:
      return "system_error";
  }
  return "unknown";
}

namespace {
constexpr std::size_t max_name_length = 200;

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

void validate_name(std::string_view name) {
  const auto fail = [&](const std::string& why) {
    throw error(errc::invalid_name, "invalid log name '" + printable(name) + "': " + why +
                                        " (use 1-200 characters from A-Z a-z 0-9 . _ -, starting"
                                        " with a letter or digit)");
  };
  if (name.empty()) fail("it is empty");
  if (name.size() > max_name_length)
    fail("it is " + std::to_string(name.size()) + " characters long");
  if (!is_alnum(name.front())) fail("it must start with a letter or digit");
  for (char c : name) {
    if (!(is_alnum(c) || c == '.' || c == '_' || c == '-')) {
      const bool shown = c >= 0x20 && c < 0x7F;
      fail(shown ? std::string("'") + c + "' is not allowed"
                 : "it contains a control or non-ASCII byte");
    }
  }
}

void validate_create_options(const create_options& o) {
  const auto bad = [](const std::string& why) { throw error(errc::invalid_argument, why); };
  const bool power_of_two = o.capacity != 0 && (o.capacity & (o.capacity - 1)) == 0;
  if (o.capacity < min_capacity || o.capacity > max_capacity || !power_of_two) {
    std::uint64_t nearest = min_capacity;
    while (nearest < o.capacity && nearest < max_capacity)
      nearest <<= 1;
    // Say which rule is broken: 2048 is a power of two, only too small.
    bad("capacity " + std::to_string(o.capacity) +
        (power_of_two ? " is outside the allowed range" : " is not a power of two") +
        " (capacity must be a power of two between 4096 (4K) and 2^40 (1024G)); nearest allowed: " +
        std::to_string(nearest));
  }
  if (o.reader_slots == 0 || o.reader_slots > max_reader_slots)
    bad("reader slots " + std::to_string(o.reader_slots) + " is not between 1 and " +
        std::to_string(max_reader_slots));
  char octal[24];
  std::snprintf(octal, sizeof octal, "0%o", static_cast<unsigned>(o.mode));
  if (o.mode & ~mode_t{0777}) bad(std::string("mode ") + octal + " has bits outside 0777");
  if (o.writer_fence != fence_mode::seq_cst && o.writer_fence != fence_mode::membarrier)
    bad("writer fence must be seq_cst or membarrier");
  if (o.start_offset % record_alignment != 0 || o.start_offset >= max_log_offset - o.capacity)
    bad("start offset " + std::to_string(o.start_offset) +
        " is not a multiple of 8 at least a ring below 2^63");

  if (o.max_gating_wait.count() < 0 || o.max_gating_wait > max_max_gating_wait)
    bad("max gating wait " + std::to_string(o.max_gating_wait.count()) +
        " ns is not between 0 and " + std::to_string(max_max_gating_wait.count()) + " ns (60 s)");
  if ((o.mode & 0600) != 0600)
    bad(std::string("mode ") + octal + " must give the owner read and write permission (0600)");
}

namespace detail {

segment_file create_segment(std::string_view name, const create_options& options) {
  validate_name(name);
  validate_create_options(options);
  auto file = segment_file::create(name, options.mode);
  try {
    file.object().truncate(static_cast<boost::interprocess::offset_t>(
        segment_size_for(options.capacity, options.reader_slots)));
    boost::interprocess::mapped_region region(file.object(), boost::interprocess::read_write, 0,
                                              header_size);
    initialise_segment(static_cast<std::byte*>(region.get_address()), options);
  } catch (...) {
    boost::interprocess::shared_memory_object::remove(std::string(name).c_str());
    throw;
  }
  return file;
}

void remove_if_same(const segment_file& created) noexcept {
  try {
    const segment_file now = segment_file::open(created.name(), false);
    if (now.same_object(created))
      boost::interprocess::shared_memory_object::remove(created.name().c_str());
  } catch (...) {
    // Gone already, or no longer ours to remove.
  }
}

}  // namespace detail

void create(std::string_view name, const create_options& options) {
  // Closing the file releases the creator's hold on the writer lock.
  detail::create_segment(name, options);
}

namespace {

// What destroy looks at in an object that inspect() refused: its size and its first word.
struct object_look {
  std::uint64_t size = 0;
  std::uint64_t magic = 0;  // 0 if the object is shorter than 8 bytes
};

// nullopt if the object cannot be opened to look.
std::optional<object_look> look_at(const std::string& name) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  object_look look;
  const bool ok = ::fstat(fd, &st) == 0;
  if (ok) {
    look.size = static_cast<std::uint64_t>(st.st_size);
    if (::pread(fd, &look.magic, sizeof look.magic, 0) != sizeof look.magic) look.magic = 0;
  }
  ::close(fd);
  if (!ok) return std::nullopt;
  return look;
}

// A creator sizes the object to segment_size_for(capacity, slots) before it writes anything,
// so an object that creation left half-done is either empty or exactly one of these sizes.
bool is_segment_size(std::uint64_t size) {
  for (std::uint64_t capacity = min_capacity; capacity <= max_capacity; capacity <<= 1) {
    if (size <= capacity + header_size) break;
    const std::uint64_t reader_area = size - header_size - capacity;
    if (reader_area % page_size != 0) continue;
    if (reader_area >= reader_area_size_for(1) &&
        reader_area <= reader_area_size_for(max_reader_slots))
      return true;
  }
  return false;
}

// Given `e`, what inspect(name) threw: why the object is not a shmlog segment, or nullopt if it
// is one: damaged behind its magic (truncated, corrupt header, another layout version), or one
// whose creation never finished. Rethrows what does not tell (not found, permission denied).
std::optional<std::string> why_not_a_segment(const std::string& name, const error& e) {
  {
    if (e.code() == errc::not_found) throw e;
    const std::optional<object_look> look = look_at(name);
    const std::string is_not = "'/dev/shm/" + name + "' is not a shmlog segment (";
    switch (e.code()) {
      case errc::bad_magic: {
        char hex[32];
        std::snprintf(hex, sizeof hex, "0x%016llx",
                      static_cast<unsigned long long>(look ? look->magic : 0));
        return is_not + "magic " + hex + ")";
      }
      case errc::truncated:
        // Either smaller than a descriptor (no magic to go by) or shorter than its header says.
        if (look && look->size < sizeof(segment_descriptor))
          return is_not + std::to_string(look->size) +
                 " bytes, too small to hold a shmlog descriptor of " +
                 std::to_string(sizeof(segment_descriptor)) + " bytes)";
        return std::nullopt;
      case errc::unsupported_version:
      case errc::corrupt_header:
        return std::nullopt;  // the magic is shmlog's
      case errc::not_initialized:
        if (look && (look->size == 0 || is_segment_size(look->size))) return std::nullopt;
        return is_not + "no magic number, and " +
               (look ? std::to_string(look->size) + " bytes" : std::string("its size")) +
               " is not the size of a shmlog segment whose creation was interrupted)";
      default:
        throw error(e.code() == errc::permission_denied ? errc::permission_denied : e.code(),
                    std::string(e.what()) +
                        ", so it cannot be checked to be a shmlog segment; not removed");
    }
  }
}

// Why `name` must not be removed without destroy_what::anything, or nullopt if it is a shmlog
// segment, whole or not. Throws not_found if there is no such object.
std::optional<std::string> not_a_segment(const std::string& name) {
  try {
    inspect(name);
    return std::nullopt;
  } catch (const error& e) {
    return why_not_a_segment(name, e);
  }
}

}  // namespace

bool destroy(std::string_view name, destroy_what what) {
  validate_name(name);
  if (what == destroy_what::only_a_log) {
    try {
      if (const std::optional<std::string> why = not_a_segment(std::string(name)))
        throw error(errc::bad_magic, *why + "; not removed");
    } catch (const error& e) {
      if (e.code() == errc::not_found) return false;
      throw;
    }
  }
  if (boost::interprocess::shared_memory_object::remove(std::string(name).c_str())) return true;
  const int err = errno;
  if (err == ENOENT) return false;
  throw error(err == EACCES || err == EPERM ? errc::permission_denied : errc::system_error,
              "log '" + std::string(name) + "': " + detail::errno_message("shm_unlink", err));
}

bool exists(std::string_view name) {
  try {
    detail::segment_file::open(name, false);
    return true;
  } catch (const error& e) {
    if (e.code() == errc::not_found) return false;
    throw;
  }
}

namespace {
// Runs read(); a header block left half-written becomes one of `problems` instead of an error.
template <class Read>
void note_interrupted(std::vector<std::string>& problems, Read&& read) {
  try {
    read();
  } catch (const error& e) {
    if (e.code() != errc::interrupted_update) throw;
    // The window is read under the history block's seqlock too: one line per block.
    if (std::find(problems.begin(), problems.end(), e.what()) == problems.end())
      problems.emplace_back(e.what());
  }
}
}  // namespace

log_info inspect(std::string_view name) {
  auto file = detail::segment_file::open(name, false);
  auto m = detail::mapping::map(file, detail::map_access::inspector);
  const auto& g = m->geo();
  const segment_header& h = m->header();
  log_info info;
  info.name = std::string(name);
  info.layout_version = h.descriptor.layout_version;
  info.capacity = g.capacity;
  info.segment_bytes = file.size();
  info.max_payload = g.max_payload;
  info.intent_chunk = g.intent_chunk;
  info.reader_slot_count = g.slot_count;
  info.creation_time_ns = h.descriptor.creation_time_ns;
  info.start_offset = g.start_offset;
  info.mode = file.mode();
  std::tie(info.owner_uid, info.owner_gid) = file.owner();
  note_interrupted(info.problems, [&] { info.history = detail::read_history(*m); });
  note_interrupted(info.problems, [&] { info.window = detail::read_window(*m); });
  info.write_intent = h.write_intent.load(std::memory_order_acquire);

  info.writer_pid = h.writer.pid.load(std::memory_order_acquire);
  info.writer_alive = m->writer_alive();
  info.writer_generation = h.writer.generation.load(std::memory_order_relaxed);
  info.writer_start_time_ns = h.writer.start_time_ns.load(std::memory_order_relaxed);
  info.recovered_torn_bytes = h.writer.recovered_torn_bytes.load(std::memory_order_relaxed);
  info.writer_fence = static_cast<fence_mode>(h.descriptor.writer_fence);
  info.fence = static_cast<fence_mode>(h.writer.fence.load(std::memory_order_relaxed));

  const reader_area_header& ra = m->reader_area();
  info.sync_full = ra.sync_full.load(std::memory_order_relaxed);
  info.sync_partial_ok = ra.sync_partial_ok.load(std::memory_order_relaxed);
  info.sync_partial_err = ra.sync_partial_err.load(std::memory_order_relaxed);
  info.lapped_total = ra.lapped_total.load(std::memory_order_relaxed);
  info.snapshot_requests = ra.snapshot_requests.load(std::memory_order_relaxed);
  info.backlog_too_small = ra.backlog_too_small.load(std::memory_order_relaxed);
  info.history_epoch = h.history_epoch.load(std::memory_order_acquire);
  info.max_gating_wait_ns = h.descriptor.max_gating_wait_ns;
  info.gating_readers = ra.gating_readers.load(std::memory_order_relaxed);
  info.gating_waits = h.writer.gating_waits.load(std::memory_order_relaxed);
  info.gating_laps = h.writer.gating_laps.load(std::memory_order_relaxed);
  note_interrupted(info.problems, [&] { info.snapshot = detail::read_snapshot_announcement(*m); });

  const std::uint64_t now = detail::monotonic_ns();
  for (std::uint32_t i = 0; i < g.slot_count; ++i) {
    const reader_slot& s = m->slot(i);
    const std::uint32_t pid = s.pid.load(std::memory_order_acquire);
    const bool alive = m->reader_alive(i);
    if (!alive) {
      if (pid != 0) ++info.stale_slots;
      continue;
    }
    if (pid == 0) continue;  // a reader between taking the lock and filling its slot
    reader_info r;
    r.slot = i;
    r.pid = pid;
    r.state = static_cast<reader_state>(s.state.load(std::memory_order_relaxed));
    r.offset = s.offset.load(std::memory_order_relaxed);
    r.lag_bytes = info.window.master_offset > r.offset ? info.window.master_offset - r.offset : 0;
    r.lapped = s.lapped.load(std::memory_order_relaxed);
    r.bytes_lost = s.bytes_lost.load(std::memory_order_relaxed);
    r.last_lap_time_ns = s.last_lap_time_ns.load(std::memory_order_relaxed);
    r.records = s.records.load(std::memory_order_relaxed);
    const std::uint64_t beat = s.heartbeat_ns.load(std::memory_order_relaxed);
    r.heartbeat_age_ns = now > beat ? now - beat : 0;
    r.attach_time_ns = s.attach_time_ns.load(std::memory_order_relaxed);
    char label[sizeof s.label + 1] = {};
    std::memcpy(label, s.label, sizeof s.label);
    r.label = label;
    r.gating = s.gating.load(std::memory_order_relaxed) != 0;
    info.readers.push_back(std::move(r));
  }
  return info;
}

std::vector<log_listing> list_logs() {
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr)
    throw error(errc::system_error, detail::errno_message("opendir /dev/shm", errno));
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    try {
      validate_name(name);
    } catch (const error&) {
      continue;  // ".", "..", and names no shmlog log can have
    }
    // Regular files only: opening a FIFO someone left in /dev/shm would block.
    struct stat st {};
    if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());

  std::vector<log_listing> out;
  for (const std::string& name : names) {
    log_listing l;
    l.name = name;
    try {
      l.info = inspect(name);
    } catch (const error& e) {
      if (e.code() == errc::not_found) continue;  // removed since readdir
      l.problem_code = e.code();
      l.problem = e.what();
      if (e.code() != errc::permission_denied) {
        try {
          if (why_not_a_segment(name, e)) continue;  // someone else's object
        } catch (const error&) {
          // Cannot tell (it went away, or may not be opened to look): list it with the reason.
        }
      }
    }
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace shmlog
