// Helpers shared by shmlog_micro (Google Benchmark) and shmlog_instr (the callgrind driver):
// uniquely named logs that are removed when the program ends, also on Ctrl-C; deterministic
// payloads; warming a ring's pages; pinning threads to CPUs.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "shmlog/writer.h"

namespace shmlog_bench {

// The record sizes every size-parameterised benchmark runs: 8 B to 64 KiB.
inline constexpr std::int64_t record_sizes[] = {8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 65536};

// Large enough for 64 KiB records (max payload = capacity / 4 - 8) with room to spare: a
// batch of 16 of them is 1 MiB, a quarter of the ring is 4 MiB.
inline constexpr std::uint64_t default_capacity = std::uint64_t{16} << 20;

// A name no other run uses: tag, pid and a counter. The prefix is what to look for in /dev/shm
// if a run was killed with SIGKILL (the only way it leaves a log behind).
inline std::string unique_log_name(std::string_view tag) {
  static std::atomic<unsigned> counter{0};
  return "shmlog-bench-" + std::string(tag) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

// Paths of live logs, kept as plain char arrays so that a signal handler can unlink them
// (unlink is async-signal-safe; shmlog::destroy, which builds strings, is not). Registered and
// cleared by the main thread only.
namespace detail {
inline constexpr std::size_t max_cleanup_paths = 8;
inline char cleanup_paths[max_cleanup_paths][256];

inline void unlink_registered_logs(int signo) {
  for (auto& path : cleanup_paths)
    if (path[0] != '\0') ::unlink(path);
  std::signal(signo, SIG_DFL);
  std::raise(signo);
}

inline void register_cleanup(const std::string& name) {
  for (auto& path : cleanup_paths) {
    if (path[0] != '\0') continue;
    std::snprintf(path, sizeof path, "/dev/shm/%s", name.c_str());
    return;
  }
}

inline void unregister_cleanup(const std::string& name) {
  std::string path = "/dev/shm/" + name;
  for (auto& p : cleanup_paths)
    if (path == p) p[0] = '\0';
}
}  // namespace detail

// Removes registered logs when the program is interrupted (SIGINT, SIGTERM, SIGHUP), then dies
// of the same signal.
inline void install_cleanup_handlers() {
  for (int signo : {SIGINT, SIGTERM, SIGHUP})
    std::signal(signo, detail::unlink_registered_logs);
}

// A log created with a unique name, opened as its writer, and destroyed with this object.
class scoped_log {
 public:
  scoped_log(std::string_view tag, std::uint64_t capacity)
      : name_(unique_log_name(tag)),
        writer_(shmlog::writer::create(name_, {.capacity = capacity, .reader_slots = 8})) {
    detail::register_cleanup(name_);
  }
  ~scoped_log() {
    writer_.reset();
    try {
      shmlog::destroy(name_);
    } catch (...) {
      // Nothing useful to do at the end of a benchmark run; /dev/shm is cleaned by hand.
    }
    detail::unregister_cleanup(name_);
  }
  scoped_log(const scoped_log&) = delete;
  scoped_log& operator=(const scoped_log&) = delete;

  shmlog::writer& writer() { return *writer_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::optional<shmlog::writer> writer_;
};

// Payload bytes from a fixed seed, so every run writes the same data.
inline std::vector<std::byte> make_payload(std::size_t size, std::uint64_t seed = 42) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> bytes(size);
  for (auto& b : bytes)
    b = static_cast<std::byte>(rng());
  return bytes;
}

// Writes one full lap (plus an intent chunk) of large records, so that every page of the ring
// has been faulted in before anything is timed: the first lap of a fresh 16 MiB ring takes
// 4096 page faults, which would otherwise land in the first benchmark's timed loop.
inline void warm_ring(shmlog::writer& w) {
  const std::size_t size =
      static_cast<std::size_t>(std::min<std::uint64_t>(w.max_payload(), 65536));
  const std::vector<std::byte> payload(size);
  const std::uint64_t target = w.master_offset() + w.capacity() + w.capacity() / 16;
  while (w.master_offset() < target)
    w.append(std::span(payload));
}

// The CPUs this process could run on when it started. Taken once, before any benchmark pins
// a thread: a thread created by a pinned thread inherits its mask, so asking the kernel later
// would say that only the pinned CPU exists.
inline const cpu_set_t& startup_cpus() {
  static const cpu_set_t cpus = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) CPU_ZERO(&set);
    return set;
  }();
  return cpus;
}

inline bool cpu_allowed(int cpu) {
  return cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &startup_cpus());
}

// Pins the calling thread to one CPU for this object's lifetime and restores its previous
// affinity afterwards (later benchmarks in the same thread must not inherit the pin). Does
// nothing if the CPU is not one this process may run on.
class scoped_cpu_pin {
 public:
  explicit scoped_cpu_pin(int cpu) {
    if (!cpu_allowed(cpu)) return;
    if (::pthread_getaffinity_np(::pthread_self(), sizeof saved_, &saved_) != 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pinned_ = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0;
  }
  ~scoped_cpu_pin() {
    if (pinned_) ::pthread_setaffinity_np(::pthread_self(), sizeof saved_, &saved_);
  }
  scoped_cpu_pin(const scoped_cpu_pin&) = delete;
  scoped_cpu_pin& operator=(const scoped_cpu_pin&) = delete;

  bool pinned() const { return pinned_; }

 private:
  cpu_set_t saved_{};
  bool pinned_ = false;
};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace shmlog_bench
