// support/subprocess: the child-process helper the demo, the bench harness and the tests share,
// tested with /bin/sh children that echo, sleep, exit with codes and die by signals.
#include "subprocess/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using shmlog::subprocess::child;
using shmlog::subprocess::clock;
using shmlog::subprocess::line_reader;
using shmlog::subprocess::spawn_error;
using shmlog::subprocess::spawn_options;
using shmlog::subprocess::stream_mode;

// A guard against a hung child, not a synchronisation: every wait below is for a line or an exit.
constexpr auto patience = 20s;

clock::time_point guard() {
  return clock::now() + patience;
}

spawn_options sh(const std::string& script) {
  return {.argv = {"/bin/sh", "-c", script}};
}

// The same options, made to take the fork() path (which PR_SET_PDEATHSIG needs).
spawn_options forked(spawn_options o) {
  o.parent_death_signal = SIGKILL;
  return o;
}

// The test writes to children that may have exited.
class subprocess : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
};

TEST_F(subprocess, LinesWrittenToStdinComeBackOnStdout) {
  for (const bool fork_path : {false, true}) {
    SCOPED_TRACE(fork_path ? "fork" : "posix_spawn");
    spawn_options o = sh("while read x; do echo \"got $x\"; done");
    child c(fork_path ? forked(o) : o);
    ASSERT_TRUE(c.write_stdin("one\ntwo\n"));
    EXPECT_EQ(c.read_line(guard()), "got one");
    EXPECT_EQ(c.read_line(guard()), "got two");
    c.close_stdin();
    const auto status = c.wait(guard());
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
    EXPECT_EQ(c.read_line(guard()), std::nullopt);
    EXPECT_TRUE(c.out().at_eof());
    EXPECT_EQ(c.out().transcript(), "got one\ngot two\n");
  }
}

TEST_F(subprocess, ExitCodeIsTheWaitStatus) {
  child c(sh("exit 3"));
  const auto status = c.wait(guard());
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 3);
  EXPECT_TRUE(c.reaped());
  EXPECT_EQ(c.status(), *status);
  EXPECT_EQ(shmlog::subprocess::describe_status(*status), "exited with status 3");
  EXPECT_FALSE(c.signal(SIGTERM)) << "a reaped child's pid may be someone else's";
}

TEST_F(subprocess, DeathBySignalIsReportedWithTheSignal) {
  child c(sh("kill -TERM $$"));
  const auto status = c.wait(guard());
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGTERM);
  EXPECT_EQ(shmlog::subprocess::describe_status(*status),
            std::string("killed by ") + ::strsignal(SIGTERM));
}

TEST_F(subprocess, ReadLineReturnsAtTheDeadlineWhenTheChildIsSilent) {
  child c(sh("echo first; exec sleep 1000"));
  EXPECT_EQ(c.read_line(guard()), "first");
  const auto start = clock::now();
  EXPECT_EQ(c.read_line(start + 100ms), std::nullopt);
  EXPECT_GE(clock::now() - start, 100ms);
  EXPECT_FALSE(c.out().at_eof()) << "a timeout, not an end of file";
}

TEST_F(subprocess, WaitReturnsAtTheDeadlineAndTheDestructorKillsAndReaps) {
  pid_t pid = -1;
  {
    child c(sh("exec sleep 1000"));
    pid = c.pid();
    const auto start = clock::now();
    EXPECT_EQ(c.wait(start + 100ms), std::nullopt);
    EXPECT_GE(clock::now() - start, 100ms);
    EXPECT_FALSE(c.reaped());
  }
  // Reaped: no such child any more (a zombie would still be waitable).
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(subprocess, KillAndReapRecordsTheKill) {
  child c(sh("exec sleep 1000"));
  c.kill_and_reap();
  ASSERT_TRUE(c.reaped());
  EXPECT_TRUE(WIFSIGNALED(c.status()) && WTERMSIG(c.status()) == SIGKILL);
}

// 200 KB is more than a pipe holds: a wait that did not read would never see the exit.
TEST_F(subprocess, WaitReadsThePipesSoAChattyChildCanExit) {
  spawn_options o = sh("head -c 200000 /dev/zero | tr '\\0' x; echo; head -c 100000 /dev/zero >&2");
  o.stderr_mode = stream_mode::pipe;
  child c(o);
  const auto status = c.wait(guard());
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_EQ(c.out().transcript(), std::string(200000, 'x') + "\n");
  EXPECT_EQ(c.err().transcript().size(), 100000u);
}

// The exit of the child is not the end of its output: what it forked may still hold the pipe.
TEST_F(subprocess, ReadToEofWaitsForWhatTheChildForkedToLetGoOfItsStdout) {
  child c(sh("sleep 1000 & echo $!"));
  const auto line = c.read_line(guard());
  ASSERT_TRUE(line);
  const pid_t grandchild = std::stoi(*line);
  ASSERT_TRUE(c.wait(guard()));
  EXPECT_FALSE(c.read_to_eof(clock::now() + 100ms));
  ASSERT_EQ(::kill(grandchild, SIGKILL), 0);
  EXPECT_TRUE(c.read_to_eof(guard()));
  EXPECT_TRUE(c.out().at_eof());
}

TEST_F(subprocess, CommunicateFeedsMoreThanAPipeHoldsWhileReadingTheOutput) {
  std::string input;
  for (int i = 0; i < 30000; ++i)
    input += "line " + std::to_string(i) + "\n";
  ASSERT_GT(input.size(), 300000u);
  spawn_options o = sh("cat; echo done >&2");
  o.stderr_mode = stream_mode::pipe;
  child c(o);
  const auto status = c.communicate(input, guard());
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_EQ(c.out().transcript(), input);
  EXPECT_EQ(c.err().transcript(), "done\n");
  EXPECT_FALSE(c.has_stdin());
}

TEST_F(subprocess, CommunicateEndsWhenTheChildDoesNotReadItsStdin) {
  child c(sh("exit 0"));
  const auto status = c.communicate(std::string(1 << 20, 'x'), guard());
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

// O_CLOEXEC: a child started later must not hold the first child's stdin, or the first would
// never see end of file.
TEST_F(subprocess, ASecondChildDoesNotHoldTheFirstChildsStdin) {
  for (const bool fork_path : {false, true}) {
    SCOPED_TRACE(fork_path ? "fork" : "posix_spawn");
    child first(sh("cat >/dev/null; echo eof"));
    spawn_options o = sh("exec sleep 1000");
    child second(fork_path ? forked(o) : o);
    first.close_stdin();
    EXPECT_EQ(first.read_line(guard()), "eof");
    const auto status = first.wait(guard());
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFEXITED(*status));
  }
}

TEST_F(subprocess, KeptDescriptorsStayOpenAndNoOthersLeak) {
  for (const bool fork_path : {false, true}) {
    SCOPED_TRACE(fork_path ? "fork" : "posix_spawn");
    int kept[2];
    int other[2];
    ASSERT_EQ(::pipe2(kept, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(other, O_CLOEXEC), 0);
    spawn_options o = sh("echo kept >&" + std::to_string(kept[1]) + "; if [ -e /proc/$$/fd/" +
                         std::to_string(other[1]) + " ]; then echo leaked; else echo closed; fi");
    o.keep_fds = {kept[1]};
    {
      child c(fork_path ? forked(o) : o);
      EXPECT_EQ(c.read_line(guard()), "closed");
      ASSERT_TRUE(c.wait(guard()));
    }
    ::close(kept[1]);
    ::close(other[1]);
    line_reader from_kept(kept[0]);
    EXPECT_EQ(from_kept.read_line(guard()), "kept");
    ::close(other[0]);
  }
}

TEST_F(subprocess, ParentDeathSignalKillsTheChildWhenItsParentDies) {
  // The test becomes the reaper of orphans, so the grandchild's end is seen by waitpid.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int report[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  const pid_t middle = ::fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    // The parent that dies: starts a child that must die with it, says its pid, exits.
    try {
      spawn_options o = sh("exec sleep 1000");
      o.parent_death_signal = SIGKILL;
      child c(o);
      const pid_t pid = c.pid();
      [[maybe_unused]] const ssize_t n = ::write(report[1], &pid, sizeof pid);
      ::_exit(0);  // before the destructor: the child is left to the death signal
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(report[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(::read(report[0], &grandchild, sizeof grandchild),
            static_cast<ssize_t>(sizeof grandchild));
  ::close(report[0]);
  ASSERT_EQ(::waitpid(middle, nullptr, 0), middle);
  int status = 0;
  ASSERT_EQ(::waitpid(grandchild, &status, 0), grandchild);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(subprocess, AHeldChildRunsTheProgramOnlyAfterRelease) {
  spawn_options o = sh("echo started");
  o.hold_until_release = true;
  child c(o);
  EXPECT_GT(c.pid(), 0);
  EXPECT_EQ(c.read_line(clock::now() + 200ms), std::nullopt);
  EXPECT_FALSE(c.out().at_eof());
  c.release();
  EXPECT_EQ(c.read_line(guard()), "started");
}

TEST_F(subprocess, AHeldChildThatIsNeverReleasedIsKilledAndReaped) {
  pid_t pid = -1;
  {
    spawn_options o = sh("echo started");
    o.hold_until_release = true;
    child c(o);
    pid = c.pid();
  }
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(subprocess, RunAsSwitchesUserBeforeExec) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  spawn_options o = sh("id -u; id -g; id -G");
  o.run_as = 65534;
  child c(o);
  EXPECT_EQ(c.read_line(guard()), "65534");
  EXPECT_EQ(c.read_line(guard()), "65534");
  EXPECT_EQ(c.read_line(guard()), "65534");
}

// The SigIgn mask from /proc/PID/status has bit (signal - 1) set for an ignored signal.
bool ignores_sigpipe(const spawn_options& o) {
  child c(o);
  const auto line = c.read_line(guard());
  if (!line) throw std::runtime_error("no SigIgn line");
  const std::uint64_t mask =
      std::stoull(line->substr(line->find_first_not_of("SigIgn:\t ")), nullptr, 16);
  return (mask >> (SIGPIPE - 1)) & 1;
}

TEST_F(subprocess, DefaultSignalsAreResetAndOthersKeepTheParentsDisposition) {
  for (const bool fork_path : {false, true}) {
    SCOPED_TRACE(fork_path ? "fork" : "posix_spawn");
    spawn_options o = sh("exec grep SigIgn /proc/self/status");
    if (fork_path) o = forked(o);
    EXPECT_TRUE(ignores_sigpipe(o));  // the fixture ignores it
    o.default_signals = {SIGPIPE};
    EXPECT_FALSE(ignores_sigpipe(o));
  }
}

TEST_F(subprocess, EnvironmentEntriesOverrideAndAdd) {
  ::setenv("SHMLOG_SUBPROCESS_OLD", "parent", 1);
  spawn_options o = sh("echo \"$SHMLOG_SUBPROCESS_OLD $SHMLOG_SUBPROCESS_NEW\"");
  o.env = {"SHMLOG_SUBPROCESS_OLD=child", "SHMLOG_SUBPROCESS_NEW=added"};
  child c(o);
  EXPECT_EQ(c.read_line(guard()), "child added");
  ::unsetenv("SHMLOG_SUBPROCESS_OLD");
}

TEST_F(subprocess, AProgramThatCannotRunIsASpawnErrorNamingIt) {
  for (const bool fork_path : {false, true}) {
    SCOPED_TRACE(fork_path ? "fork" : "posix_spawn");
    spawn_options o{.argv = {"/nonexistent/shmlog-program"}};
    if (fork_path) o = forked(o);
    try {
      child c(o);
      ADD_FAILURE() << "started";
    } catch (const spawn_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("/nonexistent/shmlog-program"), std::string::npos) << what;
      EXPECT_NE(what.find(std::strerror(ENOENT)), std::string::npos) << what;
    }
  }
}

TEST_F(subprocess, StdoutAndStderrAreSeparatePipesAndNullIsEmpty) {
  spawn_options o = sh("read x; echo \"out $x\"; echo err >&2");
  o.stdin_mode = stream_mode::null;
  o.stderr_mode = stream_mode::pipe;
  child c(o);
  EXPECT_FALSE(c.has_stdin());
  EXPECT_EQ(c.read_line(guard(), true), "err");
  EXPECT_EQ(c.read_line(guard()), "out ");
}

TEST_F(subprocess, ReadAnyFollowsSeveralChildren) {
  child a(sh("echo a"));
  child b(sh("echo b"));
  line_reader* readers[] = {&a.out(), &b.out()};
  const auto give_up = guard();
  while (!(a.out().has_line() && b.out().has_line()) && clock::now() < give_up)
    line_reader::read_any(readers, 100ms);
  EXPECT_EQ(a.out().take_line(), "a");
  EXPECT_EQ(b.out().take_line(), "b");
}

TEST_F(subprocess, APartialLastLineIsLeftUnread) {
  child c(sh("printf 'whole\\npartial'"));
  EXPECT_EQ(c.read_line(guard()), "whole");
  EXPECT_EQ(c.read_line(guard()), std::nullopt);
  EXPECT_TRUE(c.out().at_eof());
  EXPECT_EQ(c.out().unread(), "partial");
  EXPECT_EQ(c.out().transcript(), "whole\npartial");
}

TEST_F(subprocess, ABorrowedDescriptorIsNeverClosed) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(::write(fds[1], "x\n", 2), 2);
  ::close(fds[1]);
  {
    line_reader r(fds[0], line_reader::ownership::borrowed);
    EXPECT_EQ(r.read_line(guard()), "x");
    EXPECT_EQ(r.read_line(guard()), std::nullopt);
    EXPECT_TRUE(r.at_eof());
  }
  EXPECT_EQ(::fcntl(fds[0], F_GETFD), FD_CLOEXEC) << "still open";
  ::close(fds[0]);
}

TEST_F(subprocess, StopReturnsOnceTheChildIsStopped) {
  child c(sh("exec sleep 1000"));
  ASSERT_TRUE(c.stop());
  EXPECT_FALSE(c.reaped());
  ASSERT_TRUE(c.signal(SIGCONT));
  ASSERT_TRUE(c.signal(SIGTERM));
  const auto status = c.wait(guard());
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGTERM);
}

// A child that leads its own group is killed with everything it started (the demo's producer
// forks snapshot children).
TEST_F(subprocess, TheDestructorKillsTheGroupOfAGroupLeader) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t grandchild = -1;
  for (const bool fork_path : {false, true}) {
    SCOPED_TRACE(fork_path ? "fork" : "posix_spawn");
    {
      spawn_options o = sh("sleep 1000 & echo $!; wait");
      o.own_process_group = true;
      if (fork_path) o = forked(o);
      child c(o);
      EXPECT_EQ(::getpgid(c.pid()), c.pid());
      const auto line = c.read_line(guard());
      ASSERT_TRUE(line);
      grandchild = std::stoi(*line);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(grandchild, &status, 0), grandchild);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(subprocess, AMovedChildIsOwnedOnce) {
  std::vector<child> children;
  children.emplace_back(sh("echo one"));
  children.emplace_back(sh("echo two"));  // moves the first
  EXPECT_EQ(children[0].read_line(guard()), "one");
  EXPECT_EQ(children[1].read_line(guard()), "two");
  child moved = std::move(children[0]);
  EXPECT_EQ(children[0].pid(), -1);
  EXPECT_TRUE(moved.wait(guard()));
}

}  // namespace
