#include "process.h"

#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
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

std::uint64_t timeval_ns(const timeval& t) {
  return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(t.tv_usec) * 1000u;
}

}  // namespace

child_process spawn_child(const std::string& role, const std::map<std::string, std::string>& args,
                          const std::vector<int>& inherit) {
  // argv[0] as this program was named, so that ps shows which program's children these are.
  std::vector<std::string> words{program_invocation_short_name, child_command};
  for (const auto& [k, v] : args)
    words.push_back(k + "=" + v);
  return {.role = role,
          .proc = subprocess::child({.program = "/proc/self/exe",
                                     .argv = std::move(words),
                                     .stdout_mode = subprocess::stream_mode::pipe,
                                     .keep_fds = inherit,
                                     .parent_death_signal = SIGKILL})};
}

void take_results(child_process& c) {
  while (auto line = c.proc.out().take_line()) {
    if (*line == "ready") {
      c.ready = true;
    } else {
      c.lines.push_back(std::move(*line));
    }
  }
}

bool pump_results(std::vector<child_process*>& children, int timeout_ms) {
  std::vector<subprocess::line_reader*> readers;
  for (child_process* c : children)
    readers.push_back(&c->proc.out());
  const bool any =
      subprocess::line_reader::read_any(readers, std::chrono::milliseconds(timeout_ms));
  for (child_process* c : children)
    take_results(*c);
  return any;
}

parent_link::parent_link() : control_(STDIN_FILENO, subprocess::line_reader::ownership::borrowed) {}

void parent_link::send_ready() {
  if (!subprocess::write_all(STDOUT_FILENO, "ready\n")) fail("writing to the parent");
}

std::uint64_t parent_link::wait_go() {
  const std::string line = control_.read_line().value_or("");
  if (line.rfind("go ", 0) != 0) throw std::runtime_error("no go from the parent");
  return std::strtoull(line.c_str() + 3, nullptr, 10);
}

void parent_link::wait_eof() {
  while (control_.read_line()) {
  }
}

void parent_link::send_line(const std::string& key, const std::string& value) {
  if (!subprocess::write_all(STDOUT_FILENO, key + " " + value + "\n"))
    fail("writing to the parent");
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

std::vector<int> allowed_cpus() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::vector<int> out;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return out;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) out.push_back(cpu);
  return out;
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
