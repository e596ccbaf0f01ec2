#include "os.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "shmlog/error.h"

namespace shmlog::detail {

int futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
               std::optional<std::uint64_t> timeout_ns) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout_ns) {
    ts.tv_sec = static_cast<time_t>(*timeout_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(*timeout_ns % 1'000'000'000);
    tsp = &ts;
  }
  const long rc = ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(word), FUTEX_WAIT,
                            expected, tsp, nullptr, 0);
  return rc == 0 ? 0 : errno;
}

void futex_wake_all(const std::atomic<std::uint32_t>* word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr,
            nullptr, 0);
}

namespace {
bool kernel_has_global_expedited() noexcept {
  static const bool has = [] {
    const long mask = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return mask > 0 && (mask & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
           (mask & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
  }();
  return has;
}
}  // namespace

bool membarrier_register_global() noexcept {
  if (!kernel_has_global_expedited()) return false;
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}

void membarrier_global() noexcept {
  if (kernel_has_global_expedited())
    ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
}

namespace {
struct flock byte_lock(short type, std::uint64_t byte) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(byte);
  fl.l_len = 1;
  fl.l_pid = 0;  // required to be 0 for OFD locks
  return fl;
}
}  // namespace

bool try_lock_byte(int fd, std::uint64_t byte) {
  struct flock fl = byte_lock(F_WRLCK, byte);
  if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
  if (errno == EAGAIN || errno == EACCES) return false;
  throw error(errc::system_error, errno_message("fcntl(F_OFD_SETLK)", errno));
}

void unlock_byte(int fd, std::uint64_t byte) noexcept {
  struct flock fl = byte_lock(F_UNLCK, byte);
  ::fcntl(fd, F_OFD_SETLK, &fl);
}

bool is_byte_locked(int fd, std::uint64_t byte) {
  struct flock fl = byte_lock(F_WRLCK, byte);
  if (::fcntl(fd, F_OFD_GETLK, &fl) != 0)
    throw error(errc::system_error, errno_message("fcntl(F_OFD_GETLK)", errno));
  return fl.l_type != F_UNLCK;
}

std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string errno_message(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

}  // namespace shmlog::detail
