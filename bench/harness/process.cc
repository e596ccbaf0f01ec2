#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "json.h"

namespace shmlog::bench {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

std::string read_line(int fd) {
  std::string line;
  char ch = 0;
  for (;;) {
    const ssize_t n = ::read(fd, &ch, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || ch == '\n') return line;
    line += ch;
  }
}

}  // namespace

child_process spawn_child(const std::string& role, std::map<std::string, std::string> args,
                          const std::vector<int>& inherit) {
  int control[2];
  int result[2];
  if (::pipe2(control, O_CLOEXEC) != 0) fail("pipe");
  if (::pipe2(result, O_CLOEXEC) != 0) {
    ::close(control[0]);
    ::close(control[1]);
    fail("pipe");
  }
  args["control"] = std::to_string(control[0]);
  args["result"] = std::to_string(result[1]);
  // Everything the child needs is built before fork: between fork and exec only
  // async-signal-safe calls are allowed.
  std::vector<std::string> words{"shmlog_bench", "__child"};
  for (const auto& [k, v] : args)
    words.push_back(k + "=" + v);
  std::vector<char*> argv;
  for (std::string& w : words)
    argv.push_back(w.data());
  argv.push_back(nullptr);
  std::vector<int> keep = inherit;
  keep.push_back(control[0]);
  keep.push_back(result[1]);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    for (const int fd : keep)
      ::fcntl(fd, F_SETFD, 0);
    ::execv("/proc/self/exe", argv.data());
    const char msg[] = "shmlog_bench: cannot run /proc/self/exe\n";
    [[maybe_unused]] const auto ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(control[0]);
  ::close(result[1]);
  child_process c;
  c.role = role;
  c.pid = pid;
  c.control = control[1];
  c.result = result[0];
  return c;
}

bool pump_results(std::vector<child_process*>& children, int timeout_ms) {
  std::vector<pollfd> fds;
  std::vector<child_process*> owners;
  for (child_process* c : children) {
    if (c->result < 0) continue;
    fds.push_back({c->result, POLLIN, 0});
    owners.push_back(c);
  }
  if (fds.empty()) return false;
  const int n = ::poll(fds.data(), fds.size(), timeout_ms);
  if (n <= 0) return false;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents == 0) continue;
    child_process& c = *owners[i];
    char buf[65536];
    const ssize_t got = ::read(c.result, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      ::close(c.result);
      c.result = -1;
      continue;
    }
    c.pending.append(buf, static_cast<std::size_t>(got));
    for (std::size_t nl; (nl = c.pending.find('\n')) != std::string::npos;) {
      std::string line = c.pending.substr(0, nl);
      c.pending.erase(0, nl + 1);
      if (line == "ready") {
        c.ready = true;
      } else {
        c.lines.push_back(std::move(line));
      }
    }
  }
  return true;
}

namespace {

std::uint64_t timeval_ns(const timeval& t) {
  return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(t.tv_usec) * 1000u;
}

void reaped(child_process& c, int status, const rusage& ru) {
  c.status = status;
  c.reaped = true;
  c.cpu_ns = timeval_ns(ru.ru_utime) + timeval_ns(ru.ru_stime);
}

}  // namespace

void reap(child_process& c) {
  if (c.reaped || c.pid <= 0) return;
  int status = 0;
  rusage ru{};
  while (::wait4(c.pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  reaped(c, status, ru);
}

bool try_reap(child_process& c) {
  if (c.reaped || c.pid <= 0) return c.reaped;
  int status = 0;
  rusage ru{};
  if (::wait4(c.pid, &status, WNOHANG, &ru) != c.pid) return false;
  reaped(c, status, ru);
  return true;
}

void kill_and_reap(child_process& c) {
  if (!c.reaped && c.pid > 0) {
    int status = 0;
    rusage ru{};
    if (::wait4(c.pid, &status, WNOHANG, &ru) == c.pid) {
      reaped(c, status, ru);
    } else {
      ::kill(c.pid, SIGKILL);
      reap(c);
    }
  }
  if (c.control >= 0) ::close(c.control);
  if (c.result >= 0) ::close(c.result);
  c.control = c.result = -1;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + ::strsignal(WTERMSIG(status));
  return "ended";
}

void parent_link::send_ready() {
  if (!write_all(result_, "ready\n", 6)) fail("writing to the parent");
}

std::uint64_t parent_link::wait_go() {
  const std::string line = read_line(control_);
  if (line.rfind("go ", 0) != 0) throw std::runtime_error("no go from the parent");
  return std::strtoull(line.c_str() + 3, nullptr, 10);
}

void parent_link::wait_eof() {
  char buf[64];
  for (;;) {
    const ssize_t n = ::read(control_, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR)) return;
  }
}

void parent_link::send_line(const std::string& key, const std::string& value) {
  const std::string line = key + " " + value + "\n";
  if (!write_all(result_, line.data(), line.size())) fail("writing to the parent");
}
void parent_link::send_line(const std::string& key, std::uint64_t value) {
  send_line(key, std::to_string(value));
}
void parent_link::send_line(const std::string& key, double value) {
  send_line(key, json_number(value));
}

bool pin_to_cpu(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0 || !CPU_ISSET(cpu, &allowed))
    return false;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return ::sched_setaffinity(0, sizeof one, &one) == 0;
}

int online_cpus() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

std::uint64_t machine_busy_ns() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                steal = 0;
  f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const long hz = ::sysconf(_SC_CLK_TCK);
  const std::uint64_t ticks = user + nice + system + irq + softirq + steal;
  return hz > 0 ? ticks * (1'000'000'000u / static_cast<std::uint64_t>(hz)) : 0;
}

std::uint64_t own_cpu_ns() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return timeval_ns(ru.ru_utime) + timeval_ns(ru.ru_stime);
}

switch_counts context_switches() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return {static_cast<std::uint64_t>(ru.ru_nvcsw), static_cast<std::uint64_t>(ru.ru_nivcsw)};
}

bool write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_exact(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace shmlog::bench
