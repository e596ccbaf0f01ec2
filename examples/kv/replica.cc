// A key-value replica: keeps a copy of the producer's state (examples/kv/producer.cc) by
// applying every record of the log, reloading from a snapshot when it is new or was lapped, and
// answers "GET key" lines on stdin from that copy: the value, or "(nil)". Each resync is
// printed to stderr as it happens.
//
//   build/examples/kv_replica kv /tmp/kv-snapshots
//   GET user:1
#include <shmlog/shmlog.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "kv_state.h"
#include "stdin_lines.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: kv_replica LOG SNAPSHOT_DIR\n");
    return 2;
  }
  try {
    shmlog::kv::kv_state state;
    shmlog::replica r(argv[1], state,
                      {.snapshot_dir = argv[2],
                       .label = "kv_replica",
                       .on_event = [](const shmlog::replica_event& e) {
                         std::fprintf(stderr, "%s at offset %llu: %s\n",
                                      std::string(shmlog::to_string(e.what)).c_str(),
                                      static_cast<unsigned long long>(e.offset), e.message.c_str());
                       }});
    shmlog::kv::stdin_lines input;
    std::string line;
    for (;;) {
      r.catch_up();  // a full resync first if one is due, then every record published so far
      const auto got = input.next(line, 0);
      if (got == shmlog::kv::stdin_lines::result::end) break;
      if (got == shmlog::kv::stdin_lines::result::idle) {
        r.wait(std::chrono::milliseconds(10));  // for a record, or a moment to look at stdin
        continue;
      }
      if (line.rfind("GET ", 0) != 0) {
        std::printf("-ERR expected GET key\n");
      } else {
        r.catch_up();  // answer from a state that holds everything published until now
        const auto value = state.get(line.substr(4));
        std::printf("%s\n", value ? value->c_str() : "(nil)");
      }
      std::fflush(stdout);
    }
  } catch (const shmlog::error& e) {
    std::fprintf(stderr, "kv_replica: %s\n", e.what());
    return 1;
  }
  return 0;
}
