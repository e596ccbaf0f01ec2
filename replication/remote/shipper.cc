// shmlog ship: a reader of the source log that appends its records to a Redis stream, one per
// history, fenced on the history id (docs/remote.md, "The shipper").
#include <algorithm>
#include <thread>

#include "../daemon_support.h"
#include "engine.h"
#include "link.h"
#include "record_batch.h"
#include "redis_engine.h"
#include "shmlog/crc32c.h"
#include "shmlog/error.h"
#include "shmlog/reader.h"
#include "shmlog/remote.h"
#include "shmlog/segment.h"
#include "shmlog/snapshot.h"
#include "snapshot_bytes.h"

namespace shmlog {
namespace {

using namespace remote;

constexpr auto idle_wait = std::chrono::milliseconds(100);
constexpr auto meta_check_every = std::chrono::milliseconds(100);
constexpr std::size_t entries_per_append = 64;  // pipelined into one write

class shipper {
 public:
  shipper(std::string_view log, const ship_options& o, const std::atomic<bool>& stop,
          const detail::signal_scope* signals)
      : log_(log),
        o_(o),
        service_(o.notify_service, signals, [this](const std::string& line) { this->log(line); }),
        key_(o.key.empty() ? std::string(log) : o.key),
        stop_(stop),
        engine_(connect_redis(o.redis_url, {.connect_at_once = false})),
        tracker_(link_status{
            .role = "ship", .endpoint = engine_->endpoint(), .key = key_, .state = "starting"}),
        reader_(reader::attach(log, {.start = start_position::latest(),
                                     .wait = {.mode = wait_mode::adaptive,
                                              .spin_for = std::chrono::microseconds(20),
                                              .yield_for = std::chrono::microseconds(200)},
                                     .label = o.label})),
        start_offset_(inspect(log).start_offset) {
    validate_name(key_);
    if (o.entry_bytes == 0) throw error(errc::invalid_argument, "ship: entry_bytes must be > 0");
    if (!o.snapshot_dir.empty()) {
      snapshot_dir_ = std::filesystem::absolute(o.snapshot_dir).lexically_normal();
      check_snapshot_dir(snapshot_dir_, false);
    }
  }

  link_tracker& tracker() noexcept { return tracker_; }
  ship_result run();

 private:
  bool stopping() const { return stop_.load(std::memory_order_relaxed) || result_.fenced; }
  void log(const std::string& line) const {
    if (o_.log)
      o_.log(line);
    else
      detail::log_to_stderr("ship", line);
  }

  void start();
  bool try_resume(std::uint64_t offset, const char* why);
  void ship_from_snapshot(const std::string& why);
  std::optional<snapshot_meta> request_snapshot();
  void upload(const snapshot_meta& s, std::uint64_t serves);
  bool publish_history(const fields& meta, const history_state& h);
  void fence(const fields& meta);
  void step();
  void add_record(const record_view& r);
  void close_entry();
  void flush();
  void check_meta();
  void on_history_change();

  // Each turn of the loop, and of the waits inside it: watchdog, SIGHUP, status.
  void tick() { service_.tick(status_); }
  std::string status();

  std::string log_;
  const ship_options& o_;
  detail::service_link service_;
  const std::function<std::string()> status_ = [this] { return status(); };
  std::string key_;
  const std::atomic<bool>& stop_;
  std::unique_ptr<engine> engine_;
  link_tracker tracker_;
  reader reader_;
  std::uint64_t start_offset_ = 0;
  std::filesystem::path snapshot_dir_;

  bool positioned_ = false;
  bool ready_ = false;
  history_id replid_;                       // the history (and stream) being shipped
  std::uint64_t range_start_ = 0;           // where the next entry starts: the end of the last one
  std::uint64_t acked_end_ = 0;             // the end of the newest entry Redis has
  std::optional<history_id> acked_replid_;  // acked_end_'s history
  entry current_;
  std::size_t current_records_ = 0;
  std::vector<entry> pending_;
  std::vector<std::size_t> pending_records_;
  std::vector<std::byte> buffer_;
  std::chrono::steady_clock::time_point next_meta_check_{};
  ship_result result_;
};

// Agree with the meta on the history (initialise it, or publish the source's new one), then
// choose where to ship from.
void shipper::start() {
  pending_.clear();
  pending_records_.clear();
  current_ = entry{};
  current_records_ = 0;
  const fields meta = engine_->meta(key_);
  if (const auto cap = meta_number(meta, key_, field::capacity); cap && *cap != reader_.capacity())
    throw error(errc::invalid_argument,
                "key '" + key_ + "' at " + engine_->endpoint() + " holds a log of capacity " +
                    std::to_string(*cap) + "; log '" + log_ + "' has " +
                    std::to_string(reader_.capacity()) +
                    ": a mirror could not put the records at the same offsets (use another --key)");
  const history_state h = reader_.history();
  const std::optional<history_state> keyed = meta_history(meta, key_);
  if (!keyed || keyed->replid != h.replid) {
    // Another log owns the key: a mirror promoted after a failover (this shipper is stale), or
    // a mistake (two logs shipped under one key).
    const auto source = meta.find(field::source);
    if (keyed && source != meta.end() && source->second != host_and_log(log_)) {
      if (meta.contains(field::promoted_by)) return fence(meta);
      throw error(errc::invalid_argument, "key '" + key_ + "' at " + engine_->endpoint() +
                                              " is shipped from " + source->second + " (history " +
                                              keyed->replid.str() + "), not from " +
                                              host_and_log(log_) + " (use another --key)");
    }
    if (!publish_history(meta, h)) return;  // changed meanwhile: look again
  }
  replid_ = h.replid;

  // Where to ship from: the end of the stream, what Redis last took (a promoted mirror's offset,
  // or the stream was lost with a Redis restarted empty), the log's start, else a snapshot.
  if (const auto end = engine_->newest_end(key_, replid_.view()))
    if (try_resume(*end, "the end of the stream")) return;
  if (acked_replid_ == replid_ && try_resume(acked_end_, "where Redis last took records")) return;
  if (keyed && keyed->replid == h.replid)
    if (const auto shipped = meta_number(meta, key_, field::shipped))
      if (try_resume(*shipped, "the key's shipped offset")) return;
  if (try_resume(start_offset_, "the log's start")) return;
  ship_from_snapshot("the log no longer holds the records after what Redis has");
}

bool shipper::try_resume(std::uint64_t offset, const char* why) {
  const resync_decision d = reader_.resync(replid_, offset);
  if (!d.is_partial()) return false;
  range_start_ = acked_end_ = offset;
  acked_replid_ = replid_;
  positioned_ = true;
  log("shipping log '" + log_ + "' history " + replid_.str() + " from offset " +
      std::to_string(offset) + " (" + why + ") to key '" + key_ + "' at " + engine_->endpoint());
  return true;
}

// The meta says another history than the source's: initialise it (none yet, or Redis restarted
// empty), or publish the source's new history (it restarted or branched while the shipper was
// down, or just now). Compare-and-set on the replid the meta had: false if it moved meanwhile.
bool shipper::publish_history(const fields& meta, const history_state& h) {
  const std::optional<history_state> keyed = meta_history(meta, key_);
  fields f;
  put_history(f, h);
  f[field::capacity] = std::to_string(reader_.capacity());
  f[field::start_offset] = std::to_string(start_offset_);
  f[field::source] = host_and_log(log_);
  f[field::epoch] = std::to_string(meta_number(meta, key_, field::epoch).value_or(0) + 1);
  const std::string guard = keyed ? keyed->replid.str() : std::string();
  if (!engine_->set_meta_if(key_, field::replid, guard, f)) return false;
  log(keyed ? "published history " + h.replid.str() + " (replid2 " + h.replid2.str() +
                  ", second offset " + std::to_string(h.second_repl_offset) + ") in place of " +
                  keyed->replid.str()
            : "initialised key '" + key_ + "' with history " + h.replid.str() + ", capacity " +
                  std::to_string(reader_.capacity()));
  return true;
}

void shipper::fence(const fields& meta) {
  const auto replid = meta.find(field::replid);
  const auto by = meta.find(field::promoted_by);
  result_.fenced = true;
  result_.fenced_by = "history " + (replid == meta.end() ? std::string("?") : replid->second) +
                      (by == meta.end() ? std::string() : ", promoted by " + by->second);
  tracker_.set_state("fenced");
  log("fenced: key '" + key_ + "' now belongs to " + result_.fenced_by + ", not to history " +
      replid_.str() + " of this log; stopping (nothing more was written)");
}

// Lapped, or started too late for the backlog: ship a snapshot the producer writes, then the
// records from its offset.
void shipper::ship_from_snapshot(const std::string& why) {
  if (snapshot_dir_.empty())
    throw error(errc::invalid_argument, "log '" + log_ + "': the shipper needs a snapshot (" + why +
                                            ") but was given no snapshot directory");
  tracker_.update([](link_status& s) { ++s.full_resyncs; });
  tracker_.set_state("snapshot");
  log("full resync: " + why + "; shipping a snapshot");
  while (!stopping()) {
    tick();
    std::optional<snapshot_meta> s = reader_.announced_snapshot();
    const backlog_window w = reader_.window();
    const bool usable = s->generation != 0 && s->replid == reader_.history().replid &&
                        s->offset >= w.first_byte_offset && s->offset <= w.master_offset;
    if (!usable) s = request_snapshot();
    if (!s) continue;
    if (s->path.parent_path() != snapshot_dir_) {
      log("refused snapshot " + s->path.string() + ": not in " + snapshot_dir_.string());
      continue;
    }
    try {
      verify_snapshot(s->path, s->replid);
    } catch (const error& e) {
      if (e.code() != errc::bad_snapshot) throw;
      log(std::string("refused snapshot: ") + e.what() + "; asking for another");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    const auto requests = meta_number(engine_->meta(key_), key_, field::snap_requests);
    upload(*s, requests.value_or(0));
    if (result_.fenced) return;
    const resync_decision d = reader_.continue_after_load(s->replid, s->offset);
    if (d.is_partial()) {
      replid_ = s->replid;
      range_start_ = s->offset;
      positioned_ = true;
      // The stream now goes on from the snapshot's offset: a mirror behind it must see the gap
      // even if nothing more is appended (it compares `shipped` with its own offset).
      if (!engine_->set_meta_if(key_, field::replid, replid_.view(),
                                {{field::shipped, std::to_string(s->offset)}}))
        return fence(engine_->meta(key_));
      tracker_.set_state("streaming");
      log("shipping from the snapshot's offset " + std::to_string(s->offset));
      return;
    }
    log("the backlog moved past the snapshot's offset: " + d.describe() + "; asking for another");
  }
}

// Asks the producer for a snapshot and waits for it; nullopt if it did not come in time.
std::optional<snapshot_meta> shipper::request_snapshot() {
  const std::uint64_t ticket = reader_.request_snapshot();
  const auto deadline = std::chrono::steady_clock::now() + o_.snapshot_timeout;
  while (!stopping() && std::chrono::steady_clock::now() < deadline) {
    snapshot_meta s = reader_.announced_snapshot();
    if (s.generation != 0 && s.requests_served >= ticket) return s;
    tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!stopping())
    log("the producer did not announce a snapshot within " +
        std::to_string(o_.snapshot_timeout.count()) + " ms; asking again");
  return std::nullopt;
}

// Chunks first, each with its CRC-32C, then the description in one meta update guarded on the
// history (a promoted key is not written), then the older generations go.
void shipper::upload(const snapshot_meta& s, std::uint64_t serves) {
  const auto generation =
      static_cast<std::uint64_t>(engine_->increment_meta(key_, field::snap_seq, 1));
  std::uint32_t whole = 0;
  std::uint64_t chunks = 0;
  std::string value;
  const std::uint64_t bytes =
      detail::read_snapshot_bytes(s.path, snapshot_chunk_bytes, [&](std::string_view piece) {
        tick();  // a big snapshot's chunks are this loop's turns
        const std::uint32_t crc = crc32c(piece.data(), piece.size());
        value.assign(reinterpret_cast<const char*>(&crc), sizeof crc);
        value.append(piece);
        engine_->put_chunk(key_, generation, chunks++, value);
        whole = crc32c(piece.data(), piece.size(), whole);
      });
  if (bytes != s.file_bytes())
    throw error(errc::bad_snapshot, "snapshot " + s.path.string() + " changed while uploading (" +
                                        std::to_string(bytes) + " bytes read, " +
                                        std::to_string(s.file_bytes()) + " verified)");
  fields f{{field::snap_gen, std::to_string(generation)},
           {field::snap_replid, s.replid.str()},
           {field::snap_offset, std::to_string(s.offset)},
           {field::snap_bytes, std::to_string(bytes)},
           {field::snap_crc, crc_hex(whole)},
           {field::snap_chunks, std::to_string(chunks)},
           {field::snap_served, std::to_string(serves)}};
  if (!engine_->set_meta_if(key_, field::replid, s.replid.view(), f)) {
    const fields meta = engine_->meta(key_);
    if (meta_history(meta, key_)) return fence(meta);
    throw error(errc::system_error, "the meta of key '" + key_ + "' vanished during an upload");
  }
  engine_->drop_chunks_below(key_, generation);
  tracker_.update([](link_status& st) { ++st.snapshots; });
  log("uploaded snapshot generation " + std::to_string(generation) + " of " + s.path.string() +
      " (history " + s.replid.str() + ", offset " + std::to_string(s.offset) + ", " +
      std::to_string(bytes) + " bytes in " + std::to_string(chunks) + " chunks)");
}

void shipper::add_record(const record_view& r) {
  if (current_records_ == 0) {
    current_.first_offset = range_start_;
    current_.records.clear();
  }
  pack_record(current_.records, r.offset, r.type, r.payload);
  current_.end_offset = r.next_offset;
  range_start_ = r.next_offset;
  ++current_records_;
  if (current_.records.size() >= o_.entry_bytes) close_entry();
}

void shipper::close_entry() {
  if (current_records_ == 0) return;
  pending_.push_back(std::move(current_));
  pending_records_.push_back(current_records_);
  current_ = entry{};
  current_records_ = 0;
}

void shipper::flush() {
  close_entry();
  if (pending_.empty()) return;
  const std::vector<append_result> results =
      engine_->append(key_, replid_.view(), pending_, o_.max_entries);
  std::uint64_t records = 0;
  std::uint64_t entries = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (results[i] == append_result::fenced) break;
    acked_end_ = pending_[i].end_offset;
    acked_replid_ = replid_;
    records += pending_records_[i];
    ++entries;
  }
  const bool fenced =
      std::find(results.begin(), results.end(), append_result::fenced) != results.end();
  pending_.clear();
  pending_records_.clear();
  tracker_.update([&](link_status& s) {
    s.records += records;
    s.entries += entries;
    s.replid = replid_;
  });
  result_.shipped_offset = acked_end_;
  if (!fenced) return;
  const fields meta = engine_->meta(key_);
  if (meta_history(meta, key_)) return fence(meta);
  // A meta without a replid fences every append: Redis restarted empty, or the key was deleted.
  log("key '" + key_ + "' has no meta (Redis restarted empty?): initialising it again");
  positioned_ = false;
}

// Every 100 ms: a promotion fences even an idle shipper, mirrors' snapshot requests are
// answered, and the link status is refreshed.
void shipper::check_meta() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_meta_check_) return;
  next_meta_check_ = now + meta_check_every;
  const fields meta = engine_->meta(key_);
  const std::optional<history_state> keyed = meta_history(meta, key_);
  if (!keyed) {
    log("key '" + key_ + "' has no meta (Redis restarted empty?): initialising it again");
    positioned_ = false;
    return;
  }
  if (keyed->replid != replid_) return fence(meta);
  tracker_.positions(acked_end_, reader_.master_offset());
  const std::uint64_t asked = meta_number(meta, key_, field::snap_requests).value_or(0);
  const std::uint64_t served = meta_number(meta, key_, field::snap_served).value_or(0);
  if (asked <= served || snapshot_dir_.empty()) return;
  log("a mirror asked for a snapshot (request " + std::to_string(asked) + ")");
  for (int attempt = 0; attempt < 3 && !stopping(); ++attempt) {
    const std::optional<snapshot_meta> s = request_snapshot();
    if (!s) continue;
    if (s->path.parent_path() != snapshot_dir_ || s->replid != replid_) {
      log("the producer's snapshot " + s->path.string() + " is not of this history in " +
          snapshot_dir_.string() + "; not uploaded");
      return;
    }
    verify_snapshot(s->path, s->replid);
    upload(*s, asked);
    return;
  }
}

void shipper::on_history_change() {
  const history_id before = reader_.replid();
  const resync_decision d = reader_.resync(before, reader_.offset());
  const history_state h = reader_.history();
  const fields meta = engine_->meta(key_);
  const std::optional<history_state> keyed = meta_history(meta, key_);
  if (keyed && keyed->replid != replid_ && keyed->replid != h.replid) return fence(meta);
  if ((!keyed || keyed->replid != h.replid) && !publish_history(meta, h)) {
    positioned_ = false;  // moved meanwhile: start over
    return;
  }
  replid_ = h.replid;
  if (d.is_partial()) {
    range_start_ = acked_end_ = reader_.offset();
    acked_replid_ = replid_;
    log("the source's history changed: " + d.describe() + "; shipping into the stream of " +
        replid_.str());
    return;
  }
  ship_from_snapshot("the source's history changed: " + d.describe());
}

void shipper::step() {
  for (;;) {
    const poll_result p = reader_.poll_copy(buffer_);
    switch (p.status) {
      case poll_status::record:
        add_record(p.record);
        if (pending_.size() >= entries_per_append) {
          flush();
          check_meta();
          return;
        }
        continue;
      case poll_status::empty:
        flush();
        if (!positioned_ || stopping()) return;
        check_meta();
        tracker_.set_state("caught up");
        tracker_.positions(acked_end_, reader_.master_offset());
        if (!reader_.wait(idle_wait) && reader_.log_removed()) {
          const poll_result last = reader_.poll_copy(buffer_);
          if (last.status == poll_status::empty) {
            result_.log_destroyed = true;
            return;
          }
          if (last.status == poll_status::record) add_record(last.record);
        }
        tracker_.set_state("streaming");
        return;
      case poll_status::lapped:
        flush();
        if (!positioned_ || stopping()) return;
        tracker_.error("lapped at offset " + std::to_string(p.lap.wanted_offset) + " (" +
                       std::to_string(p.lap.bytes_lost()) + " bytes overwritten)");
        ship_from_snapshot("lapped at offset " + std::to_string(p.lap.wanted_offset) +
                           ", the oldest held is " + std::to_string(p.lap.oldest_offset));
        return;
      case poll_status::history_changed:
        flush();
        if (!positioned_ || stopping()) return;
        on_history_change();
        return;
      case poll_status::too_small:  // poll_copy(span) only; the shipper's buffer grows
      case poll_status::corrupt:
        flush();
        throw error(errc::corrupt_record, "log '" + log_ + "' is corrupt at offset " +
                                              std::to_string(p.corruption.offset) + ": " +
                                              p.corruption.reason + "; the shipper stops");
    }
  }
}

// The STATUS= line: the link as `shmlog info` shows it.
std::string shipper::status() {
  std::string text;
  tracker_.update([&](const link_status& s) {
    text = s.state + ": shipped to offset " + std::to_string(s.offset) + " of " +
           std::to_string(s.source_offset) + ", lag " + std::to_string(s.lag_bytes) +
           " bytes, key '" + s.key + "' at " + s.endpoint +
           (s.last_error.empty() ? "" : "; last error: " + s.last_error);
  });
  return text;
}

ship_result shipper::run() {
  back_off backoff;
  while (!stopping() && !result_.log_destroyed) {
    tick();
    try {
      if (!positioned_) {
        start();
        if (!positioned_) continue;
        if (!ready_) {
          ready_ = true;
          if (o_.on_ready) o_.on_ready();
          service_.ready("streaming: shipping log '" + log_ + "' from offset " +
                         std::to_string(range_start_) + " to key '" + key_ + "' at " +
                         engine_->endpoint());
        }
        tracker_.set_state("streaming");
        backoff.reset();
      }
      step();
    } catch (const error& e) {
      if (!retryable(e.code())) throw;
      tracker_.error(e.what());
      tracker_.set_state("retrying");
      log(std::string("error: ") + e.what() + "; retrying in " +
          std::to_string(backoff.next().count()) + " ms");
      positioned_ = false;
      service_.set_status("retrying: " + std::string(e.what()));
      backoff.wait([this] {
        tick();
        return stopping();
      });
    }
  }
  result_.shipped_offset = acked_end_;
  service_.stopping("stopping: " + std::to_string(acked_end_) + " shipped" +
                    (result_.fenced ? " (fenced by " + result_.fenced_by + ")" : "") +
                    (result_.log_destroyed ? " (the log was destroyed)" : ""));
  log("stopped: " + std::to_string(acked_end_) + " shipped" +
      (result_.fenced ? " (fenced by " + result_.fenced_by + ")" : "") +
      (result_.log_destroyed ? " (the log was destroyed)" : ""));
  return result_;
}

}  // namespace

ship_result run_shipper(std::string_view log, const ship_options& options,
                        const std::atomic<bool>* stop) {
  return remote::run_link_daemon<shipper>(log, options, stop);
}

}  // namespace shmlog
