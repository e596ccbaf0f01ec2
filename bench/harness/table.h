// The transports the harness measures, one row each (table.cc): how the parent sets a case up
// (and what it undoes after), what the writer side and each reader side run, and which figures
// the parent reports from what they sent back. Adding a transport is adding a row: here for
// shmlog's, in baselines.{h,cc} for the baselines that only shmlog_bench measures.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "harness.h"
#include "json.h"
#include "process.h"

namespace shmlog::bench {

// A child's "key value" result lines, by key.
using result_map = std::map<std::string, std::string>;
result_map parse_lines(const std::vector<std::string>& lines);
// The number under `key`, 0 if there is none.
std::uint64_t u64(const result_map& m, const std::string& key);

// Everything a case creates, undone however the case ends: the children (killed and reaped),
// the parent's copies of descriptors handed to them, and what each transport registered to undo.
class case_resources {
 public:
  case_resources() = default;
  case_resources(const case_resources&) = delete;
  case_resources& operator=(const case_resources&) = delete;
  ~case_resources();
  // The parent's copies of descriptors handed to children: closed once they are started, so
  // a child that dies shows up as end of file on the other side.
  void close_fds();

  std::vector<child_process> children;  // active ones first, then idle readers
  std::vector<int> fds;
  std::vector<std::function<void()>> undo;  // run last to first
};

// One child a transport wants started: its role (the hidden command's role=), a label for
// messages ("" = the role), its extra key=value arguments and the descriptors it inherits.
struct endpoint {
  std::string role;
  std::string label;
  std::map<std::string, std::string> args;
  std::vector<int> fds;
};

// The children of a case: the writer side (first, CPU 0), the reader sides (reader i on CPU
// 1 + i mod (ncpu - 1)), then idle readers.
struct channel {
  endpoint writer;
  std::vector<endpoint> readers;
  std::vector<endpoint> idle;
};

// What a child's side of a transport is given.
struct child_context {
  const case_config& config;
  const std::map<std::string, std::string>& args;
  parent_link& link;

  const std::string& arg(const std::string& key) const;  // throws if missing
  int arg_int(const std::string& key) const;
  std::vector<std::string> arg_list(const std::string& key) const;  // comma-separated
};

struct transport {
  std::string_view name;
  std::string_view default_wait;
  // "lossy": a reader can be lapped and loses records (the writer never waits for it);
  // "lossless": the writer waits for its readers (back-pressure), nothing is lost; "": not a
  // stream (the floors, memcpy). Reported with every case and in every row's label, so a rate
  // is never compared without saying whether records were dropped to reach it.
  std::string_view delivery;
  // The parent, before any child starts: creates the channel (a segment, queues, pipes, a
  // memfd), registers in `res` what undoes it, records its parameters in the case's JSON and
  // says what each child is started with. `base` is a name unique to the case.
  channel (*set_up)(const case_config& c, const std::string& base, case_resources& res,
                    json_object& j);
  // The parent, once every child has ended well: the case's figures from their results
  // (results[0] from the writer side, then the readers'). Adds what fails a check to `errors`.
  void (*report)(const case_config& c, const std::vector<result_map>& results, json_object& j,
                 std::uint64_t& errors);
  // The children: the writer side's and a reader side's program (exit status), and an idle
  // reader's where the transport has them.
  int (*writer)(const child_context& x);
  int (*reader)(const child_context& x);
  int (*idle)(const child_context& x) = nullptr;
};

// Every row: the built-in ones (the shmlog transports, floor-pingpong, memcpy), then those
// add_transports added.
std::span<const transport> transports();
// nullptr for a name no row has.
const transport* find_transport(std::string_view name);
// Adds rows after the built-in ones (a name already known is skipped). For a program's main,
// before it runs a case or a child's side: shmlog_bench adds its baselines (baselines.cc), in
// the parent and in every child alike, since a child finds its side by the transport's name.
void add_transports(std::span<const transport> more);

// --- for the rows of any table (table.cc, baselines.cc) ---------------------------------------

// One reader endpoint per reader of the case, reader i with {key, values[i]} and, if `fds` is
// not empty, inheriting fds[i].
std::vector<endpoint> readers_with(const case_config& c, const std::string& key,
                                   const std::vector<std::string>& values,
                                   const std::vector<int>& fds = {});
// "a,b,c": a list for a child's key=value argument (child_context::arg_list reads it back).
std::string joined(const std::vector<std::string>& parts);
// The descriptors of a child's "fds" argument.
std::vector<int> fd_list(const child_context& x);

// What the readers of a stream (one writer, N readers, every record checked) add up to.
struct reader_totals {
  std::uint64_t delivered = 0;
  std::uint64_t laps = 0;
  std::uint64_t lost = 0;
  std::uint64_t max_lag = 0;
  std::uint64_t corrupt = 0;
  std::uint64_t torn = 0;
};

// A stream transport's own figures, between the rates and "sent" in the case's JSON.
using stream_figures = void (*)(const case_config&, const std::vector<result_map>&,
                                const reader_totals&, json_object&);

// The report of every stream transport (a row's `report` calls it): the rates, what was
// delivered, `figures` (if any), "sent", and in latency mode the merged histogram's
// percentiles. Adds to `errors` every record neither delivered nor counted lost.
void report_stream(const case_config& c, const std::vector<result_map>& results, json_object& j,
                   std::uint64_t& errors, stream_figures figures = nullptr);

}  // namespace shmlog::bench
