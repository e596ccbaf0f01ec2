// The consumer half of the README's example: attaches to "quotes" with its own offset, prints
// every record from the oldest one held, and waits for more until nothing arrives for a second.
//
//   build/examples/quotes_consumer
#include <shmlog/shmlog.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

int main() {
  try {
    auto r = shmlog::reader::attach("quotes", {.start = shmlog::start_position::oldest()});
    std::vector<std::byte> buf;
    for (;;) {
      const shmlog::poll_result p = r.poll_copy(buf);  // validated: exactly what was appended
      if (p.status == shmlog::poll_status::record) {
        std::printf("%llu\t%s\n", static_cast<unsigned long long>(p.record.offset),
                    std::string(p.record.text()).c_str());
      } else if (p.status == shmlog::poll_status::empty) {
        if (!r.wait(std::chrono::seconds(1))) break;  // quiet for a second: done
      } else if (p.status == shmlog::poll_status::lapped) {
        std::fprintf(stderr, "lapped: lost %llu bytes, resuming at the oldest record\n",
                     static_cast<unsigned long long>(p.lap.bytes_lost()));
        r.seek_oldest();
      } else {
        std::fprintf(stderr, "corrupt record at %llu: %s\n",
                     static_cast<unsigned long long>(p.corruption.offset), p.corruption.reason);
        return 1;
      }
    }
  } catch (const shmlog::error& e) {
    std::fprintf(stderr, "quotes_consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}
