// Remote replication with real processes and a real redis-server (docs/remote.md): `shmlog
// produce` writes the source log A, `shmlog ship A` appends it to Redis, `shmlog mirror B --key A`
// reproduces it as the local log B, each a child process of this test. One "host" is one log
// name. Daemons are followed through the lines they log on stderr, the logs through
// shmlog::inspect polled under a deadline, Redis through its own commands; no sleep is a
// synchronisation. What "B equals A" means here: the same master offset, the same replid, and
// `shmlog tail --print-offsets` printing the same records at the same offsets on both.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redis_server.h"
#include "shmlog/shmlog.h"
#include "subprocess/subprocess.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using shmlog::test::redis_server;
using shmlog::test::redis_value;
using shmlog::test::scoped_log;
using shmlog::test::scratch_dir;
using shmlog::test::unique_log_name;
using clock_type = shmlog::subprocess::clock;

// A guard against a hung child or a condition that never comes, not a synchronisation.
constexpr auto patience = 30s;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Polls `done` until it holds; throws after `patience`. The interval is a polling pace only.
template <class Condition>
void await(Condition done, const std::string& what) {
  const auto deadline = clock_type::now() + patience;
  while (!done()) {
    if (clock_type::now() > deadline) throw std::runtime_error("timed out waiting until " + what);
    std::this_thread::sleep_for(2ms);
  }
}

// One run of the `shmlog` tool: stdout and stderr on pipes, stdin on a pipe if asked for.
// Killed (SIGKILL) and reaped by the destructor if still running, and by the kernel if this
// test dies.
class cli {
 public:
  explicit cli(std::vector<std::string> args, bool with_stdin = false)
      : child_(options(std::move(args), with_stdin)) {}

  pid_t pid() const { return child_.pid(); }

  // Reads stderr lines until one contains `what` and returns it; throws, with everything the
  // process said, at end of file or after `patience`.
  std::string await_err(const std::string& what) {
    const auto deadline = clock_type::now() + patience;
    for (;;) {
      const std::optional<std::string> line = child_.read_line(deadline, true);
      if (!line)
        throw std::runtime_error(
            "no stderr line with '" + what + "' from pid " + std::to_string(pid()) + " (" +
            (child_.err().at_eof() ? "end of file" : "timed out") + "); stderr:\n" + err());
      if (contains(*line, what)) return *line;
    }
  }
  // The same for stdout.
  std::string await_out(const std::string& what) {
    const auto deadline = clock_type::now() + patience;
    for (;;) {
      const std::optional<std::string> line = child_.read_line(deadline);
      if (!line)
        throw std::runtime_error("no stdout line with '" + what + "' from pid " +
                                 std::to_string(pid()) + "; stderr:\n" + err());
      if (contains(*line, what)) return *line;
    }
  }

  void write(std::string_view text) {
    if (!child_.write_stdin(text))
      throw std::runtime_error("pid " + std::to_string(pid()) + " took no input; stderr:\n" +
                               err());
  }

  // All of stderr so far.
  std::string err() {
    child_.err().read_available();
    return child_.err().transcript();
  }

  // SIGTERM, then the exit status (128 + signal if killed), waited for under `patience`.
  int terminate() {
    child_.signal(SIGTERM);
    return wait_exit();
  }
  int kill9() {
    child_.signal(SIGKILL);
    return wait_exit();
  }
  int wait_exit() {
    const std::optional<int> status = child_.wait(clock_type::now() + patience);
    if (!status) {
      child_.kill_and_reap();
      throw std::runtime_error("pid " + std::to_string(pid()) + " did not exit; stderr:\n" + err());
    }
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  }

 private:
  static shmlog::subprocess::spawn_options options(std::vector<std::string> args, bool with_stdin) {
    ::signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill the test
    args.insert(args.begin(), SHMLOG_CLI);
    return {.argv = std::move(args),
            .stdin_mode = with_stdin ? shmlog::subprocess::stream_mode::pipe
                                     : shmlog::subprocess::stream_mode::null,
            .stderr_mode = shmlog::subprocess::stream_mode::pipe,
            .default_signals = {SIGPIPE},
            .parent_death_signal = SIGKILL};
  }

  shmlog::subprocess::child child_;
};

struct run_result {
  int status = -1;
  std::string out;
  std::string err;
};

// `shmlog` commands that end by themselves, with stdout collected.
run_result run_to_end(std::vector<std::string> args) {
  args.insert(args.begin(), SHMLOG_CLI);
  shmlog::subprocess::child c({.argv = std::move(args),
                               .stdin_mode = shmlog::subprocess::stream_mode::null,
                               .stderr_mode = shmlog::subprocess::stream_mode::pipe,
                               .default_signals = {SIGPIPE},
                               .parent_death_signal = SIGKILL});
  run_result r;
  if (!c.communicate({}, clock_type::now() + patience)) c.kill_and_reap();
  const int status = c.status();
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = c.out().unread();
  r.err = c.err().transcript();
  return r;
}

std::string tail_of(const std::string& log) {
  const run_result r = run_to_end({"tail", log, "--print-offsets"});
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

// The value of field `name` in `shmlog info LOG`.
std::string info_field(const std::string& log, const std::string& name) {
  const run_result r = run_to_end({"info", log});
  EXPECT_EQ(r.status, 0) << r.err;
  std::size_t at = 0;
  const std::string prefix = name + ":";
  for (;;) {
    const std::size_t end = r.out.find('\n', at);
    const std::string line = r.out.substr(at, end - at);
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
    if (end == std::string::npos) break;
    at = end + 1;
  }
  ADD_FAILURE() << "no field " << name << " in:\n" << r.out;
  return {};
}

// Key-value commands numbered from `first`: about 70 bytes each, keys reused, so the state is a
// function of the whole sequence.
std::string commands(int first, int count) {
  std::string text;
  for (int i = first; i < first + count; ++i) {
    if (i % 7 == 3) {
      text += "INCR counter-" + std::to_string(i % 13) + "\n";
      continue;
    }
    if (i % 11 == 5) {
      text += "DEL key-" + std::to_string((i * 7) % 500) + "\n";
      continue;
    }
    text += "SET key-" + std::to_string(i % 500) + " value-" + std::to_string(i) + "-" +
            std::string(static_cast<std::size_t>(30 + i % 17), static_cast<char>('a' + i % 26)) +
            "\n";
  }
  return text;
}

std::uint64_t master_offset(const std::string& log) {
  return shmlog::inspect(log).window.master_offset;
}

class remote_processes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  // `shmlog produce A`, once it has opened the log.
  std::unique_ptr<cli> producer(const std::string& capacity) {
    auto p = std::make_unique<cli>(std::vector<std::string>{"produce", a_.name(), "--snapshot-dir",
                                                            a_dir_.str(), "--capacity", capacity},
                                   true);
    p->await_err("shmlog produce: log '" + a_.name() + "'");
    return p;
  }
  // Feeds `count` commands from number `first` and returns the master offset once the producer
  // has applied them all (its answer to WAIT comes after every line before it).
  std::uint64_t produce(cli& p, int first, int count) {
    p.write(commands(first, count) + "WAIT 0 0\n");
    const std::string line = p.await_out("WAIT 0 0 ->");
    const std::size_t at = line.rfind(" at offset ");
    return std::stoull(line.substr(at + 11));
  }

  std::unique_ptr<cli> ship(const std::string& url, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"ship", a_.name(),        "--redis",
                                  url,    "--snapshot-dir", a_dir_.str()};
    args.insert(args.end(), more.begin(), more.end());
    return std::make_unique<cli>(std::move(args));
  }
  std::unique_ptr<cli> mirror(const std::string& url, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"mirror", b_.name(), "--redis",        url,
                                  "--key",  a_.name(), "--snapshot-dir", b_dir_.str()};
    args.insert(args.end(), more.begin(), more.end());
    return std::make_unique<cli>(std::move(args));
  }

  // Waits until B exists and its master offset is `offset`.
  void await_mirrored(std::uint64_t offset) {
    await(
        [&] {
          try {
            return shmlog::exists(b_.name()) && master_offset(b_.name()) == offset;
          } catch (const shmlog::error&) {
            return false;  // being created
          }
        },
        "log " + b_.name() + " reaches offset " + std::to_string(offset));
  }

  // B is A: same master offset, same history, the same records at the same offsets.
  void expect_identical() {
    const std::uint64_t master = master_offset(a_.name());
    EXPECT_EQ(master_offset(b_.name()), master);
    const std::string a_tail = tail_of(a_.name());
    EXPECT_FALSE(a_tail.empty());
    EXPECT_EQ(tail_of(b_.name()), a_tail);
    const std::string a_replid = info_field(a_.name(), "replid");
    EXPECT_FALSE(a_replid.empty());
    EXPECT_EQ(info_field(b_.name(), "replid"), a_replid);
  }

  // The entries of the stream of A's current history, as (first offset, end offset); checks
  // that every entry's ID is "<first>-1" and that it has an `e` field.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> stream_entries(const redis_server& redis) {
    const std::string replid = shmlog::inspect(a_.name()).history.replid.str();
    const redis_value r =
        redis.command({"XRANGE", "shmlog:{" + a_.name() + "}:stream:" + replid, "-", "+"});
    EXPECT_EQ(r.type, REDIS_REPLY_ARRAY) << r.str;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (const redis_value& entry : r.elements) {
      const std::string& id = entry.elements.at(0).str;
      EXPECT_TRUE(id.size() > 2 && id.ends_with("-1")) << id;
      std::optional<std::uint64_t> end;
      const auto& f = entry.elements.at(1).elements;
      for (std::size_t i = 0; i + 1 < f.size(); i += 2)
        if (f[i].str == "e") end = std::stoull(f[i + 1].str);
      EXPECT_TRUE(end.has_value()) << "entry " << id << " has no field e";
      out.emplace_back(std::stoull(id.substr(0, id.size() - 2)), end.value_or(0));
    }
    return out;
  }

  // No gap, no overlap: the stream covers [from, to) in entries that each begin where the one
  // before ended.
  void expect_contiguous_stream(const redis_server& redis, std::uint64_t from, std::uint64_t to) {
    const auto entries = stream_entries(redis);
    ASSERT_FALSE(entries.empty());
    EXPECT_EQ(entries.front().first, from);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      EXPECT_LT(entries[i].first, entries[i].second) << "entry " << i;
      if (i > 0) {
        EXPECT_EQ(entries[i].first, entries[i - 1].second)
            << "entry " << i << " of " << entries.size() << " does not start where entry " << i - 1
            << " ended";
      }
    }
    EXPECT_EQ(entries.back().second, to);
  }

  scoped_log a_{unique_log_name("rma")};
  scoped_log b_{unique_log_name("rmb")};
  scratch_dir a_dir_;
  scratch_dir b_dir_;
};

// ---------------------------------------------------------------------------------------------

// The steady case: records written before and while ship and mirror run, across many stream
// entries and around A's ring several times (1 MiB ring, about 3 MiB of records, written in
// pieces the shipper keeps up with), arrive in B at the same offsets, padding included, in
// A's history, with no full resync anywhere.
TEST_F(remote_processes, SteadyStreamMakesTheMirrorIdenticalToTheSource) {
  redis_server redis;
  auto p = producer("1M");
  std::uint64_t offset = produce(*p, 0, 3000);
  auto s = ship(redis.url());
  EXPECT_TRUE(contains(s->await_err("shipping log '" + a_.name() + "'"), "from offset 0"));
  auto m = mirror(redis.url());
  EXPECT_TRUE(contains(m->await_err("created local log '" + b_.name() + "'"),
                       "at the source's start, offset 0"));
  for (int piece = 1; piece <= 15; ++piece) {
    offset = produce(*p, piece * 3000, 3000);
    await_mirrored(offset);
  }
  EXPECT_GT(offset, 5u << 19);  // 2.5 MiB: A's ring went round twice
  expect_identical();
  EXPECT_GT(stream_entries(redis).size(), 30u);  // entries of 64 KiB at most
  expect_contiguous_stream(redis, 0, offset);
  EXPECT_EQ(s->terminate(), 0);
  EXPECT_EQ(m->terminate(), 0);
  EXPECT_FALSE(contains(s->err(), "full resync")) << s->err();
  EXPECT_FALSE(contains(m->err(), "full resync")) << m->err();
  EXPECT_TRUE(contains(s->err(), "stopped: " + std::to_string(offset) + " shipped")) << s->err();
  EXPECT_TRUE(contains(m->err(), "stopped at offset " + std::to_string(offset))) << m->err();
}

// A mirror started while the source is still empty (the stream has no entry yet, nothing was
// shipped, no snapshot) creates its log at the source's start: there is nothing a snapshot
// could hold, so it needs neither one nor a snapshot directory.
TEST_F(remote_processes, MirrorOfAnEmptySourceStartsAtItsStartWithoutASnapshot) {
  redis_server redis;
  auto p = producer("1M");
  auto s = ship(redis.url());
  EXPECT_TRUE(contains(s->await_err("shipping log '" + a_.name() + "'"), "from offset 0"));
  cli m({"mirror", b_.name(), "--redis", redis.url(), "--key", a_.name()});
  EXPECT_TRUE(contains(m.await_err("created local log '" + b_.name() + "'"),
                       "at the source's start, offset 0"));
  const std::uint64_t offset = produce(*p, 0, 1000);
  await_mirrored(offset);
  expect_identical();
  EXPECT_FALSE(contains(m.err(), "snapshot")) << m.err();
  EXPECT_EQ(s->terminate(), 0);
  EXPECT_EQ(m.terminate(), 0);
}

// kill -9 of the shipper while the producer goes on: the next one resends from the end of the
// stream, so Redis holds every record once (each entry starts where the one before ended) and
// B ends identical to A.
TEST_F(remote_processes, ShipperKilledMidStreamResumesWithoutGapOrDuplicate) {
  redis_server redis;
  auto p = producer("4M");
  auto s = ship(redis.url());
  s->await_err("shipping log '" + a_.name() + "'");
  auto m = mirror(redis.url());
  int next = 0;
  // Pieces until the stream has a few entries (the shipper is busy when it dies).
  await(
      [&] {
        produce(*p, next, 500);
        next += 500;
        return stream_entries(redis).size() >= 3;
      },
      "the stream holds 3 entries");
  p->write(commands(next, 3000));  // still being applied when the shipper dies
  next += 3000;
  EXPECT_EQ(s->kill9(), 128 + SIGKILL);
  produce(*p, next, 3000);  // while no shipper runs
  next += 3000;
  s = ship(redis.url());
  EXPECT_TRUE(contains(s->await_err("shipping log '" + a_.name() + "'"), "the end of the stream"));
  const std::uint64_t offset = produce(*p, next, 3000);
  await_mirrored(offset);
  expect_identical();
  expect_contiguous_stream(redis, 0, offset);
  EXPECT_FALSE(contains(m->err(), "full resync")) << m->err();
  EXPECT_EQ(s->terminate(), 0);
  EXPECT_EQ(m->terminate(), 0);
}

// kill -9 of the mirror (B's writer) while records stream in: the next mirror takes B over,
// continues from B's own master offset, and B ends identical to A.
TEST_F(remote_processes, MirrorKilledMidStreamContinuesFromItsOwnLog) {
  redis_server redis;
  auto p = producer("4M");
  auto s = ship(redis.url());
  s->await_err("shipping log '" + a_.name() + "'");
  auto m = mirror(redis.url());
  int next = 0;
  await(
      [&] {
        produce(*p, next, 500);
        next += 500;
        return shmlog::exists(b_.name()) && master_offset(b_.name()) > 100'000;
      },
      "log " + b_.name() + " holds 100000 bytes");
  p->write(commands(next, 3000));
  next += 3000;
  EXPECT_EQ(m->kill9(), 128 + SIGKILL);
  const std::uint64_t left_at = master_offset(b_.name());
  EXPECT_GT(left_at, 0u);
  produce(*p, next, 3000);  // while no mirror runs
  next += 3000;
  m = mirror(redis.url());
  EXPECT_TRUE(contains(m->await_err("continuing local log '" + b_.name() + "'"),
                       "at offset " + std::to_string(left_at)));
  const std::uint64_t offset = produce(*p, next, 3000);
  await_mirrored(offset);
  expect_identical();
  EXPECT_FALSE(contains(m->err(), "full resync")) << m->err();
  EXPECT_FALSE(contains(m->err(), "created local log")) << m->err();
  EXPECT_EQ(s->terminate(), 0);
  EXPECT_EQ(m->terminate(), 0);
}

// A key holds one capacity: a second source of another capacity cannot ship under it, and a
// local log of another capacity cannot mirror it (a mirror could not put the records at the
// same offsets). Both are invalid arguments (exit status 2) with a message naming both
// capacities; the running shipper and the local log are untouched.
TEST_F(remote_processes, CapacityMismatchIsRefusedByShipperAndMirror) {
  redis_server redis;
  auto p = producer("64K");
  produce(*p, 0, 100);
  auto s = ship(redis.url());
  s->await_err("shipping log '" + a_.name() + "'");

  const scoped_log other(unique_log_name("rmo"));
  shmlog::create(other.name(), {.capacity = 128 * 1024});
  const run_result second =
      run_to_end({"ship", other.name(), "--redis", redis.url(), "--key", a_.name()});
  EXPECT_EQ(second.status, 2) << second.err;
  EXPECT_TRUE(contains(second.err, "key '" + a_.name() + "'")) << second.err;
  EXPECT_TRUE(contains(second.err, "capacity 65536; log '" + other.name() + "' has 131072"))
      << second.err;
  EXPECT_EQ(redis.command({"HGET", "shmlog:{" + a_.name() + "}:meta", "capacity"}).str, "65536");

  shmlog::create(b_.name(), {.capacity = 128 * 1024});
  {
    shmlog::writer w = shmlog::writer::open(b_.name());
    w.append(std::string_view("kept"));
  }
  const std::string before = tail_of(b_.name());
  const run_result refused = run_to_end({"mirror", b_.name(), "--redis", redis.url(), "--key",
                                         a_.name(), "--snapshot-dir", b_dir_.str()});
  EXPECT_EQ(refused.status, 2) << refused.err;
  EXPECT_TRUE(contains(refused.err, "local log '" + b_.name() + "' has capacity 131072"))
      << refused.err;
  EXPECT_TRUE(contains(refused.err, "has 65536: a mirror needs the same capacity")) << refused.err;
  EXPECT_EQ(tail_of(b_.name()), before);
  EXPECT_EQ(shmlog::inspect(b_.name()).capacity, 128u * 1024);

  const std::uint64_t offset = produce(*p, 100, 100);  // the first shipper still ships
  await(
      [&] {
        return redis.command({"HGET", "shmlog:{" + a_.name() + "}:meta", "shipped"}).str ==
               std::to_string(offset);
      },
      "the first shipper ships on");
  EXPECT_EQ(s->terminate(), 0);
}

// AUTH with --requirepass: the password in the URL works for both daemons; a wrong one is an
// error they retry (Redis may be reconfigured), logged with Redis's own WRONGPASS text and the
// endpoint without the password, and SIGTERM still stops them cleanly.
TEST_F(remote_processes, PasswordInTheUrlAuthenticatesAndAWrongOneIsReported) {
  redis_server redis({"--requirepass", "s3cret"});
  auto p = producer("1M");
  produce(*p, 0, 1000);
  const std::string url = redis.url(":s3cret");
  auto s = ship(url);
  s->await_err("shipping log '" + a_.name() + "'");
  auto m = mirror(url);
  const std::uint64_t offset = produce(*p, 1000, 1000);
  await_mirrored(offset);
  expect_identical();

  const std::string wrong = redis.url(":wrong-pw");
  auto bad_ship = ship(wrong);
  const std::string ship_line = bad_ship->await_err("WRONGPASS");
  EXPECT_TRUE(contains(ship_line, redis.endpoint())) << ship_line;
  EXPECT_TRUE(contains(ship_line, "retrying")) << ship_line;
  EXPECT_FALSE(contains(bad_ship->err(), "wrong-pw")) << bad_ship->err();
  EXPECT_EQ(bad_ship->terminate(), 0);

  const scoped_log c(unique_log_name("rmc"));
  cli bad_mirror({"mirror", c.name(), "--redis", wrong, "--key", a_.name()});
  const std::string mirror_line = bad_mirror.await_err("WRONGPASS");
  EXPECT_TRUE(contains(mirror_line, redis.endpoint())) << mirror_line;
  EXPECT_FALSE(contains(bad_mirror.err(), "wrong-pw")) << bad_mirror.err();
  EXPECT_EQ(bad_mirror.terminate(), 0);
  EXPECT_FALSE(shmlog::exists(c.name()));

  EXPECT_EQ(s->terminate(), 0);
  EXPECT_EQ(m->terminate(), 0);
}

// A mirror may read from a Redis replica of the server the shipper writes: it only reads the
// stream and the meta while nothing needs a snapshot.
TEST_F(remote_processes, MirrorReadsFromARedisReplica) {
  redis_server master({"--repl-diskless-sync-delay", "0"});  // the replica syncs at once
  redis_server replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  auto p = producer("1M");
  produce(*p, 0, 2000);
  auto s = ship(master.url());
  s->await_err("shipping log '" + a_.name() + "'");
  auto m = mirror(replica.url());
  EXPECT_TRUE(contains(m->await_err("created local log '" + b_.name() + "'"),
                       "at the source's start, offset 0"));
  std::uint64_t offset = 0;
  for (int piece = 1; piece <= 4; ++piece) {
    offset = produce(*p, piece * 2000, 2000);
    await_mirrored(offset);
  }
  expect_identical();
  EXPECT_EQ(replica.command({"ROLE"}).elements.at(0).str, "slave");
  EXPECT_FALSE(contains(m->err(), "error")) << m->err();
  EXPECT_EQ(s->terminate(), 0);
  EXPECT_EQ(m->terminate(), 0);
}

// A replica of the mirror needs a snapshot; the mirror reads a read-only Redis replica, so it
// sends the request to the master (--redis-master), the shipper answers through the master, and
// the snapshot reaches the mirror through the replica. Without --redis-master the request fails
// with READONLY for ever.
TEST_F(remote_processes, MirrorOnARedisReplicaSendsSnapshotRequestsToTheMaster) {
  redis_server master({"--repl-diskless-sync-delay", "0"});
  redis_server replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  auto p = producer("1M");
  const std::uint64_t offset = produce(*p, 0, 500);
  auto s = ship(master.url());
  s->await_err("shipping log '" + a_.name() + "'");
  auto m = mirror(replica.url(), {"--redis-master", master.url()});
  try {
    await_mirrored(offset);
  } catch (...) {
    ADD_FAILURE() << m->err() << s->err();
    throw;
  }
  const std::string b_dump = b_dir_.file("b.dump");
  cli rb({"replica", b_.name(), "--snapshot-dir", b_dir_.str(), "--dump", b_dump});
  m->await_err("a local replica asked for a snapshot: asked the source");
  s->await_err("uploaded snapshot generation 1 ");
  rb.await_err("full_resync_done");
  EXPECT_FALSE(contains(m->err(), "READONLY")) << m->err();
  EXPECT_EQ(rb.terminate(), 0) << rb.err();
  const std::string a_dump = a_dir_.file("a.dump");
  cli ra({"replica", a_.name(), "--snapshot-dir", a_dir_.str(), "--dump", a_dump});
  ra.await_err("full_resync_done");
  EXPECT_EQ(ra.terminate(), 0) << ra.err();
  std::ifstream a_in(a_dump), b_in(b_dump);
  std::stringstream a_text, b_text;
  a_text << a_in.rdbuf();
  b_text << b_in.rdbuf();
  EXPECT_FALSE(a_text.str().empty());
  EXPECT_EQ(b_text.str(), a_text.str());
  EXPECT_EQ(s->terminate(), 0);
  EXPECT_EQ(m->terminate(), 0);
}

// A snapshot chunk damaged in Redis is refused by its CRC-32C: the mirror creates no log from
// it and asks for another; the shipper, restarted, uploads a fresh one, the mirror builds B from
// that, and a key-value replica of B ends with the same state as one of A.
TEST_F(remote_processes, CorruptSnapshotChunkIsRefusedAndAFreshUploadServes) {
  redis_server redis;
  auto p = producer("64K");
  produce(*p, 0, 2000);  // about 140 KB: more than A's ring holds, so a snapshot must go first
  auto s = ship(redis.url());
  const std::string uploaded = s->await_err("uploaded snapshot generation ");
  s->await_err("shipping from the snapshot's offset");
  EXPECT_EQ(s->terminate(), 0);
  const std::size_t at = uploaded.find("generation ") + 11;
  const std::string generation = uploaded.substr(at, uploaded.find(' ', at) - at);

  const std::string chunk_key = "shmlog:{" + a_.name() + "}:snap:" + generation + ":0";
  std::string chunk = redis.command({"GET", chunk_key}).str;
  ASSERT_GT(chunk.size(), 100u);
  chunk[chunk.size() / 2] ^= 0x20;
  ASSERT_EQ(redis.command({"SET", chunk_key, chunk}).str, "OK");

  auto m = mirror(redis.url());
  const std::string refused = m->await_err("refused snapshot: ");
  EXPECT_TRUE(contains(refused, "snapshot generation " + generation + " of key '" + a_.name() +
                                    "': chunk 0 fails its CRC-32C"))
      << refused;
  m->await_err("asked the source for a snapshot");
  EXPECT_FALSE(shmlog::exists(b_.name()));
  EXPECT_TRUE(fs::is_empty(b_dir_.path()));

  s = ship(redis.url());
  const std::string downloaded = m->await_err("downloaded snapshot generation ");
  EXPECT_FALSE(contains(downloaded, "generation " + generation + " ")) << downloaded;
  EXPECT_TRUE(
      contains(m->await_err("created local log '" + b_.name() + "'"), "at snapshot offset"));
  const std::uint64_t offset = produce(*p, 2000, 300);  // streamed after the snapshot
  await_mirrored(offset);
  EXPECT_EQ(shmlog::inspect(b_.name()).history.replid, shmlog::inspect(a_.name()).history.replid);

  // A replica of each log, caught up with it, dumps its state on SIGTERM.
  const std::string a_dump = a_dir_.file("a.dump");
  const std::string b_dump = b_dir_.file("b.dump");
  cli ra({"replica", a_.name(), "--snapshot-dir", a_dir_.str(), "--dump", a_dump});
  cli rb({"replica", b_.name(), "--snapshot-dir", b_dir_.str(), "--dump", b_dump});
  for (const auto& [log, pid] : {std::pair{a_.name(), ra.pid()}, std::pair{b_.name(), rb.pid()}})
    await(
        [&] {
          const shmlog::log_info info = shmlog::inspect(log);
          for (const shmlog::reader_info& r : info.readers)
            if (r.pid == static_cast<std::uint32_t>(pid)) return r.offset == offset;
          return false;
        },
        "the replica of " + log + " reaches offset " + std::to_string(offset));
  EXPECT_EQ(ra.terminate(), 0) << ra.err();
  EXPECT_EQ(rb.terminate(), 0) << rb.err();
  const std::string a_state = shmlog::test::read_file(a_dump);
  EXPECT_TRUE(contains(a_state, "offset " + std::to_string(offset))) << a_state;
  EXPECT_EQ(shmlog::test::read_file(b_dump), a_state);
  EXPECT_EQ(s->terminate(), 0);
  EXPECT_EQ(m->terminate(), 0);
}

}  // namespace
