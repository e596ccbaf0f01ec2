// The key-value example programs (examples/kv/producer.cc and replica.cc) run as a user would
// run them: separate processes talking in lines on their stdin and stdout. A replica answers
// GET from its own copy of the state; one that was stopped (SIGSTOP) while the producer went
// round the ring more than once is lapped when it resumes, reloads from a snapshot and answers
// from the current state.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "process_peer.h"
#include "shmlog/shmlog.h"
#include "test_util.h"

namespace {

using shmlog::test::peer;

class kv_example : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  // The example creates a 1 MiB log if there is none; a test may create a smaller one first.
  void start_producer() {
    producer_ = std::make_unique<peer>(SHMLOG_KV_PRODUCER,
                                       std::vector<std::string>{log_.name(), dir_.path().string()});
  }
  peer start_replica() { return peer(SHMLOG_KV_REPLICA, {log_.name(), dir_.path().string()}); }

  // Sends commands in batches, reading the producer's answers as it goes, so that neither
  // side's pipe fills up; each must be accepted.
  void produce(const std::vector<std::string>& commands) {
    constexpr std::size_t batch = 256;
    for (std::size_t i = 0; i < commands.size(); i += batch) {
      const std::size_t end = std::min(commands.size(), i + batch);
      for (std::size_t j = i; j < end; ++j)
        producer_->send_line(commands[j]);
      for (std::size_t j = i; j < end; ++j)
        producer_->await_line("+OK");
    }
  }

  std::string get(peer& replica, const std::string& key) {
    replica.send_line("GET " + key);
    return replica.next_line();
  }

  shmlog::test::scoped_log log_{shmlog::test::unique_log_name("kv-example")};
  shmlog::test::scratch_dir dir_;
  std::unique_ptr<peer> producer_;
};

TEST_F(kv_example, ReplicaAnswersGetFromTheStateItReplicated) {
  start_producer();
  produce({"SET user:1 ada", "INCR hits", "INCR hits", "SET user:2 grace", "DEL user:2"});
  producer_->send_line("INCR user:1");  // not a number: refused, nothing appended
  EXPECT_EQ(producer_->await_line("-ERR").rfind("-ERR ", 0), 0u);

  peer replica = start_replica();
  EXPECT_EQ(get(replica, "user:1"), "ada");
  EXPECT_EQ(get(replica, "hits"), "2");
  EXPECT_EQ(get(replica, "user:2"), "(nil)");
  produce({"INCR hits"});
  EXPECT_EQ(get(replica, "hits"), "3");
  EXPECT_EQ(shmlog::inspect(log_).sync_full, 1u);  // its first state came from a snapshot
}

TEST_F(kv_example, ReplicaStoppedWhileTheProducerLapsItReloadsAndAnswersCurrentValues) {
  shmlog::create(log_, {.capacity = 64 * 1024});  // the example's own is 1 MiB: this laps sooner
  start_producer();

  produce({"SET k 0"});
  peer replica = start_replica();
  EXPECT_EQ(get(replica, "k"), "0");

  replica.stop();  // SIGSTOP, and waits until it has stopped
  std::vector<std::string> commands;
  for (int i = 0; i < 4000; ++i)  // 4000 records of 32 bytes: twice round the ring
    commands.push_back("SET key:" + std::to_string(i) + " value-" + std::to_string(i));
  commands.push_back("INCR k");
  produce(commands);
  replica.signal(SIGCONT);

  EXPECT_EQ(get(replica, "k"), "1");
  EXPECT_EQ(get(replica, "key:3999"), "value-3999");
  EXPECT_EQ(get(replica, "key:0"), "value-0");
  const shmlog::log_info info = shmlog::inspect(log_);
  EXPECT_GE(info.lapped_total, 1u);
  EXPECT_EQ(info.sync_full, 2u);  // the first state, and the reload after the lap
}

// The word-count example (examples/wordcount/): a state of the user's own, its producer, and a
// replica daemon in a short main() on run_replica_daemon. The daemon answers queries from other
// processes (shmlog::query_replica, here from the test), saves its state file on SIGTERM, and
// after a restart resumes from it by a partial resync while the producer kept appending.
class wordcount_example : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void append(const std::vector<std::string>& words) {
    for (const std::string& w : words) {
      producer_->send_line(w);
      const std::string ok = producer_->await_line("+OK");  // "+OK offset N"
      master_ = std::stoull(ok.substr(ok.rfind(' ') + 1));
    }
  }
  std::unique_ptr<peer> start_daemon() {
    auto d = std::make_unique<peer>(
        SHMLOG_WORDCOUNT_DAEMON,
        std::vector<std::string>{log_.name(), dir_.path().string(), dir_.file("daemon.state")});
    d->await_line("ready");
    return d;
  }
  // The daemon's count of `word` once its state reflects everything appended so far.
  std::string count(const peer& daemon, const std::string& word) {
    const auto deadline = std::chrono::steady_clock::now() + shmlog::test::condition_timeout;
    for (;;) {
      const auto a = shmlog::query_replica(daemon.pid(), log_.name(), "COUNT " + word);
      if (!a) throw std::runtime_error("the daemon does not listen");
      if (a->offset && *a->offset >= master_) return a->text;
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("the daemon never caught up with offset " +
                                 std::to_string(master_));
      std::this_thread::yield();  // polling another process's progress under a deadline
    }
  }

  shmlog::test::scoped_log log_{shmlog::test::unique_log_name("words")};
  shmlog::test::scratch_dir dir_;
  std::unique_ptr<peer> producer_ = std::make_unique<peer>(
      SHMLOG_WORDCOUNT_PRODUCER, std::vector<std::string>{log_.name(), dir_.path().string()});
  std::uint64_t master_ = 0;
};

TEST_F(wordcount_example, DaemonAnswersFromItsStateAndResumesPartiallyAfterARestart) {
  append({"shm", "log", "shm"});
  {
    std::unique_ptr<peer> daemon = start_daemon();  // new: a full resync from a snapshot
    EXPECT_EQ(count(*daemon, "shm"), "2");
    EXPECT_EQ(count(*daemon, "redis"), "0");
    daemon->signal(SIGTERM);
    daemon->expect_success();  // saved its state file on the way out
  }
  append({"shm", "redis"});  // while no daemon runs
  std::unique_ptr<peer> daemon = start_daemon();
  EXPECT_EQ(count(*daemon, "shm"), "3");
  EXPECT_EQ(count(*daemon, "redis"), "1");
  const shmlog::log_info info = shmlog::inspect(log_);
  EXPECT_EQ(info.sync_full, 1u);        // the first start
  EXPECT_EQ(info.sync_partial_ok, 1u);  // the restart, from its state file
}

}  // namespace
