// shmlog ship, mirror and promote: a log beyond one host, through Redis (docs/remote.md). Thin
// users of shmlog/remote.h.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli.h"
#include "shmlog/shmlog.h"

namespace shmlog::cli {
namespace {

// --redis URL, or else $SHMLOG_REDIS_URL: a URL with a password is better kept out of the command
// line, which every local user can read in ps (docs/operations.md, "Running under systemd").
std::string redis_option(const parsed_args& args, const std::string& usage) {
  if (const auto url = args.value("redis")) {
    if (url->empty()) throw usage_error("bad --redis '': expected redis://[user:password@]host");
    return *url;
  }
  const char* env = std::getenv("SHMLOG_REDIS_URL");
  if (env == nullptr || *env == '\0')
    throw usage_error(std::string("missing --redis URL, and SHMLOG_REDIS_URL is not set (usage: ") +
                      usage + ")");
  return env;
}

std::string key_option(const parsed_args& args, const std::string& name) {
  const auto key = args.value("key");
  if (!key) return name;
  try {
    validate_name(*key);  // the same rule as log names
  } catch (const error& e) {
    throw usage_error("bad --key: " + std::string(e.what()));
  }
  return *key;
}

}  // namespace

int run_ship(std::span<const std::string> argv) {
  const command_spec& spec = command_named("ship");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  validate_name(name);
  ship_options o;
  o.redis_url = redis_option(args, usage);
  o.key = key_option(args, name);
  if (args.has("snapshot-dir"))
    o.snapshot_dir = snapshot_dir_option(args, false, "where the producer writes its snapshots");
  if (const auto n = args.value("max-entries"))
    o.max_entries = parse_unsigned("max-entries", *n, 0, 1'000'000'000);
  if (const auto b = args.value("entry-bytes")) o.entry_bytes = parse_size("entry-bytes", *b);
  if (o.entry_bytes == 0 || o.entry_bytes > (64u << 20))
    throw usage_error("bad --entry-bytes: expected 1 byte to 64M");
  if (const auto l = args.value("label")) {
    if (l->empty() || l->size() > 15)
      throw usage_error("bad --label '" + one_line(*l) + "': expected 1-15 bytes");
    o.label = *l;
  }
  const ship_result r = run_shipper(name, o);
  if (r.fenced)
    throw command_failure(exit_failure, "fenced: key '" + o.key + "' now belongs to " +
                                            r.fenced_by + "; this shipper stopped at offset " +
                                            std::to_string(r.shipped_offset));
  if (r.log_destroyed) throw command_failure(exit_failure, "log '" + name + "' was destroyed");
  return exit_ok;
}

int run_mirror(std::span<const std::string> argv) {
  const command_spec& spec = command_named("mirror");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  validate_name(name);
  mirror_options o;
  o.redis_url = redis_option(args, usage);
  if (const auto m = args.value("redis-master")) {
    if (m->empty()) throw usage_error("bad --redis-master '': expected a redis:// URL");
    o.redis_master_url = *m;
  }
  o.key = key_option(args, name);
  if (args.has("snapshot-dir"))
    o.snapshot_dir = snapshot_dir_option(args, true, "where the mirror writes snapshots");
  if (const auto n = args.value("readers"))
    o.reader_slots = static_cast<std::uint32_t>(parse_unsigned("readers", *n, 1, 4096));
  if (const auto m = args.value("mode")) o.mode = parse_mode("mode", *m);
  shmlog::run_mirror(name, o);
  return exit_ok;
}

int run_promote(std::span<const std::string> argv) {
  const command_spec& spec = command_named("promote");
  const std::string usage = usage_line(spec);
  const parsed_args args = parse_args(argv, spec);
  if (args.has("help")) return print_command_help(spec);
  const std::string& name = single_name(args, usage);
  validate_name(name);
  promote_options o;
  o.redis_url = redis_option(args, usage);
  o.key = key_option(args, name);
  const promote_result r = promote(name, o);
  std::printf("promoted log '%s' for key '%s': history %s (replid2 %s, second offset %llu)%s\n",
              name.c_str(), o.key.c_str(), r.history.replid.str().c_str(),
              r.history.replid2.str().c_str(), static_cast<unsigned long long>(r.offset),
              r.resumed ? " (finished an interrupted promote)" : "");
  return exit_ok;
}

}  // namespace shmlog::cli
