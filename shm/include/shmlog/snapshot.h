// Snapshot files: the producer's state at an exact offset of the log, with the history it
// belongs to. Written atomically (temporary file, fsync, rename, fsync of the directory), and
// verified whole (length, CRC-32C of the payload, header checksum, history) before a replica
// applies any of it. The format is drawn in docs/layout.md.
//
// Every function that opens a snapshot file opens only a regular file, never through a
// symbolic link, owned by the user who owns its directory or by the caller's effective user;
// anything else (a FIFO, a link, a directory, a socket, a device, another user's file) is
// refused with error(bad_snapshot) naming the path and what was found (docs/design.md,
// "Snapshot files are opened, not trusted").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/export.h"
#include "shmlog/history.h"
#include "shmlog/state_machine.h"

namespace shmlog {

inline constexpr std::uint64_t snapshot_magic = 0x50414E53474F4C53;  // "SLOGSNAP" little-endian
inline constexpr std::uint32_t snapshot_format_version = 1;
inline constexpr std::uint32_t snapshot_header_size = 128;

// Everything known about one snapshot: what its file's header says, and, once the producer has
// announced it in the log, the announcement's generation and the requests it answers. The one
// type for a snapshot file (write/verify/load), an announcement (writer::announce_snapshot,
// reader::announced_snapshot) and shmlog info (log_info::snapshot).
struct snapshot_meta {
  std::filesystem::path path;
  history_id replid;         // the history the state belongs to
  std::uint64_t offset = 0;  // the state reflects every record before this offset
  std::uint64_t payload_bytes = 0;
  std::uint64_t created_ns = 0;  // CLOCK_REALTIME when the state was saved
  std::uint64_t save_ns = 0;     // how long saving it took
  // Announcement: the log's snapshots published so far including this one (0: not announced,
  // or, for announced_snapshot(), none published yet), and the readers' request count it
  // answers (reader::request_snapshot).
  std::uint64_t generation = 0;
  std::uint64_t requests_served = 0;

  std::uint64_t file_bytes() const noexcept { return snapshot_header_size + payload_bytes; }
};

// Throws error(invalid_argument / permission_denied) naming `dir` unless it is an existing,
// writable (and searchable) directory. `for_writing` false checks that it is readable.
SHMLOG_API void check_snapshot_dir(const std::filesystem::path& dir, bool for_writing);

// The file name a snapshot of `log` at `offset` gets: <log>-<offset, 20 digits>-<generation>.snap
SHMLOG_API std::string snapshot_file_name(std::string_view log, std::uint64_t offset,
                                          std::uint64_t generation);

// Saves `state` into `dir` atomically and returns what it wrote. Throws shmlog::error naming
// the file on any failure, leaving nothing behind but (at worst, if the process dies) a
// temporary file that remove_stale_snapshot_files() removes. The file gets `mode` exactly (the
// umask is not applied), as the log's segment does.
SHMLOG_API snapshot_meta write_snapshot(const std::filesystem::path& dir, std::string_view log,
                                        std::uint64_t generation, const history_id& replid,
                                        std::uint64_t offset, const state_machine& state,
                                        mode_t mode = 0600);

// The same at an exact path (a replica's state file, say): the temporary file goes next to it.
SHMLOG_API snapshot_meta write_snapshot_file(const std::filesystem::path& path,
                                             const history_id& replid, std::uint64_t offset,
                                             const state_machine& state, mode_t mode = 0600);

// Reads and checks the whole file: magic, version, header checksum, length, payload CRC-32C,
// and, if given, the history. Throws error(bad_snapshot) naming the file and the problem.
// Reads with pread() a MiB at a time; memory used does not grow with the file.
SHMLOG_API snapshot_meta verify_snapshot(const std::filesystem::path& path,
                                         std::optional<history_id> expected_replid = std::nullopt);

// Reads the header only (magic, version, header checksum): for a file this process just wrote.
SHMLOG_API snapshot_meta read_snapshot_header(const std::filesystem::path& path);

// Verifies the file as verify_snapshot() does, then, and only then, calls state.load() with the
// payload. `progress(bytes_loaded, payload_bytes)` is called as load() consumes the payload.
// The payload is read into memory (as much as the file holds) and load() reads the very bytes
// that were verified: a file changed or truncated meanwhile cannot reach load() or raise
// SIGBUS.
SHMLOG_API snapshot_meta
load_snapshot(const std::filesystem::path& path, state_machine& state,
              std::optional<history_id> expected_replid = std::nullopt,
              const std::function<void(std::uint64_t, std::uint64_t)>& progress = {});

// The snapshot files of `log` in `dir`, newest (highest generation) first. Entries that do not
// parse as names of this log's snapshots, or are not regular files themselves (symbolic links,
// directories, FIFOs...), are ignored.
SHMLOG_API std::vector<std::filesystem::path> list_snapshots(const std::filesystem::path& dir,
                                                             std::string_view log);

// Keeps the newest `keep` snapshots of `log` in `dir` and removes the rest; returns how many
// it removed. Removes only what list_snapshots() lists, with unlink(): never through a link.
SHMLOG_API std::size_t prune_snapshots(const std::filesystem::path& dir, std::string_view log,
                                       std::size_t keep);

// Removes temporary files of `log` in `dir` left by writers that died while writing (regular
// files only: a link of that name, or what it points to, is left alone).
SHMLOG_API std::size_t remove_stale_snapshot_files(const std::filesystem::path& dir,
                                                   std::string_view log);

}  // namespace shmlog
