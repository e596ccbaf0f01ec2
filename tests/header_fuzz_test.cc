// Header fuzz (issue 8, "Keep it broken-proof"): every byte of the segment header, the reader
// area header and two reader slots flipped, one at a time, and every 64- and 32-bit field set to
// boundary values; then everything a user can do to a log with no writer alive is done to the
// damaged segment: inspect(), readers attaching at oldest / latest / an offset and polling,
// seeks, a writer taking over (plain and with a branching state) and appending, and the CLI.
//
// Each operation must work or fail with a shmlog::error that names the log. Poll results
// (empty, lapped, corrupt, history_changed) are fine; a record delivered must be exactly one
// that was appended at that offset. No crash, no sanitizer report, no other exception, and each
// case finishes within case_deadline (a watchdog thread aborts the run naming the case).
//
// Every case starts from the same valid segment: a 64 KiB ring wrapped more than once (so
// checkpoints, padding and a write intent ahead of the master offset exist), a history branch
// (replid2 and second_repl_offset set), a published snapshot announcement, a live reader in
// slot 0 and a slot 1 left by a reader that died. docs/operations.md, "Trying failures safely".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <vector>

#include "mapping.h"
#include "raw_segment.h"
#include "shmlog/shmlog.h"
#include "subprocess/subprocess.h"
#include "test_util.h"

namespace {

using namespace shmlog;
using namespace std::chrono_literals;
using shmlog::test::raw_segment;
using shmlog::test::scoped_log;
using shmlog::test::unique_log_name;

constexpr std::uint64_t ring_capacity = 64 * 1024;
constexpr std::uint32_t slot_count = 4;
constexpr std::uint64_t reader_area_at = header_size + ring_capacity;
constexpr std::uint64_t slot_at(std::uint32_t i) {
  return reader_area_at + sizeof(reader_area_header) + std::uint64_t{i} * sizeof(reader_slot);
}
// A guard against a hang, not a synchronisation: the watchdog aborts the run naming the case.
constexpr auto case_deadline = 10s;
// The CLI child of a case is killed (and the case fails) after this.
constexpr auto cli_deadline = 8s;
constexpr int max_polls = 10000;
constexpr int max_reported_failures = 25;

// ---------------------------------------------------------------------------------------------
// Watchdog: aborts the process, naming the case and operation, if a case runs past its deadline.

class watchdog {
 public:
  watchdog() : thread_([this] { run(); }) {}
  ~watchdog() {
    {
      std::lock_guard l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  void arm(const std::string& what) {
    std::lock_guard l(m_);
    what_ = what;
    op_.clear();
    deadline_ = std::chrono::steady_clock::now() + case_deadline;
    armed_ = true;
    cv_.notify_all();
  }
  void set_op(const std::string& op) {
    std::lock_guard l(m_);
    op_ = op;
  }
  void disarm() {
    std::lock_guard l(m_);
    armed_ = false;
  }
  // The CLI process a case is waiting for (0: none), killed before an abort so that a hung
  // child does not outlive the test.
  void set_child(pid_t pid) { child_.store(pid); }

 private:
  void run() {
    std::unique_lock l(m_);
    while (!stop_) {
      if (!armed_) {
        cv_.wait(l);
        continue;
      }
      cv_.wait_until(l, deadline_);
      if (!stop_ && armed_ && std::chrono::steady_clock::now() >= deadline_) {
        std::fprintf(stderr,
                     "header fuzz: case [%s] did not finish within %lld s (operation: %s)\n",
                     what_.c_str(), static_cast<long long>(case_deadline.count()), op_.c_str());
        std::fflush(stderr);
        if (const pid_t child = child_.load(); child > 0) ::kill(child, SIGKILL);
        std::abort();
      }
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool armed_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::string what_;
  std::string op_;
  std::atomic<pid_t> child_{0};
  std::thread thread_;  // last: starts once everything above is initialised
};

// ---------------------------------------------------------------------------------------------
// The fields of the fuzzed parts of the segment, by absolute offset in the segment.

struct field_def {
  std::string name;
  std::size_t at = 0;
  std::size_t size = 0;  // 4 or 8
};

std::vector<field_def> segment_fields() {
  std::vector<field_def> f;
  const auto add = [&](std::string name, std::size_t at, std::size_t size) {
    f.push_back({std::move(name), at, size});
  };
  const auto words = [&](const std::string& name, std::size_t at, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i)
      add(name + "[" + std::to_string(i) + "]", at + 8 * i, 8);
  };

  constexpr std::size_t d = offsetof(segment_header, descriptor);
  add("descriptor.magic", d + offsetof(segment_descriptor, magic), 8);
  add("descriptor.layout_version", d + offsetof(segment_descriptor, layout_version), 4);
  add("descriptor.header_size", d + offsetof(segment_descriptor, header_size), 4);
  add("descriptor.capacity", d + offsetof(segment_descriptor, capacity), 8);
  add("descriptor.reader_area_offset", d + offsetof(segment_descriptor, reader_area_offset), 8);
  add("descriptor.reader_area_size", d + offsetof(segment_descriptor, reader_area_size), 4);
  add("descriptor.reader_slot_count", d + offsetof(segment_descriptor, reader_slot_count), 4);
  add("descriptor.intent_chunk", d + offsetof(segment_descriptor, intent_chunk), 8);
  add("descriptor.max_payload", d + offsetof(segment_descriptor, max_payload), 8);
  add("descriptor.creation_time_ns", d + offsetof(segment_descriptor, creation_time_ns), 8);
  add("descriptor.writer_fence", d + offsetof(segment_descriptor, writer_fence), 4);
  add("descriptor.max_gating_wait_ns", d + offsetof(segment_descriptor, max_gating_wait_ns), 8);
  add("descriptor.descriptor_crc", d + offsetof(segment_descriptor, descriptor_crc), 4);

  constexpr std::size_t h = offsetof(segment_header, history);
  add("history.seq", h + offsetof(history_block, seq), 4);
  add("history.reserved", h + offsetof(history_block, reserved), 4);
  words("history.replid", h + offsetof(history_block, replid), history_id_size / 8);
  words("history.replid2", h + offsetof(history_block, replid2), history_id_size / 8);
  add("history.second_repl_offset", h + offsetof(history_block, second_repl_offset), 8);

  constexpr std::size_t w = offsetof(segment_header, writer);
  add("writer.pid", w + offsetof(writer_block, pid), 4);
  add("writer.generation", w + offsetof(writer_block, generation), 4);
  add("writer.start_time_ns", w + offsetof(writer_block, start_time_ns), 8);
  add("writer.recovered_torn_bytes", w + offsetof(writer_block, recovered_torn_bytes), 8);
  add("writer.fence", w + offsetof(writer_block, fence), 4);
  add("writer.open", w + offsetof(writer_block, open), 4);
  add("writer.gating_waits", w + offsetof(writer_block, gating_waits), 8);
  add("writer.gating_laps", w + offsetof(writer_block, gating_laps), 8);

  add("master_offset", offsetof(segment_header, master_offset), 8);
  add("write_intent", offsetof(segment_header, write_intent), 8);
  add("history_epoch", offsetof(segment_header, history_epoch), 8);
  add("wake_seq", offsetof(segment_header, wake_seq), 4);
  words("checkpoints", offsetof(segment_header, checkpoints), checkpoint_count);

  constexpr std::size_t s = offsetof(segment_header, snapshot);
  add("snapshot.seq", s + offsetof(snapshot_block, seq), 4);
  add("snapshot.reserved", s + offsetof(snapshot_block, reserved), 4);
  add("snapshot.generation", s + offsetof(snapshot_block, generation), 8);
  add("snapshot.offset", s + offsetof(snapshot_block, offset), 8);
  add("snapshot.requests_served", s + offsetof(snapshot_block, requests_served), 8);
  add("snapshot.created_ns", s + offsetof(snapshot_block, created_ns), 8);
  add("snapshot.save_ns", s + offsetof(snapshot_block, save_ns), 8);
  add("snapshot.bytes", s + offsetof(snapshot_block, bytes), 8);
  words("snapshot.replid", s + offsetof(snapshot_block, replid), history_id_size / 8);
  words("snapshot.path", s + offsetof(snapshot_block, path), snapshot_path_size / 8);

  constexpr std::size_t r = reader_area_at;
  add("reader_area.sleep_epoch", r + offsetof(reader_area_header, sleep_epoch), 4);
  add("reader_area.gating_readers", r + offsetof(reader_area_header, gating_readers), 4);
  add("reader_area.sync_full", r + offsetof(reader_area_header, sync_full), 8);
  add("reader_area.sync_partial_ok", r + offsetof(reader_area_header, sync_partial_ok), 8);
  add("reader_area.sync_partial_err", r + offsetof(reader_area_header, sync_partial_err), 8);
  add("reader_area.lapped_total", r + offsetof(reader_area_header, lapped_total), 8);
  add("reader_area.snapshot_requests", r + offsetof(reader_area_header, snapshot_requests), 8);
  add("reader_area.backlog_too_small", r + offsetof(reader_area_header, backlog_too_small), 8);

  for (std::uint32_t i = 0; i < 2; ++i) {
    const std::string n = i == 0 ? "slot0(live reader)." : "slot1(dead reader).";
    const std::size_t at = slot_at(i);
    add(n + "offset", at + offsetof(reader_slot, offset), 8);
    add(n + "state", at + offsetof(reader_slot, state), 4);
    add(n + "move_seq", at + offsetof(reader_slot, move_seq), 4);
    add(n + "epoch", at + offsetof(reader_slot, epoch), 8);
    add(n + "holds_from", at + offsetof(reader_slot, holds_from), 8);
    add(n + "heartbeat_ns", at + offsetof(reader_slot, heartbeat_ns), 8);
    add(n + "records", at + offsetof(reader_slot, records), 8);
    add(n + "lapped", at + offsetof(reader_slot, lapped), 8);
    add(n + "bytes_lost", at + offsetof(reader_slot, bytes_lost), 8);
    add(n + "pid", at + offsetof(reader_slot, pid), 4);
    add(n + "gating", at + offsetof(reader_slot, gating), 4);
    add(n + "attach_time_ns", at + offsetof(reader_slot, attach_time_ns), 8);
    words(n + "label", at + offsetof(reader_slot, label), 2);
    add(n + "last_lap_time_ns", at + offsetof(reader_slot, last_lap_time_ns), 8);
  }
  return f;
}

// "history.seq byte 1 of 4", or "no field (padding) after master_offset".
std::string byte_name(const std::vector<field_def>& fields, std::size_t at) {
  const field_def* before = nullptr;
  for (const field_def& f : fields) {
    if (at >= f.at && at < f.at + f.size)
      return f.name + " byte " + std::to_string(at - f.at) + " of " + std::to_string(f.size);
    if (f.at + f.size <= at && (before == nullptr || f.at > before->at)) before = &f;
  }
  return "no field (reserved or padding) after " + (before ? before->name : std::string("start"));
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Records: text payloads (so `shmlog tail` output can be checked line by line) whose length
// varies with the sequence number, with the occasional empty and multi-chunk record.

std::string payload_text(char history, std::uint64_t seq) {
  std::size_t length = 1 + (seq * 7919) % 500;
  if (seq % 41 == 0) length = 0;
  if (seq % 23 == 0) length = 2000 + (seq * 37) % 3000;
  std::string s = std::string(1, history) + std::to_string(seq) + ":";
  for (std::size_t i = s.size(); i < length; ++i)
    s += static_cast<char>('a' + (seq * 7 + i) % 26);
  s.resize(length);
  return s;
}

struct record_entry {
  record_type type = default_record_type;
  std::string payload;
};
// Every record ever appended, by offset (a branch appends a second record at some offsets).
using record_book = std::multimap<std::uint64_t, record_entry>;

bool in_book(const record_book& book, std::uint64_t offset, record_type type,
             std::string_view payload) {
  const auto [first, last] = book.equal_range(offset);
  for (auto it = first; it != last; ++it)
    if (it->second.type == type && it->second.payload == payload) return true;
  return false;
}

std::string status_name(poll_status s) {
  switch (s) {
    case poll_status::record:
      return "record";
    case poll_status::empty:
      return "empty";
    case poll_status::lapped:
      return "lapped";
    case poll_status::corrupt:
      return "corrupt";
    case poll_status::history_changed:
      return "history_changed";
    case poll_status::too_small:
      return "too_small";
  }
  return "status " + std::to_string(static_cast<int>(s));
}

// ---------------------------------------------------------------------------------------------
// Running the CLI (its JSON is checked with nlohmann::json::accept: RFC 8259, UTF-8 included).

struct cli_result {
  int status = -1;  // exit status, or -1
  int signal = 0;   // the signal that ended it, or 0
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs the shmlog tool with stdin from /dev/null, collecting stdout and stderr, killing it at
// cli_deadline. support/subprocess starts it with posix_spawn: no fork of this (possibly
// sanitizer-sized) process.
cli_result run_cli(const std::vector<std::string>& args, watchdog& dog) {
  std::vector<std::string> argv{SHMLOG_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  shmlog::subprocess::child c({.argv = std::move(argv),
                               .stdin_mode = shmlog::subprocess::stream_mode::null,
                               .stderr_mode = shmlog::subprocess::stream_mode::pipe});
  dog.set_child(c.pid());
  cli_result r;
  if (!c.communicate({}, std::chrono::steady_clock::now() + cli_deadline)) {
    r.timed_out = true;
    c.kill_and_reap();
  }
  dog.set_child(0);
  r.out = c.out().transcript();
  r.err = c.err().transcript();
  if (WIFEXITED(c.status())) r.status = WEXITSTATUS(c.status());
  if (WIFSIGNALED(c.status())) r.signal = WTERMSIG(c.status());
  return r;
}

// At most 300 bytes of `s`, bytes that are not printable ASCII as \xNN.
std::string abbreviated(std::string_view s) {
  constexpr std::size_t limit = 300;
  std::string out;
  for (const char c : s.substr(0, limit)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F && c != '\\') {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  if (s.size() > limit) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

// ---------------------------------------------------------------------------------------------

struct mutation {
  std::string what;  // the case, as failure messages name it
  std::size_t at = 0;
  std::size_t size = 1;
  std::uint64_t value = 0;  // the bytes stored (size 4 or 8), or the XOR mask (size 1)
  bool flip = false;
  bool cli = false;  // also run the CLI for this case
};

class header_fuzz : public ::testing::Test {
 protected:
  void SetUp() override {
    build_segment();
    if (HasFatalFailure()) return;
    raw_ = std::make_unique<raw_segment>(log_.name());
    ASSERT_EQ(raw_->size(), segment_size_for(ring_capacity, slot_count));
    pristine_.assign(raw_->base(), raw_->base() + raw_->size());
    fields_ = segment_fields();
    // The unmutated segment must pass every operation, or failures below mean nothing.
    dog_.emplace();
    run_case({.what = "no mutation (baseline)", .cli = true});
    ASSERT_EQ(failures_, 0) << "the valid segment already fails";
    ASSERT_GT(baseline_records_, 100u);
  }

  void TearDown() override {
    dog_.reset();
    if (failures_ > max_reported_failures)
      ADD_FAILURE() << failures_ << " failures in all, " << max_reported_failures
                    << " of them reported above";
  }

  // The valid starting segment (see the top of this file).
  void build_segment() {
    const std::string& name = log_.name();
    std::uint64_t seq = 0;
    history_id first_id;
    std::vector<std::uint64_t> first_offsets;
    std::uint64_t first_master = 0;
    {
      writer w = writer::create(name, {.capacity = ring_capacity, .reader_slots = slot_count});
      first_id = w.history().replid;
      while (w.master_offset() < ring_capacity + ring_capacity / 4) {
        const std::string p = payload_text('A', ++seq);
        const auto type = static_cast<record_type>(1 + seq % 3);
        const std::uint64_t at = w.append(p, type);
        book_.insert({at, {type, p}});
        first_offsets.push_back(at);
      }
      first_master = w.master_offset();
    }
    // The producer's state reflects the first history only up to a record about 5 KB before
    // its end: the log branches there (replid2 = the first history, master offset goes back).
    std::uint64_t branch_at = 0;
    for (std::uint64_t o : first_offsets)
      if (o + 5000 <= first_master) branch_at = o;
    writer w = writer::open(name, {.state_replid = first_id, .state_offset = branch_at});
    ASSERT_EQ(w.takeover().plan.action, history_action::branch);
    ASSERT_TRUE(w.takeover().plan.rewinds);
    std::vector<std::uint64_t> second_offsets;
    std::vector<std::size_t> second_sizes;
    while (w.master_offset() < first_master + 8192) {
      const std::string p = payload_text('B', ++seq);
      const std::uint64_t at = w.append(p);
      book_.insert({at, {default_record_type, p}});
      second_offsets.push_back(at);
      second_sizes.push_back(p.size());
    }
    const history_state hs = w.history();
    ASSERT_EQ(hs.replid2, first_id);
    ASSERT_EQ(hs.second_repl_offset, branch_at);
    second_id_ = hs.replid;
    first_id_ = first_id;
    second_repl_offset_ = branch_at;

    // A published snapshot announcement (the file itself is never loaded by these tests).
    snapshot_meta a;
    a.generation = 1;
    a.offset = second_offsets[second_offsets.size() / 2];
    a.requests_served = 1;
    a.created_ns =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    a.save_ns = 1'234'567;
    a.payload_bytes = 4321 - snapshot_header_size;
    a.replid = second_id_;
    a.path = "/tmp/shmlog-header-fuzz-no-such-dir/" + name + ".snapshot";
    w.announce_snapshot(a);

    // Slot 0: a live reader for the whole test, that resynchronised within the shared prefix
    // (sync_partial_ok), was refused once (sync_partial_err) and read a few records.
    holder_.emplace(reader::attach(name, {.start = start_position::latest(), .label = "holder"}));
    ASSERT_TRUE(holder_->resync(first_id, branch_at).is_partial());
    ASSERT_FALSE(holder_->resync(history_id::random(), 8).is_partial());
    std::vector<std::byte> buffer;
    for (int i = 0; i < 3; ++i)
      ASSERT_EQ(holder_->poll_copy(buffer).status, poll_status::record);

    // Slot 1: a reader that read a few records and died without giving its slot back.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      int code = 0;
      try {
        reader r = reader::attach(name, {.start = start_position::oldest(), .label = "dead"});
        for (int i = 0; i < 5; ++i)
          if (r.poll_copy(buffer).status != poll_status::record) code = 2;
        if (r.slot() != 1) code = 3;
      } catch (...) {
        code = 1;
      }
      ::_exit(code);  // no destructors: the slot stays as a dead reader leaves it
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    // w closes cleanly here.

    // Offsets worth seeking to, from the valid log.
    const log_info info = inspect(name);
    master_ = info.window.master_offset;
    const std::size_t middle = second_offsets.size() / 3;
    std::size_t inside = middle;
    while (inside < second_sizes.size() && second_sizes[inside] < 16)
      ++inside;
    ASSERT_LT(inside, second_sizes.size());
    attach_at_ = second_offsets[middle];
    // A record near the end that the master offset could plausibly be set into: its start and
    // its ninth byte in one intent chunk, so that no checkpoint lies between them.
    for (std::size_t i = second_offsets.size(); i-- > 0;) {
      const std::uint64_t at = second_offsets[i];
      if (second_sizes[i] >= 8 && at % (ring_capacity / 16) + 8 < ring_capacity / 16) {
        record_start_ = at;
        break;
      }
    }
    ASSERT_NE(record_start_, 0u);
    branch_target_ = second_offsets[second_offsets.size() - 3];
    seek_targets_ = {info.window.first_byte_offset,
                     attach_at_,
                     second_offsets[inside] + 8,  // inside a record
                     branch_at,
                     master_,
                     master_ + 8,
                     0,
                     ring_capacity,
                     ring_capacity - 8,
                     max_log_offset,
                     ~std::uint64_t{7}};
  }

  // --- failures -------------------------------------------------------------------------

  void fail(const std::string& op, const std::string& detail) {
    if (++failures_ <= max_reported_failures)
      ADD_FAILURE() << "case [" << case_->what << "], operation [" << op << "]: " << detail;
  }

  void check_error(const std::string& op, const shmlog::error& e) {
    const std::string msg = e.what();
    if (verbose_) std::fprintf(stderr, "  %s: %s\n", op.c_str(), msg.c_str());
    if (msg.empty() || msg.find("'" + log_.name() + "'") == std::string::npos)
      fail(op, "shmlog::error (" + std::string(to_string(e.code())) +
                   ") whose message does not name the log: \"" + msg + "\"");
  }

  // Runs f, which may throw shmlog::error (checked to be clear) but nothing else.
  template <class F>
  void guarded(const std::string& op, F&& f) {
    dog_->set_op(op);
    try {
      f();
    } catch (const shmlog::error& e) {
      check_error(op, e);
    } catch (const std::exception& e) {
      fail(op, std::string("threw ") + typeid(e).name() + ": " + e.what());
    } catch (...) {
      fail(op, "threw something that is not a std::exception");
    }
  }

  // --- operations -------------------------------------------------------------------------

  // Checks one delivered record against everything ever appended (and `extra`).
  bool check_record(const std::string& op, reader& r, const record_view& v,
                    const record_book* extra) {
    const std::string payload(v.text());
    if (!in_book(book_, v.offset, v.type, payload) &&
        (extra == nullptr || !in_book(*extra, v.offset, v.type, payload))) {
      fail(op, "delivered a record that was never appended: offset " + std::to_string(v.offset) +
                   ", type " + std::to_string(v.type) + ", " + std::to_string(payload.size()) +
                   " bytes \"" + abbreviated(payload) + "\"");
      return false;
    }
    if (v.next_offset != v.offset + record_frame_size(payload.size()) ||
        r.offset() != v.next_offset) {
      fail(op, "record at " + std::to_string(v.offset) + " has next_offset " +
                   std::to_string(v.next_offset) + ", reader offset " + std::to_string(r.offset()));
      return false;
    }
    return true;
  }

  // Polls to the end of the log (empty), reacting to each other result as an application
  // would; a static log must reach its end within max_polls.
  void drain(const std::string& op, reader& r, bool copy, const record_book* extra = nullptr,
             std::size_t* records = nullptr) {
    std::vector<std::byte> buffer;
    for (int i = 0; i < max_polls; ++i) {
      const poll_result p = copy ? r.poll_copy(buffer) : r.poll();
      switch (p.status) {
        case poll_status::record:
          if (!check_record(op, r, p.record, extra)) return;
          if (records) ++*records;
          break;
        case poll_status::empty:
          return;
        case poll_status::lapped:
          r.seek_oldest();
          break;
        case poll_status::corrupt:
          r.skip_corruption();
          break;
        case poll_status::history_changed:
          if (!r.resync(r.replid(), r.offset()).is_partial()) return;
          break;
        case poll_status::too_small:  // poll_copy(span) only
          ADD_FAILURE() << "too_small from poll() or poll_copy(vector)";
          return;
      }
    }
    fail(op, "no end of the log after " + std::to_string(max_polls) + " polls (offset " +
                 std::to_string(r.offset()) + ")");
  }

  void op_inspect() {
    guarded("inspect", [&] {
      const log_info i = inspect(log_.name());
      if (i.window.first_byte_offset > i.window.master_offset ||
          i.window.master_offset - i.window.first_byte_offset > i.capacity)
        fail("inspect", "window [" + std::to_string(i.window.first_byte_offset) + ", " +
                            std::to_string(i.window.master_offset) + "] is not within a ring");
    });
  }

  void op_readers() {
    guarded("reader::attach oldest + poll_copy", [&] {
      reader r = reader::attach(log_.name(), {.start = start_position::oldest()});
      std::size_t n = 0;
      drain("reader::attach oldest + poll_copy", r, true, nullptr, &n);
      if (case_->what.starts_with("no mutation")) baseline_records_ = n;
    });
    guarded("reader::attach latest + seek", [&] {
      reader r = reader::attach(log_.name(), {.start = start_position::latest()});
      for (std::uint64_t target : seek_targets_) {
        const std::string op = "seek(" + std::to_string(target) + ")";
        guarded(op, [&] {
          r.seek(target);
          if (r.offset() != target) fail(op, "stands at " + std::to_string(r.offset()));
          std::vector<std::byte> buffer;
          for (int i = 0; i < 3; ++i) {
            const poll_result p = r.poll_copy(buffer);
            if (p.status != poll_status::record) break;
            if (!check_record(op, r, p.record, nullptr)) break;
          }
        });
      }
    });
    guarded("reader::attach latest + resync", [&] {
      reader r = reader::attach(log_.name(), {.start = start_position::latest()});
      // PSYNC as a replica of each history would: the current one, the previous one within
      // the shared prefix, and no history.
      r.resync(second_id_, attach_at_);
      r.resync(first_id_, second_repl_offset_);
      r.resync(std::nullopt, 0);
      r.continue_after_load(second_id_, seek_targets_.front());
    });
    const std::string at = "reader::attach at " + std::to_string(attach_at_) + " + poll + wait";
    guarded(at, [&] {
      reader r = reader::attach(log_.name(), {.start = start_position::at(attach_at_),
                                              .wait = {.mode = wait_mode::sleep}});
      drain(at, r, false);
      // At the end of a log nobody writes: the futex sleep, with the header's wake words.
      r.wait(100us);
    });
  }

  void check_cli(const std::string& op, const cli_result& r, std::string_view command,
                 std::initializer_list<int> allowed) {
    const std::string said =
        "status " + std::to_string(r.status) + ", stderr \"" + abbreviated(r.err) + "\"";
    if (r.timed_out)
      return fail(op,
                  "did not finish within " + std::to_string(cli_deadline.count()) + " s; " + said);
    if (r.signal != 0)
      return fail(op, "killed by signal " + std::to_string(r.signal) + "; " + said);
    if (r.err.find("Sanitizer") != std::string::npos ||
        r.err.find("runtime error") != std::string::npos)
      return fail(op, "sanitizer report: " + abbreviated(r.err));
    if (std::find(allowed.begin(), allowed.end(), r.status) == allowed.end())
      return fail(op, "unexpected exit " + said);
    const std::string prefix = "shmlog " + std::string(command) + ": ";
    if (r.status == 1) {
      const bool one_line = !r.err.empty() && r.err.find('\n') == r.err.size() - 1;
      if (!one_line || !r.err.starts_with(prefix) ||
          r.err.find("'" + log_.name() + "'") == std::string::npos ||
          r.err.find("unexpected error") != std::string::npos)
        fail(op, "failed without one clear line naming the log: " + said);
    } else if (r.status != 0 && !r.err.starts_with(prefix)) {
      fail(op, "stderr does not start with \"" + prefix + "\": " + said);
    }
  }

  void op_cli() {
    const std::string& name = log_.name();
    dog_->set_op("shmlog info");
    {
      const cli_result r = run_cli({"info", name}, *dog_);
      check_cli("shmlog info", r, "info", {0, 1});
      if (r.status == 0) {
        const bool printable = std::all_of(r.out.begin(), r.out.end(), [](char c) {
          return c == '\n' || (c >= 0x20 && c < 0x7F);
        });
        if (!r.out.starts_with("# Log\n") || !printable || !r.err.empty())
          fail("shmlog info", "bad text report: \"" + abbreviated(r.out) + "\", stderr \"" +
                                  abbreviated(r.err) + "\"");
      }
    }
    dog_->set_op("shmlog info --json");
    {
      const cli_result r = run_cli({"info", name, "--json"}, *dog_);
      check_cli("shmlog info --json", r, "info", {0, 1});
      if (r.status == 0 && !nlohmann::json::accept(r.out))
        fail("shmlog info --json", "not valid JSON: \"" + abbreviated(r.out) + "\"");
    }
    dog_->set_op("shmlog tail --from oldest");
    {
      const std::string op = "shmlog tail --from oldest --count 5000 --print-offsets";
      const cli_result r =
          run_cli({"tail", name, "--from", "oldest", "--count", "5000", "--print-offsets"}, *dog_);
      check_cli(op, r, "tail", {0, 1, 3, 4, 5});
      std::istringstream lines(r.out);
      std::size_t n = 0;
      for (std::string line; std::getline(lines, line); ++n) {
        const std::size_t tab = line.find('\t');
        std::uint64_t offset = 0;
        const bool parsed = tab != std::string::npos && tab > 0 &&
                            std::all_of(line.begin(), line.begin() + static_cast<long>(tab),
                                        [](char c) { return c >= '0' && c <= '9'; });
        if (parsed) offset = std::stoull(line.substr(0, tab));
        const std::string payload = parsed ? line.substr(tab + 1) : std::string();
        bool known = false;
        const auto [first, last] = book_.equal_range(offset);
        for (auto it = first; parsed && it != last; ++it)
          known = known || it->second.payload == payload;
        if (!known) {
          fail(op, "printed line " + std::to_string(n) + " that is no appended record: \"" +
                       abbreviated(line) + "\"");
          break;
        }
      }
    }
  }

  // Takes the writer role with `options`. A refusal must leave the header and ring as they
  // were; a takeover must append records that a reader attached at the latest offset gets
  // back exactly, and a reader from the oldest record must see nothing never appended.
  void op_writer(const std::string& op, const writer_options& options) {
    dog_->set_op(op);
    const std::size_t front = header_size + ring_capacity;
    const std::vector<std::byte> before(raw_->base(), raw_->base() + front);
    std::optional<writer> w;
    try {
      w.emplace(writer::open(log_.name(), options));
    } catch (const shmlog::error& e) {
      check_error(op, e);
      if (std::memcmp(before.data(), raw_->base(), front) != 0)
        fail(op, "refused the log (" + std::string(e.what()) + ") but changed its header or ring");
      return;
    } catch (const std::exception& e) {
      return fail(op, std::string("threw ") + typeid(e).name() + ": " + e.what());
    }
    const std::string appended_op = op + " + append records + read them back";
    guarded(appended_op, [&] {
      w->wait_for_readers(1, w->master_offset(), 0ns);
      reader latest = reader::attach(log_.name(), {.start = start_position::latest()});
      if (latest.offset() != w->master_offset())
        fail(appended_op, "reader at latest stands at " + std::to_string(latest.offset()) +
                              ", the writer at " + std::to_string(w->master_offset()));
      record_book appended;
      std::vector<std::uint64_t> offsets;
      // More than a chunk: past any record the takeover offset may cut, and past a checkpoint.
      const std::uint64_t until = w->master_offset() + ring_capacity / 16 + 8;
      for (std::uint64_t k = 0; w->master_offset() < until; ++k) {
        const std::string p = payload_text('N', 1000 + k);
        const std::uint64_t at = w->append(p, 7);
        appended.insert({at, {7, p}});
        offsets.push_back(at);
      }
      std::vector<std::byte> buffer;
      for (std::uint64_t at : offsets) {
        const poll_result p = latest.poll_copy(buffer);
        if (p.status != poll_status::record || p.record.offset != at) {
          fail(appended_op,
               "expected the record appended at " + std::to_string(at) + ", poll said " +
                   status_name(p.status) + " at offset " + std::to_string(latest.offset()) +
                   (p.status == poll_status::corrupt ? std::string(": ") + p.corruption.reason
                                                     : std::string()));
          break;
        }
        if (!check_record(appended_op, latest, p.record, &appended)) break;
      }
      reader oldest = reader::attach(log_.name(), {.start = start_position::oldest()});
      drain(op + " + reader from oldest", oldest, true, &appended);
    });
  }

  // --- cases ------------------------------------------------------------------------------

  void restore() { std::memcpy(raw_->base(), pristine_.data(), pristine_.size()); }

  void apply(const mutation& m) {
    if (m.what.starts_with("no mutation")) return;
    if (m.flip) {
      raw_->base()[m.at] ^= static_cast<std::byte>(m.value);
    } else if (m.size == 4) {
      raw_->poke(m.at, static_cast<std::uint32_t>(m.value));
    } else {
      raw_->poke(m.at, m.value);
    }
  }

  void run_case(const mutation& m) {
    if (verbose_) std::fprintf(stderr, "case %s\n", m.what.c_str());
    case_ = &m;
    dog_->arm(m.what);
    restore();
    apply(m);
    op_inspect();
    op_readers();
    if (m.cli) guarded("shmlog CLI", [&] { op_cli(); });
    op_writer("writer::open", {});
    restore();
    apply(m);
    op_writer("writer::open branching at " + std::to_string(branch_target_),
              {.state_replid = second_id_, .state_offset = branch_target_});
    restore();
    dog_->disarm();
    case_ = nullptr;
  }

  // (a) Every byte in [from, to) XORed with 0xFF, one at a time; the CLI for every 8th.
  void flip_bytes(std::size_t from, std::size_t to) {
    for (std::size_t at = from; at < to; ++at) {
      mutation m;
      m.what = "byte " + hex(at) + " (" + byte_name(fields_, at) + ") ^= 0xff";
      m.at = at;
      m.flip = true;
      m.value = 0xFF;
      m.cli = (at - from) % 8 == 0;
      run_case(m);
    }
  }

  // (b) Every field in [from, to) set to each boundary value (the CLI for those), and to
  // near misses a sanity check might let pass: its valid value moved by one step either way,
  // and (64-bit fields) the start of a record near the end of the log and the offset 8 bytes
  // into it.
  void set_fields(std::size_t from, std::size_t to) {
    for (const field_def& f : fields_) {
      if (f.at < from || f.at >= to) continue;
      std::uint64_t old = 0;
      std::memcpy(&old, pristine_.data() + f.at, f.size);
      std::vector<std::pair<std::uint64_t, bool>> values;
      if (f.size == 8) {
        values = {{0, true},
                  {~std::uint64_t{0}, true},
                  {std::uint64_t{1} << 63, true},
                  {ring_capacity, true},
                  {ring_capacity - 8, true},
                  {old + 8, false},
                  {old - 8, false},
                  {record_start_, false},
                  {record_start_ + 8, false}};
      } else {
        values = {{0, true},
                  {0xFFFFFFFFu, true},
                  {1, true},
                  {0x80000000u, true},
                  {(old + 1) & 0xFFFFFFFFu, false}};
      }
      for (const auto& [value, cli] : values) {
        mutation m;
        m.what = f.name + " (at " + hex(f.at) + ", was " + hex(old) + ") = " + hex(value);
        m.at = f.at;
        m.size = f.size;
        m.value = value;
        m.cli = cli;
        run_case(m);
      }
    }
  }

  scoped_log log_{unique_log_name("fuzz")};
  record_book book_;
  history_id first_id_;
  history_id second_id_;
  std::uint64_t second_repl_offset_ = 0;
  std::uint64_t master_ = 0;
  std::uint64_t attach_at_ = 0;
  std::uint64_t record_start_ = 0;
  std::uint64_t branch_target_ = 0;
  std::vector<std::uint64_t> seek_targets_;
  std::optional<reader> holder_;
  std::unique_ptr<raw_segment> raw_;
  std::vector<std::byte> pristine_;
  std::vector<field_def> fields_;
  std::optional<watchdog> dog_;
  const mutation* case_ = nullptr;
  int failures_ = 0;
  // SHMLOG_FUZZ_VERBOSE=1: print every case and every error it met (to review the messages).
  const bool verbose_ = std::getenv("SHMLOG_FUZZ_VERBOSE") != nullptr;
  std::size_t baseline_records_ = 0;
};

constexpr std::size_t header_end = sizeof(segment_header);

// (a) byte flips, one gtest case per part of the header so that ctest -j can spread them.
TEST_F(header_fuzz, DescriptorBytesFlipped) {
  flip_bytes(offsetof(segment_header, descriptor), offsetof(segment_header, history));
}
TEST_F(header_fuzz, HistoryBytesFlipped) {
  flip_bytes(offsetof(segment_header, history), offsetof(segment_header, writer));
}
TEST_F(header_fuzz, WriterAndOffsetBytesFlipped) {
  flip_bytes(offsetof(segment_header, writer), offsetof(segment_header, checkpoints));
}
TEST_F(header_fuzz, CheckpointBytesFlipped) {
  flip_bytes(offsetof(segment_header, checkpoints), offsetof(segment_header, snapshot));
}
TEST_F(header_fuzz, SnapshotBlockBytesFlipped) {
  flip_bytes(offsetof(segment_header, snapshot), header_end);
}
TEST_F(header_fuzz, ReaderAreaAndSlotBytesFlipped) {
  flip_bytes(reader_area_at, slot_at(2));
}

// (b) fields set to boundary values.
TEST_F(header_fuzz, DescriptorHistoryAndWriterFieldsSet) {
  set_fields(0, offsetof(segment_header, master_offset));
}
TEST_F(header_fuzz, OffsetAndCheckpointFieldsSet) {
  set_fields(offsetof(segment_header, master_offset), offsetof(segment_header, snapshot));
}
TEST_F(header_fuzz, SnapshotBlockFieldsSet) {
  set_fields(offsetof(segment_header, snapshot), header_end);
}
TEST_F(header_fuzz, ReaderAreaAndSlotFieldsSet) {
  set_fields(reader_area_at, slot_at(2));
}

}  // namespace
