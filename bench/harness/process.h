// Processes of one case: the parent re-executes this binary (/proc/self/exe) with the hidden
// command `__child`, as tools/demo.cc does, so every transport is measured between separate
// processes started the same way. Each child has two pipes to the parent:
//   control (parent -> child): "go <t0_ns>\n" to start; its end of file tells idle children
//                              to leave;
//   result  (child -> parent): "ready\n" once set up, then "key value" lines, then end of file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shmlog::bench {

// The parent's handle on one child.
struct child_process {
  std::string role;  // for messages: "writer", "reader 3", ...
  pid_t pid = -1;
  int control = -1;     // write end
  int result = -1;      // read end; -1 once at end of file
  std::string pending;  // result bytes not yet split into lines
  std::vector<std::string> lines;
  bool ready = false;
  bool reaped = false;
  int status = 0;
  std::uint64_t cpu_ns = 0;  // user + system time over its whole life, from wait4
};

// Starts `/proc/self/exe __child key=value...` with the control and result pipes (their fd
// numbers are added to `args`) and keeps `inherit` (fds the child needs: pipes, sockets, a
// memfd) open across exec; every other descriptor is close-on-exec. The child dies with the
// parent (PR_SET_PDEATHSIG), so a killed parent leaves no spinner behind.
child_process spawn_child(const std::string& role, std::map<std::string, std::string> args,
                          const std::vector<int>& inherit);

// Reads whatever the listed children have written, waiting at most `timeout_ms`; splits it
// into lines. Returns false if nothing was readable.
bool pump_results(std::vector<child_process*>& children, int timeout_ms);

// Sends SIGKILL to a child that is still running and reaps it; closes its pipes.
void kill_and_reap(child_process& c);
// Waits for the child to exit (after its result pipe reached end of file).
void reap(child_process& c);
// Reaps the child if it has exited; returns whether it has.
bool try_reap(child_process& c);
std::string describe_status(int status);

// The child's side.
class parent_link {
 public:
  parent_link(int control, int result) : control_(control), result_(result) {}
  void send_ready();
  // Blocks until "go"; returns t0.
  std::uint64_t wait_go();
  // Blocks until the parent closes the control pipe (idle children).
  void wait_eof();
  void send_line(const std::string& key, const std::string& value);
  void send_line(const std::string& key, std::uint64_t value);
  void send_line(const std::string& key, double value);

 private:
  int control_;
  int result_;
};

// Pins the calling process to `cpu` if that CPU exists and this process may run on it.
// Returns whether it did.
bool pin_to_cpu(int cpu);
// Online CPUs.
int online_cpus();

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
