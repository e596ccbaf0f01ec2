// CRC-32C (Castagnoli), used for the segment descriptor and snapshot files. Software table
// implementation; fast enough for headers and snapshot payloads, never on the append path.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shmlog/export.h"

namespace shmlog {

// Extends `crc` (0 to start) over `size` bytes at `data`.
SHMLOG_API std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

}  // namespace shmlog
