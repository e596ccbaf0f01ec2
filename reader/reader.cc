#include "shmlog/reader.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <thread>
#include <type_traits>

#include "copy.h"
#include "fault.h"
#include "mapping.h"
#include "os.h"
#include "ring.h"
#include "shmlog/error.h"
#include "shmlog/testing.h"

namespace shmlog {
namespace detail {

inline void racy_copy(std::byte* to, const std::byte* from, std::size_t n) noexcept {
  SHMLOG_RACY_READS_BEGIN();
  copy_payload(to, from, n);  // n == 0 touches nothing, so a null `to` is fine
  SHMLOG_RACY_READS_END();
}

namespace {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

std::uint64_t saturating_deadline(std::uint64_t now, std::chrono::nanoseconds timeout) noexcept {
  if (timeout.count() <= 0) return now;
  const auto t = static_cast<std::uint64_t>(timeout.count());
  return t > std::numeric_limits<std::uint64_t>::max() - now
             ? std::numeric_limits<std::uint64_t>::max()
             : now + t;
}

// At most `limit` bytes of `label`, not cutting a UTF-8 character in two.
std::size_t label_length(const std::string& label, std::size_t limit) noexcept {
  if (label.size() <= limit) return label.size();
  std::size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(label[n]) & 0xC0) == 0x80)
    --n;  // continuation byte
  return n;
}

constexpr unsigned records_per_heartbeat = 256;
// lap_policy::oldest_safe resumes this many intent chunks (of 16 per ring) ahead of the oldest
// record's chunk: a quarter of a ring lost for a quarter of headroom (docs/design.md, "Laps
// and policy").
constexpr std::uint64_t lap_headroom_chunks = intent_chunks_per_ring / 4;
// Sleeps longer than this (a century) are treated as "until woken".
constexpr std::uint64_t forever_ns = std::uint64_t{1} << 62;

}  // namespace

// What a poll copies into: nothing (poll(): a view), a vector grown as needed, or a caller's
// span that is never grown (a record that does not fit is not consumed).
struct no_buffer {};
template <class buffer_type>
constexpr bool copies = !std::is_same_v<buffer_type, no_buffer>;
template <class buffer_type>
constexpr bool grows = std::is_same_v<buffer_type, std::vector<std::byte>>;

class reader_core {
 public:
  reader_core(segment_file lock_file, std::shared_ptr<mapping> map, const reader_options& options)
      : lock_(std::move(lock_file)),
        map_(std::move(map)),
        policy_(options.wait),
        owner_pid_(::getpid()) {
    const geometry& g = map_->geo();
    const segment_header& h = map_->header();
    ring_ = map_->ring();
    mask_ = g.mask;
    capacity_ = g.capacity;
    chunk_ = g.intent_chunk;
    max_payload_ = g.max_payload;
    master_ = &h.master_offset;
    intent_ = &h.write_intent;
    epoch_word_ = &h.history_epoch;
    wake_seq_ = &h.wake_seq;
    checkpoints_ = h.checkpoints;
    area_ = &map_->reader_area();
    asymmetric_fence_ =
        static_cast<fence_mode>(h.descriptor.writer_fence) == fence_mode::membarrier;

    switch (options.start.where) {
      case start_position::kind::oldest:
        seek_oldest();
        break;
      case start_position::kind::latest:
        seek_latest();
        break;
      case start_position::kind::offset:
        seek(options.start.offset);
        break;
    }
    take_slot(options.label, options.gating);
  }

  ~reader_core() {
    // A fork()ed child's copy of this object holds no slot (os.h, register_role_fd): only the
    // process that took the slot gives it back.
    if (::getpid() != owner_pid_) return;
    if (gating_) {
      // The flag first: a writer that still counts us finds the slot no longer gating.
      slot_->gating.store(0, std::memory_order_relaxed);
      area_->gating_readers.fetch_sub(1, std::memory_order_release);
    }
    slot_->state.store(static_cast<std::uint32_t>(reader_state::free), std::memory_order_relaxed);
    slot_->pid.store(0, std::memory_order_release);
    // lock_'s destructor closes the descriptor, which releases the slot lock.
  }

  // --- polling: reader thread only ----------------------------------------------------------

  // The common case without calls, so without a stack frame: the header at our offset is
  // the next record's (not padding, passing every check), (poll_copy: it fits the buffer and
  // is at most 64 bytes, copied inline), no heartbeat is due, no test hook is set, and the
  // writer has not come round; or nothing is there yet. The header alone says the record is
  // published (the writer stores it last, after clearing the word that follows the record):
  // a caught-up reader pays one cache-line transfer per record, not two (docs/design.md,
  // "The one-transfer read"). Anything else goes to poll_general(), which reads the record
  // again from the start and handles every case; nothing below has changed any state by then
  // except the slot's offset (stored again there).
  template <class buffer_type>
  poll_result poll(buffer_type* buffer) {
    constexpr bool copy = copies<buffer_type>;
    const std::uint64_t offset = offset_;
    // release: a gating reader's published offset tells the writer it is done with the bytes
    // before it (pairs with wait_for_gating_readers' acquire load); a plain store on x86.
    slot_->offset.store(offset, std::memory_order_release);
    const std::uint64_t index = offset & mask_;
    const std::byte* at = ring_ + index;
    const std::uint64_t word = load_publishing_header(at);
    if (word == 0) {
      // Nothing published here yet, unless the writer has come round since (then this is a
      // later lap's byte) or changed the history. The intent and the epoch share a line that
      // changes once per chunk: no transfer while the reader waits. The acquire load above
      // orders these loads after it.
      if (intent_->load(std::memory_order_relaxed) > offset + capacity_ ||
          epoch_word_->load(std::memory_order_relaxed) != epoch_ || records_ != records_at_beat_)
          [[unlikely]]
        return poll_general(buffer);
      return {};
    }
    const std::uint32_t length = header_length(word);
    const record_type type = header_type(word);
    const std::uint64_t frame = record_frame_size(length);
    const std::uint64_t records = records_ + 1;
    bool plain = header_tag(word) == record_tag(offset) && type != padding_record_type &&
                 length <= max_payload_ && index + frame <= capacity_ &&
                 records % records_per_heartbeat != 0 && !has_validation_hook_;
    if constexpr (copy) plain = plain && length <= 64 && length <= buffer->size();
    if (!plain) [[unlikely]]
      return poll_general(buffer);
    std::span<const std::byte> payload(at + record_header_size, length);
    if constexpr (copy) {
      racy_copy(buffer->data(), at + record_header_size, length);
      payload = std::span<const std::byte>(buffer->data(), length);
    }
    // Validate, as in poll_general(): not lapped, within the announced intent (a sound writer
    // writes nothing beyond it), same history.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t intent = intent_->load(std::memory_order_relaxed);
    if (intent > offset + capacity_ || offset + frame > intent ||
        epoch_word_->load(std::memory_order_relaxed) != epoch_) [[unlikely]]
      return poll_general(buffer);  // lapped, a new history or a corrupt header
    offset_ = offset + frame;
    records_ = records;
    poll_result r;
    r.status = poll_status::record;
    r.record = record_view{offset, offset + frame, type, payload};
    return r;
  }

  // The hot state lives in locals for the length of a poll: the compiler cannot tell that the
  // stores to our slot (shared memory) do not alias this object, and would reload it all.
  template <class buffer_type>
  [[gnu::noinline]] poll_result poll_general(buffer_type* buffer) {
    constexpr bool copy = copies<buffer_type>;
    std::uint64_t offset = offset_;
    std::uint64_t master = known_master_;
    // Everything before `offset` has been handed out and the caller is back for more
    // (release: as in poll()).
    slot_->offset.store(offset, std::memory_order_release);
    for (;;) {
      const std::byte* at = ring_ + (offset & mask_);
      // Records end at or before `bound`: the master offset, or for the record at it (or
      // beyond: after one published by its header) the write intent.
      std::uint64_t bound = master;
      if (offset >= master) {
        // acquire: pairs with the writer's release store of master_offset in publish();
        // every record before the loaded offset is then completely written.
        master = master_->load(std::memory_order_acquire);
        known_master_ = master;
        bound = master;
      }
      // At or beyond the master offset a record is published only if its header is stored
      // (the writer stores the master offset just after it); acquire, as in poll().
      const bool beyond_master = offset >= master;
      const std::uint64_t word = beyond_master ? load_publishing_header(at) : racy_load_header(at);
      if (beyond_master) bound = intent_->load(std::memory_order_acquire);
      // Read: the header, and with `copy` the payload, while the writer may be lapping us.
      const std::uint32_t length = header_length(word);
      const record_type type = header_type(word);
      const std::uint64_t frame = record_frame_size(length);
      // Checked before anything is copied, so a stale or hostile header never makes the reader
      // read outside the ring; a padding record passes only if it ends the ring, after which
      // comes ring byte 0, where padding fails the check: this loop runs at most twice.
      const char* problem = check_record_header(word, offset, bound, capacity_, max_payload_);
      if (beyond_master && problem != nullptr) {
        // Not published (yet): empty, unless the history changed under us (the master
        // offset may have gone back).
        offset_ = offset;
        if (epoch_word_->load(std::memory_order_acquire) != epoch_) return history_changed();
        note_idle();
        return {};
      }
      std::span<const std::byte> payload(at + record_header_size, problem ? 0 : length);
      // A span too small for the record: copy nothing, but validate all the same, so that a
      // length the writer overwrote mid-read is reported as the lap it is, never as too_small.
      bool too_small = false;
      if constexpr (copy) {
        if (problem == nullptr && type != padding_record_type) {
          if (buffer->size() < length) {
            if constexpr (grows<buffer_type>)
              buffer->resize(length);
            else
              too_small = true;
          }
          if (!too_small) {
            racy_copy(buffer->data(), at + record_header_size, length);
            payload = std::span<const std::byte>(buffer->data(), length);
          }
        }
      }
      if (validation_hook_) [[unlikely]]
        validation_hook_();
      // Validate: acquire fence, then the intent. Pairs with the writer's release fence after
      // its intent store: had our loads above seen any byte written after the writer announced
      // intent I, this load sees I or later.
      std::atomic_thread_fence(std::memory_order_acquire);
      const std::uint64_t intent = intent_->load(std::memory_order_relaxed);
      // The epoch, on the intent's line: a starting writer changed the history (and may have
      // taken the master offset back), so what we read may belong to either; never deliver it.
      const std::uint64_t epoch = epoch_word_->load(std::memory_order_relaxed);
      // A sound writer stores the intent before publishing any master offset it covers, and
      // our acquire load of the master offset made that intent visible.
      if (problem == nullptr && master > intent)
        problem = "master offset is beyond the write intent";
      if (intent > offset + capacity_ || epoch != epoch_ || problem != nullptr) [[unlikely]] {
        offset_ = offset;
        if (epoch != epoch_) return history_changed();
        return intent > offset + capacity_ ? lapped() : corrupt(problem);
      }
      if (too_small) {
        offset_ = offset;  // after any padding: the record that does not fit is next
        poll_result r;
        r.status = poll_status::too_small;
        r.needed_size = length;
        return r;
      }
      // Deliver.
      const std::uint64_t start = offset;
      offset += frame;
      if (type == padding_record_type) continue;
      offset_ = offset;
      note_record();
      poll_result r;
      r.status = poll_status::record;
      r.record = record_view{start, offset, type, payload};
      return r;
    }
  }

  bool still_valid(const record_view& v) const noexcept {
    // Pairs with the writer's release fence after its intent store, as in poll().
    std::atomic_thread_fence(std::memory_order_acquire);
    return intent_->load(std::memory_order_relaxed) <= v.offset + capacity_ &&
           epoch_word_->load(std::memory_order_relaxed) == epoch_;
  }

  // --- waiting: reader thread only ----------------------------------------------------------

  bool wait(std::chrono::nanoseconds timeout) {
    if (offset_ < known_master_) return true;  // unread records: no need to look
    std::uint64_t now = monotonic_ns();
    clock_ns_ = now;
    const std::uint64_t deadline = saturating_deadline(now, timeout);
    // Dense: more than one record since the last wait, so records are piling up faster than we
    // come back for them. Then give the writer the grace before pulling the line back.
    const bool dense = records_ - records_at_wait_ >= 2;
    records_at_wait_ = records_;
    if (dense) now = clock_ns_ = catch_up_grace(now, deadline);
    if (data_available()) return true;
    bool ready = false;
    switch (policy_.mode) {
      case wait_mode::spin:
        ready = spin_until(deadline);
        break;
      case wait_mode::yield:
        ready = yield_until(deadline);
        break;
      case wait_mode::sleep:
        ready = sleep_until(deadline);
        break;
      case wait_mode::adaptive: {
        const std::uint64_t spin_end =
            std::min(deadline, saturating_deadline(now, policy_.spin_for));
        const std::uint64_t yield_end =
            std::min(deadline, saturating_deadline(spin_end, policy_.yield_for));
        ready = spin_until(spin_end) || yield_until(yield_end) || sleep_until(deadline);
        break;
      }
    }
    set_state(reader_state::reading);
    // The heartbeat takes the time the wait last read (at most 64 spins old), so that a
    // reader that sees a record does not read the clock again before taking it.
    beat_at(clock_ns_);
    return ready;
  }

  void set_wait_policy(const wait_policy& p) noexcept { policy_ = p; }

  // --- positioning: reader thread only ------------------------------------------------------

  void seek(std::uint64_t target) { seek_with(target, begin_sync(), target); }

  // Positions within the history `sync` saw; if the history changes after that, the next poll
  // says history_changed. The reader then holds the records from `holds_from` on.
  void seek_with(std::uint64_t target, const sync_point& sync, std::uint64_t holds_from) {
    const geometry& g = map_->geo();
    for (int attempt = 0; attempt < 16; ++attempt) {
      const backlog_window w = window();
      if (target < w.first_byte_offset || target > w.master_offset)
        throw error(errc::offset_out_of_range,
                    "log '" + name() + "': offset " + std::to_string(target) +
                        " is outside the held window [" + std::to_string(w.first_byte_offset) +
                        ", " + std::to_string(w.master_offset) + "]");
      if (target % record_alignment != 0)
        throw_not_boundary(target, "records start at multiples of 8");
      // Walk from the first record of target's chunk (or the oldest record) up to target: at
      // most one chunk and one record of headers.
      const std::uint64_t boundary = target & ~(chunk_ - 1);
      std::uint64_t walk_start = w.first_byte_offset;
      if (boundary > w.first_byte_offset) {
        const std::optional<std::uint64_t> at = checked_checkpoint(checkpoints_, boundary, g);
        if (!at) {
          if (intent_->load(std::memory_order_acquire) > boundary + capacity_) continue;
          throw error(errc::corrupt_header,
                      "log '" + name() + "': corrupt header: the checkpoint of chunk boundary " +
                          std::to_string(boundary) + " is " +
                          std::to_string(checkpoints_[(boundary / chunk_) % checkpoint_count].load(
                              std::memory_order_relaxed)) +
                          ", not an 8-aligned offset within a record of it");
        }
        walk_start = std::min(*at, target);
      }
      const record_walk walk = walk_records(ring_, g, walk_start, target, w.master_offset);
      std::atomic_thread_fence(std::memory_order_acquire);  // pairs as in poll()
      if (intent_->load(std::memory_order_relaxed) > walk_start + capacity_)
        continue;  // lapped mid-walk
      if (epoch_word_->load(std::memory_order_relaxed) != sync.epoch)
        throw error(errc::offset_out_of_range, "log '" + name() +
                                                   "': the writer changed the history while "
                                                   "seeking to offset " +
                                                   std::to_string(target));
      if (walk.problem)
        throw error(errc::corrupt_record, "log '" + name() + "': record at offset " +
                                              std::to_string(walk.position) +
                                              " is corrupt: " + walk.problem);
      if (walk.position != target)
        throw_not_boundary(target, "it falls inside the record at " +
                                       std::to_string(walk.previous) + " (next record at " +
                                       std::to_string(walk.position) + ")");
      move_to(target, sync, holds_from);
      return;
    }
    throw error(errc::offset_out_of_range, "log '" + name() + "': offset " +
                                               std::to_string(target) +
                                               " was overwritten while seeking to it");
  }

  void seek_oldest() {
    const sync_point sync = begin_sync();
    const std::uint64_t oldest = window().first_byte_offset;
    move_to(oldest, sync, oldest);
  }
  // Not on the poll path: a lap costs a window read and a checkpoint load, and is rare unless
  // the reader is slower than the writer, when the policy decides how much it gets to read.
  lap_report recover_from_lap(lap_policy policy) {
    for (int attempt = 0; attempt < 16; ++attempt) {
      const sync_point sync = begin_sync();
      const backlog_window w = window();  // checked: throws corrupt_header
      lap_report r{offset_, w.first_byte_offset, w.master_offset, offset_};
      // Not lapped (records start at the oldest record or after it, never between the
      // boundary a ring below the intent and that record): nothing to recover from.
      if (offset_ >= w.first_byte_offset && offset_ <= w.master_offset) return r;
      std::uint64_t target = w.first_byte_offset;
      if (policy == lap_policy::latest) {
        target = w.master_offset;
      } else if (policy == lap_policy::oldest_safe) {
        // The first record at or after the chunk boundary lap_headroom_chunks ahead of the
        // oldest record's chunk: its checkpoint says where it is, no walk needed.
        const std::uint64_t boundary =
            (w.first_byte_offset & ~(chunk_ - 1)) + lap_headroom_chunks * chunk_;
        target = w.master_offset;
        if (boundary < w.master_offset) {
          const std::optional<std::uint64_t> at =
              checked_checkpoint(checkpoints_, boundary, map_->geo());
          if (!at) {
            if (intent_->load(std::memory_order_acquire) > boundary + capacity_) continue;
            throw error(
                errc::corrupt_header,
                "log '" + name() + "': corrupt header: the checkpoint of chunk boundary " +
                    std::to_string(boundary) + " is " +
                    std::to_string(checkpoints_[(boundary / chunk_) % checkpoint_count].load(
                        std::memory_order_relaxed)) +
                    ", not an 8-aligned offset within a record of it");
          }
          // Beyond the master offset only if the record crossing the boundary is not
          // published yet: the master offset is then the next record start.
          target = std::min(*at, w.master_offset);
        }
      }
      // The checkpoint and the window describe the ring as it was; if the writer has come
      // round to the target since (or changed the history), look again. Pairs as in poll().
      std::atomic_thread_fence(std::memory_order_acquire);
      if (intent_->load(std::memory_order_relaxed) > target + capacity_ ||
          epoch_word_->load(std::memory_order_relaxed) != sync.epoch)
        continue;
      move_to(target, sync, target);
      r.resume_offset = target;
      bytes_lost_ += r.bytes_lost();
      slot_->bytes_lost.store(bytes_lost_, std::memory_order_relaxed);
      return r;
    }
    throw error(errc::offset_out_of_range,
                "log '" + name() + "': the writer came round again on every attempt to recover " +
                    "from a lap at offset " + std::to_string(offset_));
  }

  void seek_latest() {
    const sync_point sync = begin_sync();
    window();  // throws corrupt_header if the header's offsets are inconsistent
    if (sync.master_offset % record_alignment != 0)
      throw error(errc::corrupt_header, "log '" + name() + "': corrupt header: master_offset " +
                                            std::to_string(sync.master_offset) +
                                            " is not a multiple of 8");
    move_to(sync.master_offset, sync, sync.master_offset);
  }

  std::uint64_t skip_corruption() {
    const sync_point sync = begin_sync();
    const backlog_window w = window();
    const std::uint64_t next_boundary = (offset_ & ~(chunk_ - 1)) + chunk_;
    std::uint64_t target = w.master_offset;
    if (next_boundary <= w.master_offset) {
      target = w.first_byte_offset;
      if (next_boundary > w.first_byte_offset) {
        const std::optional<std::uint64_t> at =
            checked_checkpoint(checkpoints_, next_boundary, map_->geo());
        // A checkpoint that is itself corrupt cannot be trusted to start a record: skip to the
        // master offset, which window() has checked.
        target = at && *at <= w.master_offset ? *at : w.master_offset;
      }
    }
    const std::uint64_t skipped = target > offset_ ? target - offset_ : 0;
    target = std::max(target, offset_);
    move_to(target, sync, target);
    return skipped;
  }

  // PSYNC: counted as a partial resync accepted or refused.
  resync_decision resync(std::optional<history_id> replid, std::uint64_t offset) {
    const resync_decision d = move_if_held(replid, offset);
    if (d.is_partial()) {
      area_->sync_partial_ok.fetch_add(1, std::memory_order_relaxed);
    } else if (replid && !replid->is_none()) {
      area_->sync_partial_err.fetch_add(1, std::memory_order_relaxed);
    }
    return d;
  }

  // The end of a full resync: counted as one, if it succeeds, and as no PSYNC.
  resync_decision continue_after_load(const history_id& replid, std::uint64_t offset) {
    const resync_decision d = move_if_held(replid, offset);
    if (d.is_partial()) {
      area_->sync_full.fetch_add(1, std::memory_order_relaxed);
    } else if (d.reason == resync_reason::offset_before_backlog) {
      area_->backlog_too_small.fetch_add(1, std::memory_order_relaxed);
    }
    return d;
  }

  snapshot_meta announced_snapshot() const { return read_snapshot_announcement(*map_); }

  std::uint64_t request_snapshot() noexcept {
    // relaxed: a count; the producer answers with an announcement, whose seqlock orders it.
    return area_->snapshot_requests.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  // The PSYNC decision, and the move to `offset` if it is partial; counts nothing. A writer
  // that changes the history while the reader moves makes it decide again with the new one
  // (a few times at most: a writer changes the history only when it starts).
  resync_decision move_if_held(std::optional<history_id> replid, std::uint64_t offset) {
    resync_decision d;
    for (int attempt = 0; attempt < 8; ++attempt) {
      const sync_point sync = begin_sync();
      d = decide_resync(sync.history, window(), replid, offset);
      if (!d.is_partial()) return d;
      // A PSYNC names what the caller holds: a state of `replid` up to `offset`, so every
      // record before it (WAIT counts the reader from now on).
      try {
        seek_with(offset, sync, 0);
        return d;
      } catch (const error& e) {
        d.kind = resync_kind::full;
        if (e.code() == errc::not_a_record_boundary) {
          d.reason = resync_reason::not_a_record_boundary;
          return d;
        }
        if (e.code() != errc::offset_out_of_range) throw;
        if (epoch_word_->load(std::memory_order_acquire) != sync.epoch) {
          d.reason = resync_reason::history_changed;  // decide again, with the new history
          continue;
        }
        d.reason = resync_reason::offset_before_backlog;  // overwritten since the decision
        d.window = window();
        return d;
      }
    }
    return d;
  }

  // --- state ------------------------------------------------------------------------------

  bool log_removed() const {
    struct stat st {};
    if (::fstat(lock_.fd(), &st) != 0)
      throw error(errc::system_error, "log '" + name() + "': " + errno_message("fstat", errno));
    return st.st_nlink == 0;
  }

  std::uint64_t offset() const noexcept { return offset_; }
  const history_id& replid() const noexcept { return replid_; }
  std::uint64_t master_offset() const noexcept { return master_->load(std::memory_order_acquire); }
  backlog_window window() const { return read_window(*map_); }
  history_state history() const { return read_history(*map_); }
  std::uint64_t lapped_count() const noexcept { return lapped_; }
  std::uint32_t slot() const noexcept { return slot_index_; }
  std::uint64_t capacity() const noexcept { return capacity_; }
  std::uint64_t max_payload() const noexcept { return max_payload_; }
  const std::string& name() const noexcept { return map_->name(); }
  const std::shared_ptr<mapping>& shared_mapping() const noexcept { return map_; }
  void set_validation_hook(std::function<void()> hook) {
    validation_hook_ = std::move(hook);
    has_validation_hook_ = static_cast<bool>(validation_hook_);
  }

 private:
  [[noreturn]] void throw_not_boundary(std::uint64_t target, const std::string& why) const {
    throw error(errc::not_a_record_boundary, "log '" + name() + "': offset " +
                                                 std::to_string(target) +
                                                 " does not start a record: " + why);
  }

  // The history, its epoch and the master offset of one moment (mapping.h, read_sync_point):
  // if the writer changes the history after that, the epoch we keep is the old one, and the
  // next poll says history_changed.
  sync_point begin_sync() const { return read_sync_point(*map_); }

  void move_to(std::uint64_t offset, const sync_point& sync, std::uint64_t holds_from) {
    epoch_ = sync.epoch;
    replid_ = sync.history.replid;
    offset_ = offset;
    holds_from_ = std::min(holds_from, offset);
    known_master_ = offset;  // forces a fresh master load at the next poll
    lapped_at_ = no_offset;
    if (slot_) write_slot_position(*slot_, {epoch_, holds_from_, offset_});
  }

  poll_result history_changed() const noexcept {
    poll_result r;
    r.status = poll_status::history_changed;
    return r;
  }

  poll_result lapped() {
    poll_result r;
    r.status = poll_status::lapped;
    backlog_window w;
    try {
      w = window();
    } catch (const error&) {
      // The writer came round, but its header does not say where the oldest record is:
      // nothing can be resumed from it; skip_corruption() or a resync reports the details.
      return corrupt("lapped, and the header's offsets or checkpoints are corrupt");
    }
    r.lap = lap_report{offset_, w.first_byte_offset, w.master_offset, w.first_byte_offset};
    if (lapped_at_ != offset_) {  // count each lap once, however often it is polled
      lapped_at_ = offset_;
      ++lapped_;
      slot_->lapped.store(lapped_, std::memory_order_relaxed);
      slot_->last_lap_time_ns.store(realtime_ns(), std::memory_order_relaxed);
      area_->lapped_total.fetch_add(1, std::memory_order_relaxed);
    }
    return r;
  }

  poll_result corrupt(const char* reason) const noexcept {
    poll_result r;
    r.status = poll_status::corrupt;
    r.corruption = corruption_report{offset_, reason};
    return r;
  }

  // Whether a poll would find something: a record, or news (a lap, a history change). The
  // header at our offset first: a record is published when it is stored.
  bool data_available() noexcept { return next_header_stored() || master_moved(); }

  // The header at our offset is stored, so a poll may deliver it (it checks it; a lapped
  // reader may see another lap's bytes here, which master_moved() catches). One load, on the
  // line the writer writes the next record to. Relaxed: a hint, poll() loads it again.
  bool next_header_stored() const noexcept {
    const std::uint64_t word = racy_load_header(ring_ + (offset_ & mask_));
    return word != 0 && header_tag(word) == record_tag(offset_);
  }

  // The master offset passed us, or the history changed (a new writer may have taken the
  // master offset back below us). A reader that read a record published by its header alone
  // stands beyond the master offset until the writer stores it: not news.
  bool master_moved() noexcept {
    known_master_ = master_->load(std::memory_order_acquire);  // pairs with publish()'s release
    return offset_ < known_master_ || epoch_word_->load(std::memory_order_acquire) != epoch_;
  }

  // Keep off the master offset's line for a moment after catching up (see wait_policy).
  std::uint64_t catch_up_grace(std::uint64_t now, std::uint64_t deadline) noexcept {
    const std::uint64_t until =
        std::min(deadline, saturating_deadline(now, policy_.catch_up_grace));
    while (now < until) {
      cpu_relax();
      now = monotonic_ns();
    }
    return now;
  }

  // Spins on the next record's header: the line it shares with the record is the one transfer
  // a small record costs. It also loads the line after it (discarding the word): a record of
  // more than 56 bytes, or one that starts late in its line, ends there, and the writer has
  // written it before the header, so its transfer overlaps the header line's instead of
  // following it when the copy gets there (docs/design.md, "The one-transfer read"). Every 64
  // turns, the master offset (a lap or a history change leaves no header to see) and the clock.
  bool spin_until(std::uint64_t limit) noexcept {
    set_state(reader_state::spinning);
    const std::uint64_t index = offset_ & mask_;
    const std::uint64_t next_line = (index | (cache_line_size - 1)) + 1;
    const std::byte* line_after = ring_ + (next_line < capacity_ ? next_line : index);
    for (unsigned i = 0;; ++i) {
      (void)racy_load_header(line_after);
      if (next_header_stored()) return true;
      if (i % 64 == 0) {
        if (master_moved()) return true;
        clock_ns_ = monotonic_ns();
        if (clock_ns_ >= limit) return false;
      }
      cpu_relax();
    }
  }

  bool yield_until(std::uint64_t limit) noexcept {
    set_state(reader_state::yielding);
    for (;;) {
      if (data_available()) return true;
      clock_ns_ = monotonic_ns();
      if (clock_ns_ >= limit) return false;
      ::sched_yield();
    }
  }

  // See docs/design.md, "No lost wake-up".
  bool sleep_until(std::uint64_t deadline) {
    // Without the reader's half of the store-load fence a wake-up could be lost: never sleep.
    if (membarrier_failed_) return yield_until(deadline);
    set_state(reader_state::sleeping);
    for (;;) {
      // 1. Announce: a writer that publishes after this sees a new epoch and wakes sleepers.
      area_->sleep_epoch.fetch_add(1, std::memory_order_seq_cst);
      // 2. Store-load fence between the announcement and the master load below. Pairs with
      // the writer's fence between its master store and its sleep_epoch load: seq_cst thread
      // fence against a seq_cst writer, membarrier() against a compiler-fence-only writer.
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (asymmetric_fence_ && !membarrier_global()) {
        // No barrier on the writer's CPU (a seccomp filter, an old kernel): the writer's
        // compiler-only fence leaves its sleep_epoch load free to pass its master store, so a
        // sleeper could miss its wake-up. Yield instead, from now on.
        membarrier_failed_ = true;
        return yield_until(deadline);
      }
      // 3. acquire: pairs with the writer's release store of wake_seq in wake_sleepers().
      const std::uint32_t seq = wake_seq_->load(std::memory_order_acquire);
      // 4. Re-check, then sleep only if the wake word is still what we saw.
      if (data_available()) return true;
      const std::uint64_t now = monotonic_ns();
      clock_ns_ = now;
      if (now >= deadline) return false;
      const std::uint64_t heartbeat =
          std::max<std::uint64_t>(saturating_deadline(0, policy_.heartbeat_interval), 1);
      const std::uint64_t slice = std::min(deadline - now, heartbeat);
      futex_wait(wake_seq_, seq, slice >= forever_ns ? std::nullopt : std::optional(slice));
      clock_ns_ = monotonic_ns();
      beat_at(clock_ns_);
    }
  }

  void set_state(reader_state s) noexcept {
    slot_->state.store(static_cast<std::uint32_t>(s), std::memory_order_relaxed);
  }
  // The record count goes out with the heartbeat (every 256 records, and whenever the reader
  // runs out of records), not with every record: it is for monitoring only.
  void beat() noexcept { beat_at(monotonic_ns()); }
  void beat_at(std::uint64_t now_ns) noexcept {
    records_at_beat_ = records_;
    slot_->records.store(records_, std::memory_order_relaxed);
    slot_->heartbeat_ns.store(now_ns, std::memory_order_relaxed);
  }
  // A heartbeat every records_per_heartbeat records (the fast path in poll() leaves those
  // records to poll_general), and when the reader runs out of records after reading some.
  void note_record() noexcept {
    if (++records_ % records_per_heartbeat == 0) beat();
  }
  void note_idle() noexcept {
    if (records_ != records_at_beat_) beat();
  }

  void take_slot(const std::string& label, bool gating) {
    const std::uint32_t count = map_->geo().slot_count;
    for (std::uint32_t i = 0; i < count; ++i) {
      if (!try_lock_byte(lock_.fd(), reader_lock_byte(i))) continue;
      // Ours now. A pid left here belonged to a reader that died: its lock went with it (a
      // move it left half-done is completed by write_slot_position).
      reader_slot& s = map_->slot(i);
      s.state.store(static_cast<std::uint32_t>(reader_state::reading), std::memory_order_relaxed);
      write_slot_position(s, {epoch_, holds_from_, offset_});
      s.heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
      s.attach_time_ns.store(realtime_ns(), std::memory_order_relaxed);
      s.lapped.store(0, std::memory_order_relaxed);
      s.bytes_lost.store(0, std::memory_order_relaxed);
      s.last_lap_time_ns.store(0, std::memory_order_relaxed);
      s.records.store(0, std::memory_order_relaxed);
      std::memset(s.label, 0, sizeof s.label);
      std::memcpy(s.label, label.data(), label_length(label, sizeof s.label - 1));
      // A dead gating reader's flag is still counted in gating_readers: keep the count equal
      // to the flags set.
      const bool was_gating = s.gating.load(std::memory_order_relaxed) != 0;
      s.gating.store(gating ? 1 : 0, std::memory_order_relaxed);
      // release: whoever sees our pid (acquire) sees the fields above.
      s.pid.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_release);
      slot_ = &s;
      slot_index_ = i;
      gating_ = gating;
      if (gating) {
        // seq_cst, then a seq_cst fence: our half of the store-load pair with the writer's
        // fence after each intent store (docs/design.md, "Gating readers"). Every intent
        // advance from the second after this one sees the count, and through it (acquire) our
        // offset and flag, stored above. In a dead gating reader's slot the count already
        // includes us: add 0, for the same publication.
        area_->gating_readers.fetch_add(was_gating ? 0 : 1, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
      } else if (was_gating) {
        area_->gating_readers.fetch_sub(1, std::memory_order_release);
      }
      return;
    }
    throw error(errc::no_free_reader_slot,
                "log '" + name() + "': all " + std::to_string(count) +
                    " reader slots are held by live readers (the number is set at creation:"
                    " shmlog create --readers)");
  }

  role_file lock_;  // holds this reader's slot lock; never mapped
  std::shared_ptr<mapping> map_;
  wait_policy policy_;
  pid_t owner_pid_;  // the process that took the slot

  // Hot state, private to the reader thread.
  const std::byte* ring_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t chunk_ = 0;
  std::uint64_t max_payload_ = 0;
  const std::atomic<std::uint64_t>* master_ = nullptr;
  const std::atomic<std::uint64_t>* intent_ = nullptr;
  const std::atomic<std::uint64_t>* epoch_word_ = nullptr;
  std::uint64_t epoch_ = 0;       // history_epoch when this reader last synchronised
  history_id replid_;             // the history of the records it has been given
  std::uint64_t holds_from_ = 0;  // it holds the records of that history from here to offset_
  const std::atomic<std::uint32_t>* wake_seq_ = nullptr;
  const std::atomic<std::uint64_t>* checkpoints_ = nullptr;
  reader_area_header* area_ = nullptr;
  reader_slot* slot_ = nullptr;
  std::uint32_t slot_index_ = 0;
  bool gating_ = false;             // the writer waits for this reader (reader_options::gating)
  std::uint64_t offset_ = 0;        // next record start
  std::uint64_t known_master_ = 0;  // master offset as last loaded
  std::uint64_t lapped_at_ = no_offset;
  std::uint64_t lapped_ = 0;
  std::uint64_t bytes_lost_ = 0;  // mirrored in the slot for monitoring
  std::uint64_t records_ = 0;
  std::uint64_t records_at_beat_ = 0;
  bool asymmetric_fence_ = false;      // the log's writers fence with membarrier (sleep_until)
  bool membarrier_failed_ = false;     // membarrier() failed here once: never sleep
  std::uint64_t records_at_wait_ = 0;  // records_ when wait() last ran (catch-up grace)
  std::uint64_t clock_ns_ = 0;         // CLOCK_MONOTONIC as wait() last read it
  std::function<void()> validation_hook_;
  bool has_validation_hook_ = false;
};

}  // namespace detail

struct reader::impl final : detail::reader_core {
  using reader_core::reader_core;
};

namespace {

std::unique_ptr<reader::impl> attach_now(std::string_view name, const reader_options& options) {
  // Two descriptions, as for the writer: the slot lock on one that is never mapped, so that the
  // lock goes with this reader's process, not with the last process holding the mapping.
  auto lock_file = detail::segment_file::open(name, true);
  auto mapped_file = detail::segment_file::open(name, true);
  if (!mapped_file.same_object(lock_file))
    throw error(errc::not_found, "log '" + std::string(name) +
                                     "' was destroyed and created again while being "
                                     "attached to; attach again");
  auto map = detail::mapping::map(mapped_file, detail::map_access::reader);
  return std::make_unique<reader::impl>(std::move(lock_file), std::move(map), options);
}

}  // namespace

reader reader::attach(std::string_view name, const reader_options& options) {
  using std::chrono::milliseconds;
  if (options.wait_for_creation <= milliseconds::zero()) return reader(attach_now(name, options));
  // Poll for the name: there is nothing to sleep on until the log exists (no futex, and an
  // inotify watch on /dev/shm would tie the library to its mount point). The back-off keeps an
  // idle wait cheap and the delay after creation at most 50 ms.
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + options.wait_for_creation;
  milliseconds pause(1);
  for (;;) {
    try {
      return reader(attach_now(name, options));
    } catch (const error& e) {
      // Not there yet, or there but its creator has not stored the magic yet (mapping::map
      // waits briefly for a creator it sees at work, and says not_initialized after that).
      if (e.code() != errc::not_found && e.code() != errc::not_initialized) throw;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline)
        throw error(
            e.code(),
            std::string(e.what()) + "; waited " +
                std::to_string(std::chrono::duration_cast<milliseconds>(now - start).count()) +
                " ms for it to be created (wait_for_creation " +
                std::to_string(options.wait_for_creation.count()) + " ms)");
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
      pause = std::min(pause * 2, milliseconds(50));
    }
  }
}

reader reader::attach(const mapped_log& log, const reader_options& options) {
  const std::shared_ptr<detail::mapping>& map = log.get().map;
  auto file = detail::segment_file::open(map->name(), true);
  return reader(std::make_unique<impl>(std::move(file), map, options));
}

reader::reader(std::unique_ptr<impl> state) noexcept : impl_(std::move(state)) {}
reader::reader(reader&&) noexcept = default;
reader& reader::operator=(reader&&) noexcept = default;
reader::~reader() = default;

poll_result reader::poll() {
  return impl_->poll(static_cast<detail::no_buffer*>(nullptr));
}
poll_result reader::poll_copy(std::vector<std::byte>& buffer) {
  return impl_->poll(&buffer);
}
poll_result reader::poll_copy(std::span<std::byte> buffer) {
  return impl_->poll(&buffer);
}
bool reader::still_valid(const record_view& view) const noexcept {
  return impl_->still_valid(view);
}
bool reader::wait(std::chrono::nanoseconds timeout) {
  return impl_->wait(timeout);
}
void reader::set_wait_policy(const wait_policy& policy) noexcept {
  impl_->set_wait_policy(policy);
}
void reader::seek(std::uint64_t offset) {
  impl_->seek(offset);
}
void reader::seek_oldest() {
  impl_->seek_oldest();
}
void reader::seek_latest() {
  impl_->seek_latest();
}
lap_report reader::recover_from_lap(lap_policy policy) {
  return impl_->recover_from_lap(policy);
}
std::uint64_t reader::skip_corruption() {
  return impl_->skip_corruption();
}
resync_decision reader::resync(std::optional<history_id> replid, std::uint64_t offset) {
  return impl_->resync(replid, offset);
}
resync_decision reader::continue_after_load(const history_id& replid, std::uint64_t offset) {
  return impl_->continue_after_load(replid, offset);
}
bool reader::log_removed() const {
  return impl_->log_removed();
}
std::uint64_t reader::offset() const noexcept {
  return impl_->offset();
}
const history_id& reader::replid() const noexcept {
  return impl_->replid();
}
std::uint64_t reader::master_offset() const noexcept {
  return impl_->master_offset();
}
backlog_window reader::window() const {
  return impl_->window();
}
history_state reader::history() const {
  return impl_->history();
}
std::uint64_t reader::lapped_count() const noexcept {
  return impl_->lapped_count();
}
std::uint32_t reader::slot() const noexcept {
  return impl_->slot();
}
std::uint64_t reader::capacity() const noexcept {
  return impl_->capacity();
}
std::uint64_t reader::max_payload() const noexcept {
  return impl_->max_payload();
}
const std::string& reader::name() const noexcept {
  return impl_->name();
}
snapshot_meta reader::announced_snapshot() const {
  return impl_->announced_snapshot();
}
std::uint64_t reader::request_snapshot() {
  return impl_->request_snapshot();
}

void testing::set_validation_hook(reader& r, std::function<void()> hook) {
  r.impl_->set_validation_hook(std::move(hook));
}

}  // namespace shmlog
