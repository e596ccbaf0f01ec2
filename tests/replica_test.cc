// Full resync in one process: the snapshot service answers requests between appends, and a
// replica loads the snapshot and continues from its offset — new, lapped, after a corrupt file,
// and when the backlog moves past the snapshot while it loads. Also WAIT.
#include "shmlog/replica.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fifo_watchdog.h"
#include "mapping.h"
#include "shmlog/snapshot_service.h"
#include "shmlog/writer.h"
#include "test_state.h"
#include "test_util.h"

namespace shmlog {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::scoped_log;
using test::unique_log_name;

using test::scratch_dir;

struct full_resync : ::testing::Test {
  scoped_log log{unique_log_name("rep")};
  scratch_dir dir;
  writer w = writer::create(log, {.capacity = 16384});
  test::list_state producer_state;
  std::vector<replica_event> events;

  // The producer serves snapshot requests while `until` is false, on its own thread.
  std::thread serve(snapshot_service& service, std::atomic<bool>& until) {
    return std::thread([&] {
      while (!until.load()) {
        service.poll();
        std::this_thread::yield();
      }
    });
  }
  // The replica catches up while another thread serves the producer's snapshot requests.
  void catch_up_while_serving(snapshot_service& service, replica& r) {
    std::atomic<bool> done{false};
    std::thread producer = serve(service, done);
    r.catch_up();
    done = true;
    producer.join();
  }
  replica_options options() {
    return {.snapshot_dir = dir.path(),
            .snapshot_timeout = 60s,
            .on_event = [this](const replica_event& e) { events.push_back(e); }};
  }
  bool saw(replica_event::kind k) const {
    for (const auto& e : events)
      if (e.what == k) return true;
    return false;
  }
  std::string message_of(replica_event::kind k) const {
    for (const auto& e : events)
      if (e.what == k) return e.message;
    return "";
  }
  void append_n(int n, const std::string& prefix) {
    for (int i = 0; i < n; ++i)
      test::append_and_apply(w, producer_state, prefix + std::to_string(i) + std::string(40, '.'));
  }
};

TEST_F(full_resync, ServiceRefusesAMissingDirectoryNamingIt) {
  try {
    snapshot_service s(w, producer_state, {.dir = dir.path() / "nope"});
    FAIL();
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
  }
}

TEST_F(full_resync, NewReplicaLoadsASnapshotThenFollowsTheLog) {
  snapshot_service service(w, producer_state, {.dir = dir.path(), .check_every = 1});
  append_n(50, "before-");
  test::list_state state;
  replica r(log.name(), state, options());
  catch_up_while_serving(service, r);
  EXPECT_TRUE(r.synced());
  EXPECT_EQ(state.loads, 1u);
  EXPECT_EQ(state.items, producer_state.items);
  EXPECT_EQ(r.offset(), w.master_offset());
  append_n(5, "after-");
  r.catch_up();
  EXPECT_EQ(state.items, producer_state.items);
  EXPECT_EQ(r.stats().full_resyncs, 1u);
  EXPECT_TRUE(saw(replica_event::kind::snapshot_requested));
  EXPECT_TRUE(saw(replica_event::kind::full_resync_done));
  const log_info info = inspect(log.name());
  EXPECT_EQ(info.sync_full, 1u);
}

TEST_F(full_resync, AnnouncedSnapshotStillInTheBacklogIsUsedWithoutAskingAgain) {
  snapshot_service service(w, producer_state, {.dir = dir.path()});
  append_n(20, "a-");
  service.snapshot_now();
  append_n(20, "b-");  // still within the ring: the replica continues from the old snapshot
  test::list_state state;
  replica r(log.name(), state, options());
  r.catch_up();
  EXPECT_FALSE(saw(replica_event::kind::snapshot_requested));
  EXPECT_EQ(state.items, producer_state.items);
}

TEST_F(full_resync, ManyRequestsAreServedByOneSnapshot) {
  snapshot_service service(w, producer_state, {.dir = dir.path(), .check_every = 1});
  append_n(10, "x-");
  reader asker = reader::attach(log.name());
  for (int i = 0; i < 5; ++i)
    asker.request_snapshot();  // five readers ask before the producer looks
  service.poll();
  EXPECT_EQ(service.published(), 1u);
  service.poll();
  EXPECT_EQ(service.published(), 1u);  // nothing new to answer
  EXPECT_EQ(list_snapshots(dir.path(), log.name()).size(), 1u);
}

TEST_F(full_resync, LappedReplicaReloadsTheStateAndCatchesUp) {
  snapshot_service service(w, producer_state, {.dir = dir.path(), .check_every = 1});
  service.snapshot_now();
  test::list_state state;
  replica r(log.name(), state, options());
  r.catch_up();
  append_n(2000, "flood-");  // far more than the 16 KiB ring: the replica is lapped
  catch_up_while_serving(service, r);
  EXPECT_TRUE(saw(replica_event::kind::lapped));
  EXPECT_EQ(r.stats().full_resyncs, 2u);
  EXPECT_EQ(state.items, producer_state.items);
}

TEST_F(full_resync, CorruptSnapshotIsRefusedAndANewOneAskedFor) {
  snapshot_service service(w, producer_state, {.dir = dir.path(), .check_every = 1});
  append_n(30, "c-");
  const snapshot_meta bad = service.snapshot_now();
  {
    std::fstream f(bad.path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(snapshot_header_size + 10);
    f.put('#');  // a flipped byte in the payload
  }
  test::list_state state;
  replica r(log.name(), state, options());
  catch_up_while_serving(service, r);
  EXPECT_EQ(r.stats().snapshots_rejected, 1u);
  EXPECT_NE(message_of(replica_event::kind::snapshot_rejected).find(bad.path.string()),
            std::string::npos);
  EXPECT_NE(message_of(replica_event::kind::snapshot_rejected).find("checksum"), std::string::npos);
  EXPECT_EQ(state.items, producer_state.items);
}

// The writer keeps appending while the replica loads, more than the ring keeps: the snapshot's
// offset is gone by the time the replica could continue from it. It must say so, with the
// numbers and the capacity that would work, count it, and get there with a newer snapshot.
TEST_F(full_resync, BacklogTooSmallIsReportedWithACapacityThatWouldWork) {
  snapshot_service service(w, producer_state, {.dir = dir.path(), .check_every = 1});
  append_n(10, "s-");
  service.snapshot_now();
  test::list_state state;
  std::atomic<bool> flooded{false};
  replica_options o = options();
  o.on_load_progress = [&](std::uint64_t, std::uint64_t) {
    if (flooded.load()) return;
    append_n(2000, "during-load-");  // ~96 KiB through a 16 KiB ring
    flooded = true;                  // only now may the producer thread touch the writer
  };
  replica r(log.name(), state, o);
  std::atomic<bool> done{false};
  std::thread producer;
  // The first load floods; only then may the producer answer the new request.
  std::thread starter([&] {
    while (!flooded)
      std::this_thread::yield();
    producer = serve(service, done);
  });
  r.catch_up();
  starter.join();
  done = true;
  producer.join();
  EXPECT_EQ(r.stats().backlog_too_small, 1u);
  const std::string m = message_of(replica_event::kind::backlog_too_small);
  EXPECT_NE(m.find("backlog too small"), std::string::npos) << m;
  EXPECT_NE(m.find("16384-byte ring"), std::string::npos) << m;
  EXPECT_NE(m.find("a capacity of at least 262144"), std::string::npos) << m;  // 2 x ~96 KiB
  EXPECT_EQ(inspect(log.name()).window.master_offset, w.master_offset());
  EXPECT_EQ(state.items, producer_state.items);
  EXPECT_EQ(r.stats().full_resyncs, 1u);
}

// The announced file replaced by a FIFO: the replica used to wait in open() for a writer that
// never comes. It must refuse it at once, naming it, and load the next snapshot.
TEST_F(full_resync, FifoAtTheAnnouncedPathIsRefusedWithoutHanging) {
  snapshot_service service(w, producer_state, {.dir = dir.path(), .check_every = 1});
  append_n(30, "q-");
  const snapshot_meta announced = service.snapshot_now();
  fs::remove(announced.path);
  ASSERT_EQ(::mkfifo(announced.path.c_str(), 0600), 0);
  test::list_state state;
  replica_options o = options();
  o.max_backoff = 20ms;
  replica r(log.name(), state, o);
  test::fifo_watchdog watchdog(announced.path, 10s);
  catch_up_while_serving(service, r);
  EXPECT_TRUE(watchdog.stop()) << "the replica blocked on the FIFO";
  EXPECT_EQ(r.stats().snapshots_rejected, 1u);
  EXPECT_NE(message_of(replica_event::kind::snapshot_rejected)
                .find("snapshot '" + announced.path.string() + "': is a FIFO, not a regular file"),
            std::string::npos)
      << message_of(replica_event::kind::snapshot_rejected);
  EXPECT_EQ(state.items, producer_state.items);
  EXPECT_TRUE(r.synced());
}

TEST_F(full_resync, SnapshotOutsideTheReplicasDirectoryIsRefused) {
  scratch_dir elsewhere;
  snapshot_service service(w, producer_state, {.dir = elsewhere.path(), .check_every = 1});
  service.snapshot_now();
  test::list_state state;
  replica_options o = options();
  o.max_backoff = 20ms;
  std::atomic<bool> rejected{false};
  o.on_event = [&](const replica_event& e) {
    events.push_back(e);
    if (e.what == replica_event::kind::snapshot_rejected) rejected = true;
  };
  replica r(log.name(), state, o);
  std::thread stopper([&] {
    while (!rejected.load())
      std::this_thread::yield();
    r.stop();
  });
  EXPECT_EQ(r.catch_up(), 0u);  // stopped: never loaded the foreign file
  stopper.join();
  EXPECT_EQ(state.loads, 0u);
  EXPECT_NE(
      message_of(replica_event::kind::snapshot_rejected).find("not in the snapshot directory"),
      std::string::npos);
}

TEST_F(full_resync, ForkModeSnapshotIsWrittenByAChildAndPublished) {
  snapshot_service service(w, producer_state,
                           {.dir = dir.path(), .mode = snapshot_mode::fork, .check_every = 1});
  append_n(40, "f-");
  test::list_state state;
  replica r(log.name(), state, options());
  catch_up_while_serving(service, r);
  EXPECT_EQ(state.items, producer_state.items);
  EXPECT_EQ(service.published(), 1u);
}

TEST_F(full_resync, WaitCountsReadersThatConsumedUpToTheOffset) {
  reader a = reader::attach(log.name(), {.start = start_position::oldest()});
  reader b = reader::attach(log.name(), {.start = start_position::oldest()});
  append_n(3, "w-");
  const std::uint64_t target = w.master_offset();
  std::vector<std::byte> buf;
  while (a.poll_copy(buf).status == poll_status::record) {
  }
  EXPECT_EQ(w.wait_for_readers(2, target, 5ms), 1u);  // b has not read yet: times out
  while (b.poll_copy(buf).status == poll_status::record) {
  }
  EXPECT_EQ(w.wait_for_readers(2, target, 60s), 2u);
  EXPECT_EQ(w.wait_for_readers(1, target + 8, 1ms), 0u);
}

}  // namespace
}  // namespace shmlog
