#include "shmlog/replica_daemon.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <thread>

#include "daemon_support.h"
#include "query_socket.h"
#include "shmlog/error.h"
#include "shmlog/snapshot.h"

namespace shmlog {
namespace {

using detail::signal_scope;

// --- the state, shared with the query thread -----------------------------------------------

// The user's state behind a lock, with the offset it reflects: the replica applies and loads
// through it on its thread while queries read the state on theirs. The replica's own offset()
// belongs to the replica's thread, and between loading a snapshot and continuing from its
// offset it is not yet the state's.
class locked_state : public state_machine {
 public:
  explicit locked_state(state_machine& inner) : inner_(inner) {}

  void apply(const record_view& record) override {
    const std::lock_guard lock(mutex_);
    inner_.apply(record);
    offset_ = record.next_offset;
  }
  void save(std::ostream& out) const override {
    const std::lock_guard lock(mutex_);
    inner_.save(out);
  }
  void load(std::istream& in) override {
    const std::lock_guard lock(mutex_);
    inner_.load(in);
    offset_.reset();  // settled once the replica continues from the snapshot's offset
  }
  void settle(std::uint64_t offset) {
    const std::lock_guard lock(mutex_);
    offset_ = offset;
  }
  template <class F>
  auto with_lock(F&& f) const {
    const std::lock_guard lock(mutex_);
    return f(offset_);
  }

 private:
  state_machine& inner_;
  mutable std::mutex mutex_;
  std::optional<std::uint64_t> offset_;  // empty: no state yet, or a snapshot being settled
};

constexpr auto loop_wait = std::chrono::milliseconds(100);

class daemon {
 public:
  daemon(std::string_view log, state_machine& state, const replica_daemon_options& o)
      : name_(log), state_(state), o_(o) {}

  replica_daemon_result run();

 private:
  void log(const std::string& line) const {
    if (o_.log) {
      o_.log(line);
      return;
    }
    detail::log_to_stderr("replica", line);
  }
  // Holding a state (loaded, or resumed from the state file) and answering queries from it.
  void ready(replica& r) {
    if (ready_) return;
    ready_ = true;
    if (o_.on_ready) o_.on_ready();
    service_->ready(status(r));
  }
  // The STATUS= line: where the state stands against the log.
  static std::string status(replica& r) {
    const std::uint64_t master = r.log_reader().master_offset();
    const replica_stats& s = r.stats();
    return "offset " + std::to_string(r.offset()) + ", lag " +
           std::to_string(master > r.offset() ? master - r.offset() : 0) + " bytes; " +
           std::to_string(s.records_applied) + " records applied, " +
           std::to_string(s.full_resyncs) + " full and " + std::to_string(s.partial_resyncs) +
           " partial resyncs";
  }
  // The state file, with the (history, offset) the state reflects: the replica's own, between
  // records (on its thread), so nothing is half applied.
  void save(replica& r) {
    const snapshot_meta saved = write_snapshot_file(o_.state_file, r.replid(), r.offset(), state_);
    log("saved the state at offset " + std::to_string(saved.offset) + " to " + saved.path.string() +
        " (" + std::to_string(saved.file_bytes()) + " bytes)");
  }
  std::optional<snapshot_meta> load_state_file();
  bool catch_up_for_stop(replica& r, const signal_scope& signals, replica_daemon_result& result);
  bool attach(std::optional<replica>& r, replica_options ro, const signal_scope& signals);

  std::string name_;
  locked_state state_;
  const replica_daemon_options& o_;
  bool ready_ = false;
  std::optional<detail::service_link> service_;  // from run(), with its signal scope
};

// A state file from an earlier run: verified whole and loaded before the replica attaches.
std::optional<snapshot_meta> daemon::load_state_file() {
  if (o_.state_file.empty()) return std::nullopt;
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(o_.state_file, ec))) {
    log("no state file at " + o_.state_file.string() + " yet: starting with a full resync");
    return std::nullopt;
  }
  snapshot_meta loaded = load_snapshot(o_.state_file, state_);
  log("loaded the state file " + o_.state_file.string() + " (history " + loaded.replid.str() +
      ", offset " + std::to_string(loaded.offset) + ")");
  return loaded;
}

// Every record published before the stop signal: the master offset now is at least the one
// when the signal came. If a new writer took the history back below it, those records are gone
// from the log, and the replica can only be as current as the new history.
bool daemon::catch_up_for_stop(replica& r, const signal_scope& signals,
                               replica_daemon_result& result) {
  const std::uint64_t target = r.log_reader().master_offset();
  const history_id replid_then = r.log_reader().history().replid;
  for (;;) {
    r.catch_up();
    if (signals.stops() >= 2 || r.stopping()) {
      result.gave_up_catching_up = true;
      result.catch_up_target = target;
      return false;
    }
    service_->tick();
    if (r.synced()) {
      if (r.offset() >= target) return true;
      if (r.log_reader().history().replid != replid_then &&
          r.offset() >= r.log_reader().master_offset())
        return true;
    }
    r.wait(loop_wait);
  }
}

// Attaches, waiting up to wait_for_log for the log to be created: in slices of the reader's
// own wait, so that a stop signal ends the wait within one slice (then false: no replica).
bool daemon::attach(std::optional<replica>& r, replica_options ro, const signal_scope& signals) {
  using std::chrono::milliseconds;
  constexpr milliseconds slice(100);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + o_.wait_for_log;
  bool waiting = false;
  for (;;) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - std::chrono::steady_clock::now());
    ro.wait_for_log = std::clamp(left, milliseconds::zero(), slice);
    try {
      r.emplace(name_, state_, ro);
      if (waiting) log("log '" + name_ + "' is there");
      return true;
    } catch (const error& e) {
      if (e.code() != errc::not_found && e.code() != errc::not_initialized) throw;
      if (ro.wait_for_log == milliseconds::zero()) {
        if (o_.wait_for_log <= milliseconds::zero()) throw;
        throw error(e.code(), std::string(e.what()) + "; waited " +
                                  std::to_string(std::chrono::duration_cast<milliseconds>(
                                                     std::chrono::steady_clock::now() - start)
                                                     .count()) +
                                  " ms for it to be created (wait_for_log " +
                                  std::to_string(o_.wait_for_log.count()) + " ms)");
      }
      service_->tick();
      if (!waiting) {
        waiting = true;
        service_->set_status("waiting for log '" + name_ + "' to be created");
        log("waiting up to " + std::to_string(o_.wait_for_log.count()) + " ms for log '" + name_ +
            "' to be created");
      }
      if (signals.stops() != 0) return false;
    }
  }
}

replica_daemon_result daemon::run() {
  replica_daemon_result result;
  signal_scope signals;
  service_.emplace(o_.notify_service, &signals, [this](const std::string& line) { log(line); });
  std::optional<detail::query_server> server;
  // Listen before attaching: a daemon that cannot be asked (its socket name is taken) must stop
  // before it takes a reader slot or asks the producer for a snapshot.
  if (o_.query)
    server.emplace(name_, [this](std::string_view request) {
      return state_.with_lock([&](std::optional<std::uint64_t> offset) {
        return query_answer{offset, o_.query(request)};
      });
    });
  const std::optional<snapshot_meta> saved = load_state_file();

  replica_options ro;
  ro.snapshot_dir = o_.snapshot_dir;
  ro.wait = o_.wait;
  ro.label = o_.label;
  ro.on_event = [this](const replica_event& e) {
    // The state is settled once the replica goes on from the loaded snapshot's offset.
    if (e.what == replica_event::kind::full_resync_done) state_.settle(e.offset);
    log(std::string(to_string(e.what)) + " at offset " + std::to_string(e.offset) + ": " +
        e.message);
    // A full resync runs inside catch_up(): its steps are the loop's turns meanwhile.
    service_->tick();
    service_->set_status(std::string(to_string(e.what)) + " at offset " + std::to_string(e.offset));
  };
  ro.on_load_progress = [this](std::uint64_t, std::uint64_t) { service_->tick(); };
  std::optional<replica> attached;
  if (!attach(attached, ro, signals)) {
    service_->stopping("stopped before log '" + name_ + "' was created");
    log("stopped before log '" + name_ + "' was created");
    return result;
  }
  replica& r = *attached;
  // Without on_stop or a state file, the first stop signal interrupts a full resync at once.
  // With either, the first one asks for the state to catch up, which needs the resync to
  // finish; a second one gives up.
  const bool keeps_state = o_.on_stop || !o_.state_file.empty();
  signals.on_stop([&r] { r.stop(); }, keeps_state ? 2 : 1);
  struct forget_stop {  // before r goes: the watcher thread must not stop a replica that is gone
    signal_scope& s;
    ~forget_stop() { s.forget_stop(); }
  } forget{signals};
  log("started on log '" + name_ + "' (reader slot " + std::to_string(r.log_reader().slot()) +
      ", label " + o_.label + "); snapshots from " + o_.snapshot_dir.string() +
      (server ? "; query socket @" + server->address() : "") +
      (o_.state_file.empty() ? "" : "; state file " + o_.state_file.string()));
  if (saved && r.resume(saved->replid, saved->offset).is_partial()) {
    state_.settle(saved->offset);
    ready(r);
  }

  auto next_save = std::chrono::steady_clock::now() + o_.save_every;
  const std::function<std::string()> status_line = [&r] { return daemon::status(r); };
  const std::function<std::string()> no_status;
  while (signals.stops() == 0) {
    r.catch_up();
    if (signals.stops() != 0) break;
    if (r.synced()) ready(r);
    service_->tick(ready_ ? status_line : no_status);
    if (!o_.state_file.empty() && o_.save_every.count() != 0 && r.synced() &&
        std::chrono::steady_clock::now() >= next_save) {
      save(r);
      next_save = std::chrono::steady_clock::now() + o_.save_every;
    }
    // Nothing more can arrive once the name is gone: no writer can open the log again.
    if (!r.wait(loop_wait) && r.log_reader().log_removed()) {
      r.catch_up();
      result.log_destroyed = r.synced();
      if (result.log_destroyed) break;
    }
  }

  service_->stopping(result.log_destroyed
                         ? "stopping: log '" + name_ + "' was destroyed, at offset " +
                               std::to_string(r.offset())
                         : "stopping at offset " + std::to_string(r.offset()) +
                               (keeps_state ? ": catching up to save the state" : ""));
  if (keeps_state && catch_up_for_stop(r, signals, result)) {
    if (!o_.state_file.empty()) save(r);
    if (o_.on_stop)
      state_.with_lock([&](std::optional<std::uint64_t>) {
        o_.on_stop(r.offset());
        return 0;
      });
  }
  result.offset = r.offset();
  result.stats = r.stats();
  const replica_stats& s = result.stats;
  log("stopped at offset " + std::to_string(r.offset()) + " (" + std::to_string(s.records_applied) +
      " records applied, " + std::to_string(s.full_resyncs) + " full and " +
      std::to_string(s.partial_resyncs) + " partial resyncs, " + std::to_string(s.laps) + " laps)");
  return result;
}

}  // namespace

replica_daemon_result run_replica_daemon(std::string_view log, state_machine& state,
                                         const replica_daemon_options& options) {
  if (!options.state_file.empty() && options.state_file.filename().empty())
    throw error(errc::invalid_argument,
                "state file '" + options.state_file.string() + "' is not a file name");
  daemon d(log, state, options);
  return d.run();
}

}  // namespace shmlog
