// shmlog mirror: the writer of a local log that reproduces a shipped log record for record, at
// the same offsets, in the same histories (docs/remote.md, "The mirror").
#include <algorithm>
#include <cstring>
#include <thread>

#include "../daemon_support.h"
#include "engine.h"
#include "link.h"
#include "record_batch.h"
#include "redis_engine.h"
#include "shmlog/crc32c.h"
#include "shmlog/error.h"
#include "shmlog/remote.h"
#include "shmlog/segment.h"
#include "shmlog/snapshot.h"
#include "shmlog/writer.h"
#include "snapshot_bytes.h"

namespace shmlog {
namespace {

using namespace remote;

constexpr std::size_t entries_per_read = 64;
constexpr auto meta_check_every = std::chrono::milliseconds(100);
constexpr std::size_t snapshots_kept = 3;

// The newest snapshot in Redis, as the meta describes it.
struct remote_snapshot {
  std::uint64_t generation = 0;
  history_id replid;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  std::uint64_t chunks = 0;
  std::string crc;
  std::uint64_t served = 0;
};

std::optional<remote_snapshot> meta_snapshot(const fields& meta, std::string_view key) {
  const auto generation = meta_number(meta, key, field::snap_gen);
  if (!generation || *generation == 0) return std::nullopt;
  remote_snapshot s;
  s.generation = *generation;
  const auto replid = meta.find(field::snap_replid);
  const auto parsed = replid == meta.end() ? std::nullopt : history_id::parse(replid->second);
  const auto offset = meta_number(meta, key, field::snap_offset);
  const auto bytes = meta_number(meta, key, field::snap_bytes);
  const auto chunks = meta_number(meta, key, field::snap_chunks);
  const auto crc = meta.find(field::snap_crc);
  if (!parsed || !offset || !bytes || !chunks || crc == meta.end())
    throw error(errc::system_error, "the meta of key '" + std::string(key) +
                                        "' describes snapshot generation " +
                                        std::to_string(s.generation) + " incompletely");
  s.replid = *parsed;
  s.offset = *offset;
  s.bytes = *bytes;
  s.chunks = *chunks;
  s.crc = crc->second;
  s.served = meta_number(meta, key, field::snap_served).value_or(0);
  return s;
}

class mirror {
 public:
  mirror(std::string_view log, const mirror_options& o, const std::atomic<bool>& stop,
         const detail::signal_scope* signals)
      : log_(log),
        o_(o),
        service_(o.notify_service, signals, [this](const std::string& line) { this->log(line); }),
        key_(o.key.empty() ? std::string(log) : o.key),
        stop_(stop),
        engine_(connect_redis(o.redis_url, {.connect_at_once = false})),
        master_(o.redis_master_url.empty()
                    ? nullptr
                    : connect_redis(o.redis_master_url, {.connect_at_once = false})),
        tracker_(link_status{
            .role = "mirror", .endpoint = engine_->endpoint(), .key = key_, .state = "starting"}) {
    validate_name(log);
    validate_name(key_);
    if (!o.snapshot_dir.empty()) {
      snapshot_dir_ = std::filesystem::absolute(o.snapshot_dir).lexically_normal();
      check_snapshot_dir(snapshot_dir_, true);
    }
  }

  link_tracker& tracker() noexcept { return tracker_; }
  mirror_result run();

 private:
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }
  void log(const std::string& line) const {
    if (o_.log)
      o_.log(line);
    else
      detail::log_to_stderr("mirror", line);
  }
  bool open_or_create();
  void reposition();
  void step();
  bool apply(const entry& e);
  void check_meta(bool drained);
  void on_history_change(const history_state& keyed);
  void full_resync(const std::string& why);
  std::optional<std::pair<remote_snapshot, snapshot_meta>> obtain_snapshot(std::uint64_t at_least);
  void wait_for_snapshot(std::uint64_t ticket);
  snapshot_meta download(const remote_snapshot& s);
  void announce(snapshot_meta s);
  void need_snapshot_dir(const std::string& why) const;
  // Asks the source for a snapshot (the key's snap_requests, on the master if there is one);
  // returns the ticket the answer will carry.
  std::uint64_t ask_for_snapshot() {
    engine& writes = master_ ? *master_ : *engine_;
    return static_cast<std::uint64_t>(writes.increment_meta(key_, field::snap_requests, 1));
  }

  // Each turn of the loop, and of the waits inside it: watchdog, SIGHUP, status.
  void tick() { service_.tick(status_); }
  std::string status();

  std::string log_;
  const mirror_options& o_;
  detail::service_link service_;
  const std::function<std::string()> status_ = [this] { return status(); };
  std::string key_;
  const std::atomic<bool>& stop_;
  std::unique_ptr<engine> engine_;
  std::unique_ptr<engine> master_;  // for the snapshot requests, if redis_master_url is set
  link_tracker tracker_;
  std::filesystem::path snapshot_dir_;

  std::optional<writer> w_;
  bool positioned_ = false;
  std::optional<std::uint64_t> cursor_;  // read entries whose first offset is above this
  std::chrono::steady_clock::time_point next_meta_check_{};
  bool said_waiting_ = false;
  // Local replicas' snapshot requests forwarded to Redis: the local count forwarded and the
  // ticket (the key's snap_requests) that answers it.
  std::uint64_t forwarded_local_ = 0;
  std::optional<std::uint64_t> ticket_;
  std::uint64_t last_generation_ = 0;  // downloaded, or refused
  std::string last_crc_;               // and its checksum
  // Not the snapshot downloaded or refused last. Generations only grow within one Redis life,
  // but start again from 1 after Redis restarted empty: a generation below the last one, or the
  // same one with another checksum, is a new snapshot too.
  bool fresh(const remote_snapshot& s) const {
    return s.generation != last_generation_ || s.crc != last_crc_;
  }
  void seen(const remote_snapshot& s) {
    last_generation_ = s.generation;
    last_crc_ = s.crc;
  }
};

void mirror::need_snapshot_dir(const std::string& why) const {
  if (snapshot_dir_.empty())
    throw error(errc::invalid_argument, "mirror of log '" + log_ + "': " + why +
                                            ", which needs a snapshot, but the mirror was given "
                                            "no snapshot directory");
}

// The local log: taken over if it exists (a restarted mirror continues from its own segment),
// else created with the key's capacity and history, at the log's start if the stream begins
// there, or at a snapshot's offset.
bool mirror::open_or_create() {
  const fields meta = engine_->meta(key_);
  const std::optional<history_state> keyed = meta_history(meta, key_);
  const auto capacity = meta_number(meta, key_, field::capacity);
  if (!keyed || !capacity) {
    if (!said_waiting_)
      log("key '" + key_ + "' at " + engine_->endpoint() +
          " has no meta yet: waiting for its shipper");
    said_waiting_ = true;
    tracker_.set_state("waiting for the shipper");
    std::this_thread::sleep_for(o_.block);
    return false;
  }
  if (exists(log_)) {
    writer w = writer::open(log_);
    if (w.capacity() != *capacity)
      throw error(errc::invalid_argument,
                  "local log '" + log_ + "' has capacity " + std::to_string(w.capacity()) +
                      "; the log shipped under key '" + key_ + "' has " +
                      std::to_string(*capacity) + ": a mirror needs the same capacity");
    log("continuing local log '" + log_ + "' at offset " + std::to_string(w.master_offset()) +
        " (history " + w.history().replid.str() + ")");
    w_.emplace(std::move(w));
    return true;
  }
  create_options c;
  c.capacity = *capacity;
  if (o_.reader_slots != 0) c.reader_slots = o_.reader_slots;
  c.mode = o_.mode;
  c.history = *keyed;
  const std::uint64_t start = meta_number(meta, key_, field::start_offset).value_or(0);
  const std::optional<std::uint64_t> oldest = engine_->oldest(key_, keyed->replid.view());
  // An empty stream with nothing shipped and no snapshot: the source has written nothing yet
  // (or nothing since its shipper started at its start), so there is nothing to load.
  const bool nothing_shipped = !oldest && !meta_snapshot(meta, key_) &&
                               meta_number(meta, key_, field::shipped).value_or(start) == start;
  if (oldest == start || nothing_shipped) {
    c.start_offset = start;
    w_.emplace(writer::create(log_, c));
    log("created local log '" + log_ + "' (capacity " + std::to_string(*capacity) + ", history " +
        keyed->replid.str() + ") at the source's start, offset " + std::to_string(start));
    return true;
  }
  need_snapshot_dir("the stream no longer begins at the source log's start");
  const auto got = obtain_snapshot(0);
  if (!got) return false;
  c.start_offset = got->second.offset;
  c.history = meta_history(engine_->meta(key_), key_).value_or(*keyed);
  if (c.history->replid != got->second.replid) return false;  // moved on meanwhile: again
  w_.emplace(writer::create(log_, c));
  announce(got->second);
  tracker_.update([](link_status& s) { ++s.full_resyncs; });
  log("created local log '" + log_ + "' (capacity " + std::to_string(*capacity) + ", history " +
      c.history->replid.str() + ") at snapshot offset " + std::to_string(got->second.offset));
  return true;
}

// The read cursor for the local master offset M: the entry holding M if M is inside one (a
// mirror stopped half-way through an entry), else the entries from M on.
void mirror::reposition() {
  const std::uint64_t m = w_->master_offset();
  const history_id replid = w_->history().replid;
  const std::optional<entry> e = engine_->at_or_before(key_, replid.view(), m);
  if (e && e->end_offset > m)
    cursor_ = e->first_offset == 0 ? std::nullopt : std::optional(e->first_offset - 1);
  else if (e)
    cursor_ = e->first_offset;
  else
    cursor_ = m == 0 ? std::nullopt : std::optional(m - 1);
  positioned_ = true;
  tracker_.update([&](link_status& s) { s.replid = replid; });
}

// One entry: records below the master offset are there already; the first one beyond it must
// land exactly where the source put it. False: a gap, and a full resync was done.
bool mirror::apply(const entry& e) {
  const std::uint64_t m = w_->master_offset();
  if (e.end_offset <= m) {
    cursor_ = e.first_offset;
    return true;
  }
  if (e.first_offset > m) {
    full_resync("a gap in the stream: its next entry starts at offset " +
                std::to_string(e.first_offset) + ", the mirror is at " + std::to_string(m));
    return false;
  }
  std::string why;
  const auto records =
      unpack_records(e.records, e.first_offset, e.end_offset, w_->max_payload(), &why);
  if (!records) {
    full_resync("the stream's entry at offset " + std::to_string(e.first_offset) + " is corrupt (" +
                why + ")");
    return false;
  }
  std::uint64_t applied = 0;
  for (const unpacked_record& r : *records) {
    if (r.offset < w_->master_offset()) continue;
    w_->append_at(r.offset,
                  std::span(reinterpret_cast<const std::byte*>(r.payload.data()), r.payload.size()),
                  r.type);
    ++applied;
  }
  cursor_ = e.first_offset;
  tracker_.update([&](link_status& s) {
    s.records += applied;
    ++s.entries;
  });
  return true;
}

void mirror::step() {
  if (!positioned_) reposition();
  const history_id replid = w_->history().replid;
  const std::vector<entry> entries =
      engine_->read(key_, replid.view(), cursor_, entries_per_read, o_.block);
  for (const entry& e : entries)
    if (!apply(e)) return;
  check_meta(entries.empty());
}

// Every 100 ms, and whenever the stream is drained: the link status, a history change (only
// once the old stream is drained), local replicas' snapshot requests.
void mirror::check_meta(bool drained) {
  const auto now = std::chrono::steady_clock::now();
  if (!drained && now < next_meta_check_) return;
  next_meta_check_ = now + meta_check_every;
  const fields meta = engine_->meta(key_);
  const std::optional<history_state> keyed = meta_history(meta, key_);
  const std::uint64_t m = w_->master_offset();
  if (!keyed) {
    tracker_.set_state("waiting for the shipper");
    return;
  }
  const std::uint64_t shipped = meta_number(meta, key_, field::shipped).value_or(m);
  tracker_.positions(m, keyed->replid == w_->history().replid ? shipped : m);
  tracker_.set_state(drained ? "caught up" : "streaming");
  if (keyed->replid != w_->history().replid) {
    if (drained) on_history_change(*keyed);
    return;
  }
  // Drained, but the key says its stream reaches further: the shipper went on from a snapshot
  // beyond the mirror (it was lapped, or Redis lost the entries). The meta was read after the
  // stream, so look once more: an entry added meanwhile is not a gap.
  if (drained && shipped > m) {
    const std::vector<entry> late = engine_->read(key_, keyed->replid.view(), cursor_,
                                                  entries_per_read, std::chrono::milliseconds(0));
    if (late.empty())
      return full_resync("the key has shipped up to offset " + std::to_string(shipped) +
                         ", but its stream holds nothing after the mirror's offset " +
                         std::to_string(m));
    for (const entry& e : late)
      if (!apply(e)) return;
    return;
  }

  // Local replicas asking for a snapshot: forward once per new local request.
  const std::uint64_t local = w_->snapshot_requests();
  if (local > w_->announced_snapshot().requests_served && local > forwarded_local_ && !ticket_) {
    if (snapshot_dir_.empty()) {  // nowhere to put it: the replica waits, and says so
      log("a local replica asked for a snapshot, but the mirror has no snapshot directory");
      forwarded_local_ = local;
      return;
    }
    ticket_ = ask_for_snapshot();
    forwarded_local_ = local;
    log("a local replica asked for a snapshot: asked the source (request " +
        std::to_string(*ticket_) + ")");
  }
  if (!ticket_) return;
  const std::optional<remote_snapshot> s = meta_snapshot(meta, key_);
  if (!s || s->served < *ticket_ || !fresh(*s)) return;
  if (s->replid != w_->history().replid) {
    ticket_.reset();  // of another history: the next local request asks again
    return;
  }
  if (s->offset > m) return;  // the mirror gets there first, then announces it
  ticket_.reset();
  announce(download(*s));
}

// The key's history moved (the source restarted or branched, or a mirror was promoted): follow
// it where the new history shares the mirror's records (PSYNC2), else full resync.
void mirror::on_history_change(const history_state& keyed) {
  const history_state mine = w_->history();
  const std::uint64_t m = w_->master_offset();
  if (keyed.replid2 == mine.replid && keyed.second_repl_offset != no_offset) {
    const std::uint64_t at = std::min(m, keyed.second_repl_offset);
    try {
      w_->follow_history(keyed, at);
      positioned_ = false;
      log("followed the key's new history " + keyed.replid.str() + " (replid2 " +
          mine.replid.str() + ", second offset " + std::to_string(keyed.second_repl_offset) +
          ") at offset " + std::to_string(at));
      return;
    } catch (const error& e) {
      if (e.code() != errc::offset_out_of_range && e.code() != errc::not_a_record_boundary) throw;
      full_resync(std::string("the key's new history cannot be followed: ") + e.what());
      return;
    }
  }
  full_resync("the key's history " + keyed.replid.str() + " shares nothing with the mirror's " +
              mine.replid.str());
}

void mirror::full_resync(const std::string& why) {
  need_snapshot_dir(why);
  log("full resync: " + why);
  tracker_.set_state("snapshot");
  tracker_.error(why);
  tracker_.update([](link_status& s) { ++s.full_resyncs; });
  const auto got = obtain_snapshot(w_->master_offset());
  if (!got) return;  // stopped, or the key moved on: the next step decides again
  const std::optional<history_state> keyed = meta_history(engine_->meta(key_), key_);
  if (!keyed || keyed->replid != got->second.replid) return;
  w_->reset_to(*keyed, got->second.offset);
  announce(got->second);
  positioned_ = false;
  log("full resync done: the mirror goes on from offset " + std::to_string(got->second.offset) +
      " in history " + keyed->replid.str());
}

// A snapshot of the key's current history at `at_least` or beyond that the stream continues
// from: the one in Redis if it fits, else asked for. Downloaded and verified. nullopt if stopped.
std::optional<std::pair<remote_snapshot, snapshot_meta>> mirror::obtain_snapshot(
    std::uint64_t at_least) {
  bool asked = false;
  while (!stopping()) {
    tick();
    const fields meta = engine_->meta(key_);
    const std::optional<history_state> keyed = meta_history(meta, key_);
    if (!keyed) return std::nullopt;
    std::optional<remote_snapshot> s = meta_snapshot(meta, key_);
    const auto oldest = engine_->oldest(key_, keyed->replid.view());
    const bool usable = s && s->replid == keyed->replid && s->offset >= at_least && fresh(*s) &&
                        (!oldest || *oldest <= s->offset);
    if (!usable) {
      if (asked) {
        wait_for_snapshot(*ticket_);  // then look at the meta again
        asked = false;
        ticket_.reset();
        continue;
      }
      ticket_ = ask_for_snapshot();
      asked = true;
      log("asked the source for a snapshot (request " + std::to_string(*ticket_) + ")");
      continue;
    }
    try {
      snapshot_meta file = download(*s);
      tracker_.update([](link_status& st) { ++st.snapshots; });
      return std::pair(*s, std::move(file));
    } catch (const error& e) {
      if (e.code() != errc::bad_snapshot) throw;
      seen(*s);  // not this one again
      tracker_.error(e.what());
      log(std::string("refused snapshot: ") + e.what());
    }
  }
  return std::nullopt;
}

// Until a snapshot answering `ticket` is in the meta, or the snapshot timeout (logged).
void mirror::wait_for_snapshot(std::uint64_t ticket) {
  const auto deadline = std::chrono::steady_clock::now() + o_.snapshot_timeout;
  while (!stopping() && std::chrono::steady_clock::now() < deadline) {
    const std::optional<remote_snapshot> s = meta_snapshot(engine_->meta(key_), key_);
    if (s && s->served >= ticket && fresh(*s)) return;
    tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!stopping())
    log("the source did not answer snapshot request " + std::to_string(ticket) + " within " +
        std::to_string(o_.snapshot_timeout.count()) + " ms; asking again");
}

// Chunks from Redis into a file in the snapshot directory, each checked against its CRC-32C,
// then the whole file against the meta and verify_snapshot(). Throws bad_snapshot, leaving no
// file behind, if anything does not match.
snapshot_meta mirror::download(const remote_snapshot& s) {
  const std::uint64_t local_generation = (w_ ? w_->announced_snapshot().generation : 0) + 1;
  const std::filesystem::path path =
      snapshot_dir_ / snapshot_file_name(log_, s.offset, local_generation);
  const auto refuse = [&](const std::string& why) {
    return error(errc::bad_snapshot, "snapshot generation " + std::to_string(s.generation) +
                                         " of key '" + key_ + "': " + why);
  };
  std::uint64_t index = 0;
  std::uint32_t whole = 0;
  std::string chunk;
  detail::write_snapshot_bytes(path, [&]() -> std::string_view {
    tick();  // a big snapshot's chunks are this loop's turns
    if (index == s.chunks) return {};
    const std::optional<std::string> got = engine_->get_chunk(key_, s.generation, index);
    if (!got)
      throw refuse("chunk " + std::to_string(index) + " of " + std::to_string(s.chunks) +
                   " is missing from Redis");
    std::uint32_t crc = 0;
    if (got->size() < sizeof crc) throw refuse("chunk " + std::to_string(index) + " is truncated");
    std::memcpy(&crc, got->data(), sizeof crc);
    chunk = got->substr(sizeof crc);
    if (crc32c(chunk.data(), chunk.size()) != crc)
      throw refuse("chunk " + std::to_string(index) + " fails its CRC-32C");
    whole = crc32c(chunk.data(), chunk.size(), whole);
    ++index;
    if (chunk.empty()) throw refuse("chunk " + std::to_string(index - 1) + " is empty");
    return chunk;
  });
  try {
    if (crc_hex(whole) != s.crc)
      throw refuse("the file's CRC-32C is " + crc_hex(whole) + ", not " + s.crc);
    snapshot_meta v = verify_snapshot(path, s.replid);
    if (v.offset != s.offset || v.file_bytes() != s.bytes)
      throw refuse("the file is of offset " + std::to_string(v.offset) + " and " +
                   std::to_string(v.file_bytes()) + " bytes, not " + std::to_string(s.offset) +
                   " and " + std::to_string(s.bytes));
    seen(s);
    log("downloaded snapshot generation " + std::to_string(s.generation) + " to " + path.string() +
        " (offset " + std::to_string(s.offset) + ", " + std::to_string(s.bytes) + " bytes)");
    return v;
  } catch (...) {
    std::filesystem::remove(path);
    throw;
  }
}

void mirror::announce(snapshot_meta s) {
  s.generation = w_->announced_snapshot().generation + 1;
  s.requests_served = w_->snapshot_requests();
  w_->announce_snapshot(s);
  prune_snapshots(snapshot_dir_, log_, snapshots_kept);
}

// The STATUS= line: the link as `shmlog info` shows it.
std::string mirror::status() {
  std::string text;
  tracker_.update([&](const link_status& s) {
    text = s.state + ": log '" + log_ + "' at offset " + std::to_string(s.offset) +
           ", the stream at " + std::to_string(s.source_offset) + ", lag " +
           std::to_string(s.lag_bytes) + " bytes, key '" + s.key + "' at " + s.endpoint +
           (s.last_error.empty() ? "" : "; last error: " + s.last_error);
  });
  return text;
}

mirror_result mirror::run() {
  back_off backoff;
  bool ready = false;
  while (!stopping()) {
    tick();
    try {
      if (!w_) {
        if (!open_or_create()) continue;
        tracker_.set_state("streaming");
      }
      if (!ready) {
        ready = true;
        if (o_.on_ready) o_.on_ready();
        service_.ready("streaming: log '" + log_ + "' at offset " +
                       std::to_string(w_->master_offset()) + " from key '" + key_ + "' at " +
                       engine_->endpoint());
      }
      step();
      backoff.reset();
    } catch (const error& e) {
      if (!retryable(e.code())) throw;
      tracker_.error(e.what());
      tracker_.set_state("retrying");
      log(std::string("error: ") + e.what() + "; retrying in " +
          std::to_string(backoff.next().count()) + " ms");
      positioned_ = false;
      ticket_.reset();
      service_.set_status("retrying: " + std::string(e.what()));
      backoff.wait([this] {
        tick();
        return stopping();
      });
    }
  }
  mirror_result result;
  result.mirrored_offset = w_ ? w_->master_offset() : 0;
  service_.stopping("stopping at offset " + std::to_string(result.mirrored_offset));
  log("stopped at offset " + std::to_string(result.mirrored_offset));
  return result;
}

}  // namespace

mirror_result run_mirror(std::string_view log, const mirror_options& options,
                         const std::atomic<bool>* stop) {
  return remote::run_link_daemon<mirror>(log, options, stop);
}

}  // namespace shmlog
