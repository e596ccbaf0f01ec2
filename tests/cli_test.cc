// The `shmlog` command line tool, run as a user runs it: a child process (fork/exec, no shell)
// with its stdin, stdout and stderr on pipes. Synchronisation is on conditions the tool shows
// (`shmlog info`, lines on stdout, a stopped process), never on fixed sleeps.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "raw_segment.h"
#include "shmlog/shmlog.h"
#include "shmlog/version.h"
#include "subprocess/subprocess.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using shmlog::test::scoped_log;
using shmlog::test::unique_log_name;

// A guard against a hung child, not a synchronisation: every wait below is for a condition.
constexpr auto patience = 60s;

struct run_result {
  std::string out;
  std::string err;
  int status = -1;  // exit status, or 128 + signal number
};

std::size_t line_count(const std::string& s) {
  std::size_t n = 0;
  for (char c : s)
    n += c == '\n';
  return n + (!s.empty() && s.back() != '\n');
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

// at_once: the child runs the tool at once. on_release: it waits until release(), so that the
// test can act on the child's pid before the tool starts (bind a name derived from it, say).
enum class start_mode { at_once, on_release };

// One run of the tool. stdin, stdout and stderr are pipes owned by this object; the destructor
// kills (SIGKILL) and reaps a run that has not finished.
class cli_process {
 public:
  // Throws subprocess::spawn_error if the tool cannot be run (as `run_as`, say).
  explicit cli_process(std::vector<std::string> args, std::optional<uid_t> run_as = {},
                       start_mode start = start_mode::at_once)
      : child_(options(std::move(args), run_as, start)) {}

  // Lets a child started with start_mode::on_release run the tool.
  void release() { child_.release(); }

  pid_t pid() const { return child_.pid(); }

  // A child that closed its stdin makes this fail: what it does about that is what we test.
  void write_stdin(std::string_view text) { child_.write_stdin(text); }
  void close_stdin() { child_.close_stdin(); }

  // The next complete line of stdout, without its newline; nullopt at end of file.
  std::optional<std::string> read_line() { return child_.read_line(give_up()); }
  // The same for stderr. finish() still returns all of stderr.
  std::optional<std::string> read_err_line() { return child_.read_line(give_up(), true); }
  // Reads stderr lines until one contains `what`, and returns it (nullopt: end of file first).
  std::optional<std::string> wait_for_err(const std::string& what) {
    while (auto line = read_err_line())
      if (line->find(what) != std::string::npos) return line;
    return std::nullopt;
  }

  // Closes stdin (after `input`), reads stdout and stderr to their end and waits for the exit;
  // a run still going after `patience` is killed (status 128 + 9). `out` is the stdout not
  // read by read_line, `err` all of stderr.
  run_result finish(std::string_view input = {}) {
    if (!child_.communicate(input, give_up())) child_.kill_and_reap();
    run_result r;
    r.out = child_.out().unread();
    r.err = child_.err().transcript();
    const int status = child_.status();
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
  }

 private:
  static shmlog::subprocess::spawn_options options(std::vector<std::string> args,
                                                   std::optional<uid_t> run_as, start_mode start) {
    ::signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill the test
    args.insert(args.begin(), SHMLOG_CLI);
    return {.argv = std::move(args),
            .stderr_mode = shmlog::subprocess::stream_mode::pipe,
            .run_as = run_as,
            .hold_until_release = start == start_mode::on_release};
  }
  static shmlog::subprocess::clock::time_point give_up() {
    return shmlog::subprocess::clock::now() + patience;
  }

  shmlog::subprocess::child child_;
};

run_result run(std::vector<std::string> args, std::string_view input = {}) {
  cli_process p(std::move(args));
  return p.finish(input);
}

std::string describe(const run_result& r) {
  return "status " + std::to_string(r.status) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// Runs a command that must succeed and returns its stdout.
// A failed command: the given status, nothing on stdout, one line on stderr containing `what`.
void expect_one_error_line(const run_result& r, int status, const std::string& what) {
  EXPECT_EQ(r.status, status) << describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
}

// A usage error (status 2): one line on stderr starting with `prefix`, nothing on stdout.
void expect_usage_error(const std::vector<std::string>& args, const std::string& prefix) {
  std::string shown;
  for (const auto& a : args)
    shown += "[" + a + "] ";
  SCOPED_TRACE(shown);
  const run_result r = run(args);
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << r.err;
}

std::string ok(std::vector<std::string> args, std::string_view input = {}) {
  const run_result r = run(args, input);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  return r.out;
}

// --- reading `shmlog info` -----------------------------------------------------------------

struct info_text {
  std::map<std::string, std::string> fields;
  std::vector<std::map<std::string, std::string>> readers;  // reader0, reader1, ...
};

info_text parse_info_text(const std::string& text) {
  info_text info;
  for (const std::string& line : split_lines(text)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t colon = line.find(':');
    EXPECT_NE(colon, std::string::npos) << line;
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    const std::string value = line.substr(colon + 1);
    EXPECT_FALSE(info.fields.contains(key)) << "duplicate field " << key;
    info.fields[key] = value;
    if (key.rfind("reader", 0) == 0 &&
        key.find_first_not_of("0123456789", 6) == std::string::npos && key.size() > 6) {
      std::map<std::string, std::string> r;
      std::istringstream parts(value);
      for (std::string part; std::getline(parts, part, ',');) {
        const std::size_t eq = part.find('=');
        EXPECT_NE(eq, std::string::npos) << part;
        if (eq != std::string::npos) r[part.substr(0, eq)] = part.substr(eq + 1);
      }
      EXPECT_EQ(key, "reader" + std::to_string(info.readers.size()));
      info.readers.push_back(r);
    }
  }
  return info;
}

info_text info_of(const std::string& name) {
  return parse_info_text(ok({"info", name}));
}

std::uint64_t number(const info_text& info, const std::string& key) {
  const auto it = info.fields.find(key);
  if (it == info.fields.end()) throw std::runtime_error("no field " + key);
  return std::stoull(it->second);
}

// Polls `shmlog info` until `condition` holds (bounded: a hung tool fails the test).
template <typename Condition>
info_text wait_for_info(const std::string& name, Condition condition) {
  const auto give_up = std::chrono::steady_clock::now() + patience;
  for (;;) {
    info_text info = info_of(name);
    if (condition(info)) return info;
    if (std::chrono::steady_clock::now() > give_up)
      throw std::runtime_error("shmlog info never showed the awaited state");
    std::this_thread::sleep_for(5ms);
  }
}

// A JSON scalar as `shmlog info` prints the same field as text: a string's value, a number's
// literal.
std::string text_of(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// Every field the issue requires, in both forms.
const char* const required_fields[] = {
    "replid",
    "replid2",
    "second_repl_offset",
    "master_repl_offset",
    "repl_backlog_size",
    "repl_backlog_first_byte_offset",
    "repl_backlog_histlen",
    "writer_pid",
    "sync_full",
    "sync_partial_ok",
    "sync_partial_err",
};
const char* const required_reader_fields[] = {"pid", "offset", "lag_bytes", "lapped"};

// Lines "a0", "a1", ... of the given lengths.
std::string numbered_lines(int count, std::size_t length) {
  std::string text;
  for (int i = 0; i < count; ++i) {
    std::string line = "line-" + std::to_string(i) + "-";
    line.resize(length, 'x');
    text += line + "\n";
  }
  return text;
}

struct offset_line {
  std::uint64_t offset;
  std::string payload;
};

std::vector<offset_line> parse_offsets(const std::string& out) {
  std::vector<offset_line> records;
  for (const std::string& line : split_lines(out)) {
    const std::size_t tab = line.find('\t');
    EXPECT_NE(tab, std::string::npos) << line;
    if (tab == std::string::npos) continue;
    records.push_back({std::stoull(line.substr(0, tab)), line.substr(tab + 1)});
  }
  return records;
}

// --- the tests --------------------------------------------------------------------------------

TEST(cli, HelpGoesToStdoutAndNoArgumentsIsAUsageError) {
  for (const char* help : {"help", "--help", "-h"}) {
    const run_result r = run({help});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.out.find("usage: shmlog"), std::string::npos);
    EXPECT_EQ(r.err, "");
  }
  const run_result r = run({});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("usage: shmlog"), std::string::npos);
}

// The commands `shmlog help` lists, and for each the options its help describes.
std::map<std::string, std::vector<std::string>> documented_options() {
  std::map<std::string, std::vector<std::string>> out;
  bool in_commands = false;
  for (const std::string& line : split_lines(ok({"help"}))) {
    if (line == "Commands:") in_commands = true;
    if (!in_commands || line.size() < 3 || line.rfind("  ", 0) != 0) continue;
    const std::string name = line.substr(2, line.find(' ', 2) - 2);
    std::vector<std::string>& options = out[name];
    for (const std::string& h : split_lines(ok({"help", name}))) {
      // "  -n, --last N   ..." or "  --json   ...": the long name of each option line.
      const std::size_t at = h.find("--");
      if (h.rfind("  -", 0) != 0 || at == std::string::npos || at > 6) continue;
      options.push_back(h.substr(at, h.find_first_of(" =", at) - at));
    }
  }
  return out;
}

// `shmlog help CMD` and `CMD --help` print the same text, from the table the option parser
// uses; the manual page is generated from it too, and docs/cli.md names every option.
TEST(cli, EveryCommandsHelpDescribesTheOptionsItTakesAndTheDocsAndManPageNameThem) {
  const auto commands = documented_options();
  for (const char* expected :
       {"create", "destroy", "info", "list", "write", "tail", "produce", "replica", "get", "ship",
        "mirror", "promote", "demo", "help", "version"})
    EXPECT_TRUE(commands.contains(expected)) << expected;
  std::ifstream doc(std::string(SHMLOG_SOURCE_DIR) + "/docs/cli.md");
  const std::string cli_md((std::istreambuf_iterator<char>(doc)), {});
  std::ifstream man_file(SHMLOG_MAN_PAGE);
  const std::string man((std::istreambuf_iterator<char>(man_file)), {});
  EXPECT_EQ(man, ok({"help", "--man"})) << "the installed page is the generated one";
  for (const auto& [command, options] : commands) {
    SCOPED_TRACE(command);
    if (command == "version") continue;
    EXPECT_EQ(ok({"help", command}), ok({command, "--help"}));
    const std::size_t section = cli_md.find("## `shmlog " + command);
    ASSERT_NE(section, std::string::npos) << "docs/cli.md has no section for it";
    const std::string text = cli_md.substr(section, cli_md.find("\n## ", section + 1) - section);
    for (const std::string& option : options) {
      // Accepted: whatever else is wrong with the command line (the extra arguments make every
      // command refuse it before doing anything), not this option.
      const run_result r = run({command, option, "1", "2", "3"});
      EXPECT_EQ(r.err.find("unknown option"), std::string::npos) << option << ": " << r.err;
      EXPECT_NE(text.find(option), std::string::npos) << option << " not in docs/cli.md";
      std::string in_roff;
      for (char c : option)
        in_roff += c == '-' ? std::string("\\-") : std::string(1, c);
      EXPECT_NE(man.find(in_roff), std::string::npos) << option << " not in the man page";
    }
  }
}

// Without --redis, ship, mirror and promote take the URL from SHMLOG_REDIS_URL (a password in it
// stays off the command line); an unusable URL from there is refused like one from --redis.
TEST(cli, RedisUrlComesFromTheEnvironmentWithoutTheOption) {
  ::unsetenv("SHMLOG_REDIS_URL");
  for (const char* cmd : {"ship", "mirror", "promote"})
    expect_usage_error({cmd, "x"}, std::string("shmlog ") + cmd +
                                       ": missing --redis URL, and SHMLOG_REDIS_URL is not set");
  ::setenv("SHMLOG_REDIS_URL", "rediss://127.0.0.1:1", 1);
  for (const char* cmd : {"ship", "mirror", "promote"})
    expect_usage_error({cmd, "x"},
                       std::string("shmlog ") + cmd + ": invalid Redis URL 'rediss://127.0.0.1:1'");
  ::unsetenv("SHMLOG_REDIS_URL");
}

TEST(cli, UnknownCommandsAndOptionsGetADidYouMean) {
  expect_usage_error({"tial"}, "shmlog: unknown command 'tial' (did you mean 'tail'?)");
  expect_usage_error({"destory", "x"},
                     "shmlog: unknown command 'destory' (did you mean 'destroy'?)");
  expect_usage_error({"lst"}, "shmlog: unknown command 'lst' (did you mean 'list'?)");
  expect_usage_error({"frobnicate"}, "shmlog: unknown command 'frobnicate' (try: shmlog help)");
  expect_usage_error({"help", "tial"},
                     "shmlog help: unknown command 'tial' (did you mean 'tail'?)");
  expect_usage_error({"info", "x", "--promethus"},
                     "shmlog info: unknown option '--promethus' (did you mean '--prometheus'?)");
  expect_usage_error({"tail", "x", "--follw"},
                     "shmlog tail: unknown option '--follw' (did you mean '--follow'?)");
  expect_usage_error({"create", "x", "--cap", "4K"},
                     "shmlog create: unknown option '--cap' (did you mean '--capacity'?)");
  expect_usage_error({"create", "x", "--zzz"}, "shmlog create: unknown option '--zzz'\n");
}

// The manual page is well-formed roff: groff (in Debian's groff-base, which man-db needs)
// renders it without a warning.
TEST(cli, TheManPageRendersWithoutWarnings) {
  if (::access("/usr/bin/groff", X_OK) != 0) GTEST_SKIP() << "no groff to render the page";
  const std::string cmd =
      std::string("/usr/bin/groff -man -Tutf8 -ww -z ") + SHMLOG_MAN_PAGE + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr)
    out += buf;
  EXPECT_EQ(::pclose(p), 0) << out;
  EXPECT_EQ(out, "");
}

// The version the CLI prints is the one its headers say, from the CMake project version.
TEST(cli, VersionIsTheProjectVersionOnStdout) {
  for (const char* version : {"version", "--version"}) {
    const run_result r = run({version});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, std::string("shmlog ") + SHMLOG_VERSION + "\n");
    EXPECT_EQ(r.err, "");
  }
  EXPECT_EQ(std::string(SHMLOG_VERSION), std::to_string(SHMLOG_VERSION_MAJOR) + "." +
                                             std::to_string(SHMLOG_VERSION_MINOR) + "." +
                                             std::to_string(SHMLOG_VERSION_PATCH));
}

// Sizes are powers of 1024, with K or KiB (M, G, T likewise, either case); KB and its kind are
// refused, naming what to write instead, since to some they mean powers of 1000.
TEST(cli, SizeSuffixesArePowersOf1024AndKBIsRefusedWithTheReason) {
  for (const auto& [text, bytes] : std::vector<std::pair<std::string, std::uint64_t>>{
           {"64KiB", 65536}, {"64kib", 65536}, {"1MiB", 1048576}, {"1m", 1048576}}) {
    scoped_log log(unique_log_name("cli"));
    ok({"create", log, "--capacity", text});
    EXPECT_EQ(number(info_of(log), "repl_backlog_size"), bytes) << text;
  }
  const run_result r = run({"create", unique_log_name("cli"), "--capacity", "64KB"});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_NE(r.err.find("bad --capacity '64KB': 'KB' could mean a power of 1000 or of 1024; shmlog "
                       "sizes are powers of 1024: write 64K or 64KiB, or the number of bytes"),
            std::string::npos)
      << r.err;
}

TEST(cli, CreateInfoDestroyRoundTrip) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "64K"});
  EXPECT_TRUE(shmlog::exists(log.name()));
  const info_text info = info_of(log);
  EXPECT_EQ(info.fields.at("name"), log.name());
  EXPECT_EQ(number(info, "repl_backlog_size"), 65536u);
  EXPECT_EQ(number(info, "master_repl_offset"), 0u);
  EXPECT_EQ(number(info, "reader_slots"), 64u);
  EXPECT_EQ(info.fields.at("mode"), "0600");
  EXPECT_EQ(info.fields.at("writer_alive"), "0");

  ok({"destroy", log});
  EXPECT_FALSE(shmlog::exists(log.name()));
  for (const char* cmd : {"destroy", "info", "tail", "write"}) {
    const run_result r = run({cmd, log});
    EXPECT_EQ(r.status, 1) << cmd << ": " << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(line_count(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.rfind(std::string("shmlog ") + cmd + ": ", 0), 0u) << r.err;
  }
}

// Issue 8, item 4: layout version 1 stored the ring's sizing rules in 32 bits, so a log above
// 16 GiB was created and then refused by every open as a corrupt header.
TEST(cli, CreateThirtyTwoGiBAndTheLargestCapacityGivesLogsEveryCommandOpens) {
#if defined(__SANITIZE_THREAD__)  // ThreadSanitizer shadows every mapping: 1 TiB is too much
  const std::vector<std::pair<const char*, std::uint64_t>> sizes = {{"32G", 32ull << 30}};
#else
  const std::vector<std::pair<const char*, std::uint64_t>> sizes = {{"32G", 32ull << 30},
                                                                    {"1024G", 1ull << 40}};
#endif
  for (const auto& [text, bytes] : sizes) {
    SCOPED_TRACE(text);
    scoped_log log(unique_log_name("cli"));
    ok({"create", log, "--capacity", text});
    ok({"write", log}, "one\ntwo\n");
    EXPECT_EQ(ok({"tail", log, "--from", "oldest"}), "one\ntwo\n");
    const info_text info = info_of(log);
    EXPECT_EQ(number(info, "repl_backlog_size"), bytes);
    EXPECT_EQ(number(info, "max_payload"), (4ull << 30) - 8);
    EXPECT_EQ(number(info, "intent_chunk"), bytes / 16);
  }
}

TEST(cli, CreateRefusesAnExistingLog) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  const run_result r = run({"create", log, "--capacity", "4K"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(line_count(r.err), 1u);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
}

TEST(cli, SizeSuffixesArePowersOf1024InEitherCase) {
  const std::pair<const char*, std::uint64_t> sizes[] = {
      {"4K", 4096}, {"4k", 4096}, {"1M", 1 << 20}, {"1m", 1 << 20}, {"4096", 4096}, {"64K", 65536}};
  for (const auto& [text, bytes] : sizes) {
    scoped_log log(unique_log_name("cli"));
    ok({"create", log, "--capacity", text, "--readers", "2"});
    const info_text info = info_of(log);
    EXPECT_EQ(number(info, "repl_backlog_size"), bytes) << text;
    EXPECT_EQ(number(info, "reader_slots"), 2u) << text;
  }
}

TEST(cli, ModeDefaultsTo0600AndIsAppliedExactly) {
  scoped_log plain(unique_log_name("cli"));
  scoped_log shared(unique_log_name("cli"));
  scoped_log short_form(unique_log_name("cli"));
  ok({"create", plain, "--capacity", "4K"});
  ok({"create", shared, "--capacity", "4K", "--mode", "0640"});
  ok({"create", short_form, "--capacity", "4K", "--mode", "660"});
  const auto mode_of = [](const std::string& name) {
    struct stat st {};
    EXPECT_EQ(::stat(("/dev/shm/" + name).c_str(), &st), 0);
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode_of(plain), 0600u);
  EXPECT_EQ(mode_of(shared), 0640u);
  EXPECT_EQ(mode_of(short_form), 0660u);
  EXPECT_EQ(info_of(shared).fields.at("mode"), "0640");
}

TEST(cli, WriteThenTailPrintsTheSameLinesInOrder) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "64K"});
  // An empty line is an empty record; the last line has no newline and still counts.
  const std::string input = "first\n\nthird with spaces\ttab\nlast without newline";
  ok({"write", log}, input);
  EXPECT_EQ(ok({"tail", log}), "first\n\nthird with spaces\ttab\nlast without newline\n");
  // Nothing written: nothing appended.
  ok({"write", log}, "");
  // Frames: 8-byte header + payload rounded up to 8: 16 + 8 + 32 + 32.
  EXPECT_EQ(number(info_of(log), "master_repl_offset"), 88u);
}

// --last N starts at the newest N records held (all of them if fewer are held), also after the
// writer came round; it says where to start, so it cannot be given with --from.
TEST(cli, TailLastPrintsTheNewestRecordsHeld) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  EXPECT_EQ(ok({"tail", log, "--last", "3"}), "");
  ok({"write", log}, "r0\nr1\nr2\nr3\nr4\n");
  EXPECT_EQ(ok({"tail", log, "--last", "2"}), "r3\nr4\n");
  EXPECT_EQ(ok({"tail", log, "--last", "9"}), "r0\nr1\nr2\nr3\nr4\n");
  // 100 records of 56 bytes overrun the 4 KiB ring: the newest 3 are still the last 3 written.
  ok({"write", log}, numbered_lines(100, 56));
  const std::string all = ok({"tail", log});
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = all.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(all.substr(at, nl - at + 1));
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(ok({"tail", log, "--last", "3"}),
            lines[lines.size() - 3] + lines[lines.size() - 2] + lines.back());
  expect_usage_error({"tail", log, "--last", "3", "--from", "oldest"}, "shmlog tail:");
  expect_usage_error({"tail", log, "--last", "0"}, "shmlog tail:");
}

// A dump tool's conveniences: -n is --last, -f is --follow, --hex keeps a binary record on its
// line, --print-types adds the record type as a column.
TEST(cli, TailHexTypesAndShortOptions) {
  using namespace std::string_literals;
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, "hi\nyo\n");
  {
    shmlog::writer w = shmlog::writer::open(log.name());
    const std::byte binary[] = {std::byte{0x00}, std::byte{0x0a}, std::byte{0xff}};
    w.append(binary, 7);
  }
  EXPECT_EQ(ok({"tail", log, "--hex"}), "68 69\n79 6f\n00 0a ff\n");
  EXPECT_EQ(ok({"tail", log, "--print-types", "--print-offsets", "--hex"}),
            "0\t1\t68 69\n16\t1\t79 6f\n32\t7\t00 0a ff\n");
  EXPECT_EQ(ok({"tail", log, "-n", "1", "--hex"}), ok({"tail", log, "--last", "1", "--hex"}));
  EXPECT_EQ(ok({"tail", log, "-n2", "--print-types"}), "1\tyo\n7\t\0\n\xff\n"s);
  // -f waits for more: it prints the newest record and one appended later, then --count ends it.
  cli_process follow({"tail", log, "-f", "-n", "1", "--count", "2", "--hex"});
  EXPECT_EQ(follow.read_line(), "00 0a ff");
  ok({"write", log}, "z\n");
  EXPECT_EQ(follow.read_line(), "7a");
  EXPECT_EQ(follow.finish().status, 0);
}

TEST(cli, TailOfAnEmptyLogPrintsNothing) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  EXPECT_EQ(ok({"tail", log}), "");
  EXPECT_EQ(ok({"tail", log, "--from", "latest"}), "");
  EXPECT_EQ(ok({"tail", log, "--from", "0"}), "");
}

TEST(cli, PrintOffsetsStartAtTheOldestRecordAndFromResumesExactlyThere) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  // 100 records of 56 bytes (64-byte frames) overrun a 4 KiB ring: the oldest offset is > 0.
  ok({"write", log}, numbered_lines(100, 56));
  const info_text info = info_of(log);
  const std::uint64_t first = number(info, "repl_backlog_first_byte_offset");
  const std::uint64_t master = number(info, "master_repl_offset");
  ASSERT_GT(first, 0u);
  EXPECT_EQ(number(info, "repl_backlog_histlen"), master - first);

  const auto records = parse_offsets(ok({"tail", log, "--print-offsets"}));
  ASSERT_GE(records.size(), 10u);
  EXPECT_EQ(records.front().offset, first);
  for (std::size_t i = 1; i < records.size(); ++i)
    EXPECT_GT(records[i].offset, records[i - 1].offset);
  EXPECT_EQ(records.back().offset + 64, master);
  EXPECT_EQ(records.back().payload.rfind("line-99-", 0), 0u);

  const std::size_t k = records.size() / 2;
  const auto from_k = parse_offsets(
      ok({"tail", log, "--print-offsets", "--from", std::to_string(records[k].offset)}));
  ASSERT_EQ(from_k.size(), records.size() - k);
  for (std::size_t i = 0; i < from_k.size(); ++i) {
    EXPECT_EQ(from_k[i].offset, records[k + i].offset);
    EXPECT_EQ(from_k[i].payload, records[k + i].payload);
  }
  // Without --print-offsets the same payloads; --from latest prints nothing.
  const auto plain = split_lines(ok({"tail", log, "--from", std::to_string(records[k].offset)}));
  ASSERT_EQ(plain.size(), from_k.size());
  EXPECT_EQ(plain.front(), records[k].payload);
  EXPECT_EQ(ok({"tail", log, "--from", "latest"}), "");
  EXPECT_EQ(ok({"tail", log, "--from", std::to_string(master)}), "");
}

TEST(cli, CountStopsAfterNRecords) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, "a\nb\nc\nd\n");
  EXPECT_EQ(ok({"tail", log, "--count", "2"}), "a\nb\n");
  EXPECT_EQ(ok({"tail", log, "--count=1", "--from", "16"}), "b\n");
  EXPECT_EQ(ok({"tail", log, "--count", "10"}), "a\nb\nc\nd\n");
}

// An offset the writer has not reached yet, or one inside a record, is not a lap: status 1.
TEST(cli, FromBeyondTheMasterOffsetOrInsideARecordIsOneClearError) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, numbered_lines(100, 56));
  const info_text info = info_of(log);
  const std::uint64_t first = number(info, "repl_backlog_first_byte_offset");
  const std::uint64_t master = number(info, "master_repl_offset");
  const std::string window = "[" + std::to_string(first) + ", " + std::to_string(master) + "]";
  for (const std::uint64_t offset : {master + 8, master + 4096}) {
    const run_result r = run({"tail", log, "--from", std::to_string(offset), "--on-lap=skip"});
    expect_one_error_line(
        r, 1, "offset " + std::to_string(offset) + " is outside the held window " + window);
  }
  for (const std::uint64_t offset : {first + 8, first + 3}) {
    const run_result r = run({"tail", log, "--from", std::to_string(offset)});
    expect_one_error_line(r, 1, "does not start a record");
  }
}

// --from an offset the writer has overwritten asks for records that are gone, as a lap does:
// status 3 and the lap's line, naming the wanted and the oldest held offset.
TEST(cli, FromAnOverwrittenOffsetIsALapExit3) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, numbered_lines(100, 56));
  const std::uint64_t first = number(info_of(log), "repl_backlog_first_byte_offset");
  ASSERT_GT(first, 64u);
  for (const std::uint64_t offset : {std::uint64_t{0}, first - 64, first - 3}) {
    const run_result r = run({"tail", log, "--from", std::to_string(offset)});
    EXPECT_EQ(r.status, 3) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "shmlog tail: lapped: wanted offset " + std::to_string(offset) +
                         " but the oldest held offset is " + std::to_string(first) + " (" +
                         std::to_string(first - offset) + " bytes lost)\n");
  }
  EXPECT_EQ(number(info_of(log), "lapped_total"), 0u);  // nothing was lost while a tail ran
}

TEST(cli, FromAnOverwrittenOffsetWithOnLapSkipStartsAtTheOldestRecord) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, numbered_lines(100, 56));
  const std::uint64_t first = number(info_of(log), "repl_backlog_first_byte_offset");
  const run_result r = run({"tail", log, "--from", "0", "--on-lap", "skip", "--print-offsets"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "shmlog tail: lapped: skipped " + std::to_string(first) +
                       " bytes from offset 0 to " + std::to_string(first) + "\n");
  const auto records = parse_offsets(r.out);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.front().offset, first);
  EXPECT_EQ(records.back().payload.rfind("line-99-", 0), 0u);
}

// Waits until the log's only reader (a tail --follow) has caught up with the master offset, then
// stops it (SIGSTOP) and waits until it is stopped: whatever is written next can lap it.
void stop_when_caught_up(const std::string& log, cli_process& tail) {
  wait_for_info(log, [](const info_text& i) {
    return i.readers.size() == 1 && i.readers[0].at("offset") == i.fields.at("master_repl_offset");
  });
  ASSERT_EQ(::kill(tail.pid(), SIGSTOP), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(tail.pid(), &status, WUNTRACED), tail.pid());
  ASSERT_TRUE(WIFSTOPPED(status));
}

// A deterministic lap: tail --follow catches up and is stopped (SIGSTOP) while the writer laps
// it; when it continues, its next poll finds its offset overwritten.
TEST(cli, TailLappedByTheWriterExits3NamingBothOffsets) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, "a\nb\nc\n");
  const std::uint64_t wanted = number(info_of(log), "master_repl_offset");
  cli_process tail({"tail", log, "--follow", "--from", "oldest"});
  for (const char* expected : {"a", "b", "c"})
    ASSERT_EQ(tail.read_line(), expected);
  ASSERT_NO_FATAL_FAILURE(stop_when_caught_up(log, tail));

  ok({"write", log}, numbered_lines(40, 200));  // 8 KiB: two laps of the 4 KiB ring
  const std::uint64_t oldest = number(info_of(log), "repl_backlog_first_byte_offset");
  ASSERT_GT(oldest, wanted);
  ASSERT_EQ(::kill(tail.pid(), SIGCONT), 0);

  const run_result r = tail.finish();
  EXPECT_EQ(r.status, 3) << describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "shmlog tail: lapped: wanted offset " + std::to_string(wanted) +
                       " but the oldest held offset is " + std::to_string(oldest) + " (" +
                       std::to_string(oldest - wanted) + " bytes lost)\n");
  EXPECT_EQ(number(info_of(log), "lapped_total"), 1u);
}

// A record header overwritten in place (not by the writer) is corruption, never a lap.
TEST(cli, TailOfACorruptRecordExits4NamingItsOffset) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, "a\nb\nc\n");
  {
    const int fd = ::open(("/dev/shm/" + log.name()).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const std::uint64_t garbage = 0x5A5A5A5A00000001;  // length 1, wrong type and tag
    ASSERT_EQ(::pwrite(fd, &garbage, sizeof garbage, shmlog::header_size + 16),
              static_cast<ssize_t>(sizeof garbage));
    ::close(fd);
  }
  const run_result r = run({"tail", log});
  EXPECT_EQ(r.status, 4) << describe(r);
  EXPECT_EQ(r.out, "a\n");
  EXPECT_EQ(r.err, "shmlog tail: log '" + log.name() +
                       "': corrupt record at offset 16: header tag does not match its offset\n");
}

TEST(cli, TailFollowPrintsNewRecordsAndEndsCleanlyOnSigintAndSigterm) {
  for (const int sig : {SIGINT, SIGTERM}) {
    scoped_log log(unique_log_name("cli"));
    ok({"create", log, "--capacity", "4K"});
    ok({"write", log}, "old\n");
    cli_process tail({"tail", log, "--follow", "--print-offsets"});  // from latest by default
    wait_for_info(log, [](const info_text& i) { return i.readers.size() == 1; });
    ok({"write", log}, "new1\nnew2\n");
    EXPECT_EQ(tail.read_line(), "16\tnew1");
    EXPECT_EQ(tail.read_line(), "32\tnew2");
    ASSERT_EQ(::kill(tail.pid(), sig), 0);
    const run_result r = tail.finish();
    EXPECT_EQ(r.status, 0) << strsignal(sig) << ": " << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "");
  }
}

TEST(cli, TailFollowStopsWhenTheLogIsDestroyed) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  cli_process tail({"tail", log, "--follow"});
  wait_for_info(log, [](const info_text& i) { return i.readers.size() == 1; });
  ok({"write", log}, "last\n");
  EXPECT_EQ(tail.read_line(), "last");
  ok({"destroy", log});
  const run_result r = tail.finish();
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_EQ(r.err, "shmlog tail: log '" + log.name() + "' was destroyed\n");
}

TEST(cli, TailFollowWithCountExitsAfterNRecords) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  cli_process tail({"tail", log, "--follow", "--count", "2"});
  wait_for_info(log, [](const info_text& i) { return i.readers.size() == 1; });
  ok({"write", log}, "x\ny\nz\n");
  const run_result r = tail.finish();
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "x\ny\n");
}

// --wait-for-log: a tail started before the log exists prints what is written once it is created.
TEST(cli, TailWaitingForTheLogPrintsItsRecordsOnceItIsCreated) {
  scoped_log log(unique_log_name("cli"));
  cli_process tail(
      {"tail", log, "--follow", "--from", "oldest", "--count", "1", "--wait-for-log", "30"});
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, "first\n");
  const run_result r = tail.finish();
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "first\n");
}

TEST(cli, TailWaitingForALogNobodyCreatesFailsNamingItAndTheWait) {
  const std::string name = unique_log_name("cli");
  const run_result r = run({"tail", name, "--wait-for-log", "0.2"});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("'" + name + "' does not exist"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ms for it to be created (wait_for_creation 200 ms)"), std::string::npos)
      << r.err;
}

TEST(cli, InfoTextHasEveryRequiredField) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, "a\nbb\n");
  // Label: free text, with the characters that would break a key=value list.
  auto reader = shmlog::reader::attach(
      log.name(), {.start = shmlog::start_position::oldest(), .label = "x,y=z\\w\n"});
  const info_text info = info_of(log);
  for (const char* f : required_fields)
    EXPECT_TRUE(info.fields.contains(f)) << f;
  for (const char* f : {"writer_alive",        "writer_generation",
                        "layout_version",      "max_payload",
                        "write_intent",        "lapped_total",
                        "stale_reader_slots",  "mode",
                        "creation_time",       "connected_readers",
                        "backlog_too_small",   "history_epoch",
                        "snapshot_generation", "snapshot_offset",
                        "snapshot_replid",     "snapshot_path",
                        "snapshot_bytes",      "snapshot_time",
                        "snapshot_age_ms",     "snapshot_save_ms",
                        "snapshot_requests",   "snapshot_requests_served"})
    EXPECT_TRUE(info.fields.contains(f)) << f;
  // No snapshot yet: generation 0, offset and age -1.
  EXPECT_EQ(info.fields.at("snapshot_generation"), "0");
  EXPECT_EQ(info.fields.at("snapshot_offset"), "-1");
  EXPECT_EQ(info.fields.at("snapshot_age_ms"), "-1");
  EXPECT_EQ(info.fields.at("snapshot_path"), "");
  EXPECT_EQ(info.fields.at("second_repl_offset"), "-1");
  EXPECT_EQ(info.fields.at("replid").size(), 40u);
  EXPECT_EQ(info.fields.at("replid2"), std::string(40, '0'));
  EXPECT_EQ(number(info, "master_repl_offset"), 32u);
  EXPECT_EQ(number(info, "repl_backlog_first_byte_offset"), 0u);
  EXPECT_EQ(number(info, "repl_backlog_histlen"), 32u);
  EXPECT_EQ(number(info, "max_payload"), 1016u);
  EXPECT_EQ(number(info, "writer_generation"), 1u);
  EXPECT_NE(number(info, "writer_pid"), 0u);  // the last writer, although it has exited
  EXPECT_EQ(info.fields.at("writer_alive"), "0");
  EXPECT_EQ(number(info, "connected_readers"), 1u);
  ASSERT_EQ(info.readers.size(), 1u);
  const auto& r = info.readers[0];
  for (const char* f : required_reader_fields)
    EXPECT_TRUE(r.contains(f)) << f;
  for (const char* f : {"slot", "state", "records", "heartbeat_age_ms", "label"})
    EXPECT_TRUE(r.contains(f)) << f;
  EXPECT_EQ(r.at("pid"), std::to_string(::getpid()));
  EXPECT_EQ(r.at("offset"), "0");
  EXPECT_EQ(r.at("lag_bytes"), "32");
  EXPECT_EQ(r.at("lapped"), "0");
  EXPECT_EQ(r.at("label"), "x\\x2cy\\x3dz\\x5cw\\x0a");
}

// Appends 200 records of 32 bytes (over a 4 KiB ring: it comes round) while the log's one gating
// reader reads nothing, then returns info, where the writer must have waited once and then
// lapped that reader once.
info_text info_after_overrunning_a_stalled_gating_reader(const scoped_log& log) {
  {
    auto w = shmlog::writer::open(log.name());
    for (int i = 0; i < 200; ++i)
      w.append(std::string_view("0123456789abcdef0123456789abcdef"));
  }
  info_text info = info_of(log);
  EXPECT_EQ(info.fields.at("gating_readers"), "1");
  EXPECT_EQ(info.fields.at("gating_waits"), "1");
  EXPECT_EQ(info.fields.at("gating_laps"), "1");
  return info;
}

// Gating readers (docs/design.md, "Gating readers"): info shows how many are marked, how often
// the writer waited and how many it lapped after the bound, and which readers gate.
TEST(cli, InfoShowsAGatingReaderAndTheLapTheBoundCost) {
  scoped_log log(unique_log_name("cli"));
  shmlog::create(log.name(), {.capacity = 4096, .max_gating_wait = std::chrono::milliseconds(5)});
  auto reader = shmlog::reader::attach(
      log.name(), {.start = shmlog::start_position::oldest(), .label = "gate", .gating = true});
  const info_text info = info_after_overrunning_a_stalled_gating_reader(log);
  EXPECT_EQ(info.fields.at("max_gating_wait_ms"), "5");
  ASSERT_EQ(info.readers.size(), 1u);
  EXPECT_EQ(info.readers[0].at("gating"), "1");
}

// The command line's way to the same: create --max-gating-wait sets the log's bound; a tail
// --gating reader holds the writer (here it reads nothing, so the writer waits out the bound,
// then laps it once and counts it).
TEST(cli, CreateSetsTheGatingBoundAndTailGatingHoldsTheWriter) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K", "--max-gating-wait", "0.005"});
  EXPECT_EQ(info_of(log).fields.at("max_gating_wait_ms"), "5");
  cli_process tail({"tail", log, "--follow", "--from", "oldest", "--gating"});
  wait_for_info(log.name(), [](const info_text& i) {
    return i.readers.size() == 1 && i.readers[0].at("gating") == "1";
  });
  ::kill(tail.pid(), SIGSTOP);  // it reads nothing more: the writer waits for it, then laps it
  info_after_overrunning_a_stalled_gating_reader(log);
  ::kill(tail.pid(), SIGCONT);  // the destructor kills it
}

TEST(cli, InfoJsonIsOneObjectWithEveryFieldMatchingTheText) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "8K", "--mode", "0640"});
  ok({"write", log}, numbered_lines(3, 10));
  // Quote, backslash, control characters and UTF-8 (é) in a label; 15 bytes are kept.
  const std::string label = "q\"b\\n\x01\t\xc3\xa9 end";
  auto reader = shmlog::reader::attach(log.name(),
                                       {.start = shmlog::start_position::oldest(), .label = label});
  const std::string out = ok({"info", log, "--json"});
  EXPECT_EQ(line_count(out), 1u);
  // parse() refuses anything but one value (trailing white space aside) and ill-formed UTF-8.
  nlohmann::json doc;
  ASSERT_NO_THROW(doc = nlohmann::json::parse(out)) << out;
  ASSERT_TRUE(doc.is_object());
  const info_text text = info_of(log);
  for (const char* f : required_fields) {
    ASSERT_TRUE(doc.contains(f)) << f;
    EXPECT_EQ(text_of(doc.at(f)), text.fields.at(f)) << f;
  }
  EXPECT_TRUE(doc.at("second_repl_offset").is_number());
  EXPECT_EQ(text_of(doc.at("second_repl_offset")), "-1");
  EXPECT_TRUE(doc.at("replid").is_string());
  EXPECT_EQ(text_of(doc.at("mode")), "0640");
  ASSERT_TRUE(doc.contains("writer_alive"));
  EXPECT_TRUE(doc.at("writer_alive").is_boolean());
  ASSERT_TRUE(doc.contains("readers"));
  const nlohmann::json& readers = doc.at("readers");
  ASSERT_TRUE(readers.is_array());
  ASSERT_EQ(readers.size(), 1u);
  const nlohmann::json& r = readers.at(0);
  ASSERT_TRUE(r.is_object());
  for (const char* f : required_reader_fields) {
    ASSERT_TRUE(r.contains(f)) << f;
    EXPECT_EQ(text_of(r.at(f)), text.readers.at(0).at(f)) << f;
  }
  EXPECT_EQ(text_of(r.at("label")), label.substr(0, 15));
}

TEST(cli, InfoJsonLabelTooLongForAUtf8CharacterIsCutBeforeIt) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  // 14 ASCII bytes then a 2-byte character: 15 bytes would end in half of it, so the library
  // keeps 14 and the JSON stays valid UTF-8.
  auto reader = shmlog::reader::attach(
      log.name(), {.start = shmlog::start_position::oldest(), .label = "abcdefghijklmn\xc3\xa9"});
  const std::string out = ok({"info", log, "--json"});
  nlohmann::json doc;
  ASSERT_NO_THROW(doc = nlohmann::json::parse(out)) << out;
  EXPECT_EQ(text_of(doc.at("readers").at(0).at("label")), "abcdefghijklmn");
}

TEST(cli, WriteRefusesALineLongerThanMaxPayloadKeepingTheLinesBefore) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  const std::string input =
      "one\n" + std::string(1016, 'm') + "\n" + std::string(1017, 'x') + "\nafter\n";
  const run_result r = run({"write", log}, input);
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_EQ(r.err,
            "shmlog write: line 3 is 1017 bytes, more than the log's max_payload of 1016 bytes; "
            "lines 1-2 were appended, line 3 and the rest were not\n");
  EXPECT_EQ(ok({"tail", log}), "one\n" + std::string(1016, 'm') + "\n");
}

TEST(cli, ASecondWriterIsRefusedNamingTheLiveWritersPid) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  cli_process first({"write", log});
  const std::string pid = std::to_string(first.pid());
  wait_for_info(log, [&](const info_text& i) {
    return i.fields.at("writer_alive") == "1" && i.fields.at("writer_pid") == pid;
  });
  const run_result second = run({"write", log}, "from the second writer\n");
  EXPECT_EQ(second.status, 1) << describe(second);
  EXPECT_EQ(second.out, "");
  EXPECT_EQ(line_count(second.err), 1u) << second.err;
  EXPECT_NE(second.err.find("already has a live writer (pid " + pid + ")"), std::string::npos)
      << second.err;

  first.write_stdin("from the first writer\n");
  const run_result r = first.finish();
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(ok({"tail", log}), "from the first writer\n");
  EXPECT_EQ(info_of(log).fields.at("writer_alive"), "0");
}

TEST(cli, ASegmentThatIsNotALogIsNamedAsSuch) {
  scoped_log log(unique_log_name("cli"));
  {
    std::ofstream junk("/dev/shm/" + log.name(), std::ios::binary);
    junk << std::string(8192, 'J');
  }
  for (const char* cmd : {"info", "tail", "write"}) {
    const run_result r = run({cmd, log});
    expect_one_error_line(r, 1, "is not a shmlog segment");
  }
}

// A shared-memory object another program made: `bytes` as its content.
void make_shm_object(const std::string& name, const std::string& bytes) {
  const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::optional<std::string> shm_object_content(const std::string& name) {
  std::ifstream in("/dev/shm/" + name, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Overwrites the log's capacity in its descriptor with one that is not a power of two: the
// header is then corrupt behind a valid magic number.
void corrupt_capacity(const std::string& name) {
  const int fd = ::open(("/dev/shm/" + name).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const std::uint64_t capacity = 12345;
  ASSERT_EQ(::pwrite(fd, &capacity, sizeof capacity, 16), static_cast<ssize_t>(sizeof capacity));
  ::close(fd);
}

// A mistyped name must not remove another program's shared memory: without --force, destroy
// removes only a shmlog segment, and says what it found instead.
TEST(cli, DestroyRefusesAnObjectThatIsNotALogUnlessForced) {
  std::string text;
  while (text.size() < 8192)
    text += "not a shmlog segment, just bytes\n";
  const std::pair<std::string, std::string> cases[] = {
      {text, "is not a shmlog segment (magic 0x6873206120746f6e)"},  // "not a sh"
      {"tiny", "is not a shmlog segment (4 bytes, too small to hold a shmlog descriptor of " +
                   std::to_string(sizeof(shmlog::segment_descriptor)) + " bytes)"},
      {std::string(10000, '\0'),
       "is not a shmlog segment (no magic number, and 10000 bytes is not the size of a shmlog "
       "segment whose creation was interrupted)"},
  };
  for (const auto& [bytes, what] : cases) {
    scoped_log log(unique_log_name("cli"));
    ASSERT_NO_FATAL_FAILURE(make_shm_object(log, bytes));
    const run_result r = run({"destroy", log});
    expect_one_error_line(r, 1,
                          "shmlog destroy: '/dev/shm/" + log.name() + "' " + what +
                              "; not removed (use --force to remove it anyway)\n");
    EXPECT_EQ(shm_object_content(log), bytes);
    ok({"destroy", log, "--force"});
    EXPECT_EQ(shm_object_content(log), std::nullopt);
  }
}

// What the library reports as a log that was never fully created (no magic, and empty or of a
// log's size: its creator died), or a log whose header is damaged behind its magic, is one to
// destroy and create again, as the library's messages say: no --force needed.
TEST(cli, DestroyRemovesAHalfCreatedOrDamagedLogWithoutForce) {
  for (const std::uint64_t size : {std::uint64_t{0}, shmlog::segment_size_for(4096, 64),
                                   shmlog::segment_size_for(1 << 20, 1)}) {
    scoped_log log(unique_log_name("cli"));
    ASSERT_NO_FATAL_FAILURE(make_shm_object(log, std::string(size, '\0')));
    expect_one_error_line(run({"info", log}), 1, "was never fully created");
    ok({"destroy", log});
    EXPECT_EQ(shm_object_content(log), std::nullopt) << size;
  }
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ASSERT_NO_FATAL_FAILURE(corrupt_capacity(log.name()));
  ASSERT_NE(run({"info", log}).status, 0);
  ok({"destroy", log});
  EXPECT_EQ(shm_object_content(log), std::nullopt);
}

TEST(cli, PermissionDeniedIsOneClearError) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  // root ignores file modes: run the tool as nobody instead; otherwise take our own access away.
  std::optional<uid_t> run_as;
  if (::geteuid() == 0)
    run_as = 65534;
  else
    ASSERT_EQ(::chmod(("/dev/shm/" + log.name()).c_str(), 0), 0);
  for (const char* cmd : {"info", "tail", "write"}) {
    std::optional<cli_process> p;
    try {
      p.emplace(std::vector<std::string>{cmd, log}, run_as);
    } catch (const shmlog::subprocess::spawn_error& e) {
      GTEST_SKIP() << "cannot run " << SHMLOG_CLI << " as uid " << *run_as << ": " << e.what();
    }
    const run_result r = p->finish();
    expect_one_error_line(r, 1, "permission denied");
  }
}

// Every bad command line: one line on stderr that names the command, nothing on stdout.
TEST(cli, EveryBadArgumentGetsOneLineOnStderrAndAUsageStatus) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  const std::string n = log.name();
  const std::string fresh = unique_log_name("cli");
  const std::vector<std::vector<std::string>> cases = {
      {"bogus"},
      {"--bogus"},
      {"create"},
      {"create", fresh},
      {"create", fresh, "--capacity"},
      {"create", fresh, "--capacity", "12X"},
      {"create", fresh, "--capacity", "64KB"},
      {"create", fresh, "--capacity", "1mb"},
      {"create", fresh, "--capacity", "K"},
      {"create", fresh, "--capacity", "64Ki"},
      {"create", fresh, "--capacity", "-5"},
      {"create", fresh, "--capacity", "1.5M"},
      {"create", fresh, "--capacity", ""},
      {"create", fresh, "--capacity", "99999999999G"},
      {"create", fresh, "--capacity", "99999999999999999999"},
      {"create", fresh, "--capacity", "5000"},
      {"create", fresh, "--capacity", "2K"},
      {"tail", n, "--wait-for-log", "soon"},
      {"tail", n, "--wait-for-log", "0"},
      {"replica", n, "--snapshot-dir", "/tmp", "--wait-for-log", "-1"},
      {"create", fresh, "--capacity", "4K", "--max-gating-wait", "61"},
      {"create", fresh, "--capacity", "4K", "--max-gating-wait", "0"},
      {"ship", n},
      {"ship", n, "--redis", ""},
      {"ship", n, "--redis", "rediss://127.0.0.1:1"},
      {"ship", n, "--redis", "redis://127.0.0.1:1", "--key", "bad key"},
      {"ship", n, "--redis", "redis://127.0.0.1:1", "--entry-bytes", "0"},
      {"ship", n, "--redis", "redis://127.0.0.1:1", "--snapshot-dir", "/nonexistent-dir"},
      {"mirror", n, "--redis", "redis://127.0.0.1:99999"},
      {"mirror", n, "--redis", "redis://127.0.0.1:1", "--redis-master", ""},
      {"mirror", n, "--redis", "redis://127.0.0.1:1", "--readers", "0"},
      {"promote", n},
      {"promote", n, "--redis", "redis://127.0.0.1:1", "--key", "a/b"},
      {"create", fresh, "--capacity", "2048G"},
      {"create", fresh, "--capacity", "4K", "--mode", "999"},
      {"create", fresh, "--capacity", "4K", "--mode", "abc"},
      {"create", fresh, "--capacity", "4K", "--fence", "bogus"},
      {"create", fresh, "--capacity", "4K", "--mode", ""},
      {"create", fresh, "--capacity", "4K", "--mode", "17777"},
      {"create", fresh, "--capacity", "4K", "--mode", "0400"},
      {"create", fresh, "--capacity", "4K", "--readers", "0"},
      {"create", fresh, "--capacity", "4K", "--readers", "x"},
      {"create", fresh, "--capacity", "4K", "--readers", "5000"},
      {"create", fresh, "--capacity", "4K", "--capacity", "8K"},
      {"create", fresh, "extra", "--capacity", "4K"},
      {"create", "bad/name", "--capacity", "4K"},
      {"create", "-starts-with-dash", "--capacity", "4K"},
      {"create", ".hidden", "--capacity", "4K"},
      {"create", "line\nbreak", "--capacity", "4K"},
      {"create", std::string(201, 'a'), "--capacity", "4K"},
      {"destroy"},
      {"destroy", "bad name"},
      {"destroy", n, "--force=yes"},
      {"destroy", n, "--bogus"},
      {"info"},
      {"info", n, "--bogus"},
      {"info", n, "--json=yes"},
      {"info", ""},
      {"write"},
      {"write", n, "extra"},
      {"tail"},
      {"tail", n, "--from"},
      {"tail", n, "--from", "abc"},
      {"tail", n, "--from", "-1"},
      {"tail", n, "--from", ""},
      {"tail", n, "--from", "1e3"},
      {"tail", n, "--count", "0"},
      {"tail", n, "--count", "-1"},
      {"tail", n, "--count", "1.5"},
      {"tail", n, "--count", "abc"},
      {"tail", n, "--count", "99999999999999999999"},
      {"tail", n, "--follow=1"},
      {"tail", n, "-z"},
      {"tail", n, "-fx"},
      {"tail", n, "-n"},
      {"tail", n, "-n", "0"},
      {"demo", "--seconds", "0"},
      {"demo", "--seconds", "abc"},
      {"demo", "--rate", "-1"},
      {"demo", "--capacity", "3K"},
      {"demo", "--readers", "0"},
      {"demo", "--readers", "17"},
      {"demo", "extra"},
  };
  for (const auto& args : cases)
    expect_usage_error(
        args, args[0] == "bogus" || args[0] == "--bogus" ? "shmlog: " : "shmlog " + args[0] + ": ");
  EXPECT_FALSE(shmlog::exists(fresh));
}

TEST(cli, CapacityErrorCarriesTheLibraryMessage) {
  const run_result r = run({"create", unique_log_name("cli"), "--capacity", "5000"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("shmlog create: capacity 5000 is not a power of two", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("nearest allowed: 8192"), std::string::npos) << r.err;
}

// The main job, shortened so far that the lap cannot happen within --seconds: 0.1 s at 20,000
// commands/s appends at most 2,001 records of at most 88 bytes, less than the 256 KiB ring. The
// throttled replica is paused at its first state and the producer goes on until it has
// overwritten that offset, so the replica is lapped and full-resyncs however fast or slow the
// machine (or the sanitizer build) is; the demo exits 0 only if that happened and every
// replica's state equals the producer's at its final offset.
TEST(cli, DemoLapsTheThrottledReplicaWhateverTheSpeedAndEveryStateMatches) {
  cli_process demo({"demo", "--seconds", "0.1", "--rate", "20000", "--capacity", "256K"});
  const run_result r = demo.finish();
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  const auto at = [&](const std::string& text) {
    const std::size_t i = r.out.find(text);
    EXPECT_NE(i, std::string::npos) << text << "\n" << r.out;
    return i;
  };
  const std::size_t paused = at("replica 2: paused at offset 0 until the producer");
  const std::size_t goes_on = at("the producer goes on past 0.1 s until it has overwritten");
  const std::size_t resumed = at("replica 2: resumed; the producer has overwritten offset 0");
  const std::size_t lapped = at("replica 2: lapped: wanted offset 0 but the oldest held is ");
  const std::size_t loaded = r.out.find("replica 2: loaded snapshot ", lapped);
  EXPECT_NE(loaded, std::string::npos) << r.out;
  EXPECT_LT(paused, goes_on);
  EXPECT_LT(goes_on, resumed);
  EXPECT_LT(resumed, lapped);
  const std::size_t table = r.out.find("\nstate at offset ");
  ASSERT_NE(table, std::string::npos) << r.out;
  for (const char* replica : {"\n  replica 0 ", "\n  replica 1 ", "\n  replica 2 "}) {
    const std::size_t line = r.out.find(replica, table);
    ASSERT_NE(line, std::string::npos) << r.out;
    EXPECT_NE(r.out.substr(line, r.out.find('\n', line + 1) - line).find(" equal "),
              std::string::npos)
        << r.out;
  }
  at("verdict: OK: all 3 replicas hold exactly the producer's state");
  at("; replica 2 was lapped ");
  at(" and recovered by a full resync ");
  // The temporary log and snapshot directory are gone.
  const std::string prefix = "shmlog-demo-" + std::to_string(demo.pid()) + "-";
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
    EXPECT_NE(entry.path().filename().string().rfind(prefix, 0), 0u) << entry.path();
  const std::string marker = "snapshots go to ";
  const std::size_t dir_at = r.out.find(marker);
  ASSERT_NE(dir_at, std::string::npos) << r.out;
  const std::string dir =
      r.out.substr(dir_at + marker.size(), r.out.find(',', dir_at) - dir_at - marker.size());
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
}

// --- the key-value commands: produce, replica, get ------------------------------------------

// A fresh directory for snapshot files and dumps, removed with everything in it at the end.
using scoped_dir = shmlog::test::scratch_dir;

// What a key-value state holds after the commands the tests send (kv_state's rules, restated
// so that the tests check the tool against an independent model).
class kv_model {
 public:
  void apply(const std::string& command) {
    std::istringstream in(command);
    std::string verb, key;
    in >> verb >> key;
    if (verb == "SET") {
      m_[key] = command.substr(verb.size() + key.size() + 2);
    } else if (verb == "DEL") {
      m_.erase(key);
    } else if (verb == "INCR") {
      m_[key] = std::to_string((m_.contains(key) ? std::stoll(m_[key]) : 0) + 1);
    } else {
      throw std::runtime_error("kv_model: " + command);
    }
  }
  // The --dump format: "key value" lines sorted by key, then "offset N".
  std::string dump(std::uint64_t offset) const {
    std::string out;
    for (const auto& [k, v] : m_)
      out += k + " " + v + "\n";
    return out + "offset " + std::to_string(offset) + "\n";
  }

 private:
  std::map<std::string, std::string> m_;
};

// Bytes a record of this command takes in the log: 8-byte header, payload rounded up to 8.
std::uint64_t frame(const std::string& command) {
  return 8 + (command.size() + 7) / 8 * 8;
}

using shmlog::test::read_file;

// "WAIT n ms -> K readers at offset M" -> M
std::uint64_t wait_line_offset(const std::optional<std::string>& line) {
  if (!line) throw std::runtime_error("no WAIT answer");
  const std::size_t at = line->rfind(" at offset ");
  if (at == std::string::npos) throw std::runtime_error("not a WAIT answer: " + *line);
  return std::stoull(line->substr(at + 11));
}

// The master offset once everything sent before is appended: produce handles lines in order.
std::uint64_t appended_offset(cli_process& producer) {
  producer.write_stdin("WAIT 0 0\n");
  return wait_line_offset(producer.read_line());
}

// produce prints one line when it has created or recovered the log and opened it as its
// writer: until then a replica would not find the log.
std::string started(cli_process& producer, const std::string& log) {
  const auto line = producer.wait_for_err("shmlog produce: log '" + log + "': ");
  if (!line) throw std::runtime_error("produce did not start: " + producer.finish().err);
  return *line;
}

// A replica has a state once it logs full_resync_done. (Before that its reader already
// publishes an offset, which WAIT counts: see the report's library notes.)
void synced(cli_process& replica) {
  if (!replica.wait_for_err(" full_resync_done at offset "))
    throw std::runtime_error("replica never synced: " + replica.finish().err);
}

run_result stop(cli_process& p, int sig = SIGTERM) {
  ::kill(p.pid(), sig);
  return p.finish();
}

TEST(cli, ProduceReplicaAndGetRoundTrip) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  cli_process producer({"produce", log, "--snapshot-dir", dir, "--capacity", "64K"});
  started(producer, log);
  kv_model model;
  std::uint64_t expected_offset = 0;
  for (const std::string c :
       {"SET a 1", "SET greeting hello world", "INCR n", "INCR n", "DEL a", "INCR counter"}) {
    producer.write_stdin(c + "\n");
    model.apply(c);
    expected_offset += frame(c);
  }
  // A new replica asks for a snapshot, loads it and applies what follows; WAIT 1 answers once
  // it has consumed everything appended so far.
  cli_process replica({"replica", log, "--snapshot-dir", dir});
  synced(replica);
  producer.write_stdin("WAIT 1 60000\n");
  EXPECT_EQ(producer.read_line(),
            "WAIT 1 60000 -> 1 reader at offset " + std::to_string(expected_offset));

  EXPECT_EQ(ok({"get", log, "greeting"}), "hello world\n");
  EXPECT_EQ(ok({"get", log, "n"}), "2\n");
  EXPECT_EQ(ok({"get", log, "n", "--pid", std::to_string(replica.pid())}), "2\n");
  const run_result absent = run({"get", log, "a"});
  expect_one_error_line(absent, 1,
                        "shmlog get: a is not set (replica pid " + std::to_string(replica.pid()) +
                            " at offset " + std::to_string(expected_offset) + ")\n");
  EXPECT_EQ(absent.err.rfind("shmlog get: a is not set", 0), 0u);

  // The replica is a reader with its label; the snapshot it loaded is in info.
  const info_text info = info_of(log);
  ASSERT_EQ(info.readers.size(), 1u);
  EXPECT_EQ(info.readers[0].at("label"), "replica");
  EXPECT_EQ(info.readers[0].at("pid"), std::to_string(replica.pid()));
  EXPECT_GE(number(info, "snapshot_generation"), 1u);
  EXPECT_EQ(info.fields.at("snapshot_path").rfind(dir.str() + "/" + log.name() + "-", 0), 0u);
  EXPECT_EQ(info.fields.at("snapshot_replid"), info.fields.at("replid"));
  EXPECT_GE(number(info, "snapshot_requests"), 1u);
  EXPECT_EQ(number(info, "snapshot_requests_served"), number(info, "snapshot_requests"));
  EXPECT_EQ(number(info, "sync_full"), 1u);

  // Stopped by SIGTERM: one line per event, each "<time> replica[<pid>] ...".
  const run_result r = stop(replica);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "");
  const std::string prefix = " replica[" + std::to_string(replica.pid()) + "] ";
  const auto lines = split_lines(r.err);
  ASSERT_GE(lines.size(), 3u) << r.err;
  for (const std::string& line : lines) {
    EXPECT_EQ(line.size() > 24 ? line.substr(24, prefix.size()) : "", prefix) << line;
    EXPECT_EQ(line.substr(4, 1) + line.substr(10, 1) + line.substr(23, 1), "-TZ") << line;
  }
  EXPECT_NE(r.err.find("full_resync_done at offset "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stopped at offset " + std::to_string(expected_offset)), std::string::npos)
      << r.err;

  // SIGTERM ends produce cleanly, after saving its state at the master offset.
  const run_result p = stop(producer);
  EXPECT_EQ(p.status, 0) << describe(p);
  const info_text after = info_of(log);
  EXPECT_EQ(number(after, "snapshot_offset"), expected_offset);
  EXPECT_EQ(after.fields.at("writer_alive"), "0");
}

TEST(cli, ReplicaDumpOnSigtermHoldsEveryRecordPublishedBeforeIt) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  cli_process producer({"produce", log, "--snapshot-dir", dir});  // 1M: the default capacity
  started(producer, log);
  cli_process first({"replica", log, "--snapshot-dir", dir, "--dump", dir.file("first.dump")});
  cli_process second(
      {"replica", log, "--snapshot-dir", dir, "--dump", dir.file("second.dump"), "--label", "b"});
  synced(first);
  synced(second);
  producer.write_stdin("WAIT 2 60000\n");
  ASSERT_EQ(producer.read_line(), "WAIT 2 60000 -> 2 readers at offset 0");

  // Many commands in one write: the replicas are still applying them when the signal comes.
  kv_model model;
  std::string input;
  for (int i = 0; i < 3000; ++i) {
    std::string c = i % 5 == 4   ? "DEL k" + std::to_string(i % 37)
                    : i % 3 == 0 ? "INCR c" + std::to_string(i % 7)
                                 : "SET k" + std::to_string(i % 37) + " v " + std::to_string(i);
    model.apply(c);
    input += c + "\n";
  }
  producer.write_stdin(input);
  const std::uint64_t published = appended_offset(producer);
  ::kill(first.pid(), SIGTERM);
  ::kill(second.pid(), SIGTERM);
  const run_result a = first.finish();
  const run_result b = second.finish();
  EXPECT_EQ(a.status, 0) << describe(a);
  EXPECT_EQ(b.status, 0) << describe(b);
  const std::string expected = model.dump(published);
  EXPECT_EQ(read_file(dir.file("first.dump")), expected);
  EXPECT_EQ(read_file(dir.file("second.dump")), expected);
  EXPECT_NE(a.err.find("dumped "), std::string::npos) << a.err;
  // Written atomically: no temporary file is left beside it.
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  EXPECT_EQ(producer.finish().status, 0);
}

// Issue 9, item 3 (Redis 4.0's PSYNC2 for a restarted replica): a replica that saves its state
// with the (history, offset) it reflects resumes from there by a partial resync, while the
// producer kept appending, and ends with the producer's state without loading a snapshot. Once
// after a clean stop (the save on SIGTERM), once after kill -9 (the save every second).
std::string commands(kv_model& model, int from, int count) {
  std::string input;
  for (int i = from; i < from + count; ++i) {
    const std::string c = i % 3 == 0 ? "INCR c" + std::to_string(i % 7)
                                     : "SET k" + std::to_string(i % 37) + " v " + std::to_string(i);
    model.apply(c);
    input += c + "\n";
  }
  return input;
}

TEST(cli, ReplicaRestartedWithItsStateFileResumesByAPartialResync) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  cli_process producer({"produce", log, "--snapshot-dir", dir});
  started(producer, log);
  kv_model model;
  producer.write_stdin(commands(model, 0, 200));
  appended_offset(producer);
  const std::string state_file = dir.file("replica.state");
  const std::vector<std::string> replica_args = {"replica",      log,        "--snapshot-dir", dir,
                                                 "--state-file", state_file, "--save-every",   "1"};
  {
    cli_process replica(replica_args);
    synced(replica);
    producer.write_stdin("WAIT 1 60000\n");
    producer.read_line();
    const run_result r = stop(replica);  // SIGTERM: saves the state file
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.err.find("saved the state at offset "), std::string::npos) << r.err;
  }
  producer.write_stdin(commands(model, 200, 100));  // while the replica is down
  appended_offset(producer);
  {
    cli_process replica(replica_args);
    const auto resumed = replica.wait_for_err(" partial_resync at offset ");
    ASSERT_TRUE(resumed);
    EXPECT_NE(resumed->find("resumed the saved state; partial resync: offset "), std::string::npos)
        << *resumed;
    // Periodic saves: one after this restart, then killed without a chance to save again.
    ASSERT_TRUE(replica.wait_for_err("saved the state at offset "));
    ::kill(replica.pid(), SIGKILL);
    replica.finish();
  }
  producer.write_stdin(commands(model, 300, 100));
  const std::uint64_t published = appended_offset(producer);
  cli_process replica(
      {"replica", log, "--snapshot-dir", dir, "--state-file", state_file, "--dump", dir.file("d")});
  ASSERT_TRUE(replica.wait_for_err(" partial_resync at offset "));
  producer.write_stdin("WAIT 1 60000\n");
  EXPECT_EQ(producer.read_line(),
            "WAIT 1 60000 -> 1 reader at offset " + std::to_string(published));
  const run_result r = stop(replica);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err.find("full_resync_done"), std::string::npos) << r.err;  // no snapshot loaded
  EXPECT_EQ(read_file(dir.file("d")), model.dump(published));
  const info_text info = info_of(log);
  EXPECT_EQ(number(info, "sync_full"), 1u);        // the first start only
  EXPECT_EQ(number(info, "sync_partial_ok"), 2u);  // each restart
  EXPECT_EQ(producer.finish().status, 0);
}

// A full resync waiting for a snapshot that never comes (no producer) ends at once on SIGTERM;
// with --dump, the first signal waits for the state, a second one gives up without a dump.
TEST(cli, ReplicaWaitingForASnapshotStopsOnSignal) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  ok({"create", log, "--capacity", "4K"});
  {
    cli_process replica({"replica", log, "--snapshot-dir", dir});
    ASSERT_TRUE(replica.wait_for_err("snapshot_requested"));
    const run_result r = stop(replica);
    EXPECT_EQ(r.status, 0) << describe(r);
  }
  cli_process replica({"replica", log, "--snapshot-dir", dir, "--dump", dir.file("d")});
  ASSERT_TRUE(replica.wait_for_err("snapshot_requested"));
  ::kill(replica.pid(), SIGTERM);
  ::kill(replica.pid(), SIGINT);
  const run_result r = replica.finish();
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("shmlog replica: stopped by a second signal before the state caught up "
                       "with offset 0; no dump written\n"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("d")));
}

// --wait-for-log: the daemon says it waits, a stop signal ends the wait (status 0, nothing
// applied), and a daemon left waiting attaches once the log is created.
TEST(cli, ReplicaWaitingForTheLogStopsOnSignalOrAttachesWhenItIsCreated) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  {
    cli_process replica({"replica", log, "--snapshot-dir", dir, "--wait-for-log", "60"});
    ASSERT_TRUE(replica.wait_for_err("to be created"));
    const run_result r = stop(replica);
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.err.find("stopped before log '" + log.name() + "' was created"), std::string::npos)
        << r.err;
  }
  cli_process replica({"replica", log, "--snapshot-dir", dir, "--wait-for-log", "60"});
  ASSERT_TRUE(replica.wait_for_err("to be created"));
  ok({"create", log, "--capacity", "4K"});
  ASSERT_TRUE(replica.wait_for_err("snapshot_requested"));  // attached, asking for a state
  EXPECT_EQ(stop(replica).status, 0);
}

// kill -9 after SNAPSHOT and two more records: the snapshot plus the backlog reach the master
// offset, so the restarted producer rebuilds the state and keeps the history.
TEST(cli, RestartedProduceContinuesTheSameHistory) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  kv_model model;
  std::uint64_t snapshot_offset = 0;
  {
    cli_process producer({"produce", log, "--snapshot-dir", dir, "--capacity", "64K"});
    started(producer, log);
    producer.write_stdin("SET a 1\nSNAPSHOT\nSET b 2\nINCR a\n");
    for (const char* c : {"SET a 1", "SET b 2", "INCR a"})
      model.apply(c);
    const auto snapshot = producer.read_line();
    ASSERT_TRUE(snapshot);
    EXPECT_EQ(snapshot->rfind("SNAPSHOT -> offset 16: " + dir.str() + "/" + log.name() + "-", 0),
              0u)
        << *snapshot;
    snapshot_offset = 16;
    EXPECT_EQ(appended_offset(producer), 48u);
    stop(producer, SIGKILL);
  }
  const info_text before = info_of(log);
  EXPECT_EQ(number(before, "snapshot_offset"), snapshot_offset);

  cli_process producer({"produce", log, "--snapshot-dir", dir});
  const std::optional<std::string> start = started(producer, log);
  EXPECT_NE(start->find("recovered snapshot " + dir.str() + "/"), std::string::npos) << *start;
  EXPECT_NE(start->find(" (offset 16) and 2 records (32 bytes) of the backlog; "
                        "same history, continuing at offset 48 (history " +
                        before.fields.at("replid") + ")"),
            std::string::npos)
      << *start;
  EXPECT_NE(start->find("had crashed"), std::string::npos) << *start;
  producer.write_stdin("INCR a\n");
  model.apply("INCR a");
  EXPECT_EQ(appended_offset(producer), 64u);
  const info_text after = info_of(log);
  EXPECT_EQ(after.fields.at("replid"), before.fields.at("replid"));
  EXPECT_EQ(after.fields.at("replid2"), std::string(40, '0'));
  EXPECT_EQ(number(after, "history_epoch"), 0u);

  cli_process replica({"replica", log, "--snapshot-dir", dir, "--dump", dir.file("d")});
  synced(replica);
  producer.write_stdin("WAIT 1 60000\n");
  EXPECT_EQ(producer.read_line(), "WAIT 1 60000 -> 1 reader at offset 64");
  EXPECT_EQ(stop(replica).status, 0);
  EXPECT_EQ(read_file(dir.file("d")), model.dump(64));
  EXPECT_EQ(producer.finish().status, 0);
}

// A 4 KiB ring and a snapshot at offset 16, then 5 KiB of records and kill -9: the backlog no
// longer holds offset 16, so the restarted producer's state is the snapshot's, and the library
// branches the history from it (replid2 = the old replid, second_repl_offset = 16).
TEST(cli, RestartedProduceBranchesWhenTheBacklogNoLongerHoldsItsSnapshot) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  std::uint64_t master = 0;
  {
    cli_process producer({"produce", log, "--snapshot-dir", dir, "--capacity", "4K"});
    started(producer, log);
    std::string input = "SET k 1\nSNAPSHOT\n";
    for (int i = 0; i < 100; ++i)
      input += "SET filler" + std::to_string(i) + " " + std::string(30, 'x') + "\n";
    producer.write_stdin(input);
    ASSERT_TRUE(producer.read_line());  // SNAPSHOT -> offset 16
    master = appended_offset(producer);
    stop(producer, SIGKILL);
  }
  const info_text before = info_of(log);
  const std::uint64_t oldest = number(before, "repl_backlog_first_byte_offset");
  ASSERT_GT(oldest, 16u);

  cli_process producer({"produce", log, "--snapshot-dir", dir});
  const std::optional<std::string> start = started(producer, log);
  EXPECT_NE(start->find(" (offset 16); "), std::string::npos) << *start;
  EXPECT_NE(start->find("; 1 keys"), std::string::npos) << *start;
  EXPECT_NE(start->find("the backlog cannot continue it (full resync: offset 16 is before the "
                        "oldest held offset " +
                        std::to_string(oldest) + "), so records after offset 16 are lost"),
            std::string::npos)
      << *start;
  EXPECT_NE(start->find("new history sharing the log's first 16 bytes"), std::string::npos)
      << *start;
  const info_text after = info_of(log);
  EXPECT_NE(after.fields.at("replid"), before.fields.at("replid"));
  EXPECT_EQ(after.fields.at("replid2"), before.fields.at("replid"));
  EXPECT_EQ(after.fields.at("second_repl_offset"), "16");
  EXPECT_EQ(number(after, "history_epoch"), 1u);

  // Every replica now has exactly the snapshot's state.
  cli_process replica({"replica", log, "--snapshot-dir", dir, "--dump", dir.file("d")});
  synced(replica);
  producer.write_stdin("WAIT 1 60000\n");
  const std::uint64_t now = wait_line_offset(producer.read_line());
  EXPECT_EQ(now, master);  // the ring no longer held offset 16: the master offset stayed
  EXPECT_EQ(stop(replica).status, 0);
  EXPECT_EQ(read_file(dir.file("d")), "k 1\noffset " + std::to_string(now) + "\n");
  EXPECT_EQ(producer.finish().status, 0);
}

// The newest snapshot belongs to another history altogether (here: another log's snapshot put
// in its place, as when the wrong backup is restored): the library restarts the history.
TEST(cli, RestartedProduceRestartsTheHistoryForAStateOfAnotherHistory) {
  scoped_log log(unique_log_name("cli"));
  scoped_log other(unique_log_name("cli"));
  scoped_dir dir;
  std::string ours, theirs;
  {
    cli_process p({"produce", log, "--snapshot-dir", dir, "--capacity", "64K"});
    started(p, log);
    p.write_stdin("SET x 1\nSNAPSHOT\n");
    ours = p.read_line().value_or("");
    EXPECT_EQ(p.finish().status, 0);
    cli_process q({"produce", other, "--snapshot-dir", dir, "--capacity", "64K"});
    started(q, other);
    q.write_stdin("SET y 1\nSET z 2\nSNAPSHOT\n");
    theirs = q.read_line().value_or("");
    EXPECT_EQ(q.finish().status, 0);
  }
  const auto path_of = [](const std::string& line) {
    return line.substr(line.find(": ") + 2, line.rfind(" (") - line.find(": ") - 2);
  };
  std::filesystem::copy_file(path_of(theirs), path_of(ours),
                             std::filesystem::copy_options::overwrite_existing);
  const info_text before = info_of(log);

  cli_process producer({"produce", log, "--snapshot-dir", dir});
  const std::optional<std::string> start = started(producer, log);
  EXPECT_NE(
      start->find("full resync: the requested history is neither " + before.fields.at("replid")),
      std::string::npos)
      << *start;
  EXPECT_NE(start->find("new history sharing nothing with the log; continuing at offset 16"),
            std::string::npos)
      << *start;
  const info_text after = info_of(log);
  EXPECT_NE(after.fields.at("replid"), before.fields.at("replid"));
  EXPECT_EQ(after.fields.at("replid2"), std::string(40, '0'));

  cli_process replica({"replica", log, "--snapshot-dir", dir});
  synced(replica);
  producer.write_stdin("WAIT 1 60000\n");
  ASSERT_TRUE(producer.read_line());
  EXPECT_EQ(ok({"get", log, "z"}), "2\n");
  EXPECT_EQ(run({"get", log, "x"}).status, 1);
  EXPECT_EQ(stop(replica).status, 0);
  EXPECT_EQ(producer.finish().status, 0);
}

// /dev/shm does not survive a reboot, the snapshot directory does: a producer that finds no log
// but snapshots of one of that name recovers its state from the newest, on a new history, and
// retires the old files (their generations would outrank the new log's own).
// Issue 8, item 1: a producer killed while it changed the history leaves the block half-written.
// info and tail say so at once (they used to wait forever), and the next produce repairs it.
TEST(cli, HistoryLeftHalfWrittenIsReportedByInfoAndTailThenRepairedByTheNextProducer) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  ASSERT_EQ(run({"produce", log, "--snapshot-dir", dir}, "SET a 1\nSET b 2\n").status, 0);
  const info_text before = info_of(log);
  shmlog::test::raw_segment(log.name())
      .poke<std::uint32_t>(offsetof(shmlog::segment_header, history), 5);  // seq: odd
  const std::string half_written = "log '" + log.name() +
                                   "': the history block was left half-written (seq 5) by writer "
                                   "pid " +
                                   before.fields.at("writer_pid") +
                                   ", which died while changing it; the next writer to open the "
                                   "log repairs it";
  // info shows everything else, and says what it could not read.
  const run_result info = run({"info", log});
  EXPECT_EQ(info.status, 1) << describe(info);
  EXPECT_EQ(info.err, "shmlog info: " + half_written + "\n");
  EXPECT_NE(info.out.find("master_repl_offset:"), std::string::npos) << info.out;
  expect_one_error_line(run({"tail", log, "--from", "oldest"}), 1, half_written);

  const run_result next = run({"produce", log, "--snapshot-dir", dir}, "SET c 3\n");
  EXPECT_EQ(next.status, 0) << describe(next);
  EXPECT_NE(next.err.find(half_written + "; the backlog cannot be replayed, starting from "
                                         "snapshot "),
            std::string::npos)
      << next.err;
  EXPECT_NE(next.err.find("new history sharing nothing with the log"), std::string::npos)
      << next.err;
  EXPECT_NE(info_of(log).fields.at("replid"), before.fields.at("replid"));
}

TEST(cli, ProduceRecoversFromTheSnapshotsOfARemovedLog) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  EXPECT_EQ(run({"produce", log, "--snapshot-dir", dir, "--keep", "5"},
                "SET a 1\nSNAPSHOT\nSET b 2\nSNAPSHOT\nINCR a\n")
                .status,
            0);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 3);
  ok({"destroy", log});

  cli_process producer({"produce", log, "--snapshot-dir", dir});
  const std::string start = started(producer, log);
  EXPECT_NE(
      start.find("created log with capacity 1048576 and 64 reader slots; recovered snapshot " +
                 dir.file(log.name() + "-00000000000000000048-3.snap") +
                 " (offset 48) left by an earlier log of that name; new history "
                 "sharing nothing with the log; continuing at offset 0"),
      std::string::npos)
      << start;
  EXPECT_NE(start.find("saved the recovered state as " +
                       dir.file(log.name() + "-00000000000000000000-1.snap") +
                       " and removed 3 snapshot files"),
            std::string::npos)
      << start;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    files.push_back(e.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{log.name() + "-00000000000000000000-1.snap"});

  cli_process replica({"replica", log, "--snapshot-dir", dir, "--dump", dir.file("d")});
  synced(replica);
  producer.write_stdin("INCR a\nWAIT 1 60000\n");
  EXPECT_EQ(producer.read_line(), "WAIT 1 60000 -> 1 reader at offset 16");
  EXPECT_EQ(stop(replica).status, 0);
  EXPECT_EQ(read_file(dir.file("d")), "a 3\nb 2\noffset 16\n");
  EXPECT_EQ(producer.finish().status, 0);
}

// A link in the snapshot directory named like the newest snapshot, pointing at another log's
// file: recovery must neither load it through the link nor remove it (nor its target).
TEST(cli, ProduceRecoveryNeitherFollowsNorRemovesASymlinkedSnapshot) {
  scoped_log log(unique_log_name("cli"));
  scoped_log other_log(unique_log_name("cli"));
  scoped_dir dir;
  scoped_dir other;
  EXPECT_EQ(run({"produce", other_log, "--snapshot-dir", other}, "SET evil 1\nSNAPSHOT\n").status,
            0);
  const std::filesystem::path target =
      std::filesystem::directory_iterator(other.path())->path();  // another log's snapshot
  const std::string target_bytes = read_file(target);
  EXPECT_EQ(run({"produce", log, "--snapshot-dir", dir}, "SET a 1\nSNAPSHOT\n").status, 0);
  ok({"destroy", log});
  const std::filesystem::path link =
      dir.path() / (log.name() + "-00000000000000000999-99.snap");  // would be the newest
  std::filesystem::create_symlink(target, link);

  cli_process producer({"produce", log, "--snapshot-dir", dir});
  const std::string start = started(producer, log);
  EXPECT_NE(start.find("recovered snapshot " +
                       dir.file(log.name() + "-00000000000000000016-1.snap") + " (offset 16)"),
            std::string::npos)
      << start;
  EXPECT_NE(start.find("and removed 1 snapshot files"), std::string::npos) << start;
  const run_result r = producer.finish();
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(read_file(target), target_bytes);
}

TEST(cli, WaitPrintsHowManyReadersReachedTheOffset) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  // fork mode: the snapshots the replicas ask for are saved by a child (Redis BGSAVE).
  cli_process producer(
      {"produce", log, "--snapshot-dir", dir, "--capacity", "64K", "--snapshot-mode", "fork"});
  started(producer, log);
  producer.write_stdin("SET a 1\nWAIT 1 50\n");
  EXPECT_EQ(producer.read_line(), "WAIT 1 50 -> 0 readers at offset 16");
  cli_process one({"replica", log, "--snapshot-dir", dir});
  cli_process two({"replica", log, "--snapshot-dir", dir});
  synced(one);
  synced(two);
  producer.write_stdin("WAIT 2 60000\n");
  EXPECT_EQ(producer.read_line(), "WAIT 2 60000 -> 2 readers at offset 16");
  producer.write_stdin("SET b 2\nWAIT 2 60000\nWAIT 3 50\nWAIT 0 0\n");
  EXPECT_EQ(producer.read_line(), "WAIT 2 60000 -> 2 readers at offset 32");
  EXPECT_EQ(producer.read_line(), "WAIT 3 50 -> 2 readers at offset 32");
  EXPECT_EQ(producer.read_line(), "WAIT 0 0 -> 2 readers at offset 32");
  EXPECT_EQ(ok({"get", log, "b", "--pid", std::to_string(two.pid())}), "2\n");
  EXPECT_EQ(stop(one).status, 0);
  EXPECT_EQ(stop(two).status, 0);
  const run_result r = producer.finish();
  EXPECT_EQ(r.status, 0) << describe(r);
}

TEST(cli, InvalidProduceLinesAreSkippedWithOneStderrLineEach) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  const std::string input = std::string("SET a 1\n") +                     // 1
                            "BOGUS x\n" +                                  // 2
                            "SET\n" +                                      // 3
                            "SET a\n" +                                    // 4
                            "INCR a\n" +                                   // 5
                            "SET s some text\n" +                          // 6
                            "INCR s\n" +                                   // 7
                            "DEL a b\n" +                                  // 8
                            "WAIT 1\n" +                                   // 9
                            "WAIT x 5\n" +                                 // 10
                            "SNAPSHOT now\n" +                             // 11
                            "\n" +                                         // 12: blank, ignored
                            "SET big " + std::string(20000, 'b') + "\n" +  // 13
                            "set a 5\n" +                                  // 14
                            "DEL a";                                       // 15, no newline
  const run_result r = run({"produce", log, "--snapshot-dir", dir, "--capacity", "64K"}, input);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "");
  std::vector<std::string> invalid;
  for (const std::string& line : split_lines(r.err))
    if (line.find(": line ") != std::string::npos) invalid.push_back(line);
  const std::vector<std::string> expected = {
      "shmlog produce: line 2: unknown command 'BOGUS' (SET, DEL, INCR)",
      "shmlog produce: line 3: missing key",
      "shmlog produce: line 4: SET needs a value",
      "shmlog produce: line 7: value is not an integer or out of range",
      "shmlog produce: line 8: DEL takes a key only",
      "shmlog produce: line 9: WAIT needs two whole numbers: readers (at most 1048576) and a "
      "timeout in milliseconds (at most 86400000), e.g. WAIT 2 500",
      "shmlog produce: line 10: WAIT needs two whole numbers: readers (at most 1048576) and a "
      "timeout in milliseconds (at most 86400000), e.g. WAIT 2 500",
      "shmlog produce: line 11: SNAPSHOT takes no arguments",
      "shmlog produce: line 13: command of 20008 bytes is longer than the log's max_payload of "
      "16376 bytes",
      "shmlog produce: line 14: unknown command 'set' (SET, DEL, INCR)",
  };
  EXPECT_EQ(invalid, expected) << r.err;
  EXPECT_EQ(ok({"tail", log}), "SET a 1\nINCR a\nSET s some text\nDEL a\n");
}

// A line far longer than max_payload is dropped as it streams in, and is still one error.
TEST(cli, ProduceRefusesAnEnormousLineWithoutKeepingIt) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  const std::string input = "SET " + std::string(300000, 'k') + " v\nSET a 1\n";
  const run_result r = run({"produce", log, "--snapshot-dir", dir, "--capacity", "4K"}, input);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_NE(r.err.find("shmlog produce: line 1: command of 300006 bytes is longer than the log's "
                       "max_payload of 1016 bytes\n"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ok({"tail", log}), "SET a 1\n");
}

TEST(cli, ProduceOnAnExistingLogChecksCapacityAndTheSnapshotDirectory) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir, elsewhere;
  EXPECT_EQ(run({"produce", log, "--snapshot-dir", dir, "--capacity", "8K"}, "SNAPSHOT\n").status,
            0);
  expect_one_error_line(run({"produce", log, "--snapshot-dir", dir, "--capacity", "4K"}), 1,
                        "exists with capacity 8192, not 4096");
  expect_one_error_line(run({"produce", log, "--snapshot-dir", dir, "--readers", "2"}), 1,
                        "exists with 64 reader slots, not 2");
  expect_one_error_line(run({"produce", log, "--snapshot-dir", elsewhere}), 1,
                        "publishes its snapshots in '" + dir.str() +
                            "', not in the snapshot directory given ('" + elsewhere.str() + "')");
  cli_process first({"produce", log, "--snapshot-dir", dir});
  ASSERT_TRUE(first.wait_for_err("log '" + log.name() + "'"));
  expect_one_error_line(run({"produce", log, "--snapshot-dir", dir}), 1,
                        "already has a live writer (pid " + std::to_string(first.pid()) + ")");
  EXPECT_EQ(first.finish().status, 0);
}

TEST(cli, GetWithoutAReplicaIsOneClearError) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  expect_one_error_line(run({"get", log, "k"}), 1,
                        "shmlog get: no replica daemon is serving log '" + log.name() +
                            "' (0 live readers, none answers GET");
  // A reader that is not a replica daemon (tail) does not answer.
  cli_process tail({"tail", log, "--follow"});
  wait_for_info(log, [](const info_text& i) { return i.readers.size() == 1; });
  expect_one_error_line(run({"get", log, "k"}), 1, "(1 live readers, none answers GET");
  expect_one_error_line(run({"get", log, "k", "--pid", std::to_string(tail.pid())}), 1,
                        "reads log '" + log.name() + "' but is not a shmlog replica daemon");
  expect_one_error_line(run({"get", log, "k", "--pid", "1"}), 1,
                        "pid 1 is not a live reader of log '" + log.name() + "'");
  expect_one_error_line(run({"get", unique_log_name("cli"), "k"}), 1, "does not exist");
  EXPECT_EQ(stop(tail).status, 0);
}

// --- the GET socket: an abstract name anyone may bind ------------------------------------

// Binds and listens on an abstract name from the test process, as any program of any user
// could: the listener's SO_PEERCRED credentials are the test's pid and uid. A forked child
// answers every connection with a forged value (replica_daemon's reply format), so a client
// that believed it would print that value.
class squatter {
 public:
  static constexpr const char* forged_value = "forged-by-squatter";

  explicit squatter(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, 16) != 0)
      throw std::runtime_error("cannot listen on @" + name + ": " + std::strerror(errno));
    child_ = ::fork();
    if (child_ < 0) throw std::runtime_error("fork failed");
    if (child_ == 0) {
      // Only the listening socket: pipes of a cli_process alive now must not stay open here.
      if (fd_ > 3) ::close_range(3, static_cast<unsigned>(fd_) - 1, 0);
      ::close_range(static_cast<unsigned>(fd_) + 1, ~0U, 0);
      static constexpr char reply[] = "VALUE 0\nforged-by-squatter";
      for (;;) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        char request[1024];
        (void)::recv(c, request, sizeof request, 0);
        (void)::send(c, reply, sizeof reply - 1, MSG_NOSIGNAL);
        ::close(c);
      }
    }
  }
  ~squatter() {
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  squatter(const squatter&) = delete;
  squatter& operator=(const squatter&) = delete;

 private:
  int fd_ = -1;
  pid_t child_ = -1;
};

// The name docs/cli.md gives a replica's query (GET) socket.
std::string replica_address(pid_t pid) {
  return "shmlog-replica-" + std::to_string(pid);
}

// The name is bound before the daemon starts (it is derived from the pid: the child waits for
// the test to bind it). The daemon must not run unreachable: it exits 1 naming the address and
// the holder, having asked the producer for nothing.
TEST(cli, ReplicaWhoseGetSocketNameIsTakenExits1NamingTheAddressAndItsHolder) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  ok({"create", log, "--capacity", "4K"});
  cli_process replica({"replica", log, "--snapshot-dir", dir}, {}, start_mode::on_release);
  const std::string address = replica_address(replica.pid());
  const squatter holder(address);
  replica.release();
  const run_result r = replica.finish();
  expect_one_error_line(r, 1,
                        "shmlog replica: cannot serve queries on @" + address +
                            ": another process (pid " + std::to_string(::getpid()) +
                            " running as uid " + std::to_string(::geteuid()) +
                            ", your own user) already holds that socket address");
  EXPECT_EQ(info_of(log).fields.at("snapshot_requests"), "0");
}

// A live reader that is not a replica daemon (tail) and a process that listens on the name
// derived from tail's pid: `get` must see that the listener is not tail and print no answer.
// (All tests run as one uid, so the pid is what trips here; the uid rule is tested below.)
TEST(cli, GetRefusesAListenerThatIsNotTheReaderItsNameIsDerivedFrom) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  cli_process tail({"tail", log, "--follow"});
  wait_for_info(log, [](const info_text& i) { return i.readers.size() == 1; });
  const std::string address = replica_address(tail.pid());
  const squatter forger(address);
  const std::string expected =
      "shmlog get: refusing @" + address + " (the query socket of reader pid " +
      std::to_string(tail.pid()) + " of log '" + log.name() + "'): expected pid " +
      std::to_string(tail.pid()) + " running as " +
      (::geteuid() == 0 ? "root" : "uid " + std::to_string(::geteuid()) + " (yours) or root") +
      ", found pid " + std::to_string(::getpid()) + " running as uid " +
      std::to_string(::geteuid()) + "; another process holds that name";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"get", log, "k"}, {"get", log, "k", "--pid", std::to_string(tail.pid())}}) {
    const run_result r = run(args);
    expect_one_error_line(r, 1, expected);
    EXPECT_EQ(r.err.find(squatter::forged_value), std::string::npos) << r.err;
  }
  EXPECT_EQ(stop(tail).status, 0);
}

// As the lapped test: tail is stopped while the writer laps it. With --on-lap=skip it says
// what it lost and goes on from the first record a quarter ring ahead of the oldest record's
// chunk (lap_policy::oldest_safe), not from the record the writer overwrites next.
TEST(cli, TailOnLapSkipGoesOnAQuarterRingAheadOfTheOldestRecordHeld) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, "a\nb\nc\n");
  const std::uint64_t wanted = number(info_of(log), "master_repl_offset");
  cli_process tail({"tail", log, "--follow", "--from", "oldest", "--on-lap=skip"});
  for (const char* expected : {"a", "b", "c"})
    ASSERT_EQ(tail.read_line(), expected);
  ASSERT_NO_FATAL_FAILURE(stop_when_caught_up(log, tail));
  ok({"write", log}, numbered_lines(40, 200));
  const std::uint64_t oldest = number(info_of(log), "repl_backlog_first_byte_offset");
  ASSERT_GT(oldest, wanted);
  ASSERT_EQ(::kill(tail.pid(), SIGCONT), 0);

  const std::uint64_t master = number(info_of(log), "master_repl_offset");
  const std::optional<std::string> said = tail.read_err_line();
  ASSERT_TRUE(said);
  unsigned long long skipped = 0;
  unsigned long long from = 0;
  unsigned long long to = 0;
  ASSERT_EQ(
      std::sscanf(said->c_str(), "shmlog tail: lapped: skipped %llu bytes from offset %llu to %llu",
                  &skipped, &from, &to),
      3)
      << *said;
  EXPECT_EQ(from, wanted);
  EXPECT_EQ(skipped, to - wanted);
  // 4 KiB ring: 256-byte chunks; a quarter ring is 1 KiB; a 200-byte line's frame is shorter
  // than a chunk.
  const std::uint64_t boundary = (oldest & ~std::uint64_t{255}) + 1024;
  EXPECT_GE(to, boundary);
  EXPECT_LT(to, boundary + 256);
  EXPECT_LE(to, master);
  // What follows is what the ring still held, in order, up to the last line written.
  const auto held = tail.read_line();
  ASSERT_TRUE(held);
  EXPECT_EQ(held->rfind("line-", 0), 0u) << *held;
  while (auto line = tail.read_line())
    if (line->rfind("line-39-", 0) == 0) break;
  ok({"write", log}, "after\n");
  EXPECT_EQ(tail.read_line(), "after");
  const run_result r = stop(tail);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(number(info_of(log), "lapped_total"), 1u);
}

// tail --on-lap=resync on a producer's log: when lapped it loads the producer's snapshot (as a
// replica does: it asks, the producer saves one) and prints the records after its offset.
TEST(cli, TailOnLapResyncContinuesFromTheProducersSnapshot) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  cli_process producer({"produce", log, "--snapshot-dir", dir, "--capacity", "4K"});
  started(producer, log);
  producer.write_stdin("SET a 1\n");
  ASSERT_EQ(appended_offset(producer), 16u);
  cli_process tail(
      {"tail", log, "--follow", "--from", "oldest", "--on-lap", "resync", "--snapshot-dir", dir});
  ASSERT_EQ(tail.read_line(), "SET a 1");
  ASSERT_NO_FATAL_FAILURE(stop_when_caught_up(log, tail));
  std::string input;
  for (int i = 0; i < 100; ++i)
    input += "SET key" + std::to_string(i) + " " + std::string(30, 'v') + "\n";
  producer.write_stdin(input);
  const std::uint64_t master = appended_offset(producer);
  const std::uint64_t oldest = number(info_of(log), "repl_backlog_first_byte_offset");
  ASSERT_GT(oldest, 16u);
  ASSERT_EQ(::kill(tail.pid(), SIGCONT), 0);

  EXPECT_EQ(tail.read_err_line(),
            "shmlog tail: lapped: wanted offset 16 but the oldest held "
            "offset is " +
                std::to_string(oldest) + " (" + std::to_string(oldest - 16) +
                " bytes lost); full resync from the producer's snapshot");
  const auto done = tail.wait_for_err("(the state it holds is not printed)");
  ASSERT_TRUE(done);
  EXPECT_NE(done->find("verified snapshot 1 at offset " + std::to_string(master) + " "),
            std::string::npos)
      << *done;
  producer.write_stdin("SET after 1\n");
  EXPECT_EQ(tail.read_line(), "SET after 1");  // nothing in between: it went on from `master`
  EXPECT_EQ(stop(tail).status, 0);
  EXPECT_EQ(number(info_of(log), "sync_full"), 1u);
  EXPECT_EQ(producer.finish().status, 0);
}

// --from an overwritten offset with --on-lap=resync: the full resync a lap would do, then the
// records after the snapshot's offset (none here: the producer is idle, so its snapshot is
// at the master offset, where a tail without --follow ends).
TEST(cli, FromAnOverwrittenOffsetWithOnLapResyncLoadsTheProducersSnapshot) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  cli_process producer({"produce", log, "--snapshot-dir", dir, "--capacity", "4K"});
  started(producer, log);
  std::string input;
  for (int i = 0; i < 100; ++i)
    input += "SET key" + std::to_string(i) + " " + std::string(30, 'v') + "\n";
  producer.write_stdin(input);
  const std::uint64_t master = appended_offset(producer);
  const std::uint64_t oldest = number(info_of(log), "repl_backlog_first_byte_offset");
  ASSERT_GT(oldest, 0u);

  cli_process tail({"tail", log, "--from", "0", "--on-lap", "resync", "--snapshot-dir", dir});
  const run_result r = tail.finish();
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "");
  const auto lines = split_lines(r.err);
  ASSERT_GE(lines.size(), 2u) << r.err;
  EXPECT_EQ(lines.front(), "shmlog tail: lapped: wanted offset 0 but the oldest held offset is " +
                               std::to_string(oldest) + " (" + std::to_string(oldest) +
                               " bytes lost); full resync from the producer's snapshot");
  EXPECT_NE(lines.back().find("verified snapshot 1 at offset " + std::to_string(master) + " "),
            std::string::npos)
      << r.err;
  EXPECT_NE(lines.back().find("; continuing from there (the state it holds is not printed)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(number(info_of(log), "sync_full"), 1u);
  EXPECT_EQ(producer.finish().status, 0);
}

// Every bad argument of the new commands and options: one line on stderr, status 2.
TEST(cli, BadArgumentsOfTheKeyValueCommandsAreUsageErrors) {
  scoped_log log(unique_log_name("cli"));
  scoped_dir dir;
  ok({"create", log, "--capacity", "4K"});
  const std::string n = log.name();
  const std::string d = dir;
  const std::string missing = dir.file("no-such-dir");
  const std::string plain_file = dir.file("file");
  std::ofstream(plain_file) << "x";
  const std::vector<std::vector<std::string>> cases = {
      {"produce"},
      {"produce", n},
      {"produce", n, "--snapshot-dir"},
      {"produce", n, "--snapshot-dir", ""},
      {"produce", n, "--snapshot-dir", missing},
      {"produce", n, "--snapshot-dir", plain_file},
      {"produce", n, "--snapshot-dir", d, "--snapshot-mode", "bgsave"},
      {"produce", n, "--snapshot-dir", d, "--keep", "0"},
      {"produce", n, "--snapshot-dir", d, "--keep", "x"},
      {"produce", n, "--snapshot-dir", d, "--check-every", "0"},
      {"produce", unique_log_name("cli"), "--snapshot-dir", d, "--capacity", "5000"},
      {"produce", n, "--snapshot-dir", d, "--readers", "0"},
      {"produce", "bad/name", "--snapshot-dir", d},
      {"produce", n, "extra", "--snapshot-dir", d},
      {"replica"},
      {"replica", n},
      {"replica", n, "--snapshot-dir", missing},
      {"replica", n, "--snapshot-dir", d, "--dump", missing + "/dump"},
      {"replica", n, "--snapshot-dir", d, "--dump", d},
      {"replica", n, "--snapshot-dir", d, "--dump", ""},
      {"replica", n, "--snapshot-dir", d, "--label", ""},
      {"replica", n, "--snapshot-dir", d, "--label", "sixteen-bytes-xx"},
      {"get"},
      {"get", n},
      {"get", n, "k", "extra"},
      {"get", n, ""},
      {"get", n, "two words"},
      {"get", n, "k", "--pid", "0"},
      {"get", n, "k", "--pid", "x"},
      {"get", "bad name", "k"},
      {"tail", n, "--on-lap", "bogus"},
      {"tail", n, "--on-lap=resync"},
      {"tail", n, "--on-lap=resync", "--snapshot-dir", missing},
      {"tail", n, "--snapshot-dir", d},
      {"tail", n, "--on-lap=skip", "--snapshot-dir", d},
  };
  for (const auto& args : cases)
    expect_usage_error(args, "shmlog " + args[0] + ": ");
  // Nothing was created, and the existing log was not opened as a writer.
  EXPECT_EQ(info_of(log).fields.at("writer_generation"), "0");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

// --- list, info --prometheus, info --watch --------------------------------------------------

// The entry of `name` in `shmlog list --json`'s output, or null if it is not listed.
nlohmann::json listed(const nlohmann::json& list, const std::string& name) {
  for (const nlohmann::json& l : list.at("logs"))
    if (l.at("name") == name) return l;
  return nullptr;
}

TEST(cli, ListShowsEveryLogAndLeavesOtherObjectsOut) {
  scoped_log a(unique_log_name("cli"));
  scoped_log b(unique_log_name("cli"));
  scoped_log foreign(unique_log_name("cli"));
  scoped_log damaged(unique_log_name("cli"));
  ok({"create", a, "--capacity", "4K"});
  ok({"create", b, "--capacity", "64K", "--mode", "0640"});
  ok({"write", b}, "one\ntwo\n");
  ASSERT_NO_FATAL_FAILURE(make_shm_object(foreign, std::string(8192, 'x')));
  ok({"create", damaged, "--capacity", "4K"});
  ASSERT_NO_FATAL_FAILURE(corrupt_capacity(damaged.name()));
  shmlog::reader r = shmlog::reader::attach(
      b.name(), {.start = shmlog::start_position::oldest(), .label = "list-test"});

  const nlohmann::json list = nlohmann::json::parse(ok({"list", "--json"}));
  const nlohmann::json ja = listed(list, a);
  const nlohmann::json jb = listed(list, b);
  ASSERT_FALSE(ja.is_null());
  ASSERT_FALSE(jb.is_null());
  EXPECT_EQ(ja.at("capacity"), 4096);
  EXPECT_EQ(ja.at("readers"), 0);
  EXPECT_TRUE(ja.at("max_lag_bytes").is_null());
  EXPECT_EQ(ja.at("mode"), "0600");
  EXPECT_EQ(jb.at("capacity"), 65536);
  EXPECT_EQ(jb.at("mode"), "0640");
  EXPECT_EQ(jb.at("master_offset"), 32);  // two 4-byte records: two 16-byte frames
  EXPECT_EQ(jb.at("readers"), 1);
  EXPECT_EQ(jb.at("max_lag_bytes"), 32);  // the reader attached at the oldest record
  EXPECT_EQ(jb.at("writer_alive"), false);
  EXPECT_GT(jb.at("writer_pid").get<int>(), 0);
  EXPECT_EQ(jb.at("owner"), listed(list, a).at("owner"));
  EXPECT_TRUE(listed(list, foreign).is_null()) << "another program's object is not a log";
  const nlohmann::json jd = listed(list, damaged);
  ASSERT_FALSE(jd.is_null()) << "a damaged log is listed, with what is wrong";
  EXPECT_EQ(jd.at("error_code"), "corrupt_header");
  EXPECT_NE(jd.at("error").get<std::string>().find(damaged.name()), std::string::npos);

  // The table: a header, and one row per log with the same values.
  const std::string table = ok({"list"});
  EXPECT_EQ(table.rfind("NAME ", 0), 0u);
  std::string row_b;
  for (const std::string& line : split_lines(table))
    if (line.rfind(b.name() + " ", 0) == 0) row_b = line;
  EXPECT_NE(row_b.find("64.0 KiB"), std::string::npos) << row_b;
  EXPECT_NE(row_b.find(" dead "), std::string::npos) << row_b;
  EXPECT_NE(row_b.find(" 0640 "), std::string::npos) << row_b;
  EXPECT_EQ(table.find(foreign.name()), std::string::npos);
  EXPECT_NE(table.find(damaged.name() + " "), std::string::npos);
  expect_usage_error({"list", "extra"}, "shmlog list: unexpected argument 'extra'");
  expect_usage_error({"list", "--json", "--prometheus"}, "shmlog list: --json and --prometheus");
}

TEST(cli, ListReportsALogItMayNotReadWithTheReason) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the tool as another user";
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});  // 0600, root's
  std::optional<cli_process> p;
  try {
    p.emplace(std::vector<std::string>{"list", "--json"}, uid_t{65534});
  } catch (const shmlog::subprocess::spawn_error& e) {
    GTEST_SKIP() << "cannot run " << SHMLOG_CLI << " as nobody: " << e.what();
  }
  const run_result r = p->finish();
  ASSERT_EQ(r.status, 0) << describe(r);
  const nlohmann::json entry = listed(nlohmann::json::parse(r.out), log);
  ASSERT_FALSE(entry.is_null()) << r.out;
  EXPECT_EQ(entry.at("error_code"), "permission_denied");
}

// One Prometheus sample line: name, labels and value.
struct prometheus_sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

// Parses the text exposition format strictly enough to catch what a scraper rejects: every
// sample's family has one HELP and one TYPE before it, families are not split, names and label
// names are valid, label values are quoted with \\, \" and \n escaped, values are numbers.
std::vector<prometheus_sample> parse_prometheus(const std::string& text) {
  const auto valid_name = [](const std::string& n) {
    if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
    });
  };
  std::vector<prometheus_sample> out;
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  std::set<std::string> finished;  // families whose samples ended
  std::string current;
  for (const std::string& line : split_lines(text)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::istringstream in(line.substr(7));
      std::string name, rest;
      in >> name >> rest;
      EXPECT_TRUE(valid_name(name)) << line;
      EXPECT_FALSE(finished.contains(name)) << "family split: " << line;
      if (line[2] == 'H') {
        EXPECT_TRUE(helped.insert(name).second) << "second HELP: " << line;
      } else {
        EXPECT_TRUE(rest == "counter" || rest == "gauge") << line;
        EXPECT_TRUE(types.emplace(name, rest).second) << "second TYPE: " << line;
      }
      if (current != name && !current.empty()) finished.insert(current);
      current = name;
      continue;
    }
    prometheus_sample s;
    std::size_t at = 0;
    while (at < line.size() && line[at] != '{' && line[at] != ' ')
      ++at;
    s.name = line.substr(0, at);
    EXPECT_TRUE(valid_name(s.name)) << line;
    EXPECT_EQ(s.name, current) << "sample outside its family: " << line;
    EXPECT_TRUE(helped.contains(s.name) && types.contains(s.name)) << line;
    if (types[s.name] == "counter") {
      EXPECT_TRUE(s.name.ends_with("_total")) << line;
    }
    if (at < line.size() && line[at] == '{') {
      ++at;
      while (at < line.size() && line[at] != '}') {
        const std::size_t eq = line.find('=', at);
        EXPECT_NE(eq, std::string::npos) << line;
        if (eq == std::string::npos) return out;
        const std::string label = line.substr(at, eq - at);
        EXPECT_TRUE(valid_name(label)) << line;
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string value;
        at = eq + 2;
        for (; at < line.size() && line[at] != '"'; ++at) {
          if (line[at] == '\\') {
            ++at;
            EXPECT_TRUE(line[at] == '\\' || line[at] == '"' || line[at] == 'n') << line;
            value += line[at] == 'n' ? '\n' : line[at];
          } else {
            value += line[at];
          }
        }
        ++at;  // the closing quote
        if (at < line.size() && line[at] == ',') ++at;
        s.labels[label] = value;
      }
      ++at;  // '}'
    }
    EXPECT_EQ(line[at], ' ') << line;
    s.value = line.substr(at + 1);
    char* end = nullptr;
    std::strtod(s.value.c_str(), &end);
    EXPECT_TRUE(!s.value.empty() && *end == '\0') << "value: " << line;
    out.push_back(std::move(s));
  }
  return out;
}

const prometheus_sample* find_sample(const std::vector<prometheus_sample>& samples,
                                     const std::string& name) {
  for (const prometheus_sample& s : samples)
    if (s.name == name) return &s;
  return nullptr;
}

TEST(cli, InfoPrometheusIsValidAndCountsWhatAReaderLostToALap) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  // A reader whose label needs escaping, lapped by 100 records of 64-byte frames in a 4 KiB
  // ring, recovering at the oldest record held.
  const std::string label = "a\"b\\c";
  shmlog::reader r = shmlog::reader::attach(log.name(), {.label = label});
  ok({"write", log}, numbered_lines(100, 56));
  std::vector<std::byte> buf;
  ASSERT_EQ(r.poll_copy(buf).status, shmlog::poll_status::lapped);
  const auto before =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  const shmlog::lap_report lap = r.recover_from_lap(shmlog::lap_policy::oldest);
  ASSERT_GT(lap.bytes_lost(), 0u);

  const std::vector<prometheus_sample> samples =
      parse_prometheus(ok({"info", log, "--prometheus"}));
  const auto value = [&](const std::string& name) {
    const prometheus_sample* s = find_sample(samples, name);
    EXPECT_NE(s, nullptr) << name;
    return s ? std::stod(s->value) : -1.0;
  };
  EXPECT_EQ(value("shmlog_capacity_bytes"), 4096);
  EXPECT_EQ(value("shmlog_master_offset_bytes"), 6400);
  EXPECT_EQ(value("shmlog_readers"), 1);
  EXPECT_EQ(value("shmlog_laps_total"), 1);
  EXPECT_EQ(value("shmlog_reader_laps_total"), 1);
  EXPECT_EQ(value("shmlog_reader_lost_bytes_total"), static_cast<double>(lap.bytes_lost()));
  // The lap was seen by the poll just before `before`, within a second of it.
  EXPECT_NEAR(value("shmlog_reader_last_lap_timestamp_seconds"), static_cast<double>(before) / 1e9,
              1.0);
  EXPECT_EQ(value("shmlog_reader_lag_bytes"), 6400.0 - static_cast<double>(lap.resume_offset));
  const prometheus_sample* lost = find_sample(samples, "shmlog_reader_lost_bytes_total");
  ASSERT_NE(lost, nullptr);
  EXPECT_EQ(lost->labels.at("label"), label);
  EXPECT_EQ(lost->labels.at("log"), log.name());
  EXPECT_EQ(lost->labels.at("pid"), std::to_string(::getpid()));
  EXPECT_EQ(lost->labels.at("gating"), "0");
  // info's text and JSON show the same two fields.
  const nlohmann::json j = nlohmann::json::parse(ok({"info", log, "--json"}));
  EXPECT_EQ(j.at("readers").at(0).at("bytes_lost"), lap.bytes_lost());
  EXPECT_FALSE(j.at("readers").at(0).at("last_lap_time").get<std::string>().empty());

  // list --prometheus: the same families, HELP and TYPE once however many logs there are.
  scoped_log other(unique_log_name("cli"));
  ok({"create", other, "--capacity", "4K"});
  const std::vector<prometheus_sample> all = parse_prometheus(ok({"list", "--prometheus"}));
  int capacities = 0;
  for (const prometheus_sample& s : all)
    if (s.name == "shmlog_capacity_bytes" &&
        (s.labels.at("log") == log.name() || s.labels.at("log") == other.name()))
      ++capacities;
  EXPECT_EQ(capacities, 2);
  expect_usage_error({"info", log, "--prometheus", "--json"}, "shmlog info: --json, --prometheus");
}

TEST(cli, InfoWatchPrintsOneBlockPerSampleWithRatesFromTheSecond) {
  scoped_log log(unique_log_name("cli"));
  ok({"create", log, "--capacity", "4K"});
  ok({"write", log}, "x\n");
  shmlog::reader r = shmlog::reader::attach(log.name(), {.label = "watched"});
  const std::string out = ok({"info", log, "--watch", "--interval", "0.02", "--count", "3"});
  const std::vector<std::string> lines = split_lines(out);
  int headers = 0, masters = 0, rows = 0, first_rates = 0;
  for (const std::string& line : lines) {
    if (line.find("  " + log.name() + "  every 0.02s") != std::string::npos) ++headers;
    if (line.rfind("  master_offset 16  write ", 0) == 0) {
      ++masters;
      if (line.find("write -") != std::string::npos) ++first_rates;
    }
    if (line.find(" watched ") != std::string::npos) ++rows;
  }
  EXPECT_EQ(headers, 3) << out;
  EXPECT_EQ(masters, 3) << out;
  EXPECT_EQ(first_rates, 1) << "only the first sample has no rate: " << out;
  EXPECT_EQ(rows, 3) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << "no terminal codes when piped";
  expect_usage_error({"info", log, "--interval", "1"}, "shmlog info: --interval and --count");
  expect_usage_error({"info", log, "--watch", "--interval", "0.001"},
                     "shmlog info: bad --interval");
}

}  // namespace
