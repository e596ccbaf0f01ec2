// Child processes and the pipes to them: spawn with argv and environment, stdin/stdout/stderr
// as pipes where asked, lines read under a deadline, the exit waited for under a deadline,
// signals, and a destructor that kills and reaps whatever still runs. One helper for the
// programs around the library (the demo, the bench harness, the tests); not part of the
// installed library. Linux only.
//
// Every descriptor this file creates is close-on-exec, so a second child never holds the pipes
// of a first one (a leaked stdin write end would keep the first from ever seeing end of file).
//
// Writing to a child that has gone raises SIGPIPE: programs that write to a child's stdin
// ignore SIGPIPE (the tests, the demo and the bench harness do) and see EPIPE instead.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shmlog::subprocess {

using clock = std::chrono::steady_clock;
inline constexpr clock::time_point no_deadline = clock::time_point::max();

// A child could not be started; the message names the program and the reason.
class spawn_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// write(2) all of `data`, retrying on EINTR and partial writes. False on any other error (EPIPE
// when the reading end is closed). For any caller, on any descriptor.
bool write_all(int fd, std::string_view data);

// A wait status for people: "exited with status 3", "killed by Terminated", "stopped by ...".
std::string describe_status(int status);

// Lines read from a descriptor (a pipe from a child, or a child's own stdin). Keeps what it has
// read: the complete lines not yet taken, the partial last line, and (unless told not to) the
// whole transcript for failure messages. Not thread-safe; one owner reads.
class line_reader {
 public:
  enum class ownership { owned, borrowed };
  enum class wait_result { data, eof, timeout, interrupted };

  line_reader() = default;
  // An owned descriptor is closed at end of file and by the destructor; a borrowed one (say
  // STDIN_FILENO) never is.
  explicit line_reader(int fd, ownership own = ownership::owned) : fd_(fd), own_(own) {}
  ~line_reader();
  line_reader(line_reader&& other) noexcept;
  line_reader& operator=(line_reader&& other) noexcept;
  line_reader(const line_reader&) = delete;
  line_reader& operator=(const line_reader&) = delete;

  // -1 when there is nothing to read from (none given, or end of file reached).
  int fd() const noexcept { return eof_ ? -1 : fd_; }
  // The writer closed its end (or reading failed): no more data will come.
  bool at_eof() const noexcept { return eof_ || fd_ < 0; }
  bool has_line() const noexcept;

  // The next complete line already read, without its '\n'; never waits.
  std::optional<std::string> take_line();
  // Waits until data or end of file arrives, a signal interrupts the wait, or `deadline`
  // passes; then reads once. For callers that run their own loop (and react to signals).
  wait_result read_some(clock::time_point deadline);
  // Reads whatever is there without waiting.
  void read_available();
  // The next line, waiting until `deadline` (retrying after signals). nullopt at end of file
  // once every complete line was taken, or when the deadline passed: at_eof() tells which.
  std::optional<std::string> read_line(clock::time_point deadline = no_deadline);

  // Everything read so far, taken or not (with keep_transcript(false): only what is not taken).
  const std::string& transcript() const noexcept { return buffer_; }
  // What was read and not taken as a line: lines not yet taken and a partial last line.
  std::string unread() const { return buffer_.substr(taken_); }
  // A long-lived reader (the demo's) drops taken lines instead of keeping a transcript.
  void keep_transcript(bool keep) noexcept { keep_transcript_ = keep; }

  // Waits up to `timeout` until one of `readers` can be read (data or end of file), then reads
  // once from each that can. False if none could (timeout, a signal, or all at end of file).
  // For callers that follow several children at once.
  static bool read_any(std::span<line_reader* const> readers, std::chrono::milliseconds timeout);

 private:
  friend class child;
  void read_once();
  void close_fd() noexcept;

  int fd_ = -1;
  ownership own_ = ownership::owned;
  bool eof_ = false;
  bool keep_transcript_ = true;
  std::string buffer_;
  std::size_t taken_ = 0;
};

enum class stream_mode {
  inherit,  // the parent's own descriptor
  pipe,     // a pipe held by the parent
  null,     // /dev/null
};

struct spawn_options {
  std::string program;            // the file to execute (a path: no PATH search); "" = argv[0]
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "NAME=value", over (or added to) the parent's environment
  stream_mode stdin_mode = stream_mode::pipe;
  stream_mode stdout_mode = stream_mode::pipe;
  stream_mode stderr_mode = stream_mode::inherit;
  std::vector<int> keep_fds;  // stay open in the child, under the same numbers
  // Signals set back to SIG_DFL in the child: a signal the parent ignores stays ignored across
  // exec otherwise (the tests ignore SIGPIPE; a peer they start must not).
  std::vector<int> default_signals;
  bool own_process_group = false;  // the child leads a new process group (not the terminal's)
  // The rest needs fork() (without them the child is started by posix_spawn, which does not
  // copy the parent's page tables: a sanitizer-sized test process stays cheap to spawn from).
  int parent_death_signal = 0;      // PR_SET_PDEATHSIG: sent to the child when the parent dies
  std::optional<uid_t> run_as;      // uid (and gid) to switch to before exec; needs root
  bool hold_until_release = false;  // the child waits for release() before exec: the caller
                                    // can act on its pid before the program starts
  bool keep_transcript = true;      // line_reader::keep_transcript for stdout and stderr
};

// One child process. Movable, not copyable. The destructor kills (SIGKILL; its process group
// too if it leads one) and reaps a child that was not reaped yet, and closes the pipes.
class child {
 public:
  // No process (pid -1): a place for one started later, by move-assignment.
  child() = default;
  // Starts the child; throws spawn_error naming the program if it cannot run (including a
  // failed exec, which is reported here, not as exit status 127).
  explicit child(spawn_options options);
  ~child();
  child(child&& other) noexcept;
  child& operator=(child&& other) noexcept;
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  pid_t pid() const noexcept { return pid_; }
  const std::string& program() const noexcept { return program_; }

  // hold_until_release: lets the child exec; throws spawn_error if the exec failed. Once only.
  void release();

  // False if there is no stdin pipe, it was closed, or the child closed its end (EPIPE).
  bool write_stdin(std::string_view data);
  void close_stdin() noexcept;
  bool has_stdin() const noexcept { return stdin_fd_ >= 0; }

  line_reader& out() noexcept { return out_; }
  line_reader& err() noexcept { return err_; }
  const line_reader& out() const noexcept { return out_; }
  const line_reader& err() const noexcept { return err_; }
  // The next line of stdout (or stderr with `from_stderr`), reading the other pipe meanwhile
  // so that a child blocked writing to it cannot stall the wait. nullopt at end of file or
  // when the deadline passed (the reader's at_eof() tells which).
  std::optional<std::string> read_line(clock::time_point deadline = no_deadline,
                                       bool from_stderr = false);

  // kill(2) the child; false once it was reaped (its pid may belong to another process now)
  // or if kill fails.
  bool signal(int sig) noexcept;
  // SIGSTOP, returning once the kernel reports the child stopped; false if it ended instead
  // (then it is reaped).
  bool stop();

  // Reaps the child if it has exited; never waits.
  bool try_reap();
  // Waits until the child exits or `deadline` passes, reading its pipes meanwhile (a child
  // blocked on a full pipe could not exit otherwise); then reads what it left in them. The wait
  // status, or nullopt at the deadline (the child still runs).
  std::optional<int> wait(clock::time_point deadline = no_deadline);
  // Reads stdout and stderr (those that are pipes) until both reach end of file, which also
  // waits for whatever the child forked to let go of them. False at the deadline.
  bool read_to_eof(clock::time_point deadline = no_deadline);
  // Feeds `input` to stdin while reading stdout and stderr, closes stdin, reads both to end of
  // file and waits for the exit, all before `deadline`. The wait status, or nullopt at the
  // deadline.
  std::optional<int> communicate(std::string_view input, clock::time_point deadline);
  // SIGKILL (unless it has exited already; its process group in any case, if it leads one)
  // and reap.
  void kill_and_reap() noexcept;

  bool reaped() const noexcept { return reaped_; }
  int status() const noexcept { return status_; }  // the wait status, once reaped
  // User + system CPU time over the child's life, once reaped (from wait4).
  std::chrono::nanoseconds cpu_time() const noexcept;

 private:
  void check_exec();
  void reaped_with(int status, const rusage& usage) noexcept;
  void close_all() noexcept;

  std::string program_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int gate_fd_ = -1;        // hold_until_release: write end of the gate pipe
  int exec_error_fd_ = -1;  // fork path: read end; the child writes why its exec failed
  bool own_group_ = false;
  line_reader out_;
  line_reader err_;
  bool reaped_ = false;
  int status_ = 0;
  rusage usage_{};
};

}  // namespace shmlog::subprocess
