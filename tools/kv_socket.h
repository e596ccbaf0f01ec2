// The local interface between `shmlog replica` (which keeps a key-value state) and
// `shmlog get` (which asks it for one key). docs/cli.md, "shmlog get", describes it for users.
//
// A replica daemon listens on a Unix stream socket in the abstract namespace named
// "shmlog-replica-<pid>": no file to clean up after a crash (the kernel drops the name with the
// process), and `get` finds it from the pids `shmlog::inspect` lists as the log's readers.
// Any process may bind any abstract name, so `get` checks with SO_PEERCRED that the listener is
// that pid (docs/design.md, "Finding a replica: an abstract socket checked by SO_PEERCRED"). One
// request per connection, text:
//
//   request:  "GET <log> <key>\n"
//   replies:  "VALUE <offset>\n<value bytes>"    (then the server closes the connection)
//             "ABSENT <offset>\n"
//             "ERROR <message>\n"
//
// <offset> is the offset the replica's state reflects (every record before it is applied), or
// "-" while it has no state yet or is loading a snapshot. The log name in the request guards
// against a recycled pid now running a replica of another log.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace shmlog::cli {

// The abstract socket name, without its leading NUL byte.
std::string replica_socket_name(pid_t pid);

struct get_reply {
  enum class kind { value, absent, error };
  kind what = kind::error;
  std::optional<std::uint64_t> offset;  // empty: the replica has no settled state yet
  std::string text;                     // the value, or the error message
};

// Formats replies (the server side) and parses them (the client side).
std::string format_reply(const get_reply& reply);
get_reply parse_reply(std::string_view bytes);

// Serves GET requests on replica_socket_name(getpid()) from a thread of its own, until it is
// destroyed. `answer(key)` is called on that thread and must be safe against the replica's
// thread (it locks the state). Only the daemon's own user (and root) may ask: the values are
// the replicated data, and a socket in the abstract namespace has no file mode to protect it.
class get_server {
 public:
  using answer_fn = std::function<get_reply(std::string_view key)>;
  // Throws command_failure if the socket cannot be created or bound; if another process holds
  // the name, the message says so and names it.
  get_server(std::string log, answer_fn answer);
  ~get_server();
  get_server(const get_server&) = delete;
  get_server& operator=(const get_server&) = delete;

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

// Asks the replica daemon of process `pid` for `key` of `log`. nullopt if no daemon listens on
// that pid's socket (the process is some other reader); throws command_failure if one listens
// but does not answer properly, or if the listener is not process `pid` running as this
// process's user or root (check_peer): anyone may bind an abstract name first.
std::optional<get_reply> ask_replica(pid_t pid, std::string_view log, std::string_view key);

}  // namespace shmlog::cli
