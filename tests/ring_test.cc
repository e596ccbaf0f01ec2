// Framing and wraparound: records at every distance from the ring's end, every payload length,
// and the size limits. One writer and one reader in this process; the reader keeps up unless a
// test says otherwise.
#include <gtest/gtest.h>

#include <random>

#include "shmlog/reader.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::scoped_log;
using test::unique_log_name;

constexpr std::uint64_t capacity = 4096;  // max frame 1024, intent chunk 256

std::string bytes_of(char c, std::size_t n) {
  return std::string(n, c);
}

// Appends filler records until the master offset is exactly `target` (no wrap on the way).
void fill_to(writer& w, std::uint64_t target) {
  ASSERT_EQ((target - w.master_offset()) % 8, 0u);
  while (target - w.master_offset() > 1024)
    w.append(bytes_of('f', 56));  // 64-byte frames
  if (target > w.master_offset()) w.append(bytes_of('f', target - w.master_offset() - 8));
  ASSERT_EQ(w.master_offset(), target);
}

// Polls every record up to the master offset, checking each starts where the last ended.
std::vector<std::string> drain(reader& r) {
  std::vector<std::string> out;
  std::vector<std::byte> buffer;
  std::uint64_t expected_offset = r.offset();
  for (;;) {
    const poll_result p = r.poll_copy(buffer);
    if (p.status == poll_status::empty) return out;
    EXPECT_EQ(p.status, poll_status::record);
    if (p.status != poll_status::record) return out;
    EXPECT_GE(p.record.offset, expected_offset);  // > only across a padding record
    EXPECT_EQ(p.record.offset % 8, 0u);
    expected_offset = p.record.next_offset;
    out.emplace_back(p.record.text());
  }
}

struct ring : ::testing::Test {
  scoped_log log{unique_log_name("ring")};
  writer w = writer::create(log, {.capacity = capacity});
  reader r = reader::attach(log.name(), {.start = start_position::oldest()});
};

TEST_F(ring, RecordEndsExactlyAtRingEnd) {
  fill_to(w, capacity - 64);
  drain(r);
  EXPECT_EQ(w.append(bytes_of('a', 56)), capacity - 64);  // frame 64: ends at 4096 exactly
  EXPECT_EQ(w.master_offset(), capacity);
  EXPECT_EQ(w.append(bytes_of('b', 8)), capacity);  // the next starts at ring byte 0, no padding
  const auto got = drain(r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], bytes_of('a', 56));
  EXPECT_EQ(got[1], bytes_of('b', 8));
  EXPECT_EQ(r.offset(), capacity + 16);
}

// For every room r left before the ring's end (8 .. 1016 bytes), a record one word too big
// for it gets a padding record in front and starts at the next lap's ring byte 0.
TEST(ring_wrap, RecordOneWordTooBigWrapsAtEveryAlignment) {
  for (std::uint64_t room = 8; room < 1024; room += 8) {
    SCOPED_TRACE("room " + std::to_string(room));
    scoped_log log{unique_log_name("wrap")};
    writer w = writer::create(log, {.capacity = capacity});
    reader r = reader::attach(log.name(), {.start = start_position::oldest()});
    fill_to(w, capacity - room);
    drain(r);
    const std::string payload = bytes_of('w', room);  // frame = room + 8
    EXPECT_EQ(w.append(payload), capacity);
    EXPECT_EQ(w.master_offset(), capacity + 8 + room);
    std::vector<std::byte> buffer;
    const poll_result p = r.poll_copy(buffer);
    ASSERT_EQ(p.status, poll_status::record);
    EXPECT_EQ(p.record.offset, capacity);  // the padding record was skipped, not delivered
    EXPECT_EQ(p.record.text(), payload);
    EXPECT_EQ(r.poll_copy(buffer).status, poll_status::empty);
  }
}

TEST(ring_wrap, RecordThatFitsTheRoomExactlyDoesNotWrap) {
  for (std::uint64_t room = 8; room <= 1024; room += 8) {
    SCOPED_TRACE("room " + std::to_string(room));
    scoped_log log{unique_log_name("fit")};
    writer w = writer::create(log, {.capacity = capacity});
    reader r = reader::attach(log.name(), {.start = start_position::oldest()});
    fill_to(w, capacity - room);
    drain(r);
    EXPECT_EQ(w.append(bytes_of('x', room - 8)), capacity - room);
    const auto got = drain(r);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], bytes_of('x', room - 8));
  }
}

TEST_F(ring, EveryPayloadLengthRoundTripsThroughViewAndCopy) {
  std::vector<std::byte> buffer;
  for (std::size_t length = 0; length <= w.max_payload(); ++length) {
    std::string payload(length, '\0');
    for (std::size_t i = 0; i < length; ++i)
      payload[i] = static_cast<char>('a' + (i + length) % 26);
    const std::uint64_t offset = w.append(payload);
    const poll_result view = r.poll();
    ASSERT_EQ(view.status, poll_status::record) << length;
    EXPECT_EQ(view.record.offset, offset);
    EXPECT_EQ(view.record.text(), payload);
    EXPECT_TRUE(r.still_valid(view.record));
    EXPECT_EQ(view.record.next_offset, w.master_offset());
    r.seek(offset);  // read the same record again, now as a copy
    const poll_result copy = r.poll_copy(buffer);
    ASSERT_EQ(copy.status, poll_status::record) << length;
    EXPECT_EQ(copy.record.text(), payload);
    EXPECT_EQ(copy.record.next_offset - copy.record.offset, record_frame_size(length));
  }
}

TEST_F(ring, MaxPayloadIsAcceptedAndOneMoreByteIsRefused) {
  EXPECT_EQ(w.max_payload(), max_payload_for(capacity));
  w.append(bytes_of('m', w.max_payload()));
  const std::uint64_t master = w.master_offset();
  try {
    w.append(bytes_of('m', w.max_payload() + 1));
    FAIL() << "oversize record was accepted";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::record_too_large);
    EXPECT_NE(std::string(e.what()).find(std::to_string(w.max_payload() + 1)), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(std::to_string(w.max_payload())), std::string::npos);
  }
  EXPECT_EQ(w.master_offset(), master);  // nothing appended
  const auto got = drain(r);
  ASSERT_EQ(got.size(), 1u);
}

TEST_F(ring, BatchWithOneOversizeRecordAppendsNothing) {
  const std::string ok = "fine";
  const std::string big = bytes_of('b', w.max_payload() + 1);
  const record_ref batch[] = {{std::as_bytes(std::span(ok))}, {std::as_bytes(std::span(big))}};
  EXPECT_THROW(w.append_batch(batch), error);
  EXPECT_EQ(w.master_offset(), 0u);
  EXPECT_TRUE(drain(r).empty());
}

TEST_F(ring, ClaimLargerThanMaxPayloadIsRefused) {
  EXPECT_THROW(w.claim(w.max_payload() + 1), error);
  auto c = w.claim(w.max_payload());  // the limit itself is fine
  c.abort();
}

TEST_F(ring, ReaderFromOldestAfterManyLapsSeesOnlyWholeRecords) {
  std::mt19937_64 rng(42);
  std::uint64_t seq = 0;
  for (; seq < 2000; ++seq) {
    const auto payload = test::make_payload(seq, test::payload_size_for(rng(), 300));
    w.append(payload);
  }
  reader late = reader::attach(log.name(), {.start = start_position::oldest()});
  EXPECT_EQ(late.offset(), late.window().first_byte_offset);
  EXPECT_GT(late.offset(), 0u);
  std::vector<std::byte> buffer;
  std::uint64_t previous = 0;
  int count = 0;
  for (;;) {
    const poll_result p = late.poll_copy(buffer);
    if (p.status == poll_status::empty) break;
    ASSERT_EQ(p.status, poll_status::record);
    std::uint64_t got = 0;
    ASSERT_TRUE(test::verify_payload(p.record.payload, &got));
    if (count++ > 0) {
      EXPECT_EQ(got, previous + 1);
    }
    previous = got;
  }
  EXPECT_EQ(previous, seq - 1);  // it read up to the newest record
  EXPECT_GT(count, 10);
}

// Seed 001's example at ring level: once the writer has overwritten the start of the ring, a
// reader whose offset is still held continues; one whose offset was overwritten must resync.
TEST_F(ring, RedisExampleAtRingLevel) {
  for (int i = 0; i < 40; ++i)
    w.append(bytes_of('r', 120));  // 40 frames of 128 bytes
  EXPECT_EQ(w.master_offset(), 5120u);
  const backlog_window window = r.window();
  // The intent covers the header word after the last record too (the writer clears it), so it
  // is 5376, a chunk of 256 past 5120, and the window starts at 5376 - capacity 4096.
  EXPECT_EQ(window.first_byte_offset, 1280u);
  EXPECT_EQ(window.master_offset, 5120u);

  const history_id replid = r.history().replid;
  const resync_decision inside = r.resync(replid, 2048);
  EXPECT_TRUE(inside.is_partial()) << inside.describe();
  EXPECT_EQ(r.offset(), 2048u);
  std::vector<std::byte> buffer;
  EXPECT_EQ(r.poll_copy(buffer).record.offset, 2048u);

  const resync_decision before = r.resync(replid, 512);
  EXPECT_EQ(before.kind, resync_kind::full);
  EXPECT_EQ(before.reason, resync_reason::offset_before_backlog);
  EXPECT_EQ(r.offset(), 2048u + 128u);  // a refused resync does not move the reader
}

}  // namespace
}  // namespace shmlog
