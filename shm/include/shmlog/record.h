// A record as a reader is given it: shared by the reader API and the state-machine interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "shmlog/framing.h"

namespace shmlog {

// A record as it lies in the ring (poll) or in the caller's buffer (poll_copy).
struct record_view {
  std::uint64_t offset = 0;       // where the record starts
  std::uint64_t next_offset = 0;  // where the one after it starts
  record_type type = default_record_type;
  std::span<const std::byte> payload;

  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(payload.data()), payload.size()};
  }
};

}  // namespace shmlog
