#include "kv_socket.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "cli.h"
#include "peer_check.h"

namespace shmlog::cli {

namespace {

// A request is "GET " + a log name (at most 200 bytes) + a key (at most 512) + "\n".
constexpr std::size_t max_request = 1024;
// How long either side waits for the other to send or take bytes: a peer that stops halfway
// must not hang the server thread or `get`.
constexpr int io_timeout_ms = 5000;

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
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

// Reads until EOF, or until `stop_at` is seen, or `limit` bytes. False on an error or timeout.
bool receive(int fd, std::string& into, std::size_t limit, char stop_at = '\0') {
  char buf[65536];
  while (into.size() < limit) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return true;
    into.append(buf, static_cast<std::size_t>(n));
    if (stop_at != '\0' && into.find(stop_at) != std::string::npos) return true;
  }
  return true;
}

// Who holds an abstract name someone else bound, for the message of a replica that cannot
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

}  // namespace

std::string replica_socket_name(pid_t pid) {
  return "shmlog-replica-" + std::to_string(pid);
}

std::string format_reply(const get_reply& reply) {
  const std::string offset = reply.offset ? std::to_string(*reply.offset) : "-";
  switch (reply.what) {
    case get_reply::kind::value:
      return "VALUE " + offset + "\n" + reply.text;
    case get_reply::kind::absent:
      return "ABSENT " + offset + "\n";
    case get_reply::kind::error:
      break;
  }
  return "ERROR " + one_line(reply.text) + "\n";
}

get_reply parse_reply(std::string_view bytes) {
  get_reply r;
  const std::size_t nl = bytes.find('\n');
  if (nl == std::string_view::npos) {
    r.text = "malformed reply (no header line)";
    return r;
  }
  const std::string_view head = bytes.substr(0, nl);
  const std::string_view body = bytes.substr(nl + 1);
  const std::size_t space = head.find(' ');
  const std::string_view verb = head.substr(0, space);
  const std::string_view arg = space == std::string_view::npos ? "" : head.substr(space + 1);
  if (verb == "ERROR") {
    r.text = std::string(arg);
    return r;
  }
  if ((verb != "VALUE" && verb != "ABSENT") || (arg != "-" && !parse_offset(arg))) {
    r.text = "malformed reply '" + one_line(head) + "'";
    return r;
  }
  r.what = verb == "VALUE" ? get_reply::kind::value : get_reply::kind::absent;
  if (arg != "-") r.offset = parse_offset(arg);
  r.text = std::string(body);
  return r;
}

get_server::get_server(std::string log, answer_fn answer)
    : log_(std::move(log)), answer_(std::move(answer)), address_(replica_socket_name(::getpid())) {
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0)
    throw command_failure(exit_failure, errno_text("cannot create the GET socket", errno));
  sockaddr_un addr{};
  const socklen_t len = abstract_address(address_, addr);
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    const int err = errno;
    ::close(listen_fd_);
    // Any process may bind any abstract name. `get` reaches a replica only at the name derived
    // from its pid, so a replica without it could not be asked: it refuses to start.
    if (err == EADDRINUSE)
      throw command_failure(
          exit_failure,
          "cannot serve GET on @" + address_ + ": another process (" + holder_of(address_) +
              ") already holds that socket address; shmlog get finds a replica only at the "
              "address derived from its pid, so this replica will not start (see "
              "docs/operations.md, \"A replica's GET socket is taken\")");
    throw command_failure(
        exit_failure, "cannot listen on the GET socket @" + address_ + ": " + std::strerror(err));
  }
  // Stop signals are for the replica's thread (its loop and the full-resync interruption):
  // the server thread blocks them, so that they interrupt the thread that acts on them.
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  thread_ = std::thread([this] { run(); });
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

get_server::~get_server() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

void get_server::run() {
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

void get_server::serve_one(int fd) {
  set_io_timeouts(fd);
  get_reply reply;
  ucred peer{};
  socklen_t peer_len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0) {
    reply.text = errno_text("cannot identify the caller", errno);
  } else if (peer.uid != ::geteuid() && peer.uid != 0) {
    reply.text = "permission denied: uid " + std::to_string(peer.uid) +
                 " may not query this replica (it answers uid " + std::to_string(::geteuid()) +
                 " and root)";
  } else {
    std::string request;
    if (!receive(fd, request, max_request, '\n') || request.empty() || request.back() != '\n') {
      reply.text = "malformed request (expected 'GET <log> <key>' and a newline)";
    } else {
      request.pop_back();
      const std::string_view req(request);
      const std::size_t a = req.find(' ');
      const std::size_t b = a == std::string_view::npos ? a : req.find(' ', a + 1);
      if (req.substr(0, a) != "GET" || b == std::string_view::npos) {
        reply.text = "malformed request '" + one_line(req) + "' (expected 'GET <log> <key>')";
      } else if (req.substr(a + 1, b - a - 1) != log_) {
        reply.text = "this replica serves log '" + log_ + "', not '" +
                     one_line(req.substr(a + 1, b - a - 1)) + "'";
      } else {
        reply = answer_(req.substr(b + 1));
      }
    }
  }
  send_all(fd, format_reply(reply));
}

std::optional<get_reply> ask_replica(pid_t pid, std::string_view log, std::string_view key) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw command_failure(exit_failure, errno_text("cannot create a socket", errno));
  set_io_timeouts(fd);
  sockaddr_un addr{};
  const std::string name = replica_socket_name(pid);
  const socklen_t len = abstract_address(name, addr);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    ::close(fd);
    // Nobody listens there: that reader is not a replica daemon.
    if (err == ECONNREFUSED || err == ENOENT) return std::nullopt;
    throw command_failure(exit_failure, "cannot reach the replica of pid " + std::to_string(pid) +
                                            " (@" + name + "): " + std::strerror(err));
  }
  // Before a byte of the request: a process that bound the name first must learn nothing and
  // have no chance to forge an answer.
  ucred peer{};
  socklen_t peer_len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0) {
    const int err = errno;
    ::close(fd);
    throw command_failure(exit_failure, "cannot identify the process listening on @" + name +
                                            " (reader pid " + std::to_string(pid) +
                                            "): " + std::strerror(err));
  }
  if (const auto mismatch = check_peer(pid, ::geteuid(), peer)) {
    ::close(fd);
    throw command_failure(exit_failure,
                          "refusing @" + name + " (the GET socket of reader pid " +
                              std::to_string(pid) + " of log '" + std::string(log) +
                              "'): " + *mismatch +
                              "; another process holds that name, and its answer cannot be "
                              "trusted (see docs/operations.md, \"A replica's GET socket is "
                              "taken\")");
  }
  std::string request = "GET ";
  request.append(log).append(" ").append(key).append("\n");
  std::string answer;
  const bool sent = send_all(fd, request);
  const int send_err = errno;
  const bool received = sent && receive(fd, answer, ~std::size_t{0});
  const int receive_err = errno;
  ::close(fd);
  if (!sent || !received)
    throw command_failure(
        exit_failure,
        "the replica of pid " + std::to_string(pid) +
            " did not answer: " + std::strerror(sent ? receive_err : send_err) +
            (sent && receive_err == EAGAIN
                 ? " (no answer within " + std::to_string(io_timeout_ms / 1000) + " s)"
                 : ""));
  return parse_reply(answer);
}

}  // namespace shmlog::cli
