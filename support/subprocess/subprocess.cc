#include "subprocess/subprocess.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

extern char** environ;

namespace shmlog::subprocess {

namespace {

// poll(2)'s timeout for a deadline: -1 for none, else milliseconds rounded up (so a wait never
// ends just before its deadline), at most a day.
int poll_timeout(clock::time_point deadline) {
  if (deadline == no_deadline) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<std::int64_t>(left.count(), 86'400'000));
}

std::string errno_text(int err) {
  return std::strerror(err);
}

// A descriptor below 3 would be overwritten by the dup2 onto stdin/stdout/stderr before it is
// used (a parent started with a standard stream closed gets its pipes there): move it up.
int above_std(int fd) {
  if (fd < 0 || fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

// Both ends close-on-exec and above the standard streams; false with errno set.
bool make_pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  fds[0] = above_std(fds[0]);
  fds[1] = above_std(fds[1]);
  if (fds[0] >= 0 && fds[1] >= 0) return true;
  const int err = errno;
  if (fds[0] >= 0) ::close(fds[0]);
  if (fds[1] >= 0) ::close(fds[1]);
  errno = err;
  return false;
}

void close_if_open(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// What the fork path's child reports through the exec-error pipe before it _exits.
struct exec_failure {
  int step;  // index into step_names
  int err;
};
constexpr const char* step_names[] = {"setting up its descriptors", "dropping privileges", "exec"};

// The parent's descriptors for one child being started; closed on every path that throws.
struct spawn_fds {
  int in[2] = {-1, -1};
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  int gate[2] = {-1, -1};
  int exec_error[2] = {-1, -1};
  int null_fd = -1;
  ~spawn_fds() {
    for (int* p : {in, out, err, gate, exec_error}) {
      close_if_open(p[0]);
      close_if_open(p[1]);
    }
    close_if_open(null_fd);
  }
};

// The child's descriptor for stdin (0), stdout (1) or stderr (2), or -1 to inherit.
int child_end(stream_mode mode, int target, const spawn_fds& f) {
  switch (mode) {
    case stream_mode::inherit:
      return -1;
    case stream_mode::null:
      return f.null_fd;
    case stream_mode::pipe:
      return target == 0 ? f.in[0] : target == 1 ? f.out[1] : f.err[1];
  }
  return -1;
}

std::vector<std::string> environment_with(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    const bool replaced = std::any_of(overrides.begin(), overrides.end(), [&](const auto& o) {
      return std::string_view(o).substr(0, o.find('=')) == name;
    });
    if (!replaced) env.emplace_back(entry);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& words) {
  std::vector<char*> p;
  p.reserve(words.size() + 1);
  for (std::string& w : words)
    p.push_back(w.data());
  p.push_back(nullptr);
  return p;
}

// Between fork and exec only async-signal-safe calls: everything is prepared before the fork.
[[noreturn]] void run_forked_child(const spawn_options& o, const spawn_fds& f, pid_t parent,
                                   const char* program, char* const* argv, char* const* envp) {
  const auto fail = [&](int step) {
    const exec_failure why{step, errno};
    [[maybe_unused]] const ssize_t n = ::write(f.exec_error[1], &why, sizeof why);
    ::_exit(127);
  };
  if (o.own_process_group) ::setpgid(0, 0);
  if (o.parent_death_signal != 0) {
    ::prctl(PR_SET_PDEATHSIG, o.parent_death_signal);
    // The parent died before the prctl: nobody would send the signal.
    if (::getppid() != parent) ::_exit(1);
  }
  const stream_mode modes[3] = {o.stdin_mode, o.stdout_mode, o.stderr_mode};
  for (int target = 0; target < 3; ++target) {
    const int from = child_end(modes[target], target, f);
    if (from < 0) continue;
    if (::dup2(from, target) < 0) fail(0);
  }
  for (const int fd : o.keep_fds)
    if (::fcntl(fd, F_SETFD, 0) != 0) fail(0);
  for (const int sig : o.default_signals) {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    ::sigaction(sig, &sa, nullptr);
  }
  if (o.run_as &&
      (::setgroups(0, nullptr) != 0 || ::setgid(*o.run_as) != 0 || ::setuid(*o.run_as) != 0))
    fail(1);
  if (f.gate[0] >= 0) {
    char go = 0;
    ssize_t n;
    while ((n = ::read(f.gate[0], &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) ::_exit(125);  // never released: the parent gave up on it
  }
  ::execve(program, argv, envp);
  fail(2);
  ::_exit(127);  // not reached: fail() exits
}

}  // namespace

// --- write_all, describe_status -----------------------------------------------------------

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + ::strsignal(WTERMSIG(status));
  if (WIFSTOPPED(status)) return std::string("stopped by ") + ::strsignal(WSTOPSIG(status));
  return "ended";
}

// --- line_reader --------------------------------------------------------------------------

line_reader::~line_reader() {
  close_fd();
}

line_reader::line_reader(line_reader&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      own_(other.own_),
      eof_(other.eof_),
      keep_transcript_(other.keep_transcript_),
      buffer_(std::move(other.buffer_)),
      taken_(std::exchange(other.taken_, 0)) {}

line_reader& line_reader::operator=(line_reader&& other) noexcept {
  if (this != &other) {
    close_fd();
    fd_ = std::exchange(other.fd_, -1);
    own_ = other.own_;
    eof_ = other.eof_;
    keep_transcript_ = other.keep_transcript_;
    buffer_ = std::move(other.buffer_);
    taken_ = std::exchange(other.taken_, 0);
  }
  return *this;
}

void line_reader::close_fd() noexcept {
  if (fd_ >= 0 && own_ == ownership::owned) ::close(fd_);
  if (own_ == ownership::owned) fd_ = -1;
}

bool line_reader::has_line() const noexcept {
  return buffer_.find('\n', taken_) != std::string::npos;
}

std::optional<std::string> line_reader::take_line() {
  const std::size_t nl = buffer_.find('\n', taken_);
  if (nl == std::string::npos) return std::nullopt;
  std::string line = buffer_.substr(taken_, nl - taken_);
  taken_ = nl + 1;
  // Without a transcript, what was taken goes once it is worth moving the rest.
  if (!keep_transcript_ && taken_ >= 4096 && taken_ * 2 >= buffer_.size()) {
    buffer_.erase(0, taken_);
    taken_ = 0;
  }
  return line;
}

void line_reader::read_once() {
  if (at_eof()) return;
  char chunk[65536];
  const ssize_t n = ::read(fd_, chunk, sizeof chunk);
  if (n > 0) {
    buffer_.append(chunk, static_cast<std::size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    eof_ = true;
    close_fd();
  }
}

line_reader::wait_result line_reader::read_some(clock::time_point deadline) {
  if (at_eof()) return wait_result::eof;
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, poll_timeout(deadline));
  if (ready < 0 && errno == EINTR) return wait_result::interrupted;
  if (ready < 0) {  // not a descriptor poll can wait on: nothing more will come from it
    eof_ = true;
    close_fd();
    return wait_result::eof;
  }
  if (ready == 0) return wait_result::timeout;
  read_once();
  return at_eof() ? wait_result::eof : wait_result::data;
}

void line_reader::read_available() {
  while (!at_eof()) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return;
    read_once();
  }
}

std::optional<std::string> line_reader::read_line(clock::time_point deadline) {
  for (;;) {
    if (auto line = take_line()) return line;
    if (at_eof()) return std::nullopt;
    if (read_some(deadline) == wait_result::timeout) return take_line();
  }
}

bool line_reader::read_any(std::span<line_reader* const> readers,
                           std::chrono::milliseconds timeout) {
  std::vector<pollfd> fds;
  std::vector<line_reader*> owners;
  for (line_reader* r : readers) {
    if (r->at_eof()) continue;
    fds.push_back({r->fd_, POLLIN, 0});
    owners.push_back(r);
  }
  if (fds.empty()) return false;
  const int ms = static_cast<int>(std::max<std::int64_t>(0, timeout.count()));
  if (::poll(fds.data(), fds.size(), ms) <= 0) return false;
  for (std::size_t i = 0; i < fds.size(); ++i)
    if (fds[i].revents != 0) owners[i]->read_once();
  return true;
}

// --- child ----------------------------------------------------------------------------------

child::child(spawn_options o) {
  if (o.argv.empty()) o.argv.push_back(o.program);
  program_ = o.program.empty() ? o.argv.front() : o.program;
  own_group_ = o.own_process_group;
  const auto fail = [&](const std::string& what, int err) -> void {
    throw spawn_error("cannot run " + program_ + ": " + what + ": " + errno_text(err));
  };

  spawn_fds f;
  if (o.stdin_mode == stream_mode::pipe && !make_pipe(f.in)) fail("pipe", errno);
  if (o.stdout_mode == stream_mode::pipe && !make_pipe(f.out)) fail("pipe", errno);
  if (o.stderr_mode == stream_mode::pipe && !make_pipe(f.err)) fail("pipe", errno);
  const bool any_null = o.stdin_mode == stream_mode::null || o.stdout_mode == stream_mode::null ||
                        o.stderr_mode == stream_mode::null;
  if (any_null) {
    f.null_fd = above_std(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (f.null_fd < 0) fail("/dev/null", errno);
  }
  std::vector<std::string> env = environment_with(o.env);
  std::vector<char*> argv = pointers(o.argv);
  std::vector<char*> envp = pointers(env);
  const bool needs_fork = o.parent_death_signal != 0 || o.run_as || o.hold_until_release;

  if (needs_fork) {
    if (o.hold_until_release && !make_pipe(f.gate)) fail("pipe", errno);
    if (!make_pipe(f.exec_error)) fail("pipe", errno);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) fail("fork", errno);
    if (pid == 0) run_forked_child(o, f, parent, program_.c_str(), argv.data(), envp.data());
    pid_ = pid;
    // Also here, so that a signal to the group cannot come before the child's own setpgid.
    if (own_group_) ::setpgid(pid_, pid_);
    close_if_open(f.exec_error[1]);
    exec_error_fd_ = std::exchange(f.exec_error[0], -1);
    gate_fd_ = std::exchange(f.gate[1], -1);
  } else {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const stream_mode modes[3] = {o.stdin_mode, o.stdout_mode, o.stderr_mode};
    for (int target = 0; target < 3; ++target) {
      const int from = child_end(modes[target], target, f);
      if (from >= 0) posix_spawn_file_actions_adddup2(&actions, from, target);
    }
    // dup2 onto itself clears close-on-exec (POSIX 2024, glibc 2.29 and later).
    for (const int fd : o.keep_fds)
      posix_spawn_file_actions_adddup2(&actions, fd, fd);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    short flags = 0;
    sigset_t defaults;
    sigemptyset(&defaults);
    for (const int sig : o.default_signals)
      sigaddset(&defaults, sig);
    if (!o.default_signals.empty()) {
      posix_spawnattr_setsigdefault(&attr, &defaults);
      flags |= POSIX_SPAWN_SETSIGDEF;
    }
    if (own_group_) {
      posix_spawnattr_setpgroup(&attr, 0);
      flags |= POSIX_SPAWN_SETPGROUP;
    }
    posix_spawnattr_setflags(&attr, flags);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, program_.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) fail("posix_spawn", rc);
    pid_ = pid;
  }

  stdin_fd_ = std::exchange(f.in[1], -1);
  out_ = line_reader(std::exchange(f.out[0], -1));
  err_ = line_reader(std::exchange(f.err[0], -1));
  out_.keep_transcript(o.keep_transcript);
  err_.keep_transcript(o.keep_transcript);
  if (!o.hold_until_release) check_exec();
}

// Reads the exec-error pipe to its end (it closes at a successful exec, or after the child
// wrote why it failed); on failure reaps the child and throws.
void child::check_exec() {
  if (exec_error_fd_ < 0) return;
  exec_failure why{};
  ssize_t n;
  while ((n = ::read(exec_error_fd_, &why, sizeof why)) < 0 && errno == EINTR) {
  }
  close_if_open(exec_error_fd_);
  if (n != static_cast<ssize_t>(sizeof why)) return;
  kill_and_reap();
  const int step = std::clamp(why.step, 0, 2);
  throw spawn_error("cannot run " + program_ + ": " + step_names[step] + ": " +
                    errno_text(why.err));
}

void child::release() {
  if (gate_fd_ < 0) return;
  const char go = 1;
  while (::write(gate_fd_, &go, 1) < 0 && errno == EINTR) {
  }
  close_if_open(gate_fd_);
  check_exec();
}

child::~child() {
  close_all();
}

void child::close_all() noexcept {
  kill_and_reap();
  close_stdin();
  close_if_open(gate_fd_);
  close_if_open(exec_error_fd_);
  out_ = line_reader();
  err_ = line_reader();
}

child::child(child&& other) noexcept
    : program_(std::move(other.program_)),
      pid_(std::exchange(other.pid_, -1)),
      stdin_fd_(std::exchange(other.stdin_fd_, -1)),
      gate_fd_(std::exchange(other.gate_fd_, -1)),
      exec_error_fd_(std::exchange(other.exec_error_fd_, -1)),
      own_group_(other.own_group_),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)),
      reaped_(other.reaped_),
      status_(other.status_),
      usage_(other.usage_) {}

child& child::operator=(child&& other) noexcept {
  if (this != &other) {
    close_all();
    program_ = std::move(other.program_);
    pid_ = std::exchange(other.pid_, -1);
    stdin_fd_ = std::exchange(other.stdin_fd_, -1);
    gate_fd_ = std::exchange(other.gate_fd_, -1);
    exec_error_fd_ = std::exchange(other.exec_error_fd_, -1);
    own_group_ = other.own_group_;
    out_ = std::move(other.out_);
    err_ = std::move(other.err_);
    reaped_ = other.reaped_;
    status_ = other.status_;
    usage_ = other.usage_;
  }
  return *this;
}

bool child::write_stdin(std::string_view data) {
  return stdin_fd_ >= 0 && write_all(stdin_fd_, data);
}

void child::close_stdin() noexcept {
  close_if_open(stdin_fd_);
}

std::optional<std::string> child::read_line(clock::time_point deadline, bool from_stderr) {
  line_reader& want = from_stderr ? err_ : out_;
  line_reader* both[] = {&out_, &err_};
  for (;;) {
    if (auto line = want.take_line()) return line;
    if (want.at_eof() || clock::now() >= deadline) return std::nullopt;
    const int ms = poll_timeout(deadline);
    line_reader::read_any(both, std::chrono::milliseconds(ms < 0 ? 86'400'000 : ms));
  }
}

bool child::signal(int sig) noexcept {
  return pid_ > 0 && !reaped_ && ::kill(pid_, sig) == 0;
}

bool child::stop() {
  if (!signal(SIGSTOP)) return false;
  int status = 0;
  rusage usage{};
  pid_t got;
  while ((got = ::wait4(pid_, &status, WUNTRACED, &usage)) < 0 && errno == EINTR) {
  }
  if (got != pid_) return false;
  if (WIFSTOPPED(status)) return true;
  reaped_with(status, usage);
  return false;
}

void child::reaped_with(int status, const rusage& usage) noexcept {
  reaped_ = true;
  status_ = status;
  usage_ = usage;
}

bool child::try_reap() {
  if (reaped_ || pid_ <= 0) return reaped_;
  int status = 0;
  rusage usage{};
  if (::wait4(pid_, &status, WNOHANG, &usage) != pid_) return false;
  reaped_with(status, usage);
  return true;
}

std::optional<int> child::wait(clock::time_point deadline) {
  if (pid_ <= 0) return std::nullopt;
  // A pidfd turns readable when the child exits, so the wait needs no polling of waitpid;
  // without one (an old kernel), waitpid is looked at every 10 ms.
  // (glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage: the system call itself.)
  const int pidfd = reaped_ ? -1 : static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  for (;;) {
    if (try_reap()) break;
    int ms = poll_timeout(deadline);
    if (ms == 0) {
      if (pidfd >= 0) ::close(pidfd);
      return std::nullopt;
    }
    if (pidfd < 0 && (ms < 0 || ms > 10)) ms = 10;
    pollfd fds[3];
    nfds_t n = 0;
    if (pidfd >= 0) fds[n++] = {pidfd, POLLIN, 0};
    for (line_reader* r : {&out_, &err_})
      if (!r->at_eof()) fds[n++] = {r->fd_, POLLIN, 0};
    if (::poll(fds, n, ms) <= 0) continue;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0 || fds[i].fd == pidfd) continue;
      (fds[i].fd == out_.fd_ ? out_ : err_).read_once();
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  // What it wrote before it exited is in the pipes now; a grandchild holding them open is not
  // waited for.
  out_.read_available();
  err_.read_available();
  return status_;
}

bool child::read_to_eof(clock::time_point deadline) {
  line_reader* both[] = {&out_, &err_};
  while (!(out_.at_eof() && err_.at_eof())) {
    const int ms = poll_timeout(deadline);
    if (ms == 0) return false;
    line_reader::read_any(both, std::chrono::milliseconds(ms < 0 ? 86'400'000 : ms));
  }
  return true;
}

std::optional<int> child::communicate(std::string_view input, clock::time_point deadline) {
  std::size_t written = 0;
  for (;;) {
    if (stdin_fd_ >= 0 && written == input.size()) close_stdin();
    pollfd fds[3];
    nfds_t n = 0;
    if (stdin_fd_ >= 0) fds[n++] = {stdin_fd_, POLLOUT, 0};
    for (line_reader* r : {&out_, &err_})
      if (!r->at_eof()) fds[n++] = {r->fd_, POLLIN, 0};
    if (n == 0) break;
    const int ms = poll_timeout(deadline);
    if (ms == 0) return std::nullopt;
    const int ready = ::poll(fds, n, ms);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == stdin_fd_) {
        // At most PIPE_BUF: a pipe that polls writable takes that much without blocking.
        const std::size_t chunk = std::min<std::size_t>(input.size() - written, PIPE_BUF);
        if (!(fds[i].revents & POLLOUT)) {  // POLLERR: the child closed its end
          close_stdin();
          continue;
        }
        const ssize_t w = ::write(stdin_fd_, input.data() + written, chunk);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 && errno != EINTR && errno != EAGAIN) close_stdin();  // EPIPE: it closed it
      } else {
        (fds[i].fd == out_.fd_ ? out_ : err_).read_once();
      }
    }
  }
  close_stdin();
  return wait(deadline);
}

void child::kill_and_reap() noexcept {
  if (pid_ <= 0 || reaped_) return;
  // And what it forked (a snapshot child, say). The leader is not reaped yet, so the group id
  // cannot have been reused.
  if (own_group_) ::kill(-pid_, SIGKILL);
  if (try_reap()) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  rusage usage{};
  while (::wait4(pid_, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  reaped_with(status, usage);
}

std::chrono::nanoseconds child::cpu_time() const noexcept {
  const auto of = [](const timeval& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return of(usage_.ru_utime) + of(usage_.ru_stime);
}

}  // namespace shmlog::subprocess
