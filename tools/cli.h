// Shared pieces of the `shmlog` command line tool: exit codes, the errors that carry them, a
// small argument parser and the parsers for option values. docs/cli.md is the user's reference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shmlog::cli {

enum exit_status : int {
  exit_ok = 0,
  exit_failure = 1,          // the command could not be done (not found, writer exists, ...)
  exit_usage = 2,            // the command line itself is wrong
  exit_lapped = 3,           // tail: the writer overwrote records before tail read them
  exit_corrupt = 4,          // tail: a record header in the ring is corrupt
  exit_history_changed = 5,  // tail: a new writer changed the history, not sharing tail's position
};

// Thrown for a bad command line; main() prints "shmlog <command>: <what>" and exits 2.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown to end a command with a message and a given status.
class command_failure : public std::runtime_error {
 public:
  command_failure(int status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

struct option_spec {
  std::string_view name;  // without the leading "--"
  bool takes_value = false;
  std::string_view value_name = {};  // "SIZE" in "--capacity SIZE"
  std::string_view help = {};
  char short_name = 0;  // 'f' for -f; 0: none
};

// A command's help and the options it takes (tools/help.cc holds them all): the one source of
// its --help, `shmlog help CMD`, the man page and the option parser.
struct command_spec {
  std::string_view name;
  std::string_view synopsis;     // after "shmlog NAME"
  std::string_view summary;      // one line, for the command list
  std::string_view description;  // a paragraph
  std::span<const option_spec> options;
  bool hidden = false;  // run by shmlog itself (the demo's children), not listed
};

std::span<const command_spec> command_specs();
const command_spec& command_named(std::string_view name);  // logic_error if there is none
std::string usage_line(const command_spec& c);             // "shmlog create NAME ..."
std::string command_help(const command_spec& c);           // what CMD --help prints
std::string overview_help();                               // what shmlog help prints
int print_command_help(const command_spec& c);             // prints it; returns exit_ok
std::string man_page();                                    // shmlog.1, roff
// The name in `known` that `given` most likely meant (a typo or a prefix), if any.
std::optional<std::string> did_you_mean(std::string_view given,
                                        const std::vector<std::string_view>& known);

// A command's arguments after parsing: positionals in order, and the options given (a flag
// maps to an empty string). "--name value" and "--name=value" are both accepted; "--" ends
// the options.
class parsed_args {
 public:
  std::vector<std::string> positionals;

  bool has(std::string_view name) const { return values_.contains(std::string(name)); }
  std::optional<std::string> value(std::string_view name) const;
  void set(const std::string& name, std::string value);

 private:
  std::map<std::string, std::string> values_;
};

// Parses a command's arguments by its spec's options. Throws usage_error for an unknown option
// (with a "did you mean" when one is close), a repeated one or a missing value. "-h" and
// "--help" set the "help" flag for every command.
parsed_args parse_args(std::span<const std::string> args, const command_spec& command);

// The single log NAME a command takes; usage_error if it is missing or there are extras.
const std::string& single_name(const parsed_args& args, std::string_view usage);
const std::string& single_name(const parsed_args& args, const command_spec& command);

// Option value parsers; each throws usage_error naming the option and the value.
std::uint64_t parse_size(std::string_view option, std::string_view text);
unsigned parse_mode(std::string_view option, std::string_view text);
std::uint64_t parse_unsigned(std::string_view option, std::string_view text, std::uint64_t min,
                             std::uint64_t max);
double parse_seconds(std::string_view option, std::string_view text, double max);
// --wait-for-log SECONDS (replica, tail): how long to wait for the log to be created; zero
// without the option.
std::chrono::milliseconds wait_for_log_option(const parsed_args& args);

// --snapshot-dir DIR, required: an existing directory, writable if `for_writing`, returned as
// an absolute path. Missing, not a directory or not accessible: usage_error naming it.
std::string snapshot_dir_option(const parsed_args& args, bool for_writing,
                                std::string_view needed_by);

// Formats for people: "1.5 MiB", "50.0k" (compact, for status lines), "1,234,567", "0640".
std::string human_bytes(double bytes);
std::string human_count(double count);
std::string grouped(std::uint64_t n);
std::string octal_mode(unsigned mode);
// Length of the valid UTF-8 sequence starting at s[i], or 0 if none starts there.
std::size_t utf8_sequence(std::string_view s, std::size_t i);
// A JSON string literal of `s`; bytes that are not valid UTF-8 become U+FFFD.
std::string json_string(std::string_view s);
// Replaces control bytes with \n, \t or \xNN so that a message stays on one terminal line.
std::string one_line(std::string_view text);

// SIGINT and SIGTERM set a flag instead of killing the process (no SA_RESTART, so a blocked
// call returns early and the caller's loop sees the flag); with `hangup_too`, SIGHUP as well,
// unless it was ignored when the process started (nohup).
void catch_stop_signals(bool hangup_too = false);
bool stop_requested() noexcept;
// Set by the first stop signal: what shmlog::full_resync() and the like take as their stop.
const std::atomic<bool>& stop_signal_flag() noexcept;

// "2026-11-21T12:15:02.592Z" from CLOCK_REALTIME nanoseconds; "" for 0.
std::string iso_utc_time(std::uint64_t realtime_ns);

// Commands. Each returns the process exit status; errors are thrown.
int run_create(std::span<const std::string> args);
int run_destroy(std::span<const std::string> args);
int run_info(std::span<const std::string> args);
int run_list(std::span<const std::string> args);
int run_write(std::span<const std::string> args);
int run_tail(std::span<const std::string> args);
int run_produce(std::span<const std::string> args);
int run_replica(std::span<const std::string> args);
int run_get(std::span<const std::string> args);
int run_ship(std::span<const std::string> args);
int run_mirror(std::span<const std::string> args);
int run_promote(std::span<const std::string> args);
int run_demo(std::span<const std::string> args);
int run_demo_writer(std::span<const std::string> args);  // hidden: the demo's producer
int run_demo_reader(std::span<const std::string> args);  // hidden: a demo replica
int run_help(std::span<const std::string> args);

}  // namespace shmlog::cli
