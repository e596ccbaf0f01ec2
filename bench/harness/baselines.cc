// The baselines' rows of the transport table (table.h): Boost.Interprocess message_queue, a
// pipe and a Unix socket per reader, and the simple SPSC ring. shmlog_bench adds them with
// add_baselines(); the shmlog_bench_core library (and so `shmlog bench`) has none of them.
#include "baselines.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <fstream>
#include <stdexcept>

#include "roles.h"
#include "table.h"

namespace shmlog::bench {

namespace {

// --- set-up -----------------------------------------------------------------------------------

channel set_up_boost_mq(const case_config& c, const std::string& base, case_resources& res,
                        json_object& j) {
  namespace bip = boost::interprocess;
  // The same byte budget as the shmlog ring, as whole messages: capacity / B, kept within
  // [16, 4096] messages (Boost preallocates every slot).
  const std::uint64_t depth = std::clamp<std::uint64_t>(c.capacity / c.record_bytes, 16, 4096);
  j.set_u64("queue_depth", depth);
  std::vector<std::string> names;
  for (unsigned i = 0; i < c.readers; ++i) {
    const std::string q = base + "-mq" + std::to_string(i);
    bip::message_queue::remove(q.c_str());
    res.undo.push_back([q] { bip::message_queue::remove(q.c_str()); });
    names.push_back(q);
    bip::message_queue(bip::create_only, q.c_str(), depth, c.record_bytes);
  }
  return {.writer = {.role = "writer", .args = {{"queues", joined(names)}}},
          .readers = readers_with(c, "queue", names)};
}

int read_pipe_max_size() {
  std::ifstream f("/proc/sys/fs/pipe-max-size");
  int n = 0;
  return (f >> n) ? n : (1 << 20);
}

// A pipe or a socketpair per reader; the writer inherits every write end, each reader its read
// end.
channel set_up_streams(const case_config& c, case_resources& res, json_object& j, bool pipes) {
  std::vector<int> write_ends;
  std::vector<int> read_ends;
  for (unsigned i = 0; i < c.readers; ++i) {
    int fds[2];
    if (pipes) {
      if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
      read_ends.push_back(fds[0]);
      write_ends.push_back(fds[1]);
      // The same byte budget as the shmlog ring, up to what an unprivileged process may
      // ask for (/proc/sys/fs/pipe-max-size, 1 MiB by default).
      const int want = static_cast<int>(
          std::min<std::uint64_t>(c.capacity, static_cast<std::uint64_t>(read_pipe_max_size())));
      const int got = ::fcntl(fds[1], F_SETPIPE_SZ, want);
      j.set_u64("pipe_bytes",
                static_cast<std::uint64_t>(got > 0 ? got : ::fcntl(fds[1], F_GETPIPE_SZ)));
    } else {
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
        throw std::runtime_error("socketpair failed");
      write_ends.push_back(fds[0]);
      read_ends.push_back(fds[1]);
      // Asked for the ring's size; the kernel caps it at net.core.wmem_max / rmem_max.
      const int want = static_cast<int>(std::min<std::uint64_t>(c.capacity, 1u << 30));
      ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
      ::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
      int got = 0;
      socklen_t len = sizeof got;
      ::getsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &got, &len);
      j.set_u64("socket_sndbuf_bytes", static_cast<std::uint64_t>(got));
    }
    res.fds.push_back(fds[0]);
    res.fds.push_back(fds[1]);
  }
  std::vector<std::string> writes;
  std::vector<std::string> reads;
  for (const int fd : write_ends)
    writes.push_back(std::to_string(fd));
  for (const int fd : read_ends)
    reads.push_back(std::to_string(fd));
  return {.writer = {.role = "writer", .args = {{"fds", joined(writes)}}, .fds = write_ends},
          .readers = readers_with(c, "fd", reads, read_ends)};
}

channel set_up_pipe(const case_config& c, const std::string&, case_resources& res, json_object& j) {
  return set_up_streams(c, res, j, true);
}

channel set_up_socket(const case_config& c, const std::string&, case_resources& res,
                      json_object& j) {
  return set_up_streams(c, res, j, false);
}

channel set_up_spsc_ring(const case_config& c, const std::string&, case_resources& res,
                         json_object& j) {
  const std::uint64_t slots = spsc_ring_slots(c);
  const int fd = ::memfd_create("shmlog-bench-stream", MFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error("memfd failed");
  res.fds.push_back(fd);
  if (::ftruncate(fd, static_cast<off_t>(spsc_ring_bytes(slots, c.record_bytes))) != 0)
    throw std::runtime_error("spsc-ring: cannot size the memfd");
  j.set_u64("capacity", c.capacity);
  j.set_u64("slots", slots);
  j.set_u64("ring_bytes", slots * c.record_bytes);
  j.set_bool("back_pressure", true);
  const std::string f = std::to_string(fd);
  return {.writer = {.role = "writer", .args = {{"fd", f}}, .fds = {fd}},
          .readers = {{.role = "reader", .label = "reader 0", .args = {{"fd", f}}, .fds = {fd}}}};
}

// --- reports ----------------------------------------------------------------------------------

void spsc_ring_figures(const case_config&, const std::vector<result_map>& results,
                       const reader_totals&, json_object& j) {
  j.set_u64("writer_full_waits", u64(results[0], "full_waits"));
  j.set_u64("reader_catch_ups", u64(results[1], "catch_ups"));
}

void report_spsc_ring(const case_config& c, const std::vector<result_map>& results, json_object& j,
                      std::uint64_t& errors) {
  report_stream(c, results, j, errors, spsc_ring_figures);
}

void report_lossless(const case_config& c, const std::vector<result_map>& results, json_object& j,
                     std::uint64_t& errors) {
  report_stream(c, results, j, errors);
}

// --- the children's sides -------------------------------------------------------------------

int spsc_ring_writer(const child_context& x) {
  spsc_ring_sender tx(x.arg_int("fd"), spsc_ring_slots(x.config), x.config.record_bytes);
  return run_writer(tx, x);
}

template <bool view>
int spsc_ring_reader(const child_context& x) {
  spsc_ring_receiver rx(x.arg_int("fd"), spsc_ring_slots(x.config), x.config.record_bytes, view);
  return run_reader(rx, x);
}

// --- the rows ---------------------------------------------------------------------------------

const transport rows[] = {
    {.name = "spsc-ring",
     .default_wait = "spin",
     .delivery = "lossless",
     .set_up = set_up_spsc_ring,
     .report = report_spsc_ring,
     .writer = spsc_ring_writer,
     .reader = spsc_ring_reader<false>},
    {.name = "spsc-ring-view",
     .default_wait = "spin",
     .delivery = "lossless",
     .set_up = set_up_spsc_ring,
     .report = report_spsc_ring,
     .writer = spsc_ring_writer,
     .reader = spsc_ring_reader<true>},
    {.name = "boost-mq",
     .default_wait = "block",
     .delivery = "lossless",
     .set_up = set_up_boost_mq,
     .report = report_lossless,
     .writer =
         [](const child_context& x) {
           boost_mq_sender tx(x.arg_list("queues"));
           return run_writer(tx, x);
         },
     .reader =
         [](const child_context& x) {
           boost_mq_receiver rx(x.arg("queue"), x.config.record_bytes);
           return run_reader(rx, x);
         }},
    {.name = "pipe",
     .default_wait = "block",
     .delivery = "lossless",
     .set_up = set_up_pipe,
     .report = report_lossless,
     .writer =
         [](const child_context& x) {
           pipe_sender tx(fd_list(x));
           return run_writer(tx, x);
         },
     .reader =
         [](const child_context& x) {
           pipe_receiver rx(x.arg_int("fd"), x.config.record_bytes);
           return run_reader(rx, x);
         }},
    {.name = "unix-socket",
     .default_wait = "block",
     .delivery = "lossless",
     .set_up = set_up_socket,
     .report = report_lossless,
     .writer =
         [](const child_context& x) {
           socket_sender tx(fd_list(x));
           return run_writer(tx, x);
         },
     .reader =
         [](const child_context& x) {
           socket_receiver rx(x.arg_int("fd"), x.config.record_bytes);
           return run_reader(rx, x);
         }},
};

}  // namespace

void add_baselines() {
  add_transports(rows);
}

}  // namespace shmlog::bench
