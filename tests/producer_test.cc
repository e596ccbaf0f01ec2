// Producer recovery in the library (shmlog::open_producer): a restarted producer's state is the
// newest snapshot that loads plus what the backlog still holds after it, and the writer's
// history plan follows from it. Single process: each "restart" closes the writer first.
#include "shmlog/producer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <stdexcept>
#include <string>

#include "shmlog/snapshot_service.h"
#include "test_state.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::list_state;
using test::scoped_log;
using test::scratch_dir;
using test::unique_log_name;

struct producer_recovery : ::testing::Test {
  scoped_log log{unique_log_name("prod")};
  scratch_dir dir;

  producer_options options() const {
    return {.snapshot_dir = dir.path(), .create = create_options{.capacity = 4096}};
  }
  // A first producer run: creates the log, appends `before`, snapshots, appends `after`.
  list_state first_run(int before, int after) {
    list_state state;
    recovered_producer p = open_producer(log.name(), state, options());
    for (int i = 0; i < before; ++i)
      test::append_and_apply(p.log, state, "b" + std::to_string(i));
    {
      snapshot_service s(p.log, state, {.dir = dir.path()});
      s.snapshot_now();
    }
    for (int i = 0; i < after; ++i)
      test::append_and_apply(p.log, state, "a" + std::to_string(i));
    return state;
  }
};

TEST_F(producer_recovery, NewLogIsCreatedWithAnEmptyState) {
  list_state state;
  const recovered_producer p = open_producer(log.name(), state, options());
  EXPECT_TRUE(p.report.created);
  EXPECT_FALSE(p.report.snapshot);
  EXPECT_TRUE(state.items.empty());
  EXPECT_EQ(p.log.master_offset(), 0u);
  EXPECT_NE(p.report.describe(p.log).find("created log with capacity 4096 and 64 reader slots; "
                                          "empty state at offset 0"),
            std::string::npos);
}

TEST_F(producer_recovery, RestartLoadsTheSnapshotAndReplaysTheBacklogKeepingTheHistory) {
  const list_state before = first_run(3, 2);
  const history_id replid = inspect(log.name()).history.replid;
  list_state state;
  const recovered_producer p = open_producer(log.name(), state, options());
  EXPECT_EQ(state.items, before.items);
  ASSERT_TRUE(p.report.snapshot);
  EXPECT_EQ(p.report.snapshot->offset, 3 * record_frame_size(2));
  ASSERT_TRUE(p.report.backlog);
  EXPECT_TRUE(p.report.backlog->is_partial());
  EXPECT_EQ(p.report.replayed_records, 2u);
  EXPECT_EQ(p.log.takeover().plan.action, history_action::keep);
  EXPECT_EQ(p.log.history().replid, replid);
  EXPECT_NE(p.report.describe(p.log).find(") and 2 records (32 bytes) of the backlog; same "
                                          "history, continuing at offset 80"),
            std::string::npos)
      << p.report.describe(p.log);
}

TEST_F(producer_recovery, ADamagedSnapshotIsSkippedWithItsReasonAndAnOlderOneUsed) {
  const list_state before = first_run(2, 1);
  {
    // A second, newer snapshot, then damage it.
    list_state state;
    recovered_producer p = open_producer(log.name(), state, options());
    snapshot_service s(p.log, state, {.dir = dir.path()});
    const snapshot_meta newer = s.snapshot_now();
    std::fstream f(newer.path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(snapshot_header_size);
    f.put('X');
  }
  list_state state;
  const recovered_producer p = open_producer(log.name(), state, options());
  ASSERT_EQ(p.report.skipped_snapshots.size(), 1u);
  EXPECT_NE(p.report.skipped_snapshots[0].find("-2.snap: snapshot '"), std::string::npos)
      << p.report.skipped_snapshots[0];
  ASSERT_TRUE(p.report.snapshot);
  EXPECT_EQ(p.report.snapshot->generation, 1u);
  EXPECT_EQ(state.items, before.items);  // the older snapshot plus the replayed backlog
}

// A state that cannot apply a record of the log: another kind of producer wrote it.
struct picky_state : list_state {
  void apply(const record_view& r) override {
    if (r.text() == "poison") throw std::invalid_argument("not a command");
    list_state::apply(r);
  }
};

TEST_F(producer_recovery, ARecordTheStateCannotApplyIsAClearError) {
  {
    writer w = writer::create(log.name(), {.capacity = 4096});
    w.append("fine");
    w.append("poison");
  }
  picky_state state;
  try {
    open_producer(log.name(), state, options());
    FAIL() << "recovered a log it cannot apply";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::apply_failed);
    EXPECT_NE(std::string(e.what()).find("the record at offset 16 cannot be applied to the "
                                         "producer's state (not a command)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(inspect(log.name()).writer_alive);
}

TEST_F(producer_recovery, SnapshotsAnnouncedElsewhereAreRefusedBeforeAnythingIsLoaded) {
  first_run(1, 0);
  scratch_dir elsewhere;
  list_state state;
  try {
    open_producer(log.name(), state, {.snapshot_dir = elsewhere.path()});
    FAIL() << "recovered from the wrong directory";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("publishes its snapshots in '" + dir.str() + "'"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(producer_recovery, ALiveWriterIsRefusedBeforeAnythingIsLoaded) {
  first_run(1, 0);
  writer holder = writer::open(log.name());
  list_state state;
  try {
    open_producer(log.name(), state, options());
    FAIL() << "opened a log with a live writer";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::writer_exists);
  }
  EXPECT_TRUE(state.items.empty());
}

}  // namespace
}  // namespace shmlog
