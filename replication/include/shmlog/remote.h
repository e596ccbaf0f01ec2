// A log beyond one host, through Redis (docs/remote.md): a shipper on the source host appends
// the log's records to a Redis stream, one per history, fenced on the history id; a mirror on
// another host is the writer of a local log with the source's capacity, histories and offsets,
// fed from that stream, so its local readers and replicas resume by the source's PSYNC rules;
// promote() turns a mirror into the source of truth after a failover. The `shmlog ship`,
// `shmlog mirror` and `shmlog promote` commands are these functions.
//
//   // source host                                 // remote host
//   shmlog::run_shipper("quotes", {                 shmlog::run_mirror("quotes", {
//       .redis_url = "redis://:pw@10.0.0.5:6379",       .redis_url = "redis://:pw@10.0.0.5:6379",
//       .snapshot_dir = "/var/lib/quotes"});            .snapshot_dir = "/var/lib/quotes"});
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "shmlog/export.h"
#include "shmlog/history.h"

namespace shmlog {

// How a ship or mirror daemon's link stands, as `shmlog info` shows it (query_link()).
struct link_status {
  std::string role;      // "ship" or "mirror"
  std::string endpoint;  // redis://[user@]host:port/db, never the password
  std::string key;       // the key the log is shipped under
  std::string state;     // "streaming", "caught up", "snapshot", "waiting", "redis down", ...
  history_id replid;     // the history being shipped or mirrored
  // ship: the end of the newest entry Redis accepted; mirror: the local log's master offset.
  std::uint64_t offset = 0;
  // ship: the source log's master offset; mirror: the end of the newest entry in Redis.
  std::uint64_t source_offset = 0;
  std::uint64_t lag_bytes = 0;  // source_offset - offset (0 if ahead of a stale read)
  // How long the link has not been caught up with its source: 0 while it is.
  std::uint64_t lag_ms = 0;
  std::uint64_t records = 0;       // shipped or mirrored since the daemon started
  std::uint64_t entries = 0;       // stream entries sent or applied
  std::uint64_t snapshots = 0;     // ship: uploaded; mirror: downloaded (full resyncs or
                                   // snapshots for local replicas)
  std::uint64_t full_resyncs = 0;  // ship: laps and late starts; mirror: gaps in the stream
  std::string last_error;          // empty if none since the daemon started
  std::uint64_t last_error_age_ms = 0;
};

// What a daemon logs: one line per event (start, snapshot, history change, error, stop).
// Default: "<UTC time> ship[<pid>] <line>" (or mirror[...]) on stderr.
using link_log = std::function<void(const std::string& line)>;

struct ship_options {
  std::string redis_url;  // redis://[user:password@]host[:port][/db]; rediss:// is refused
  std::string key;        // the key the log is shipped under; empty: the log's name
  // Where the producer writes its snapshots: the shipper uploads them to Redis when it starts
  // too late for the backlog, is lapped, or a mirror asks. Empty: the shipper cannot upload a
  // snapshot and stops with an error when it would need one.
  std::filesystem::path snapshot_dir;
  // The stream of the current history keeps about this many entries (Redis MAXLEN ~); 0: no
  // trimming. An entry packs records up to entry_bytes (one record if it is bigger).
  std::uint64_t max_entries = 10000;
  std::size_t entry_bytes = 64 * 1024;
  // How long to wait for the producer to answer a snapshot request before asking again.
  std::chrono::milliseconds snapshot_timeout = std::chrono::seconds(30);
  std::string label = "ship";  // the reader slot's label
  // Answer query_link() on the process's query socket (one daemon with a socket per process:
  // false to run a shipper beside another daemon in one process).
  bool serve_link = true;
  link_log log;
  // Called once the shipper is streaming (Redis initialised, position chosen).
  std::function<void()> on_ready;
  // As replica_daemon_options::notify_service: READY=1 when on_ready is called, STATUS= with the
  // shipped offset and the lag, WATCHDOG=1, STOPPING=1.
  bool notify_service = true;
};

struct ship_result {
  std::uint64_t shipped_offset = 0;  // the end of the newest entry Redis accepted
  // The key's history is no longer this log's (a mirror was promoted, or another source took
  // the key): the shipper stopped. `fenced_by` is the key's history now, and who promoted it.
  bool fenced = false;
  std::string fenced_by;
  bool log_destroyed = false;  // the source log's name was destroyed and everything shipped
};

// Ships the log `log` until `stop` becomes true (if given) or, with `stop` null, until SIGINT or
// SIGTERM (taken as run_replica_daemon does; SIGHUP is logged and ignored; systemd is told of
// it: ship_options::notify_service), until it is fenced,
// or until the log's name is destroyed (and all of it is shipped). Answers query_link() from
// other processes while it runs. Redis being down or slow is not an error: it retries, and if
// the source laps it meanwhile it ships a snapshot. Throws shmlog::error for what it cannot go
// on from: a bad URL or key, a log of another capacity already shipped under the key, a
// snapshot it needs without snapshot_dir, a broken log.
SHMLOG_API ship_result run_shipper(std::string_view log, const ship_options& options,
                                   const std::atomic<bool>* stop = nullptr);

struct mirror_options {
  std::string redis_url;
  // The one write a mirror makes, a snapshot request (a gap, or a local replica's), goes here
  // if set: the master, when redis_url is a read-only replica (Redis `replicaof`). Empty:
  // redis_url.
  std::string redis_master_url;
  std::string key;  // empty: the log's name
  // Where the mirror writes the snapshots it downloads (a full resync of the mirror, or a local
  // replica's request): local replicas load them from here, as from a producer's. Empty: the
  // mirror stops with an error when it needs a snapshot.
  std::filesystem::path snapshot_dir;
  std::uint32_t reader_slots = 0;  // for a log the mirror creates; 0: the default
  mode_t mode = 0600;              // likewise
  // How long to wait for the source to answer a snapshot request before asking again.
  std::chrono::milliseconds snapshot_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds block = std::chrono::milliseconds(100);  // one blocking read
  bool serve_link = true;                                            // as ship_options::serve_link
  link_log log;
  std::function<void()> on_ready;  // once the local log exists and follows the stream
  bool notify_service = true;      // as ship_options::notify_service
};

struct mirror_result {
  std::uint64_t mirrored_offset = 0;  // the local log's master offset
};

// Mirrors the log shipped under options.key into the local log `log` until `stop` becomes true
// (or, with `stop` null, a stop signal), as its writer: creates it on the first run with the
// source's capacity, history and offsets, continues from its own segment after a restart.
// Answers query_link(). Throws shmlog::error for what it cannot go on from: a local log of
// another capacity (invalid_argument), another live writer of the local log, a snapshot it
// needs without snapshot_dir, a stream whose records would not land where the source put
// them (unexpected_offset: the logs diverged).
SHMLOG_API mirror_result run_mirror(std::string_view log, const mirror_options& options,
                                    const std::atomic<bool>* stop = nullptr);

struct promote_options {
  std::string redis_url;
  std::string key;  // empty: the log's name
};

struct promote_result {
  history_state history;     // the promoted log's new history: replid2 = the mirror's old one
  std::uint64_t offset = 0;  // its master offset, the second offset of the new history
  bool resumed = false;      // an earlier promote stopped half-way; this one finished it
};

// Turns the mirror `log` (stopped: promote takes its writer role) into the source of truth for
// its key after a failover (PSYNC2): a new history id with replid2 = the mirror's and the
// second offset at its master offset, published in Redis first, which fences the old shipper
// (its next append is refused and it stops), then in the local log. Readers sharing the prefix
// continue; others full-resync. Run a producer on the log and `shmlog ship` to go on. Throws
// writer_exists if the mirror still runs, invalid_argument if the key is not this log's.
SHMLOG_API promote_result promote(std::string_view log, const promote_options& options);

// Asks the ship or mirror daemon of process `pid` (the log's writer, or a reader labelled
// "ship", as inspect() lists them) how its link stands. nullopt if that process runs no such
// daemon for `log`. Throws what query_replica() throws.
SHMLOG_API std::optional<link_status> query_link(pid_t pid, std::string_view log);

}  // namespace shmlog
