// A deadline for code that must never block on a FIFO. If the code under test is still running
// when the deadline passes, the watchdog opens the FIFO for writing and closes it again, which
// ends a blocked open() or read() of it; fired() then tells the test that this was needed. So a
// regression fails the test with a message instead of hanging the whole test program.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

namespace shmlog::test {

class fifo_watchdog {
 public:
  fifo_watchdog(std::filesystem::path fifo, std::chrono::milliseconds deadline)
      : fifo_(std::move(fifo)), thread_([this, deadline] { watch(deadline); }) {}
  ~fifo_watchdog() { stop(); }
  fifo_watchdog(const fifo_watchdog&) = delete;
  fifo_watchdog& operator=(const fifo_watchdog&) = delete;

  // Called by the test when the code under test has returned; true if it returned in time.
  bool stop() {
    {
      const std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    return !fired_;
  }

 private:
  void watch(std::chrono::milliseconds deadline) {
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, deadline, [this] { return done_; })) return;
    fired_ = true;
    // The blocked reader may not have reached its open() yet: retry until the code returns.
    while (!done_) {
      const int fd = ::open(fifo_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) ::close(fd);
      wake_.wait_for(lock, std::chrono::milliseconds(10), [this] { return done_; });
    }
  }

  std::filesystem::path fifo_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;
};

}  // namespace shmlog::test
