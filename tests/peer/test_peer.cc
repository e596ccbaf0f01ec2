// shmlog_test_peer: one writer or reader process for tests/process_test.cc, which starts it with
// posix_spawn and talks to it over pipes. It prints one line per event on stdout and exits with a
// code that says how it ended; the test reads the lines and drives it by writing to or closing
// its stdin. Nothing here sleeps to synchronise: every hand-over is a line on a pipe.
//
//   writer NAME [--records N | --forever] [--start-seq S | --continue] [--max-payload B]
//               [--batch K | --claim] [--end-marker] [--max-lag BYTES] [--hold]
//               [--ping-pong [--jitter-us J]]
//       ready pid=P previous_pid=Q crashed=0|1 master=M unpublished=U next_seq=S
//       result records=N first_seq=F last_seq=L master=M [longest_catch_up_us=T]
//     Appends records S, S+1, ... (with --continue, S is one past the last published record),
//     then with --end-marker one record of type end_record_type carrying the next sequence
//     number. --max-lag keeps the writer at most BYTES ahead of the slowest live reader; with
//     BYTES <= capacity / 2 no reader can be lapped (the write intent runs at most capacity / 16
//     ahead). --hold: after the result, waits for stdin to close. --ping-pong: see ping_pong.
//
//   hold-writer NAME [--start-seq S] [--max-payload B] [--fork-child]
//       ready pid=P previous_pid=Q crashed=0|1 master=M [child=C]
//     Holds the writer role until stdin closes. Each stdin line "append K" appends K records and
//     answers "appended last_seq=L master=M". --fork-child: first fork()s a plain child (no
//     exec) that lives until stdin closes, to show that it does not inherit the role.
//
//   reader NAME [--from oldest|latest] [--wait spin|yield|sleep|adaptive] [--on-lap resume|fail]
//               [--first-seq S] [--view] [--slow K] [--report-at SEQ] [--deadline-ms D]
//               [--wait-timeout-ms T] [--wait-for-log-ms W]
//       waiting                       (with --wait-for-log-ms: before it attaches)
//       ready slot=I pid=P
//       progress seq=X                (once, when it accepted a record with seq >= SEQ)
//       result records=R laps=L lapped_count=C gaps=G skipped=K overruns=O bad=B first_seq=F
//              last_seq=X
//     Reads until the end marker. Every record must pass verify_payload and follow the previous
//     one (seq + 1); after a lap (which it answers with seek_oldest) or an overrun (a view that
//     the writer came round to while it was being read, --view only) the next one may skip ahead
//     and the skipped sequence numbers are counted. --first-seq: the first record expected.
//     --slow K verifies each record K more times, to fall behind by honest work. When caught up
//     it waits T ms at a time (default 100) per its wait mode. --wait-for-log-ms: attach waits
//     up to W ms for the log to be created (reader_options::wait_for_creation).
//
//   hold-reader NAME [--fork-child] [--gating]
//       ready slot=I pid=P [child=C]
//     Holds a reader slot until stdin closes, reading nothing. --fork-child: as for
//     hold-writer. --gating: attaches as a gating reader (at the latest record).
//
//   waiter NAME --wait sleep|adaptive [--rounds R] [--timeout-ms T]
//       ready slot=I pid=P
//       waiting                        (R times, each followed by "got seq=X" once woken)
//       waiting-timeout
//       timeout woke=0|1
//     Each round waits for exactly one record with a wait that never times out by itself; then
//     one wait of T ms with no record expected.
//
//   producer NAME --snapshot-dir D [--mode inline|fork] [--recover none|snapshot|replay|unrelated]
//                 [--no-serve] [--check-every K] [--keep K] [--ignore-sigchld]
//       recovered items=N checksum=C offset=X snapshot=PATH|none
//       ready pid=P plan=keep|branch|restart rewinds=0|1 master=M crashed=0|1 previous_pid=Q
//             previous_master=O replid=R replid2=R2 second=S|none items=N checksum=C
//       service <what the snapshot service logs>
//     A writer with a list_state (tests/test_state.h) that it rebuilds per --recover, passes to
//     writer::open (writer_options), and serves snapshots of with a snapshot_service: between
//     appends, and every millisecond while idle, unless --no-serve or "serve off". Commands on
//     stdin, one per line, each answered with one line:
//       append K [SIZE]   appends K records of SIZE bytes -> appended items=N checksum=C master=M
//       snapshot          snapshot_now()      -> snapshot offset=X published=N path=P
//       serve on|off      -> serving on|off
//       block-save BYTES [orphan]
//                         the next save() stops for good after BYTES bytes of payload, having
//                         said "saving bytes=B total=T pid=P" (P: the fork-mode child's pid)
//                         -> blocking bytes=B. With orphan, a fork-mode child does not die
//                         with the producer, and finishes the file on SIGUSR1.
//       stats             -> stats published=N in_progress=0|1 master=M
//       wait N OFFSET MS  writer::wait_for_readers(N, OFFSET, MS) -> waited readers=K
//       state             -> state items=N checksum=C master=M replid=R replid2=R2 second=S
//     At EOF: result published=N master=M items=N checksum=C.
//
//   replica NAME --snapshot-dir D [--pause-loads K] [--pause-at BYTES] [--wait MODE]
//                [--snapshot-timeout-ms T] [--max-backoff-ms B]
//       ready slot=I pid=P
//       event KIND offset=O load=L message=...   (every shmlog::replica_event)
//       loading bytes=X total=Y load=L           (every on_load_progress call)
//       paused bytes=X total=Y load=L            (then waits for "resume" on stdin)
//     A shmlog::replica of a list_state: catches up, then waits for records. The first K loads
//     pause at the first progress report at or beyond BYTES that is not the last. Commands:
//       sync M   applies records up to offset M exactly -> state items=N checksum=C offset=O
//                replid=R loads=N full_resyncs=F partial_resyncs=P laps=L rejected=J
//                backlog_too_small=B
//       hold     stops reading the log -> held offset=O;  go -> going offset=O
//       state    -> state ... (as for sync, without moving)
//     At EOF: result ... (the fields of state).
//
// Fault injection, for any role (shm/fault.h), before the role's own options:
//   --fault-kill POINT    raise(SIGKILL) when the library reaches POINT: a real kill -9 there
//   --fault-pause POINT   at POINT, print "paused at=POINT" and wait for a line "resume" on stdin
//
// Any role that cannot open or attach prints "error code=<errc> message=<what>" and exits 3.
// Exit codes: 0 success, 2 bad usage, 3 open/attach failed, 4 a verification failed, 5 a
// deadline passed, 6 an unexpected exception, 7 a history change left the reader outside the
// new history (a full resync is due).
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fault.h"
#include "shmlog/shmlog.h"
#include "test_state.h"
#include "test_util.h"

namespace {

using shmlog::test::make_payload;
using shmlog::test::payload_size_for;
using shmlog::test::verify_payload;
using steady = std::chrono::steady_clock;

// The record that tells readers the writer is done. Its payload is an ordinary test payload.
constexpr shmlog::record_type end_record_type = 2;

constexpr int exit_ok = 0;
constexpr int exit_usage = 2;
constexpr int exit_open_failed = 3;
constexpr int exit_verify_failed = 4;
constexpr int exit_deadline = 5;
constexpr int exit_exception = 6;
constexpr int exit_full_resync_needed =
    7;  // a history change left the reader outside the new history

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One line on stdout, flushed at once: the test is waiting for it.
void say(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string num(std::uint64_t v) {
  return std::to_string(v);
}

// "--key value" options and "--flag" flags after the role and the log name.
class arguments {
 public:
  arguments(int argc, char** argv, const std::set<std::string>& flags,
            const std::set<std::string>& options) {
    for (int i = 3; i < argc; ++i) {
      const std::string key = argv[i];
      if (flags.count(key)) {
        flags_.insert(key);
      } else if (options.count(key) && i + 1 < argc) {
        values_[key] = argv[++i];
      } else {
        throw usage_error("unknown option or missing value: " + key);
      }
    }
  }

  bool flag(const std::string& key) const { return flags_.count(key) != 0; }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::string text(const std::string& key, const std::string& fallback) const {
    const auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second;
  }
  std::uint64_t number(const std::string& key, std::uint64_t fallback) const {
    const auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    try {
      std::size_t used = 0;
      const std::uint64_t v = std::stoull(it->second, &used);
      if (used == it->second.size()) return v;
    } catch (const std::logic_error&) {  // not a number, or out of range: reported below
    }
    throw usage_error(key + " wants a number, not " + it->second);
  }

 private:
  std::set<std::string> flags_;
  std::map<std::string, std::string> values_;
};

std::string error_line(const shmlog::error& e) {
  return "error code=" + std::string(shmlog::to_string(e.code())) + " message=" + e.what();
}

// Blocks until the test closes our stdin (or we get anything but more input).
void wait_for_stdin_eof() {
  std::string line;
  while (std::getline(std::cin, line)) {
  }
}

shmlog::wait_mode parse_wait_mode(const std::string& s) {
  if (s == "spin") return shmlog::wait_mode::spin;
  if (s == "yield") return shmlog::wait_mode::yield;
  if (s == "sleep") return shmlog::wait_mode::sleep;
  if (s == "adaptive") return shmlog::wait_mode::adaptive;
  throw usage_error("--wait wants spin, yield, sleep or adaptive, not " + s);
}

// ---------------------------------------------------------------------------------------------
// Writer side

// Keeps the writer at most max_lag bytes ahead of the slowest live reader by looking at the
// readers' published offsets (inspect()), so that a test can demand that no reader is lapped.
// A reader publishes its offset when it polls, so the offset seen is never ahead of the reader.
class flow_gate {
 public:
  flow_gate(std::string name, std::uint64_t max_lag) : name_(std::move(name)), max_lag_(max_lag) {}

  // Returns once `bytes` more bytes after `master` stay within max_lag of every live reader.
  void admit(std::uint64_t master, std::uint64_t bytes) {
    if (max_lag_ == 0) return;
    if (bytes > max_lag_) throw usage_error("--max-lag is smaller than one append");
    while (master + bytes > limit_) {
      const shmlog::log_info info = shmlog::inspect(name_);
      if (info.readers.empty()) return;  // nobody to protect; look again next time
      std::uint64_t slowest = std::numeric_limits<std::uint64_t>::max();
      for (const shmlog::reader_info& r : info.readers)
        slowest = std::min(slowest, r.offset);
      limit_ = slowest + max_lag_;
      if (master + bytes > limit_) ::sched_yield();
    }
  }

 private:
  std::string name_;
  std::uint64_t max_lag_ = 0;
  std::uint64_t limit_ = 0;  // the master offset may grow to here without looking again
};

// --ping-pong: after each record, waits until every live reader has consumed it (its published
// offset reached the master offset), then spins for a seeded random 0..jitter microseconds, so
// that the next record lands at varying points of the readers' way into sleep. Peers sleep
// until woken (no heartbeat), so a lost wake-up leaves a reader asleep for good and the 20 s
// deadline below fails the run.
class ping_pong {
 public:
  ping_pong(std::string name, std::uint64_t jitter_us)
      : name_(std::move(name)), jitter_ns_(jitter_us * 1000) {}

  void after_append(std::uint64_t master) {
    const auto start = steady::now();
    for (;;) {
      const shmlog::log_info info = shmlog::inspect(name_);
      if (std::all_of(info.readers.begin(), info.readers.end(),
                      [&](const shmlog::reader_info& r) { return r.offset >= master; }))
        break;
      if (steady::now() - start > std::chrono::seconds(20))
        throw std::runtime_error("readers did not catch up within 20 s");
      ::sched_yield();
    }
    longest_ = std::max(longest_, steady::now() - start);
    const auto until = steady::now() + std::chrono::nanoseconds(random_() % (jitter_ns_ + 1));
    while (steady::now() < until) {
    }
  }

  std::uint64_t longest_us() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(longest_).count());
  }

 private:
  std::string name_;
  std::uint64_t jitter_ns_ = 0;
  std::mt19937_64 random_{20261121};  // fixed seed: the same pauses every run
  steady::duration longest_{0};
};

// Room a record may take, padding at the ring's end included.
std::uint64_t worst_case_bytes(std::size_t payload) {
  return 2 * shmlog::record_frame_size(payload);
}

// The sequence number after the last record published in the log (reading it as a reader in
// this process would), or nullopt if the log holds no record.
std::optional<std::uint64_t> next_seq_after_log(const shmlog::writer& w) {
  shmlog::reader r = shmlog::reader::attach(
      w.mapped(), {.start = shmlog::start_position::oldest(), .label = "peer-scan"});
  std::vector<std::byte> buffer;
  std::optional<std::uint64_t> last;
  for (;;) {
    const shmlog::poll_result p = r.poll_copy(buffer);
    if (p.status == shmlog::poll_status::empty) return last ? std::optional(*last + 1) : last;
    if (p.status != shmlog::poll_status::record)
      throw std::runtime_error("scan: poll returned neither a record nor empty");
    std::uint64_t seq = 0;
    if (!verify_payload(p.record.payload, &seq))
      throw std::runtime_error("scan: bad payload at offset " + num(p.record.offset));
    if (last && seq != *last + 1)
      throw std::runtime_error("scan: seq " + num(seq) + " follows " + num(*last));
    last = seq;
  }
}

std::string ready_line(const shmlog::writer& w) {
  const shmlog::takeover_info& t = w.takeover();
  return "ready pid=" + num(static_cast<std::uint64_t>(::getpid())) +
         " previous_pid=" + num(t.previous_pid) + " crashed=" + (t.previous_crashed ? "1" : "0") +
         " master=" + num(t.master_offset) + " unpublished=" + num(t.unpublished_bytes);
}

// Opens the log as its writer, or says why not (the caller then exits with exit_open_failed).
std::optional<shmlog::writer> open_or_say(const std::string& name) {
  try {
    return shmlog::writer::open(name);
  } catch (const shmlog::error& e) {
    say(error_line(e));
    return std::nullopt;
  }
}

int run_writer(const std::string& name, int argc, char** argv) {
  const arguments a(
      argc, argv, {"--forever", "--continue", "--claim", "--end-marker", "--hold", "--ping-pong"},
      {"--records", "--start-seq", "--max-payload", "--batch", "--max-lag", "--jitter-us"});
  std::optional<shmlog::writer> opened = open_or_say(name);
  if (!opened) return exit_open_failed;
  shmlog::writer& w = *opened;
  const std::size_t max_payload =
      std::min<std::uint64_t>(a.number("--max-payload", 256), w.max_payload());
  const std::uint64_t batch = a.number("--batch", 1);
  const bool claim = a.flag("--claim");
  if (batch == 0 || (batch > 1 && claim)) throw usage_error("--batch K (K >= 1) or --claim");

  std::uint64_t seq = a.number("--start-seq", 0);
  if (a.flag("--continue")) seq = next_seq_after_log(w).value_or(seq);
  const std::uint64_t first_seq = seq;
  const std::uint64_t end_seq = a.flag("--forever") ? std::numeric_limits<std::uint64_t>::max()
                                                    : seq + a.number("--records", 0);
  say(ready_line(w) + " next_seq=" + num(seq));

  flow_gate gate(name, a.number("--max-lag", 0));
  std::optional<ping_pong> ping;
  if (a.flag("--ping-pong")) ping.emplace(name, a.number("--jitter-us", 0));
  std::vector<std::vector<std::byte>> payloads(batch);
  std::vector<shmlog::record_ref> refs;
  while (seq < end_seq) {
    if (claim) {
      const std::size_t size = payload_size_for(seq, max_payload);
      gate.admit(w.master_offset(), worst_case_bytes(max_payload));
      // Claim the most a record may take and commit what this one uses, so that the claim's
      // placement (padding for the largest size) and the committed size differ.
      shmlog::claimed_record c = w.claim(max_payload);
      make_payload(seq, size, c.payload().first(size));
      c.commit(size);
      ++seq;
    } else {
      const std::uint64_t count = std::min(batch, end_seq - seq);
      refs.clear();
      std::uint64_t bytes = worst_case_bytes(max_payload);
      for (std::uint64_t i = 0; i < count; ++i) {
        payloads[i] = make_payload(seq + i, payload_size_for(seq + i, max_payload));
        refs.push_back({payloads[i], shmlog::default_record_type});
        bytes += shmlog::record_frame_size(payloads[i].size());
      }
      gate.admit(w.master_offset(), bytes);
      if (count == 1) {
        w.append(payloads[0]);
      } else {
        w.append_batch(refs);
      }
      seq += count;
    }
    if (ping) ping->after_append(w.master_offset());
  }
  if (a.flag("--end-marker")) {
    gate.admit(w.master_offset(), worst_case_bytes(max_payload));
    w.append(make_payload(seq, payload_size_for(seq, max_payload)), end_record_type);
    ++seq;
  }
  say("result records=" + num(seq - first_seq) + " first_seq=" + num(first_seq) +
      " last_seq=" + num(seq - 1) + " master=" + num(w.master_offset()) +
      (ping ? " longest_catch_up_us=" + num(ping->longest_us()) : ""));
  if (a.flag("--hold")) wait_for_stdin_eof();
  return exit_ok;
}

// A plain fork() (no exec) of a process holding a role, as a daemon forking a helper does: the
// child lives until stdin closes (the test closes it when it is done) and does nothing else.
// Returns the child's pid as " child=C" for the ready line.
std::string fork_idle_child() {
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {
    // Not the test's stdout: the test waits for EOF there to know the peer exited.
    const int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, STDOUT_FILENO);
    char c;
    while (::read(STDIN_FILENO, &c, 1) > 0) {
    }
    ::_exit(0);
  }
  return " child=" + num(static_cast<std::uint64_t>(child));
}

int run_hold_writer(const std::string& name, int argc, char** argv) {
  const arguments a(argc, argv, {"--fork-child"}, {"--start-seq", "--max-payload"});
  std::optional<shmlog::writer> opened = open_or_say(name);
  if (!opened) return exit_open_failed;
  shmlog::writer& w = *opened;
  const std::size_t max_payload =
      std::min<std::uint64_t>(a.number("--max-payload", 256), w.max_payload());
  std::uint64_t seq = a.number("--start-seq", 0);
  say(ready_line(w) + (a.flag("--fork-child") ? fork_idle_child() : std::string()));
  std::string line;
  while (std::getline(std::cin, line)) {
    const std::string command = "append ";
    if (line.rfind(command, 0) != 0) throw usage_error("unknown command: " + line);
    const std::uint64_t count = std::stoull(line.substr(command.size()));
    for (std::uint64_t i = 0; i < count; ++i, ++seq)
      w.append(make_payload(seq, payload_size_for(seq, max_payload)));
    say("appended last_seq=" + num(seq - 1) + " master=" + num(w.master_offset()));
  }
  return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// Reader side

// Checks that accepted sequence numbers follow each other, allowing one jump forward after
// each lap or overrun, and counts what was skipped.
class sequence_check {
 public:
  explicit sequence_check(std::optional<std::uint64_t> first) : expected_(first) {}

  void allow_gap() noexcept { gap_allowed_ = true; }

  // False if `seq` breaks the order (a repeat, a step back, or a jump without a lap).
  bool accept(std::uint64_t seq) noexcept {
    if (expected_ && seq != *expected_) {
      if (!gap_allowed_ || seq < *expected_) return false;
      ++gaps_;
      skipped_ += seq - *expected_;
    }
    if (!first_) first_ = seq;
    gap_allowed_ = false;
    expected_ = seq + 1;
    last_ = seq;
    ++records_;
    return true;
  }

  std::string summary() const {
    return "records=" + num(records_) + " gaps=" + num(gaps_) + " skipped=" + num(skipped_) +
           " first_seq=" + (first_ ? num(*first_) : "none") +
           " last_seq=" + (records_ ? num(last_) : "none");
  }

 private:
  std::optional<std::uint64_t> expected_;
  std::optional<std::uint64_t> first_;
  bool gap_allowed_ = false;
  std::uint64_t last_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t gaps_ = 0;
  std::uint64_t skipped_ = 0;
};

std::optional<shmlog::reader> attach_or_say(const std::string& name,
                                            const shmlog::reader_options& options) {
  try {
    shmlog::reader r = shmlog::reader::attach(name, options);
    say("ready slot=" + num(r.slot()) + " pid=" + num(static_cast<std::uint64_t>(::getpid())));
    return r;
  } catch (const shmlog::error& e) {
    say(error_line(e));
    return std::nullopt;
  }
}

int run_reader(const std::string& name, int argc, char** argv) {
  const arguments a(argc, argv, {"--view"},
                    {"--from", "--wait", "--on-lap", "--first-seq", "--slow", "--report-at",
                     "--deadline-ms", "--wait-timeout-ms", "--wait-for-log-ms"});
  const std::string from = a.text("--from", "oldest");
  const std::string on_lap = a.text("--on-lap", "resume");
  if (from != "oldest" && from != "latest") throw usage_error("--from wants oldest or latest");
  if (on_lap != "resume" && on_lap != "fail") throw usage_error("--on-lap wants resume or fail");
  const bool view = a.flag("--view");
  const std::uint64_t slow = a.number("--slow", 0);
  const std::uint64_t report_at =
      a.number("--report-at", std::numeric_limits<std::uint64_t>::max());
  const auto deadline = steady::now() + std::chrono::milliseconds(a.number("--deadline-ms", 60000));
  const std::chrono::milliseconds wait_timeout(a.number("--wait-timeout-ms", 100));

  shmlog::reader_options options;
  options.start =
      from == "oldest" ? shmlog::start_position::oldest() : shmlog::start_position::latest();
  options.wait.mode = parse_wait_mode(a.text("--wait", "adaptive"));
  // Only the writer may wake a sleeping peer: a lost wake-up then shows as a hang that the
  // test's deadline turns into a failure, not as a delay that timing would have to judge.
  options.wait.heartbeat_interval = std::chrono::nanoseconds::max();
  options.label = "peer-reader";
  options.wait_for_creation = std::chrono::milliseconds(a.number("--wait-for-log-ms", 0));
  // Said before attach(): the test creates the log once it has read this line.
  if (options.wait_for_creation.count() != 0) say("waiting");
  std::optional<shmlog::reader> attached = attach_or_say(name, options);
  if (!attached) return exit_open_failed;
  shmlog::reader& r = *attached;

  sequence_check order(a.has("--first-seq") ? std::optional(a.number("--first-seq", 0))
                                            : std::nullopt);
  std::uint64_t laps = 0;
  std::uint64_t overruns = 0;
  std::uint64_t bad = 0;
  bool reported = false;
  const auto result = [&](const std::string& extra) {
    say("result " + order.summary() + " laps=" + num(laps) + " lapped_count=" +
        num(r.lapped_count()) + " overruns=" + num(overruns) + " bad=" + num(bad) + extra);
  };

  std::vector<std::byte> buffer;
  for (;;) {
    const shmlog::poll_result p = view ? r.poll() : r.poll_copy(buffer);
    switch (p.status) {
      case shmlog::poll_status::record: {
        std::uint64_t seq = 0;
        bool intact = verify_payload(p.record.payload, &seq);
        for (std::uint64_t i = 0; i < slow; ++i)
          intact = verify_payload(p.record.payload) && intact;
        // A view is only as good as still_valid() says after the bytes were used: a torn view
        // is an overrun (expected under laps), a torn copy or a torn valid view is a bug.
        if (view && !r.still_valid(p.record)) {
          ++overruns;
          order.allow_gap();
          break;
        }
        const bool known_type =
            p.record.type == shmlog::default_record_type || p.record.type == end_record_type;
        if (!intact || !known_type) {
          ++bad;
          result(" failed=bad_payload offset=" + num(p.record.offset));
          return exit_verify_failed;
        }
        if (!order.accept(seq)) {
          result(" failed=order seq=" + num(seq) + " offset=" + num(p.record.offset));
          return exit_verify_failed;
        }
        if (!reported && seq >= report_at) {
          reported = true;
          say("progress seq=" + num(seq));
        }
        if (p.record.type == end_record_type) {
          result("");
          return laps == r.lapped_count() ? exit_ok : exit_verify_failed;
        }
        break;
      }
      case shmlog::poll_status::empty:
        if (steady::now() > deadline) {
          result(" failed=deadline");
          return exit_deadline;
        }
        r.wait(wait_timeout);
        break;
      case shmlog::poll_status::lapped:
        ++laps;
        if (on_lap == "fail") {
          result(" failed=lapped wanted=" + num(p.lap.wanted_offset) +
                 " oldest=" + num(p.lap.oldest_offset));
          return exit_verify_failed;
        }
        r.seek_oldest();
        order.allow_gap();
        break;
      case shmlog::poll_status::corrupt:
        ++bad;
        result(" failed=corrupt offset=" + num(p.corruption.offset) +
               " reason=" + p.corruption.reason);
        return exit_verify_failed;
      case shmlog::poll_status::history_changed: {
        // A new writer changed the history: PSYNC again from where we stand (the test that
        // restarts writers checks which way each reader goes).
        const shmlog::resync_decision d = r.resync(r.replid(), r.offset());
        say(std::string("history_changed ") + (d.is_partial() ? "partial" : "full") +
            " offset=" + num(r.offset()) + " reason=" + std::string(shmlog::to_string(d.reason)));
        if (!d.is_partial()) {
          result(" failed=history_changed");
          return exit_full_resync_needed;
        }
        break;
      }
      case shmlog::poll_status::too_small:  // poll_copy(span) only
        result(" failed=too_small");
        return exit_verify_failed;
    }
  }
}

int run_hold_reader(const std::string& name, int argc, char** argv) {
  const arguments a(argc, argv, {"--fork-child", "--gating"}, {});
  std::optional<shmlog::reader> attached =
      attach_or_say(name, {.label = "peer-hold", .gating = a.flag("--gating")});
  if (!attached) return exit_open_failed;
  if (a.flag("--fork-child")) {
    const std::string child = fork_idle_child();
    say("forked" + child);
  }
  wait_for_stdin_eof();
  return exit_ok;
}

int run_waiter(const std::string& name, int argc, char** argv) {
  const arguments a(argc, argv, {}, {"--wait", "--rounds", "--timeout-ms"});
  shmlog::reader_options options;
  options.start = shmlog::start_position::latest();
  options.wait.mode = parse_wait_mode(a.text("--wait", "sleep"));
  options.wait.heartbeat_interval = std::chrono::nanoseconds::max();  // as in run_reader
  options.label = "peer-waiter";
  std::optional<shmlog::reader> attached = attach_or_say(name, options);
  if (!attached) return exit_open_failed;
  shmlog::reader& r = *attached;

  std::vector<std::byte> buffer;
  const std::uint64_t rounds = a.number("--rounds", 0);
  for (std::uint64_t i = 0; i < rounds; ++i) {
    say("waiting");
    // No timeout of our own: only the writer's record may end this wait.
    if (!r.wait()) {
      say("error wait() without a timeout returned false");
      return exit_verify_failed;
    }
    const shmlog::poll_result p = r.poll_copy(buffer);
    std::uint64_t seq = 0;
    if (p.status != shmlog::poll_status::record || !verify_payload(p.record.payload, &seq)) {
      say("error woken but no intact record");
      return exit_verify_failed;
    }
    say("got seq=" + num(seq));
  }
  say("waiting-timeout");
  const bool woke = r.wait(std::chrono::milliseconds(a.number("--timeout-ms", 100)));
  say(std::string("timeout woke=") + (woke ? "1" : "0"));
  return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// Full resync: a producer with a state that serves snapshots, and replicas of that state

namespace fs = std::filesystem;
using shmlog::test::list_state;

// Lines from stdin read straight from descriptor 0, so that a role can look for a command
// without blocking (poll) between steps of its own work.
class line_input {
 public:
  // The next line, waiting at most timeout_ms for it (-1: as long as it takes); nullopt when
  // none came in time or stdin is closed (then eof()).
  std::optional<std::string> next(int timeout_ms) {
    for (;;) {
      if (const auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      if (eof_) return std::nullopt;
      pollfd p{STDIN_FILENO, POLLIN, 0};
      const int ready = ::poll(&p, 1, timeout_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) throw std::runtime_error("poll on stdin failed");
      if (ready == 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  bool eof() const noexcept { return eof_ && buffer_.find('\n') == std::string::npos; }

 private:
  std::string buffer_;
  bool eof_ = false;
};

// The first word of a command line and the number after it ("append 5" -> 5).
std::uint64_t argument(const std::string& line, std::size_t index, std::uint64_t fallback) {
  std::istringstream in(line);
  std::string word;
  for (std::size_t i = 0; i <= index; ++i)
    if (!(in >> word)) return fallback;
  try {
    std::size_t used = 0;
    const std::uint64_t v = std::stoull(word, &used);
    if (used == word.size()) return v;
  } catch (const std::logic_error&) {  // reported below
  }
  throw usage_error("not a number in: " + line);
}

std::string first_word(const std::string& line) {
  return line.substr(0, line.find(' '));
}

// CRC-32C of what save() writes: equal states, equal checksums.
std::uint32_t checksum_of(const list_state& state) {
  std::ostringstream out;
  state.list_state::save(out);
  const std::string bytes = out.str();
  return shmlog::crc32c(bytes.data(), bytes.size());
}

std::string state_fields(const list_state& state) {
  return "items=" + num(state.items.size()) + " checksum=" + num(checksum_of(state));
}

// The producer's state: a list_state whose save() can be made to stop half-way, so that a test
// can kill the producer (or its fork-mode child) while a snapshot file is being written, at a
// known point.
class producer_state : public list_state {
 public:
  // Set by "block-save BYTES [orphan]": the next save() writes BYTES bytes of the payload, makes
  // sure they reached the temporary file, says "saving", and never returns. With orphan, a
  // fork-mode child outlives the producer instead of dying with it, and finishes the save
  // when it gets SIGUSR1 (or gives up after 30 s, so that nothing outlives a failed test).
  std::optional<std::size_t> block_after;
  bool orphan = false;

  void save(std::ostream& out) const override {
    if (!block_after) {
      list_state::save(out);
      return;
    }
    std::ostringstream whole;
    list_state::save(whole);
    const std::string bytes = whole.str();
    const std::size_t part = std::min(*block_after, bytes.size() - 1);
    out.write(bytes.data(), static_cast<std::streamsize>(part));
    out.flush();
    sigset_t release;
    sigemptyset(&release);
    sigaddset(&release, SIGUSR1);
    if (orphan) {
      ::sigprocmask(SIG_BLOCK, &release, nullptr);  // before "saving": no signal is lost
    } else if (::getpid() != producer_pid_) {
      // A fork-mode child: die with the producer, as the whole producer dies under kill -9 in
      // the scenario this stands for (and so that nothing outlives a failed test).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != producer_pid_) ::_exit(exit_deadline);
    }
    say("saving bytes=" + num(part) + " total=" + num(bytes.size()) +
        " pid=" + num(static_cast<std::uint64_t>(::getpid())));
    if (!orphan) {
      for (;;)
        ::pause();
    }
    // Let go of the test's pipe, whose end of file tells the test that the producer is gone.
    if (const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC); null >= 0) {
      ::dup2(null, STDOUT_FILENO);
      ::close(null);
    }
    const timespec give_up{30, 0};
    if (::sigtimedwait(&release, nullptr, &give_up) != SIGUSR1) ::_exit(exit_deadline);
    out.write(bytes.data() + part, static_cast<std::streamsize>(bytes.size() - part));
  }

 private:
  pid_t producer_pid_ = ::getpid();
};

// Payloads of the producer's records: the item's number, padded to `size` bytes.
std::string item(const std::string& prefix, std::uint64_t n, std::size_t size) {
  std::string s = prefix + "-" + num(n) + "-";
  if (s.size() < size) s.append(size - s.size(), static_cast<char>('a' + n % 26));
  return s;
}

// What the producer's state reflects when it opens the log (writer_options).
struct recovery {
  std::optional<shmlog::history_id> replid;
  std::uint64_t offset = 0;
  std::string snapshot = "none";
};

// How a restarted producer rebuilds its state (--recover):
//   none       no state: an empty list, and the log goes on as it is (a fresh log)
//   snapshot   the newest snapshot, and nothing after it (a state that is a prefix of the log)
//   replay     the library's producer recovery (shmlog::open_producer): the newest snapshot
//              that verifies plus every record the log still holds after it
//   unrelated  a state that is no prefix of the log, under a history of its own
recovery recover(const std::string& how, const std::string& name, const fs::path& dir,
                 list_state& state) {
  recovery r;
  if (how == "none") return r;
  if (how == "unrelated") {
    for (int i = 0; i < 5; ++i)
      state.items.push_back(item("unrelated", static_cast<std::uint64_t>(i), 24));
    r.replid = shmlog::history_id::random();
    r.offset = 12345;
    return r;
  }
  if (how != "snapshot")
    throw usage_error("--recover wants none, snapshot, replay or unrelated, not " + how);
  const std::vector<fs::path> all = shmlog::list_snapshots(dir, name);
  if (all.empty()) throw std::runtime_error("no snapshot of " + name + " in " + dir.string());
  const shmlog::snapshot_meta loaded = shmlog::load_snapshot(all.front(), state);
  r.snapshot = all.front().string();
  r.replid = loaded.replid;
  r.offset = loaded.offset;
  return r;
}

std::string history_fields(const shmlog::history_state& h) {
  return "replid=" + h.replid.str() + " replid2=" + h.replid2.str() + " second=" +
         (h.second_repl_offset == shmlog::no_offset ? "none" : num(h.second_repl_offset));
}

int run_producer(const std::string& name, int argc, char** argv) {
  const arguments a(argc, argv, {"--no-serve", "--ignore-sigchld"},
                    {"--snapshot-dir", "--mode", "--recover", "--check-every", "--keep"});
  // As daemons often do: children are reaped by the kernel, and waitpid() finds none.
  if (a.flag("--ignore-sigchld")) ::signal(SIGCHLD, SIG_IGN);
  const fs::path dir = a.text("--snapshot-dir", "");
  const std::string mode = a.text("--mode", "inline");
  if (mode != "inline" && mode != "fork") throw usage_error("--mode wants inline or fork");

  producer_state state;
  const std::string how = a.text("--recover", "none");
  std::optional<shmlog::writer> opened;
  try {
    if (how == "replay") {
      shmlog::recovered_producer p = shmlog::open_producer(name, state, {.snapshot_dir = dir});
      for (const std::string& skip : p.report.skipped_snapshots)
        say("skipped " + skip);
      say("recovered " + state_fields(state) + " offset=" + num(p.log.master_offset()) +
          " snapshot=" + (p.report.snapshot ? p.report.snapshot->path.string() : "none"));
      opened.emplace(std::move(p.log));
    } else {
      const recovery rec = recover(how, name, dir, state);
      say("recovered " + state_fields(state) + " offset=" + num(rec.offset) +
          " snapshot=" + rec.snapshot);
      opened.emplace(
          shmlog::writer::open(name, {.state_replid = rec.replid, .state_offset = rec.offset}));
    }
  } catch (const shmlog::error& e) {
    say(error_line(e));
    return exit_open_failed;
  }
  shmlog::writer& w = *opened;
  std::optional<shmlog::snapshot_service> service_holder;
  try {
    service_holder.emplace(
        w, state,
        shmlog::snapshot_options{
            .dir = dir,
            .mode =
                mode == "fork" ? shmlog::snapshot_mode::fork : shmlog::snapshot_mode::inline_save,
            .keep = a.number("--keep", 3),
            .check_every = static_cast<std::uint32_t>(a.number("--check-every", 1)),
            .on_event = [](const shmlog::snapshot_event& e) {
              if (e.what != shmlog::snapshot_event::kind::started) say("service " + e.message);
            }});
  } catch (const shmlog::error& e) {
    say(error_line(e));
    return exit_open_failed;
  }
  shmlog::snapshot_service& service = *service_holder;
  const shmlog::takeover_info& t = w.takeover();
  say("ready pid=" + num(static_cast<std::uint64_t>(::getpid())) + " plan=" +
      std::string(shmlog::to_string(t.plan.action)) + " rewinds=" + (t.plan.rewinds ? "1" : "0") +
      " master=" + num(w.master_offset()) + " crashed=" + (t.previous_crashed ? "1" : "0") +
      " previous_pid=" + num(t.previous_pid) + " previous_master=" + num(t.previous_master_offset) +
      " " + history_fields(w.history()) + " " + state_fields(state));

  line_input input;
  bool serving = !a.flag("--no-serve");
  for (;;) {
    // Serving means answering requests between appends, as a real producer's loop does.
    if (serving) service.poll();
    // Idle: look for a command every millisecond while serving (or while a fork-mode child is
    // saving), else wait for one.
    const std::optional<std::string> line = input.next(serving || service.in_progress() ? 1 : -1);
    if (!line) {
      if (input.eof()) break;
      continue;
    }
    const std::string command = first_word(*line);
    if (command == "append") {
      const std::uint64_t count = argument(*line, 1, 1);
      const std::size_t size = argument(*line, 2, 40);
      for (std::uint64_t i = 0; i < count; ++i) {
        shmlog::test::append_and_apply(w, state, item("p", state.items.size(), size));
        if (serving) service.poll();
      }
      say("appended " + state_fields(state) + " master=" + num(w.master_offset()));
    } else if (command == "snapshot") {
      const shmlog::snapshot_meta info = service.snapshot_now();
      say("snapshot offset=" + num(info.offset) + " published=" + num(service.published()) +
          " path=" + info.path.string());
    } else if (command == "serve") {
      serving = line->find(" on") != std::string::npos;
      say(std::string("serving ") + (serving ? "on" : "off"));
    } else if (command == "block-save") {
      state.block_after = argument(*line, 1, 0);
      state.orphan = line->find(" orphan") != std::string::npos;
      say("blocking bytes=" + num(*state.block_after));
    } else if (command == "wait") {
      const std::size_t readers = argument(*line, 1, 0);
      const std::uint64_t offset = argument(*line, 2, 0);
      const std::uint64_t ms = argument(*line, 3, 0);
      say("waited readers=" +
          num(w.wait_for_readers(readers, offset, std::chrono::milliseconds(ms))));
    } else if (command == "stats") {
      say("stats published=" + num(service.published()) + " in_progress=" +
          (service.in_progress() ? "1" : "0") + " master=" + num(w.master_offset()));
    } else if (command == "state") {
      say("state " + state_fields(state) + " master=" + num(w.master_offset()) + " " +
          history_fields(w.history()));
    } else {
      throw usage_error("unknown command: " + *line);
    }
  }
  say("result published=" + num(service.published()) + " master=" + num(w.master_offset()) + " " +
      state_fields(state));
  return exit_ok;
}

int run_replica(const std::string& name, int argc, char** argv) {
  const arguments a(argc, argv, {},
                    {"--snapshot-dir", "--pause-loads", "--pause-at", "--snapshot-timeout-ms",
                     "--max-backoff-ms", "--wait"});
  const std::uint64_t pause_loads = a.number("--pause-loads", 0);
  const std::uint64_t pause_at = a.number("--pause-at", 0);
  line_input input;
  list_state state;
  std::uint64_t load = 0;  // loads begun
  bool paused = false;     // in this load

  shmlog::replica_options options;
  options.snapshot_dir = a.text("--snapshot-dir", "");
  options.wait.mode = parse_wait_mode(a.text("--wait", "sleep"));
  options.label = "peer-replica";
  options.snapshot_timeout = std::chrono::milliseconds(a.number("--snapshot-timeout-ms", 60000));
  options.max_backoff = std::chrono::milliseconds(a.number("--max-backoff-ms", 200));
  options.on_event = [&](const shmlog::replica_event& e) {
    say("event " + std::string(shmlog::to_string(e.what)) + " offset=" + num(e.offset) +
        " load=" + num(load) + " message=" + e.message);
  };
  // Every load starts at byte 0. The first loads (--pause-loads) stop at the first report at
  // or past --pause-at bytes that is not the last, and wait for "resume": the test kills the
  // replica there, or makes the writer move on meanwhile, knowing exactly where the load is.
  options.on_load_progress = [&](std::uint64_t bytes, std::uint64_t total) {
    if (bytes == 0) {
      ++load;
      paused = false;
    }
    say("loading bytes=" + num(bytes) + " total=" + num(total) + " load=" + num(load));
    if (load > pause_loads || paused || bytes < pause_at || bytes >= total) return;
    paused = true;
    say("paused bytes=" + num(bytes) + " total=" + num(total) + " load=" + num(load));
    for (;;) {
      const std::optional<std::string> line = input.next(-1);
      if (!line) throw std::runtime_error("stdin closed while the load was paused");
      if (*line == "resume") break;
      throw usage_error("paused: only resume, not " + *line);
    }
    say("resumed load=" + num(load));
  };

  std::optional<shmlog::replica> attached;
  try {
    attached.emplace(name, state, options);
  } catch (const shmlog::error& e) {
    say(error_line(e));
    return exit_open_failed;
  }
  shmlog::replica& r = *attached;
  say("ready slot=" + num(r.log_reader().slot()) +
      " pid=" + num(static_cast<std::uint64_t>(::getpid())));
  const auto summary = [&] {
    const shmlog::replica_stats& s = r.stats();
    return state_fields(state) + " offset=" + num(r.offset()) + " replid=" + r.replid().str() +
           " loads=" + num(state.loads) + " full_resyncs=" + num(s.full_resyncs) +
           " partial_resyncs=" + num(s.partial_resyncs) + " laps=" + num(s.laps) +
           " rejected=" + num(s.snapshots_rejected) +
           " backlog_too_small=" + num(s.backlog_too_small);
  };

  bool held = false;
  for (;;) {
    if (!held) r.catch_up();
    std::optional<std::string> line = input.next(0);
    if (!line && !input.eof()) {
      if (!held) {
        r.wait(std::chrono::milliseconds(5));
        continue;
      }
      line = input.next(-1);  // held: nothing to do until told
    }
    if (!line) break;  // stdin closed
    const std::string command = first_word(*line);
    if (command == "sync") {
      // Apply records one at a time up to exactly `target`, so that the state can be compared
      // with the producer's at that offset.
      const std::uint64_t target = argument(*line, 1, 0);
      const auto deadline = steady::now() + std::chrono::seconds(20);
      while (r.offset() < target) {
        if (steady::now() > deadline) {
          say("result failed=sync_deadline " + summary());
          return exit_deadline;
        }
        if (r.catch_up(1) == 0 && r.offset() < target) r.wait(std::chrono::milliseconds(5));
      }
      say("state " + summary());
    } else if (command == "hold") {
      held = true;
      say("held offset=" + num(r.offset()));
    } else if (command == "go") {
      held = false;
      say("going offset=" + num(r.offset()));
    } else if (command == "state") {
      say("state " + summary());
    } else {
      throw usage_error("unknown command: " + *line);
    }
  }
  say("result " + summary());
  return exit_ok;
}

// --fault-kill / --fault-pause: the point, and what to do there.
std::optional<shmlog::detail::fault_point> kill_at;
std::optional<shmlog::detail::fault_point> pause_at;

shmlog::detail::fault_point parse_fault_point(const std::string& s) {
  using shmlog::detail::fault_point;
  for (fault_point p :
       {fault_point::history_change_half_done, fault_point::history_change_epoch_bumped,
        fault_point::snapshot_announcement_half_done, fault_point::segment_created,
        fault_point::membarrier, fault_point::slot_move_half_done, fault_point::seqlock_read_retry})
    if (shmlog::detail::to_string(p) == s) return p;
  throw usage_error("unknown fault point " + s);
}

bool on_fault_point(shmlog::detail::fault_point p) {
  if (kill_at == p) ::raise(SIGKILL);
  if (pause_at == p) {
    pause_at.reset();  // once
    say("paused at=" + std::string(shmlog::detail::to_string(p)));
    // Unbuffered, byte by byte: the role reads the rest of stdin after this returns.
    std::string line;
    char c;
    while (::read(STDIN_FILENO, &c, 1) == 1) {
      if (c != '\n') {
        line += c;
        continue;
      }
      if (line == "resume") break;
      line.clear();
    }
  }
  return false;
}

// Removes the fault options from argv and installs the hook they ask for.
std::vector<char*> take_fault_options(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--fault-kill" || arg == "--fault-pause") && i + 1 < argc) {
      (arg == "--fault-kill" ? kill_at : pause_at) = parse_fault_point(argv[++i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (kill_at || pause_at) shmlog::detail::set_fault_hook(on_fault_point);
  return rest;
}

int run(int argc, char** argv) {
  if (argc < 3) throw usage_error("usage: shmlog_test_peer ROLE NAME [options]");
  const std::string role = argv[1];
  const std::string name = argv[2];
  if (role == "writer") return run_writer(name, argc, argv);
  if (role == "hold-writer") return run_hold_writer(name, argc, argv);
  if (role == "reader") return run_reader(name, argc, argv);
  if (role == "hold-reader") return run_hold_reader(name, argc, argv);
  if (role == "waiter") return run_waiter(name, argc, argv);
  if (role == "producer") return run_producer(name, argc, argv);
  if (role == "replica") return run_replica(name, argc, argv);
  throw usage_error("unknown role " + role);
}

}  // namespace

int main(int argc, char** argv) {
  // Die with the test: a peer left behind by a crashed test would hold its log's roles.
  if (const char* parent = std::getenv("SHMLOG_PEER_PARENT")) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (std::to_string(::getppid()) != parent) return exit_deadline;  // the parent is gone
  }
  try {
    std::vector<char*> args = take_fault_options(argc, argv);
    return run(static_cast<int>(args.size()), args.data());
  } catch (const usage_error& e) {
    say(std::string("error code=usage message=") + e.what());
    return exit_usage;
  } catch (const std::exception& e) {
    say(std::string("error code=exception message=") + e.what());
    return exit_exception;
  }
}
