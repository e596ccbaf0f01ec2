// A reader daemon for any state: the loop of `shmlog replica`, as a library facility. It keeps a
// replica of `state` (full resync when new, lapped or outside a new history), logs one line per
// resync with the offsets and the reason, answers queries from other processes, handles
// SIGINT/SIGTERM (clean stop) and SIGHUP (ignored, logged), tells systemd when it is ready and
// how it stands (notify_service below), and, given a state file, saves the state with the
// (history, offset) it reflects and, when it starts again, resumes from there by a partial
// resync (Redis 4.0's PSYNC2 for a restarted replica). A user's own daemon:
//
//   int main(int argc, char** argv) {
//     my_state state;
//     shmlog::run_replica_daemon(argv[1], state, {
//         .snapshot_dir = argv[2],
//         .state_file = argv[3],
//         .query = [&](std::string_view q) { return state.answer(q); }});
//   }
//
// and `shmlog::query_replica(pid, log, "...")` asks it from another process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "shmlog/export.h"
#include "shmlog/reader.h"
#include "shmlog/replica.h"
#include "shmlog/state_machine.h"

namespace shmlog {

// What a daemon's query hook answered, as the client receives it.
struct query_answer {
  // The offset the state reflected when it answered (every record before it applied); empty
  // while the daemon has no state yet or is loading a snapshot.
  std::optional<std::uint64_t> offset;
  std::string text;  // the hook's answer
};

struct replica_daemon_options {
  // Where the producer writes its snapshots (replica_options::snapshot_dir).
  std::filesystem::path snapshot_dir;
  std::string label = "replica";  // the reader slot's label
  // If the log does not exist yet (or is still being created), wait up to this long for it
  // (reader_options::wait_for_creation; a stop signal ends the wait, and the daemon returns
  // with nothing applied). Zero: fail at once.
  std::chrono::milliseconds wait_for_log{0};
  // A daemon is started and watched by a person or a supervisor: a short spin and yield, then
  // sleep, so an idle daemon costs no CPU.
  wait_policy wait{.mode = wait_mode::adaptive,
                   .spin_for = std::chrono::microseconds(20),
                   .yield_for = std::chrono::microseconds(200)};
  // PSYNC2 for the daemon itself: if set, the state is saved to this file (a snapshot file: the
  // state, its history id and offset, checksummed, written atomically) when the daemon stops,
  // and every save_every if that is not zero. At start, a file there is loaded and the daemon
  // asks for a partial resync from its offset (sync_partial_ok); only if that is refused (the
  // offset was overwritten, or the history changed beyond it) does it full-resync.
  std::filesystem::path state_file;
  std::chrono::seconds save_every{0};
  // Answers one request line from query_replica(); called on the daemon's query thread while the
  // state is locked against the replica's thread (apply and load take the same lock). Empty: the
  // daemon serves no queries and opens no socket.
  std::function<std::string(std::string_view request)> query;
  // One line per event: start, each resync (kind, offset, reason), each save, stop. Default:
  // "<UTC time> replica[<pid>] <line>" on stderr.
  std::function<void(const std::string& line)> log;
  // Called once, when the replica first holds a state (a loaded snapshot or a resumed state
  // file) and answers queries from it: the moment a supervisor may count it ready (systemd is
  // told by the daemon itself: notify_service).
  std::function<void()> on_ready;
  // Called at a clean stop, with the state locked, after the state has caught up with every
  // record published before the stop signal (a second signal gives up on that): e.g. to dump the
  // state. The argument is the offset the state reflects.
  std::function<void(std::uint64_t offset)> on_stop;
  // Tell the service manager NOTIFY_SOCKET names (systemd, Type=notify; nothing without it) the
  // daemon's progress: READY=1 when on_ready is called, STATUS= lines with the offset and the
  // lag, WATCHDOG=1 from the daemon's loop when the unit sets WatchdogSec=, STOPPING=1 when a
  // stop begins (shmlog/service.h). False for a second daemon in the same process, so that one
  // speaks for the service.
  bool notify_service = true;
};

struct replica_daemon_result {
  std::uint64_t offset = 0;  // the state reflects every record before this
  replica_stats stats;
  bool log_destroyed = false;  // it stopped because the log's name was destroyed
  // A second stop signal came before the state caught up with what was published before the
  // first: on_stop was not called and the state file not saved. catch_up_target is that offset.
  bool gave_up_catching_up = false;
  std::uint64_t catch_up_target = 0;
};

// Runs the daemon until SIGINT or SIGTERM, or until the log's name is destroyed (and every
// record still readable is applied). For that time SIGINT, SIGTERM and SIGHUP are blocked in
// the calling thread (and the daemon's threads) and taken by a thread of the daemon; the
// caller's signal mask is restored when it returns. Call it before starting other threads (or
// block the three in them), and run one daemon per process at a time. Throws
// shmlog::error for what the replica throws, a state file that exists but does not load, or a
// query socket name another process holds (naming it).
SHMLOG_API replica_daemon_result run_replica_daemon(std::string_view log, state_machine& state,
                                                    const replica_daemon_options& options);

// Asks the replica daemon of process `pid` (a reader of `log`, inspect() lists them) one
// request line. nullopt if no daemon listens there (that reader is not a replica daemon).
// Throws error(permission_denied) if the process listening on its socket is not `pid` running
// as this process's user or root (anyone may bind the name first: its answer is not trusted),
// and error(system_error) if it does not answer properly within 5 s.
SHMLOG_API std::optional<query_answer> query_replica(pid_t pid, std::string_view log,
                                                     std::string_view request);

}  // namespace shmlog
