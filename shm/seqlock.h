// The one seqlock of shmlog, for small blocks in shared memory that a single owner changes
// rarely and any process reads: the history block and the snapshot block of the segment header
// (owned by the process holding the writer lock) and the position fields of a reader slot
// (owned by the reader holding the slot). Private to the library.
//
// A block's fields are std::atomic words stored and loaded relaxed; `seq` orders them:
//
//   owner:  seq = odd (relaxed), release fence, fields (relaxed), seq = odd + 1 (release)
//   reader: s = seq (acquire), fields (relaxed), acquire fence, seq == s and s even: a copy of
//           one moment; otherwise retry
//
// Owners are processes, and a process can die between any two steps. So:
// - the owner's first store is `seq | 1`, not `seq + 1`: a block a dead owner left odd is made
//   even again by the next owner's write (which repairs the fields it writes), never kept odd;
// - a reader never waits unboundedly: it asks whether the owner is still alive while the block
//   is odd, and gives up after a bounded time either way (read_seqlocked's caller then reports
//   the block, the owner's pid and whether it died).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "fault.h"

namespace shmlog::detail {

// Owner only (the one process allowed to change the block). Begins a write in the constructor;
// finish() publishes it. An owner that dies before finish() leaves the block odd.
class seqlock_write {
 public:
  explicit seqlock_write(std::atomic<std::uint32_t>& seq) noexcept
      : seq_(seq), odd_(seq.load(std::memory_order_relaxed) | 1) {
    seq_.store(odd_, std::memory_order_relaxed);
    // release fence: the odd value is ordered before every field store that follows. Pairs with
    // the reader's acquire fence before its second load of seq: a reader that saw any of our
    // field stores sees seq odd or changed there.
    std::atomic_thread_fence(std::memory_order_release);
  }
  seqlock_write(const seqlock_write&) = delete;
  seqlock_write& operator=(const seqlock_write&) = delete;

  // release: pairs with the reader's first acquire load of seq; a reader that loads this value
  // sees every field stored since the constructor.
  void finish() noexcept { seq_.store(odd_ + 1, std::memory_order_release); }

 private:
  std::atomic<std::uint32_t>& seq_;
  std::uint32_t odd_;
};

// One attempt: runs copy() (relaxed loads of the fields) and says whether it saw one moment.
// Any process; never waits.
template <class Copy>
bool try_read_seqlocked(const std::atomic<std::uint32_t>& seq, Copy&& copy) {
  const std::uint32_t before = seq.load(std::memory_order_acquire);  // pairs with finish()
  if (before & 1) return false;
  copy();
  std::atomic_thread_fence(std::memory_order_acquire);  // the copy's loads before the re-check
  return seq.load(std::memory_order_relaxed) == before;
}

struct seqlock_read_result {
  bool ok = false;          // copy() saw one moment of the block
  bool owner_dead = false;  // (not ok) the block is odd and its owner is no longer alive
  std::uint32_t seq = 0;    // the last value of seq seen
};

// Retries copy() until it sees one moment of the block. While the block is odd it asks
// owner_alive() (a system call; never asked while the block is even): an owner that died
// mid-write never finishes, so the reader gives up at once. A live owner finishes a write in
// microseconds; one that does not within `patience` (stopped, or stuck) is given up on too.
// Any process.
template <class Copy, class OwnerAlive>
seqlock_read_result read_seqlocked(const std::atomic<std::uint32_t>& seq, Copy&& copy,
                                   OwnerAlive&& owner_alive, std::chrono::nanoseconds patience) {
  seqlock_read_result r;
  std::chrono::steady_clock::time_point give_up{};
  for (unsigned attempt = 0;; ++attempt) {
    if (try_read_seqlocked(seq, copy)) {
      r.ok = true;
      return r;
    }
    r.seq = seq.load(std::memory_order_acquire);
    // The owner may have finished and exited between our two looks: dead only if still odd.
    if ((r.seq & 1) && !owner_alive() && seq.load(std::memory_order_acquire) == r.seq) {
      r.owner_dead = true;
      return r;
    }
    const auto now = std::chrono::steady_clock::now();
    if (attempt == 0) give_up = now + patience;
    if (now >= give_up) return r;
    fault_injected(fault_point::seqlock_read_retry);
    std::this_thread::yield();
  }
}

}  // namespace shmlog::detail
