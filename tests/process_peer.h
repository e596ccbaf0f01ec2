// The test side of shmlog_test_peer (tests/peer/test_peer.cc): a peer process started with
// posix_spawn whose stdin and stdout are pipes held by the test, the key=value fields of the
// lines it prints, and polling of inspect() under a deadline. Shared by the multi-process tests
// (process_test.cc, resync_process_test.cc, examples_test.cc); a test target that runs the peer
// defines SHMLOG_TEST_PEER, its path.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
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

extern char** environ;

namespace shmlog::test {

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
  peer(std::string program, std::vector<std::string> args) : args_(std::move(args)) {
    int to_child[2];
    int from_child[2];
    // O_CLOEXEC: no other peer inherits these ends, so closing ours is an EOF the peer sees.
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    // The test ignores SIGPIPE; a peer must not inherit that.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> argv;
    argv.push_back(program.data());
    for (std::string& a : args_)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string parent = "SHMLOG_PEER_PARENT=" + std::to_string(::getpid());
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e)
      envp.push_back(*e);
    envp.push_back(parent.data());
    envp.push_back(nullptr);

    const int rc = ::posix_spawn(&pid_, program.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(to_child[0]);
    ::close(from_child[1]);
    stdin_fd_ = to_child[1];
    stdout_fd_ = from_child[0];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("posix_spawn " + program + " failed: " + std::to_string(rc));
    }
  }

  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;

  ~peer() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    close_stdin();
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }

  pid_t pid() const noexcept {
    return pid_;
  }
  // Every complete line read from the peer so far (await_line reads ahead, so this can hold
  // lines it has not returned yet; after wait_exit it holds all of them).
  const std::string& transcript() const noexcept {
    return transcript_;
  }

  // The next line, whatever it says.
  std::string next_line(steady::duration timeout = line_timeout) {
    const auto deadline = steady::now() + timeout;
    while (lines_.empty())
      if (!read_more(deadline)) fail(std::string(eof_ ? "exited" : "timed out") + " before a line");
    std::string line = std::move(lines_.front());
    lines_.pop_front();
    return line;
  }

  // The next line that starts with `word` (lines before it are skipped).
  std::string await_line(std::string_view word, steady::duration timeout = line_timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      while (!lines_.empty()) {
        std::string line = std::move(lines_.front());
        lines_.pop_front();
        if (line == word || line.rfind(std::string(word) + " ", 0) == 0) return line;
      }
      if (!read_more(deadline))
        fail(std::string(eof_ ? "exited" : "timed out") + " before printing '" + std::string(word) +
             "'");
    }
  }

  void send_line(const std::string& line) {
    const std::string data = line + "\n";
    if (::write(stdin_fd_, data.data(), data.size()) != static_cast<ssize_t>(data.size()))
      fail("could not write to its stdin");
  }

  void close_stdin() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
  }

  void signal(int sig) {
    // Once reaped, the pid may already belong to another process.
    if (reaped_ || ::kill(pid_, sig) != 0) fail("cannot be sent signal " + std::to_string(sig));
  }

  // SIGSTOP, and return only once the kernel reports the peer stopped.
  void stop() {
    signal(SIGSTOP);
    int status = 0;
    if (::waitpid(pid_, &status, WUNTRACED) != pid_ || !WIFSTOPPED(status)) {
      reaped_ = WIFEXITED(status) || WIFSIGNALED(status);
      fail("did not stop");
    }
  }

  // Waits for the peer to exit and returns its wait status. Its stdout reaches EOF when it
  // exits (nobody else holds that pipe), so this needs no polling of waitpid.
  int wait_exit(steady::duration timeout = exit_timeout) {
    const auto deadline = steady::now() + timeout;
    while (!eof_)
      if (!read_more(deadline) && !eof_) fail("did not exit");
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) fail("waitpid failed");
    reaped_ = true;
    return status;
  }

  // wait_exit(), expecting exit code 0.
  void expect_success() {
    const int status = wait_exit();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("ended with " + describe(status));
  }

  static std::string describe(int status) {
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
  }

 private:
  // Reads what is available into lines_; false at EOF or when the deadline passed.
  bool read_more(steady::time_point deadline) {
    if (eof_) return false;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady::now());
    if (left.count() <= 0) return false;
    pollfd p{stdout_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) return true;
    if (ready <= 0) return false;
    char chunk[4096];
    const ssize_t n = ::read(stdout_fd_, chunk, sizeof chunk);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    partial_.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t end; (end = partial_.find('\n')) != std::string::npos;) {
      lines_.push_back(partial_.substr(0, end));
      transcript_ += partial_.substr(0, end + 1);
      partial_.erase(0, end + 1);
    }
    return true;
  }

  [[noreturn]] void fail(const std::string& what) {
    std::string command;
    for (const std::string& a : args_)
      command += " " + a;
    throw std::runtime_error("peer " + std::to_string(pid_) + " (" + command.substr(1) + ") " +
                             what + "; it printed:\n" + transcript_ + partial_);
  }

  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  bool eof_ = false;
  bool reaped_ = false;
  std::string partial_;
  std::string transcript_;
  std::deque<std::string> lines_;
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
