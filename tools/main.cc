// shmlog: create, inspect, write, read and demonstrate shared-memory replication logs.
// See docs/cli.md for the reference and the exit codes.
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench.h"
#include "cli.h"
#include "shmlog/error.h"
#include "shmlog/version.h"

namespace {

using namespace shmlog::cli;

struct command {
  const char* name;
  int (*run)(std::span<const std::string>);
};

constexpr command commands[] = {
    {"create", run_create},
    {"destroy", run_destroy},
    {"info", run_info},
    {"list", run_list},
    {"write", run_write},
    {"tail", run_tail},
    {"produce", run_produce},
    {"replica", run_replica},
    {"get", run_get},
    {"ship", run_ship},
    {"mirror", run_mirror},
    {"promote", run_promote},
    {"demo", run_demo},
    {"demo-writer", run_demo_writer},
    {"demo-reader", run_demo_reader},
    {"bench", run_bench},
    {"bench-role", run_bench_role},  // hidden: a child of shmlog bench
    {"help", run_help},
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
      std::fputs(overview_help().c_str(), stderr);
      return exit_usage;
    }
    const std::string& name = args.front();
    if (name == "--help" || name == "-h") {
      std::fputs(overview_help().c_str(), stdout);
      return exit_ok;
    }
    if (name == "version" || name == "--version") {
      std::printf("shmlog %s\n", SHMLOG_VERSION);
      return exit_ok;
    }
    for (const command& cmd : commands)
      if (name == cmd.name) return dispatch(cmd, std::span(args).subspan(1));
    std::vector<std::string_view> names;
    for (const command_spec& c : command_specs())
      if (!c.hidden) names.push_back(c.name);
    const std::optional<std::string> guess = did_you_mean(name, names);
    return report("shmlog",
                  ("unknown command '" + one_line(name) + "'" +
                   (guess ? " (did you mean '" + *guess + "'?)" : " (try: shmlog help)"))
                      .c_str(),
                  exit_usage);
  } catch (const std::exception& e) {
    return report("shmlog", e.what(), exit_failure);
  }
}
