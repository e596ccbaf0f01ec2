// Waiting for data: every mode returns when data is there and times out when it is not; a
// sleeping reader is woken by an append; the writer issues a wake-up only after a reader has
// announced that it is going to sleep.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fault.h"
#include "raw_segment.h"
#include "shmlog/reader.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;
using test::scoped_log;
using test::unique_log_name;

struct wait_fixture : ::testing::Test {
  explicit wait_fixture(fence_mode fence = fence_mode::seq_cst)
      : w(writer::create(log, {.capacity = 4096, .writer_fence = fence})) {}

  scoped_log log{unique_log_name("wait")};
  writer w;

  reader attach(wait_mode mode) {
    return reader::attach(log.name(),
                          {.start = start_position::latest(),
                           .wait = {.mode = mode, .spin_for = 100us, .yield_for = 100us}});
  }
  // Polls the reader's slot until it says it is asleep in futex_wait. Bounded: a reader that
  // never gets there fails the test instead of hanging it.
  void await_state(reader_state wanted) {
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      const log_info info = inspect(log.name());
      if (!info.readers.empty() && info.readers[0].state == wanted) return;
      ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "reader never reached the state";
      std::this_thread::yield();
    }
  }
  // Thirty rounds: a reader falls asleep in futex_wait, one append must wake it.
  void woken_thirty_times() {
    for (int round = 0; round < 30; ++round) {
      SCOPED_TRACE(round);
      reader r = attach(wait_mode::sleep);
      bool woke = false;
      std::thread t([&] { woke = r.wait(60s); });
      await_state(reader_state::sleeping);
      w.append("wake up");
      t.join();
      EXPECT_TRUE(woke);
      std::vector<std::byte> buffer;
      EXPECT_EQ(r.poll_copy(buffer).record.text(), "wake up");
    }
  }
  std::uint32_t wake_seq() {
    return test::raw_segment(log.name()).peek<std::uint32_t>(offsetof(segment_header, wake_seq));
  }
};

TEST_F(wait_fixture, ReturnsAtOnceWhenDataIsAlreadyThere) {
  for (wait_mode mode :
       {wait_mode::spin, wait_mode::yield, wait_mode::sleep, wait_mode::adaptive}) {
    reader r = attach(mode);
    w.append("ready");
    EXPECT_TRUE(r.wait(0ns));
    EXPECT_TRUE(r.wait(1h));  // would hang if it did not look first
  }
}

TEST_F(wait_fixture, EveryModeTimesOutWhenNothingIsWritten) {
  for (wait_mode mode :
       {wait_mode::spin, wait_mode::yield, wait_mode::sleep, wait_mode::adaptive}) {
    reader r = attach(mode);
    EXPECT_FALSE(r.wait(2ms));
    EXPECT_FALSE(r.wait(0ns));
  }
}

TEST_F(wait_fixture, SleepingReaderIsWokenByAnAppend) {
  woken_thirty_times();
}

// The same with a membarrier() writer (the fence in each publish is then only a compiler one).
struct wait_with_membarrier : wait_fixture {
  wait_with_membarrier() : wait_fixture(fence_mode::membarrier) {}
};

TEST_F(wait_with_membarrier, SleepingReaderIsWokenByAnAppend) {
  EXPECT_EQ(w.fence(), fence_mode::membarrier);  // this kernel has MEMBARRIER_CMD_GLOBAL_EXPEDITED
  EXPECT_EQ(inspect(log.name()).writer_fence, fence_mode::membarrier);
  woken_thirty_times();
}

// Issue 8, item 10: the reader's membarrier() is half of the store-load fence in a membarrier
// log. When it fails (a seccomp filter, an old kernel: injected here), sleeping could lose a
// wake-up, so the reader yields instead, and still gets the record.
TEST_F(wait_with_membarrier, ReaderWhoseMembarrierFailsYieldsInsteadOfSleeping) {
  detail::set_fault_hook(
      [](detail::fault_point p) { return p == detail::fault_point::membarrier; });
  reader r = attach(wait_mode::sleep);
  bool woke = false;
  std::thread t([&] { woke = r.wait(60s); });
  await_state(reader_state::yielding);
  w.append("still delivered");
  t.join();
  detail::set_fault_hook(nullptr);
  EXPECT_TRUE(woke);
  std::vector<std::byte> buffer;
  EXPECT_EQ(r.poll_copy(buffer).record.text(), "still delivered");
  EXPECT_EQ(inspect(log.name()).readers[0].state, reader_state::reading);
}

TEST_F(wait_fixture, DefaultWriterFenceIsSeqCst) {
  EXPECT_EQ(w.fence(), fence_mode::seq_cst);
  const log_info info = inspect(log.name());
  EXPECT_EQ(info.writer_fence, fence_mode::seq_cst);
  EXPECT_EQ(info.fence, fence_mode::seq_cst);
}

TEST_F(wait_fixture, AdaptiveWaitEndsUpAsleepAndIsWoken) {
  reader r = attach(wait_mode::adaptive);
  bool woke = false;
  std::thread t([&] { woke = r.wait(60s); });
  await_state(reader_state::sleeping);
  w.append("late");
  t.join();
  EXPECT_TRUE(woke);
}

TEST_F(wait_fixture, SpinningReaderCostsTheWriterNoWakeUp) {
  w.append("first");  // a new writer wakes once at its first publish, in case of old sleepers
  const std::uint32_t before = wake_seq();
  reader r = attach(wait_mode::spin);
  std::vector<std::byte> buffer;
  for (int i = 0; i < 1000; ++i) {
    w.append("x");
    ASSERT_TRUE(r.wait(1s));
    ASSERT_EQ(r.poll_copy(buffer).status, poll_status::record);
  }
  EXPECT_EQ(wake_seq(), before);  // so futex_wake was never called
}

TEST_F(wait_fixture, OneAnnouncedSleepCausesExactlyOneWakeUp) {
  w.append("first");
  const std::uint32_t before = wake_seq();
  // What a reader does before it sleeps: bump the sleep epoch (the reader area follows the ring).
  const std::size_t epoch_at = header_size + inspect(log.name()).capacity;
  test::raw_segment raw(log.name());
  raw.poke<std::uint32_t>(epoch_at, raw.peek<std::uint32_t>(epoch_at) + 1);
  w.append("a");
  EXPECT_EQ(wake_seq(), before + 1);
  w.append("b");
  w.append("c");
  EXPECT_EQ(wake_seq(), before + 1);
}

}  // namespace
}  // namespace shmlog
