// The transports, each as a sender (the writer's side: one call delivers a record to every
// reader) and a receiver (one reader's side: blocks or waits until the next record). The loops
// in roles.h are templates over these, so no transport pays for a virtual call the others do
// not, and every transport runs exactly the same loop.
#pragma once

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/interprocess/ipc/message_queue.hpp>
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

// --- the baselines: every record is sent to every reader's own channel ----------------------

// Common no-op parts of a receiver that never loses records.
struct lossless_receiver {
  std::uint64_t folded() const noexcept { return 0; }
  bool take_gap() noexcept { return false; }
  std::uint64_t laps() const noexcept { return 0; }
  std::uint64_t corrupt() const noexcept { return 0; }
  std::uint64_t torn_views() const noexcept { return 0; }
  std::uint64_t lag_bytes() noexcept { return 0; }
  std::uint64_t max_lag() const noexcept { return 0; }
};

namespace bip = boost::interprocess;

class boost_mq_sender {
 public:
  explicit boost_mq_sender(const std::vector<std::string>& names) {
    for (const std::string& n : names)
      queues_.push_back(std::make_unique<bip::message_queue>(bip::open_only, n.c_str()));
  }
  bool send(const std::byte* data, std::size_t n) {
    for (auto& q : queues_)
      q->send(data, n, 0);  // blocks while the queue is full
    return true;
  }

 private:
  std::vector<std::unique_ptr<bip::message_queue>> queues_;
};

class boost_mq_receiver : public lossless_receiver {
 public:
  boost_mq_receiver(const std::string& name, std::size_t record_bytes)
      : queue_(bip::open_only, name.c_str()), buffer_(record_bytes) {}
  bool next(received& out) {
    bip::message_queue::size_type got = 0;
    unsigned priority = 0;
    queue_.receive(buffer_.data(), buffer_.size(), got, priority);
    decode(std::span<const std::byte>(buffer_.data(), got), out);
    return true;
  }

 private:
  bip::message_queue queue_;
  std::vector<std::byte> buffer_;
};

// A pipe per reader: a byte stream, so a record is B bytes written (looping on partial writes)
// and B bytes read.
class pipe_sender {
 public:
  explicit pipe_sender(std::vector<int> fds) : fds_(std::move(fds)) {}
  ~pipe_sender() {
    for (const int fd : fds_)
      ::close(fd);
  }
  pipe_sender(const pipe_sender&) = delete;
  pipe_sender& operator=(const pipe_sender&) = delete;
  bool send(const std::byte* data, std::size_t n) {
    for (const int fd : fds_)
      if (!write_all(fd, data, n)) return false;
    return true;
  }

 private:
  std::vector<int> fds_;
};

class pipe_receiver : public lossless_receiver {
 public:
  pipe_receiver(int fd, std::size_t record_bytes) : fd_(fd), buffer_(record_bytes) {}
  ~pipe_receiver() { ::close(fd_); }
  pipe_receiver(const pipe_receiver&) = delete;
  pipe_receiver& operator=(const pipe_receiver&) = delete;
  bool next(received& out) {
    if (!read_exact(fd_, buffer_.data(), buffer_.size())) return false;
    decode(buffer_, out);
    return true;
  }

 private:
  int fd_;
  std::vector<std::byte> buffer_;
};

// A SOCK_SEQPACKET socketpair per reader: the kernel keeps record boundaries, one send and one
// recv per record.
class socket_sender {
 public:
  explicit socket_sender(std::vector<int> fds) : fds_(std::move(fds)) {}
  ~socket_sender() {
    for (const int fd : fds_)
      ::close(fd);
  }
  socket_sender(const socket_sender&) = delete;
  socket_sender& operator=(const socket_sender&) = delete;
  bool send(const std::byte* data, std::size_t n) {
    for (const int fd : fds_) {
      ssize_t sent = 0;
      while ((sent = ::send(fd, data, n, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
      }
      if (sent != static_cast<ssize_t>(n)) return false;
    }
    return true;
  }

 private:
  std::vector<int> fds_;
};

class socket_receiver : public lossless_receiver {
 public:
  socket_receiver(int fd, std::size_t record_bytes) : fd_(fd), buffer_(record_bytes + 1) {}
  ~socket_receiver() { ::close(fd_); }
  socket_receiver(const socket_receiver&) = delete;
  socket_receiver& operator=(const socket_receiver&) = delete;
  bool next(received& out) {
    ssize_t got = 0;
    while ((got = ::recv(fd_, buffer_.data(), buffer_.size(), 0)) < 0 && errno == EINTR) {
    }
    if (got <= 0) return false;
    // One spare byte in the buffer: a message longer than a record shows up as a wrong size.
    decode(std::span<const std::byte>(buffer_.data(), static_cast<std::size_t>(got)), out);
    return true;
  }

 private:
  int fd_;
  std::vector<std::byte> buffer_;
};

// --- spsc-ring: a simple single-producer single-consumer ring ------------------------------
//
// Moving B-byte blocks from one core to another through shared memory with nothing shmlog adds
// (no record header, no offsets, no tags, no intent, no validation): a single-producer
// single-consumer ring of fixed B-byte slots in a shared memfd. The writer owns a 64-bit count
// of blocks published, the reader a count of blocks consumed, each on its own cache line.
// Unlike shmlog, the writer waits while the ring is full (back-pressure): it is lossless, where
// shmlog laps a reader and counts what it lost.
//
// Until issue 11 this transport was called floor-stream and presented as the cross-core
// streaming floor. It is not a floor: shmlog beats it at small records (see below), so it is
// named for what it is, a simple SPSC ring, the lossless baseline shmlog is compared with.
//
// Each side keeps the last value of the other side's count it loaded and looks again only when
// that value says it must (full / empty), the usual SPSC ring: without it both lines would
// cross between the cores on every block, a cost shmlog's own cached master offset avoids. Both
// wait with plain loads, no pause, like floor-pingpong. The counts are published with release
// after the block is written (writer) or read (reader) and loaded with acquire, so a slot's
// bytes are never read while written: no race at all, unlike shmlog's seqlock-style reads.
//
// Deliberately nothing more: no catch-up grace, no batched publishing. So a reader that keeps
// up looks at the published count after nearly every block and takes its line away from the
// writer each time, the cost shmlog's catch-up grace exists to avoid (docs/design.md); at small
// records shmlog with its grace beats this ring, and the README says so.

// Shared layout: the writer's count at 0, the reader's at 128 (two lines apart, so that a
// prefetcher that pulls a line's neighbour along cannot couple them), the ring from 4 KiB on,
// page-aligned as shmlog's ring is.
inline constexpr std::size_t spsc_ring_published_at = 0;
inline constexpr std::size_t spsc_ring_consumed_at = 128;
inline constexpr std::size_t spsc_ring_ring_at = 4096;

inline std::size_t spsc_ring_bytes(std::uint64_t slots, std::size_t slot_bytes) {
  return spsc_ring_ring_at + slots * slot_bytes;
}

// One process's mapping of the memfd (closed once mapped).
class spsc_ring_mapping {
 public:
  spsc_ring_mapping(int fd, std::uint64_t slots, std::size_t slot_bytes)
      : bytes_(spsc_ring_bytes(slots, slot_bytes)) {
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("spsc-ring: mmap failed");
    base_ = static_cast<std::byte*>(p);
  }
  ~spsc_ring_mapping() { ::munmap(base_, bytes_); }
  spsc_ring_mapping(const spsc_ring_mapping&) = delete;
  spsc_ring_mapping& operator=(const spsc_ring_mapping&) = delete;

  std::atomic_ref<std::uint64_t> published() const noexcept {
    return count(spsc_ring_published_at);
  }
  std::atomic_ref<std::uint64_t> consumed() const noexcept { return count(spsc_ring_consumed_at); }
  std::byte* ring() const noexcept { return base_ + spsc_ring_ring_at; }
  std::byte* ring_end() const noexcept { return base_ + bytes_; }

 private:
  std::atomic_ref<std::uint64_t> count(std::size_t at) const noexcept {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base_ + at));
  }
  std::size_t bytes_;
  std::byte* base_ = nullptr;
};

class spsc_ring_sender {
 public:
  spsc_ring_sender(int fd, std::uint64_t slots, std::size_t slot_bytes)
      : map_(fd, slots, slot_bytes), slots_(slots), slot_bytes_(slot_bytes), next_(map_.ring()) {}

  bool send(const std::byte* data, std::size_t n) {
    if (n != slot_bytes_) [[unlikely]]
      return false;
    if (published_ - consumed_seen_ == slots_) [[unlikely]]
      wait_for_room();
    std::memcpy(next_, data, n);
    next_ += slot_bytes_;
    if (next_ == map_.ring_end()) next_ = map_.ring();
    map_.published().store(++published_, std::memory_order_release);
    return true;
  }

  // How often the writer found the ring full and had to wait for the reader.
  void report(parent_link& link) const { link.send_line("full_waits", full_waits_); }

 private:
  void wait_for_room() noexcept {
    ++full_waits_;
    do {
      consumed_seen_ = map_.consumed().load(std::memory_order_acquire);
    } while (published_ - consumed_seen_ == slots_);
  }

  spsc_ring_mapping map_;
  std::uint64_t slots_;
  std::size_t slot_bytes_;
  std::byte* next_;
  std::uint64_t published_ = 0;
  std::uint64_t consumed_seen_ = 0;
  std::uint64_t full_waits_ = 0;
};

// Copies each block into its own buffer, as shmlog's poll_copy does; with `view`, reads it in
// place instead (sequence number, due time, and every byte folded, as shmlog-view does) and
// releases the slot only after.
class spsc_ring_receiver : public lossless_receiver {
 public:
  spsc_ring_receiver(int fd, std::uint64_t slots, std::size_t slot_bytes, bool view)
      : map_(fd, slots, slot_bytes),
        slot_bytes_(slot_bytes),
        next_(map_.ring()),
        buffer_(slot_bytes),
        view_(view) {}

  bool next(received& out) {
    if (consumed_ == published_seen_) {
      // Caught up with what we knew: look at the writer's line until it moves.
      ++catch_ups_;
      do {
        published_seen_ = map_.published().load(std::memory_order_acquire);
      } while (consumed_ == published_seen_);
    }
    const std::span<const std::byte> slot(next_, slot_bytes_);
    if (view_) {
      decode(slot, out);
      fold_ ^= xor_fold(slot);
    } else {
      std::memcpy(buffer_.data(), next_, slot_bytes_);
    }
    next_ += slot_bytes_;
    if (next_ == map_.ring_end()) next_ = map_.ring();
    map_.consumed().store(++consumed_, std::memory_order_release);
    if (!view_) decode(buffer_, out);
    return true;
  }

  std::uint64_t folded() const noexcept { return fold_; }
  // How often the reader had read everything it knew of and had to look at the writer's count.
  void report(parent_link& link) const { link.send_line("catch_ups", catch_ups_); }

 private:
  spsc_ring_mapping map_;
  std::size_t slot_bytes_;
  std::byte* next_;
  std::vector<std::byte> buffer_;
  bool view_;
  std::uint64_t consumed_ = 0;
  std::uint64_t published_seen_ = 0;
  std::uint64_t catch_ups_ = 0;
  std::uint64_t fold_ = 0;
};

}  // namespace shmlog::bench
