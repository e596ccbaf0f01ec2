// shmlog_instr: exactly N operations of one kind, for counting instructions with callgrind.
//
//   shmlog_instr [--op append|batch16|claim|poll_copy|poll_view|poll_empty] [--size BYTES]
//                [--count N] [--capacity BYTES]
//
// Each measured loop is a function of its own, never inlined, so that callgrind can collect
// only inside it and leave setup (creating the log, filling the ring for the polls) out:
//
//   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*instr_append_loop*'
//            shmlog_instr --op append --size 64 --count 100000
//
// Instructions per operation = collected Ir / N. That includes the loop's own few instructions
// per iteration (counter, branch, argument set-up); bench/perf/callgrind.sh also prints the
// inclusive cost of the public call alone. The polls run in rounds: fill part of the ring
// (not collected), poll it dry (collected), so that the reader is never lapped whatever N is.
// Prints a one-line summary to stderr and exits non-zero if an operation did not do its job.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "micro_common.h"
#include "shmlog/reader.h"
#include "shmlog/writer.h"

// Outside any anonymous namespace so that the demangled names are exactly
// shmlog_instr::instr_*_loop(...), which the callgrind patterns match.
namespace shmlog_instr {

[[gnu::noinline]] void instr_append_loop(shmlog::writer& w, std::span<const std::byte> payload,
                                         std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i)
    w.append(payload);
}

// n batches; the caller divides by n * batch.size() for instructions per record.
[[gnu::noinline]] void instr_batch_loop(shmlog::writer& w,
                                        std::span<const shmlog::record_ref> batch,
                                        std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i)
    w.append_batch(batch);
}

[[gnu::noinline]] void instr_claim_loop(shmlog::writer& w, std::size_t size, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    shmlog::claimed_record c = w.claim(size);
    std::memset(c.payload().data(), 0x5a, size);
    c.commit();
  }
}

// Return the records delivered, so that the caller can check every poll found one.
[[gnu::noinline]] std::uint64_t instr_poll_copy_loop(shmlog::reader& r,
                                                     std::vector<std::byte>& buffer,
                                                     std::uint64_t n) {
  std::uint64_t delivered = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    delivered += r.poll_copy(buffer).status == shmlog::poll_status::record;
  return delivered;
}

[[gnu::noinline]] std::uint64_t instr_poll_view_loop(shmlog::reader& r, std::uint64_t n) {
  std::uint64_t delivered = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    delivered += r.poll().status == shmlog::poll_status::record;
  return delivered;
}

// Polls with nothing to read: one turn of a reader's spin loop when it has caught up.
[[gnu::noinline]] std::uint64_t instr_poll_empty_loop(shmlog::reader& r, std::uint64_t n) {
  std::uint64_t empty = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    empty += r.poll().status == shmlog::poll_status::empty;
  return empty;
}

}  // namespace shmlog_instr

namespace {

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "shmlog_instr: %s\n"
               "usage: shmlog_instr [--op append|batch16|claim|poll_copy|poll_view|poll_empty]"
               " [--size BYTES] [--count N] [--capacity BYTES]\n",
               why);
  std::exit(2);
}

std::uint64_t parse_number(const char* flag, const char* text) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') usage((std::string("bad number for ") + flag).c_str());
  return v;
}

constexpr std::size_t batch_records = 16;

int run(std::string_view op, std::size_t size, std::uint64_t count, std::uint64_t capacity) {
  shmlog_bench::scoped_log log("instr", capacity);
  shmlog::writer& w = log.writer();
  // Errors from here on throw, so that the log is destroyed on the way out (exit() would not).
  if (size > w.max_payload())
    throw std::invalid_argument("--size exceeds the log's max payload (raise --capacity)");
  const std::vector<std::byte> payload = shmlog_bench::make_payload(size);
  const std::span<const std::byte> bytes(payload);
  std::uint64_t ops = count;
  bool ok = true;

  if (op == "append") {
    shmlog_instr::instr_append_loop(w, bytes, count);
  } else if (op == "batch16") {
    const std::vector<shmlog::record_ref> batch(batch_records,
                                                shmlog::record_ref{.payload = bytes});
    const std::uint64_t batches = count / batch_records;
    shmlog_instr::instr_batch_loop(w, batch, batches);
    ops = batches * batch_records;
  } else if (op == "claim") {
    shmlog_instr::instr_claim_loop(w, size, count);
  } else if (op == "poll_copy" || op == "poll_view") {
    shmlog::reader r =
        shmlog::reader::attach(w.mapped(), {.start = shmlog::start_position::latest()});
    std::vector<std::byte> buffer(size);
    // A quarter of the ring per round keeps the writer far from the reader's records.
    const std::uint64_t per_round =
        std::max<std::uint64_t>(1, w.capacity() / 4 / shmlog::record_frame_size(size));
    std::uint64_t delivered = 0;
    for (std::uint64_t done = 0; done < count;) {
      const std::uint64_t round = std::min(per_round, count - done);
      for (std::uint64_t i = 0; i < round; ++i)
        w.append(bytes);
      delivered += op == "poll_copy" ? shmlog_instr::instr_poll_copy_loop(r, buffer, round)
                                     : shmlog_instr::instr_poll_view_loop(r, round);
      done += round;
    }
    ok = delivered == count;
  } else if (op == "poll_empty") {
    shmlog::reader r =
        shmlog::reader::attach(w.mapped(), {.start = shmlog::start_position::latest()});
    ok = shmlog_instr::instr_poll_empty_loop(r, count) == count;
  }

  std::fprintf(stderr,
               "shmlog_instr: op=%.*s size=%zu ops=%" PRIu64 " master_offset=%" PRIu64 "%s\n",
               static_cast<int>(op.size()), op.data(), size, ops, w.master_offset(),
               ok ? "" : " FAILED: a poll did not return what it should");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view op = "append";
  std::size_t size = 64;
  std::uint64_t count = 100000;
  std::uint64_t capacity = shmlog_bench::default_capacity;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") usage("instruction-count driver");
    if (i + 1 >= argc) usage("missing value");
    const char* value = argv[++i];
    if (arg == "--op") {
      op = value;
    } else if (arg == "--size") {
      size = parse_number("--size", value);
    } else if (arg == "--count") {
      count = parse_number("--count", value);
    } else if (arg == "--capacity") {
      capacity = parse_number("--capacity", value);
    } else {
      usage("unknown option");
    }
  }
  constexpr std::string_view ops[] = {"append",    "batch16",   "claim",
                                      "poll_copy", "poll_view", "poll_empty"};
  if (std::find(std::begin(ops), std::end(ops), op) == std::end(ops)) usage("unknown --op");
  shmlog_bench::install_cleanup_handlers();
  try {
    return run(op, size, count, capacity);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmlog_instr: %s\n", e.what());
    return 1;
  }
}
