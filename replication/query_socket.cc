#include "query_socket.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "shmlog/error.h"

namespace shmlog {
namespace detail {
namespace {

// A request is a log name (at most 200 bytes), a newline, a request line and a newline.
constexpr std::size_t max_request = 4096;
// How long either side waits for the other to send or take bytes: a peer that stops halfway
// must not hang the server thread or the client.
constexpr int io_timeout_ms = 5000;

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

// The request and error text on one line: control bytes as \xNN.
std::string one_line(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

// sockaddr_un for an abstract name: sun_path starts with a NUL; the length counts the name
// exactly (no terminating NUL), as the kernel compares abstract names byte for byte.
socklen_t abstract_address(const std::string& name, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

void set_io_timeouts(int fd) {
  timeval tv{};
  tv.tv_sec = io_timeout_ms / 1000;
  tv.tv_usec = (io_timeout_ms % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads until EOF, or until `newlines` newlines were seen, or `limit` bytes. False on an error
// or a timeout.
bool receive(int fd, std::string& into, std::size_t limit, std::size_t newlines = 0) {
  char buf[65536];
  while (into.size() < limit) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return true;
    into.append(buf, static_cast<std::size_t>(n));
    if (newlines != 0 &&
        static_cast<std::size_t>(std::count(into.begin(), into.end(), '\n')) >= newlines)
      return true;
  }
  return true;
}

// Who holds an abstract name someone else bound, for the message of a daemon that cannot
// listen on its own: connects (non-blocking, so a full accept queue cannot stall the daemon),
// sends nothing, and reads the listener's credentials.
std::string holder_of(const std::string& name) {
  std::string who = "it could not be identified: possibly another user's";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return who;
  sockaddr_un addr{};
  const socklen_t len = abstract_address(name, addr);
  ucred peer{};
  socklen_t peer_len = sizeof peer;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    if (errno == ECONNREFUSED)
      who = "it bound the name but does not listen: possibly another user's";
  } else if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) == 0) {
    who = "pid " + std::to_string(peer.pid) + " running as uid " + std::to_string(peer.uid) +
          (peer.uid == ::geteuid() ? ", your own user" : ", another user");
  }
  ::close(fd);
  return who;
}

std::optional<std::uint64_t> parse_offset(std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

std::string format_error(std::string_view message) {
  return "ERROR " + one_line(message) + "\n";
}

}  // namespace

std::string replica_socket_name(pid_t pid) {
  return "shmlog-replica-" + std::to_string(pid);
}

std::optional<std::string> check_peer(pid_t expected_pid, uid_t my_uid, const ucred& peer) {
  // The pid tells a squatter of the name from the replica: the kernel records who called
  // listen(), which no other process can fake. The uid matters when the pid was recycled: a
  // process of another user that now has the replica's pid may listen on its name.
  if (peer.pid == expected_pid && (peer.uid == my_uid || peer.uid == 0)) return std::nullopt;
  const std::string as =
      my_uid == 0 ? "root" : "uid " + std::to_string(my_uid) + " (yours) or root";
  return "expected pid " + std::to_string(expected_pid) + " running as " + as + ", found pid " +
         std::to_string(peer.pid) + " running as uid " + std::to_string(peer.uid);
}

query_server::query_server(std::string log, answer_fn answer)
    : log_(std::move(log)), answer_(std::move(answer)), address_(replica_socket_name(::getpid())) {
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0)
    throw error(errc::system_error, errno_text("cannot create the query socket", errno));
  sockaddr_un addr{};
  const socklen_t len = abstract_address(address_, addr);
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    const int err = errno;
    ::close(listen_fd_);
    // Any process may bind any abstract name. A client reaches a daemon only at the name
    // derived from its pid, so a daemon without it could not be asked: it refuses to start.
    if (err == EADDRINUSE)
      throw error(errc::system_error,
                  "cannot serve queries on @" + address_ + ": another process (" +
                      holder_of(address_) +
                      ") already holds that socket address; a replica is found only at the "
                      "address derived from its pid, so this replica will not start (see "
                      "docs/operations.md, \"A replica's GET socket is taken\")");
    throw error(errc::system_error,
                "cannot listen on the query socket @" + address_ + ": " + std::strerror(err));
  }
  // Stop signals are for the daemon's thread (its loop and the full-resync interruption): the
  // server thread blocks them, so that they interrupt the thread that acts on them.
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  thread_ = std::thread([this] { run(); });
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

query_server::~query_server() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

void query_server::run() {
  while (!stop_.load(std::memory_order_relaxed)) {
    // Bounded, so that the destructor's stop is seen within 100 ms without a wake-up channel.
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the client went away, or EAGAIN: nothing to serve
    serve_one(fd);
    ::close(fd);
  }
}

void query_server::serve_one(int fd) {
  set_io_timeouts(fd);
  ucred peer{};
  socklen_t peer_len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0) {
    send_all(fd, format_error(errno_text("cannot identify the caller", errno)));
    return;
  }
  if (peer.uid != ::geteuid() && peer.uid != 0) {
    send_all(fd, format_error("permission denied: uid " + std::to_string(peer.uid) +
                              " may not query this replica (it answers uid " +
                              std::to_string(::geteuid()) + " and root)"));
    return;
  }
  std::string request;
  if (!receive(fd, request, max_request, 2) || request.empty() || request.back() != '\n' ||
      std::count(request.begin(), request.end(), '\n') != 2) {
    send_all(fd, format_error("malformed request (expected the log's name and one request "
                              "line, each ending in a newline)"));
    return;
  }
  const std::size_t nl = request.find('\n');
  const std::string_view log = std::string_view(request).substr(0, nl);
  const std::string_view line = std::string_view(request).substr(nl + 1, request.size() - nl - 2);
  if (log != log_) {
    send_all(fd,
             format_error("this replica serves log '" + log_ + "', not '" + one_line(log) + "'"));
    return;
  }
  std::string reply;
  try {
    const query_answer a = answer_(line);
    reply = "OK " + (a.offset ? std::to_string(*a.offset) : std::string("-")) + "\n" + a.text;
  } catch (const std::exception& e) {
    reply = format_error(e.what());
  }
  send_all(fd, reply);
}

}  // namespace detail

std::optional<query_answer> query_replica(pid_t pid, std::string_view log,
                                          std::string_view request) {
  if (request.find('\n') != std::string_view::npos)
    throw error(errc::invalid_argument, "a query is one line: it may not contain a newline");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw error(errc::system_error, detail::errno_text("cannot create a socket", errno));
  detail::set_io_timeouts(fd);
  sockaddr_un addr{};
  const std::string name = detail::replica_socket_name(pid);
  const socklen_t len = detail::abstract_address(name, addr);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    ::close(fd);
    // Nobody listens there: that reader is not a replica daemon.
    if (err == ECONNREFUSED || err == ENOENT) return std::nullopt;
    throw error(errc::system_error, "cannot reach the replica of pid " + std::to_string(pid) +
                                        " (@" + name + "): " + std::strerror(err));
  }
  // Before a byte of the request: a process that bound the name first must learn nothing and
  // have no chance to forge an answer.
  ucred peer{};
  socklen_t peer_len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0) {
    const int err = errno;
    ::close(fd);
    throw error(errc::system_error, "cannot identify the process listening on @" + name +
                                        " (reader pid " + std::to_string(pid) +
                                        "): " + std::strerror(err));
  }
  if (const auto mismatch = detail::check_peer(pid, ::geteuid(), peer)) {
    ::close(fd);
    throw error(errc::permission_denied,
                "refusing @" + name + " (the query socket of reader pid " + std::to_string(pid) +
                    " of log '" + std::string(log) + "'): " + *mismatch +
                    "; another process holds that name, and its answer cannot be trusted (see "
                    "docs/operations.md, \"A replica's GET socket is taken\")");
  }
  std::string bytes(log);
  bytes.append("\n").append(request).append("\n");
  std::string answer;
  const bool sent = detail::send_all(fd, bytes);
  const int send_err = errno;
  const bool received = sent && detail::receive(fd, answer, ~std::size_t{0});
  const int receive_err = errno;
  ::close(fd);
  if (!sent || !received)
    throw error(
        errc::system_error,
        "the replica of pid " + std::to_string(pid) +
            " did not answer: " + std::strerror(sent ? receive_err : send_err) +
            (sent && receive_err == EAGAIN
                 ? " (no answer within " + std::to_string(detail::io_timeout_ms / 1000) + " s)"
                 : ""));
  const std::size_t nl = answer.find('\n');
  const std::string_view head = std::string_view(answer).substr(0, nl);
  if (nl != std::string::npos && head.rfind("ERROR ", 0) == 0)
    throw error(errc::system_error,
                "replica pid " + std::to_string(pid) + ": " + std::string(head.substr(6)));
  const std::optional<std::uint64_t> offset =
      head.size() > 3 ? detail::parse_offset(head.substr(3)) : std::nullopt;
  if (nl == std::string::npos || head.rfind("OK ", 0) != 0 || (head.substr(3) != "-" && !offset))
    throw error(errc::system_error, "replica pid " + std::to_string(pid) +
                                        " sent a malformed reply '" + detail::one_line(head) + "'");
  return query_answer{offset, answer.substr(nl + 1)};
}

}  // namespace shmlog
