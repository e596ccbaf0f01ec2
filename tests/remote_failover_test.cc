// Remote replication through failures, with real processes and a real redis-server: the source
// host runs `shmlog produce A` and `shmlog ship A`, the remote host `shmlog mirror B --key A`
// (one host = one log name). Redis is stopped long enough for the source to lap the shipper,
// restarted empty, its stream trimmed past a stopped mirror; the mirror is promoted; the source's
// producer restarts its history; a mirror starts before the first record; snapshot generations
// start again with a Redis restarted empty. Each time the remote log must end as the source: the
// same records at the same offsets (`shmlog tail --print-offsets`), and a `shmlog replica` of it
// the same key-value state as the producer's. Synchronisation is on the daemons' log lines and on
// conditions polled under a deadline (`shmlog::inspect`, Redis), never on fixed sleeps.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
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

using namespace std::chrono_literals;
using shmlog::test::read_file;
using shmlog::test::redis_server;
using shmlog::test::scoped_log;
using shmlog::test::scratch_dir;
using shmlog::test::unique_log_name;

// A guard against a hung child or a condition that never comes, not a synchronisation.
constexpr auto patience = 60s;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct run_result {
  std::string out;
  std::string err;
  int status = -1;  // exit status, or 128 + signal number
};

std::string describe(const run_result& r) {
  return "status " + std::to_string(r.status) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// One run of the shmlog tool, stdin, stdout and stderr on pipes; killed (SIGKILL) and reaped by
// the destructor if it still runs.
class cli_process {
 public:
  explicit cli_process(std::vector<std::string> args) : child_(options(std::move(args))) {}

  pid_t pid() const { return child_.pid(); }
  void write_stdin(std::string_view text) { child_.write_stdin(text); }
  std::optional<std::string> read_line() { return child_.read_line(give_up()); }
  // Reads stderr lines until one contains `what` and returns it; nullopt at end of file or when
  // the patience ran out.
  std::optional<std::string> wait_for_err(const std::string& what) {
    while (auto line = child_.read_line(give_up(), true))
      if (contains(*line, what)) return line;
    return std::nullopt;
  }
  // All of stderr so far (for failure messages): what was read, and what is in the pipe now.
  std::string err() {
    child_.err().read_available();
    return child_.err().transcript();
  }
  void signal(int sig) { child_.signal(sig); }

  // Closes stdin, reads both pipes to their end and reaps; killed after the patience.
  run_result finish() {
    if (!child_.communicate({}, give_up())) child_.kill_and_reap();
    run_result r;
    r.out = child_.out().unread();
    r.err = child_.err().transcript();
    const int status = child_.status();
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
  }
  run_result stop(int sig = SIGTERM) {
    child_.signal(sig);
    return finish();
  }

 private:
  static shmlog::subprocess::spawn_options options(std::vector<std::string> args) {
    ::signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill the test
    args.insert(args.begin(), SHMLOG_CLI);
    return {.argv = std::move(args),
            .stderr_mode = shmlog::subprocess::stream_mode::pipe,
            .parent_death_signal = SIGKILL};
  }
  static shmlog::subprocess::clock::time_point give_up() {
    return shmlog::subprocess::clock::now() + patience;
  }

  shmlog::subprocess::child child_;
};

run_result run(std::vector<std::string> args) {
  cli_process p(std::move(args));
  return p.finish();
}

// Polls `done` until it holds; fails the test naming `what` after the patience. The interval is
// a polling pace only.
[[nodiscard]] bool eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// What the key-value state holds after the commands sent (kv_state's rules restated, so the
// dumps are checked against an independent model).
class kv_model {
 public:
  void apply(const std::string& command) {
    std::istringstream in(command);
    std::string verb, key;
    in >> verb >> key;
    if (verb == "SET")
      m_[key] = command.substr(verb.size() + key.size() + 2);
    else if (verb == "DEL")
      m_.erase(key);
    else if (verb == "INCR")
      m_[key] = std::to_string((m_.contains(key) ? std::stoll(m_[key]) : 0) + 1);
    else
      throw std::runtime_error("kv_model: " + command);
  }
  void clear() { m_.clear(); }
  // The replica's --dump format: "key value" lines sorted by key, then "offset N".
  std::string dump(std::uint64_t offset) const {
    std::string out;
    for (const auto& [k, v] : m_)
      out += k + " " + v + "\n";
    return out + "offset " + std::to_string(offset) + "\n";
  }

 private:
  std::map<std::string, std::string> m_;
};

// `count` commands from number `from` on, about 120 bytes a record: sets, increments, deletes.
std::string commands(kv_model& model, int from, int count) {
  std::string input;
  for (int i = from; i < from + count; ++i) {
    const std::string c = i % 7 == 6   ? "DEL k" + std::to_string(i % 41)
                          : i % 3 == 0 ? "INCR c" + std::to_string(i % 5)
                                       : "SET k" + std::to_string(i % 41) + " v" +
                                             std::to_string(i) + " " + std::string(96, 'x');
    model.apply(c);
    input += c + "\n";
  }
  return input;
}

// Sends `count` more commands to a `shmlog produce` and returns the master offset once they are
// all appended (produce handles its lines in order, so WAIT 0 answers after them).
std::uint64_t send(cli_process& producer, kv_model& model, int& sent, int count) {
  producer.write_stdin(commands(model, sent, count));
  sent += count;
  producer.write_stdin("WAIT 0 0\n");
  const auto line = producer.read_line();
  if (!line) throw std::runtime_error("no WAIT answer: " + producer.finish().err);
  const std::size_t at = line->rfind(" at offset ");
  if (at == std::string::npos) throw std::runtime_error("not a WAIT answer: " + *line);
  return std::stoull(line->substr(at + 11));
}

// The source host: a producer of log A whose snapshots go to its own directory.
struct source {
  scoped_log log{unique_log_name("rfA")};
  scratch_dir dir;
  std::optional<cli_process> producer;
  kv_model model;
  int sent = 0;

  void start_producer(const std::string& capacity) {
    producer.emplace(
        std::vector<std::string>{"produce", log, "--snapshot-dir", dir, "--capacity", capacity});
    if (!producer->wait_for_err("shmlog produce: log '" + log.name() + "': "))
      throw std::runtime_error("produce did not start: " + producer->finish().err);
  }
  std::uint64_t write(int count) { return send(*producer, model, sent, count); }
};

std::uint64_t master_offset(const std::string& log) {
  return shmlog::inspect(log).window.master_offset;
}

// The offset of the reader labelled `label` (the shipper's: "ship"); nullopt if none.
std::optional<std::uint64_t> reader_offset(const std::string& log, const std::string& label) {
  for (const shmlog::reader_info& r : shmlog::inspect(log).readers)
    if (r.label == label) return r.offset;
  return std::nullopt;
}

// The mirror holds what the source has: the same history and master offset.
bool caught_up(const std::string& mirror, const std::string& source) {
  if (!shmlog::exists(mirror)) return false;
  const shmlog::log_info m = shmlog::inspect(mirror);
  const shmlog::log_info s = shmlog::inspect(source);
  return m.history.replid == s.history.replid && m.window.master_offset == s.window.master_offset;
}

// "offset\trecord" lines of the log from its oldest record.
std::map<std::uint64_t, std::string> tail(const std::string& log) {
  const run_result r = run({"tail", log, "--from", "oldest", "--print-offsets"});
  EXPECT_EQ(r.status, 0) << describe(r);
  std::map<std::uint64_t, std::string> records;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const std::size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    records[std::stoull(line.substr(0, tab))] = line.substr(tab + 1);
  }
  return records;
}

// The two logs hold the same records at the same offsets wherever both still hold them, and
// that is not nothing: the mirror reproduces the source.
void expect_same_records(const std::string& mirror, const std::string& source) {
  ASSERT_TRUE(caught_up(mirror, source));
  const auto m = tail(mirror);
  const auto s = tail(source);
  ASSERT_FALSE(m.empty());
  ASSERT_FALSE(s.empty());
  const std::uint64_t from = std::max(m.begin()->first, s.begin()->first);
  const std::map<std::uint64_t, std::string> m_common(m.lower_bound(from), m.end());
  const std::map<std::uint64_t, std::string> s_common(s.lower_bound(from), s.end());
  EXPECT_FALSE(m_common.empty());
  EXPECT_TRUE(m_common == s_common)
      << "mirror " << m_common.size() << " records from " << from << ", source " << s_common.size();
}

// A replica of `log` that loads its snapshot from `dir` and dumps its state at its stop (after
// catching up with the log's master offset) to `dump`; its dump is returned.
std::string replica_dump(const std::string& log, const std::string& dir, const std::string& dump) {
  cli_process replica({"replica", log, "--snapshot-dir", dir, "--dump", dump});
  if (!replica.wait_for_err(" full_resync_done at offset ")) {
    ADD_FAILURE() << "replica of " << log << " never synced: " << replica.finish().err;
    return {};
  }
  const run_result r = replica.stop();
  EXPECT_EQ(r.status, 0) << describe(r);
  return read_file(dump);
}

// A ship daemon of the source log and a mirror daemon of B, through one Redis.
struct link {
  std::vector<std::string> ship_args;
  std::vector<std::string> mirror_args;
  std::optional<cli_process> ship;
  std::optional<cli_process> mirror;

  link(const redis_server& redis, const source& a, const std::string& b, const scratch_dir& bdir,
       std::vector<std::string> extra_ship = {})
      : ship_args{"ship", a.log, "--redis", redis.url(), "--snapshot-dir", a.dir.str()},
        mirror_args{"mirror",         b,         "--redis", redis.url(), "--key", a.log.name(),
                    "--snapshot-dir", bdir.str()} {
    ship_args.insert(ship_args.end(), extra_ship.begin(), extra_ship.end());
  }
  void start_ship() {
    ship.emplace(ship_args);
    if (!ship->wait_for_err("shipping log "))
      throw std::runtime_error("ship did not start: " + ship->finish().err);
  }
  void start_mirror(const std::string& ready_line) {
    mirror.emplace(mirror_args);
    if (!mirror->wait_for_err(ready_line))
      throw std::runtime_error("mirror did not start: " + mirror->finish().err);
  }
};

// Redis stopped (SIGSTOP) while the source appends well over its capacity: the shipper, stuck
// in a command to Redis, is lapped. Once Redis answers again the shipper ships a snapshot
// through Redis, the mirror finds the gap and full-resyncs from it, and a replica of the mirror
// ends with the producer's state.
TEST(remote_failover, ShipperLappedWhileRedisIsStoppedShipsASnapshotAndTheMirrorResyncs) {
  redis_server redis;
  source a;
  a.start_producer("64K");
  scoped_log b(unique_log_name("rfB"));
  scratch_dir bdir;
  scratch_dir dumps;
  link l(redis, a, b, bdir);
  l.start_ship();
  l.start_mirror("created local log");
  a.write(50);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();

  redis.stop();
  // One record the shipper reads and then tries to append: it is stuck in that command (or the
  // retries after its timeout) while Redis is stopped, and reads nothing more.
  const std::uint64_t one = a.write(1);
  ASSERT_TRUE(eventually([&] { return reader_offset(a.log, "ship") == one; })) << l.ship->err();
  const std::uint64_t capacity = shmlog::inspect(a.log).capacity;
  std::uint64_t lapped_at = 0;
  ASSERT_TRUE(eventually([&] {
    lapped_at = a.write(200);
    const auto read = reader_offset(a.log, "ship");
    return read && lapped_at - *read > capacity;
  }));
  redis.resume();

  ASSERT_TRUE(l.ship->wait_for_err("full resync: lapped at offset ")) << l.ship->err();
  ASSERT_TRUE(l.ship->wait_for_err("uploaded snapshot generation ")) << l.ship->err();
  ASSERT_TRUE(l.ship->wait_for_err("shipping from the snapshot's offset ")) << l.ship->err();
  // The first entry after the snapshot is where the mirror sees the gap.
  const std::uint64_t last = a.write(100);
  EXPECT_GT(last, lapped_at);
  ASSERT_TRUE(l.mirror->wait_for_err("full resync: a gap in the stream"))
      << l.mirror->err() << l.ship->err();
  ASSERT_TRUE(l.mirror->wait_for_err("full resync done: ")) << l.mirror->err();
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  expect_same_records(b, a.log);
  const std::string expected = a.model.dump(last);
  EXPECT_EQ(replica_dump(b, bdir, dumps.file("b.dump")), expected);
  EXPECT_EQ(replica_dump(a.log, a.dir, dumps.file("a.dump")), expected);
  for (cli_process* p : {&*l.mirror, &*l.ship}) {
    const run_result r = p->stop();
    EXPECT_EQ(r.status, 0) << describe(r);
  }
}

// Redis restarted empty between two batches: the shipper's next command fails, it finds no meta
// and initialises the key again, then ships on from where Redis last took records; the mirror
// ends with the source's records (a full resync only if the new stream left a gap).
TEST(remote_failover, RedisRestartedEmptyIsReinitialisedAndTheMirrorEndsIdentical) {
  redis_server redis;
  source a;
  a.start_producer("1M");
  scoped_log b(unique_log_name("rfB"));
  scratch_dir bdir;
  link l(redis, a, b, bdir);
  l.start_ship();
  l.start_mirror("created local log");
  a.write(100);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();

  redis.restart_empty();
  a.write(100);
  ASSERT_TRUE(l.ship->wait_for_err("initialised key '" + a.log.name() + "'")) << l.ship->err();
  const std::uint64_t last = a.write(100);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  EXPECT_EQ(master_offset(b), last);
  expect_same_records(b, a.log);
  // The source held everything since Redis went away, so nothing was lost: the mirror holds
  // the source's every record from offset 0.
  EXPECT_EQ(tail(b).begin()->first, 0u);
  EXPECT_EQ(tail(b), tail(a.log));
  for (cli_process* p : {&*l.mirror, &*l.ship}) {
    const run_result r = p->stop();
    EXPECT_EQ(r.status, 0) << describe(r);
  }
}

// The shipper keeps about 2 entries (--max-entries 2; Redis trims whole nodes, 4 entries each
// here) while the mirror is stopped at offset M: the restarted mirror finds the stream begins
// beyond M, asks for a snapshot, full-resyncs (reset_to the snapshot's offset S), and the log
// it then holds, read by `tail` and by a replica, is the source's from S on. Batches are
// written until the stream's oldest entry is beyond M and the source is at least at
// `at_least`; returns S.
void trimmed_stream_then_mirror_restarts(const std::string& capacity, std::uint64_t at_least) {
  redis_server redis({"--stream-node-max-entries", "4"});
  source a;
  a.start_producer(capacity);
  scoped_log b(unique_log_name("rfB"));
  scratch_dir bdir;
  scratch_dir dumps;
  link l(redis, a, b, bdir, {"--max-entries", "2"});
  l.start_ship();
  l.start_mirror("created local log");
  a.write(20);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  {
    const run_result r = l.mirror->stop();
    ASSERT_EQ(r.status, 0) << describe(r);
  }
  const std::uint64_t stopped_at = master_offset(b);
  const std::string stream =
      "shmlog:{" + a.log.name() + "}:stream:" + shmlog::inspect(a.log).history.replid.str();
  // Batches, each shipped as its own entries, until the oldest entry left is beyond the mirror.
  ASSERT_TRUE(eventually([&] {
    const std::uint64_t end = a.write(20);
    if (!eventually([&] {
          const auto shipped =
              redis.command({"HGET", "shmlog:{" + a.log.name() + "}:meta", "shipped"});
          return shipped.str == std::to_string(end);
        }))
      return false;
    const auto oldest = redis.command({"XRANGE", stream, "-", "+", "COUNT", "1"});
    if (oldest.elements.empty()) return false;
    const std::string id = oldest.elements[0].elements.at(0).str;
    return std::stoull(id.substr(0, id.find('-'))) > stopped_at && end >= at_least;
  })) << l.ship->err();
  EXPECT_LE(redis.command({"XLEN", stream}).integer, 2 + 4);

  l.start_mirror("continuing local log");
  ASSERT_TRUE(l.mirror->wait_for_err("full resync: a gap in the stream"))
      << l.mirror->err() << l.ship->err();
  const auto done = l.mirror->wait_for_err("full resync done: ");
  ASSERT_TRUE(done) << l.mirror->err();
  const std::uint64_t last = a.write(30);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  // The mirror holds nothing before the snapshot's offset: its oldest record is there.
  const std::size_t from = done->find("goes on from offset ");
  ASSERT_NE(from, std::string::npos) << *done;
  const std::uint64_t snapshot_offset = std::stoull(done->substr(from + 20));
  EXPECT_EQ(shmlog::inspect(b).window.first_byte_offset, snapshot_offset);
  expect_same_records(b, a.log);
  EXPECT_EQ(tail(b).begin()->first, snapshot_offset);
  const std::string expected = a.model.dump(last);
  EXPECT_EQ(replica_dump(b, bdir, dumps.file("b.dump")), expected);
  for (cli_process* p : {&*l.mirror, &*l.ship}) {
    const run_result r = p->stop();
    EXPECT_EQ(r.status, 0) << describe(r);
  }
}

// The snapshot's offset is beyond the ring's first intent chunk (capacity / 16 = 4K here).
TEST(remote_failover, StreamTrimmedPastAStoppedMirrorMakesItFullResync) {
  trimmed_stream_then_mirror_restarts("64K", 8192);
}

// The same with the snapshot's offset inside the first intent chunk of the mirror's log
// (capacity 1M: 64K; the source stays below that): reset_to must leave the mirror holding
// nothing before the snapshot's offset, although the ring has not wrapped.
TEST(remote_failover, FullResyncToAnOffsetInTheMirrorsFirstChunkHoldsNothingBeforeIt) {
  trimmed_stream_then_mirror_restarts("1M", 0);
}

// "name: value" lines of `shmlog info`.
std::map<std::string, std::string> info(const std::string& log) {
  const run_result r = run({"info", log});
  EXPECT_EQ(r.status, 0) << describe(r);
  std::map<std::string, std::string> fields;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);)
    if (const std::size_t colon = line.find(':'); colon != std::string::npos)
      fields[line.substr(0, colon)] = line.substr(colon + 1);
  return fields;
}

// Promotion (PSYNC2): with mirror B stopped, `promote` gives it a new history whose replid2 is
// the old one at its master offset and publishes it; the old shipper is fenced (status 1,
// "fenced", nothing more in the old history's stream although A goes on), a restarted one is
// refused the same way, and a second mirror C follows the new history without a full resync,
// then the records a producer on B appends under it.
TEST(remote_failover, PromoteFencesTheOldShipperAndASecondMirrorFollowsTheNewHistory) {
  redis_server redis;
  source a;
  a.start_producer("1M");
  scoped_log b(unique_log_name("rfB"));
  scoped_log c(unique_log_name("rfC"));
  scratch_dir bdir;
  scratch_dir cdir;
  scratch_dir dumps;
  link l(redis, a, b, bdir);
  l.start_ship();
  l.start_mirror("created local log");
  link lc(redis, a, c, cdir);
  lc.start_mirror("created local log");
  const std::uint64_t before = a.write(100);
  kv_model model_at_promote = a.model;
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log) && caught_up(c, a.log); }))
      << l.mirror->err() << lc.mirror->err();
  {
    const run_result r = l.mirror->stop();
    ASSERT_EQ(r.status, 0) << describe(r);
  }
  const std::string old_replid = shmlog::inspect(a.log).history.replid.str();
  const std::string old_stream = "shmlog:{" + a.log.name() + "}:stream:" + old_replid;
  const auto stream_top = [&] {
    const auto top = redis.command({"XREVRANGE", old_stream, "+", "-", "COUNT", "1"});
    return top.elements.empty() ? std::string() : top.elements[0].elements.at(0).str;
  };
  const long long old_length = redis.command({"XLEN", old_stream}).integer;
  const std::string old_top = stream_top();
  ASSERT_FALSE(old_top.empty());

  const run_result promoted = run({"promote", b, "--redis", redis.url(), "--key", a.log});
  ASSERT_EQ(promoted.status, 0) << describe(promoted);
  const auto fields = info(b);
  const std::string new_replid = fields.at("replid");
  EXPECT_NE(new_replid, old_replid);
  EXPECT_EQ(fields.at("replid2"), old_replid);
  EXPECT_EQ(fields.at("second_repl_offset"), std::to_string(before));
  EXPECT_EQ(promoted.out, "promoted log '" + b.name() + "' for key '" + a.log.name() +
                              "': history " + new_replid + " (replid2 " + old_replid +
                              ", second offset " + std::to_string(before) + ")\n");

  // A goes on; the old shipper is fenced (by an append or its meta check) and writes nothing.
  a.write(50);
  const run_result fenced = l.ship->finish();
  EXPECT_EQ(fenced.status, 1) << describe(fenced);
  EXPECT_TRUE(contains(fenced.err, "] fenced: key '" + a.log.name() + "'")) << fenced.err;
  EXPECT_TRUE(contains(fenced.err, "shmlog ship: fenced: ")) << fenced.err;
  a.write(50);
  EXPECT_EQ(redis.command({"XLEN", old_stream}).integer, old_length);
  EXPECT_EQ(stream_top(), old_top);
  EXPECT_EQ(redis.command({"HGET", "shmlog:{" + a.log.name() + "}:meta", "replid"}).str,
            new_replid);
  const run_result again = run(l.ship_args);
  EXPECT_EQ(again.status, 1) << describe(again);
  EXPECT_TRUE(contains(again.err, "fenced")) << again.err;
  EXPECT_EQ(redis.command({"XLEN", old_stream}).integer, old_length);

  // C follows the promoted history by PSYNC2, keeping its records.
  ASSERT_TRUE(lc.mirror->wait_for_err("followed the key's new history " + new_replid))
      << lc.mirror->err();
  EXPECT_TRUE(eventually([&] { return caught_up(c, b); })) << lc.mirror->err();
  EXPECT_EQ(master_offset(c), before);

  // The new source: a producer on B (it replays B's records into its state and keeps the
  // history) shipped under key A. C gets its records and ends with that producer's state.
  cli_process producer_b({"produce", b, "--snapshot-dir", bdir});
  ASSERT_TRUE(producer_b.wait_for_err("shmlog produce: log '" + b.name() + "': "))
      << producer_b.err();
  EXPECT_EQ(shmlog::inspect(b).history.replid.str(), new_replid);  // kept
  cli_process ship_b({"ship", b, "--redis", redis.url(), "--key", a.log, "--snapshot-dir", bdir});
  ASSERT_TRUE(ship_b.wait_for_err("shipping log ")) << ship_b.err();
  int sent = 1000;
  const std::uint64_t last = send(producer_b, model_at_promote, sent, 100);
  ASSERT_TRUE(eventually([&] { return caught_up(c, b); })) << lc.mirror->err();
  EXPECT_EQ(master_offset(c), last);
  expect_same_records(c, b);
  EXPECT_EQ(replica_dump(c, cdir, dumps.file("c.dump")), model_at_promote.dump(last));
  const run_result stopped_c = lc.mirror->stop();
  EXPECT_EQ(stopped_c.status, 0) << describe(stopped_c);
  EXPECT_FALSE(contains(stopped_c.err, "full resync")) << stopped_c.err;
  for (cli_process* p : {&ship_b, &producer_b}) {
    const run_result r = p->stop();
    EXPECT_EQ(r.status, 0) << describe(r);
  }
}

// The source's producer restarts with its snapshot directory emptied and offset 0 overwritten:
// its empty state is no prefix the ring still holds, so the log's history changes (a branch at
// offset 0). The shipper publishes it, the mirror follows (a full resync here), and B ends with
// A's records and the new producer's state.
TEST(remote_failover, SourceHistoryChangeIsFollowedByTheMirror) {
  redis_server redis;
  source a;
  a.start_producer("64K");
  scoped_log b(unique_log_name("rfB"));
  scratch_dir bdir;
  scratch_dir dumps;
  link l(redis, a, b, bdir);
  l.start_ship();
  l.start_mirror("created local log");
  // Until offset 0 is overwritten (the window moves a sixteenth of the ring at a time).
  ASSERT_TRUE(eventually([&] {
    a.write(200);
    return shmlog::inspect(a.log).window.first_byte_offset > 0;
  }));
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  const shmlog::history_id old_replid = shmlog::inspect(a.log).history.replid;
  {
    const run_result r = a.producer->stop();
    ASSERT_EQ(r.status, 0) << describe(r);
  }
  for (const auto& e : std::filesystem::directory_iterator(a.dir.path()))
    std::filesystem::remove_all(e.path());
  a.model.clear();
  a.start_producer("64K");
  const shmlog::history_state h = shmlog::inspect(a.log).history;
  ASSERT_NE(h.replid, old_replid);

  a.write(100);
  ASSERT_TRUE(l.ship->wait_for_err("published history " + h.replid.str())) << l.ship->err();
  const auto followed = [&](const std::string& line) {
    return contains(line, "followed the key's new history") || contains(line, "full resync done");
  };
  for (;;) {
    const auto line = l.mirror->wait_for_err(" mirror[");
    ASSERT_TRUE(line) << l.mirror->err();
    if (followed(*line)) break;
  }
  const std::uint64_t last = a.write(100);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  EXPECT_EQ(shmlog::inspect(b).history.replid, h.replid);
  expect_same_records(b, a.log);
  const std::string expected = a.model.dump(last);
  EXPECT_EQ(replica_dump(b, bdir, dumps.file("b.dump")), expected);
  EXPECT_EQ(replica_dump(a.log, a.dir, dumps.file("a.dump")), expected);
  for (cli_process* p : {&*l.mirror, &*l.ship}) {
    const run_result r = p->stop();
    EXPECT_EQ(r.status, 0) << describe(r);
  }
}

// A mirror started before the source appended anything (the shipper initialised the key, the
// stream is still empty) starts at the source log's start, as the stream will: it needs no
// snapshot, so it runs without a snapshot directory.
TEST(remote_failover, MirrorStartedBeforeTheFirstRecordStartsAtTheSourcesStart) {
  redis_server redis;
  source a;
  a.start_producer("64K");
  scoped_log b(unique_log_name("rfB"));
  cli_process ship({"ship", a.log, "--redis", redis.url()});
  ASSERT_TRUE(ship.wait_for_err("shipping log ")) << ship.err();
  cli_process mirror({"mirror", b, "--redis", redis.url(), "--key", a.log});
  ASSERT_TRUE(mirror.wait_for_err("created local log")) << mirror.err();
  const std::uint64_t last = a.write(100);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << mirror.err() << ship.err();
  EXPECT_EQ(master_offset(b), last);
  EXPECT_EQ(tail(b), tail(a.log));
  const run_result m = mirror.stop();
  EXPECT_EQ(m.status, 0) << describe(m);
  EXPECT_TRUE(contains(m.err, "at the source's start, offset 0")) << m.err;
  EXPECT_FALSE(contains(m.err, "snapshot")) << m.err;
  EXPECT_EQ(ship.stop().status, 0);
}

// A gap the running mirror sees: it is held (SIGSTOP) while records are appended and the stream
// is trimmed to its newest entry, then goes on. Returns the mirror's log from the gap to the end
// of the full resync.
std::string gap_and_full_resync(source& a, link& l, const redis_server& redis) {
  const pid_t mirror = l.mirror->pid();
  if (::kill(mirror, SIGSTOP) != 0) throw std::runtime_error("cannot stop the mirror");
  int status = 0;
  ::waitpid(mirror, &status, WUNTRACED);
  // Batches, each shipped before the next, so that the newest entry starts beyond what the
  // mirror has: the first may still reach it, in the answer to the blocking read it was in.
  const std::string meta = "shmlog:{" + a.log.name() + "}:meta";
  for (int batch = 0; batch < 3; ++batch) {
    const std::uint64_t end = a.write(25);
    if (!eventually([&] {
          return redis.command({"HGET", meta, "shipped"}).str == std::to_string(end);
        }))
      throw std::runtime_error("not shipped: " + l.ship->err());
  }
  const std::string replid = redis.command({"HGET", meta, "replid"}).str;
  redis.command({"XTRIM", "shmlog:{" + a.log.name() + "}:stream:" + replid, "MAXLEN", "1"});
  ::kill(mirror, SIGCONT);
  std::string seen;
  for (;;) {
    const auto line = l.mirror->wait_for_err(" mirror[");
    if (!line) throw std::runtime_error("the mirror did not full-resync: " + l.mirror->err());
    if (contains(*line, "full resync: a gap in the stream") || !seen.empty()) seen += *line + "\n";
    if (contains(*line, "full resync done: ")) return seen;
  }
}

// Redis restarted empty between two full resyncs of one mirror: the key's snapshot generations
// start again from 1, and the mirror takes the new generation 1 as the fresh snapshot it is,
// not as the generation it already downloaded before the restart (which would make it wait for
// the source's answer until its snapshot timeout, then ask again).
TEST(remote_failover, SnapshotGenerationsRestartedWithRedisAreNotTakenForOldOnes) {
  redis_server redis;
  source a;
  a.start_producer("64K");
  scoped_log b(unique_log_name("rfB"));
  scratch_dir bdir;
  scratch_dir dumps;
  link l(redis, a, b, bdir);
  l.start_ship();
  l.start_mirror("created local log");
  a.write(20);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  const std::string first = gap_and_full_resync(a, l, redis);
  EXPECT_TRUE(contains(first, "downloaded snapshot generation 1 ")) << first;

  redis.restart_empty();
  a.write(20);
  ASSERT_TRUE(l.ship->wait_for_err("initialised key '" + a.log.name() + "'")) << l.ship->err();
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  const std::string second = gap_and_full_resync(a, l, redis);
  EXPECT_TRUE(contains(second, "downloaded snapshot generation 1 ")) << second;
  EXPECT_FALSE(contains(second, "did not answer")) << second;

  const std::uint64_t last = a.write(30);
  ASSERT_TRUE(eventually([&] { return caught_up(b, a.log); })) << l.mirror->err();
  expect_same_records(b, a.log);
  EXPECT_EQ(replica_dump(b, bdir, dumps.file("b.dump")), a.model.dump(last));
  for (cli_process* p : {&*l.mirror, &*l.ship}) {
    const run_result r = p->stop();
    EXPECT_EQ(r.status, 0) << describe(r);
  }
}

}  // namespace
