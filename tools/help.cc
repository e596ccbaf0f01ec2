// Every command's options and their help: the one source of `shmlog help`, `shmlog help CMD`,
// `CMD --help`, the option parser, "did you mean", and the man page (`shmlog help --man`).
// docs/cli.md is the longer reference.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.h"
#include "shmlog/version.h"

namespace shmlog::cli {

namespace {

constexpr option_spec create_options[] = {
    {"capacity", true, "SIZE",
     "ring size (repl_backlog_size), required: a power of two from 4K to 1024G. SIZE is bytes, "
     "or K, M, G, T / KiB, MiB, GiB, TiB (powers of 1024, either case); KB, MB... are refused as "
     "ambiguous"},
    {"mode", true, "OCTAL",
     "permissions of /dev/shm/NAME, applied exactly (default 0600; must include 0600)"},
    {"readers", true, "N", "reader slots: the most readers attached at once (1-4096, default 64)"},
    {"fence", true, "seq_cst|membarrier",
     "how writers order a publish against their check for sleeping readers (default seq_cst)"},
    {"max-gating-wait", true, "SECONDS",
     "how long a writer waits for a gating reader before it laps it (default 0.1, at most 60)"},
};

constexpr option_spec destroy_options[] = {
    {"force", false, "", "remove whatever object has the name, even one that is not a shmlog log"},
};

constexpr option_spec info_options[] = {
    {"json", false, "", "print the same fields as one JSON object"},
    {"prometheus", false, "",
     "print the fields as Prometheus metrics (text exposition format), per-reader labels"},
    {"watch", false, "",
     "sample every --interval seconds and print rates between samples until Ctrl-C; redrawn in "
     "place on a terminal, plain lines when piped"},
    {"interval", true, "SECONDS", "with --watch: seconds between samples (default 1)"},
    {"count", true, "N", "with --watch: stop after N samples"},
};

constexpr option_spec list_options[] = {
    {"json", false, "", "print {\"logs\":[...]}, one object per log"},
    {"prometheus", false, "", "print every readable log's metrics, as info --prometheus"},
};

constexpr option_spec tail_options[] = {
    {"from", true, "oldest|latest|OFFSET",
     "where to start: the oldest record held (default without --follow), the master offset "
     "(default with --follow), or a record boundary"},
    {"last", true, "N", "start at the newest N records held (not with --from)", 'n'},
    {"count", true, "N", "stop after N records"},
    {"follow", false, "", "wait for more records; SIGINT or SIGTERM end it with status 0", 'f'},
    {"print-offsets", false, "", "prefix each record with its offset and a tab"},
    {"print-types", false, "", "prefix each record with its record type and a tab"},
    {"hex", false, "", "print payloads as hex bytes (\"68 69\"), for binary records"},
    {"on-lap", true, "fail|skip|resync",
     "when lapped: exit 3 (fail, default), go on a quarter ring ahead of the oldest record held "
     "(skip), or load the producer's snapshot from --snapshot-dir and go on from it (resync)"},
    {"snapshot-dir", true, "DIR", "with --on-lap resync: the producer's snapshot directory"},
    {"wait-for-log", true, "SECONDS", "wait up to SECONDS for the log to be created"},
    {"gating", false, "",
     "attach as a gating reader: the writer waits for this tail (bounded) rather than overrun it"},
};

constexpr option_spec produce_options[] = {
    {"snapshot-dir", true, "DIR",
     "where snapshot files go, required: an existing writable directory"},
    {"capacity", true, "SIZE",
     "ring size if produce creates the log (default 1M); if it exists, must match"},
    {"readers", true, "N", "reader slots if produce creates the log (default 64); must match"},
    {"mode", true, "OCTAL",
     "permissions of the log if produce creates it (default 0600; 0660 lets a group's replicas "
     "attach); if it exists, must match"},
    {"snapshot-mode", true, "inline|fork",
     "save snapshots on the producer's thread (inline, default) or in a forked child (fork, like "
     "BGSAVE)"},
    {"keep", true, "N", "snapshot files of this log kept in DIR (default 3)"},
    {"check-every", true, "N",
     "look for snapshot requests every N commands (default 64), and every 10 ms anyway"},
};

constexpr option_spec replica_options[] = {
    {"snapshot-dir", true, "DIR", "the producer's snapshot directory, required"},
    {"state-file", true, "FILE",
     "save the state to FILE on SIGTERM and resume from it on restart (PSYNC2)"},
    {"save-every", true, "SECONDS", "with --state-file: also save every SECONDS"},
    {"dump", true, "FILE", "on SIGTERM/SIGINT, write the state to FILE as text"},
    {"label", true, "L", "the reader label info shows (default replica)"},
    {"wait-for-log", true, "SECONDS", "wait up to SECONDS for the log to be created"},
};

constexpr option_spec get_options[] = {
    {"pid", true, "PID", "ask the replica of this pid (when several serve the log)"},
};

constexpr option_spec ship_options[] = {
    {"redis", true, "URL",
     "redis://[user:password@]host[:port][/db]; without it, $SHMLOG_REDIS_URL (which keeps a "
     "password out of ps)"},
    {"key", true, "KEY", "the stream's key (default NAME)"},
    {"snapshot-dir", true, "DIR",
     "the producer's snapshot directory: uploaded when the shipper is lapped or a mirror asks"},
    {"max-entries", true, "N", "trim the stream to about N entries (default 10000; 0: never)"},
    {"entry-bytes", true, "SIZE", "pack records into stream entries up to SIZE (default 64K)"},
    {"label", true, "L", "the reader label info shows (default ship)"},
};

constexpr option_spec mirror_options[] = {
    {"redis", true, "URL",
     "the Redis holding KEY's stream (may be a read-only replica); without it, $SHMLOG_REDIS_URL"},
    {"redis-master", true, "URL",
     "where the mirror's snapshot requests go, if --redis is a replica"},
    {"key", true, "KEY", "the stream's key (default NAME)"},
    {"snapshot-dir", true, "DIR", "where full resyncs write and announce snapshots"},
    {"readers", true, "N", "reader slots of the local log when the mirror creates it"},
    {"mode", true, "OCTAL", "permissions of the local log when the mirror creates it"},
};

constexpr option_spec promote_options[] = {
    {"redis", true, "URL", "the Redis holding KEY's stream; without it, $SHMLOG_REDIS_URL"},
    {"key", true, "KEY", "the stream's key (default NAME)"},
};

constexpr option_spec demo_options[] = {
    {"seconds", true, "S",
     "how long the producer appends (default 8); longer if it has not yet overwritten the paused "
     "replica's offset (at most 60 s longer)"},
    {"rate", true, "R", "commands per second (default 50000; 0: flat out)"},
    {"readers", true, "N", "replica processes, 1-16 (default 3)"},
    {"capacity", true, "SIZE", "the log's ring (default 4M)"},
    {"keys", true, "K", "key space of the command mix (default 50000)"},
    {"slow-every", true, "N",
     "the throttled replica sleeps 1 ms every N records and 200 ms per MiB of snapshot it loads; "
     "0: no throttled replica (default 16)"},
    {"seed", true, "N", "seed of the command mix (default 1)"},
};

constexpr option_spec bench_options[] = {
    {"size", true, "BYTES", "record size (default 64; at least 16 when paced, 8 flat out)"},
    {"rate", true, "R|max",
     "R records per second, paced: measures latency (default 100000; k and M multiply by 1000 "
     "and 1000000); max: flat out, measures throughput"},
    {"readers", true, "N", "reader processes (default 1)"},
    {"wait", true, "MODE",
     "how a caught-up reader waits: spin, yield, adaptive (default) or sleep"},
    {"seconds", true, "S", "measured time (default 2), after a warm-up of 10% (at least 0.05 s)"},
    {"capacity", true, "SIZE", "ring size, a power of two (default 1M)"},
    {"cpus", true, "LIST",
     "the writer's CPU, then the readers' (e.g. 0,1 or 2-5); more readers than the CPUs after "
     "the writer's share them in turn; default: every CPU this process may use, in order"},
    {"gating", false, "", "readers gate the writer (lossless while each stall is under 0.1 s)"},
    {"json", false, "", "one JSON object instead of the report"},
};

constexpr option_spec help_options[] = {
    {"man", false, "", "print the manual page (roff), generated from this help"},
};

// The hidden commands the demo runs in its child processes: not in help, options unlisted.
constexpr option_spec demo_writer_options[] = {
    {"snapshot-dir", true}, {"seconds", true}, {"rate", true},  {"keys", true},
    {"seed", true},         {"parent", true},  {"hold", false},
};
constexpr option_spec demo_reader_options[] = {
    {"snapshot-dir", true}, {"index", true}, {"slow-every", true}, {"load-delay", true}};

const command_spec specs[] = {
    {"create", "NAME --capacity SIZE [options]", "create a log",
     "Creates log NAME in /dev/shm with a ring of SIZE bytes. Fails if it exists.", create_options},
    {"destroy", "NAME [--force]", "remove a log",
     "Removes the log's name; processes that have it mapped keep it until they exit. Refuses an "
     "object that is not a shmlog log unless --force.",
     destroy_options},
    {"info", "NAME [--json | --prometheus | --watch [--interval SECONDS] [--count N]]",
     "show a log's replication fields and its readers",
     "Prints the log's state Redis INFO style: writer, replication offsets and ids, resync "
     "counters, the newest snapshot, and one line per reader (lag, laps, bytes lost).",
     info_options},
    {"list", "[--json | --prometheus]", "list every shmlog log on this host",
     "One row per log in /dev/shm: capacity, writer pid and whether it is alive, master offset, "
     "readers, the largest lag, mode and owner. Other programs' objects are left out; logs that "
     "cannot be read are listed with the reason.",
     list_options},
    {"write",
     "NAME",
     "append each line of stdin as one record",
     "Opens NAME as its writer and appends each line of stdin (without the newline) as one "
     "record.",
     {}},
    {"tail", "NAME [options]", "print records, one per line",
     "Prints records one per line: without --follow from the oldest record held up to the master "
     "offset at start, with --follow from the latest. Exit 3 when lapped (unless --on-lap), 4 on "
     "a corrupt record, 5 when the history changed under it.",
     tail_options},
    {"produce", "NAME --snapshot-dir DIR [options]", "a key-value producer",
     "Reads SET key value, DEL key, INCR key, WAIT n ms and SNAPSHOT lines from stdin, appends "
     "them to NAME, serves snapshot requests, and recovers its state on restart.",
     produce_options},
    {"replica", "NAME --snapshot-dir DIR [options]", "a key-value replica daemon",
     "Applies NAME's records to a key-value state until SIGTERM; full-resyncs from the producer's "
     "snapshots when lapped; answers shmlog get.",
     replica_options},
    {"get", "NAME KEY [--pid PID]", "ask a running replica for KEY's value",
     "Prints KEY's value as a replica of NAME holds it; exit 1 if KEY is not set.", get_options},
    {"ship", "NAME [--redis URL] [options]", "ship a log's records to a Redis stream",
     "A daemon that appends NAME's records to a Redis stream (one per history, fenced on the "
     "history id), and uploads snapshots when lapped or asked.",
     ship_options},
    {"mirror", "NAME [--redis URL] [options]", "mirror a Redis stream into a local log",
     "A daemon that is the writer of local log NAME, fed from KEY's stream: same capacity, history "
     "and offsets as the source; full resyncs through --snapshot-dir.",
     mirror_options},
    {"promote", "NAME [--redis URL] [--key KEY]", "make a stopped mirror the stream's source",
     "After a failover: the stopped mirror NAME becomes KEY's source (new history, replid2 the "
     "old one), fencing the old shipper.",
     promote_options},
    {"demo", "[options]", "a live run of a producer and replicas",
     "A key-value producer and N replica processes on a temporary log, with snapshots in a "
     "temporary directory. The last replica is throttled, and paused until the producer has "
     "overwritten its offset: it is lapped and reloads its state from a snapshot (a full "
     "resync), on any machine. At the end every replica's state is checked against the "
     "producer's at the same offset; exit status 0 only if all are equal and the throttled "
     "replica completed a full resync after being lapped.",
     demo_options},
    {"bench", "[options]", "measure latency and throughput, with the ping-pong floor beside",
     "Runs a writer process and N reader processes on a temporary log in /dev/shm, each pinned "
     "to a CPU, and measures the cache-line ping-pong between the writer's CPU and the first "
     "reader's right before and after them (the floor: what moving one line between those two "
     "CPUs costs on this machine). Prints the throughput, the records the readers lost, and the "
     "latency percentiles with each one's ratio to the floor.",
     bench_options},
    {"help", "[COMMAND] [--man]", "show this help, or a command's",
     "Without COMMAND: the list of commands. With it: the command's options.", help_options},
    {"version", "", "show shmlog's version (also --version)", "Prints \"shmlog X.Y.Z\".", {}},
    {"demo-writer", "", "", "", demo_writer_options, true},
    {"demo-reader", "", "", "", demo_reader_options, true},
    {"bench-role", "", "", "", {}, true},
};

// Edit distance counting a swap of two neighbours as one edit ("tial" is one from "tail"), for
// "did you mean".
std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i)
    d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j)
    d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1] ? 1 : 0)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string option_label(const option_spec& o) {
  std::string s;
  if (o.short_name != 0) s += std::string("-") + o.short_name + ", ";
  s += "--" + std::string(o.name);
  if (o.takes_value) s += " " + std::string(o.value_name.empty() ? "VALUE" : o.value_name);
  return s;
}

// Wraps `text` to `width` columns, each line after the first indented by `indent`.
std::string wrap(std::string_view text, std::size_t indent, std::size_t width) {
  std::string out;
  std::size_t column = indent;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find(' ', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view word = text.substr(at, end - at);
    if (column > indent && column + 1 + word.size() > width) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    } else if (column > indent) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    at = end + 1;
  }
  return out;
}

// Roff text: a leading '.' or '\'' and every backslash escaped; '-' as \- so that options copy.
std::string roff(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else
      out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

}  // namespace

std::span<const command_spec> command_specs() {
  return specs;
}

const command_spec& command_named(std::string_view name) {
  for (const command_spec& c : specs)
    if (c.name == name) return c;
  throw std::logic_error("no command_spec named " + std::string(name));
}

std::string usage_line(const command_spec& c) {
  return "shmlog " + std::string(c.name) + (c.synopsis.empty() ? "" : " ") +
         std::string(c.synopsis);
}

std::string command_help(const command_spec& c) {
  std::string out = "usage: " + usage_line(c) + "\n\n" + wrap(c.description, 0, 78) + "\n";
  if (!c.options.empty()) out += "\nOptions:\n";
  for (const option_spec& o : c.options) {
    const std::string label = "  " + option_label(o);
    out += label;
    if (label.size() >= 30)
      out += "\n" + std::string(30, ' ');
    else
      out += std::string(30 - label.size(), ' ');
    out += wrap(o.help, 30, 96) + "\n";
  }
  out += "\nReference: docs/cli.md, man shmlog.\n";
  return out;
}

int print_command_help(const command_spec& c) {
  std::fputs(command_help(c).c_str(), stdout);
  return exit_ok;
}

std::string overview_help() {
  std::string out =
      "usage: shmlog COMMAND [ARGS]\n\nA shared-memory replication log: create, inspect, write, "
      "read and replicate logs.\n\nCommands:\n";
  for (const command_spec& c : specs) {
    if (c.hidden) continue;
    const std::string name = "  " + std::string(c.name);
    out += name + std::string(12 - std::min<std::size_t>(name.size(), 11), ' ') +
           std::string(c.summary) + "\n";
  }
  out +=
      "\n'shmlog help COMMAND' or 'shmlog COMMAND --help' describes a command's options.\n"
      "Exit status: 0 ok, 1 failed (get: KEY not set), 2 bad command line, 3 tail was lapped,\n"
      "4 tail found a corrupt record, 5 tail's position is not in the log's new history.\n"
      "Logs live in /dev/shm/NAME. Reference: docs/cli.md, man shmlog.\n";
  return out;
}

std::string man_page() {
  std::string out = ".TH SHMLOG 1 \"\" \"shmlog " SHMLOG_VERSION "\" \"User Commands\"\n";
  out += ".SH NAME\nshmlog \\- create, inspect, write, read and replicate shared\\-memory logs\n";
  out += ".SH SYNOPSIS\n.B shmlog\n.I COMMAND\n[\\fIARGS\\fR]\n";
  out +=
      ".SH DESCRIPTION\nOne writer process appends records to a fixed\\-size ring in POSIX shared "
      "memory (/dev/shm/\\fINAME\\fR) and publishes a master offset; any number of reader "
      "processes attach, each with its own offset. A reader that falls more than a ring behind is "
      "lapped and resynchronises from a snapshot, as Redis replicas do.\n";
  out += ".SH COMMANDS\n";
  for (const command_spec& c : specs) {
    if (c.hidden) continue;
    out += ".SS \"" + roff(usage_line(c)) + "\"\n" + roff(c.description) + "\n";
    for (const option_spec& o : c.options) {
      out += ".TP\n.B " + roff(option_label(o)) + "\n" + roff(o.help) + "\n";
    }
  }
  out +=
      ".SH EXIT STATUS\n0 ok; 1 the command failed (get: KEY not set); 2 bad command line; 3 tail "
      "was lapped; 4 tail found a corrupt record; 5 tail's position is not in the log's new "
      "history.\n";
  out += ".SH FILES\n.TP\n/dev/shm/\\fINAME\\fR\nthe log's shared\\-memory segment\n";
  out +=
      ".SH SEE ALSO\nThe reference, docs/cli.md, and the operator's guide, docs/operations.md, "
      "in shmlog's source.\n";
  return out;
}

std::optional<std::string> did_you_mean(std::string_view given,
                                        const std::vector<std::string_view>& known) {
  std::optional<std::string> best;
  std::size_t best_distance = 0;
  for (std::string_view k : known) {
    const std::size_t d = distance(given, k);
    // A typo (one edit in a short name, two in one of 5 letters or more), or a prefix.
    const bool close = d <= (k.size() >= 5 ? 2u : 1u);
    const bool prefix = given.size() >= 2 && k.substr(0, given.size()) == given;
    if ((close || prefix) && (!best || d < best_distance)) {
      best = std::string(k);
      best_distance = d;
    }
  }
  return best;
}

int run_help(std::span<const std::string> argv) {
  const command_spec& self = command_named("help");
  const parsed_args args = parse_args(argv, self);
  if (args.has("help")) {
    std::fputs(command_help(self).c_str(), stdout);
    return exit_ok;
  }
  if (args.has("man")) {
    if (!args.positionals.empty()) throw usage_error("--man takes no COMMAND");
    std::fputs(man_page().c_str(), stdout);
    return exit_ok;
  }
  if (args.positionals.size() > 1)
    throw usage_error("unexpected argument '" + one_line(args.positionals[1]) + "'");
  if (args.positionals.empty()) {
    std::fputs(overview_help().c_str(), stdout);
    return exit_ok;
  }
  const std::string& name = args.positionals.front();
  for (const command_spec& c : specs)
    if (c.name == name && !c.hidden) {
      std::fputs(command_help(c).c_str(), stdout);
      return exit_ok;
    }
  std::vector<std::string_view> names;
  for (const command_spec& c : specs)
    if (!c.hidden) names.push_back(c.name);
  const std::optional<std::string> guess = did_you_mean(name, names);
  throw usage_error("unknown command '" + one_line(name) + "'" +
                    (guess ? " (did you mean '" + *guess + "'?)" : " (try: shmlog help)"));
}

}  // namespace shmlog::cli
