// Processes of one case: the parent re-executes its own binary (/proc/self/exe) with the hidden
// command `bench-role` (child_command) through support/subprocess, as the demo
// (tools/demo_main.cc) does, so every transport is measured between separate processes started
// the same way. Both programs that measure (shmlog_bench and the installed `shmlog`) answer
// `bench-role key=value...` by calling child_main, so neither needs the source tree or another
// binary to run its children. Each child's stdin and
// stdout are pipes to the parent:
//   stdin  (control, parent -> child): "go <t0_ns>\n" to start; its end of file tells idle
//                                      children to leave;
//   stdout (result, child -> parent):  "ready\n" once set up, then "key value" lines, then end
//                                      of file.
// The child dies with the parent (PR_SET_PDEATHSIG), so a killed parent leaves no spinner behind.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "subprocess/subprocess.h"

namespace shmlog::bench {

// The hidden command, first word after the program, that makes a program run child_main with
// the key=value words after it. Every program that links this library must answer it.
inline constexpr const char* child_command = "bench-role";

// The parent's handle on one child.
struct child_process {
  std::string role;  // for messages: "writer", "reader 3", ...
  subprocess::child proc;
  std::vector<std::string> lines;  // its result lines but "ready"
  bool ready = false;
};

// Starts `/proc/self/exe bench-role key=value...` and keeps `inherit` (fds the child needs: pipes,
// sockets, a memfd) open across exec; every other descriptor is close-on-exec.
child_process spawn_child(const std::string& role, const std::map<std::string, std::string>& args,
                          const std::vector<int>& inherit);

// Reads whatever the listed children have written, waiting at most `timeout_ms`; splits it
// into lines. Returns false if nothing was readable.
bool pump_results(std::vector<child_process*>& children, int timeout_ms);
// Moves the complete result lines read so far into c.lines (and "ready" into c.ready).
void take_results(child_process& c);

// The child's side: its stdin and stdout.
class parent_link {
 public:
  parent_link();
  void send_ready();
  // Blocks until "go"; returns t0.
  std::uint64_t wait_go();
  // Blocks until the parent closes the control pipe (idle children).
  void wait_eof();
  void send_line(const std::string& key, const std::string& value);
  void send_line(const std::string& key, std::uint64_t value);
  void send_line(const std::string& key, double value);

 private:
  subprocess::line_reader control_;
};

// Pins the calling process to `cpu` if that CPU exists and this process may run on it.
// Returns whether it did.
bool pin_to_cpu(int cpu);
// Online CPUs.
int online_cpus();
// The CPUs this process may run on (its affinity mask), in order.
std::vector<int> allowed_cpus();

// CPU time every CPU of the machine spent busy (user, nice, system, irq, softirq, steal) so far,
// from /proc/stat; its resolution is the kernel's USER_HZ tick (10 ms).
std::uint64_t machine_busy_ns();
// User + system time of this process so far.
std::uint64_t own_cpu_ns();

// Voluntary and involuntary context switches of this process so far.
struct switch_counts {
  std::uint64_t voluntary = 0;
  std::uint64_t involuntary = 0;
};
switch_counts context_switches();

// write(2) all of it, retrying on EINTR and partial writes; false on error.
bool write_all(int fd, const void* data, std::size_t n);
// read(2) exactly n bytes; false at end of file or on error.
bool read_exact(int fd, void* data, std::size_t n);

}  // namespace shmlog::bench
