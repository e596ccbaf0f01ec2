// What the ship and mirror daemons share (docs/remote.md): the names of the meta fields, the
// snapshot chunk format, and the link status they publish to `shmlog info` over their query
// socket. Private to the library.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "../daemon_support.h"
#include "../query_socket.h"
#include "engine.h"
#include "shmlog/error.h"
#include "shmlog/history.h"
#include "shmlog/remote.h"

namespace shmlog::remote {

// The meta hash's fields (docs/remote.md, "The protocol").
namespace field {
inline constexpr const char* replid = "replid";
inline constexpr const char* replid2 = "replid2";
inline constexpr const char* second_offset = "second_offset";
inline constexpr const char* capacity = "capacity";
inline constexpr const char* start_offset = "start_offset";
inline constexpr const char* epoch = "epoch";
inline constexpr const char* source = "source";            // "<host>/<log>" of the shipper
inline constexpr const char* shipped = "shipped";          // set by the append script
inline constexpr const char* promoted_by = "promoted_by";  // "<host>/<log> pid <pid> at <time>"
inline constexpr const char* snap_seq = "snap_seq";        // generations handed out
inline constexpr const char* snap_gen = "snap_gen";        // the newest complete snapshot
inline constexpr const char* snap_replid = "snap_replid";
inline constexpr const char* snap_offset = "snap_offset";
inline constexpr const char* snap_bytes = "snap_bytes";
inline constexpr const char* snap_crc = "snap_crc";  // CRC-32C of the whole file, 8 hex digits
inline constexpr const char* snap_chunks = "snap_chunks";
inline constexpr const char* snap_requests = "snap_requests";  // mirrors' requests so far
inline constexpr const char* snap_served = "snap_served";      // what the newest one answers
}  // namespace field

// A snapshot file travels in chunks of this many bytes, each stored as its CRC-32C (4 bytes,
// little-endian) followed by the bytes.
inline constexpr std::size_t snapshot_chunk_bytes = 4 << 20;

// A field of `meta` as an unsigned decimal: nullopt if absent; error(system_error) naming the
// key and the field if present but not a decimal (the meta comes from another host).
std::optional<std::uint64_t> meta_number(const fields& meta, std::string_view key,
                                         const char* name);
// The history the meta describes, or nullopt if it has no replid. Throws like meta_number.
std::optional<history_state> meta_history(const fields& meta, std::string_view key);
// The fields that describe `h`.
void put_history(fields& out, const history_state& h);

// Errors a ship or mirror daemon waits out and retries, with back-off: Redis down, slow or
// restarted (system_error), a snapshot that failed or came late (bad_snapshot,
// snapshot_timeout), a producer that died announcing one (interrupted_update).
bool retryable(errc code) noexcept;

// A daemon's back-off after such an error: 10 ms doubling to 2 s; the wait ends early on `stop`.
class back_off {
 public:
  std::chrono::milliseconds next() const noexcept { return delay_; }
  void reset() noexcept { delay_ = std::chrono::milliseconds(10); }
  void wait(const std::function<bool()>& stopping);

 private:
  std::chrono::milliseconds delay_{10};
};

// A CRC-32C as the meta stores it: 8 lowercase hex digits.
std::string crc_hex(std::uint32_t crc);

// "<host name>/<log>": who ships or promoted a log.
std::string host_and_log(std::string_view log);

// The link status of one daemon, written by its thread and read by its query thread.
class link_tracker {
 public:
  explicit link_tracker(link_status initial) : status_(std::move(initial)) {}

  template <class F>
  void update(F&& f) {
    const std::lock_guard lock(mutex_);
    f(status_);
  }
  // offset and source_offset as they stand now; `caught_up` restarts the lag clock.
  void positions(std::uint64_t offset, std::uint64_t source_offset);
  void error(const std::string& message);
  void set_state(std::string_view state);
  // The answer to a LINK request: "shmlog-link 1\n" then one "name value" line per field.
  std::string describe();

 private:
  std::mutex mutex_;
  link_status status_;
  std::chrono::steady_clock::time_point caught_up_at_ = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> error_at_;
};

// Parses describe()'s text; nullopt if it is not a link answer.
std::optional<link_status> parse_link(std::string_view text);

inline constexpr std::string_view link_request = "LINK";

// What run_shipper() and run_mirror() share: `Daemon(log, options, stop).run()` with `stop`, or,
// if that is null, with a flag the daemon's SIGINT or SIGTERM sets (taken on a thread of a
// signal scope, as the replica daemon takes them; the daemon logs SIGHUP from it), and, if
// options.serve_link, the LINK answer on the process's query socket while it runs.
template <class Daemon, class Options>
auto run_link_daemon(std::string_view log, const Options& options, const std::atomic<bool>* stop) {
  std::atomic<bool> signalled{false};
  std::optional<detail::signal_scope> signals;
  if (stop == nullptr) {
    signals.emplace();
    signals->on_stop([&signalled] { signalled.store(true, std::memory_order_relaxed); }, 1);
    stop = &signalled;
  }
  struct forget_stop {  // before `signalled` goes: the watcher must not set a flag that is gone
    std::optional<detail::signal_scope>& s;
    ~forget_stop() {
      if (s) s->forget_stop();
    }
  } forget{signals};
  Daemon daemon(log, options, *stop, signals ? &*signals : nullptr);
  std::optional<detail::query_server> server;
  if (options.serve_link)
    server.emplace(std::string(log), [&daemon](std::string_view request) {
      if (request != link_request) return query_answer{std::nullopt, "ERR unknown request"};
      return query_answer{std::nullopt, daemon.tracker().describe()};
    });
  return daemon.run();
}

}  // namespace shmlog::remote
