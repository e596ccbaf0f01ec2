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
  // An error thrown inside the library is caught here by its type, shared library included
  // (shmlog::error's typeinfo is exported).
  bool caught = false;
  try {
    shmlog::reader::attach(name + "-missing");
  } catch (const shmlog::error& e) {
    caught = e.code() == shmlog::errc::not_found && shmlog::to_string(e.code()) == "not_found";
  }
  if (!caught) {
    std::fprintf(stderr, "consumer: attaching to a missing log did not throw errc::not_found\n");
    status = 1;
  }
  shmlog::destroy(name);
  if (std::string(SHMLOG_VERSION) != SHMLOG_FOUND_VERSION) {
    std::fprintf(stderr, "consumer: shmlog/version.h says %s, the package %s\n", SHMLOG_VERSION,
                 SHMLOG_FOUND_VERSION);
    status = 1;
  }
  std::printf("consumer: shmlog %s: %s\n", SHMLOG_VERSION, status == 0 ? "ok" : "FAILED");
  return status;
}
