// Payload copies for the append and poll paths. Most records are tens of bytes, where a call to
// memcpy costs more than the copy: up to 64 bytes are moved inline with at most four pairs of
// fixed-size (possibly overlapping) loads and stores, never touching a byte outside either
// range; longer payloads go to memcpy, which is faster there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shmlog::detail {

inline void copy_payload(std::byte* to, const std::byte* from, std::size_t n) noexcept {
  // Fixed-size memcpy compiles to one load and one store; the ranges never overlap (ring and
  // caller's buffer), so overlapping head and tail pieces are harmless.
  if (n > 64) {
    std::memcpy(to, from, n);
  } else if (n >= 32) {  // two 16-byte pieces from each end
    std::memcpy(to, from, 16);
    std::memcpy(to + 16, from + 16, 16);
    std::memcpy(to + n - 32, from + n - 32, 16);
    std::memcpy(to + n - 16, from + n - 16, 16);
  } else if (n >= 16) {
    std::memcpy(to, from, 16);
    std::memcpy(to + n - 16, from + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(to, from, 8);
    std::memcpy(to + n - 8, from + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(to, from, 4);
    std::memcpy(to + n - 4, from + n - 4, 4);
  } else if (n > 0) {
    to[0] = from[0];
    to[n / 2] = from[n / 2];
    to[n - 1] = from[n - 1];
  }
}

}  // namespace shmlog::detail
