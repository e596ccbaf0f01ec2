// The transports, each as a sender (the writer's side: one call delivers a record to every
// reader) and a receiver (one reader's side: blocks or waits until the next record). The loops
// in roles.h are templates over these, so no transport pays for a virtual call the others do
// not, and every transport runs exactly the same loop. This file has what every program that
// measures links (shmlog's own sender and receiver); the baselines' are in baselines.h, which
// only shmlog_bench builds.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "process.h"
#include "shmlog/reader.h"
#include "shmlog/writer.h"

namespace shmlog::bench {

// Every record starts with its sequence number; in latency mode the next 8 bytes hold the time
// it was due (intended send time), not the time it was actually sent.
struct received {
  std::uint64_t seq = 0;
  std::uint64_t intended = 0;
  std::size_t size = 0;
};

inline void decode(std::span<const std::byte> payload, received& out) noexcept {
  out.size = payload.size();
  out.seq = out.intended = 0;
  if (payload.size() >= 8) std::memcpy(&out.seq, payload.data(), 8);
  if (payload.size() >= 16) std::memcpy(&out.intended, payload.data() + 8, 8);
}

// A zero-copy consumer still reads every byte of the record where it lies: XOR the payload
// into a word (reads only, no copy), or the view figures would measure the protocol without
// the data. Callers report the result, so the compiler cannot drop the loop.
inline std::uint64_t xor_fold(std::span<const std::byte> payload) noexcept {
  const std::byte* p = payload.data();
  const std::size_t words = payload.size() / 8;
  std::uint64_t acc = 0;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w;
    std::memcpy(&w, p + 8 * i, 8);
    acc ^= w;
  }
  for (std::size_t i = words * 8; i < payload.size(); ++i)
    acc ^= static_cast<std::uint64_t>(p[i]);
  return acc;
}

// --- shmlog -----------------------------------------------------------------------------------

// The pause a polite spinner issues between loads (the library's wait() does the same).
inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

class shmlog_sender {
 public:
  explicit shmlog_sender(const std::string& name) : writer_(writer::open(name)) {}
  bool send(const std::byte* data, std::size_t n) {
    writer_.append(std::span<const std::byte>(data, n));
    return true;
  }

 private:
  writer writer_;
};

// Reads with poll_copy (validated copy) or, with `view`, with poll() and still_valid() after
// the sequence number and due time have been read out of the view. A lapped reader resumes
// where `on_lap` says (reader::recover_from_lap); every policy resumes at or before the master
// offset, so it never jumps past the writer's end marker.
// `grace` unset leaves wait_policy::catch_up_grace at the library's default.
class shmlog_receiver {
 public:
  // gating: the writer waits for this reader rather than overrun it (reader_options::gating).
  // wait_on_master: on an empty poll, spin on the master offset (reader::master_offset()) until
  // it passes the reader, instead of reader::wait(): the two-transfer read every reader did
  // before layout 4 (the master offset's line, then the record's), kept as the baseline of
  // the one-transfer read (docs/design.md).
  shmlog_receiver(const std::string& name, wait_mode mode, std::optional<std::uint64_t> grace,
                  lap_policy on_lap, bool view, bool gating = false, bool wait_on_master = false)
      : reader_(reader::attach(name, {.start = start_position::oldest(),
                                      .wait = policy(mode, grace),
                                      .label = "bench",
                                      .gating = gating})),
        on_lap_(on_lap),
        view_(view),
        wait_on_master_(wait_on_master) {}

  bool next(received& out) {
    for (;;) {
      const poll_result p = view_ ? reader_.poll() : reader_.poll_copy(buffer_);
      switch (p.status) {
        case poll_status::record:
          decode(p.record.payload, out);
          if (view_) fold_ ^= xor_fold(p.record.payload);
          if (view_ && !reader_.still_valid(p.record)) [[unlikely]] {
            // Overwritten while we read it: what we decoded may be torn. Drop it; the
            // sequence check counts it as lost.
            ++torn_views_;
            gap_ = true;
            continue;
          }
          return true;
        case poll_status::empty:
          if (wait_on_master_) {
            while (reader_.master_offset() <= reader_.offset())
              spin_pause();
          } else {
            reader_.wait(std::chrono::milliseconds(200));
          }
          continue;
        case poll_status::lapped:
          gap_ = true;
          if (p.lap.master_offset - p.lap.wanted_offset > max_lag_)
            max_lag_ = p.lap.master_offset - p.lap.wanted_offset;
          reader_.recover_from_lap(on_lap_);
          continue;
        case poll_status::corrupt:
          ++corrupt_;
          gap_ = true;
          reader_.skip_corruption();
          continue;
        case poll_status::history_changed:  // the harness's one writer never restarts
        case poll_status::too_small:        // poll_copy(span) only: never here
          ++corrupt_;
          gap_ = true;
          reader_.seek_oldest();
          continue;
      }
    }
  }

  // Whether the reader resynchronised since the last call: a jump in sequence numbers is then
  // records lost to a lap, not an error.
  bool take_gap() noexcept { return std::exchange(gap_, false); }
  std::uint64_t laps() const noexcept { return reader_.lapped_count(); }
  std::uint64_t corrupt() const noexcept { return corrupt_; }
  std::uint64_t torn_views() const noexcept { return torn_views_; }
  std::uint64_t lag_bytes() noexcept {
    const std::uint64_t master = reader_.master_offset();
    const std::uint64_t lag = master > reader_.offset() ? master - reader_.offset() : 0;
    if (lag > max_lag_) max_lag_ = lag;
    return lag;
  }
  std::uint64_t max_lag() const noexcept { return max_lag_; }
  std::uint64_t folded() const noexcept { return fold_; }

 private:
  static wait_policy policy(wait_mode mode, std::optional<std::uint64_t> grace) {
    wait_policy w{.mode = mode};
    if (grace) w.catch_up_grace = std::chrono::nanoseconds(static_cast<std::int64_t>(*grace));
    return w;
  }

  reader reader_;
  std::vector<std::byte> buffer_;
  lap_policy on_lap_;
  bool view_;
  bool wait_on_master_;
  bool gap_ = false;
  std::uint64_t corrupt_ = 0;
  std::uint64_t torn_views_ = 0;
  std::uint64_t max_lag_ = 0;
  std::uint64_t fold_ = 0;
};

}  // namespace shmlog::bench
