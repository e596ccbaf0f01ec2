// A Redis-like key-value producer: reads commands from stdin, one per line (SET key value,
// DEL key, INCR key), applies each to its own state and appends it to the log, and answers the
// snapshot requests of replicas (examples/kv/replica.cc) by saving its state at the exact
// offset it has reached. It prints "+OK offset N" after each command it appended, or
// "-ERR reason" for one its state refused (nothing is appended then).
//
//   build/examples/kv_producer kv /tmp/kv-snapshots
//   SET user:1 ada
//   INCR hits
//
// It starts with an empty state, so on an existing log it starts a new history (every replica
// reloads). Recovering the state from the newest snapshot plus the backlog instead is what
// `shmlog produce` does (tools/produce.cc).
#include <shmlog/shmlog.h>

#include <cstdio>
#include <string>

#include "kv_state.h"
#include "stdin_lines.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: kv_producer LOG SNAPSHOT_DIR\n");
    return 2;
  }
  const std::string log = argv[1];
  try {
    shmlog::kv::kv_state state;  // empty: it reflects no history at offset 0
    auto w =
        shmlog::exists(log)
            ? shmlog::writer::open(log, {.state_replid = shmlog::history_id(), .state_offset = 0})
            : shmlog::writer::create(log, {.capacity = 1 << 20});
    // Checks the directory now, not at the first request. Fork mode: a replica's request costs
    // the producer a fork(), not the time to save the state. This producer polls once per
    // command or per 10 ms idle, so it may look at the request counter at every poll (a relaxed
    // load); one appending millions of records a second would look every 64 polls, the default.
    shmlog::snapshot_service snapshots(
        w, state, {.dir = argv[2], .mode = shmlog::snapshot_mode::fork, .check_every = 1});
    shmlog::kv::stdin_lines input;
    std::string line;
    for (;;) {
      snapshots.poll();  // the service looks at the request counter only when polled
      const auto got = input.next(line, 10);
      if (got == shmlog::kv::stdin_lines::result::end) break;
      if (got == shmlog::kv::stdin_lines::result::idle) continue;
      if (line.size() > w.max_payload()) {  // refused before the state changes
        std::printf("-ERR a command may be at most %llu bytes\n",
                    static_cast<unsigned long long>(w.max_payload()));
      } else {
        try {
          w.append(state.execute(line));  // the state first: only what it accepted is appended
          std::printf("+OK offset %llu\n", static_cast<unsigned long long>(w.master_offset()));
        } catch (const shmlog::kv::invalid_command& e) {
          std::printf("-ERR %s\n", e.what());
        }
      }
      std::fflush(stdout);
    }
  } catch (const shmlog::error& e) {
    std::fprintf(stderr, "kv_producer: %s\n", e.what());
    return 1;
  }
  return 0;
}
