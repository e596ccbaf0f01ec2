// The children of a case: memcpy, the two ends of the floor ping-pong, idle readers, and
// child_main, which runs the writer or reader side of the case's transport (table.cc; the loops
// are in roles.h).
#include "roles.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace shmlog::bench {

namespace {

// ---------------------------------------------------------------------------------------------
// memcpy: B bytes from one buffer to another, the same two every time, so both stay hot: in
// the 32 KiB L1 while both fit (B up to 8 KiB), in this core's 2 MiB L2 above.

void memcpy_loop(const case_config& c, parent_link& link, std::uint64_t t0) {
  const std::size_t n = c.record_bytes;
  const std::size_t alloc = (n + 63) / 64 * 64;
  auto* src = static_cast<std::byte*>(std::aligned_alloc(64, alloc));
  auto* dst = static_cast<std::byte*>(std::aligned_alloc(64, alloc));
  if (!src || !dst) throw std::runtime_error("memcpy: out of memory");
  std::memset(src, 0x5A, alloc);
  std::memset(dst, 0, alloc);
  const std::uint64_t warm = t0 + warmup_ns(c);
  const std::uint64_t end = warm + seconds_ns(c);
  // Clock checks every ~256 KiB copied, at least every 16 copies.
  const std::uint64_t per_check = std::max<std::uint64_t>(16, (256u << 10) / n);
  std::uint64_t copies = 0;
  std::uint64_t warm_copies = 0;
  std::uint64_t warm_at = 0;
  std::uint64_t now = spin_until(t0);
  while (now < end) {
    for (std::uint64_t i = 0; i < per_check; ++i) {
      std::memcpy(dst, src, n);
      // Tell the compiler the copy is used, so it is neither dropped nor merged.
      asm volatile("" : : "r"(dst), "r"(src) : "memory");
    }
    copies += per_check;
    now = now_ns();
    if (warm_at == 0 && now >= warm) {
      warm_at = now;
      warm_copies = copies;
    }
  }
  link.send_line("copies", copies - warm_copies);
  link.send_line("window_ns", now - warm_at);
  std::free(src);
  std::free(dst);
}

// ---------------------------------------------------------------------------------------------
// The floor: two processes bounce a counter on one cache line. The pinger stores 2k+1 and
// spins until it sees 2k+2; the ponger answers each odd value with the next even one. Both
// spin with plain loads (no pause instruction): this is the hardware's floor, not a polite
// spinner's.

constexpr std::uint64_t floor_stop = ~std::uint64_t{0};

std::uint64_t* map_floor_line(int fd) {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw std::runtime_error("floor: mmap failed");
  ::close(fd);
  return static_cast<std::uint64_t*>(p);
}

void pinger_loop(const case_config& c, int fd, parent_link& link, std::uint64_t t0) {
  std::atomic_ref<std::uint64_t> line(*map_floor_line(fd));
  const std::uint64_t warm = t0 + warmup_ns(c);
  const std::uint64_t end = warm + seconds_ns(c);
  auto hist = std::make_unique<histogram>();
  std::uint64_t k = 0;
  auto round_trip = [&] {
    line.store(2 * k + 1, std::memory_order_release);
    while (line.load(std::memory_order_acquire) != 2 * k + 2) {
    }
    ++k;
  };
  std::uint64_t now = spin_until(t0);
  while (now < warm) {
    round_trip();
    now = now_ns();
  }
  // Per-trip samples: one clock read per round trip, so each sample holds one clock call.
  const std::uint64_t sample_start = now;
  const std::uint64_t sample_first = k;
  std::uint64_t prev = now;
  while (prev < end) {
    round_trip();
    now = now_ns();
    hist->record((now - prev) / 2);
    prev = now;
  }
  const std::uint64_t trips = k - sample_first;
  const std::uint64_t sample_ns = prev - sample_start;
  // A batch of half as many trips with no clock read inside: the mean without the clock.
  const std::uint64_t batch = std::max<std::uint64_t>(1000, trips / 2);
  const std::uint64_t batch_start = now_ns();
  for (std::uint64_t i = 0; i < batch; ++i)
    round_trip();
  const std::uint64_t batch_ns = now_ns() - batch_start;
  line.store(floor_stop, std::memory_order_release);
  link.send_line("trips", trips);
  link.send_line("total_trips", k);
  link.send_line("sample_ns", sample_ns);
  link.send_line("batch_trips", batch);
  link.send_line("batch_ns", batch_ns);
  link.send_line("hist", hist->serialize());
}

void ponger_loop(int fd, parent_link& link, std::uint64_t /*t0*/) {
  std::atomic_ref<std::uint64_t> line(*map_floor_line(fd));
  std::uint64_t expect = 1;
  std::uint64_t answered = 0;
  for (;;) {
    std::uint64_t v;
    while ((v = line.load(std::memory_order_acquire)) != expect)
      if (v == floor_stop) goto done;
    line.store(expect + 1, std::memory_order_release);
    expect += 2;
    ++answered;
  }
done:
  link.send_line("answered", answered);
}

}  // namespace

int run_memcpy(const child_context& x) {
  return run_role(x.link, [&](std::uint64_t t0) { memcpy_loop(x.config, x.link, t0); });
}

int run_pinger(const child_context& x) {
  return run_role(x.link,
                  [&](std::uint64_t t0) { pinger_loop(x.config, x.arg_int("fd"), x.link, t0); });
}

int run_ponger(const child_context& x) {
  return run_role(x.link, [&](std::uint64_t t0) { ponger_loop(x.arg_int("fd"), x.link, t0); });
}

int run_idle_reader(const child_context& x) {
  reader r = reader::attach(x.arg("name"), {.label = "bench-idle"});
  x.link.send_ready();
  x.link.wait_eof();
  return 0;
}

const std::string& child_context::arg(const std::string& key) const {
  const auto it = args.find(key);
  if (it == args.end()) throw std::runtime_error("child: missing argument " + key);
  return it->second;
}

int child_context::arg_int(const std::string& key) const {
  return std::atoi(arg(key).c_str());
}

std::vector<std::string> child_context::arg_list(const std::string& key) const {
  std::vector<std::string> out;
  std::istringstream in(arg(key));
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) out.push_back(part);
  return out;
}

int child_main(const std::vector<std::string>& words) {
  std::map<std::string, std::string> kv;
  for (const std::string& w : words) {
    const auto eq = w.find('=');
    if (eq != std::string::npos) kv[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return child_main(kv);
}

int child_main(const std::map<std::string, std::string>& args) {
  // A reader that exits early must not kill the writer with SIGPIPE: the write fails instead
  // and the writer reports it.
  ::signal(SIGPIPE, SIG_IGN);
  const case_config c = from_args(args);
  parent_link link;
  const child_context x{c, args, link};
  const std::string& role = x.arg("role");
  bool pinned = false;
  if (c.pin) pinned = pin_to_cpu(x.arg_int("cpu"));
  link.send_line("pinned", std::uint64_t{pinned});
  const std::string& t = c.transport;
  try {
    const transport* row = find_transport(t);
    if (row == nullptr) throw std::runtime_error("unknown transport " + t);
    const std::string& side = x.arg("side");
    int (*const run)(const child_context&) = side == "writer"   ? row->writer
                                             : side == "reader" ? row->reader
                                             : side == "idle"   ? row->idle
                                                                : nullptr;
    if (run == nullptr) throw std::runtime_error("unknown role " + role);
    return run(x);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s (%s): %s\n", program_invocation_short_name, role.c_str(),
                 t.c_str(), e.what());
    link.send_line("failed", std::string(e.what()));
    return 1;
  }
}

}  // namespace shmlog::bench
