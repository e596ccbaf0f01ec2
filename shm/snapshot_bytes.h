// A snapshot file as raw bytes, for moving it between hosts (docs/remote.md: a shipper uploads
// the producer's file to Redis in chunks, a mirror writes the chunks back into a file). Private
// to the library. The bytes are checked only by verify_snapshot(): call it before trusting them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>

namespace shmlog::detail {

// Reads the file at `path` (opened as every snapshot file is: never through a link, only a
// regular file of a trusted owner) from its start, `chunk_bytes` at a time, and hands each piece
// to `sink`. Returns the bytes read. Throws error(bad_snapshot / system_error) naming the path.
std::uint64_t read_snapshot_bytes(const std::filesystem::path& path, std::size_t chunk_bytes,
                                  const std::function<void(std::string_view piece)>& sink);

// Writes a file at `path` atomically from the pieces `next` returns (an empty view ends it):
// a temporary file next to it, fsync, rename, fsync of the directory; nothing is left behind
// if it throws (or, if the process dies, a temporary file remove_stale_snapshot_files()
// removes). The file gets `mode` exactly. Returns the bytes written.
std::uint64_t write_snapshot_bytes(const std::filesystem::path& path,
                                   const std::function<std::string_view()>& next,
                                   mode_t mode = 0600);

}  // namespace shmlog::detail
