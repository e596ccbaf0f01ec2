// The socket a replica daemon answers queries on (shmlog/replica_daemon.h), and whom a client
// believes. Private to the library; the tests include it to check the decision directly.
//
// A daemon listens on a Unix stream socket in the abstract namespace named
// "shmlog-replica-<pid>": no file to clean up after a crash (the kernel drops the name with the
// process), and a client finds it from the pids shmlog::inspect lists as the log's readers. Any
// process may bind any abstract name, so the client checks with SO_PEERCRED that the listener
// is that pid, running as the client's user or root (docs/design.md, "Finding a replica"). One
// request per connection:
//
//   request:  "<log>\n<request line>\n"
//   replies:  "OK <offset>\n<answer bytes>"     (then the server closes the connection)
//             "ERROR <message>\n"
//
// <offset> is the offset the daemon's state reflected when it answered (every record before it
// applied), or "-" while it has no state yet or is loading a snapshot. The log name guards
// against a recycled pid now running a replica of another log.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "shmlog/replica_daemon.h"

namespace shmlog::detail {

// The abstract socket name, without its leading NUL byte.
std::string replica_socket_name(pid_t pid);

// Whom a client believes: `peer` is the SO_PEERCRED credentials of the process listening on
// the socket of `expected_pid`. nullopt if it is that pid running as the client's own effective
// uid (`my_uid`) or as root; otherwise "expected ..., found ..." for the error message. Pure.
std::optional<std::string> check_peer(pid_t expected_pid, uid_t my_uid, const ucred& peer);

// Serves queries on replica_socket_name(getpid()) from a thread of its own until destroyed.
// `answer` is called on that thread. Only the daemon's own user (and root) may ask.
class query_server {
 public:
  using answer_fn = std::function<query_answer(std::string_view request)>;
  // Throws error(system_error) if the socket cannot be created or bound; if another process
  // holds the name, the message says so and names it.
  query_server(std::string log, answer_fn answer);
  ~query_server();
  query_server(const query_server&) = delete;
  query_server& operator=(const query_server&) = delete;

  const std::string& address() const noexcept { return address_; }

 private:
  void run();
  void serve_one(int fd);

  std::string log_;
  answer_fn answer_;
  std::string address_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace shmlog::detail
