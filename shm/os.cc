#include "os.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fault.h"
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

bool membarrier_global() {
  if (fault_injected(fault_point::membarrier)) return false;
  return kernel_has_global_expedited() &&
         ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
}

// --- fault injection (shm/fault.h) -----------------------------------------------------------

namespace {
std::atomic<fault_hook> installed_fault_hook{nullptr};
}  // namespace

void set_fault_hook(fault_hook hook) noexcept {
  installed_fault_hook.store(hook, std::memory_order_release);
}

bool fault_injected(fault_point p) {
  const fault_hook hook = installed_fault_hook.load(std::memory_order_acquire);
  return hook != nullptr && hook(p);
}

std::string_view to_string(fault_point p) noexcept {
  switch (p) {
    case fault_point::history_change_half_done:
      return "history_change_half_done";
    case fault_point::history_change_epoch_bumped:
      return "history_change_epoch_bumped";
    case fault_point::snapshot_announcement_half_done:
      return "snapshot_announcement_half_done";
    case fault_point::segment_created:
      return "segment_created";
    case fault_point::membarrier:
      return "membarrier";
    case fault_point::slot_move_half_done:
      return "slot_move_half_done";
    case fault_point::seqlock_read_retry:
      return "seqlock_read_retry";
  }
  return "unknown";
}

// --- role descriptors and fork() ---------------------------------------------------------------

namespace {

// A plain pthread mutex, not std::mutex: the fork handlers lock it before fork() and the
// child re-initialises its copy, which std::mutex does not allow.
pthread_mutex_t role_fds_mutex = PTHREAD_MUTEX_INITIALIZER;
std::vector<int>* role_fds = nullptr;  // never freed: fork handlers may run at any time

void lock_role_fds() noexcept {
  pthread_mutex_lock(&role_fds_mutex);
}
void unlock_role_fds() noexcept {
  pthread_mutex_unlock(&role_fds_mutex);
}
// In the child, before fork() returns there: only async-signal-safe calls.
void drop_roles_in_child() noexcept {
  if (role_fds != nullptr && !role_fds->empty()) {
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    // dup3 onto the same number: the child's descriptor no longer refers to the segment (its
    // reference to the locked description is gone), while the number stays taken, so that
    // the role object's eventual close() closes /dev/null, not someone else's descriptor.
    for (int fd : *role_fds)
      if (null_fd >= 0) ::dup3(null_fd, fd, O_CLOEXEC);
    if (null_fd >= 0) ::close(null_fd);
  }
  pthread_mutex_init(&role_fds_mutex, nullptr);
}

}  // namespace

void register_role_fd(int fd) {
  static const int installed = [] {
    return pthread_atfork(lock_role_fds, unlock_role_fds, drop_roles_in_child);
  }();
  if (installed != 0) throw error(errc::system_error, errno_message("pthread_atfork", installed));
  lock_role_fds();
  try {
    if (role_fds == nullptr) role_fds = new std::vector<int>();
    role_fds->push_back(fd);
  } catch (...) {
    unlock_role_fds();
    throw;
  }
  unlock_role_fds();
}

void unregister_role_fd(int fd) noexcept {
  lock_role_fds();
  if (role_fds != nullptr) std::erase(*role_fds, fd);
  unlock_role_fds();
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

std::string printable(std::string_view text) {
  std::string out;
  for (const unsigned char c : text) {
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string errno_message(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

}  // namespace shmlog::detail
