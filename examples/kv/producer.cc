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
// On start it recovers: the newest snapshot in SNAPSHOT_DIR plus what the backlog still holds
// after it (shmlog::open_producer), so a restarted producer continues its history and replicas
// that were reading go on without reloading.
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
    shmlog::kv::kv_state state;
    shmlog::recovered_producer p = shmlog::open_producer(
        log, state,
        {.snapshot_dir = argv[2], .create = shmlog::create_options{.capacity = 1 << 20}});
    std::fprintf(stderr, "kv_producer: %s\n", p.report.describe(p.log).c_str());
    shmlog::writer& w = p.log;
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
