// The writer: batches, claim/commit in place, the single-writer rule, and taking over a log.
#include "shmlog/writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "raw_segment.h"
#include "shmlog/reader.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::scoped_log;
using test::unique_log_name;

constexpr std::uint64_t capacity = 4096;

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s));
}

struct writer_fixture : ::testing::Test {
  scoped_log log{unique_log_name("writer")};
  writer w = writer::create(log, {.capacity = capacity});
  reader r = reader::attach(log.name(), {.start = start_position::oldest()});
  std::vector<std::byte> buffer;

  std::string next() {
    const poll_result p = r.poll_copy(buffer);
    return p.status == poll_status::record ? std::string(p.record.text()) : "<none>";
  }
};

TEST(writer_open_or_create, CreatesThenOpensTheSameLogAndRefusesAnotherCapacity) {
  scoped_log log(unique_log_name("ooc"));
  std::uint64_t first_end = 0;
  {
    writer w = writer::open_or_create(log.name(), {.capacity = 4096, .reader_slots = 3});
    w.append("one");
    first_end = w.master_offset();
  }
  {
    // Opened, not created again: the record and the creation-time slot count are still there.
    writer w = writer::open_or_create(log.name(), {.capacity = 4096});
    EXPECT_EQ(w.master_offset(), first_end);
    EXPECT_EQ(inspect(log.name()).reader_slot_count, 3u);
    // A live writer keeps the role: a second one is refused, as open() refuses it.
    try {
      writer::open_or_create(log.name(), {.capacity = 4096});
      ADD_FAILURE() << "a second writer was let in";
    } catch (const error& e) {
      EXPECT_EQ(e.code(), errc::writer_exists);
    }
  }
  try {
    writer::open_or_create(log.name(), {.capacity = 8192});
    ADD_FAILURE() << "another capacity was accepted";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("exists with capacity 4096, not the 8192 asked for"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(writer_fixture, AppendReturnsTheRecordsOffset) {
  EXPECT_EQ(w.append("abc"), 0u);
  EXPECT_EQ(w.append("defghijkl"), 16u);
  EXPECT_EQ(w.master_offset(), 16u + 24u);
}

TEST_F(writer_fixture, RecordTypeTravelsWithTheRecord) {
  w.append(bytes("typed"), 77);
  const poll_result p = r.poll();
  EXPECT_EQ(p.record.type, 77);
}

TEST_F(writer_fixture, BatchIsPublishedWithOneMasterStore) {
  const record_ref batch[] = {{bytes("one")}, {bytes("two"), 9}, {bytes("three")}};
  // Nothing of the batch is visible until it is published: the hook sees the master offset
  // as the batch leaves it, i.e. all three or none.
  EXPECT_EQ(w.append_batch(batch), 0u);
  EXPECT_EQ(next(), "one");
  const poll_result two = r.poll();
  EXPECT_EQ(two.record.type, 9);
  EXPECT_EQ(next(), "three");
  EXPECT_EQ(next(), "<none>");
}

TEST_F(writer_fixture, EmptyBatchAppendsNothing) {
  w.append("x");
  EXPECT_EQ(w.append_batch({}), w.master_offset());
  EXPECT_EQ(w.master_offset(), 16u);
}

TEST_F(writer_fixture, BatchLargerThanAQuarterOfTheRingIsPublishedInWholeParts) {
  std::vector<std::string> payloads(40, std::string(120, 'b'));  // 40 x 128 B > a whole ring
  std::vector<record_ref> batch;
  for (const auto& p : payloads)
    batch.push_back({bytes(p)});
  w.append_batch(batch);
  EXPECT_EQ(w.master_offset(), 40u * 128u);
  reader late = reader::attach(log.name(), {.start = start_position::oldest()});
  int read = 0;
  for (poll_result p = late.poll_copy(buffer); p.status == poll_status::record;
       p = late.poll_copy(buffer)) {
    EXPECT_EQ(p.record.text(), payloads[0]);
    ++read;
  }
  EXPECT_GT(read, 20);
}

TEST_F(writer_fixture, ClaimIsInvisibleUntilCommitted) {
  auto c = w.claim(16);
  EXPECT_EQ(c.offset(), 0u);
  std::memcpy(c.payload().data(), "in place", 8);
  EXPECT_EQ(next(), "<none>");
  c.commit(8);
  EXPECT_FALSE(c.pending());
  EXPECT_EQ(next(), "in place");
  EXPECT_EQ(w.master_offset(), 16u);  // the committed size, not the claimed one
}

TEST_F(writer_fixture, AbortedClaimLeavesNothingBehind) {
  {
    auto c = w.claim(100);
    std::memset(c.payload().data(), 'z', 100);
  }  // destroyed uncommitted: aborted
  EXPECT_EQ(w.master_offset(), 0u);
  w.append("after");
  EXPECT_EQ(next(), "after");
}

TEST_F(writer_fixture, AppendWhileAClaimIsOpenIsRefused) {
  auto c = w.claim(8);
  try {
    w.append("no");
    FAIL();
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::claim_pending);
  }
  EXPECT_THROW(w.claim(8), error);
  c.commit(0);
  w.append("yes");
  EXPECT_EQ(next(), "");
  EXPECT_EQ(next(), "yes");
}

TEST_F(writer_fixture, CommitMoreThanClaimedIsRefused) {
  auto c = w.claim(8);
  EXPECT_THROW(c.commit(9), error);
  c.commit(8);
}

// A claim too big for the room before the ring's end goes to ring byte 0; committing fewer
// bytes, which would have fitted, must still publish it there (after padding).
TEST_F(writer_fixture, ClaimThatWrappedStaysWrappedWhenCommittedSmaller) {
  while (w.master_offset() < capacity - 64)
    w.append(std::string(56, 'f'));
  while (next() != "<none>") {
  }
  auto c = w.claim(200);
  EXPECT_EQ(c.offset(), capacity);
  std::memcpy(c.payload().data(), "tiny", 4);
  c.commit(4);
  EXPECT_EQ(next(), "tiny");
  EXPECT_EQ(w.master_offset(), capacity + 16);
}

TEST_F(writer_fixture, SecondWriterInTheSameProcessIsRefusedNamingOurPid) {
  try {
    writer second = writer::open(log.name());
    FAIL() << "a second writer opened the log";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::writer_exists);
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(::getpid())), std::string::npos)
        << e.what();
  }
}

TEST(writer_takeover, ReopenedWriterContinuesAtTheMasterOffset) {
  scoped_log log{unique_log_name("reopen")};
  std::uint64_t master = 0;
  {
    writer w = writer::create(log, {.capacity = capacity});
    w.append("before");
    master = w.master_offset();
    EXPECT_EQ(w.takeover().previous_pid, 0u);
  }
  writer w = writer::open(log.name());
  EXPECT_EQ(w.master_offset(), master);
  EXPECT_EQ(w.takeover().previous_pid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_FALSE(w.takeover().previous_crashed);  // closed cleanly
  EXPECT_EQ(w.append("after"), master);
  const log_info info = inspect(log.name());
  EXPECT_EQ(info.writer_generation, 2u);
  EXPECT_TRUE(info.writer_alive);
}

TEST(writer_takeover, CreatingAnExistingLogIsRefused) {
  scoped_log log{unique_log_name("exists")};
  create(log, {.capacity = capacity});
  try {
    writer::create(log, {.capacity = capacity});
    FAIL();
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::already_exists);
  }
}

TEST(writer_takeover, OpeningAMissingLogSaysItDoesNotExist) {
  try {
    writer::open(unique_log_name("missing"));
    FAIL();
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::not_found);
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
  }
}

TEST(writer_takeover, WriterThatLeftItsOpenFlagIsReportedAsCrashed) {
  scoped_log log{unique_log_name("crashflag")};
  { writer w = writer::create(log, {.capacity = capacity}); }
  test::raw_segment raw(log.name());
  raw.header().writer.open.store(1);  // as a killed writer leaves it
  writer w = writer::open(log.name());
  EXPECT_TRUE(w.takeover().previous_crashed);
}

// Found by the header fuzz (tests/header_fuzz_test.cc): a master offset 8 bytes into the last
// record passed every takeover check, the new writer wrote its records over that record's tail,
// and a reader took the record, header intact, with the new bytes in it.
TEST(writer_takeover, MasterOffsetInsideARecordIsRefusedAndNothingChanges) {
  scoped_log log{unique_log_name("midrecord")};
  std::uint64_t last = 0;
  {
    writer w = writer::create(log, {.capacity = capacity});
    w.append("first");
    last = w.append(std::string(100, 'x'));
  }
  test::raw_segment raw(log.name());
  raw.header().master_offset.store(last + 8);
  const std::vector<std::byte> before(raw.base(), raw.base() + header_size + capacity);
  try {
    writer::open(log.name());
    FAIL() << "a writer took over at a master offset inside a record";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::corrupt_header);
    const std::string m = e.what();
    EXPECT_NE(
        m.find("master_offset " + std::to_string(last + 8) +
               " does not start a record (it falls inside the record at " + std::to_string(last)),
        std::string::npos)
        << m;
  }
  EXPECT_EQ(std::memcmp(before.data(), raw.base(), before.size()), 0);

  // The start of that record is a record boundary, and its header is stored, which published
  // it (a writer that died before storing the master offset after it): the next writer keeps
  // it and continues after it.
  raw.header().master_offset.store(last);
  writer w = writer::open(log.name());
  EXPECT_EQ(w.takeover().published_by_header, record_frame_size(100));
  EXPECT_EQ(w.takeover().master_offset, last + record_frame_size(100));
  EXPECT_EQ(w.append("after"), last + record_frame_size(100));
}

}  // namespace
}  // namespace shmlog
