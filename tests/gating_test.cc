// Gating readers (reader_options::gating; docs/design.md, "Gating readers"): the writer waits
// for a live gating reader that has no room, for at most its bound, then laps it and counts it.
// Writer and reader share one mapping here (threads); the reader killed with kill -9 is in
// process_test.cc.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "raw_segment.h"
#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;
using test::scoped_log;
using test::unique_log_name;

constexpr std::uint64_t capacity = 64 * 1024;
constexpr std::size_t payload_bytes = 100;  // frames of 112 bytes
// Enough records for three rings.
constexpr std::uint64_t three_rings = 3 * capacity / 112;

void append_records(writer& w, std::uint64_t from, std::uint64_t count) {
  for (std::uint64_t seq = from; seq < from + count; ++seq)
    w.append(test::make_payload(seq, payload_bytes));
}

// Polls `condition` under a deadline (a hang guard, never a sleep as synchronisation).
template <class condition_type>
bool eventually(condition_type condition, std::chrono::seconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::yield();
  }
  return condition();
}

// The boundary: the writer's next intent advance would overwrite the gating reader's next
// record. It waits there (counted in gating_waits) instead, the master offset stays within one
// ring of the reader, and once the reader reads on, it gets every record: no lap.
TEST(gating, AGatingReaderThatStopsMakesTheWriterWaitAndIsNeverLapped) {
  scoped_log log{unique_log_name("gate")};
  writer w = writer::create(log, {.capacity = capacity, .max_gating_wait = max_max_gating_wait});
  reader r = reader::attach(w.mapped(), {.start = start_position::oldest(), .gating = true});
  EXPECT_EQ(inspect(log).gating_readers, 1u);

  std::thread writer_thread([&] { append_records(w, 0, three_rings); });
  ASSERT_TRUE(eventually([&] { return inspect(log).gating_waits >= 1; }))
      << "the writer never waited for the gating reader";
  const log_info waiting = inspect(log);
  EXPECT_LE(waiting.window.master_offset, capacity) << "the writer went past the reader's room";
  EXPECT_EQ(waiting.gating_laps, 0u);

  std::vector<std::byte> buffer;
  std::uint64_t next_seq = 0;
  while (next_seq < three_rings) {
    const poll_result p = r.poll_copy(buffer);
    ASSERT_NE(p.status, poll_status::lapped) << "lapped at record " << next_seq;
    ASSERT_NE(p.status, poll_status::corrupt);
    if (p.status != poll_status::record) continue;
    std::uint64_t seq = 0;
    ASSERT_TRUE(test::verify_payload(p.record.payload, &seq));
    ASSERT_EQ(seq, next_seq);
    ++next_seq;
  }
  writer_thread.join();
  const log_info done = inspect(log);
  EXPECT_EQ(done.gating_laps, 0u);
  EXPECT_EQ(r.lapped_count(), 0u);
  EXPECT_EQ(done.lapped_total, 0u);
}

// The bound (set at creation) elapses: the writer laps the reader, counts it once, and goes
// on; a reader already lapped gates nothing, so the next rings cost no further wait.
TEST(gating, WhenTheBoundElapsesTheWriterLapsTheGatingReaderOnceAndCountsIt) {
  scoped_log log{unique_log_name("gate")};
  writer w = writer::create(log, {.capacity = capacity, .max_gating_wait = 20ms});
  reader r = reader::attach(w.mapped(), {.start = start_position::oldest(), .gating = true});

  const auto start = std::chrono::steady_clock::now();
  append_records(w, 0, three_rings);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms) << "the writer did not wait";

  const log_info info = inspect(log);
  EXPECT_EQ(info.gating_waits, 1u);
  EXPECT_EQ(info.gating_laps, 1u);
  EXPECT_EQ(info.max_gating_wait_ns, 20'000'000u);
  ASSERT_EQ(info.readers.size(), 1u);
  EXPECT_TRUE(info.readers[0].gating);
  EXPECT_EQ(r.poll().status, poll_status::lapped);

  // Recovered, it gates again.
  r.recover_from_lap(lap_policy::latest);
  append_records(w, three_rings, three_rings);
  EXPECT_EQ(inspect(log).gating_laps, 2u);
}

// writer_options::max_gating_wait overrides the log's bound; zero laps at once, without a wait.
TEST(gating, AWritersZeroBoundLapsAGatingReaderWithoutWaiting) {
  scoped_log log{unique_log_name("gate")};
  create(log, {.capacity = capacity, .max_gating_wait = max_max_gating_wait});
  writer w = writer::open(log, {.max_gating_wait = 0ns});
  reader r = reader::attach(w.mapped(), {.start = start_position::oldest(), .gating = true});
  append_records(w, 0, three_rings);  // would take 60 s with the log's bound
  EXPECT_EQ(inspect(log).gating_laps, 1u);
  EXPECT_EQ(r.poll().status, poll_status::lapped);
}

// A plain reader is lapped as before: the writer never waits for it.
TEST(gating, ANonGatingReaderIsLappedAsBefore) {
  scoped_log log{unique_log_name("gate")};
  writer w = writer::create(log, {.capacity = capacity, .max_gating_wait = max_max_gating_wait});
  reader r = reader::attach(w.mapped(), {.start = start_position::oldest()});
  append_records(w, 0, three_rings);
  const log_info info = inspect(log);
  EXPECT_EQ(info.gating_readers, 0u);
  EXPECT_EQ(info.gating_waits, 0u);
  EXPECT_EQ(info.gating_laps, 0u);
  EXPECT_EQ(r.poll().status, poll_status::lapped);
}

// A gating reader that detaches takes its count with it; one that attaches to its slot as a
// plain reader does not inherit the flag.
TEST(gating, DetachingAGatingReaderReleasesTheWriter) {
  scoped_log log{unique_log_name("gate")};
  writer w = writer::create(log, {.capacity = capacity, .max_gating_wait = max_max_gating_wait});
  {
    reader r = reader::attach(w.mapped(), {.start = start_position::oldest(), .gating = true});
    EXPECT_EQ(inspect(log).gating_readers, 1u);
  }
  EXPECT_EQ(inspect(log).gating_readers, 0u);
  reader plain = reader::attach(w.mapped(), {.start = start_position::oldest()});
  append_records(w, 0, three_rings);
  EXPECT_EQ(inspect(log).gating_waits, 0u);
}

TEST(gating, ABoundAboveSixtySecondsIsRefusedNamingIt) {
  scoped_log log{unique_log_name("gate")};
  try {
    create(log, {.capacity = capacity, .max_gating_wait = 61s});
    FAIL() << "created";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("max gating wait 61000000000 ns"), std::string::npos)
        << e.what();
  }
  create(log, {.capacity = capacity});
  try {
    writer::open(log, {.max_gating_wait = -1ns});
    FAIL() << "opened";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("writer_options::max_gating_wait -1 ns"),
              std::string::npos)
        << e.what();
  }
}

// The bytes docs/layout.md names: the fields sit in what used to be reserved, at the offsets
// it gives, so the layout version did not change.
TEST(gating, TheGatingFieldsSitWhereLayoutMdSays) {
  scoped_log log{unique_log_name("gate")};
  writer w = writer::create(log, {.capacity = capacity, .max_gating_wait = 20ms});
  reader r = reader::attach(w.mapped(), {.start = start_position::oldest(), .gating = true});
  append_records(w, 0, three_rings);
  const test::raw_segment raw(log.name());
  const std::size_t area = header_size + capacity;
  EXPECT_EQ(raw.peek<std::uint32_t>(8), 4u);  // layout_version
  EXPECT_EQ(raw.peek<std::uint64_t>(80), 20'000'000u);
  EXPECT_EQ(raw.peek<std::uint64_t>(288), 1u);                               // gating_waits
  EXPECT_EQ(raw.peek<std::uint64_t>(296), 1u);                               // gating_laps
  EXPECT_EQ(raw.peek<std::uint32_t>(area + 4), 1u);                          // gating_readers
  EXPECT_EQ(raw.peek<std::uint32_t>(area + 128 + 128 * r.slot() + 68), 1u);  // slot's gating
}

}  // namespace
}  // namespace shmlog
