// The pieces a mirror needs (docs/remote.md): a log that starts at its source's offset in its
// source's history, records appended at the offsets the source gave them (the same capacity
// reproduces the same padding), and the source's history changes followed: a branch back to
// its shared prefix, or, after a full resync, a reset to the snapshot's offset.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "shmlog/reader.h"
#include "shmlog/segment.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::scoped_log;
using test::unique_log_name;

std::span<const std::byte> bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Every record a reader at `from` gets until it is empty: (offset, text).
std::vector<std::pair<std::uint64_t, std::string>> read_all(reader& r) {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  std::vector<std::byte> buffer;
  for (;;) {
    const poll_result p = r.poll_copy(buffer);
    if (p.status != poll_status::record) return out;
    out.emplace_back(p.record.offset, std::string(p.record.text()));
  }
}

struct mirror_log : ::testing::Test {
  scoped_log source_name{unique_log_name("src")};
  scoped_log mirror_name{unique_log_name("mir")};
};

TEST_F(mirror_log, StartsAtTheSourcesOffsetInItsHistoryAndHoldsNothingBefore) {
  const history_state h{history_id::random(), history_id::random(), 512};
  constexpr std::uint64_t start = 1000;  // 8-aligned, not a chunk boundary
  writer w =
      writer::create(mirror_name.name(), {.capacity = 4096, .start_offset = start, .history = h});
  log_info info = inspect(mirror_name.name());
  EXPECT_EQ(info.start_offset, start);
  EXPECT_EQ(info.window.first_byte_offset, start);
  EXPECT_EQ(info.window.master_offset, start);
  EXPECT_EQ(info.history.replid, h.replid);
  EXPECT_EQ(info.history.replid2, h.replid2);
  EXPECT_EQ(info.history.second_repl_offset, 512u);

  EXPECT_EQ(w.append("first"), start);
  reader r = reader::attach(mirror_name.name(), {.start = start_position::oldest()});
  EXPECT_EQ(r.offset(), start);
  EXPECT_EQ(read_all(r), (std::vector<std::pair<std::uint64_t, std::string>>{{start, "first"}}));
  EXPECT_THROW(r.seek(start - 8), error);
  // A reader of the source's history continues here (PSYNC, as at the source).
  EXPECT_TRUE(r.resync(h.replid, start + 16).is_partial());

  // Round the ring several times: the window then moves as in any log.
  for (int i = 0; i < 400; ++i)
    w.append("record " + std::to_string(i));
  info = inspect(mirror_name.name());
  EXPECT_GT(info.window.first_byte_offset, start + 4096);
  reader late = reader::attach(mirror_name.name(), {.start = start_position::oldest()});
  EXPECT_FALSE(read_all(late).empty());
}

TEST_F(mirror_log, ReopensAfterItsWriterCrashedAtTheStart) {
  const history_state h{history_id::random()};
  {
    const writer w = writer::create(mirror_name.name(),
                                    {.capacity = 4096, .start_offset = 4096 * 3 + 8, .history = h});
  }
  writer again = writer::open(mirror_name.name());
  EXPECT_EQ(again.master_offset(), 4096u * 3 + 8);
  EXPECT_EQ(again.takeover().plan.action, history_action::keep);
  EXPECT_EQ(again.append("x"), 4096u * 3 + 8);
}

// The source's records, appended at the source's offsets: padding included, every one lands
// where the source put it, and readers of both logs see the same records at the same offsets.
TEST_F(mirror_log, RecordsAppendedAtTheSourcesOffsetsLandThereAcrossPadding) {
  writer source = writer::create(source_name.name(), {.capacity = 4096});
  reader from_source =
      reader::attach(source_name.name(), {.start = start_position::oldest(), .label = "ship"});
  writer mirror = writer::create(
      mirror_name.name(), {.capacity = 4096, .history = history_state{source.history().replid}});
  reader from_mirror = reader::attach(mirror_name.name(), {.start = start_position::oldest()});
  std::vector<std::byte> buffer;
  for (int i = 0; i < 300; ++i) {
    source.append(std::string(static_cast<std::size_t>(1 + (i * 37) % 300), 'a' + i % 26));
    const poll_result p = from_source.poll_copy(buffer);
    ASSERT_EQ(p.status, poll_status::record);
    ASSERT_EQ(mirror.append_at(p.record.offset, p.record.payload, p.record.type), p.record.offset);
    const poll_result q = from_mirror.poll_copy(buffer);
    ASSERT_EQ(q.status, poll_status::record);
    ASSERT_EQ(q.record.offset, p.record.offset);
  }
  EXPECT_EQ(mirror.master_offset(), source.master_offset());
}

TEST_F(mirror_log, ARecordThatWouldLandElsewhereIsRefusedAndNothingIsAppended) {
  writer mirror = writer::create(mirror_name.name(), {.capacity = 4096});
  mirror.append("one");
  try {
    mirror.append_at(64, bytes("two"));
    FAIL() << "appended at the wrong offset";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::unexpected_offset);
    EXPECT_NE(std::string(e.what()).find("would start at offset 16, not at 64"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(mirror.master_offset(), 16u);
  EXPECT_EQ(mirror.append_at(16, bytes("two")), 16u);
}

TEST_F(mirror_log, FollowingABranchFromBehindItKeepsTheMasterOffset) {
  writer mirror = writer::create(mirror_name.name(), {.capacity = 4096});
  const history_id old_id = mirror.history().replid;
  mirror.append("a");
  mirror.append("b");  // master 32
  reader r = reader::attach(mirror_name.name(), {.start = start_position::oldest()});
  read_all(r);
  // The source branched at 48, beyond this mirror: nothing to take back.
  const history_state branched{history_id::random(), old_id, 48};
  mirror.follow_history(branched, 32);
  EXPECT_EQ(mirror.master_offset(), 32u);
  EXPECT_EQ(mirror.history().replid, branched.replid);
  mirror.append("c");
  std::vector<std::byte> buffer;
  // A caught-up reader finds out with the next record: nothing of the new history is given as
  // the old one's.
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::history_changed);
  EXPECT_TRUE(r.resync(old_id, 32).is_partial());  // within the shared prefix
  EXPECT_EQ(read_all(r), (std::vector<std::pair<std::uint64_t, std::string>>{{32, "c"}}));
}

TEST_F(mirror_log, FollowingABranchTakesTheMasterOffsetBackToARecordStart) {
  writer mirror = writer::create(mirror_name.name(), {.capacity = 4096});
  const history_id old_id = mirror.history().replid;
  for (const char* s : {"a", "b", "c", "d"})
    mirror.append(s);  // records at 0, 16, 32, 48; master 64
  const history_state branched{history_id::random(), old_id, 32};
  EXPECT_THROW(mirror.follow_history(branched, 40), error);  // inside a record
  EXPECT_THROW(mirror.follow_history(branched, 72), error);  // beyond the master offset
  EXPECT_EQ(mirror.history().replid, old_id);                // unchanged
  mirror.follow_history(branched, 32);
  EXPECT_EQ(mirror.master_offset(), 32u);
  EXPECT_EQ(inspect(mirror_name.name()).window.master_offset, 32u);
  EXPECT_EQ(mirror.append("C"), 32u);
  reader r = reader::attach(mirror_name.name(), {.start = start_position::oldest()});
  EXPECT_EQ(read_all(r),
            (std::vector<std::pair<std::uint64_t, std::string>>{{0, "a"}, {16, "b"}, {32, "C"}}));
}

// After a full resync from the source's snapshot at Y: the log goes on from Y in the source's
// history and holds nothing before it; its readers resynchronise, and only a state at Y
// continues.
TEST_F(mirror_log, AResetToTheSnapshotsOffsetStartsTheWindowThere) {
  writer mirror = writer::create(mirror_name.name(), {.capacity = 4096});
  const history_id old_id = mirror.history().replid;
  mirror.append("a");
  mirror.append("b");  // master 32
  reader r = reader::attach(mirror_name.name(), {.start = start_position::oldest()});
  read_all(r);
  const history_state source{history_id::random()};
  constexpr std::uint64_t snapshot_at = 100'008;
  EXPECT_THROW(mirror.reset_to(source, 16), error);  // below the master offset
  mirror.reset_to(source, snapshot_at);
  const log_info info = inspect(mirror_name.name());
  EXPECT_EQ(info.window.first_byte_offset, snapshot_at);
  EXPECT_EQ(info.window.master_offset, snapshot_at);
  EXPECT_EQ(info.history.replid, source.replid);
  std::vector<std::byte> buffer;
  ASSERT_EQ(r.poll_copy(buffer).status, poll_status::history_changed);
  EXPECT_FALSE(r.resync(old_id, 32).is_partial());
  EXPECT_TRUE(r.resync(source.replid, snapshot_at).is_partial());
  EXPECT_EQ(mirror.append("c"), snapshot_at);
  EXPECT_EQ(read_all(r), (std::vector<std::pair<std::uint64_t, std::string>>{{snapshot_at, "c"}}));
  // A writer taking over finds the header sound.
  { writer closing = std::move(mirror); }
  const writer again = writer::open(mirror_name.name());
  EXPECT_EQ(again.master_offset(), snapshot_at + 16);
}

// A reset to an offset in the log's own first chunk (a young mirror's first full resync): the
// window must start there too, although the ring never wrapped. It used to start at the log's
// start, and readers walked into the records from before the reset and the unwritten bytes after.
TEST_F(mirror_log, AResetWithinTheLogsFirstChunkHoldsNothingBeforeIt) {
  writer mirror = writer::create(mirror_name.name(), {.capacity = 64 << 10});  // chunks of 4K
  mirror.append("a");
  mirror.append("b");  // master 32
  const history_state source{history_id::random()};
  constexpr std::uint64_t snapshot_at = 1568;
  mirror.reset_to(source, snapshot_at);
  const log_info info = inspect(mirror_name.name());
  EXPECT_EQ(info.window.first_byte_offset, snapshot_at);
  EXPECT_EQ(info.window.master_offset, snapshot_at);
  EXPECT_EQ(mirror.append("c"), snapshot_at);
  reader r = reader::attach(mirror_name.name(), {.start = start_position::oldest()});
  EXPECT_EQ(read_all(r), (std::vector<std::pair<std::uint64_t, std::string>>{{snapshot_at, "c"}}));
  EXPECT_THROW(r.seek(32), error);
  { writer closing = std::move(mirror); }
  const writer again = writer::open(mirror_name.name());
  EXPECT_EQ(again.master_offset(), snapshot_at + 16);
  reader late = reader::attach(mirror_name.name(), {.start = start_position::oldest()});
  EXPECT_EQ(late.offset(), snapshot_at);
}

}  // namespace
}  // namespace shmlog
