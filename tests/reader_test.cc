// The reader: laps (before and during a read), start positions, seeking, the PSYNC decision,
// and corrupt records. The writer is in this process so each test can place it exactly.
#include "shmlog/reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <span>

#include "raw_segment.h"
#include "shmlog/testing.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::scoped_log;
using test::unique_log_name;

constexpr std::uint64_t capacity = 4096;

std::string text(char c, std::size_t n) {
  return std::string(n, c);
}

struct reader_fixture : ::testing::Test {
  scoped_log log{unique_log_name("reader")};
  writer w = writer::create(log, {.capacity = capacity});
  std::vector<std::byte> buffer;

  reader attach(start_position start = start_position::oldest()) {
    return reader::attach(log.name(), {.start = start});
  }
  // Appends 120-byte payloads (128-byte frames) until the writer has come round past `offset`.
  void lap_past(std::uint64_t offset) {
    int i = 0;
    while (r_window_first() <= offset)
      w.append(text(static_cast<char>('A' + i++ % 26), 120));
  }
  std::uint64_t r_window_first() { return inspect(log.name()).window.first_byte_offset; }
};

TEST_F(reader_fixture, LappedBeforeReadReportsWantedAndOldest) {
  reader r = attach();
  w.append("first");
  lap_past(0);
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::lapped);
  EXPECT_EQ(p.lap.wanted_offset, 0u);
  EXPECT_EQ(p.lap.oldest_offset, r.window().first_byte_offset);
  EXPECT_GT(p.lap.oldest_offset, 0u);
  EXPECT_EQ(p.lap.bytes_lost(), p.lap.oldest_offset);
  EXPECT_EQ(r.offset(), 0u);  // the reader did not move: policy is the caller's
  EXPECT_EQ(r.lapped_count(), 1u);
}

TEST_F(reader_fixture, RepeatedPollsOfOneLapCountOnce) {
  reader r = attach();
  lap_past(0);
  EXPECT_EQ(r.poll().status, poll_status::lapped);
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::lapped);
  EXPECT_EQ(r.lapped_count(), 1u);
  const log_info info = inspect(log.name());
  ASSERT_EQ(info.readers.size(), 1u);
  EXPECT_EQ(info.readers[0].lapped, 1u);
  EXPECT_EQ(info.lapped_total, 1u);
}

TEST_F(reader_fixture, LappedReaderResumesFromOldest) {
  reader r = attach();
  lap_past(0);
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::lapped);
  r.seek_oldest();
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.offset, r.window().first_byte_offset);
  EXPECT_EQ(p.record.payload.size(), 120u);
}

// --- recover_from_lap: where each lap_policy resumes --------------------------------------

constexpr std::uint64_t chunk = capacity / 16;

struct lap_recovery_fixture : reader_fixture {
  // 100-byte payloads: 112-byte frames, so records cross chunk boundaries and a checkpoint
  // names a record start after its boundary, not the boundary itself.
  void lap_past_with_odd_frames(std::uint64_t offset) {
    while (r_window_first() <= offset)
      w.append(text('x', 100));
  }
  std::uint64_t intent() { return inspect(log.name()).write_intent; }
  // Appends until the writer has reserved `chunks` more chunks.
  void advance_intent(std::uint64_t chunks) {
    const std::uint64_t start = intent();
    while (intent() < start + chunks * chunk)
      w.append(text('n', 100));
  }
  // The first record at or after `offset`, found by reading every record from the oldest
  // (not from the checkpoints, which recover_from_lap uses).
  std::uint64_t first_record_at_or_after(std::uint64_t offset) {
    reader walker = attach();
    for (;;) {
      const poll_result p = walker.poll();
      if (p.status != poll_status::record) return walker.offset();
      if (p.record.offset >= offset) return p.record.offset;
    }
  }
};

TEST_F(lap_recovery_fixture, OldestSafeResumesAtTheFirstRecordAQuarterRingAheadOfTheOldest) {
  reader r = attach();
  lap_past_with_odd_frames(0);
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::lapped);
  const backlog_window before = r.window();
  const std::uint64_t boundary = (before.first_byte_offset & ~(chunk - 1)) + capacity / 4;
  const lap_report lap = r.recover_from_lap(lap_policy::oldest_safe);
  EXPECT_EQ(lap.wanted_offset, 0u);
  EXPECT_EQ(lap.oldest_offset, before.first_byte_offset);
  EXPECT_EQ(lap.master_offset, before.master_offset);
  EXPECT_EQ(lap.resume_offset, r.offset());
  EXPECT_EQ(lap.resume_offset, first_record_at_or_after(boundary));
  EXPECT_NE(lap.resume_offset, boundary);  // the checkpoint, inside a chunk: not rounded
  EXPECT_EQ(lap.bytes_lost(), lap.resume_offset);
  // The writer stays still: the next poll delivers the record there, not another lap.
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.offset, lap.resume_offset);
  EXPECT_EQ(p.record.payload.size(), 100u);
  EXPECT_EQ(r.lapped_count(), 1u);
}

// The pathology oldest_safe fixes: from the oldest record, the writer's next chunk laps the
// reader again before it reads anything; a quarter ring ahead, three more chunks do not.
TEST_F(lap_recovery_fixture, ThreeChunksLaterOldestIsLappedAgainAndOldestSafeIsNot) {
  reader from_oldest = attach();
  reader from_safe = attach();
  lap_past_with_odd_frames(0);
  ASSERT_EQ(from_oldest.poll().status, poll_status::lapped);
  ASSERT_EQ(from_safe.poll().status, poll_status::lapped);
  const lap_report oldest = from_oldest.recover_from_lap(lap_policy::oldest);
  const lap_report safe = from_safe.recover_from_lap(lap_policy::oldest_safe);
  EXPECT_EQ(oldest.resume_offset, oldest.oldest_offset);
  EXPECT_EQ(from_oldest.offset(), r_window_first());
  EXPECT_GT(safe.resume_offset, oldest.resume_offset + capacity / 4 - chunk);
  advance_intent(capacity / 4 / chunk - 1);
  EXPECT_EQ(from_oldest.poll().status, poll_status::lapped);
  const poll_result p = from_safe.poll();
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.offset, safe.resume_offset);
}

TEST_F(lap_recovery_fixture, LatestResumesAtTheMasterOffset) {
  reader r = attach();
  lap_past_with_odd_frames(0);
  ASSERT_EQ(r.poll().status, poll_status::lapped);
  const lap_report lap = r.recover_from_lap(lap_policy::latest);
  EXPECT_EQ(lap.resume_offset, r.master_offset());
  EXPECT_EQ(r.offset(), lap.resume_offset);
  EXPECT_EQ(lap.bytes_lost(), lap.resume_offset);
  EXPECT_EQ(r.poll().status, poll_status::empty);
}

TEST_F(lap_recovery_fixture, ANotLappedReaderStaysWhereItIs) {
  reader r = attach();
  w.append("one");
  w.append("two");
  for (const lap_policy policy :
       {lap_policy::oldest, lap_policy::oldest_safe, lap_policy::latest}) {
    const lap_report lap = r.recover_from_lap(policy);
    EXPECT_EQ(lap.wanted_offset, 0u);
    EXPECT_EQ(lap.resume_offset, 0u);
    EXPECT_EQ(lap.bytes_lost(), 0u);
    EXPECT_EQ(r.offset(), 0u);
  }
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.offset, 0u);
  EXPECT_EQ(r.lapped_count(), 0u);
}

// The writer overwrites the record between the reader's copy and its validation: the copy
// may hold any mix of old and new bytes, and must not be delivered.
TEST_F(reader_fixture, LappedWhileCopyingIsNeverDeliveredAsValid) {
  reader r = attach();
  w.append(text('o', 500));
  bool lapped_in_hook = false;
  shmlog::testing::set_validation_hook(r, [&] {
    if (lapped_in_hook) return;
    lapped_in_hook = true;
    lap_past(0);
  });
  const poll_result p = r.poll_copy(buffer);
  EXPECT_TRUE(lapped_in_hook);
  EXPECT_EQ(p.status, poll_status::lapped);
  EXPECT_EQ(p.lap.wanted_offset, 0u);
}

TEST_F(reader_fixture, LappedWhileReadingAViewIsNeverDeliveredAsValid) {
  reader r = attach();
  w.append(text('o', 500));
  shmlog::testing::set_validation_hook(r, [&] { lap_past(0); });
  EXPECT_EQ(r.poll().status, poll_status::lapped);
}

// Only the record's own bytes matter: the writer overwriting the ring right up to it, but not
// into it, leaves it valid.
TEST_F(reader_fixture, WriterStoppingJustShortOfTheRecordLeavesItValid) {
  for (int i = 0; i < 8; ++i)
    w.append(text('p', 248));  // 8 frames of 256: master 2048
  reader r = attach(start_position::at(1024));
  for (int i = 0; i < 11; ++i)
    w.append(text('q', 248));
  // Ends 8 bytes short of 1024 + 4096: the intent covers the record and the header word after
  // it (which the writer clears), exactly up to 1024 + 4096.
  w.append(text('q', 240));
  EXPECT_EQ(inspect(log.name()).write_intent, 1024u + capacity);
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.text(), text('p', 248));
  w.append(text('s', 8));  // announces the next chunk: 1024's bytes may now be overwritten
  EXPECT_EQ(attach(start_position::oldest()).offset(), 1280u);
}

TEST_F(reader_fixture, ViewStillValidUntilTheWriterComesRound) {
  reader r = attach();
  w.append("view me");
  const poll_result p = r.poll();
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_TRUE(r.still_valid(p.record));
  lap_past(0);
  EXPECT_FALSE(r.still_valid(p.record));
}

TEST_F(reader_fixture, StartsAtOldestLatestOrAnOffset) {
  const std::uint64_t first = w.append("one");
  const std::uint64_t second = w.append("two");
  EXPECT_EQ(attach(start_position::oldest()).offset(), first);
  EXPECT_EQ(attach(start_position::latest()).offset(), w.master_offset());
  reader at = attach(start_position::at(second));
  EXPECT_EQ(at.poll_copy(buffer).record.text(), "two");
}

TEST_F(reader_fixture, EmptyLogPollsEmpty) {
  reader r = attach();
  EXPECT_EQ(r.poll().status, poll_status::empty);
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::empty);
}

TEST_F(reader_fixture, SeekInsideARecordIsRefusedNamingItsNeighbours) {
  const std::uint64_t a = w.append(text('a', 100));  // frame 112
  const std::uint64_t b = w.append("b");
  reader r = attach();
  try {
    r.seek(a + 56);
    FAIL() << "seek into a record was accepted";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::not_a_record_boundary);
    EXPECT_NE(std::string(e.what()).find(std::to_string(a)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(b)), std::string::npos) << e.what();
  }
  EXPECT_EQ(r.offset(), a);  // stays put
}

TEST_F(reader_fixture, SeekToAnUnalignedOffsetIsRefused) {
  w.append("x");
  reader r = attach();
  try {
    r.seek(3);
    FAIL();
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::not_a_record_boundary);
  }
}

TEST_F(reader_fixture, SeekOutsideTheWindowIsRefusedNamingTheWindow) {
  reader r = attach();
  lap_past(512);
  const backlog_window window = r.window();
  for (std::uint64_t bad : {std::uint64_t{0}, window.master_offset + 8}) {
    try {
      r.seek(bad);
      FAIL() << bad;
    } catch (const error& e) {
      EXPECT_EQ(e.code(), errc::offset_out_of_range);
      EXPECT_NE(std::string(e.what()).find(std::to_string(window.first_byte_offset)),
                std::string::npos);
    }
  }
}

TEST_F(reader_fixture, SeekFindsEveryRecordAcrossChunksAndWraps) {
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < 200; ++i)
    offsets.push_back(w.append(text('k', static_cast<std::size_t>(i % 90))));
  reader r = attach();
  const backlog_window window = r.window();
  int held = 0;
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] < window.first_byte_offset) continue;
    ++held;
    r.seek(offsets[i]);
    const poll_result p = r.poll_copy(buffer);
    ASSERT_EQ(p.status, poll_status::record);
    EXPECT_EQ(p.record.payload.size(), i % 90);
  }
  EXPECT_GT(held, 50);
}

// Found by the header fuzz (tests/header_fuzz_test.cc): seek() refused a damaged checkpoint
// without saying what the checkpoint held.
TEST_F(reader_fixture, SeekPastADamagedCheckpointNamesItsValue) {
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < 20; ++i)
    offsets.push_back(w.append(text('c', 40)));  // 48-byte frames: chunk 1 (256) and beyond
  reader r = attach();
  test::raw_segment(log.name()).header().checkpoints[1].store(301);  // not 8-aligned
  try {
    r.seek(offsets[7]);  // 336, in chunk 1
    FAIL() << "seek walked from a damaged checkpoint";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::corrupt_header);
    EXPECT_NE(std::string(e.what()).find("the checkpoint of chunk boundary 256 is 301, not"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(reader_fixture, ResyncCountsPartialOkAndPartialErr) {
  w.append("a");
  const std::uint64_t b = w.append("b");
  reader r = attach(start_position::latest());
  const history_id replid = r.history().replid;
  EXPECT_TRUE(r.resync(replid, b).is_partial());
  EXPECT_EQ(r.offset(), b);
  EXPECT_EQ(r.resync(history_id::random(), b).reason, resync_reason::unknown_history);
  EXPECT_EQ(r.resync(std::nullopt, 0).reason, resync_reason::no_history);
  EXPECT_EQ(r.resync(replid, b + 4).reason, resync_reason::not_a_record_boundary);
  EXPECT_TRUE(r.continue_after_load(replid, b).is_partial());  // the end of a full resync
  const log_info info = inspect(log.name());
  EXPECT_EQ(info.sync_partial_ok, 1u);
  EXPECT_EQ(info.sync_partial_err, 2u);  // the "no history" request was not a partial attempt
  EXPECT_EQ(info.sync_full, 1u);
}

TEST_F(reader_fixture, CorruptTagIsReportedNotDelivered) {
  reader r = attach();
  const std::uint64_t a = w.append("fine");
  w.append("after");
  test::raw_segment raw(log.name());
  const std::uint64_t word = raw.peek<std::uint64_t>(header_size + a);
  raw.poke<std::uint64_t>(header_size + a, word ^ (std::uint64_t{1} << 50));  // flip a tag bit
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::corrupt);
  EXPECT_EQ(p.corruption.offset, a);
  EXPECT_NE(std::string(p.corruption.reason).find("tag"), std::string::npos);
  EXPECT_EQ(r.offset(), a);
}

TEST_F(reader_fixture, CorruptLengthIsReportedWithoutReadingPastTheRing) {
  reader r = attach();
  const std::uint64_t a = w.append("fine");
  test::raw_segment raw(log.name());
  raw.poke<std::uint32_t>(header_size + a, 0xFFFFFFF0u);  // length field
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::corrupt);
  EXPECT_EQ(r.poll().status, poll_status::corrupt);
}

TEST_F(reader_fixture, SkipCorruptionMovesToTheNextChunkAndSaysHowFar) {
  reader r = attach();
  const std::uint64_t a = w.append("bad");
  for (int i = 0; i < 8; ++i)
    w.append(text('g', 56));  // past the 256-byte chunk boundary
  test::raw_segment raw(log.name());
  raw.poke<std::uint32_t>(header_size + a, 5000);  // longer than max payload
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::corrupt);
  const std::uint64_t skipped = r.skip_corruption();
  EXPECT_EQ(r.offset(), 256u + 16u);  // first record starting at or after 256
  EXPECT_EQ(skipped, r.offset() - a);
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.text(), text('g', 56));
}

TEST_F(reader_fixture, ReaderPublishesItsOffsetAndCountsInItsSlot) {
  reader r = attach();
  w.append("1");
  w.append("2");
  r.poll_copy(buffer);
  r.poll_copy(buffer);
  r.poll_copy(buffer);  // empty: the caller is back for more, so both are consumed
  const log_info info = inspect(log.name());
  ASSERT_EQ(info.readers.size(), 1u);
  EXPECT_EQ(info.readers[0].pid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_EQ(info.readers[0].offset, w.master_offset());
  EXPECT_EQ(info.readers[0].lag_bytes, 0u);
  EXPECT_EQ(info.readers[0].records, 2u);
}

TEST_F(reader_fixture, LabelIsShownTruncatedToFifteenBytes) {
  reader r = reader::attach(log.name(), {.label = "a-very-long-reader-label"});
  const log_info info = inspect(log.name());
  ASSERT_EQ(info.readers.size(), 1u);
  EXPECT_EQ(info.readers[0].label, "a-very-long-rea");
}

TEST_F(reader_fixture, ClosedReaderGivesItsSlotBack) {
  { reader r = attach(); }
  reader again = attach();
  EXPECT_EQ(again.slot(), 0u);
  const log_info info = inspect(log.name());
  EXPECT_EQ(info.readers.size(), 1u);
  EXPECT_EQ(info.stale_slots, 0u);
}

// A faulty reader cannot corrupt the log for others: writing through a view faults.
TEST_F(reader_fixture, ReaderMapsTheRingReadOnly) {
  w.append("protected");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  constexpr int faulted = 77;
  if (child == 0) {
    // Our own handler, so that sanitizers (which report faults and exit) do not hide the signal.
    struct sigaction on_fault {};
    on_fault.sa_handler = [](int) { ::_exit(faulted); };
    ::sigaction(SIGSEGV, &on_fault, nullptr);
    ::sigaction(SIGBUS, &on_fault, nullptr);
    reader r = reader::attach(log.name(), {.start = start_position::oldest()});
    const poll_result p = r.poll();
    if (p.status != poll_status::record) ::_exit(1);
    auto* bytes = const_cast<std::byte*>(p.record.payload.data());
    *static_cast<volatile std::byte*>(bytes) = std::byte{'X'};  // must fault
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), faulted) << "the write through a view did not fault";
  reader r = attach();
  EXPECT_EQ(r.poll_copy(buffer).record.text(), "protected");
}

TEST_F(reader_fixture, InProcessReaderSharesTheWritersMapping) {
  reader r = reader::attach(w.mapped(), {.start = start_position::oldest()});
  w.append("shared");
  EXPECT_EQ(r.poll_copy(buffer).record.text(), "shared");
}

// --- poll_copy into a caller's span ------------------------------------------------------------

std::span<std::byte> span_of(std::vector<std::byte>& v, std::size_t n) {
  return std::span<std::byte>(v).first(n);
}

TEST_F(reader_fixture, SpanExactlyTheRecordsSizeGetsIt) {
  reader r = attach();
  w.append(text('e', 100));
  std::vector<std::byte> storage(100);
  const poll_result p = r.poll_copy(std::span<std::byte>(storage));
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.text(), text('e', 100));
  EXPECT_EQ(p.record.payload.data(), storage.data());  // the view points into the span
  EXPECT_EQ(r.offset(), p.record.next_offset);
}

TEST_F(reader_fixture, SpanOneByteShortSaysTooSmallWithTheSizeAndDoesNotConsume) {
  reader r = attach();
  w.append(text('s', 100));
  w.append("next");
  std::vector<std::byte> storage(200, std::byte{'#'});
  const poll_result p = r.poll_copy(span_of(storage, 99));
  ASSERT_EQ(p.status, poll_status::too_small);
  EXPECT_EQ(p.needed_size, 100u);
  EXPECT_EQ(r.offset(), 0u);
  EXPECT_EQ(storage[0], std::byte{'#'});  // nothing copied
  // A large enough span then gets that record, and the next.
  EXPECT_EQ(r.poll_copy(span_of(storage, p.needed_size)).record.text(), text('s', 100));
  EXPECT_EQ(r.poll_copy(span_of(storage, 4)).record.text(), "next");
}

// The fast path copies records of at most 64 bytes inline; its size check must hold there too.
TEST_F(reader_fixture, SpanTooSmallForAShortRecordSaysTooSmall) {
  reader r = attach();
  w.append(text('t', 10));
  std::vector<std::byte> storage(10);
  const poll_result p = r.poll_copy(span_of(storage, 9));
  ASSERT_EQ(p.status, poll_status::too_small);
  EXPECT_EQ(p.needed_size, 10u);
  EXPECT_EQ(r.poll_copy(span_of(storage, 10)).record.text(), text('t', 10));
}

TEST_F(reader_fixture, EmptySpanGetsAnEmptyRecord) {
  reader r = attach();
  w.append("");
  const poll_result p = r.poll_copy(std::span<std::byte>());
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_TRUE(p.record.payload.empty());
}

// Across the ring's end: the padding before the record is consumed, the record is not.
TEST_F(reader_fixture, SpanTooSmallAfterPaddingStandsAtTheRecordNotThePadding) {
  reader r = attach();
  std::vector<std::byte> storage(capacity);
  for (int i = 0; i < 15; ++i)
    w.append(text('f', 248));  // 15 frames of 256: 3840, 256 bytes left before the ring's end
  for (int i = 0; i < 15; ++i)
    ASSERT_EQ(r.poll_copy(std::span<std::byte>(storage)).status, poll_status::record);
  w.append(text('g', 400));  // does not fit in 256: padding to 4096, then the record
  const poll_result p = r.poll_copy(span_of(storage, 399));
  ASSERT_EQ(p.status, poll_status::too_small);
  EXPECT_EQ(p.needed_size, 400u);
  EXPECT_EQ(r.offset(), capacity);
  const poll_result q = r.poll_copy(span_of(storage, 400));
  ASSERT_EQ(q.status, poll_status::record);
  EXPECT_EQ(q.record.offset, capacity);
}

// A record the writer overwrites while it is read: its length may be anything, so it is never
// reported as too_small, only as the lap it is.
TEST_F(reader_fixture, SpanTooSmallForARecordLappedWhileReadingSaysLapped) {
  reader r = attach();
  w.append(text('o', 500));
  std::vector<std::byte> storage(16);
  shmlog::testing::set_validation_hook(r, [&] { lap_past(0); });
  const poll_result p = r.poll_copy(std::span<std::byte>(storage));
  EXPECT_EQ(p.status, poll_status::lapped);
  EXPECT_EQ(p.lap.wanted_offset, 0u);
}

TEST_F(reader_fixture, SpanLappedWhileCopyingIsNeverDeliveredAsValid) {
  reader r = attach();
  w.append(text('o', 500));
  std::vector<std::byte> storage(1000);
  bool lapped_in_hook = false;
  shmlog::testing::set_validation_hook(r, [&] {
    if (lapped_in_hook) return;
    lapped_in_hook = true;
    lap_past(0);
  });
  const poll_result p = r.poll_copy(std::span<std::byte>(storage));
  EXPECT_TRUE(lapped_in_hook);
  EXPECT_EQ(p.status, poll_status::lapped);
}

TEST_F(reader_fixture, VectorNeverSaysTooSmall) {
  reader r = attach();
  w.append(text('v', 1000));
  std::vector<std::byte> small(1);
  const poll_result p = r.poll_copy(small);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(small.size(), 1000u);  // grown
}

// --- attach: waiting for the log to be created ------------------------------------------------

error attach_error(const std::string& name, std::chrono::milliseconds wait) {
  try {
    reader::attach(name, {.wait_for_creation = wait});
  } catch (const error& e) {
    return e;
  }
  ADD_FAILURE() << "attach did not throw";
  return error(errc::system_error, "");
}

TEST(attach_waiting, MissingLogWithoutWaitFailsAtOnce) {
  const std::string name = unique_log_name("nowait");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(attach_error(name, std::chrono::milliseconds(0)).code(), errc::not_found);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
}

TEST(attach_waiting, MissingLogIsNotFoundAtTheDeadlineNamingTheLogAndTheWait) {
  const std::string name = unique_log_name("never");
  const auto start = std::chrono::steady_clock::now();
  const error e = attach_error(name, std::chrono::milliseconds(300));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(e.code(), errc::not_found);
  EXPECT_GE(waited, std::chrono::milliseconds(300));
  EXPECT_LT(waited, std::chrono::milliseconds(3000));  // bounded: not a hang
  const std::string m = e.what();
  EXPECT_NE(m.find(name), std::string::npos) << m;
  EXPECT_NE(m.find("for it to be created (wait_for_creation 300 ms)"), std::string::npos) << m;
}

// An object whose creator never stored the magic: without waiting that is not_initialized at
// once; with a wait, attach keeps looking (the creator may finish, or someone may destroy and
// create it again) until the deadline.
TEST(attach_waiting, UnfinishedCreationIsWaitedForUntilTheDeadline) {
  scoped_log log{unique_log_name("unfinished")};
  const int fd = ::shm_open(("/" + log.name()).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const auto start = std::chrono::steady_clock::now();
  const error e = attach_error(log.name(), std::chrono::milliseconds(300));
  EXPECT_EQ(e.code(), errc::not_initialized);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
  EXPECT_NE(std::string(e.what()).find("waited"), std::string::npos) << e.what();
}

TEST(attach_waiting, OtherErrorsAreNotWaitedFor) {
  scoped_log log{unique_log_name("foreignwait")};
  const int fd = ::shm_open(("/" + log.name()).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  const char junk[] = "not a shmlog segment, and waiting will not make it one";
  ASSERT_EQ(::write(fd, junk, sizeof junk), static_cast<ssize_t>(sizeof junk));
  ASSERT_EQ(::ftruncate(fd, 8192), 0);
  ::close(fd);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(attach_error(log.name(), std::chrono::seconds(30)).code(), errc::bad_magic);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(reader_fixture, ExistingLogIsAttachedAtOnceWithAWait) {
  w.append("there");
  reader r = reader::attach(
      log.name(), {.start = start_position::oldest(), .wait_for_creation = std::chrono::hours(1)});
  EXPECT_EQ(r.poll_copy(buffer).record.text(), "there");
}

}  // namespace
}  // namespace shmlog
