// The one clock every process of the harness uses: CLOCK_MONOTONIC through clock_gettime, which
// is a vDSO call (no system call) on Linux, and system-wide, so a time read in the writer can be
// subtracted from a time read in a reader.
#pragma once

#include <time.h>

#include <cstdint>

namespace shmlog::bench {

inline std::uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Busy-waits (no pause, no yield) until the clock reaches `t`: the pacing loops must not give
// the CPU away, or the scheduler's wake-up latency would land in every measurement.
inline std::uint64_t spin_until(std::uint64_t t) noexcept {
  std::uint64_t now = now_ns();
  while (now < t)
    now = now_ns();
  return now;
}

// Mean cost of one now_ns() call, from back-to-back calls, so reports can say how much of a
// latency figure is the clock itself.
double measure_clock_overhead_ns();

}  // namespace shmlog::bench
