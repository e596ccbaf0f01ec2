#include "shmlog/service.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "daemon_support.h"

namespace shmlog {
namespace {

// The socket address of "/path" or "@abstract" (the abstract name without a trailing NUL, as
// systemd binds it); false, with the reason, if it is neither or too long.
bool socket_address(const std::string& address, sockaddr_un& out, socklen_t& length,
                    std::string& problem) {
  out = sockaddr_un{};
  out.sun_family = AF_UNIX;
  if (address.empty() || (address[0] != '/' && address[0] != '@')) {
    problem = "NOTIFY_SOCKET '" + address +
              "' is neither a path nor an abstract socket name ('@...'): not notifying";
    return false;
  }
  if (address.size() >= sizeof out.sun_path) {
    problem = "NOTIFY_SOCKET '" + address + "' is longer than a socket address (" +
              std::to_string(sizeof out.sun_path - 1) + " bytes): not notifying";
    return false;
  }
  std::memcpy(out.sun_path, address.data(), address.size());
  if (address[0] == '@') out.sun_path[0] = '\0';
  // A path's length counts its NUL; an abstract name's does not (every byte is the name).
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() +
                                  (address[0] == '/' ? 1 : 0));
  return true;
}

}  // namespace

service_notifier service_notifier::from_environment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') return service_notifier();
  std::chrono::microseconds watchdog{0};
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  const auto number = [](const char* text, std::uint64_t& value) {
    const char* end = text + std::strlen(text);
    const auto [at, ec] = std::from_chars(text, end, value);
    return ec == std::errc() && at == end && at != text;
  };
  std::uint64_t us = 0;
  std::uint64_t watchdog_pid = 0;
  // WATCHDOG_PID names the process the watchdog is for: a child that inherited the variables
  // of its parent's unit must not ping on the parent's behalf.
  const bool ours =
      pid == nullptr || *pid == '\0' ||
      (number(pid, watchdog_pid) && watchdog_pid == static_cast<std::uint64_t>(::getpid()));
  if (usec != nullptr && ours && number(usec, us) && us > 0 &&
      us <= static_cast<std::uint64_t>(std::chrono::microseconds::max().count()))
    watchdog = std::chrono::microseconds(static_cast<std::int64_t>(us));
  return service_notifier(socket, watchdog);
}

service_notifier::service_notifier(std::string_view address,
                                   std::chrono::microseconds watchdog_timeout)
    : address_(address) {
  sockaddr_un addr{};
  socklen_t length = 0;
  if (!socket_address(address_, addr, length, problem_)) return;
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    problem_ = std::string("cannot make a socket to notify NOTIFY_SOCKET: ") + std::strerror(errno);
    return;
  }
  if (watchdog_timeout.count() > 0) watchdog_ = watchdog_timeout;
}

service_notifier::service_notifier(service_notifier&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      address_(std::move(other.address_)),
      problem_(std::move(other.problem_)),
      watchdog_(other.watchdog_),
      last_ping_(other.last_ping_) {}

service_notifier& service_notifier::operator=(service_notifier&& other) noexcept {
  if (this == &other) return *this;
  if (fd_ >= 0) ::close(fd_);
  fd_ = std::exchange(other.fd_, -1);
  address_ = std::move(other.address_);
  problem_ = std::move(other.problem_);
  watchdog_ = other.watchdog_;
  last_ping_ = other.last_ping_;
  return *this;
}

service_notifier::~service_notifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool service_notifier::notify(std::string_view message) {
  if (fd_ < 0 || message.empty()) return false;
  sockaddr_un addr{};
  socklen_t length = 0;
  std::string ignored;
  if (!socket_address(address_, addr, length, ignored)) return false;
  // The address on every send rather than a connect() once: a socket the manager bound again
  // (after `systemctl daemon-reexec`) is found by its name.
  for (;;) {
    const ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&addr), length);
    if (n >= 0) return static_cast<std::size_t>(n) == message.size();
    if (errno != EINTR) return false;
  }
}

bool service_notifier::ready(std::string_view status) {
  std::string message = "READY=1";
  if (!status.empty()) message += "\nSTATUS=" + detail::newlines_to_spaces(status);
  const bool sent = notify(message);
  last_ping_ = std::chrono::steady_clock::now();  // systemd starts the watchdog here
  return sent;
}

bool service_notifier::status(std::string_view text) {
  return notify("STATUS=" + detail::newlines_to_spaces(text));
}

bool service_notifier::stopping(std::string_view status) {
  std::string message = "STOPPING=1";
  if (!status.empty()) message += "\nSTATUS=" + detail::newlines_to_spaces(status);
  return notify(message);
}

bool service_notifier::keep_alive() {
  if (fd_ < 0 || watchdog_.count() == 0) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ping_ < watchdog_ / 2) return false;
  last_ping_ = now;
  return notify("WATCHDOG=1");
}

}  // namespace shmlog
