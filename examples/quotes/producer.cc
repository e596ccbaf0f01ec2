// The producer half of the README's example: creates the log "quotes" (or opens it if it
// exists) and appends one record per price update, both by copy and in place.
//
//   build/examples/quotes_producer 1000      # append 1000 updates, then exit
#include <shmlog/shmlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

int main(int argc, char** argv) {
  const long updates = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 10;
  try {
    auto w = shmlog::writer::open_or_create("quotes", {.capacity = 1 << 20});
    for (long i = 0; i < updates; ++i) {
      if (i % 2 == 0) {
        char line[32];
        const int n = std::snprintf(line, sizeof line, "AAPL %.2f", 189.0 + (i % 100) / 100.0);
        w.append(std::string_view(line, static_cast<std::size_t>(n)));  // copy one record in
      } else {
        auto c = w.claim(32);  // or build the record in place, straight in shared memory
        const int n = std::snprintf(reinterpret_cast<char*>(c.payload().data()), c.payload().size(),
                                    "MSFT %.2f", 411.0 + (i % 50) / 10.0);
        c.commit(static_cast<std::size_t>(n));
      }
    }
    std::printf("appended %ld records; master offset %llu\n", updates,
                static_cast<unsigned long long>(w.master_offset()));
  } catch (const shmlog::error& e) {
    std::fprintf(stderr, "quotes_producer: %s\n", e.what());
    return 1;
  }
  return 0;
}
