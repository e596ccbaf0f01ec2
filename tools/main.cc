// shmlog: create, inspect, write, read and demonstrate shared-memory replication logs.
// See docs/cli.md for the reference and the exit codes.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "bench.h"
#include "cli.h"
#include "shmlog/error.h"
#include "shmlog/version.h"

namespace {

using namespace shmlog::cli;

constexpr const char* usage_text =
    R"(usage: shmlog COMMAND [ARGS]

Commands:
  create NAME --capacity SIZE [--mode OCTAL] [--readers N] [--fence seq_cst|membarrier]
         [--max-gating-wait SECONDS]
                          create a log; SIZE is bytes or K/M/G/T or KiB/MiB/GiB/TiB (powers of
                          1024; KB, MB... are refused as ambiguous), a power of two
                          from 4K to 1024G; mode defaults to 0600, reader slots to 64; a writer
                          waits at most SECONDS (0.1) for a gating reader before it laps it
  destroy NAME [--force]  remove a log; refuses an object that is not one unless --force
  info NAME [--json]      show the log's replication fields and its readers
  write NAME              append each line of stdin as one record (as the log's writer)
  tail NAME [--from oldest|latest|OFFSET | --last N] [--count N] [--follow] [--print-offsets]
            [--on-lap fail|skip|resync] [--snapshot-dir DIR] [--wait-for-log SECONDS]
            [--gating]
                          print records, one per line; without --follow from the oldest record
                          held up to the master offset at start, with --follow from the latest;
                          --last N: from the newest N records held;
                          when lapped: exit 3 (fail), go on a quarter ring ahead of the oldest
                          record held (skip), or load the producer's snapshot from DIR and go on
                          from it (resync); --gating: the writer waits for this tail (bounded)
  produce NAME --snapshot-dir DIR [--capacity SIZE] [--readers N] [--snapshot-mode inline|fork]
          [--keep N] [--check-every N]
                          a key-value producer: SET key value, DEL key, INCR key, WAIT n ms and
                          SNAPSHOT lines from stdin; serves snapshots; recovers its state on restart
  replica NAME --snapshot-dir DIR [--dump FILE] [--label L] [--wait-for-log SECONDS]
                          a key-value replica daemon until SIGTERM; serves shmlog get; --dump
                          writes its state to FILE on SIGTERM
  get NAME KEY [--pid PID]
                          ask a running replica for KEY's value
  ship NAME --redis URL [--key KEY] [--snapshot-dir DIR] [--max-entries N]
                          a daemon that appends the log's records to a Redis stream (key KEY,
                          default NAME), fenced on the history id; uploads the producer's
                          snapshots from DIR when it is lapped or a mirror asks
  mirror NAME --redis URL [--redis-master URL] [--key KEY] [--snapshot-dir DIR]
                          the writer of local log NAME, fed from KEY's stream: same capacity,
                          history and offsets as the source; full resyncs through DIR
  promote NAME --redis URL [--key KEY]
                          after a failover: the stopped mirror NAME becomes KEY's source
                          (new history, replid2 = the old one), fencing the old shipper
  demo [--seconds S] [--rate R] [--readers N] [--capacity SIZE] [--keys K] [--slow-every N]
                          a live run: a key-value producer and N (default 3) replica processes,
                          one throttled and paused until it is lapped and full-resyncs; checks every
                          replica's state against the producer's (shmlog demo --help)
  bench [--size BYTES] [--rate R|max] [--readers N] [--wait MODE] [--seconds S]
        [--capacity SIZE] [--cpus LIST] [--gating] [--json]
                          latency and throughput between pinned writer and reader processes,
                          beside the cache-line ping-pong floor (shmlog bench --help)
  help                    show this text
  version                 show shmlog's version (also --version)

Exit status: 0 ok, 1 failed (get: KEY not set), 2 bad command line, 3 tail was lapped,
4 tail found a corrupt record, 5 tail's position is not in the log's new history.
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
    if (name == "version" || name == "--version") {
      std::printf("shmlog %s\n", SHMLOG_VERSION);
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
