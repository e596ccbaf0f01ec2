// What the library's daemons (replica, ship, mirror) share: how they take their stop signals
// and how they write their log lines. Private to the library.
//
// SIGINT, SIGTERM and SIGHUP are taken synchronously on a thread of the scope's own
// (sigtimedwait), with the three blocked in every other thread of the daemon, instead of in an
// asynchronous handler: a handler runs on whichever thread the kernel picks, and a sanitizer's
// deferred delivery can then hold it back until that thread next makes a call it watches (seen
// under ThreadSanitizer: a stop signal that never stopped a full resync). Decision in
// docs/design.md, "A reader daemon for any state".
#pragma once

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "shmlog/service.h"

namespace shmlog::detail {

// `text` with its line breaks turned into spaces: a value that must stay on one line of a
// datagram (sd_notify's STATUS=) or of a query answer, whose framing is one field per line.
inline std::string newlines_to_spaces(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

class signal_scope {
 public:
  // Blocks the three in the calling thread before any thread of the daemon starts, so every
  // one of them inherits the mask. Call it on the daemon's main thread.
  signal_scope() {
    sigemptyset(&watched_);
    sigaddset(&watched_, SIGINT);
    sigaddset(&watched_, SIGTERM);
    sigaddset(&watched_, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &watched_, &previous_);
    thread_ = std::thread([this] { watch(); });
  }
  ~signal_scope() {
    done_.store(true, std::memory_order_relaxed);
    thread_.join();
    // Signals that came after the daemon stopped looking are taken here, not delivered with the
    // caller's dispositions (SIGTERM's default would kill a process that has already stopped).
    const timespec none{};
    while (::sigtimedwait(&watched_, nullptr, &none) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  signal_scope(const signal_scope&) = delete;
  signal_scope& operator=(const signal_scope&) = delete;

  // From the `nth` stop signal on, the watcher also calls `stop` (on its thread), so that a
  // daemon blocked in a long step gives up. Called at once if that many came already. Any thread.
  void on_stop(std::function<void()> stop, int nth) {
    const std::lock_guard lock(mutex_);
    stop_ = std::move(stop);
    stop_from_ = nth;
    if (stop_ && stops() >= nth) stop_();  // a signal that came before is not lost
  }
  // Forgets the callback: call it before what the callback touches is destroyed.
  void forget_stop() { on_stop({}, 1); }
  int stops() const noexcept { return stops_.load(std::memory_order_relaxed); }
  int hangups() const noexcept { return hangups_.load(std::memory_order_relaxed); }

 private:
  void watch() {
    const timespec tick{0, 100'000'000};  // so that the destructor's stop is seen
    while (!done_.load(std::memory_order_relaxed)) {
      const int sig = ::sigtimedwait(&watched_, nullptr, &tick);
      if (sig == SIGHUP) {
        hangups_.fetch_add(1, std::memory_order_relaxed);
      } else if (sig == SIGINT || sig == SIGTERM) {
        const int n = stops_.fetch_add(1, std::memory_order_relaxed) + 1;
        const std::lock_guard lock(mutex_);
        if (stop_ && n >= stop_from_) stop_();
      }
    }
  }

  sigset_t watched_{};
  sigset_t previous_{};
  std::atomic<int> stops_{0};
  std::atomic<int> hangups_{0};
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::function<void()> stop_;
  int stop_from_ = 1;
  std::thread thread_;
};

// "2026-11-30T01:15:15.123Z": the time a daemon's log line starts with.
inline std::string utc_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ts.tv_nsec / 1'000'000));
  return buf;
}

// A daemon's default log line: "<UTC time> <role>[<pid>] <line>" on stderr.
inline void log_to_stderr(std::string_view role, const std::string& line) {
  std::fprintf(stderr, "%s %.*s[%d] %s\n", utc_now().c_str(), static_cast<int>(role.size()),
               role.data(), static_cast<int>(::getpid()), line.c_str());
  std::fflush(stderr);
}

// A daemon's side of its service manager (shmlog/service.h) and of SIGHUP, for the daemon's own
// loop: tick() each turn of the loop that proves the daemon alive (and of any wait inside it
// that lasts longer than a few seconds), ready() once, stopping() when the stop begins. Used on
// the daemon's thread only. Decision in docs/design.md, "Service notification".
class service_link {
 public:
  // `notify`: talk to the manager NOTIFY_SOCKET names (if any); `signals`: the scope whose
  // SIGHUPs to log (null: the caller takes the signals); `log`: the daemon's log line.
  service_link(bool notify, const signal_scope* signals,
               std::function<void(const std::string&)> log)
      : notifier_(notify ? service_notifier::from_environment() : service_notifier()),
        signals_(signals),
        log_(std::move(log)) {
    if (!notifier_.problem().empty()) log_(notifier_.problem());
  }

  // WATCHDOG=1 when due, a SIGHUP logged (and otherwise ignored: nothing to reload), and, at
  // most once a second, STATUS=status() if that changed.
  void tick(const std::function<std::string()>& status = {}) {
    notifier_.keep_alive();
    if (signals_ != nullptr && signals_->hangups() != hangups_logged_) {
      hangups_logged_ = signals_->hangups();
      log_("SIGHUP: ignored (SIGINT or SIGTERM stop the daemon; it has nothing to reload)");
    }
    if (!status || !notifier_.enabled()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_status_) return;
    next_status_ = now + std::chrono::seconds(1);
    set_status(status());
  }
  void set_status(const std::string& text) {
    if (text == last_status_) return;
    last_status_ = text;
    notifier_.status(text);
  }
  void ready(const std::string& status) {
    last_status_ = status;
    notifier_.ready(status);
  }
  void stopping(const std::string& status) {
    last_status_ = status;
    notifier_.stopping(status);
  }

 private:
  service_notifier notifier_;
  const signal_scope* signals_;
  std::function<void(const std::string&)> log_;
  int hangups_logged_ = 0;
  std::chrono::steady_clock::time_point next_status_{};
  std::string last_status_;
};

}  // namespace shmlog::detail
