#include "demo_protocol.h"

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>

#include "cli.h"
#include "shmlog/replica.h"

namespace shmlog::cli::demo {

volatile sig_atomic_t child_stop = 0;

namespace {

std::atomic<replica*> stoppable_replica{nullptr};  // lock-free: safe to load in a handler

void on_child_stop(int) {
  child_stop = 1;
  if (replica* r = stoppable_replica.load()) r->stop();  // one relaxed atomic store
}

}  // namespace

void catch_child_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_child_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A parent that is gone shows up as EPIPE on our stdout, handled where we write.
  ::signal(SIGPIPE, SIG_IGN);
}

stop_on_signal::stop_on_signal(replica& r) {
  stoppable_replica.store(&r);
}

stop_on_signal::~stop_on_signal() {
  stoppable_replica.store(nullptr);
}

bool tell_parent(std::string line) {
  line = one_line(line);
  line += '\n';
  return subprocess::write_all(STDOUT_FILENO, line);
}

parent_commands::parent_commands()
    : stdin_(STDIN_FILENO, subprocess::line_reader::ownership::borrowed) {
  stdin_.keep_transcript(false);  // a replica may run for a day
}

std::optional<std::string> parent_commands::next() {
  stdin_.read_available();
  return stdin_.take_line();
}

bool parent_commands::closed() const {
  return stdin_.at_eof() && !stdin_.has_line();
}

void parent_commands::wait(std::chrono::milliseconds timeout) {
  if (stdin_.at_eof()) return;
  pollfd p{STDIN_FILENO, POLLIN, 0};
  ::poll(&p, 1, static_cast<int>(timeout.count()));
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08" PRIx32, v);
  return buf;
}

}  // namespace shmlog::cli::demo
