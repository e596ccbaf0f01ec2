// Full resync with real processes (issue 4, items 5 and 9): a producer process that serves
// snapshots of its state (tests/peer/test_peer.cc, role "producer") and replica processes that
// load them (role "replica"), killed with SIGKILL at the points that matter — a replica in the
// middle of loading, a producer in the middle of saving — plus corrupt files, many requests at
// once, a backlog too small for the snapshot's age, and producers that restart on a log with
// their state at, behind, or outside the log's history. Hand-overs are lines on pipes (the
// replica's load stops in its progress callback until told to resume; the producer's save
// stops half-way for good); conditions on the segment are polled under deadlines. States are
// lists of records (tests/test_state.h), compared by count and checksum at the same offset.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "deadline.h"
#include "fault.h"
#include "mapping.h"
#include "process_peer.h"
#include "raw_segment.h"
#include "shmlog/shmlog.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using shmlog::test::fields;
using shmlog::test::find_reader;
using shmlog::test::peer;
using shmlog::test::read_file;
using shmlog::test::scoped_log;
using shmlog::test::scratch_dir;
using shmlog::test::steady;
using shmlog::test::unique_log_name;
using shmlog::test::write_file;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Polls `done` until it holds; throws after the deadline. The interval is a polling pace only.
template <class Condition>
void await(Condition done, const std::string& what,
           steady::duration timeout = shmlog::test::condition_timeout) {
  const auto deadline = steady::now() + timeout;
  while (!done()) {
    if (steady::now() > deadline) throw std::runtime_error("timed out waiting until " + what);
    std::this_thread::sleep_for(200us);
  }
}

class resync_processes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Writing to a peer that died must fail the test, not kill it.
    ::signal(SIGPIPE, SIG_IGN);
    // A fork-mode producer's child that loses its parent to SIGKILL becomes ours, so that the
    // test can wait for it to be gone (and reap it) rather than leave that to an init that
    // may not reap at all.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  }

  void TearDown() override {
    peers_.clear();  // their orphans, if any, are ours from here on
    for (const pid_t pid : orphans_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

  void create_log(std::uint64_t capacity, std::uint32_t reader_slots = 8) {
    shmlog::create(log_, {.capacity = capacity, .reader_slots = reader_slots});
  }

  peer& start(const std::string& role, std::vector<std::string> options) {
    options.insert(options.begin(), {role, log_.name(), "--snapshot-dir", dir_.path().string()});
    peers_.push_back(std::make_unique<peer>(std::move(options)));
    return *peers_.back();
  }
  // A producer, ready (its ready line is returned through `ready` if asked for).
  peer& producer(std::vector<std::string> options = {}, std::string* ready = nullptr) {
    peer& p = start("producer", std::move(options));
    const std::string line = p.await_line("ready");
    if (ready) *ready = line;
    return p;
  }
  // A replica, attached (not yet synchronised: its first catch_up does the full resync).
  peer& replica(std::vector<std::string> options = {}, std::string* ready = nullptr) {
    peer& r = start("replica", std::move(options));
    const std::string line = r.await_line("ready");
    if (ready) *ready = line;
    return r;
  }

  static std::string ask(peer& p, const std::string& command, const std::string& answer) {
    p.send_line(command);
    return p.await_line(answer);
  }

  // The producer's state now; then each replica applies records up to exactly the producer's
  // master offset and must hold the same state there. Returns the replicas' state lines.
  std::vector<fields> expect_same_state(peer& producer, const std::vector<peer*>& replicas) {
    const fields want(ask(producer, "state", "state"));
    std::vector<fields> got;
    for (peer* r : replicas) {
      SCOPED_TRACE("replica pid " + std::to_string(r->pid()));
      got.emplace_back(ask(*r, "sync " + std::to_string(want["master"]), "state"));
      EXPECT_EQ(got.back()["offset"], want["master"]);
      EXPECT_EQ(got.back()["items"], want["items"]);
      EXPECT_EQ(got.back()["checksum"], want["checksum"]);
      EXPECT_EQ(got.back().text("replid"), want.text("replid"));
    }
    return got;
  }

  // The newest snapshot the segment announces (the producer's seqlock-protected block).
  shmlog::snapshot_meta announcement() const {
    auto file = shmlog::detail::segment_file::open(log_.name(), false);
    const auto map = shmlog::detail::mapping::map(file, shmlog::detail::map_access::inspector);
    return shmlog::detail::read_snapshot_announcement(*map);
  }
  // Counters of the reader area that inspect() does not show.
  std::uint64_t snapshot_requests() const {
    const shmlog::test::raw_segment raw(log_.name());
    return area(raw).snapshot_requests.load();
  }
  std::uint64_t backlog_too_small_count() const {
    const shmlog::test::raw_segment raw(log_.name());
    return area(raw).backlog_too_small.load();
  }
  static shmlog::reader_area_header& area(const shmlog::test::raw_segment& raw) {
    return *reinterpret_cast<shmlog::reader_area_header*>(
        raw.base() + raw.header().descriptor.reader_area_offset);
  }

  // The snapshot directory's entries: final files and temporary ones apart.
  std::vector<std::string> files(bool temporary) const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      const std::string n = e.path().filename().string();
      if (contains(n, ".snap.tmp.") == temporary) names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // Waits for an orphan (a peer's child reparented to this process by PR_SET_CHILD_SUBREAPER)
  // to exit and returns its wait status.
  int reap_orphan(pid_t pid) {
    int status = 0;
    await(
        [&] {
          const pid_t done = ::waitpid(pid, &status, WNOHANG);
          if (done < 0) throw std::runtime_error("pid " + std::to_string(pid) + " is not ours");
          return done == pid;
        },
        "orphan " + std::to_string(pid) + " exits");
    std::erase(orphans_, pid);
    return status;
  }

  scratch_dir dir_;
  scoped_log log_{unique_log_name("rsp")};
  std::vector<std::unique_ptr<peer>> peers_;
  std::vector<pid_t> orphans_;  // killed and reaped at the end unless reaped before
};

// ---------------------------------------------------------------------------------------------
// Issue 4, item 9: kill -9 of a replica while it loads a snapshot.

// The replica is stopped inside load(), with a megabyte of the state read, when it is killed.
// Nothing of the half-loaded state can leak (it was in the dead process only), its reader slot
// comes back to the next replica, which loads the same announced snapshot (the producer does not
// have to save again) and ends with the producer's exact state.
TEST_F(resync_processes, ReplicaKilledMidLoadGivesItsSlotToOneThatLoadsTheExactState) {
  create_log(65536, 4);
  peer& p = producer();
  ask(p, "append 2000 600", "appended");  // a ~1.2 MB state: the load reports a middle point

  peer& dying = start("replica", {"--pause-loads", "1", "--pause-at", "1"});
  const std::uint64_t slot = fields(dying.await_line("ready"))["slot"];
  const fields paused(dying.await_line("paused"));
  EXPECT_GT(paused["bytes"], 0u);
  EXPECT_LT(paused["bytes"], paused["total"]);
  ASSERT_NE(find_reader(shmlog::inspect(log_), static_cast<std::uint64_t>(dying.pid())), nullptr);

  dying.signal(SIGKILL);
  const int status = dying.wait_exit();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << peer::describe(status);
  const shmlog::log_info dead = shmlog::inspect(log_);
  EXPECT_EQ(dead.stale_slots, 1u);
  EXPECT_EQ(find_reader(dead, static_cast<std::uint64_t>(dying.pid())), nullptr);
  EXPECT_EQ(dead.sync_full, 0u);  // it never finished

  std::string ready;
  peer& next = replica({}, &ready);
  EXPECT_EQ(fields(ready)["slot"], slot);
  next.await_line("event full_resync_done");
  EXPECT_EQ(shmlog::inspect(log_).stale_slots, 0u);

  ask(p, "append 10", "appended");
  const std::vector<fields> got = expect_same_state(p, {&next});
  EXPECT_EQ(got[0]["loads"], 1u);
  EXPECT_EQ(got[0]["full_resyncs"], 1u);
  EXPECT_EQ(fields(ask(p, "stats", "stats"))["published"], 1u);
  EXPECT_EQ(shmlog::inspect(log_).sync_full, 1u);
}

// ---------------------------------------------------------------------------------------------
// Issue 4, item 9: kill -9 of the producer while it writes a snapshot.

class resync_processes_by_mode : public resync_processes,
                                 public ::testing::WithParamInterface<const char*> {
 protected:
  bool fork_mode() const { return std::string(GetParam()) == "fork"; }
};

// The save stops for good after 100 bytes of payload (in the producer itself, or in its
// fork-mode child), and the producer is killed there. Nothing is published, no final file of
// that generation exists, only the dead writer's temporary file; the next producer (state
// rebuilt from the backlog) removes that file when its service starts, answers the request
// still pending, and the waiting replica loads a whole file and ends with its exact state.
TEST_P(resync_processes_by_mode, ProducerKilledMidSaveLeavesOnlyATempFileTheNextOneRemoves) {
  create_log(65536);
  peer& a = producer({"--mode", GetParam()});
  const std::uint64_t master = fields(ask(a, "append 50", "appended"))["master"];
  ask(a, "block-save 100", "blocking");

  peer& r = replica();
  r.await_line("event snapshot_requested");
  const fields saving(a.await_line("saving"));
  const auto saver = static_cast<pid_t>(saving["pid"]);
  EXPECT_EQ(saving["bytes"], 100u);
  std::uint64_t final_master = master;
  if (fork_mode()) {
    // BGSAVE: the child is stuck, the writer is not.
    EXPECT_NE(saver, a.pid());
    final_master = fields(ask(a, "append 10", "appended"))["master"];
  } else {
    EXPECT_EQ(saver, a.pid());
  }

  const std::vector<std::string> temporary = files(true);
  ASSERT_EQ(temporary.size(), 1u);
  const std::string expected_temp =
      "." + shmlog::snapshot_file_name(log_.name(), master, 1) + ".tmp." + std::to_string(saver);
  EXPECT_EQ(temporary[0], expected_temp);
  EXPECT_EQ(fs::file_size(dir_.path() / temporary[0]), shmlog::snapshot_header_size + 100);

  a.signal(SIGKILL);
  a.wait_exit();
  if (fork_mode()) {
    orphans_.push_back(saver);
    const int status = reap_orphan(saver);  // killed with its parent (PR_SET_PDEATHSIG)
    EXPECT_TRUE(WIFSIGNALED(status)) << peer::describe(status);
  }
  EXPECT_EQ(announcement().generation, 0u);  // nothing was published for it
  EXPECT_TRUE(files(false).empty());         // and no final .snap file exists
  EXPECT_EQ(files(true), temporary);
  EXPECT_EQ(shmlog::inspect(log_).window.master_offset, final_master);

  std::string ready;
  peer& b = producer({"--mode", GetParam(), "--recover", "replay"}, &ready);
  EXPECT_EQ(fields(ready).text("plan"), "keep");
  EXPECT_EQ(fields(ready)["master"], final_master);
  // Removed by remove_stale_snapshot_files when its service started. (Only the dead writer's:
  // by now the new producer may be writing a temporary file of its own.)
  EXPECT_FALSE(fs::exists(dir_.path() / expected_temp));

  r.await_line("event full_resync_done");
  const shmlog::snapshot_meta ann = announcement();
  EXPECT_EQ(ann.generation, 1u);
  EXPECT_EQ(ann.offset, final_master);
  EXPECT_EQ(files(false),
            std::vector<std::string>{shmlog::snapshot_file_name(log_.name(), final_master, 1)});
  ask(b, "append 5", "appended");
  const std::vector<fields> got = expect_same_state(b, {&r});
  EXPECT_EQ(got[0]["loads"], 1u);
  EXPECT_EQ(got[0]["rejected"], 0u);  // never handed a torn file
  EXPECT_FALSE(contains(r.transcript(), "event snapshot_rejected")) << r.transcript();
  EXPECT_TRUE(files(true).empty());
}

// BGSAVE's child may outlive a producer killed with -9 (nothing kills it). It must not keep the
// writer role: the next producer takes over at once and serves the request still pending,
// while the child's temporary file is left alone (its writer is alive). When the child then
// finishes, its file is whole but announced by nobody; the announcement stays the new
// producer's, and replicas load that one. (The writer lock is on a description the child's
// inherited mapping does not share: writer::open in writer/writer.cc.)
TEST_F(resync_processes, ForkChildOutlivingAKilledProducerHoldsNoRoleAndIsNeverAnnounced) {
  create_log(65536);
  peer& a = producer({"--mode", "fork"});
  const std::uint64_t forked_at = fields(ask(a, "append 50", "appended"))["master"];
  ask(a, "block-save 100 orphan", "blocking");
  peer& r = replica();
  r.await_line("event snapshot_requested");
  const auto child = static_cast<pid_t>(fields(a.await_line("saving"))["pid"]);
  orphans_.push_back(child);
  const std::uint64_t master = fields(ask(a, "append 10", "appended"))["master"];
  const std::string child_temp =
      "." + shmlog::snapshot_file_name(log_.name(), forked_at, 1) + ".tmp." + std::to_string(child);

  a.signal(SIGKILL);
  a.wait_exit();
  ASSERT_EQ(::waitpid(child, nullptr, WNOHANG), 0) << "the child should still be saving";
  EXPECT_FALSE(shmlog::inspect(log_).writer_alive);

  std::string ready;
  peer& b = producer({"--mode", "fork", "--recover", "replay"}, &ready);
  EXPECT_EQ(fields(ready)["crashed"], 1u);
  EXPECT_EQ(fields(ready)["previous_pid"], static_cast<std::uint64_t>(a.pid()));
  EXPECT_EQ(fields(ready)["master"], master);
  EXPECT_TRUE(fs::exists(dir_.path() / child_temp));  // its writer may still be at it
  EXPECT_TRUE(contains(r.await_line("event full_resync_done"),
                       "loaded snapshot 1 at offset " + std::to_string(master)));

  ::kill(child, SIGUSR1);
  const int status = reap_orphan(child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << peer::describe(status);
  EXPECT_FALSE(fs::exists(dir_.path() / child_temp));
  const fs::path unannounced = dir_.path() / shmlog::snapshot_file_name(log_.name(), forked_at, 1);
  EXPECT_TRUE(fs::exists(unannounced));
  const shmlog::snapshot_meta ann = announcement();
  EXPECT_EQ(ann.generation, 1u);
  EXPECT_EQ(ann.offset, master);
  EXPECT_NE(ann.path, unannounced.string());

  peer& late = replica();
  EXPECT_TRUE(contains(late.await_line("event full_resync_done"),
                       "loaded snapshot 1 at offset " + std::to_string(master)));
  ask(b, "append 5", "appended");
  expect_same_state(b, {&r, &late});
}

// Daemons often set SIGCHLD to SIG_IGN; the kernel then reaps the fork-mode child itself and
// waitpid() reports ECHILD instead of its exit status. The child's work is not lost with it: a
// whole file under the expected name says that it saved (snapshot_service::reap).
TEST_F(resync_processes, ForkModeServesAProducerThatIgnoresSigchld) {
  create_log(65536);
  peer& p = producer({"--mode", "fork", "--ignore-sigchld"});
  ask(p, "append 20", "appended");
  peer& r = replica();
  r.await_line("event full_resync_done");
  EXPECT_EQ(fields(ask(p, "stats", "stats"))["published"], 1u);
  ask(p, "append 5", "appended");
  expect_same_state(p, {&r});
}

INSTANTIATE_TEST_SUITE_P(InlineAndFork, resync_processes_by_mode,
                         ::testing::Values("inline", "fork"),
                         [](const auto& param_info) { return std::string(param_info.param); });

// Issue 4, item 3: a snapshot directory that is missing is reported when the producer or the
// replica starts, naming it, not at the first request.
TEST_F(resync_processes, MissingSnapshotDirectoryIsReportedAtStartUpNamingIt) {
  create_log(65536);
  const std::string missing = (dir_.path() / "missing").string();
  for (const char* role : {"producer", "replica"}) {
    SCOPED_TRACE(role);
    peer& p = start(role, {"--snapshot-dir", missing});  // the later option wins
    const std::string error = p.await_line("error");
    EXPECT_TRUE(contains(error, "code=invalid_argument")) << error;
    EXPECT_TRUE(contains(error, "snapshot directory '" + missing + "' does not exist")) << error;
    EXPECT_EQ(WEXITSTATUS(p.wait_exit()), 3);
  }
}

// ---------------------------------------------------------------------------------------------
// Issue 4, item 9: corrupt snapshot files of each kind.

struct corruption {
  const char* name;
  const char* problem;  // what the replica's refusal must say
};
// gtest shows the parameter by this (its bytes otherwise).
void PrintTo(const corruption& c, std::ostream* out) {
  *out << c.name;
}

class resync_processes_by_corruption : public resync_processes,
                                       public ::testing::WithParamInterface<corruption> {
 protected:
  // Damages the published file in place, as a disk or an operator might.
  void damage(const fs::path& path) {
    std::string bytes = read_file(path);
    ASSERT_GT(bytes.size(), shmlog::snapshot_header_size + 20);
    const std::string kind = GetParam().name;
    // A change that keeps the header's own checksum right, so that the check after it is hit.
    const auto rechecksum = [&] {
      const std::uint32_t crc = shmlog::crc32c(bytes.data(), 124);
      std::memcpy(bytes.data() + 124, &crc, 4);
    };
    if (kind == "truncated") {
      bytes.resize(bytes.size() / 2);
    } else if (kind == "payload_bit") {
      bytes[shmlog::snapshot_header_size + 10] ^= 0x10;
    } else if (kind == "header_bit") {
      bytes[17] ^= 0x01;  // the offset
    } else if (kind == "wrong_history") {
      const std::string other = shmlog::history_id::random().str();
      std::memcpy(bytes.data() + 48, other.data(), other.size());
      rechecksum();
    } else if (kind == "wrong_version") {
      const std::uint32_t version = 9;
      std::memcpy(bytes.data() + 8, &version, 4);
      rechecksum();
    } else if (kind == "not_a_snapshot") {
      std::memset(bytes.data(), 'x', 8);  // the magic
    } else {
      FAIL() << "unknown corruption " << kind;
    }
    write_file(path, bytes);
  }
};

// The announced file is damaged after it was published. A replica process refuses it with an
// event naming the file and the problem, never loads it, asks for another, and ends with the
// producer's exact state from the next snapshot.
TEST_P(resync_processes_by_corruption, ReplicaRefusesTheFileNamingItAndTheProblemThenSyncs) {
  create_log(65536);
  peer& p = producer();
  ask(p, "append 30", "appended");
  const fields published(ask(p, "snapshot", "snapshot"));
  const fs::path path = published.text("path");
  damage(path);

  peer& r = replica();
  const std::string refusal = r.await_line("event snapshot_rejected");
  EXPECT_TRUE(contains(refusal, "snapshot '" + path.string() + "'")) << refusal;
  EXPECT_TRUE(contains(refusal, GetParam().problem)) << refusal;
  r.await_line("event snapshot_requested");  // asks again
  EXPECT_TRUE(contains(r.await_line("event full_resync_done"), "loaded snapshot 2"));

  ask(p, "append 5", "appended");
  const std::vector<fields> got = expect_same_state(p, {&r});
  EXPECT_EQ(got[0]["rejected"], 1u);
  EXPECT_EQ(got[0]["loads"], 1u);  // load() never ran on the damaged file
  EXPECT_EQ(announcement().generation, 2u);
}

INSTANTIATE_TEST_SUITE_P(
    EveryKind, resync_processes_by_corruption,
    ::testing::Values(corruption{"truncated", "truncated"},
                      corruption{"payload_bit", "payload checksum mismatch"},
                      corruption{"header_bit", "header checksum mismatch"},
                      corruption{"wrong_history", "belongs to history"},
                      corruption{"wrong_version", "format version 9; this build reads version 1"},
                      corruption{"not_a_snapshot", "not a shmlog snapshot"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// ---------------------------------------------------------------------------------------------
// Issue 4, item 9: many readers requesting at once.

// Five replica processes start together and each asks for a snapshot; the producer looks only
// once all five requests are in the segment (it is told to serve then), so exactly one
// snapshot answers all of them, in either save mode.
TEST_P(resync_processes_by_mode, ManyReplicasAskingAtOnceAreServedByOneSnapshot) {
  constexpr std::size_t replicas = 5;
  create_log(65536, 8);
  peer& p = producer({"--mode", GetParam(), "--no-serve"});
  ask(p, "append 100", "appended");

  std::vector<peer*> rs;
  for (std::size_t i = 0; i < replicas; ++i)
    rs.push_back(&start("replica", {}));  // all spawned before any is waited for
  for (peer* r : rs)
    r->await_line("event snapshot_requested");
  await([&] { return snapshot_requests() == replicas; }, "all five requests are in");
  EXPECT_EQ(announcement().generation, 0u);

  ask(p, "serve on", "serving");
  for (peer* r : rs)
    EXPECT_TRUE(contains(r->await_line("event full_resync_done"), "loaded snapshot 1 "));
  EXPECT_EQ(fields(ask(p, "stats", "stats"))["published"], 1u);
  const shmlog::snapshot_meta ann = announcement();
  EXPECT_EQ(ann.generation, 1u);
  EXPECT_EQ(ann.requests_served, replicas);
  EXPECT_EQ(files(false).size(), 1u);
  EXPECT_EQ(shmlog::inspect(log_).sync_full, replicas);

  ask(p, "append 20", "appended");
  for (const fields& got : expect_same_state(p, rs))
    EXPECT_EQ(got["loads"], 1u);
}

// shmlog info's counters as Redis keeps them: a full resync counts once, in sync_full; a
// replica continuing from the snapshot it loaded is not also a partial resync (sync_partial_ok),
// and one whose snapshot the backlog could not continue was not refused a PSYNC
// (sync_partial_err).
TEST_F(resync_processes, FullResyncsCountOnlyAsSyncFull) {
  create_log(16384);
  peer& p = producer();
  ask(p, "append 20", "appended");
  peer& slow = replica({"--pause-loads", "1"});
  slow.await_line("paused");
  ask(p, "append 600 40", "appended");  // past the snapshot the paused replica is loading
  slow.send_line("resume");
  slow.await_line("event backlog_too_small");
  slow.await_line("event full_resync_done");
  peer& other = replica();
  other.await_line("event full_resync_done");
  const shmlog::log_info info = shmlog::inspect(log_);
  EXPECT_EQ(info.sync_full, 2u);
  EXPECT_EQ(info.sync_partial_ok, 0u);
  EXPECT_EQ(info.sync_partial_err, 0u);
}

// ---------------------------------------------------------------------------------------------
// Issue 4, item 9: the backlog-too-small report.

// The replica stops in its first load; meanwhile the producer appends more than the 16 KiB ring
// holds, so the snapshot's offset is overwritten by the time the load ends. The replica must say
// so with the numbers (the snapshot's offset, the bytes appended since, the ring) and the
// capacity that would have worked, count it in the segment, and get there with a newer snapshot.
TEST_F(resync_processes, BacklogTooSmallIsReportedWithTheNumbersThenANewerSnapshotWorks) {
  constexpr std::uint64_t capacity = 16384;
  create_log(capacity);
  peer& p = producer();
  ask(p, "append 20", "appended");

  peer& r = replica({"--pause-loads", "1"});
  r.await_line("paused");
  const std::uint64_t snapshot_offset = announcement().offset;
  const std::uint64_t master = fields(ask(p, "append 600 40", "appended"))["master"];
  const std::uint64_t appended = master - snapshot_offset;
  ASSERT_GT(appended, capacity);
  ASSERT_GT(shmlog::inspect(log_).window.first_byte_offset, snapshot_offset);
  r.send_line("resume");

  const std::string report = r.await_line("event backlog_too_small");
  const std::uint64_t wanted = std::bit_ceil(std::max(2 * appended, 2 * capacity));
  EXPECT_TRUE(contains(report, "backlog too small: snapshot at offset " +
                                   std::to_string(snapshot_offset) + " took "))
      << report;
  EXPECT_TRUE(contains(report, "while the writer appended " + std::to_string(appended) +
                                   " bytes, more than the 16384-byte ring keeps"))
      << report;
  EXPECT_TRUE(contains(
      report, "a capacity of at least " + std::to_string(wanted) + " would let readers catch up"))
      << report;
  EXPECT_EQ(backlog_too_small_count(), 1u);

  EXPECT_TRUE(contains(r.await_line("event full_resync_done"), "loaded snapshot 2"));
  const std::vector<fields> got = expect_same_state(p, {&r});
  EXPECT_EQ(got[0]["backlog_too_small"], 1u);
  EXPECT_EQ(got[0]["loads"], 2u);
  EXPECT_EQ(got[0]["full_resyncs"], 1u);
  EXPECT_EQ(shmlog::inspect(log_).sync_full, 1u);
}

// ---------------------------------------------------------------------------------------------
// Issue 4, item 5: a producer that restarts on the log, with real processes.

// The first producer appends, snapshots (offset S) and appends more (to M); it ends cleanly or
// is killed. The next one rebuilds its state from the newest snapshot plus the backlog after S,
// so its state is exactly at M: the history goes on (same replid, same master offset) and the
// replica that was following reads on without any resync.
class resync_processes_by_exit : public resync_processes,
                                 public ::testing::WithParamInterface<const char*> {};

TEST_P(resync_processes_by_exit, ProducerRebuiltToTheMasterOffsetKeepsTheHistory) {
  create_log(65536);
  peer& a = producer();
  ask(a, "append 40", "appended");
  const fields snapshot(ask(a, "snapshot", "snapshot"));
  ask(a, "append 25", "appended");
  peer& r = replica();
  r.await_line("event full_resync_done");
  const fields before(ask(a, "state", "state"));
  EXPECT_GT(before["master"], snapshot["offset"]);
  expect_same_state(a, {&r});

  if (std::string(GetParam()) == "killed") {
    a.signal(SIGKILL);
    a.wait_exit();
  } else {
    a.close_stdin();
    a.expect_success();
  }

  std::string ready;
  peer& b = producer({"--recover", "replay"}, &ready);
  const fields started(ready);
  EXPECT_EQ(started.text("plan"), "keep");
  EXPECT_EQ(started.text("replid"), before.text("replid"));
  EXPECT_EQ(started["master"], before["master"]);
  EXPECT_EQ(started["items"], before["items"]);  // snapshot + replay = exactly A's state
  EXPECT_EQ(started["checksum"], before["checksum"]);
  const shmlog::log_info info = shmlog::inspect(log_);
  EXPECT_EQ(info.history.replid.str(), before.text("replid"));
  EXPECT_TRUE(info.history.replid2.is_none());

  ask(b, "append 15", "appended");
  const std::vector<fields> got = expect_same_state(b, {&r});
  EXPECT_EQ(got[0]["full_resyncs"], 1u);  // the first one only
  EXPECT_EQ(got[0]["partial_resyncs"], 0u);
  EXPECT_EQ(got[0]["loads"], 1u);
  EXPECT_FALSE(contains(r.transcript(), "event history_changed")) << r.transcript();
  EXPECT_EQ(shmlog::inspect(log_).sync_full, 1u);
}

INSTANTIATE_TEST_SUITE_P(CleanExitAndKill, resync_processes_by_exit,
                         ::testing::Values("exited", "killed"),
                         [](const auto& param_info) { return std::string(param_info.param); });

// Two snapshots: S0, where one replica stops reading ("before"), and S, the newest; the log goes
// on to M, where the other replica stands ("beyond"). The next producer rebuilds its state from
// the snapshot at S alone, behind the master offset: the log branches (new replid, replid2 = the
// old one, second_repl_offset = S, master back to S). "before" is within the shared prefix and
// reads on under the new history — the old records up to S, then the new ones; "beyond" has
// read records the new history does not have and must reload. Both end with the new state.
TEST_F(resync_processes, ProducerRebuiltBehindTheMasterBranchesAndReplicasFollowThePsyncRules) {
  create_log(65536);
  peer& a = producer();
  ask(a, "append 30", "appended");
  const std::uint64_t s0 = fields(ask(a, "snapshot", "snapshot"))["offset"];
  peer& before = replica();
  before.await_line("event full_resync_done");
  EXPECT_EQ(fields(ask(before, "sync " + std::to_string(s0), "state"))["offset"], s0);
  EXPECT_EQ(fields(ask(before, "hold", "held"))["offset"], s0);

  ask(a, "append 20", "appended");
  const std::uint64_t s = fields(ask(a, "snapshot", "snapshot"))["offset"];
  ask(a, "append 20", "appended");
  const fields old(ask(a, "state", "state"));
  peer& beyond = replica();
  beyond.await_line("event full_resync_done");
  expect_same_state(a, {&beyond});
  a.close_stdin();
  a.expect_success();

  std::string ready;
  peer& b = producer({"--recover", "snapshot"}, &ready);
  const fields started(ready);
  EXPECT_EQ(started.text("plan"), "branch");
  EXPECT_EQ(started["rewinds"], 1u);
  EXPECT_EQ(started["previous_master"], old["master"]);
  EXPECT_EQ(started["master"], s);
  EXPECT_NE(started.text("replid"), old.text("replid"));
  EXPECT_EQ(started.text("replid2"), old.text("replid"));
  EXPECT_EQ(started["second"], s);
  EXPECT_EQ(started["items"], 50u);
  const shmlog::log_info info = shmlog::inspect(log_);
  EXPECT_EQ(info.history.replid.str(), started.text("replid"));
  EXPECT_EQ(info.history.replid2.str(), old.text("replid"));
  EXPECT_EQ(info.history.second_repl_offset, s);
  EXPECT_EQ(info.window.master_offset, s);

  ask(b, "append 10", "appended");
  ask(before, "go", "going");
  const std::string partial = before.await_line("event partial_resync");
  EXPECT_TRUE(contains(partial, "offset=" + std::to_string(s0))) << partial;
  const std::string changed = beyond.await_line("event history_changed");
  EXPECT_TRUE(contains(changed, "offset=" + std::to_string(old["master"]))) << changed;
  beyond.await_line("event full_resync_done");

  const std::vector<fields> got = expect_same_state(b, {&before, &beyond});
  EXPECT_EQ(got[0]["full_resyncs"], 1u);  // its first load only
  EXPECT_EQ(got[0]["partial_resyncs"], 1u);
  EXPECT_EQ(got[1]["full_resyncs"], 2u);
  EXPECT_EQ(got[1]["partial_resyncs"], 0u);
  EXPECT_FALSE(contains(before.transcript(), "event history_changed")) << before.transcript();
}

// The next producer's state is no prefix of the log (another history): the log restarts under
// a new replid sharing nothing (replid2 none, master offset unchanged), and every replica,
// wherever it stood, reloads the state.
TEST_F(resync_processes, UnrelatedProducerRestartsTheHistoryAndEveryReplicaReloads) {
  create_log(65536);
  peer& a = producer();
  ask(a, "append 30", "appended");
  const std::uint64_t s0 = fields(ask(a, "snapshot", "snapshot"))["offset"];
  peer& behind = replica();
  behind.await_line("event full_resync_done");
  ask(behind, "sync " + std::to_string(s0), "state");
  ask(behind, "hold", "held");
  ask(a, "append 20", "appended");
  peer& latest = replica();
  latest.await_line("event full_resync_done");
  const fields old(ask(a, "state", "state"));
  expect_same_state(a, {&latest});
  a.close_stdin();
  a.expect_success();

  std::string ready;
  peer& b = producer({"--recover", "unrelated"}, &ready);
  const fields started(ready);
  EXPECT_EQ(started.text("plan"), "restart");
  EXPECT_EQ(started["master"], old["master"]);
  EXPECT_NE(started.text("replid"), old.text("replid"));
  EXPECT_EQ(started.text("replid2"), shmlog::history_id().str());
  EXPECT_EQ(started.text("second"), "none");
  EXPECT_EQ(started["items"], 5u);

  ask(b, "append 10", "appended");
  ask(behind, "go", "going");
  for (peer* r : {&behind, &latest}) {
    SCOPED_TRACE("replica pid " + std::to_string(r->pid()));
    const std::string changed = r->await_line("event history_changed");
    // PSYNC with the old replid: neither the new id nor a replid2 (there is none).
    EXPECT_TRUE(contains(changed, "full resync: the requested history is neither " +
                                      started.text("replid") + " nor " +
                                      shmlog::history_id().str()))
        << changed;
    r->await_line("event full_resync_done");
  }
  for (const fields& got : expect_same_state(b, {&behind, &latest})) {
    EXPECT_EQ(got["full_resyncs"], 2u);
    EXPECT_EQ(got["partial_resyncs"], 0u);
    EXPECT_EQ(got["items"], 15u);
  }
}

// ---------------------------------------------------------------------------------------------
// Issue 8: a process killed inside a header seqlock, a reader synchronising during a history
// change, and WAIT for a replica that has not loaded its state yet.

// What every reader-side operation says about a header block a dead writer left half-written:
// a clear error at once, never a wait.
void expect_left_half_written(const std::string& log, const std::string& block, pid_t pid) {
  for (const auto& [what, op] : std::vector<std::pair<std::string, std::function<void()>>>{
           {"inspect",
            [&] {
              const shmlog::log_info info = shmlog::inspect(log);
              if (!info.problems.empty())
                throw shmlog::error(shmlog::errc::interrupted_update, info.problems.front());
            }},
           {"attach", [&] { shmlog::reader::attach(log).history(); }}}) {
    if (block == "snapshot" && what == "attach") continue;  // attach reads no snapshot block
    const std::string outcome = shmlog::test::outcome_within(shmlog::test::hang_guard, op);
    EXPECT_TRUE(contains(outcome, "error interrupted_update: log '" + log + "': the " + block +
                                      " block was left half-written"))
        << what << ": " << outcome;
    EXPECT_TRUE(contains(outcome, "by writer pid " + std::to_string(pid) +
                                      ", which died while changing it; the next writer to open "
                                      "the log repairs it"))
        << what << ": " << outcome;
  }
}

void expect_killed(peer& p) {
  const int status = p.wait_exit();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << peer::describe(status);
}

TEST_F(resync_processes, ProducerKilledInsideAHistoryChangeIsReportedAndTheNextWriterRepairsIt) {
  create_log(65536);
  peer& first = producer();
  ask(first, "append 10", "appended");
  first.close_stdin();
  first.expect_success();
  const shmlog::history_id before = shmlog::inspect(log_).history.replid;

  // An unrelated state makes the writer restart the history: killed with seq odd.
  peer& dying =
      start("producer", {"--recover", "unrelated", "--fault-kill", "history_change_half_done"});
  expect_killed(dying);
  expect_left_half_written(log_.name(), "history", dying.pid());

  // Replaying needs the log's history, which is lost: the library's recovery starts from the
  // newest snapshot (none here: an empty state), and its writer repairs the block with a
  // history that shares nothing.
  std::string ready;
  peer& next = producer({"--recover", "replay"}, &ready);
  EXPECT_EQ(fields(ready).text("plan"), "restart");
  const shmlog::log_info info = shmlog::inspect(log_);
  EXPECT_NE(info.history.replid, before);
  EXPECT_EQ(fields(ready).text("replid"), info.history.replid.str());
  peer& r = replica();
  r.await_line("event full_resync_done");
  ask(next, "append 5", "appended");
  expect_same_state(next, {&r});
}

TEST_F(resync_processes, ProducerKilledInsideASnapshotAnnouncementIsRepairedAndReplicasSync) {
  create_log(65536);
  peer& dying = producer({"--fault-kill", "snapshot_announcement_half_done"});
  ask(dying, "append 10", "appended");
  dying.send_line("snapshot");
  expect_killed(dying);
  expect_left_half_written(log_.name(), "snapshot", dying.pid());

  // A replica started now waits, saying why, until a producer repairs the block.
  peer& r = replica();
  EXPECT_TRUE(contains(r.await_line("event snapshot_rejected"),
                       "the snapshot block was left half-written"));
  peer& next = producer({"--recover", "replay"});
  // Never the withdrawn announcement (generation 1): a new snapshot. (Requests the replica made
  // while no producer ran may be answered by one snapshot or by two.)
  const std::string done = r.await_line("event full_resync_done");
  EXPECT_FALSE(contains(done, "loaded snapshot 1 ")) << done;
  EXPECT_GE(shmlog::inspect(log_).snapshot.generation, 2u);
  ask(next, "append 5", "appended");
  expect_same_state(next, {&r});
}

// Lets this process's reader, synchronising with the log, find the history seqlock odd once,
// then holds it there until the test has seen the writer finish (shm/fault.h).
struct seqlock_retry_gate {
  static inline std::mutex mutex;
  static inline std::condition_variable changed;
  static inline bool waiting = false;
  static inline bool released = false;

  static bool hook(shmlog::detail::fault_point p) {
    if (p != shmlog::detail::fault_point::seqlock_read_retry) return false;
    std::unique_lock lock(mutex);
    waiting = true;
    changed.notify_all();
    changed.wait(lock, [] { return released; });
    return false;
  }
  static void release() {
    const std::lock_guard lock(mutex);
    released = true;
    changed.notify_all();
  }
};

// Issue 8, item 5: the writer bumps the history epoch and takes the master offset back in one
// seqlock-protected change. A reader attaching at "latest" in between (the writer is paused there)
// waits for the change to complete, and then stands at the branch point in the new history, so
// it reads the new history's records from there: none skipped, none of the old history.
TEST_F(resync_processes, ReaderAttachingDuringARewindingBranchStandsAtTheBranchPoint) {
  create_log(65536);
  peer& a = producer();
  ask(a, "append 3", "appended");
  const std::uint64_t shared = fields(ask(a, "snapshot", "snapshot"))["offset"];
  const std::uint64_t old_master = fields(ask(a, "append 2", "appended"))["master"];
  a.close_stdin();
  a.expect_success();
  ASSERT_LT(shared, old_master);

  peer& b =
      start("producer", {"--recover", "snapshot", "--fault-pause", "history_change_epoch_bumped"});
  b.await_line("paused");
  shmlog::detail::set_fault_hook(seqlock_retry_gate::hook);
  std::optional<shmlog::reader> r;
  std::string attach_error;
  std::thread attach([&] {
    try {
      r.emplace(shmlog::reader::attach(log_, {.start = shmlog::start_position::latest()}));
    } catch (const std::exception& e) {
      attach_error = e.what();
    }
  });
  {
    std::unique_lock lock(seqlock_retry_gate::mutex);
    const bool seen = seqlock_retry_gate::changed.wait_for(
        lock, shmlog::test::condition_timeout, [] { return seqlock_retry_gate::waiting; });
    EXPECT_TRUE(seen) << "the reader never found the history block being changed";
  }
  b.send_line("resume");
  const fields ready(b.await_line("ready"));
  seqlock_retry_gate::release();
  attach.join();
  shmlog::detail::set_fault_hook(nullptr);
  ASSERT_TRUE(r) << attach_error;

  EXPECT_EQ(ready.text("plan"), "branch");
  EXPECT_EQ(ready["master"], shared);
  EXPECT_EQ(r->offset(), shared);
  EXPECT_EQ(r->replid().str(), ready.text("replid"));
  ask(b, "append 1", "appended");
  std::vector<std::byte> buffer;
  const shmlog::poll_result p = r->poll_copy(buffer);
  ASSERT_EQ(p.status, shmlog::poll_status::record);
  EXPECT_EQ(p.record.offset, shared);
}

// Issue 8, item 6: a replica's slot says where it reads from as soon as it attaches, but it
// holds nothing until its state is loaded. WAIT counts it only then.
TEST_F(resync_processes, WaitCountsAReplicaOnlyOnceItHoldsTheState) {
  create_log(65536);
  peer& p = producer();
  const std::uint64_t master = fields(ask(p, "append 2000 600", "appended"))["master"];
  peer& r = replica({"--pause-loads", "1", "--pause-at", "1"});
  r.await_line("paused");
  const std::string wait = "wait 1 " + std::to_string(master);
  EXPECT_EQ(fields(ask(p, wait + " 0", "waited"))["readers"], 0u);
  r.send_line("resume");
  r.await_line("event full_resync_done");
  EXPECT_EQ(fields(ask(p, wait + " 20000", "waited"))["readers"], 1u);
}

}  // namespace
