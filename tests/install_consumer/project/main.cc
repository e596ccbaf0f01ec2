// Appends and reads back through the installed headers and library only.
#include <shmlog/shmlog.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

int main() {
  const std::string name = "shmlog-consumer-" + std::to_string(::getpid());
  int status = 1;
  try {
    auto w = shmlog::writer::create(name, {.capacity = 4096});
    auto r = shmlog::reader::attach(name, {.start = shmlog::start_position::oldest()});
    w.append(std::string_view("installed"));
    std::vector<std::byte> buffer;
    const shmlog::poll_result p = r.poll_copy(buffer);
    if (p.status == shmlog::poll_status::record && p.record.text() == "installed") status = 0;
  } catch (const shmlog::error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
  }
  shmlog::destroy(name);
  std::printf("consumer: %s\n", status == 0 ? "ok" : "FAILED");
  return status;
}
