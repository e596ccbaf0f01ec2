// Thin wrappers over the Linux calls shmlog needs beyond Boost.Interprocess: futexes, the
// asymmetric membarrier() fence, open-file-description byte locks and clocks. Private to the
// library; none of these is called on the append path except futex_wake_all, and that only
// when a reader has announced it is going to sleep.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shmlog::detail {

// Blocks while *word == expected, for at most timeout_ns (nullopt: no limit). Returns 0 when
// woken (possibly spuriously), EAGAIN if *word != expected on entry, ETIMEDOUT or EINTR.
int futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
               std::optional<std::uint64_t> timeout_ns) noexcept;
// Wakes every process waiting on word. The word lives in a MAP_SHARED mapping, so these are
// shared (not FUTEX_PRIVATE) futexes, keyed by the backing object and page offset.
void futex_wake_all(const std::atomic<std::uint32_t>* word) noexcept;

// Registers this process for MEMBARRIER_CMD_GLOBAL_EXPEDITED. True if the kernel supports it,
// in which case readers' membarrier_global() calls act as a full fence on our threads.
bool membarrier_register_global() noexcept;
// Issues a full memory barrier on every running thread of every registered process. False if
// the call failed (no kernel support, or a seccomp filter refused it): no barrier was issued.
bool membarrier_global();

// Open-file-description write locks on one byte of a file (F_OFD_SETLK): held until unlocked
// or until the description is closed, which the kernel does when its process dies.
bool try_lock_byte(int fd, std::uint64_t byte);  // false: another description holds it
void unlock_byte(int fd, std::uint64_t byte) noexcept;
bool is_byte_locked(int fd, std::uint64_t byte);  // by any other description

// Descriptors that carry a role (the writer lock, a reader slot's lock) belong to the process
// that took the role. A plain fork() would copy them into the child, and the child's copy of
// the open file description would keep the lock after the owner died. So a fork handler points
// every registered descriptor at /dev/null in the child, which drops the child's reference
// (docs/design.md, "A role belongs to the process that took it"). Any thread.
void register_role_fd(int fd);
void unregister_role_fd(int fd) noexcept;

std::uint64_t monotonic_ns() noexcept;
std::uint64_t realtime_ns() noexcept;

// "what failed: strerror(err)".
std::string errno_message(const std::string& what, int err);

// Text as it can be shown on one line of a message: control and non-ASCII bytes as \xNN.
std::string printable(std::string_view text);

}  // namespace shmlog::detail
