// The baselines' senders and receivers (see transports.h for what a sender and a receiver
// are): Boost.Interprocess message_queue, pipes, Unix sockets and the simple SPSC ring. Only
// shmlog_bench builds them (baselines.cc); the shmlog_bench_core library, which the installed
// `shmlog bench` links, has none, so the command line tool needs no Boost.Interprocess.
#pragma once

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "process.h"
#include "transports.h"

namespace shmlog::bench {

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

// Adds the rows of these transports to the table (table.h: add_transports). shmlog_bench's main
// calls it first, in the parent and in every child.
void add_baselines();

}  // namespace shmlog::bench
