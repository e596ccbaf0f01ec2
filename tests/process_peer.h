// The test side of shmlog_test_peer (tests/peer/test_peer.cc): a peer process (started by
// support/subprocess, with posix_spawn) whose stdin and stdout are pipes held by the test, the
// key=value fields of the lines it prints, and polling of inspect() under a deadline. Shared by the
// multi-process tests (process_test.cc, resync_process_test.cc, examples_test.cc); a test target
// that runs the peer defines SHMLOG_TEST_PEER, its path.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "shmlog/segment.h"
#include "subprocess/subprocess.h"

namespace shmlog::test {

namespace subprocess = shmlog::subprocess;
using steady = std::chrono::steady_clock;

// Hang guards, not expectations: each step normally takes milliseconds.
inline constexpr std::chrono::seconds line_timeout{20};
inline constexpr std::chrono::seconds exit_timeout{20};
inline constexpr std::chrono::seconds condition_timeout{20};

// A running shmlog_test_peer whose stdin and stdout are pipes held by the test. Failures to get
// what the test waits for throw, which ends the test with the peer's transcript in the message;
// the destructor kills (SIGKILL) and reaps a peer that is still running.
class peer {
 public:
#ifdef SHMLOG_TEST_PEER
  explicit peer(std::vector<std::string> args) : peer(SHMLOG_TEST_PEER, std::move(args)) {}
#endif
  // Any program that talks in lines on stdin and stdout (the examples, for one).
  peer(std::string program, std::vector<std::string> args)
      : args_(args), child_(options(std::move(program), std::move(args))) {}

  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;

  pid_t pid() const noexcept {
    return child_.pid();
  }
  // Every complete line read from the peer so far (await_line reads ahead, so this can hold
  // lines it has not returned yet; after wait_exit it holds all of them).
  std::string transcript() const {
    const std::string& all = child_.out().transcript();
    return all.substr(0, all.rfind('\n') + 1);
  }

  // The next line, whatever it says.
  std::string next_line(steady::duration timeout = line_timeout) {
    if (auto line = child_.read_line(steady::now() + timeout)) return std::move(*line);
    fail(std::string(child_.out().at_eof() ? "exited" : "timed out") + " before a line");
  }

  // The next line that starts with `word` (lines before it are skipped).
  std::string await_line(std::string_view word, steady::duration timeout = line_timeout) {
    const auto deadline = steady::now() + timeout;
    while (auto line = child_.read_line(deadline))
      if (*line == word || line->rfind(std::string(word) + " ", 0) == 0) return std::move(*line);
    fail(std::string(child_.out().at_eof() ? "exited" : "timed out") + " before printing '" +
         std::string(word) + "'");
  }

  void send_line(const std::string& line) {
    if (!child_.write_stdin(line + "\n")) fail("could not write to its stdin");
  }

  void close_stdin() {
    child_.close_stdin();
  }

  void signal(int sig) {
    // Once reaped, the pid may already belong to another process.
    if (!child_.signal(sig)) fail("cannot be sent signal " + std::to_string(sig));
  }

  // SIGSTOP, and return only once the kernel reports the peer stopped.
  void stop() {
    if (!child_.stop()) fail("did not stop");
  }

  // Waits for the peer's stdout to reach end of file, then for its exit, and returns its wait
  // status. The end of file also waits for a child the peer fork()ed to let go of its copy of
  // stdout, which it does after the library dropped its copy of the peer's role (the tests of
  // roles and forked children rely on that).
  int wait_exit(steady::duration timeout = exit_timeout) {
    const auto deadline = steady::now() + timeout;
    if (!child_.read_to_eof(deadline)) fail("did not exit");
    const auto status = child_.wait(deadline);
    if (!status) fail("did not exit");
    return *status;
  }

  // wait_exit(), expecting exit code 0.
  void expect_success() {
    const int status = wait_exit();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("ended with " + describe(status));
  }

  static std::string describe(int status) {
    return subprocess::describe_status(status);
  }

 private:
  static subprocess::spawn_options options(std::string program, std::vector<std::string> args) {
    args.insert(args.begin(), program);
    return {.program = std::move(program),
            .argv = std::move(args),
            .env = {"SHMLOG_PEER_PARENT=" + std::to_string(::getpid())},
            // The test ignores SIGPIPE; a peer must not inherit that.
            .default_signals = {SIGPIPE}};
  }

  [[noreturn]] void fail(const std::string& what) {
    std::string command;
    for (const std::string& a : args_)
      command += " " + a;
    throw std::runtime_error("peer " + std::to_string(pid()) + " (" + command.substr(1) + ") " +
                             what + "; it printed:\n" + child_.out().transcript());
  }

  std::vector<std::string> args_;
  subprocess::child child_;
};

// The key=value fields of a peer's line ("result records=5 bad=0" -> records: 5, bad: 0).
class fields {
 public:
  explicit fields(const std::string& line) : line_(line) {
    std::istringstream in(line);
    std::string token;
    while (in >> token)
      if (const auto eq = token.find('='); eq != std::string::npos)
        values_[token.substr(0, eq)] = token.substr(eq + 1);
  }
  std::uint64_t operator[](const std::string& key) const {
    const auto it = values_.find(key);
    if (it != values_.end()) {
      try {
        std::size_t used = 0;
        const std::uint64_t v = std::stoull(it->second, &used);
        if (used == it->second.size()) return v;
      } catch (const std::logic_error&) {  // not a number: reported below
      }
    }
    throw std::runtime_error("no number " + key + "=... in: " + line_);
  }
  std::string text(const std::string& key) const {
    const auto it = values_.find(key);
    if (it == values_.end()) throw std::runtime_error("no " + key + "=... in: " + line_);
    return it->second;
  }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  const std::string& line() const { return line_; }

 private:
  std::string line_;
  std::map<std::string, std::string> values_;
};

// Polls inspect() until `done` holds for what it returns; throws after `timeout`.
inline shmlog::log_info await_info(const std::string& name,
                                   const std::function<bool(const shmlog::log_info&)>& done,
                                   const std::string& what,
                                   steady::duration timeout = condition_timeout) {
  const auto deadline = steady::now() + timeout;
  for (;;) {
    shmlog::log_info info = shmlog::inspect(name);
    if (done(info)) return info;
    if (steady::now() > deadline) throw std::runtime_error("timed out waiting until " + what);
    std::this_thread::sleep_for(
        std::chrono::microseconds(200));  // the polling interval, not a synchronisation
  }
}

inline const shmlog::reader_info* find_reader(const shmlog::log_info& info, std::uint64_t pid) {
  for (const shmlog::reader_info& r : info.readers)
    if (r.pid == pid) return &r;
  return nullptr;
}

}  // namespace shmlog::test
