// Running a piece of a test under a deadline, for tests whose failure mode is a hang: the piece
// runs in a fork()ed child, which reports how it ended through a pipe; a child that has not
// ended by the deadline is killed (SIGKILL) and the outcome says it hung. The deadline is a hang
// guard, not a timing assertion: what is checked is the outcome.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>

#include "shmlog/error.h"

namespace shmlog::test {

// "ok", "error <errc>: <message>", "exception: <what>", "hung", or "died (signal N)".
inline std::string outcome_within(std::chrono::milliseconds deadline,
                                  const std::function<void()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  std::fflush(nullptr);  // nothing buffered is written twice
  const pid_t child = ::fork();
  if (child < 0) return "fork failed";
  if (child == 0) {
    ::close(fds[0]);
    std::string out;
    try {
      body();
      out = "ok";
    } catch (const shmlog::error& e) {
      out = "error " + std::string(shmlog::to_string(e.code())) + ": " + e.what();
    } catch (const std::exception& e) {
      out = std::string("exception: ") + e.what();
    }
    const ssize_t written = ::write(fds[1], out.data(), out.size());
    ::_exit(written == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string out;
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  bool hung = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      hung = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n <= 0) break;  // the child closed its end: it is done
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  if (hung) ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (hung) return "hung";
  if (WIFSIGNALED(status)) return "died (signal " + std::to_string(WTERMSIG(status)) + ")";
  return out;
}

inline constexpr std::chrono::milliseconds hang_guard{10'000};

}  // namespace shmlog::test
