// The children's loops, shared by every transport (templates over its sender or receiver, so
// that no transport pays for a virtual call the others do not): each child sets itself up, says
// "ready", waits for "go <t0>", runs, and reports "key value" lines to the parent. The rows of
// table.cc instantiate them; roles.cc has the rest (memcpy, the floor ping-pong, idle readers,
// and child_main, which picks the row).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "clock.h"
#include "harness.h"
#include "histogram.h"
#include "process.h"
#include "shmlog/reader.h"
#include "table.h"
#include "transports.h"

namespace shmlog::bench {

inline std::uint64_t seconds_ns(const case_config& c) {
  return static_cast<std::uint64_t>(c.seconds * 1e9);
}

inline wait_mode to_wait_mode(const std::string& w) {
  if (w == "spin" || w == "spin-master") return wait_mode::spin;
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
  // Transport-specific counters (spsc-ring's full waits).
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

// A writer side or a reader side: ready, go, the loop, then the context switches.
template <class Sender>
int run_writer(Sender& tx, const child_context& x) {
  return run_role(x.link, [&](std::uint64_t t0) { writer_loop(tx, x.config, x.link, t0); });
}
template <class Receiver>
int run_reader(Receiver& rx, const child_context& x) {
  return run_role(x.link, [&](std::uint64_t t0) { reader_loop(rx, x.config, x.link, t0); });
}

// The other roles (roles.cc).
int run_memcpy(const child_context& x);
int run_pinger(const child_context& x);
int run_ponger(const child_context& x);
// Attached, holding a slot, and never polling: blocked on the control pipe until it closes.
int run_idle_reader(const child_context& x);

}  // namespace shmlog::bench
