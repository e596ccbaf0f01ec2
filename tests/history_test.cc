// The resync decision (Redis masterTryPartialResynchronization, restated) and history ids.
#include "shmlog/history.h"

#include <gtest/gtest.h>

#include <set>

namespace shmlog {
namespace {

const history_id current = *history_id::parse("1111111111111111111111111111111111111111");
const history_id previous = *history_id::parse("2222222222222222222222222222222222222222");
const history_id stranger = *history_id::parse("3333333333333333333333333333333333333333");

history_state fresh_history() {
  return {current, history_id{}, no_offset};
}
history_state switched_history(std::uint64_t shared_up_to) {
  return {current, previous, shared_up_to};
}

TEST(history_ids, RandomIdsAreFortyLowercaseHexAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const history_id id = history_id::random();
    ASSERT_EQ(id.view().size(), 40u);
    for (char c : id.view())
      EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << c;
    EXPECT_FALSE(id.is_none());
    seen.insert(id.str());
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(history_ids, ParseAcceptsFortyHexAnyCase) {
  auto id = history_id::parse("ABCDEFabcdef0123456789abcdefABCDEF012345");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->str(), "abcdefabcdef0123456789abcdefabcdef012345");
}

TEST(history_ids, ParseRejectsWrongLengthAndNonHex) {
  EXPECT_FALSE(history_id::parse(""));
  EXPECT_FALSE(history_id::parse("?"));
  EXPECT_FALSE(history_id::parse(std::string(39, 'a')));
  EXPECT_FALSE(history_id::parse(std::string(41, 'a')));
  EXPECT_FALSE(history_id::parse(std::string(39, 'a') + "g"));
}

TEST(history_ids, DefaultIsNoneLikeAClearedRedisReplid2) {
  EXPECT_TRUE(history_id{}.is_none());
  EXPECT_EQ(history_id{}.str(), std::string(40, '0'));
}

// Seed 001's worked example in shmlog's zero-based offsets: a 1000-byte backlog held bytes
// 101..1100 (Redis, one-based), i.e. offsets [100, 1100) with master offset 1100.
TEST(resync_decisions, RedisExampleReaderInsideWindowContinues) {
  const auto d = decide_resync(fresh_history(), {100, 1100}, current, 800);
  EXPECT_EQ(d.kind, resync_kind::partial);
  EXPECT_EQ(d.reason, resync_reason::same_history);
  EXPECT_EQ(d.wanted_offset, 800u);
}

TEST(resync_decisions, RedisExampleReaderBeforeWindowNeedsFullResync) {
  const auto d = decide_resync(fresh_history(), {100, 1100}, current, 50);
  EXPECT_EQ(d.kind, resync_kind::full);
  EXPECT_EQ(d.reason, resync_reason::offset_before_backlog);
  EXPECT_NE(d.describe().find("50"), std::string::npos);
  EXPECT_NE(d.describe().find("100"), std::string::npos);
}

TEST(resync_decisions, WindowEdgesAreInclusive) {
  EXPECT_TRUE(decide_resync(fresh_history(), {100, 1100}, current, 100).is_partial());
  EXPECT_TRUE(decide_resync(fresh_history(), {100, 1100}, current, 1100).is_partial());
  EXPECT_EQ(decide_resync(fresh_history(), {100, 1100}, current, 99).reason,
            resync_reason::offset_before_backlog);
  EXPECT_EQ(decide_resync(fresh_history(), {100, 1100}, current, 1101).reason,
            resync_reason::offset_after_master);
}

TEST(resync_decisions, NoHistoryMeansFullResync) {
  EXPECT_EQ(decide_resync(fresh_history(), {0, 10}, std::nullopt, 0).reason,
            resync_reason::no_history);
  EXPECT_EQ(decide_resync(fresh_history(), {0, 10}, history_id{}, 0).reason,
            resync_reason::no_history);
}

TEST(resync_decisions, UnknownHistoryMeansFullResync) {
  EXPECT_EQ(decide_resync(switched_history(500), {0, 1000}, stranger, 10).reason,
            resync_reason::unknown_history);
}

TEST(resync_decisions, PreviousHistoryWithinSharedPrefixContinues) {
  const auto d = decide_resync(switched_history(500), {0, 1000}, previous, 500);
  EXPECT_EQ(d.kind, resync_kind::partial);
  EXPECT_EQ(d.reason, resync_reason::shared_prefix);
}

TEST(resync_decisions, PreviousHistoryBeyondSharedPrefixNeedsFullResync) {
  EXPECT_EQ(decide_resync(switched_history(500), {0, 1000}, previous, 508).reason,
            resync_reason::beyond_shared_prefix);
}

TEST(resync_decisions, PreviousHistoryStillNeedsTheOffsetHeld) {
  EXPECT_EQ(decide_resync(switched_history(500), {200, 1000}, previous, 100).reason,
            resync_reason::offset_before_backlog);
}

TEST(resync_decisions, NoneIsNeverMistakenForAClearedReplid2) {
  // replid2 is none; a reader presenting the none id has no history, not the previous one.
  EXPECT_EQ(decide_resync(fresh_history(), {0, 10}, history_id{}, 5).reason,
            resync_reason::no_history);
}

}  // namespace
}  // namespace shmlog

namespace shmlog {
namespace {

// plan_writer_history: what a starting writer does, given its producer's state.
TEST(writer_history_plans, NoStateKeepsTheLogAsItIs) {
  EXPECT_EQ(plan_writer_history(fresh_history(), 1000, std::nullopt, 0).action,
            history_action::keep);
}

TEST(writer_history_plans, StateAtTheMasterOffsetKeepsTheHistory) {
  EXPECT_EQ(plan_writer_history(fresh_history(), 1000, current, 1000).action, history_action::keep);
}

TEST(writer_history_plans, StateBehindTheMasterBranchesAtIt) {
  const history_plan p = plan_writer_history(fresh_history(), 1000, current, 640);
  EXPECT_EQ(p.action, history_action::branch);
  EXPECT_EQ(p.shared_up_to, 640u);
  EXPECT_NE(p.describe().find("640"), std::string::npos);
}

TEST(writer_history_plans, BranchGoesBackOnlyWhereTheRingStillHoldsOffsets) {
  EXPECT_TRUE(plan_writer_history(fresh_history(), 1000, current, 640, 600).rewinds);
  EXPECT_TRUE(plan_writer_history(fresh_history(), 1000, current, 640, 640).rewinds);
  const history_plan far = plan_writer_history(fresh_history(), 1000, current, 640, 648);
  EXPECT_EQ(far.action, history_action::branch);
  EXPECT_FALSE(far.rewinds);
  EXPECT_NE(far.describe().find("no longer holds"), std::string::npos);
}

TEST(writer_history_plans, StateOfThePreviousHistoryWithinTheSharedPrefixBranches) {
  const history_plan p = plan_writer_history(switched_history(500), 1000, previous, 480);
  EXPECT_EQ(p.action, history_action::branch);
  EXPECT_EQ(p.shared_up_to, 480u);
}

TEST(writer_history_plans, StateOfThePreviousHistoryBeyondTheSharedPrefixRestarts) {
  EXPECT_EQ(plan_writer_history(switched_history(500), 1000, previous, 520).action,
            history_action::restart);
}

TEST(writer_history_plans, UnknownHistoryRestarts) {
  EXPECT_EQ(plan_writer_history(fresh_history(), 1000, stranger, 1000).action,
            history_action::restart);
}

TEST(writer_history_plans, StateAheadOfTheLogRestarts) {
  EXPECT_EQ(plan_writer_history(fresh_history(), 1000, current, 1008).action,
            history_action::restart);
}

}  // namespace
}  // namespace shmlog
