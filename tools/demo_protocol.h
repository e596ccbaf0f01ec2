// shmlog demo: what its three programs share. The parent (demo_main.cc) re-executes this binary
// through /proc/self/exe with the hidden commands demo-writer (the producer, demo_producer.cc)
// and demo-reader (a replica, demo_replica.cc). They talk through pipes, one message per line:
// on the child's stdout to the parent, on its stdin from the parent.
//
// Producer -> parent:
//   progress COUNT NS KEYS                       every 100 ms while appending
//   snapshot GENERATION OFFSET BYTES SAVE_NS     a snapshot it published
//   note MESSAGE                                 anything else its snapshot service logged
//   held OFFSET                                  --seconds are up, but it appends until release
//   final OFFSET CHECKSUM KEYS COUNT NS          it stopped appending; its state at OFFSET
// Parent -> producer: start, stop, release; closing its stdin ends it.
//
// Replica -> parent:
//   event KIND OFFSET MESSAGE                    a replica_event (KIND as to_string names it)
//   load DONE TOTAL                              a snapshot loading
//   paused OFFSET                                paused (after "pause") with a state at OFFSET
//   final OFFSET CHECKSUM KEYS APPLIED FULL PARTIAL LAPS FULL_AFTER_LAP BACKLOG_TOO_SMALL REJECTED
// Parent -> replica: pause, resume, stop OFFSET (catch up to OFFSET, report final, exit);
// closing its stdin ends it.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "subprocess/subprocess.h"

namespace shmlog {
class replica;
}

namespace shmlog::cli::demo {

inline constexpr unsigned max_replicas = 16;

// --- the children's side --------------------------------------------------------------------

// Set by SIGINT/SIGTERM in a child (the parent's abort, or PR_SET_PDEATHSIG when the parent
// dies): the child stops at once.
extern volatile sig_atomic_t child_stop;

// Installs the children's SIGINT/SIGTERM handler and ignores SIGPIPE (a parent that is gone
// shows up as EPIPE where they write). Called first thing by each child program.
void catch_child_signals();

// Registers a replica with the handler for as long as it lives, so that a signal also makes a
// replica blocked in a full resync give up. For the replica program.
class stop_on_signal {
 public:
  explicit stop_on_signal(replica& r);
  ~stop_on_signal();
  stop_on_signal(const stop_on_signal&) = delete;
  stop_on_signal& operator=(const stop_on_signal&) = delete;
};

// One message to the parent: a whole line in one write(2), so it arrives whole (lines are far
// below PIPE_BUF) and nothing is left in a stdio buffer that a fork() would duplicate. False if
// the parent is gone.
bool tell_parent(std::string line);

// The parent's commands, one per line on stdin, read without blocking.
class parent_commands {
 public:
  parent_commands();
  // The next complete line, if one has arrived.
  std::optional<std::string> next();
  // The parent closed our stdin: it is done with us, or gone.
  bool closed() const;
  // Blocks until input arrives, a signal comes, or `timeout` passes.
  void wait(std::chrono::milliseconds timeout);

 private:
  subprocess::line_reader stdin_;
};

// A state checksum as both children print it: 8 hex digits.
std::string hex32(std::uint32_t v);

}  // namespace shmlog::cli::demo
