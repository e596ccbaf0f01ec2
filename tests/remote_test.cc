// Ship, mirror and promote (shmlog/remote.h) in one process, against a real redis-server: the
// states a kill -9 or a lapped shipper leave, set up directly, and what the next run makes of
// them. The same daemons as processes, with kill -9 and SIGSTOP: remote_process_test.cc and
// remote_failover_test.cc.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redis_server.h"
#include "remote/engine.h"
#include "remote/redis_engine.h"
#include "shmlog/shmlog.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;
using test::redis_server;

std::string unique(std::string_view base) {
  static int n = 0;
  return std::string(base) + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

struct log_guard {
  std::string name;
  ~log_guard() { destroy(name); }
};

// Polls `done` every 5 ms for up to 20 s; false if it never held.
bool eventually(const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

// A daemon on a thread of this test, stopped and joined when it goes out of scope.
class daemon_thread {
 public:
  explicit daemon_thread(std::function<void(const std::atomic<bool>&)> body)
      : thread_([this, body = std::move(body)] {
          try {
            body(stop_);
          } catch (const std::exception& e) {
            const std::lock_guard lock(mutex_);
            failure_ = e.what();
          }
        }) {}
  ~daemon_thread() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::string failure() {
    const std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::string failure_;
  std::thread thread_;
};

// Log lines a daemon wrote, for the test to look for.
class captured_log {
 public:
  link_log sink() {
    return [this](const std::string& line) {
      const std::lock_guard lock(mutex_);
      lines_.push_back(line);
    };
  }
  bool has(std::string_view text) {
    const std::lock_guard lock(mutex_);
    for (const std::string& l : lines_)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

struct record_copy {
  std::uint64_t offset;
  std::string payload;
  friend bool operator==(const record_copy&, const record_copy&) = default;
};

std::vector<record_copy> all_records(const std::string& log) {
  reader r = reader::attach(log, {.start = start_position::oldest()});
  std::vector<record_copy> out;
  std::vector<std::byte> buffer;
  for (;;) {
    const poll_result p = r.poll_copy(buffer);
    if (p.status != poll_status::record) return out;
    out.push_back({p.record.offset, std::string(p.record.text())});
  }
}

// A source log of 64 KiB with `count` records of varied sizes (some cross the ring's end as
// padding would), and everything in it shipped to Redis under `key`.
void ship_everything(const redis_server& redis, const std::string& source, const std::string& key,
                     int count) {
  writer w = writer::create(source, {.capacity = 64 << 10});
  for (int i = 0; i < count; ++i)
    w.append("record " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 97), 'x'));
  const std::uint64_t end = w.master_offset();
  const auto engine = remote::connect_redis(redis.url());
  daemon_thread ship([&](const std::atomic<bool>& stop) {
    run_shipper(source,
                {.redis_url = redis.url(),
                 .key = key,
                 .serve_link = false,
                 .log = [](const std::string&) {}},
                &stop);
  });
  ASSERT_TRUE(eventually([&] {
    return engine->newest_end(key, w.history().replid.view()) == std::optional(end);
  })) << ship.failure();
}

TEST(remote, MirrorKilledInsideAnEntryResumesInsideIt) {
  redis_server redis;
  const log_guard a{unique("src")}, b{unique("mirror")};
  ship_everything(redis, a.name, a.name, 400);
  const std::vector<record_copy> source = all_records(a.name);
  ASSERT_EQ(source.size(), 400u);
  {
    // What a mirror killed after 37 records of the stream's first entry leaves.
    const log_info info = inspect(a.name);
    writer m = writer::create(b.name, {.capacity = info.capacity, .history = info.history});
    for (std::size_t i = 0; i < 37; ++i)
      m.append_at(source[i].offset, std::as_bytes(std::span(source[i].payload)));
  }
  daemon_thread mirror([&](const std::atomic<bool>& stop) {
    run_mirror(b.name,
               {.redis_url = redis.url(),
                .key = a.name,
                .serve_link = false,
                .log = [](const std::string&) {}},
               &stop);
  });
  ASSERT_TRUE(eventually([&] {
    return inspect(b.name).window.master_offset == inspect(a.name).window.master_offset;
  })) << mirror.failure();
  mirror.stop();
  EXPECT_EQ(all_records(b.name), source);
}

// A lapped shipper goes on from a snapshot's offset and may have nothing more to append: the
// key's `shipped` offset is then beyond the stream's end, and a mirror there must not take
// itself for caught up.
TEST(remote, MirrorBehindTheKeysShippedOffsetWithADrainedStreamFullResyncs) {
  redis_server redis;
  const log_guard a{unique("src")}, b{unique("mirror")};
  ship_everything(redis, a.name, a.name, 50);
  const auto engine = remote::connect_redis(redis.url());
  const std::string replid = inspect(a.name).history.replid.str();
  char dir[] = "/tmp/shmlog-remote-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  struct dir_guard {
    std::string path;
    ~dir_guard() { std::filesystem::remove_all(path); }
  } snapshots{dir};
  captured_log lines;
  daemon_thread first([&](const std::atomic<bool>& stop) {
    run_mirror(b.name,
               {.redis_url = redis.url(),
                .key = a.name,
                .snapshot_dir = dir,
                .serve_link = false,
                .log = lines.sink()},
               &stop);
  });
  ASSERT_TRUE(eventually([&] {
    return exists(b.name) &&
           inspect(b.name).window.master_offset == inspect(a.name).window.master_offset;
  })) << first.failure();
  const std::uint64_t m = inspect(b.name).window.master_offset;
  ASSERT_TRUE(
      engine->set_meta_if(a.name, "replid", replid, {{"shipped", std::to_string(m + 4096)}}));
  ASSERT_TRUE(eventually([&] {
    return lines.has("full resync: the key has shipped up to offset " + std::to_string(m + 4096));
  })) << first.failure();
  // It asks the source for a snapshot it can go on from.
  EXPECT_TRUE(eventually([&] { return engine->meta(a.name)["snap_requests"] == "1"; }));
}

TEST(remote, PromoteFencesTheOldHistoryAndKeepsTheSharedPrefix) {
  redis_server redis;
  const log_guard a{unique("src")}, b{unique("mirror")};
  ship_everything(redis, a.name, a.name, 100);
  {
    daemon_thread mirror([&](const std::atomic<bool>& stop) {
      run_mirror(b.name,
                 {.redis_url = redis.url(),
                  .key = a.name,
                  .serve_link = false,
                  .log = [](const std::string&) {}},
                 &stop);
    });
    ASSERT_TRUE(eventually([&] {
      return exists(b.name) &&
             inspect(b.name).window.master_offset == inspect(a.name).window.master_offset;
    })) << mirror.failure();
  }
  const history_state before = inspect(b.name).history;
  const std::uint64_t at = inspect(b.name).window.master_offset;
  const promote_result r = promote(b.name, {.redis_url = redis.url(), .key = a.name});
  EXPECT_FALSE(r.resumed);
  EXPECT_EQ(r.offset, at);
  EXPECT_EQ(r.history.replid2, before.replid);
  EXPECT_EQ(r.history.second_repl_offset, at);
  EXPECT_EQ(inspect(b.name).history.replid, r.history.replid);
  const auto engine = remote::connect_redis(redis.url());
  EXPECT_EQ(engine->meta(a.name)["replid"], r.history.replid.str());
  // The old history's appends are refused.
  const remote::entry late{at, at + 32, std::string()};
  EXPECT_EQ(engine->append(a.name, before.replid.view(), std::span(&late, 1), 0),
            std::vector{remote::append_result::fenced});
}

// A promote killed between its two steps: Redis names the promoted history, the local log still
// has the old one. The next promote finishes the local step with the same history.
TEST(remote, PromoteFinishesAPromoteThatStoppedAfterItsRedisStep) {
  redis_server redis;
  const log_guard b{unique("mirror")};
  history_state old;
  std::uint64_t at = 0;
  {
    writer w = writer::create(b.name, {.capacity = 64 << 10});
    w.append("one");
    w.append("two");
    old = w.history();
    at = w.master_offset();
  }
  const history_state promoted{history_id::random(), old.replid, at};
  const auto engine = remote::connect_redis(redis.url());
  ASSERT_TRUE(engine->set_meta_if(b.name, "replid", "",
                                  {{"replid", promoted.replid.str()},
                                   {"replid2", old.replid.str()},
                                   {"second_offset", std::to_string(at)},
                                   {"capacity", std::to_string(64 << 10)},
                                   {"promoted_by", "elsewhere/x pid 1 at then"}}));
  const promote_result r = promote(b.name, {.redis_url = redis.url()});
  EXPECT_TRUE(r.resumed);
  EXPECT_EQ(r.history.replid, promoted.replid);
  const log_info info = inspect(b.name);
  EXPECT_EQ(info.history.replid, promoted.replid);
  EXPECT_EQ(info.history.replid2, old.replid);
  EXPECT_EQ(info.history.second_repl_offset, at);
}

TEST(remote, PromoteRefusesAKeyOfAnotherCapacity) {
  redis_server redis;
  const log_guard b{unique("mirror")};
  { writer::create(b.name, {.capacity = 64 << 10}).append("x"); }
  const auto engine = remote::connect_redis(redis.url());
  ASSERT_TRUE(engine->set_meta_if(
      b.name, "replid", "",
      {{"replid", history_id::random().str()}, {"capacity", std::to_string(128 << 10)}}));
  try {
    promote(b.name, {.redis_url = redis.url()});
    FAIL() << "promoted a log of another capacity";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("capacity 131072"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shmlog
