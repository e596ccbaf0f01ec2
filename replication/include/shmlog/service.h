// A daemon's messages to its service manager: systemd's notification protocol (sd_notify(3)),
// written here rather than taken from libsystemd (docs/design.md, "Service notification"). The
// library's daemons (run_replica_daemon, run_shipper, run_mirror) use it themselves; a user's own
// daemon built on the library can use it too:
//
//   shmlog::service_notifier notifier = shmlog::service_notifier::from_environment();
//   ... open, load ...
//   notifier.ready("serving from offset 0");
//   while (running) {
//     serve_a_little();
//     notifier.keep_alive();  // WATCHDOG=1, at most every half WATCHDOG_USEC
//   }
//   notifier.stopping();
//
// Without NOTIFY_SOCKET in the environment every call does nothing, so the same program runs
// under systemd and from a shell.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "shmlog/export.h"

namespace shmlog {

class SHMLOG_API service_notifier {
 public:
  // Notifies no one: every call does nothing.
  service_notifier() = default;
  // The service manager the environment names: NOTIFY_SOCKET (an AF_UNIX datagram socket, a
  // path "/run/..." or an abstract name "@..."), WATCHDOG_USEC (the watchdog timeout, if the
  // unit sets WatchdogSec=) and WATCHDOG_PID (the watchdog is this process's only if it names
  // its pid or is unset). The variables are read, not unset: children the library starts never
  // notify, and a unit's NotifyAccess=main has systemd ignore any other process that does.
  // A NOTIFY_SOCKET that is not such an address gives a notifier that does nothing and says why
  // in problem(). Any thread; call it before other threads may change the environment.
  static service_notifier from_environment();
  // To the socket `address` ("/path" or "@abstract"), with a watchdog of `watchdog_timeout`
  // (zero: none). Tests, and daemons handed the address some other way.
  explicit service_notifier(std::string_view address,
                            std::chrono::microseconds watchdog_timeout = {});

  service_notifier(service_notifier&& other) noexcept;
  service_notifier& operator=(service_notifier&& other) noexcept;
  service_notifier(const service_notifier&) = delete;
  service_notifier& operator=(const service_notifier&) = delete;
  ~service_notifier();

  bool enabled() const noexcept { return fd_ >= 0; }
  const std::string& address() const noexcept { return address_; }
  // Why a notifier given an address does nothing ("" if it works or was given none).
  const std::string& problem() const noexcept { return problem_; }
  // The watchdog timeout; zero if there is none (or no socket to ping).
  std::chrono::microseconds watchdog_timeout() const noexcept { return watchdog_; }

  // The calls below are for one thread at a time, the daemon's own loop. Each sends at most one
  // datagram without blocking (MSG_DONTWAIT, MSG_NOSIGNAL): a service manager that is slow or
  // gone costs the daemon a lost message, never a stall. They return whether it was sent.

  // One message: "NAME=value" lines separated by '\n' (sd_notify(3)).
  bool notify(std::string_view message);
  // READY=1: start-up is finished and the daemon does its job. Also starts the watchdog clock.
  bool ready(std::string_view status = {});
  // STATUS=<text>: one line `systemctl status` shows (newlines become spaces).
  bool status(std::string_view text);
  // STOPPING=1: a stop began (systemctl shows "deactivating" rather than a failure).
  bool stopping(std::string_view status = {});
  // WATCHDOG=1 if half the watchdog timeout has passed since the last one (or since READY=1):
  // cheap to call every turn of the loop whose turning proves the daemon is alive, which is the
  // point: a ping from a timer thread would go on while that loop hangs.
  bool keep_alive();

 private:
  int fd_ = -1;
  std::string address_;
  std::string problem_;
  std::chrono::microseconds watchdog_{0};
  std::chrono::steady_clock::time_point last_ping_{};
};

}  // namespace shmlog
