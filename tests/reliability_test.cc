// What a crash between two steps, or a hostile byte in the header or the ring, leaves: never a
// hang, never a read or write outside the ring, at worst a clear error; and the next writer
// repairs what it safely can. Each test is named after the defect it pins down. Operations that
// used to hang run under a deadline in a child process (tests/deadline.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "deadline.h"
#include "fault.h"
#include "mapping.h"
#include "raw_segment.h"
#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::outcome_within;
using test::scoped_log;
using test::unique_log_name;
using namespace std::chrono_literals;

constexpr std::size_t history_seq_at =
    offsetof(segment_header, history) + offsetof(history_block, seq);
constexpr std::size_t snapshot_seq_at =
    offsetof(segment_header, snapshot) + offsetof(snapshot_block, seq);
constexpr std::size_t master_at = offsetof(segment_header, master_offset);
constexpr std::size_t intent_at = offsetof(segment_header, write_intent);
constexpr std::size_t checkpoints_at = offsetof(segment_header, checkpoints);

// inspect(), with the first header block it could not read as the interrupted_update it was.
void inspect_and_throw_problems(const std::string& name) {
  const log_info info = inspect(name);
  if (!info.problems.empty()) throw error(errc::interrupted_update, info.problems.front());
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string bytes_of(const std::string& name, std::size_t from, std::size_t count) {
  const test::raw_segment raw(name);
  return std::string(reinterpret_cast<const char*>(raw.base()) + from, count);
}

// A log with records appended by a writer that has since closed it (no writer alive).
struct closed_log : ::testing::Test {
  scoped_log log{unique_log_name("rel")};
  std::uint64_t capacity = 4096;

  void make(std::uint64_t cap, int records, std::size_t size = 40) {
    capacity = cap;
    writer w = writer::create(log.name(), {.capacity = cap});
    for (int i = 0; i < records; ++i)
      w.append(std::string(size, static_cast<char>('a' + i % 26)));
  }
  test::raw_segment raw() const { return test::raw_segment(log.name()); }
};

// --- 1. A seqlock left odd ---------------------------------------------------------------------

TEST_F(closed_log, HistoryBlockLeftOddByADeadWriterIsReportedAtOnceNotWaitedOn) {
  make(4096, 3);
  raw().poke<std::uint32_t>(history_seq_at, 7);        // a writer died inside change_history
  const std::string pid = std::to_string(::getpid());  // the last writer: this process
  for (const auto& [what, op] : std::vector<std::pair<std::string, std::function<void()>>>{
           {"inspect", [&] { inspect_and_throw_problems(log.name()); }},
           {"attach", [&] { reader::attach(log.name()); }},
           {"attach oldest",
            [&] { reader::attach(log.name(), {.start = start_position::oldest()}); }}}) {
    const std::string outcome = outcome_within(test::hang_guard, op);
    EXPECT_TRUE(has(outcome, "error interrupted_update: log '" + log.name() +
                                 "': the history block was left half-written (seq 7) by writer "
                                 "pid " +
                                 pid + ", which died while changing it"))
        << what << ": " << outcome;
  }
}

TEST_F(closed_log, NextWriterRepairsAHistoryBlockLeftOddWithANewHistory) {
  make(4096, 3);
  const history_state before = inspect(log.name()).history;
  const std::uint64_t epoch = inspect(log.name()).history_epoch;
  raw().poke<std::uint32_t>(history_seq_at, 7);
  writer w = writer::open(log.name());
  EXPECT_TRUE(w.takeover().repaired_history);
  EXPECT_EQ(w.takeover().plan.action, history_action::restart);
  EXPECT_EQ(raw().peek<std::uint32_t>(history_seq_at), 8u);  // even again, not 7 + 2
  const log_info info = inspect(log.name());
  EXPECT_NE(info.history.replid, before.replid);
  EXPECT_TRUE(info.history.replid2.is_none());
  EXPECT_EQ(info.history_epoch, epoch + 1);  // every reader resynchronises
  EXPECT_EQ(info.window.master_offset, 3 * record_frame_size(40));
  reader r = reader::attach(log.name(), {.start = start_position::oldest()});
  std::vector<std::byte> buffer;
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::record);
}

TEST_F(closed_log, SnapshotBlockLeftOddByADeadProducerIsReportedThenWithdrawnByTheNextWriter) {
  make(4096, 1);
  {
    writer w = writer::open(log.name());
    snapshot_meta a;
    a.generation = 5;
    a.offset = 48;
    a.requests_served = 9;
    a.replid = w.history().replid;
    a.path = "/tmp/x.snap";
    w.announce_snapshot(a);
  }
  raw().poke<std::uint32_t>(snapshot_seq_at, raw().peek<std::uint32_t>(snapshot_seq_at) + 1);
  const std::string outcome =
      outcome_within(test::hang_guard, [&] { inspect_and_throw_problems(log.name()); });
  EXPECT_TRUE(has(outcome, "error interrupted_update: log '" + log.name() +
                               "': the snapshot block was left half-written"))
      << outcome;

  writer w = writer::open(log.name());
  EXPECT_TRUE(w.takeover().repaired_snapshot_announcement);
  EXPECT_FALSE(w.takeover().repaired_history);
  EXPECT_EQ(w.takeover().plan.action, history_action::keep);
  const log_info info = inspect(log.name());
  EXPECT_EQ(info.snapshot.generation, 5u);  // counts never go back
  EXPECT_EQ(info.snapshot.requests_served, 9u);
  EXPECT_TRUE(info.snapshot.replid.is_none());  // matches no history: nobody loads it
  EXPECT_EQ(info.snapshot.path, "");
}

TEST_F(closed_log, LiveWriterHoldingABlockHalfWrittenIsWaitedForOnlyABoundedTime) {
  make(4096, 1);
  writer w = writer::open(log.name());  // alive: holds the writer lock
  raw().poke<std::uint32_t>(history_seq_at, 9);
  const std::string outcome =
      outcome_within(test::hang_guard, [&] { inspect_and_throw_problems(log.name()); });
  EXPECT_TRUE(has(outcome, "error interrupted_update: log '" + log.name() +
                               "': the history block has been half-written (seq 9) by live "
                               "writer pid " +
                               std::to_string(::getpid()) + " for more than 1 s"))
      << outcome;
  raw().poke<std::uint32_t>(history_seq_at, 10);
}

// --- 2. Hostile ring bytes ---------------------------------------------------------------------

// The reproduction: a padding record at ring byte 0 as long as the ring, whose tag
// matches on every lap of a 512 KiB ring, and a master offset far beyond the write intent.
TEST_F(closed_log, PaddingAsLongAsTheRingAndAHugeMasterAreRefusedNotLoopedOver) {
  make(512 * 1024, 0);
  raw().poke<std::uint64_t>(
      header_size,
      pack_record_header(static_cast<std::uint32_t>(capacity - 8), padding_record_type, 0));
  raw().poke<std::uint64_t>(master_at, std::uint64_t{1} << 62);
  const std::string refused = "error corrupt_header: log '" + log.name() +
                              "': corrupt header: master_offset 4611686018427387904";
  for (const auto& [what, op] : std::vector<std::pair<std::string, std::function<void()>>>{
           {"attach oldest",
            [&] { reader::attach(log.name(), {.start = start_position::oldest()}); }},
           {"attach latest", [&] { reader::attach(log.name()); }},
           {"attach at 2^61",
            [&] {
              reader::attach(log.name(), {.start = start_position::at(std::uint64_t{1} << 61)});
            }},
           {"inspect", [&] { inspect(log.name()); }}}) {
    const std::string outcome = outcome_within(test::hang_guard, op);
    EXPECT_TRUE(has(outcome, refused)) << what << ": " << outcome;
  }
}

// A reader that is already attached when the bytes go bad: one poll does bounded work.
TEST_F(closed_log, PollAndSeekStopAtAPaddingRecordAtTheRingStart) {
  make(512 * 1024, 0);
  reader r = reader::attach(log.name(), {.start = start_position::oldest()});
  raw().poke<std::uint64_t>(
      header_size,
      pack_record_header(static_cast<std::uint32_t>(capacity - 8), padding_record_type, 0));
  raw().poke<std::uint64_t>(master_at, capacity);
  raw().poke<std::uint64_t>(intent_at, capacity);
  const std::string outcome = outcome_within(test::hang_guard, [&] {
    std::vector<std::byte> buffer;
    const poll_result view = r.poll();
    const poll_result copy = r.poll_copy(buffer);
    if (view.status != poll_status::corrupt || copy.status != poll_status::corrupt)
      throw std::runtime_error("not corrupt");
    throw error(errc::corrupt_record, view.corruption.reason);
  });
  EXPECT_EQ(outcome, "error corrupt_record: padding record at the start of the ring");
  EXPECT_TRUE(has(outcome_within(test::hang_guard, [&] { r.seek(8); }),
                  "error corrupt_record: log '" + log.name() +
                      "': record at offset 0 is corrupt: padding record at the start of the "
                      "ring"));
}

TEST(check_record_header_rules, PaddingIsOnlyShorterThanTheLargestRecordAndEndsTheRing) {
  constexpr std::uint64_t cap = 4096;
  constexpr std::uint64_t max = max_payload_for(cap);
  constexpr std::uint64_t master = (1 << 20) + 64;
  const auto check = [&](std::uint32_t length, record_type type, std::uint64_t offset) {
    const char* why = detail::check_record_header(pack_record_header(length, type, offset), offset,
                                                  master, cap, max);
    return std::string(why ? why : "ok");
  };
  EXPECT_EQ(check(16, padding_record_type, cap - 24), "ok");
  EXPECT_EQ(check(cap - 8, padding_record_type, 0), "padding record at the start of the ring");
  EXPECT_EQ(check(cap - 24, padding_record_type, 16),
            "padding record longer than the largest record");
  EXPECT_EQ(check(16, padding_record_type, cap), "padding record at the start of the ring");
  EXPECT_EQ(check(8, padding_record_type, cap - 24),
            "padding record does not end at the ring's end");
  EXPECT_EQ(check(static_cast<std::uint32_t>(max + 8), 1, 0),
            "record length exceeds the log's max payload");
  EXPECT_EQ(check(16, 1, cap - 16), "record runs past the ring's end");
  EXPECT_EQ(check(16, 1, master - 16), "record extends past the master offset");
  EXPECT_EQ(check(16, 1, 8 * 3), "ok");
}

TEST_F(closed_log, MasterOffsetBeyondTheWriteIntentIsACorruptPollNotARead) {
  make(4096, 2);  // records at 0 and 48
  reader r = reader::attach(log.name(), {.start = start_position::oldest()});
  std::vector<std::byte> buffer;
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::record);
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::record);
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::empty);
  // A header at 96 whose record runs past the intent (256: the reader may take a record
  // published by its header only inside it), and a master offset that would cover it.
  raw().poke<std::uint64_t>(header_size + 96, pack_record_header(200, default_record_type, 96));
  raw().poke<std::uint64_t>(master_at, raw().peek<std::uint64_t>(intent_at) + 4096);
  for (int i = 0; i < 2; ++i) {
    const poll_result p = i == 0 ? r.poll_copy(buffer) : r.poll();
    ASSERT_EQ(p.status, poll_status::corrupt);
    EXPECT_STREQ(p.corruption.reason, "master offset is beyond the write intent");
    EXPECT_EQ(p.corruption.offset, 96u);
  }
}

// 10. A checkpoint that is not 8-aligned would place a header load up to 7 bytes past the ring.
TEST_F(closed_log, CheckpointThatIsNotEightAlignedIsACorruptHeaderNotAReadPastTheRing) {
  make(4096, 200);  // wraps the ring many times
  const std::uint64_t intent = raw().peek<std::uint64_t>(intent_at);
  const std::uint64_t chunk = intent_chunk_for(capacity);
  const std::uint64_t oldest_boundary = intent - capacity;
  const std::size_t entry = checkpoints_at + 8 * ((oldest_boundary / chunk) % checkpoint_count);
  for (const std::uint64_t bad : {oldest_boundary + 1, oldest_boundary + chunk - 1,
                                  oldest_boundary - 8, oldest_boundary + capacity}) {
    SCOPED_TRACE(bad);
    raw().poke<std::uint64_t>(entry, bad);
    for (const auto& op : std::vector<std::function<void()>>{
             [&] { reader::attach(log.name(), {.start = start_position::oldest()}); },
             [&] { inspect(log.name()); }}) {
      const std::string outcome = outcome_within(test::hang_guard, op);
      EXPECT_TRUE(has(outcome, "error corrupt_header: log '" + log.name() +
                                   "': corrupt header: checkpoint for chunk boundary " +
                                   std::to_string(oldest_boundary)))
          << outcome;
    }
  }
}

// --- 3. A taking-over writer trusts nothing ----------------------------------------------------

struct bad_offsets_case {
  const char* name;
  std::size_t at;
  std::uint64_t (*value)(std::uint64_t intent, std::uint64_t capacity);
  const char* named;  // what the refusal names
};

const bad_offsets_case bad_offsets_cases[] = {
    {"master_all_ones", master_at, [](std::uint64_t, std::uint64_t) { return ~std::uint64_t{0}; },
     "master_offset 18446744073709551615"},
    {"master_unaligned", master_at, [](std::uint64_t i, std::uint64_t) { return i - 4; },
     "master_offset"},
    {"master_beyond_intent", master_at, [](std::uint64_t i, std::uint64_t) { return i + 8; },
     "master_offset"},
    {"master_a_ring_behind", master_at, [](std::uint64_t i, std::uint64_t c) { return i - c - 8; },
     "master_offset"},
    {"intent_unaligned", intent_at, [](std::uint64_t i, std::uint64_t) { return i + 8; },
     "write_intent"},
    {"intent_2_63", intent_at, [](std::uint64_t, std::uint64_t) { return std::uint64_t{1} << 63; },
     "write_intent 9223372036854775808"},
};

struct takeover_refuses : closed_log, ::testing::WithParamInterface<bad_offsets_case> {};

TEST_P(takeover_refuses, OffsetsThatNoSoundWriterLeavesAndChangesNothing) {
  make(4096, 200);
  const std::uint64_t intent = raw().peek<std::uint64_t>(intent_at);
  raw().poke<std::uint64_t>(GetParam().at, GetParam().value(intent, capacity));
  const std::string header_before = bytes_of(log.name(), 0, header_size);
  const std::string outcome = outcome_within(test::hang_guard, [&] {
    writer w = writer::open(log.name());
    w.append("would be written outside the ring");
  });
  EXPECT_TRUE(has(outcome, "error corrupt_header: log '" + log.name() +
                               "': corrupt header: " + GetParam().named))
      << outcome;
  EXPECT_TRUE(has(outcome, "no writer can continue this log")) << outcome;
  EXPECT_EQ(bytes_of(log.name(), 0, header_size), header_before);
}

INSTANTIATE_TEST_SUITE_P(EveryField, takeover_refuses, ::testing::ValuesIn(bad_offsets_cases),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(closed_log, TakeoverRefusesACheckpointOutsideItsChunkNamingTheBoundary) {
  make(4096, 200);
  const std::uint64_t intent = raw().peek<std::uint64_t>(intent_at);
  const std::uint64_t chunk = intent_chunk_for(capacity);
  const std::uint64_t boundary = intent - capacity + chunk;
  raw().poke<std::uint64_t>(checkpoints_at + 8 * ((boundary / chunk) % checkpoint_count),
                            boundary + 3);
  const std::string outcome = outcome_within(test::hang_guard, [&] { writer::open(log.name()); });
  EXPECT_TRUE(has(outcome, "error corrupt_header: log '" + log.name() +
                               "': corrupt header: the checkpoint of chunk boundary " +
                               std::to_string(boundary) + " is " + std::to_string(boundary + 3)))
      << outcome;
}

TEST_F(closed_log, TakeoverRepairsAHistoryIdThatIsNotHexWithANewHistory) {
  make(4096, 2);
  raw().poke<char>(offsetof(segment_header, history) + offsetof(history_block, replid) + 3, 'z');
  const std::string refused = outcome_within(test::hang_guard, [&] { inspect(log.name()); });
  EXPECT_TRUE(has(
      refused, "error corrupt_header: log '" + log.name() + "': corrupt header: history replid "))
      << refused;
  EXPECT_TRUE(has(refused, " is not 40 hex characters")) << refused;
  writer w = writer::open(log.name());
  EXPECT_TRUE(w.takeover().repaired_history);
  EXPECT_EQ(w.takeover().plan.action, history_action::restart);
  EXPECT_NO_THROW(inspect(log.name()));
}

// --- 4. Every documented capacity opens --------------------------------------------------------

void expect_log_of_capacity_works(const std::string& name, std::uint64_t capacity) {
  writer w = writer::create(name, {.capacity = capacity});
  EXPECT_EQ(w.max_payload(), max_payload_for(capacity));
  w.append("first");
  reader r = reader::attach(name, {.start = start_position::oldest()});
  std::vector<std::byte> buffer;
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.text(), "first");
  const log_info info = inspect(name);
  EXPECT_EQ(info.capacity, capacity);
  EXPECT_EQ(info.intent_chunk, capacity / 16);
  EXPECT_EQ(info.max_payload, max_payload_for(capacity));
}

TEST(capacity, ThirtyTwoGiBCreatesALogEveryProcessCanOpen) {
  const scoped_log log(unique_log_name("cap"));
  expect_log_of_capacity_works(log.name(), std::uint64_t{32} << 30);
  EXPECT_EQ(inspect(log.name()).max_payload, (std::uint64_t{4} << 30) - 8);
}

TEST(capacity, TheLargestCapacityCreatesALogEveryProcessCanOpen) {
#if defined(SHMLOG_TSAN)
  GTEST_SKIP() << "ThreadSanitizer shadows every mapping; 1 TiB is beyond this machine's budget";
#endif
  const scoped_log log(unique_log_name("cap"));
  expect_log_of_capacity_works(log.name(), max_capacity);
}

TEST(capacity, FailedCreationLeavesNoSegmentBehind) {
  const scoped_log log(unique_log_name("cap"));
  detail::set_fault_hook([](detail::fault_point p) -> bool {
    if (p == detail::fault_point::segment_created) throw error(errc::system_error, "injected");
    return false;
  });
  EXPECT_THROW(writer::create(log.name(), {.capacity = 4096}), error);
  detail::set_fault_hook(nullptr);
  EXPECT_FALSE(exists(log.name()));
}

// --- 6. WAIT counts readers that hold the records ------------------------------------------------

TEST(wait_counts, AReaderThatAttachedAtTheOffsetHoldsNothingBeforeIt) {
  const scoped_log log(unique_log_name("wait"));
  writer w = writer::create(log.name(), {.capacity = 4096});
  w.append("before");
  const std::uint64_t m = w.master_offset();
  reader r = reader::attach(log.name());  // latest: a replica before it loaded any state
  EXPECT_EQ(w.wait_for_readers(1, m, 0ms), 0u);
  EXPECT_EQ(w.wait_for_readers(1, 0, 0ms), 0u);
  // A state of this history up to m (what a replica's load or PSYNC says it holds).
  ASSERT_TRUE(r.resync(w.history().replid, m).is_partial());
  EXPECT_EQ(w.wait_for_readers(1, m, 0ms), 1u);
  // Having read past an offset counts too.
  w.append("after");
  std::vector<std::byte> buffer;
  reader tail = reader::attach(log.name(), {.start = start_position::at(m)});
  EXPECT_EQ(w.wait_for_readers(2, w.master_offset(), 0ms), 0u);
  ASSERT_EQ(tail.poll_copy(buffer).status, poll_status::record);
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::record);
  ASSERT_EQ(tail.poll_copy(buffer).status, poll_status::empty);  // publishes its offset
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::empty);
  EXPECT_EQ(w.wait_for_readers(2, w.master_offset(), 0ms), 2u);
}

TEST(wait_counts, AReaderOfTheOldHistoryDoesNotCountAfterARewindingBranch) {
  const scoped_log log(unique_log_name("wait"));
  history_id replid;
  std::uint64_t shared = 0;
  {
    writer w = writer::create(log.name(), {.capacity = 4096});
    replid = w.history().replid;
    w.append("a");
    shared = w.master_offset();
    w.append("b");
  }
  reader r = reader::attach(log.name(), {.start = start_position::oldest()});
  std::vector<std::byte> buffer;
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::record);  // "a": at `shared` now
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::record);  // "b": beyond it
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::empty);
  // The producer's state ends at `shared`: the log branches back there.
  writer w = writer::open(log.name(), {.state_replid = replid, .state_offset = shared});
  ASSERT_EQ(w.takeover().plan.action, history_action::branch);
  ASSERT_TRUE(w.takeover().plan.rewinds);
  EXPECT_EQ(w.wait_for_readers(1, shared, 0ms), 0u);  // its offsets are of the old history
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::history_changed);
  EXPECT_FALSE(r.resync(r.replid(), r.offset()).is_partial());  // "b" is not in the new one
  ASSERT_TRUE(r.resync(replid, shared).is_partial());           // a state up to `shared` is
  EXPECT_EQ(w.wait_for_readers(1, shared, 0ms), 1u);
}

// --- 10. The producer's state offset must start a record -----------------------------------------

TEST_F(closed_log, StateOffsetInsideARecordIsRefusedAndTheLogIsUnchanged) {
  make(4096, 3, 40);  // records at 0, 48, 96; master 144
  const history_id replid = inspect(log.name()).history.replid;
  const std::string header_before = bytes_of(log.name(), 0, header_size);
  for (const std::uint64_t inside : {std::uint64_t{56}, std::uint64_t{52}}) {
    const std::string outcome = outcome_within(test::hang_guard, [&] {
      writer::open(log.name(), {.state_replid = replid, .state_offset = inside});
    });
    EXPECT_TRUE(has(outcome, "error not_a_record_boundary: log '" + log.name() +
                                 "': writer_options::state_offset " + std::to_string(inside)))
        << outcome;
    EXPECT_EQ(bytes_of(log.name(), 0, header_size), header_before);
  }
  writer w = writer::open(log.name(), {.state_replid = replid, .state_offset = 48});
  EXPECT_EQ(w.master_offset(), 48u);
}

}  // namespace
}  // namespace shmlog
