// The one-transfer read (docs/design.md): a record is published by its header, which the writer
// stores last, after clearing the word that follows the record. A caught-up reader then needs
// only that header, never the master offset, and must never take an older lap's header (from
// 512 KiB on it carries the same tag) for a new record. Positions are set directly: the master
// offset is poked back to where a writer that stopped between its two stores leaves it.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

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

constexpr std::uint64_t tags_repeat = std::uint64_t{1} << 19;  // 2^16 tags of 8 bytes

struct publication : ::testing::Test {
  scoped_log log{unique_log_name("pub")};

  // The 64-bit word at `offset`'s place in the ring.
  std::uint64_t word_at(std::uint64_t offset) const {
    const test::raw_segment raw(log.name());
    const std::uint64_t capacity = raw.header().descriptor.capacity;
    return raw.peek<std::uint64_t>(header_size + (offset & (capacity - 1)));
  }
  // As a writer that stored a record's header but not yet the master offset after it leaves it.
  void set_master(std::uint64_t offset) const {
    test::raw_segment(log.name()).header().master_offset.store(offset);
  }
  std::uint64_t master() const {
    return test::raw_segment(log.name()).header().master_offset.load();
  }
};

std::string text(char c, std::size_t n) {
  return std::string(n, c);
}

// Every way of appending ends the chain: after each publication the word at the master offset
// is zero, over three laps of a ring whose tags repeat every lap, with records of every size
// class (inline, memcpy, padding at the ring's end), batches and claims committed short.
TEST_F(publication, TheWordAtTheMasterOffsetIsClearAfterEveryKindOfAppend) {
  writer w = writer::create(log.name(), {.capacity = tags_repeat});
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> kind(0, 3);
  std::uniform_int_distribution<std::size_t> small(0, 64);
  std::uniform_int_distribution<std::size_t> large(65, 20000);
  int checked = 0;
  while (w.master_offset() < 3 * tags_repeat) {
    switch (kind(rng)) {
      case 0:
        w.append(text('s', small(rng)));
        break;
      case 1:
        w.append(text('l', large(rng)));
        break;
      case 2: {
        const std::vector<std::string> parts{text('a', small(rng)), text('b', large(rng)),
                                             text('c', small(rng))};
        std::vector<record_ref> batch;
        for (const std::string& p : parts)
          batch.push_back({std::as_bytes(std::span(p))});
        w.append_batch(batch);
        break;
      }
      case 3: {
        claimed_record c = w.claim(large(rng));
        c.commit(c.payload().size() / 2);
        break;
      }
    }
    ASSERT_EQ(word_at(w.master_offset()), 0u)
        << "after " << checked << " appends, at offset " << w.master_offset();
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

// A ring of 512 KiB filled with 64-byte frames: a lap later the master offset sits where a
// record started, whose header carries the master offset's tag. A caught-up reader finds
// nothing there (the writer cleared it), and gets the next record once it is appended.
TEST_F(publication, AHeaderALapOlderWithTheSameTagIsNeverTakenForTheNextRecord) {
  writer w = writer::create(log.name(), {.capacity = tags_repeat});
  const std::uint64_t frames = tags_repeat / 64;
  for (std::uint64_t i = 0; i < frames + 5; ++i)
    w.append(text('o', 56));
  const std::uint64_t m = w.master_offset();
  ASSERT_EQ(m, (frames + 5) * 64);
  ASSERT_EQ(record_tag(m - tags_repeat), record_tag(m));  // what the clearing is for
  reader r = reader::attach(log.name(),
                            {.start = start_position::latest(), .wait = {.mode = wait_mode::spin}});
  std::vector<std::byte> buffer;
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::empty);
  EXPECT_EQ(r.poll().status, poll_status::empty);
  EXPECT_FALSE(r.wait(1ms));
  w.append("new");
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.offset, m);
  EXPECT_EQ(p.record.text(), "new");
}

// The writer stored the header of the last record and stopped before the master offset: the
// header published it, through the inline path (a small copy) and the general one (a large
// record), and the reader stands beyond the master offset until the writer catches up.
TEST_F(publication, ARecordPublishedByItsHeaderAloneIsDelivered) {
  writer w = writer::create(log.name(), {.capacity = 65536});
  w.append("first");
  reader r = reader::attach(
      log.name(), {.start = start_position::latest(), .wait = {.mode = wait_mode::sleep}});
  std::vector<std::byte> buffer;
  for (const std::string& payload : {text('s', 10), text('L', 3000)}) {
    const std::uint64_t start = w.append(payload);
    set_master(start);
    const poll_result p = r.poll_copy(buffer);
    ASSERT_EQ(p.status, poll_status::record) << payload.size();
    EXPECT_EQ(p.record.offset, start);
    EXPECT_EQ(p.record.text(), payload);
    EXPECT_GT(r.offset(), r.master_offset());
    // Nothing more: a sleeping wait returns at its deadline, it neither spins nor reports one.
    EXPECT_EQ(r.poll_copy(buffer).status, poll_status::empty);
    EXPECT_FALSE(r.wait(5ms));
    set_master(w.master_offset());
  }
}

// The padding before a record that did not fit, and the record after it, published by the
// padding's header (stored last) before the master offset covers either.
TEST_F(publication, APaddingRecordPublishedByItsHeaderIsCrossed) {
  writer w = writer::create(log.name(), {.capacity = 4096});
  while (4096 - (w.master_offset() % 4096) > 200)
    w.append(text('f', 100));
  reader r = reader::attach(log.name(), {.start = start_position::latest()});
  const std::uint64_t padding_at = w.master_offset();
  const std::uint64_t start = w.append(text('w', 300));
  ASSERT_EQ(start % 4096, 0u);  // after padding
  set_master(padding_at);
  std::vector<std::byte> buffer;
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.offset, start);
  EXPECT_EQ(p.record.text(), text('w', 300));
}

// A batch is one publication: its first header is stored last. Until then the records after it,
// whose headers are in place, cannot be reached, by a reader or by a writer taking over.
TEST_F(publication, ABatchWhoseFirstHeaderIsNotStoredIsNotPublished) {
  std::uint64_t start = 0;
  {
    writer w = writer::create(log.name(), {.capacity = 65536});
    w.append("before");
    const std::vector<std::string> parts{"one", "two", "three"};
    std::vector<record_ref> batch;
    for (const std::string& p : parts)
      batch.push_back({std::as_bytes(std::span(p))});
    start = w.append_batch(batch);
  }
  reader r = reader::attach(log.name(), {.start = start_position::at(start)});
  // As the writer leaves it just before its publication: the first header not yet stored.
  test::raw_segment(log.name()).poke<std::uint64_t>(header_size + start, 0);
  set_master(start);
  std::vector<std::byte> buffer;
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::empty);
  EXPECT_NE(word_at(start + record_frame_size(3)), 0u);  // "two" is written, unreachable
  writer next = writer::open(log.name());
  EXPECT_EQ(next.takeover().published_by_header, 0u);
  EXPECT_EQ(next.master_offset(), start);
  next.append("after");
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.text(), "after");
}

// A history change that takes the master offset back lands on a record start of the old
// history, whose header is intact: the writer clears it, so a reader of the new history finds
// nothing there rather than the old record.
TEST_F(publication, ABranchBackClearsTheOldHeaderAtTheNewMasterOffset) {
  writer w = writer::create(log.name(), {.capacity = 65536});
  w.append("a");
  const std::uint64_t b = w.append("b");
  w.append("c");
  const history_state before = w.history();
  w.follow_history({history_id::random(), before.replid, b}, b);
  EXPECT_EQ(word_at(b), 0u);
  reader r = reader::attach(log.name(), {.start = start_position::latest()});
  EXPECT_EQ(r.offset(), b);
  std::vector<std::byte> buffer;
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::empty);
  w.append("B");
  const poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_EQ(p.record.text(), "B");
}

// A mirror's reset jumps to an offset whose place in the ring holds an old header with the same
// tag (exactly one 512 KiB ring after it): the writer clears it before publishing the offset.
TEST_F(publication, AResetOntoAnOldHeaderWithTheSameTagClearsIt) {
  writer w = writer::create(log.name(), {.capacity = tags_repeat});
  std::uint64_t old = 0;
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t at = w.append(text('x', 56));
    if (i == 90) old = at;
  }
  const std::uint64_t target = old + tags_repeat;
  ASSERT_EQ(record_tag(old), record_tag(target));
  w.reset_to({history_id::random(), history_id{}, no_offset}, target);
  EXPECT_EQ(word_at(target), 0u);
  reader r = reader::attach(log.name(), {.start = start_position::latest()});
  EXPECT_EQ(r.offset(), target);
  std::vector<std::byte> buffer;
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::empty);
  EXPECT_EQ(r.poll().status, poll_status::empty);
}

// A writer taking over keeps what the last one published by its header alone (readers may have
// read it), and continues after it.
TEST_F(publication, ATakeoverKeepsARecordPublishedByItsHeaderAlone) {
  std::uint64_t last = 0;
  std::uint64_t end = 0;
  {
    writer w = writer::create(log.name(), {.capacity = 65536});
    w.append("one");
    last = w.append(text('t', 100));
    end = w.master_offset();
  }
  set_master(last);
  writer next = writer::open(log.name());
  EXPECT_EQ(next.takeover().published_by_header, end - last);
  EXPECT_EQ(next.takeover().previous_master_offset, end);
  EXPECT_EQ(next.master_offset(), end);
  EXPECT_EQ(master(), end);
  EXPECT_EQ(next.append("three"), end);
}

// Bytes at the master offset that no sound writer leaves there (not zero, not a header that
// can be published) are cleared by the next writer, inside its intent, before it appends.
TEST_F(publication, GarbageAtTheMasterOffsetIsClearedByTheNextWriter) {
  std::uint64_t end = 0;
  {
    writer w = writer::create(log.name(), {.capacity = 65536});
    w.append("one");
    end = w.master_offset();
  }
  test::raw_segment(log.name()).poke<std::uint64_t>(header_size + end, 0xDEADBEEFDEADBEEFu);
  writer next = writer::open(log.name());
  EXPECT_EQ(next.takeover().published_by_header, 0u);
  EXPECT_EQ(word_at(end), 0u);
}

}  // namespace
}  // namespace shmlog
