// A writer that starts with its producer's state: same history, a branch (new id sharing a
// prefix; the master offset goes back) or a restart (new id sharing nothing), and what readers
// see: history_changed, then a partial or a full resync by the PSYNC rules.
#include <gtest/gtest.h>

#include "shmlog/reader.h"
#include "shmlog/testing.h"
#include "shmlog/writer.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::scoped_log;
using test::unique_log_name;

std::string text(char c, std::size_t n) {
  return std::string(n, c);
}

struct history_restart : ::testing::Test {
  scoped_log log{unique_log_name("hist")};
  std::vector<std::byte> buffer;
  history_id first_id;
  std::vector<std::uint64_t> offsets;  // of the records the first writer appended

  void SetUp() override {
    writer w = writer::create(log, {.capacity = 8192});
    first_id = w.history().replid;
    for (int i = 0; i < 10; ++i)
      offsets.push_back(w.append(text(static_cast<char>('a' + i), 40)));
  }  // the writer closes; the log holds ten 48-byte records: offsets 0, 48, ..., 432; master 480

  reader attach_at(std::uint64_t offset) {
    return reader::attach(log.name(), {.start = start_position::at(offset)});
  }
  // The next record's text, or the status when there is none.
  std::string next(reader& r) {
    const poll_result p = r.poll_copy(buffer);
    if (p.status == poll_status::record) return std::string(p.record.text());
    std::string status("status ");
    status += std::to_string(static_cast<int>(p.status));
    return status;
  }
};

TEST_F(history_restart, StateAtTheMasterOffsetContinuesTheSameHistory) {
  reader r = attach_at(offsets[5]);
  writer w = writer::open(log.name(), {.state_replid = first_id, .state_offset = 480});
  EXPECT_EQ(w.takeover().plan.action, history_action::keep);
  EXPECT_EQ(w.history().replid, first_id);
  EXPECT_EQ(w.master_offset(), 480u);
  w.append("more");
  for (int i = 5; i < 10; ++i)
    EXPECT_EQ(next(r), text(static_cast<char>('a' + i), 40));
  EXPECT_EQ(next(r), "more");  // no history change on the way
}

TEST_F(history_restart, StateBehindTheMasterBranchesAndTakesTheMasterBack) {
  // The producer's state reflects the first six records only (up to offset 288).
  writer w = writer::open(log.name(), {.state_replid = first_id, .state_offset = offsets[6]});
  EXPECT_EQ(w.takeover().plan.action, history_action::branch);
  EXPECT_EQ(w.master_offset(), offsets[6]);
  const history_state h = w.history();
  EXPECT_NE(h.replid, first_id);
  EXPECT_EQ(h.replid2, first_id);
  EXPECT_EQ(h.second_repl_offset, offsets[6]);
  EXPECT_EQ(inspect(log.name()).window.master_offset, offsets[6]);
}

TEST_F(history_restart, ReaderWithinTheSharedPrefixContinuesUnderTheNewHistory) {
  reader r = attach_at(offsets[4]);  // has read records 0-3 of the first history
  writer w = writer::open(log.name(), {.state_replid = first_id, .state_offset = offsets[6]});
  w.append("new-6");
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::history_changed);
  EXPECT_EQ(r.offset(), offsets[4]);  // did not move
  const resync_decision d = r.resync(r.replid(), r.offset());
  ASSERT_TRUE(d.is_partial()) << d.describe();
  EXPECT_EQ(d.reason, resync_reason::shared_prefix);
  EXPECT_EQ(r.replid(), w.history().replid);
  // Records 4 and 5 are shared; what follows is the new history, not the old records 6-9.
  EXPECT_EQ(next(r), text('e', 40));
  EXPECT_EQ(next(r), text('f', 40));
  EXPECT_EQ(next(r), "new-6");
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::empty);
}

TEST_F(history_restart, ReaderBeyondTheSharedPrefixNeedsAFullResync) {
  reader r = attach_at(offsets[8]);  // has read records of the first history past the branch
  writer w = writer::open(log.name(), {.state_replid = first_id, .state_offset = offsets[6]});
  w.append("new-6");
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::history_changed);
  const resync_decision d = r.resync(r.replid(), r.offset());
  EXPECT_EQ(d.kind, resync_kind::full);
  EXPECT_EQ(d.reason, resync_reason::beyond_shared_prefix);
  EXPECT_EQ(r.offset(), offsets[8]);
}

TEST_F(history_restart, CaughtUpReaderBeyondTheBranchNeverReadsTheNewBytesAsOld) {
  reader r = attach_at(480);  // caught up with the first history
  writer w = writer::open(log.name(), {.state_replid = first_id, .state_offset = offsets[2]});
  // The new history writes past offset 480 again: a reader that trusted the offsets alone
  // would take these bytes for records of the first history.
  for (int i = 0; i < 12; ++i)
    w.append(text('N', 40));
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::history_changed);
  EXPECT_EQ(r.resync(r.replid(), r.offset()).kind, resync_kind::full);
}

TEST_F(history_restart, UnrelatedStateRestartsWithNothingShared) {
  reader r = attach_at(offsets[2]);
  writer w = writer::open(log.name(), {.state_replid = history_id::random(), .state_offset = 64});
  EXPECT_EQ(w.takeover().plan.action, history_action::restart);
  EXPECT_EQ(w.master_offset(), 480u);  // nothing shared: nothing to go back to
  EXPECT_TRUE(w.history().replid2.is_none());
  w.append("fresh");
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::history_changed);
  EXPECT_EQ(r.resync(r.replid(), r.offset()).reason, resync_reason::unknown_history);
}

TEST_F(history_restart, WriterWithoutStateKeepsTheHistoryEvenAfterACrash) {
  writer w = writer::open(log.name());
  EXPECT_EQ(w.takeover().plan.action, history_action::keep);
  EXPECT_EQ(w.history().replid, first_id);
}

// The history changes after the reader copied a record and before it validated it: the copy
// may mix histories, so it must not be delivered.
TEST_F(history_restart, HistoryChangeBetweenCopyAndValidationIsNeverDelivered) {
  reader r = attach_at(offsets[7]);
  std::optional<writer> w;
  shmlog::testing::set_validation_hook(r, [&] {
    if (!w) w.emplace(writer::open(log.name(), {.state_replid = first_id, .state_offset = 0}));
  });
  EXPECT_EQ(r.poll_copy(buffer).status, poll_status::history_changed);
  EXPECT_TRUE(w.has_value());
}

TEST_F(history_restart, ViewTakenBeforeTheChangeIsNoLongerValid) {
  reader r = attach_at(offsets[7]);
  const poll_result p = r.poll();
  ASSERT_EQ(p.status, poll_status::record);
  EXPECT_TRUE(r.still_valid(p.record));
  writer w = writer::open(log.name(), {.state_replid = first_id, .state_offset = offsets[3]});
  EXPECT_FALSE(r.still_valid(p.record));
}

// The intent never moves back: a master offset taken back further than the ring holds would
// leave readers "lapped" at every new offset. Nothing of the shared prefix is held then anyway,
// so the branch keeps its master offset; PSYNC still sends every old reader to a full resync.
TEST_F(history_restart, BranchFurtherBackThanTheRingHoldsKeepsTheMasterOffset) {
  std::uint64_t master = 0;
  {
    writer w = writer::open(log.name());
    for (int i = 0; i < 400; ++i)
      w.append(text('x', 40));  // laps the 8 KiB ring twice
    master = w.master_offset();
  }
  writer w = writer::open(log.name(), {.state_replid = first_id, .state_offset = offsets[1]});
  EXPECT_EQ(w.takeover().plan.action, history_action::branch);
  EXPECT_FALSE(w.takeover().plan.rewinds);
  EXPECT_EQ(w.master_offset(), master);
  EXPECT_EQ(w.history().replid2, first_id);
  reader old = reader::attach(log.name(), {.start = start_position::latest()});
  EXPECT_EQ(old.resync(first_id, offsets[1]).reason, resync_reason::offset_before_backlog);
  EXPECT_EQ(old.resync(first_id, master).reason, resync_reason::beyond_shared_prefix);
  reader r = reader::attach(log.name(), {.start = start_position::latest()});
  w.append("after");
  EXPECT_EQ(next(r), "after");
}

}  // namespace
}  // namespace shmlog
