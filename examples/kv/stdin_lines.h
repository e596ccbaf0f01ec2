// Lines from stdin for the key-value examples, read without blocking for longer than asked:
// both programs must keep serving the log (snapshot requests, records) while no one types.
// std::getline cannot do that: after poll(2) says stdin is readable it may buffer several
// lines, and the ones after the first would wait for the next keystroke.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace shmlog::kv {

class stdin_lines {
 public:
  enum class result { line, idle, end };

  // Gives the next line (without its '\n'), or idle if none arrives within timeout_ms, or end
  // once stdin is closed and every line was given (a last line without '\n' included).
  result next(std::string& line, int timeout_ms) {
    for (;;) {
      if (const auto eol = pending_.find('\n'); eol != std::string::npos) {
        line = pending_.substr(0, eol);
        pending_.erase(0, eol + 1);
        return result::line;
      }
      if (closed_) {
        if (pending_.empty()) return result::end;
        line.swap(pending_);
        pending_.clear();
        return result::line;
      }
      pollfd in{.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
      const int ready = ::poll(&in, 1, timeout_ms);
      if (ready == 0 || (ready < 0 && errno == EINTR)) return result::idle;
      char chunk[4096];
      const ssize_t n = ready < 0 ? -1 : ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) return result::idle;
      if (n <= 0)
        closed_ = true;
      else
        pending_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  std::string pending_;
  bool closed_ = false;
};

}  // namespace shmlog::kv
