// The child processes of a case: writer, reader, idle reader, memcpy, and the two ends of the
// floor ping-pong (floor-stream's writer and reader are the ordinary ones over its transport). Each
// sets itself up, says "ready", waits for "go <t0>", runs, and reports "key value" lines to the
// parent.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "clock.h"
#include "harness.h"
#include "histogram.h"
#include "process.h"
#include "transports.h"

namespace shmlog::bench {

namespace {

std::uint64_t seconds_ns(const case_config& c) {
  return static_cast<std::uint64_t>(c.seconds * 1e9);
}

const std::string& arg(const std::map<std::string, std::string>& args, const std::string& key) {
  const auto it = args.find(key);
  if (it == args.end()) throw std::runtime_error("child: missing argument " + key);
  return it->second;
}

int arg_int(const std::map<std::string, std::string>& args, const std::string& key) {
  return std::atoi(arg(args, key).c_str());
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string part; std::getline(in, part, sep);)
    if (!part.empty()) out.push_back(part);
  return out;
}

wait_mode to_wait_mode(const std::string& w) {
  if (w == "spin") return wait_mode::spin;
  if (w == "yield") return wait_mode::yield;
  if (w == "sleep") return wait_mode::sleep;
  return wait_mode::adaptive;
}

// ---------------------------------------------------------------------------------------------
// The writer: throughput (as fast as it can) or latency (paced, stamping the due time).

template <class Sender>
void writer_loop(Sender& tx, const case_config& c, parent_link& link, std::uint64_t t0) {
  std::vector<std::byte> payload(c.record_bytes, std::byte{0x5A});
  const std::uint64_t warm = t0 + warmup_ns(c);
  const std::uint64_t end = warm + seconds_ns(c);
  std::uint64_t seq = 0;
  std::uint64_t warm_seq = 0;
  std::uint64_t warm_at = warm;
  std::uint64_t end_at = 0;
  std::uint64_t errors = 0;
  std::uint64_t behind_max = 0;
  bool warmed = false;
  spin_until(t0);
  if (c.mode == "throughput") {
    for (;; ++seq) {
      // The clock every 64 records keeps its cost out of the rate (< 1 ns per record).
      if (seq % 64 == 0) {
        const std::uint64_t now = now_ns();
        if (!warmed && now >= warm) {
          warmed = true;
          warm_seq = seq;
          warm_at = now;
        }
        if (now >= end) {
          end_at = now;
          break;
        }
      }
      std::memcpy(payload.data(), &seq, sizeof seq);
      if (!tx.send(payload.data(), payload.size())) [[unlikely]] {
        ++errors;
        end_at = now_ns();
        break;
      }
    }
  } else {
    // Record i is due at t0 + i / rate. The writer spins until then and stamps the record
    // with the due time, so a writer held up (a blocking send, a preemption) does not hide
    // the delay from the latency of the records queued behind it (coordinated omission).
    for (;; ++seq) {
      const std::uint64_t due = t0 + seq * 1'000'000'000u / c.rate;
      if (due >= end) break;
      const std::uint64_t now = spin_until(due);
      if (due >= warm) {
        if (!warmed) {
          warmed = true;
          warm_seq = seq;
        }
        behind_max = std::max(behind_max, now - due);
      }
      std::memcpy(payload.data(), &seq, sizeof seq);
      std::memcpy(payload.data() + 8, &due, sizeof due);
      if (!tx.send(payload.data(), payload.size())) [[unlikely]] {
        ++errors;
        break;
      }
    }
    end_at = now_ns();
  }
  // The end marker: a record like the others whose sequence field is end_flag | records sent.
  const std::uint64_t marker = end_flag | seq;
  std::memcpy(payload.data(), &marker, sizeof marker);
  if (!tx.send(payload.data(), payload.size())) ++errors;
  link.send_line("sent", seq);
  link.send_line("warm_seq", warm_seq);
  link.send_line("warm_ns", warm_at);
  link.send_line("end_ns", end_at);
  link.send_line("behind_max_ns", behind_max);
  link.send_line("errors", errors);
  // Transport-specific counters (floor-stream's full waits).
  if constexpr (requires { tx.report(link); }) tx.report(link);
}

// ---------------------------------------------------------------------------------------------
// A reader: checks every sequence number, counts what it got and, in latency mode, records
// receive time - due time for every record due after the warm-up.

template <class Receiver>
void reader_loop(Receiver& rx, const case_config& c, parent_link& link, std::uint64_t t0) {
  const bool latency = c.mode == "latency";
  const std::uint64_t warm = t0 + warmup_ns(c);
  auto hist = std::make_unique<histogram>();
  received r;
  std::uint64_t expected = 0;
  std::uint64_t total = 0;
  std::uint64_t lost = 0;
  std::uint64_t errors = 0;
  std::uint64_t measured = 0;
  std::uint64_t base = 0;  // `total` when the measured window started
  std::uint64_t window_start = t0;
  std::uint64_t window_end = 0;
  std::uint64_t writer_count = 0;
  bool warmed = false;
  bool ended = false;
  std::string first_error;
  auto error = [&](const std::string& what) {
    if (errors++ == 0) first_error = what;
  };
  while (rx.next(r)) {
    const bool gap = rx.take_gap();
    if (r.size != c.record_bytes) [[unlikely]] {
      error("record of " + std::to_string(r.size) + " bytes");
      continue;
    }
    if (r.seq & end_flag) [[unlikely]] {
      window_end = now_ns();
      writer_count = r.seq & ~end_flag;
      if (writer_count > expected && gap) {
        lost += writer_count - expected;
      } else if (writer_count != expected) {
        error("end marker says " + std::to_string(writer_count) + " records, expected " +
              std::to_string(expected));
      }
      ended = true;
      break;
    }
    if (r.seq != expected) [[unlikely]] {
      if (r.seq > expected && gap) {
        lost += r.seq - expected;
      } else {
        error("sequence " + std::to_string(r.seq) + ", expected " + std::to_string(expected));
      }
    }
    expected = r.seq + 1;
    ++total;
    if (latency) {
      const std::uint64_t now = now_ns();
      if (r.intended >= warm) {
        if (now < r.intended) [[unlikely]] {
          error("received before it was due");
        } else {
          hist->record(now - r.intended);
        }
        ++measured;
      }
      if (total % 256 == 0) rx.lag_bytes();  // after the clock read: no sample pays for it
    } else if (total % 256 == 0) {
      if (!warmed) {
        const std::uint64_t now = now_ns();
        if (now >= warm) {
          warmed = true;
          window_start = now;
          base = total;
        }
      }
      rx.lag_bytes();
    }
  }
  if (!ended) error("the stream ended without the end marker");
  if (!latency) measured = total - base;
  link.send_line("total", total);
  link.send_line("lost", lost);
  link.send_line("writer_count", writer_count);
  link.send_line("measured", measured);
  link.send_line("window_start_ns", window_start);
  link.send_line("window_end_ns", window_end);
  link.send_line("laps", rx.laps());
  link.send_line("corrupt", rx.corrupt());
  link.send_line("torn_views", rx.torn_views());
  link.send_line("max_lag_bytes", rx.max_lag());
  link.send_line("payload_xor", rx.folded());
  link.send_line("errors", errors);
  if (!first_error.empty()) link.send_line("first_error", first_error);
  if (latency) link.send_line("hist", hist->serialize());
  if constexpr (requires { rx.report(link); }) rx.report(link);
}

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

// ---------------------------------------------------------------------------------------------

// Ready, go, run; then the context switches taken while running: involuntary ones say the
// process was preempted (by another process on its CPU), voluntary ones that it blocked (a
// futex sleep, a blocking read).
template <class Body>
int run_role(parent_link& link, Body&& body) {
  link.send_ready();
  const std::uint64_t t0 = link.wait_go();
  const switch_counts before = context_switches();
  body(t0);
  const switch_counts after = context_switches();
  link.send_line("voluntary_switches", after.voluntary - before.voluntary);
  link.send_line("involuntary_switches", after.involuntary - before.involuntary);
  return 0;
}

}  // namespace

int child_main(const std::map<std::string, std::string>& args) {
  // A reader that exits early must not kill the writer with SIGPIPE: the write fails instead
  // and the writer reports it.
  ::signal(SIGPIPE, SIG_IGN);
  const case_config c = from_args(args);
  parent_link link(arg_int(args, "control"), arg_int(args, "result"));
  const std::string role = arg(args, "role");
  bool pinned = false;
  if (c.pin) pinned = pin_to_cpu(arg_int(args, "cpu"));
  link.send_line("pinned", std::uint64_t{pinned});
  const std::string& t = c.transport;
  try {
    if (role == "writer") {
      if (is_shmlog(t)) {
        shmlog_sender tx(arg(args, "name"));
        return run_role(link, [&](std::uint64_t t0) { writer_loop(tx, c, link, t0); });
      }
      if (is_floor_stream(t)) {
        floor_stream_sender tx(arg_int(args, "fd"), floor_stream_slots(c), c.record_bytes);
        return run_role(link, [&](std::uint64_t t0) { writer_loop(tx, c, link, t0); });
      }
      if (t == "boost-mq") {
        boost_mq_sender tx(split(arg(args, "queues"), ','));
        return run_role(link, [&](std::uint64_t t0) { writer_loop(tx, c, link, t0); });
      }
      std::vector<int> fds;
      for (const std::string& f : split(arg(args, "fds"), ','))
        fds.push_back(std::atoi(f.c_str()));
      if (t == "pipe") {
        pipe_sender tx(fds);
        return run_role(link, [&](std::uint64_t t0) { writer_loop(tx, c, link, t0); });
      }
      socket_sender tx(fds);
      return run_role(link, [&](std::uint64_t t0) { writer_loop(tx, c, link, t0); });
    }
    if (role == "reader") {
      if (is_shmlog(t)) {
        shmlog_receiver rx(arg(args, "name"), to_wait_mode(c.wait), c.catch_up_grace_ns,
                           t == "shmlog-view");
        return run_role(link, [&](std::uint64_t t0) { reader_loop(rx, c, link, t0); });
      }
      if (is_floor_stream(t)) {
        floor_stream_receiver rx(arg_int(args, "fd"), floor_stream_slots(c), c.record_bytes,
                                 t == "floor-stream-view");
        return run_role(link, [&](std::uint64_t t0) { reader_loop(rx, c, link, t0); });
      }
      if (t == "boost-mq") {
        boost_mq_receiver rx(arg(args, "queue"), c.record_bytes);
        return run_role(link, [&](std::uint64_t t0) { reader_loop(rx, c, link, t0); });
      }
      if (t == "pipe") {
        pipe_receiver rx(arg_int(args, "fd"), c.record_bytes);
        return run_role(link, [&](std::uint64_t t0) { reader_loop(rx, c, link, t0); });
      }
      socket_receiver rx(arg_int(args, "fd"), c.record_bytes);
      return run_role(link, [&](std::uint64_t t0) { reader_loop(rx, c, link, t0); });
    }
    if (role == "idle") {
      // Attached, holding a slot, and never polling: blocked on the control pipe.
      reader r = reader::attach(arg(args, "name"), {.label = "bench-idle"});
      link.send_ready();
      link.wait_eof();
      return 0;
    }
    if (role == "memcpy")
      return run_role(link, [&](std::uint64_t t0) { memcpy_loop(c, link, t0); });
    if (role == "pinger")
      return run_role(link,
                      [&](std::uint64_t t0) { pinger_loop(c, arg_int(args, "fd"), link, t0); });
    if (role == "ponger")
      return run_role(link, [&](std::uint64_t t0) { ponger_loop(arg_int(args, "fd"), link, t0); });
    throw std::runtime_error("unknown role " + role);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmlog_bench: %s (%s): %s\n", role.c_str(), t.c_str(), e.what());
    link.send_line("failed", std::string(e.what()));
    return 1;
  }
}

}  // namespace shmlog::bench
