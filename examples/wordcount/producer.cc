// The producer of the word-count example: appends each word read from stdin (one per line) to
// the log and serves the daemons' snapshot requests with its own word_counts. On start it
// recovers its state from its snapshots and the backlog (shmlog::open_producer).
//
//   build/examples/wordcount_producer words /tmp/words-snapshots
#include <shmlog/shmlog.h>

#include <cstdio>
#include <string>

#include "../kv/stdin_lines.h"
#include "word_counts.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: wordcount_producer LOG SNAPSHOT_DIR\n");
    return 2;
  }
  try {
    word_counts state;
    shmlog::recovered_producer p = shmlog::open_producer(
        argv[1], state, {.snapshot_dir = argv[2], .create = shmlog::create_options{}});
    std::fprintf(stderr, "wordcount_producer: %s\n", p.report.describe(p.log).c_str());
    shmlog::snapshot_service snapshots(p.log, state, {.dir = argv[2], .check_every = 1});
    shmlog::kv::stdin_lines input;
    std::string word;
    for (;;) {
      snapshots.poll();
      const auto got = input.next(word, 10);
      if (got == shmlog::kv::stdin_lines::result::end) break;
      if (got == shmlog::kv::stdin_lines::result::idle || word.empty()) continue;
      shmlog::record_view r;
      r.offset = p.log.append(word);  // the log first, then the state: they never part
      r.payload = {reinterpret_cast<const std::byte*>(word.data()), word.size()};
      state.apply(r);
      std::printf("+OK offset %llu\n", static_cast<unsigned long long>(p.log.master_offset()));
      std::fflush(stdout);
    }
  } catch (const shmlog::error& e) {
    std::fprintf(stderr, "wordcount_producer: %s\n", e.what());
    return 1;
  }
  return 0;
}
