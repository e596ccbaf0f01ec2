// A replica daemon for a user-defined state (word_counts.h), in a short main(): the library's
// run_replica_daemon does the rest (full resyncs, a log line per resync, SIGTERM, the state file
// it resumes from after a restart, and queries from other processes).
//
//   build/examples/wordcount_daemon words /tmp/words-snapshots /tmp/words.state
//   (another process) shmlog::query_replica(pid, "words", "COUNT shm")  ->  "3"
#include <shmlog/shmlog.h>

#include <cstdio>
#include <string>

#include "word_counts.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: wordcount_daemon LOG SNAPSHOT_DIR STATE_FILE\n");
    return 2;
  }
  word_counts state;
  try {
    shmlog::run_replica_daemon(
        argv[1], state,
        {.snapshot_dir = argv[2],
         .label = "wordcount",
         .state_file = argv[3],
         .query = [&state](std::string_view q) -> std::string {
           if (q.rfind("COUNT ", 0) != 0) throw std::invalid_argument("expected COUNT <word>");
           return std::to_string(state.count(q.substr(6)));
         },
         .on_ready =
             [] {
               std::puts("ready");  // the state is loaded and queries are answered from it
               std::fflush(stdout);
             }});
  } catch (const shmlog::error& e) {
    std::fprintf(stderr, "wordcount_daemon: %s\n", e.what());
    return 1;
  }
  return 0;
}
