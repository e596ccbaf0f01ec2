// shmlog: create, inspect, write, read and demonstrate shared-memory replication logs.
// See docs/cli.md for the reference and the exit codes.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli.h"
#include "shmlog/error.h"

namespace {

using namespace shmlog::cli;

constexpr const char* usage_text =
    R"(usage: shmlog COMMAND [ARGS]

Commands:
  create NAME --capacity SIZE [--mode OCTAL] [--readers N] [--fence seq_cst|membarrier]
                          create a log; SIZE is bytes or K/M/G (powers of 1024), a power of two
                          from 4K to 1024G; mode defaults to 0600, reader slots to 64
  destroy NAME            remove a log
  info NAME [--json]      show the log's replication fields and its readers
  write NAME              append each line of stdin as one record (as the log's writer)
  tail NAME [--from oldest|latest|OFFSET] [--count N] [--follow] [--print-offsets]
                          print records, one per line; without --follow from the oldest record
                          held up to the master offset at start, with --follow from the latest
  demo [--seconds S] [--rate R] [--capacity SIZE] [--readers N]
                          a live run of one writer and N (default 2) reader processes
  help                    show this text

Exit status: 0 ok, 1 failed, 2 bad command line, 3 tail was lapped, 4 tail found a corrupt record.
Logs live in /dev/shm/NAME. Reference: docs/cli.md.
)";

struct command {
  const char* name;
  int (*run)(std::span<const std::string>);
};

constexpr command commands[] = {
    {"create", run_create},
    {"destroy", run_destroy},
    {"info", run_info},
    {"write", run_write},
    {"tail", run_tail},
    {"demo", run_demo},
    {"demo-writer", run_demo_writer},
    {"demo-reader", run_demo_reader},
};

int report(const std::string& who, const char* what, int status) {
  std::fprintf(stderr, "%s: %s\n", who.c_str(), one_line(what).c_str());
  return status;
}

// Bad names and option values the library rejects are usage errors, like ours.
int status_for(const shmlog::error& e) {
  return e.code() == shmlog::errc::invalid_name || e.code() == shmlog::errc::invalid_argument
             ? exit_usage
             : exit_failure;
}

int dispatch(const command& cmd, std::span<const std::string> args) {
  const std::string who = std::string("shmlog ") + cmd.name;
  try {
    return cmd.run(args);
  } catch (const usage_error& e) {
    return report(who, e.what(), exit_usage);
  } catch (const command_failure& e) {
    return report(who, e.what(), e.status());
  } catch (const shmlog::error& e) {
    return report(who, e.what(), status_for(e));
  } catch (const std::exception& e) {
    return report(who, e.what(), exit_failure);
  } catch (...) {
    return report(who, "unexpected error", exit_failure);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
      std::fputs(usage_text, stderr);
      return exit_usage;
    }
    const std::string& name = args.front();
    if (name == "help" || name == "--help" || name == "-h") {
      std::fputs(usage_text, stdout);
      return exit_ok;
    }
    for (const command& cmd : commands)
      if (name == cmd.name) return dispatch(cmd, std::span(args).subspan(1));
    return report("shmlog", ("unknown command '" + name + "' (try: shmlog help)").c_str(),
                  exit_usage);
  } catch (const std::exception& e) {
    return report("shmlog", e.what(), exit_failure);
  }
}
