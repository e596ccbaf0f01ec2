// Creating, destroying and inspecting a log's shared-memory segment. Any process may call these.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/error.h"
#include "shmlog/export.h"
#include "shmlog/framing.h"
#include "shmlog/history.h"
#include "shmlog/snapshot.h"

namespace shmlog {

// Gating readers (reader_options::gating; docs/design.md, "Gating readers"): how long a writer
// waits at most for one that has no room before it laps it, unless the log or the writer says
// otherwise, and the most either may say.
inline constexpr std::chrono::nanoseconds default_max_gating_wait = std::chrono::milliseconds(100);
inline constexpr std::chrono::nanoseconds max_max_gating_wait = std::chrono::seconds(60);

struct create_options {
  std::uint64_t capacity = 1 << 20;  // ring bytes: a power of two in [4 KiB, 1 TiB]
  std::uint32_t reader_slots = default_reader_slots;  // most readers attached at once
  mode_t mode = 0600;  // permissions of /dev/shm/<name>, applied exactly (no umask)
  // seq_cst (default): the writer fences every publish, ~1-2 ns. membarrier: the writer saves
  // that fence and a reader going to sleep pays a membarrier() instead, which interrupts the
  // writer's CPU: worth it on bare metal, costly in VMs (docs/design.md, "No lost wake-up").
  fence_mode writer_fence = fence_mode::seq_cst;
  // For a mirror of a log on another host (docs/remote.md): the new log begins at this offset
  // (a multiple of 8), in this history, so that its records keep the source's offsets and its
  // readers resync by the source's PSYNC rules. Defaults: offset 0, a fresh random history.
  std::uint64_t start_offset = 0;
  std::optional<history_state> history;
  // How long a writer waits for a gating reader that has no room before it laps it, for every
  // writer of the log unless writer_options says otherwise. Zero: default_max_gating_wait.
  // At most max_max_gating_wait.
  std::chrono::nanoseconds max_gating_wait{0};
};

// Throws error(invalid_name) unless `name` is 1-200 characters from [A-Za-z0-9._-] starting
// with a letter or digit. The segment is then /dev/shm/<name>.
SHMLOG_API void validate_name(std::string_view name);

// Throws error(invalid_argument) naming the bad field of `options`.
SHMLOG_API void validate_create_options(const create_options& options);

// Creates and initialises a new log with a fresh random history id. Throws already_exists if
// a log of that name exists. Nothing is left behind if creation fails.
SHMLOG_API void create(std::string_view name, const create_options& options);

enum class destroy_what {
  // Only a shmlog segment: whole, damaged behind the shmlog magic number (truncated, corrupt
  // header, another layout version), or one whose creation never finished (no magic, and
  // empty or exactly a log's size). /dev/shm is shared by every program on the host: a name
  // typed wrong must not remove another program's shared memory.
  only_a_log,
  anything,  // whatever object has the name, like rm /dev/shm/NAME
};

// Removes the name; processes that have the log mapped keep their mapping until they unmap it.
// Returns false if no object of that name existed. With only_a_log (the default), an object
// that is not a shmlog segment is left alone: error(bad_magic) saying what was found
// ("'/dev/shm/NAME' is not a shmlog segment (magic 0x...); not removed"), or
// error(permission_denied) if it may not be read to tell.
SHMLOG_API bool destroy(std::string_view name, destroy_what what = destroy_what::only_a_log);

SHMLOG_API bool exists(std::string_view name);

struct reader_info {
  std::uint32_t slot = 0;
  std::uint32_t pid = 0;
  reader_state state = reader_state::free;
  std::uint64_t offset = 0;     // next byte it will read
  std::uint64_t lag_bytes = 0;  // master_offset - offset (0 if it is ahead of a stale read)
  std::uint64_t lapped = 0;
  std::uint64_t bytes_lost = 0;        // skipped recovering from laps (recover_from_lap)
  std::uint64_t last_lap_time_ns = 0;  // CLOCK_REALTIME of its newest lap; 0: never lapped
  std::uint64_t records = 0;
  std::uint64_t heartbeat_age_ns = 0;  // time since its last poll or wait step
  std::uint64_t attach_time_ns = 0;    // CLOCK_REALTIME
  std::string label;
  bool gating = false;  // the writer waits for it rather than overrun it (reader_options::gating)
};

// A consistent-enough picture of a log for monitoring: every field is read once, so fields
// that move (offsets, counters) may be a few microseconds apart from each other.
struct log_info {
  std::string name;
  std::uint32_t layout_version = 0;
  std::uint64_t capacity = 0;  // repl_backlog_size
  std::uint64_t segment_bytes = 0;
  std::uint64_t max_payload = 0;
  std::uint64_t intent_chunk = 0;
  std::uint32_t reader_slot_count = 0;
  std::uint64_t creation_time_ns = 0;
  std::uint64_t start_offset = 0;  // where the log began: 0, or a mirror's first offset
  mode_t mode = 0;
  uid_t owner_uid = 0;  // of /dev/shm/NAME
  gid_t owner_gid = 0;

  history_state history;  // replid, replid2, second_repl_offset
  backlog_window window;  // repl_backlog_first_byte_offset, master_repl_offset
  std::uint64_t write_intent = 0;

  std::uint32_t writer_pid = 0;  // last writer's pid, 0 if none ever opened the log
  bool writer_alive = false;     // whether the writer lock is held right now
  std::uint32_t writer_generation = 0;
  std::uint64_t writer_start_time_ns = 0;
  std::uint64_t recovered_torn_bytes = 0;
  fence_mode writer_fence = fence_mode::seq_cst;  // chosen at creation
  fence_mode fence = fence_mode::none;            // what the current or last writer used

  std::uint64_t sync_full = 0;
  std::uint64_t sync_partial_ok = 0;
  std::uint64_t sync_partial_err = 0;
  std::uint64_t lapped_total = 0;

  std::uint64_t snapshot_requests = 0;  // asked by readers so far
  std::uint64_t backlog_too_small = 0;  // full resyncs that failed: the backlog moved on
  std::uint64_t history_epoch = 0;      // history changes by starting writers so far

  // Gating readers (docs/design.md, "Gating readers").
  std::uint64_t max_gating_wait_ns = 0;  // set at creation (0: default_max_gating_wait)
  std::uint32_t gating_readers = 0;      // slots marked gating, dead ones not yet reused included
  std::uint64_t gating_waits = 0;        // intent advances on which a writer waited for one
  std::uint64_t gating_laps = 0;         // gating readers a writer lapped after the bound

  // The newest snapshot the producer published (generation 0: none yet).
  snapshot_meta snapshot;

  std::vector<reader_info> readers;  // live readers, by slot
  std::uint32_t stale_slots = 0;     // slots whose reader died; the next reader reuses them

  // Header blocks that could not be read, each as the message of the errc::interrupted_update
  // that reading it threw: a writer died half-way through changing it (the next writer repairs
  // it). The fields of such a block above are left at their defaults.
  std::vector<std::string> problems;

  std::uint64_t histlen() const noexcept {  // repl_backlog_histlen
    return window.master_offset - window.first_byte_offset;
  }
};

// A log mapped into this process, shared by a writer and the readers it serves in the same
// process (writer::mapped(), reader::attach(const mapped_log&)): one mapping instead of two.
// For consumers inside the producer's process, and for thread-sanitizer tests, which can see
// races only within one mapping. Copyable; keeps the mapping alive. Any thread.
class SHMLOG_API mapped_log {
 public:
  struct impl;  // the library's; opaque here
  explicit mapped_log(std::shared_ptr<const impl> state) noexcept : impl_(std::move(state)) {}
  const impl& get() const noexcept { return *impl_; }

 private:
  std::shared_ptr<const impl> impl_;
};

// Any process. Throws what opening the segment throws (not_found, corrupt_header, ...); a header
// block left half-written is reported in log_info::problems instead, so that the rest can
// still be seen.
SHMLOG_API log_info inspect(std::string_view name);

// One object of /dev/shm as list_logs() found it: a log this build reads (info), or a shmlog
// segment it cannot read, or an object it may not open to tell (problem says why).
struct log_listing {
  std::string name;
  std::optional<log_info> info;
  errc problem_code = errc::system_error;  // when !info
  std::string problem;                     // when !info: the error's message
};

// Every shmlog log on this host, sorted by name (shmlog list). Objects in /dev/shm that are not
// shmlog segments (other programs' shared memory, semaphores, directories, names outside the
// naming rule) are left out; a segment of another layout version, damaged or never fully
// created, and an object this process may not open, are listed with the reason. Any process;
// inspects each log once. Throws error(system_error) only if /dev/shm itself cannot be read.
SHMLOG_API std::vector<log_listing> list_logs();

}  // namespace shmlog
