// Multi-process tests: real writer and reader processes (tests/peer/test_peer.cc, started with
// posix_spawn), real SIGKILL and SIGSTOP. Peers hand over through lines on pipes; the test never
// sleeps to let something happen, it waits for a line or polls inspect() for a condition, always
// under a deadline that turns a hang into a failure.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "process_peer.h"
#include "raw_segment.h"
#include "shmlog/shmlog.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using shmlog::test::await_info;
using shmlog::test::fields;
using shmlog::test::find_reader;
using shmlog::test::peer;
using shmlog::test::scoped_log;
using shmlog::test::unique_log_name;

// Peers that sleep do so until the writer wakes them (their heartbeat interval is infinite), so a
// lost wake-up is a hang, which the peer's deadlines turn into a failure; no test judges latency.

// Polls inspect() until every one of `readers` is asleep in wait().
void await_sleeping(const std::string& name, const std::vector<peer*>& readers) {
  await_info(
      name,
      [&](const shmlog::log_info& info) {
        for (const peer* r : readers) {
          const shmlog::reader_info* s = find_reader(info, static_cast<std::uint64_t>(r->pid()));
          if (s == nullptr || s->state != shmlog::reader_state::sleeping) return false;
        }
        return true;
      },
      "the readers sleep");
}

class processes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Writing to a peer that died must fail the test, not kill it.
    ::signal(SIGPIPE, SIG_IGN);
  }

  void create_log(std::uint64_t capacity, std::uint32_t reader_slots = 8,
                  shmlog::fence_mode fence = shmlog::fence_mode::seq_cst) {
    shmlog::create(log_,
                   {.capacity = capacity, .reader_slots = reader_slots, .writer_fence = fence});
  }

  // Starts `role` on this test's log; the peer is killed at the latest when the test ends.
  peer& start(const std::string& role, std::vector<std::string> options = {}) {
    options.insert(options.begin(), {role, log_.name()});
    peers_.push_back(std::make_unique<peer>(std::move(options)));
    return *peers_.back();
  }

  // A reader that starts at the oldest record and expects seq 0 first; attached on return.
  peer& start_reader(const std::string& on_lap, std::vector<std::string> options) {
    options.insert(options.begin(), {"--from", "oldest", "--first-seq", "0", "--on-lap", on_lap});
    peer& p = start("reader", std::move(options));
    p.await_line("ready");
    return p;
  }

  void TearDown() override { peers_.clear(); }

  scoped_log log_{unique_log_name("proc")};
  std::vector<std::unique_ptr<peer>> peers_;
};

// reader_options::wait_for_creation across processes: a reader process started before the log
// exists attaches once this process creates it, and reads what another process writes.
TEST_F(processes, ReaderWaitingForTheLogAttachesWhenAnotherProcessCreatesIt) {
  peer& r = start("reader", {"--from", "oldest", "--first-seq", "0", "--wait-for-log-ms", "30000",
                             "--deadline-ms", "30000"});
  r.await_line("waiting");
  ASSERT_FALSE(shmlog::exists(log_.name()));
  create_log(64 * 1024);
  r.await_line("ready");
  peer& w = start("writer", {"--records", "500", "--end-marker", "--max-lag", "32768"});
  const fields written(w.await_line("result"));
  w.expect_success();
  const fields got(r.await_line("result"));
  r.expect_success();
  EXPECT_EQ(got["first_seq"], 0u);
  EXPECT_EQ(got["records"], written["records"]);
  EXPECT_EQ(got["last_seq"], written["last_seq"]);
  EXPECT_EQ(got["bad"], 0u);
  EXPECT_EQ(got["gaps"], 0u);
}

TEST_F(processes, ReaderWaitingForALogNobodyCreatesFailsAtItsDeadline) {
  peer& r = start("reader", {"--wait-for-log-ms", "200"});
  r.await_line("waiting");
  const std::string line = r.await_line("error");
  EXPECT_NE(line.find("code=not_found"), std::string::npos) << line;
  EXPECT_NE(line.find(log_.name()), std::string::npos) << line;
  EXPECT_NE(line.find("wait_for_creation 200 ms"), std::string::npos) << line;
  const int status = r.wait_exit();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << peer::describe(status);
}

// ---------------------------------------------------------------------------------------------

TEST_F(processes, OneWriterThreeReadersWithLaps) {
  constexpr std::uint64_t capacity = 8192;
  constexpr std::uint64_t records = 30000;  // ~8 MB: a thousand laps of the ring
  create_log(capacity);
  peer& spinner = start_reader("resume", {"--wait", "spin", "--view"});
  peer& yielder = start_reader("resume", {"--wait", "yield"});
  peer& slow = start_reader("resume", {"--wait", "sleep", "--slow", "8"});

  // The slow reader stands still until the writer is two laps past it: it must be lapped.
  slow.stop();
  peer& w = start("writer",
                  {"--records", std::to_string(records), "--max-payload", "512", "--end-marker"});
  w.await_line("ready");
  await_info(
      log_,
      [&](const shmlog::log_info& info) {
        const shmlog::reader_info* r = find_reader(info, static_cast<std::uint64_t>(slow.pid()));
        return r != nullptr && info.window.master_offset > r->offset + 2 * capacity;
      },
      "the writer is two laps past the stopped reader");
  slow.signal(SIGCONT);

  const fields written(w.await_line("result"));
  w.expect_success();
  EXPECT_EQ(written["records"], records + 1);
  EXPECT_EQ(written["last_seq"], records);

  std::uint64_t laps_seen = 0;
  std::uint64_t slow_laps = 0;
  for (peer* r : {&spinner, &yielder, &slow}) {
    SCOPED_TRACE("reader pid " + std::to_string(r->pid()));
    const fields got(r->await_line("result"));
    r->expect_success();
    EXPECT_EQ(got["bad"], 0u);
    // Every sequence number was either delivered in order or skipped in a gap after a lap.
    EXPECT_EQ(got["records"] + got["skipped"], written["records"]);
    EXPECT_EQ(got["last_seq"], written["last_seq"]);
    EXPECT_EQ(got["laps"], got["lapped_count"]);
    EXPECT_LE(got["gaps"], got["laps"] + got["overruns"]);  // no jump without a cause
    laps_seen += got["laps"];
    if (r == &slow) slow_laps = got["laps"];
  }
  EXPECT_GE(slow_laps, 1u);
  EXPECT_EQ(shmlog::inspect(log_).lapped_total, laps_seen);
}

TEST_F(processes, WriterKilledMidStreamNewWriterContinues) {
  constexpr std::uint64_t capacity = 65536;
  const std::string max_lag = std::to_string(capacity / 2);  // no reader can be lapped
  create_log(capacity);
  std::vector<peer*> readers;
  for (const char* mode : {"yield", "sleep"})
    readers.push_back(&start_reader("fail", {"--wait", mode, "--report-at", "2000"}));

  peer& first = start("writer", {"--forever", "--max-lag", max_lag});
  first.await_line("ready");
  for (peer* r : readers)
    r->await_line("progress");
  first.signal(SIGKILL);  // it writes until killed, so this lands mid-stream
  const int status = first.wait_exit();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << peer::describe(status);
  const shmlog::log_info crashed = shmlog::inspect(log_);
  EXPECT_FALSE(crashed.writer_alive);
  EXPECT_EQ(crashed.writer_pid, static_cast<std::uint32_t>(first.pid()));
  EXPECT_EQ(crashed.writer_generation, 1u);

  // The kernel dropped the dead writer's lock, so a new writer gets the role at once.
  peer& second = start("writer", {"--continue", "--records", "3000", "--end-marker", "--max-lag",
                                  max_lag, "--hold"});
  const fields ready(second.await_line("ready"));
  EXPECT_EQ(ready["crashed"], 1u);
  EXPECT_EQ(ready["previous_pid"], static_cast<std::uint64_t>(first.pid()));
  EXPECT_EQ(ready["master"], crashed.window.master_offset);
  EXPECT_GT(ready["next_seq"], 2000u);  // the readers saw 2000 before the kill
  const fields written(second.await_line("result"));
  EXPECT_EQ(written["first_seq"], ready["next_seq"]);

  const shmlog::log_info taken = shmlog::inspect(log_);
  EXPECT_TRUE(taken.writer_alive);
  EXPECT_EQ(taken.writer_pid, static_cast<std::uint32_t>(second.pid()));
  EXPECT_EQ(taken.writer_generation, 2u);
  EXPECT_EQ(taken.recovered_torn_bytes, ready["unpublished"]);
  second.close_stdin();
  second.expect_success();

  // The same reader processes read on across the crash: seq 0 to the end marker, no gap.
  for (peer* r : readers) {
    SCOPED_TRACE("reader pid " + std::to_string(r->pid()));
    const fields got(r->await_line("result"));
    r->expect_success();
    EXPECT_EQ(got["bad"], 0u);
    EXPECT_EQ(got["laps"], 0u);
    EXPECT_EQ(got["gaps"], 0u);
    EXPECT_EQ(got["first_seq"], 0u);
    EXPECT_EQ(got["last_seq"], written["last_seq"]);
    EXPECT_EQ(got["records"], written["last_seq"] + 1);
  }
}

// A writer process that stored the header of its last record and was killed (kill -9) before it
// stored the master offset after it: the header published the record (docs/design.md, "The
// one-transfer read"), a reader took it, and the next writer keeps it and continues after it, so
// the reader reads on without a gap, a repeat or a history change. The master offset is set back
// by hand to where such a writer leaves it; the kill is real.
TEST_F(processes, WriterKilledBetweenAHeaderAndTheMasterOffsetKeepsTheRecordForItsReaders) {
  create_log(65536);
  shmlog::reader r =
      shmlog::reader::attach(log_.name(), {.start = shmlog::start_position::oldest()});
  peer& first = start("writer", {"--records", "20", "--hold"});
  const fields written(first.await_line("result"));
  const std::uint64_t end = written["master"];
  std::vector<std::byte> buffer;
  std::uint64_t last_start = 0;
  int records = 0;
  for (shmlog::poll_result p = r.poll_copy(buffer); p.status == shmlog::poll_status::record;
       p = r.poll_copy(buffer)) {
    last_start = p.record.offset;
    ++records;
    if (records == 19) {
      shmlog::test::raw_segment(log_.name())
          .poke<std::uint64_t>(offsetof(shmlog::segment_header, master_offset),
                               p.record.next_offset);
    }
  }
  ASSERT_EQ(records, 20);  // the 20th published by its header alone
  ASSERT_EQ(r.offset(), end);
  ASSERT_EQ(r.master_offset(), last_start);
  first.signal(SIGKILL);
  const int status = first.wait_exit();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << peer::describe(status);

  shmlog::writer next = shmlog::writer::open(log_.name());
  EXPECT_TRUE(next.takeover().previous_crashed);
  EXPECT_EQ(next.takeover().published_by_header, end - last_start);
  EXPECT_EQ(next.takeover().plan.action, shmlog::history_action::keep);
  EXPECT_EQ(next.master_offset(), end);
  next.append("after the crash");
  const shmlog::poll_result p = r.poll_copy(buffer);
  ASSERT_EQ(p.status, shmlog::poll_status::record);
  EXPECT_EQ(p.record.offset, end);
  EXPECT_EQ(p.record.text(), "after the crash");
}

// Writers in each write mode are killed mid-stream one after another; each next writer continues
// the sequence after the last published record, and the same readers see one unbroken sequence.
TEST_F(processes, WritersKilledInEveryModeReadersSeeOneSequence) {
  constexpr std::uint64_t capacity = 65536;
  const std::string max_lag = std::to_string(capacity / 2);  // no reader can be lapped
  create_log(capacity);
  std::vector<peer*> readers;
  for (const char* mode : {"yield", "adaptive"})
    readers.push_back(&start_reader("fail", {"--wait", mode}));

  const std::vector<std::vector<std::string>> modes = {{}, {"--batch", "8"}, {"--claim"}};
  std::uint64_t next_seq = 0;
  for (const std::vector<std::string>& mode : modes) {
    std::vector<std::string> options = {"--continue", "--forever", "--max-lag", max_lag};
    options.insert(options.end(), mode.begin(), mode.end());
    peer& w = start("writer", options);
    const fields ready(w.await_line("ready"));
    EXPECT_EQ(ready["crashed"], next_seq == 0 ? 0u : 1u);
    EXPECT_GE(ready["next_seq"], next_seq);
    next_seq = ready["next_seq"] + 1000;
    // Both readers (which count from seq 0) took in 1000 records from this writer.
    await_info(
        log_,
        [&](const shmlog::log_info& info) {
          for (const peer* r : readers) {
            const shmlog::reader_info* s = find_reader(info, static_cast<std::uint64_t>(r->pid()));
            if (s == nullptr || s->records < next_seq) return false;
          }
          return true;
        },
        "the readers took in 1000 records");
    w.signal(SIGKILL);
    w.wait_exit();
  }
  peer& last =
      start("writer", {"--continue", "--records", "1000", "--end-marker", "--max-lag", max_lag});
  const fields written(last.await_line("result"));
  last.expect_success();
  EXPECT_EQ(shmlog::inspect(log_).writer_generation, modes.size() + 1);

  for (peer* r : readers) {
    SCOPED_TRACE("reader pid " + std::to_string(r->pid()));
    const fields got(r->await_line("result"));
    r->expect_success();
    EXPECT_EQ(got["gaps"], 0u);
    EXPECT_EQ(got["records"], written["last_seq"] + 1);
  }
}

TEST_F(processes, SecondWriterRefusedNamingPid) {
  create_log(4096);
  peer& holder = start("hold-writer");
  const std::uint64_t holder_pid = fields(holder.await_line("ready"))["pid"];
  ASSERT_EQ(holder_pid, static_cast<std::uint64_t>(holder.pid()));
  const std::string names_holder = "pid " + std::to_string(holder_pid);

  peer& refused = start("writer", {"--records", "1"});
  const std::string error = refused.await_line("error");
  EXPECT_NE(error.find("code=writer_exists"), std::string::npos) << error;
  EXPECT_NE(error.find(names_holder), std::string::npos) << error;
  EXPECT_EQ(WEXITSTATUS(refused.wait_exit()), 3);
  try {
    shmlog::writer::open(log_);
    ADD_FAILURE() << "a second writer opened the log in this process";
  } catch (const shmlog::error& e) {
    EXPECT_EQ(e.code(), shmlog::errc::writer_exists);
    EXPECT_NE(std::string(e.what()).find(names_holder), std::string::npos) << e.what();
  }

  holder.close_stdin();  // a clean exit gives the role back
  holder.expect_success();
  peer& next = start("writer", {"--records", "10"});
  const fields ready(next.await_line("ready"));
  EXPECT_EQ(ready["previous_pid"], holder_pid);
  EXPECT_EQ(ready["crashed"], 0u);
  next.expect_success();
}

TEST_F(processes, WriterRoleFreedWhenHolderKilled) {
  create_log(4096);
  peer& holder = start("hold-writer");
  holder.await_line("ready");
  EXPECT_TRUE(shmlog::inspect(log_).writer_alive);
  holder.signal(SIGKILL);
  holder.wait_exit();
  EXPECT_FALSE(shmlog::inspect(log_).writer_alive);

  peer& next = start("writer", {"--records", "10"});
  const fields ready(next.await_line("ready"));
  EXPECT_EQ(ready["previous_pid"], static_cast<std::uint64_t>(holder.pid()));
  EXPECT_EQ(ready["crashed"], 1u);
  next.expect_success();
}

TEST_F(processes, StaleReaderSlotReclaimed) {
  create_log(4096, 4);
  peer& dead = start("hold-reader");
  const std::uint64_t slot = fields(dead.await_line("ready"))["slot"];
  dead.signal(SIGKILL);
  dead.wait_exit();

  const shmlog::log_info stale = shmlog::inspect(log_);
  EXPECT_EQ(stale.stale_slots, 1u);
  EXPECT_EQ(find_reader(stale, static_cast<std::uint64_t>(dead.pid())), nullptr);

  peer& next = start("hold-reader");
  EXPECT_EQ(fields(next.await_line("ready"))["slot"], slot);
  const shmlog::log_info reclaimed = shmlog::inspect(log_);
  EXPECT_EQ(reclaimed.stale_slots, 0u);
  const shmlog::reader_info* live = find_reader(reclaimed, static_cast<std::uint64_t>(next.pid()));
  ASSERT_NE(live, nullptr);
  EXPECT_EQ(live->slot, slot);
  next.close_stdin();
  next.expect_success();
}

// A gating reader killed with kill -9 leaves its slot flagged and its offset behind; the writer
// recognises the slot as dead (its lock is gone) when it would wait for it, and goes on without
// waiting at all, let alone the bound (60 s here) per append. A live one in the same place would
// have made it wait (gating_test.cc).
TEST_F(processes, AKilledGatingReaderDoesNotBlockTheWriter) {
  constexpr std::uint64_t capacity = 64 * 1024;
  shmlog::create(log_, {.capacity = capacity, .max_gating_wait = shmlog::max_max_gating_wait});
  peer& dead = start("hold-reader", {"--gating"});
  dead.await_line("ready");
  EXPECT_EQ(shmlog::inspect(log_).gating_readers, 1u);
  dead.signal(SIGKILL);
  dead.wait_exit();

  shmlog::writer w = shmlog::writer::open(log_);
  const std::vector<std::byte> payload(100);
  const auto start_time = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < 4 * capacity / 112; ++i)
    w.append(payload);
  EXPECT_LT(std::chrono::steady_clock::now() - start_time, 30s);
  const shmlog::log_info info = shmlog::inspect(log_);
  EXPECT_EQ(info.gating_readers, 1u) << "the dead reader's flag stays until its slot is reused";
  EXPECT_EQ(info.stale_slots, 1u);
  EXPECT_EQ(info.gating_waits, 0u) << "the writer waited for a dead reader";
  EXPECT_EQ(info.gating_laps, 0u);

  // The next reader in that slot (a plain one) takes the flag's count with it.
  peer& next = start("hold-reader");
  next.await_line("ready");
  EXPECT_EQ(shmlog::inspect(log_).gating_readers, 0u);
}

// A gating reader that takes a dead gating reader's slot is counted once, and gates: the writer
// waits for it (and, with a short bound, laps it once).
TEST_F(processes, AGatingReaderInADeadGatingReadersSlotIsCountedOnceAndGates) {
  constexpr std::uint64_t capacity = 64 * 1024;
  shmlog::create(
      log_,
      {.capacity = capacity, .reader_slots = 1, .max_gating_wait = std::chrono::milliseconds(10)});
  peer& dead = start("hold-reader", {"--gating"});
  dead.await_line("ready");
  dead.signal(SIGKILL);
  dead.wait_exit();
  peer& next = start("hold-reader", {"--gating"});
  next.await_line("ready");
  EXPECT_EQ(shmlog::inspect(log_).gating_readers, 1u);

  shmlog::writer w = shmlog::writer::open(log_);
  const std::vector<std::byte> payload(100);
  for (std::uint64_t i = 0; i < 2 * capacity / 112; ++i)
    w.append(payload);
  const shmlog::log_info info = shmlog::inspect(log_);
  EXPECT_EQ(info.gating_waits, 1u);
  EXPECT_EQ(info.gating_laps, 1u);
  next.close_stdin();
  next.expect_success();
  EXPECT_EQ(shmlog::inspect(log_).gating_readers, 0u);
}

// Issue 8, item 9: a role belongs to the process that took it. A plain fork() (no exec) copies
// the role's descriptor into the child; the library drops the child's copy, so a holder killed
// while its child lives gives the role back at once.
TEST_F(processes, ReaderKilledWhileItsForkedChildLivesGivesItsSlotBack) {
  create_log(4096, 4);
  peer& dead = start("hold-reader", {"--fork-child"});
  const std::uint64_t slot = fields(dead.await_line("ready"))["slot"];
  const auto child = static_cast<pid_t>(fields(dead.await_line("forked"))["child"]);
  dead.signal(SIGKILL);
  dead.wait_exit();
  ASSERT_EQ(::kill(child, 0), 0) << "the child must still be alive for this test";

  const shmlog::log_info stale = shmlog::inspect(log_);
  EXPECT_EQ(stale.stale_slots, 1u);
  EXPECT_EQ(find_reader(stale, static_cast<std::uint64_t>(dead.pid())), nullptr);
  peer& next = start("hold-reader");
  EXPECT_EQ(fields(next.await_line("ready"))["slot"], slot);
  dead.close_stdin();  // the child's stdin: it exits
  next.close_stdin();
  next.expect_success();
}

TEST_F(processes, WriterKilledWhileItsForkedChildLivesGivesTheRoleBack) {
  create_log(4096);
  peer& holder = start("hold-writer", {"--fork-child"});
  const fields ready(holder.await_line("ready"));
  const auto child = static_cast<pid_t>(ready["child"]);
  holder.signal(SIGKILL);
  holder.wait_exit();
  ASSERT_EQ(::kill(child, 0), 0) << "the child must still be alive for this test";
  EXPECT_FALSE(shmlog::inspect(log_).writer_alive);

  peer& next = start("writer", {"--records", "10"});
  const fields took(next.await_line("ready"));
  EXPECT_EQ(took["previous_pid"], static_cast<std::uint64_t>(holder.pid()));
  EXPECT_EQ(took["crashed"], 1u);
  next.expect_success();
  holder.close_stdin();
}

TEST_F(processes, ReaderSlotsExhausted) {
  create_log(4096, 2);
  peer& first = start("hold-reader");
  const std::uint64_t freed = fields(first.await_line("ready"))["slot"];
  peer& second = start("hold-reader");
  second.await_line("ready");

  peer& third = start("hold-reader");
  EXPECT_NE(third.await_line("error").find("code=no_free_reader_slot"), std::string::npos);
  EXPECT_EQ(WEXITSTATUS(third.wait_exit()), 3);
  try {
    shmlog::reader::attach(log_);
    ADD_FAILURE() << "a third reader attached to a log with two slots";
  } catch (const shmlog::error& e) {
    EXPECT_EQ(e.code(), shmlog::errc::no_free_reader_slot) << e.what();
  }

  first.signal(SIGKILL);
  first.wait_exit();
  peer& fourth = start("hold-reader");
  EXPECT_EQ(fields(fourth.await_line("ready"))["slot"], freed);
  fourth.close_stdin();
  fourth.expect_success();
}

// Each round both readers announce "waiting" and a writer process appends one record. In even
// rounds the record comes only once inspect() shows both asleep; in odd rounds it comes at once,
// while a reader may still be spinning, yielding or on its way into sleep.
TEST_F(processes, SleepingReaderWokenByWriterProcess) {
  constexpr int rounds = 40;
  create_log(4096);
  peer& w = start("hold-writer");
  w.await_line("ready");
  std::vector<peer*> readers;
  for (const char* mode : {"sleep", "adaptive"}) {
    readers.push_back(&start("waiter", {"--wait", mode, "--rounds", std::to_string(rounds)}));
    readers.back()->await_line("ready");
  }

  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    for (peer* r : readers)
      r->await_line("waiting");
    if (round % 2 == 0) {
      await_sleeping(log_, readers);
    }
    w.send_line("append 1");
    for (peer* r : readers)
      EXPECT_EQ(fields(r->await_line("got"))["seq"], static_cast<std::uint64_t>(round));
    w.await_line("appended");
  }
  for (peer* r : readers) {
    EXPECT_EQ(fields(r->await_line("timeout"))["woke"], 0u);
    r->expect_success();
  }
}

// A reader that went to sleep under a writer that then died is woken by the next writer's
// first record: a new writer cannot know who sleeps, so it wakes them once regardless.
TEST_F(processes, ReaderAsleepAcrossWriterCrashWokenByNextWriter) {
  create_log(4096);
  peer& dead = start("hold-writer");
  dead.await_line("ready");
  peer& r = start("waiter", {"--wait", "sleep", "--rounds", "1"});
  r.await_line("waiting");
  await_sleeping(log_, {&r});
  dead.signal(SIGKILL);
  dead.wait_exit();

  peer& next = start("hold-writer");
  next.await_line("ready");
  next.send_line("append 1");
  EXPECT_EQ(fields(r.await_line("got"))["seq"], 0u);
}

// The writer appends one record at a time, each once both sleeping readers have consumed the
// one before and after a seeded random pause of up to 30 us, so that records land at every point
// of a reader's way into sleep, 5000 times over. (Against a reader that checks for data before
// announcing its sleep, about every other run of this test caught the lost wake-up.)
// Both ways of ordering the writer's publish against its check for sleepers (docs/design.md,
// "No lost wake-up"): a fence on every publish, or a membarrier() by each reader going to sleep.
class processes_by_fence : public processes,
                           public ::testing::WithParamInterface<shmlog::fence_mode> {};

TEST_P(processes_by_fence, SleepingReadersNeverMissAWakeUp) {
  create_log(65536, 8, GetParam());
  std::vector<peer*> readers;
  for (int i = 0; i < 2; ++i)
    readers.push_back(&start_reader("fail", {"--wait", "sleep", "--wait-timeout-ms", "60000"}));
  peer& w =
      start("writer", {"--records", "5000", "--end-marker", "--ping-pong", "--jitter-us", "30"});
  const fields written(w.await_line("result"));
  w.expect_success();
  for (peer* r : readers) {
    const fields got(r->await_line("result"));
    r->expect_success();
    EXPECT_EQ(got["records"], written["records"]);
  }
}

INSTANTIATE_TEST_SUITE_P(Fences, processes_by_fence,
                         ::testing::Values(shmlog::fence_mode::seq_cst,
                                           shmlog::fence_mode::membarrier),
                         [](const auto& param_info) {
                           return param_info.param == shmlog::fence_mode::seq_cst ? "seq_cst"
                                                                                  : "membarrier";
                         });

TEST_F(processes, TimedWaitReturnsFalseWithoutWriterActivity) {
  create_log(4096);
  peer& w = start("hold-writer");  // a live writer that appends nothing
  w.await_line("ready");
  std::vector<peer*> readers;
  for (const char* mode : {"sleep", "adaptive"})
    readers.push_back(&start("waiter", {"--wait", mode, "--timeout-ms", "1500"}));
  for (peer* r : readers)
    r->await_line("waiting-timeout");
  // They really went to sleep, and come back on their own with false.
  await_sleeping(log_, readers);
  for (peer* r : readers) {
    EXPECT_EQ(fields(r->await_line("timeout"))["woke"], 0u);
    r->expect_success();
  }
}

// Readers see every record intact when the writer publishes batches or fills claimed records in
// place; --max-lag keeps the writer within reach of both, so every record must arrive.
class processes_by_write_mode : public processes,
                                public ::testing::WithParamInterface<const char*> {};

TEST_P(processes_by_write_mode, EveryRecordArrivesIntact) {
  constexpr std::uint64_t capacity = 16384;
  create_log(capacity);
  std::vector<peer*> readers;
  for (const char* mode : {"yield", "adaptive"})
    readers.push_back(&start_reader("fail", {"--wait", mode}));
  std::vector<std::string> options = {"--records", "20000", "--end-marker", "--max-lag",
                                      std::to_string(capacity / 2)};
  if (std::string(GetParam()) == "batch") {
    options.insert(options.end(), {"--batch", "8"});
  } else {
    options.push_back("--claim");
  }
  peer& w = start("writer", options);
  const fields written(w.await_line("result"));
  w.expect_success();
  for (peer* r : readers) {
    SCOPED_TRACE("reader pid " + std::to_string(r->pid()));
    const fields got(r->await_line("result"));
    r->expect_success();
    EXPECT_EQ(got["bad"], 0u);
    EXPECT_EQ(got["gaps"], 0u);
    EXPECT_EQ(got["records"], written["records"]);
    EXPECT_EQ(got["last_seq"], written["last_seq"]);
  }
}

INSTANTIATE_TEST_SUITE_P(BatchAndClaim, processes_by_write_mode,
                         ::testing::Values("batch", "claim"),
                         [](const auto& param_info) { return std::string(param_info.param); });

}  // namespace
