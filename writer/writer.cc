#include "shmlog/writer.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "copy.h"
#include "fault.h"
#include "mapping.h"
#include "os.h"
#include "ring.h"
#include "seqlock.h"
#include "shmlog/error.h"

namespace shmlog {
namespace detail {

// Pause-spins before a writer waiting for a gating reader starts to yield its CPU: about a
// microsecond or two, enough for a reader on another core that is reading to move on.
constexpr unsigned gating_spins = 1024;

// Everything the append path touches, in one object so that a writer (and its claims) can be
// moved without moving this. See docs/design.md, "The append path", for the argument.
class writer_core {
 public:
  writer_core(segment_file lock_file, std::shared_ptr<mapping> map, const writer_options& options)
      : lock_(std::move(lock_file)), map_(std::move(map)), owner_pid_(::getpid()) {
    const geometry& g = map_->geo();
    segment_header& h = map_->writable_header();
    ring_ = map_->ring();
    mask_ = g.mask;
    capacity_ = g.capacity;
    chunk_ = g.intent_chunk;
    chunk_shift_ = static_cast<unsigned>(__builtin_ctzll(g.intent_chunk));
    max_payload_ = g.max_payload;
    set_claim_pending(false);
    master_ = &h.master_offset;
    intent_ = &h.write_intent;
    wake_seq_ = &h.wake_seq;
    checkpoints_ = h.checkpoints;
    sleep_epoch_ = &map_->reader_area().sleep_epoch;
    gating_readers_ = &map_->reader_area().gating_readers;
    gating_bound_ns_ = gating_bound(options, h.descriptor);
    take_over(h, options);
  }

  ~writer_core() {
    // A fork()ed child's copy of this object holds no role (os.h, register_role_fd): only
    // the process that took the role says it closed the log.
    if (::getpid() == owner_pid_)
      map_->writable_header().writer.open.store(0, std::memory_order_release);
    // lock_'s destructor closes the descriptor, which releases the writer lock.
  }

  // --- the append path: writer thread only ----------------------------------------------

  // The common case inline and without calls: a small record that needs no padding, no new
  // intent chunk and no checkpoint. Anything else takes append_general(), which runs the same
  // steps in full. (docs/design.md, "The append path"; docs/benchmarks.md for the counts.)
  std::uint64_t append(const std::byte* data, std::size_t length, record_type type) {
    if (length >= append_ceiling_) [[unlikely]]
      throw_cannot_append(length);
    const std::uint64_t start = written_end_;
    const std::uint64_t end = start + record_frame_size(length);
    if (length > 64 || end > fast_end_) [[unlikely]]
      return append_general(data, static_cast<std::uint32_t>(length), type);
    // 1. The intent already covers [start, end + 8). 2. No padding. 3. Payload. 4. No
    // checkpoint boundary passed. 5. End the chain: the record does not reach the ring's end,
    // so the word after it is at + frame (before the copy, so that fewer values stay live
    // across it; any order before the header's release store will do). 6-7. Publish and wake.
    std::byte* const at = ring_ + (start & mask_);
    const std::uint64_t header =
        pack_record_header(static_cast<std::uint32_t>(length), type, start);
    store_word(at + (end - start), 0, __ATOMIC_RELAXED);
    copy_payload(at + record_header_size, data, length);
    written_end_ = end;
    publish_header(at, header, end);
    return start;
  }

  // Step 3 for a record that ends at or before fast_end_ (no intent, padding or checkpoint
  // work): copies the payload and returns the header for the caller to store, after it. Takes
  // the ring and mask as arguments so that a loop can keep them in registers (the byte stores
  // below may alias any member, so the compiler reloads members after them).
  static std::uint64_t write_simple(std::byte* ring, std::uint64_t mask, std::uint64_t start,
                                    const std::byte* data, std::size_t length,
                                    record_type type) noexcept {
    copy_payload(ring + (start & mask) + record_header_size, data, length);
    return pack_record_header(static_cast<std::uint32_t>(length), type, start);
  }

  [[gnu::noinline]] std::uint64_t append_general(const std::byte* data, std::uint32_t length,
                                                 record_type type) {
    const placement p = place(length);
    if (p.end + record_header_size > intent_local_) [[unlikely]] {
      // With gating readers, the intent advance goes out of line, as a tail call: it may call
      // the wait, and a call on this path would make every append through it save registers
      // (docs/design.md, "Gating readers").
      if (gating_readers_->load(std::memory_order_acquire) != 0) [[unlikely]]
        return append_advancing(data, length, type);
      store_intent(p.end + record_header_size);
    }
    publish(write_placed(p, data, length, type));
    return p.start;
  }

  [[gnu::noinline]] std::uint64_t append_advancing(const std::byte* data, std::uint32_t length,
                                                   record_type type) {
    const placement p = place(length);
    publish(write_record(p, data, length, type));
    return p.start;
  }

  std::uint64_t append_batch(std::span<const record_ref> records) {
    if (claim_pending_) throw_claim_pending();
    for (const record_ref& r : records)
      check_can_append(r.payload.size());
    if (records.empty()) return written_end_;
    // The loop's state in locals, written back around the rare general path: the ring stores
    // may alias any member, so members would be reloaded after every record.
    std::byte* const ring = ring_;
    const std::uint64_t mask = mask_;
    const std::uint64_t part_limit = capacity_ / 4;
    std::uint64_t end = written_end_;
    std::uint64_t fast_end = fast_end_;
    std::uint64_t part_start = end;
    std::uint64_t first = no_offset;
    // The first header of each part is stored last, by publish(): the part becomes visible at
    // once, as one publication. The others are stored as their records are written (relaxed:
    // no reader reaches them before crossing that first one).
    header_word part_first;
    for (const record_ref& r : records) {
      const std::size_t length = r.payload.size();
      const std::uint64_t next = end + record_frame_size(length);
      std::uint64_t offset = end;
      header_word written;
      if (length <= 64 && next <= fast_end) [[likely]] {
        written = {end, write_simple(ring, mask, end, r.payload.data(), length, r.type)};
        end = next;
      } else {
        written_end_ = end;
        const placement p = place(static_cast<std::uint32_t>(length));
        written = write_record(p, r.payload.data(), static_cast<std::uint32_t>(length), r.type);
        offset = p.start;
        end = written_end_;
        fast_end = fast_end_;
      }
      if (part_first.at == no_offset) {
        part_first = written;
      } else {
        store_word(ring + (written.at & mask), written.word, __ATOMIC_RELAXED);
      }
      if (first == no_offset) first = offset;
      // Publish in parts if the batch would otherwise overwrite its own beginning before
      // readers could see it.
      if (end - part_start >= part_limit) [[unlikely]] {
        written_end_ = end;
        publish(std::exchange(part_first, header_word{}));
        part_start = end;
      }
    }
    written_end_ = end;
    if (part_first.at != no_offset) publish(part_first);
    return first;
  }

  // Reserves a record of up to max_length bytes; returns where it starts (the payload follows
  // its header in the ring).
  // Returns no_offset, reserving nothing, if the claim needs a new intent chunk: then
  // claim_advancing() does it, out of line (the gating check there may call the wait, and a
  // call here would make every claim save registers; docs/design.md, "Gating readers").
  std::uint64_t claim(std::size_t max_length) {
    check_can_append(max_length);
    const placement p = place(static_cast<std::uint32_t>(max_length));
    if (p.end + record_header_size > intent_local_) [[unlikely]]
      return no_offset;
    set_claim_pending(true);
    return p.start;
  }
  std::uint64_t claim_advancing(std::size_t max_length) {
    check_can_append(max_length);
    const placement p = place(static_cast<std::uint32_t>(max_length));
    if (p.end + record_header_size > intent_local_) advance_intent(p.end + record_header_size);
    set_claim_pending(true);
    return p.start;
  }
  std::byte* payload_at(std::uint64_t start) const noexcept {
    return ring_ + (start & mask_) + record_header_size;
  }

  void commit(std::uint64_t start, std::size_t claimed, record_type type, std::size_t used) {
    if (used > claimed) [[unlikely]]
      throw_commit_too_large(used, claimed);
    // The payload is already in place where claim() put it (after padding if the claimed size
    // did not fit before the ring's end); write the padding and header around it.
    header_word first{start, pack_record_header(static_cast<std::uint32_t>(used), type, start)};
    if (start != written_end_) first = write_padding(written_end_, start - written_end_, first);
    written_end_ = start + record_frame_size(used);
    note_record_end(written_end_);
    set_claim_pending(false);
    publish(first);
  }

  void abort_claim() noexcept { set_claim_pending(false); }

  // --- writer's own view --------------------------------------------------------------------

  // Between calls the writer has published everything it wrote (a claim writes nothing until
  // its commit), so its own view of the master offset is written_end_.
  std::uint64_t master_offset() const noexcept { return written_end_; }
  std::uint64_t capacity() const noexcept { return capacity_; }
  std::uint64_t max_payload() const noexcept { return max_payload_; }
  const std::string& name() const noexcept { return map_->name(); }
  const takeover_info& takeover() const noexcept { return takeover_; }
  fence_mode fence() const noexcept { return fence_; }
  const mapping& map() const noexcept { return *map_; }
  const mapped_log& mapped() const noexcept { return mapped_; }

  // --- snapshots: writer thread only --------------------------------------------------------

  std::uint64_t snapshot_requests() const noexcept {
    // relaxed: a count, not a publication; the producer reads the announcement it answers
    // itself, and readers wait for the announcement, whose seqlock orders its fields.
    return map_->reader_area().snapshot_requests.load(std::memory_order_relaxed);
  }

  void announce_snapshot(const snapshot_meta& snapshot) {
    if (!snapshot.path.is_absolute() || snapshot.path.string().size() >= snapshot_path_size)
      throw error(
          errc::invalid_argument,
          "log '" + name() + "': a snapshot is announced by an absolute path shorter than " +
              std::to_string(snapshot_path_size) + " bytes, not '" + snapshot.path.string() + "'");
    write_snapshot_announcement(map_->writable_header(), snapshot);
  }

  std::size_t wait_for_readers(std::size_t wanted, std::uint64_t offset,
                               std::chrono::nanoseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::microseconds(50);
    for (;;) {
      const std::size_t done = readers_at(offset);
      const auto now = std::chrono::steady_clock::now();
      if (done >= wanted || now >= deadline) return done;
      // Waiting on other processes' progress: poll politely, never past the deadline.
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(pause, deadline - now));
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::microseconds(2000));
    }
  }

  // Live readers that hold the records of the current history up to `offset`: their slot
  // names the current history epoch, their offset is at or beyond `offset`, and they hold the
  // records before it (a replica whose state reflects the log from its start, or a reader that
  // has read from before `offset`). A slot's lock says whether its reader is alive (a dead
  // reader's last position stays in its slot); a slot in the middle of a move counts next time.
  std::size_t readers_at(std::uint64_t offset) const {
    // acquire: pairs with change_history()'s release store of the epoch.
    const std::uint64_t epoch = map_->header().history_epoch.load(std::memory_order_acquire);
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < map_->geo().slot_count; ++i) {
      const reader_slot& slot = map_->slot(i);
      if (slot.pid.load(std::memory_order_acquire) == 0) continue;
      const std::optional<slot_position> p = read_slot_position(slot);
      if (!p || p->epoch != epoch || p->offset < offset) continue;
      if (p->holds_from != 0 && p->holds_from >= offset) continue;
      if (map_->reader_alive(i)) ++n;
    }
    return n;
  }

 private:
  // A header and where it goes.
  struct header_word {
    std::uint64_t at = no_offset;
    std::uint64_t word = 0;
  };

  struct placement {
    std::uint64_t pad;    // bytes of padding record before the record (0 if it fits)
    std::uint64_t start;  // where the record starts
    std::uint64_t end;    // where the next record will start
  };

  void check_can_append(std::size_t length) const {
    if (length >= append_ceiling_) [[unlikely]]
      throw_cannot_append(length);
  }

  // Out of line and cold: building the message would otherwise cost the append path registers
  // and instructions even when nothing is thrown.
  [[noreturn, gnu::noinline, gnu::cold]] void throw_cannot_append(std::size_t length) const {
    if (claim_pending_) throw_claim_pending();
    throw error(errc::record_too_large,
                "log '" + name() + "': a record of " + std::to_string(length) +
                    " bytes exceeds the largest payload this log takes, " +
                    std::to_string(max_payload_) + " bytes (a quarter of the " +
                    std::to_string(capacity_) + "-byte ring, less the " +
                    std::to_string(record_header_size) + "-byte header); nothing was appended");
  }

  void set_claim_pending(bool pending) noexcept {
    claim_pending_ = pending;
    append_ceiling_ = pending ? 0 : max_payload_ + 1;
  }

  [[noreturn, gnu::noinline, gnu::cold]] static void throw_commit_too_large(std::size_t used,
                                                                            std::size_t claimed) {
    throw error(errc::invalid_argument, "commit of " + std::to_string(used) +
                                            " bytes exceeds the " + std::to_string(claimed) +
                                            " bytes claimed");
  }

  [[noreturn, gnu::noinline, gnu::cold]] void throw_claim_pending() const {
    throw error(errc::claim_pending,
                "log '" + name() + "': a claimed record is neither committed nor aborted");
  }

  // Where a record of `length` payload bytes goes if written next: it never wraps, so when it
  // does not fit before the ring's end it follows a padding record that fills the end.
  placement place(std::uint32_t length) const noexcept {
    const std::uint64_t frame = record_frame_size(length);
    const std::uint64_t room = capacity_ - (written_end_ & mask_);
    const std::uint64_t pad = frame > room ? room : 0;
    return {pad, written_end_ + pad, written_end_ + pad + frame};
  }

  // Steps 1-4 for the record `p` places; returns the header that publishes it.
  header_word write_record(const placement& p, const std::byte* data, std::uint32_t length,
                           record_type type) {
    // 1. Signal intent: announce the bytes about to be overwritten before touching them (the
    // record, and the header word after it that publication clears).
    if (p.end + record_header_size > intent_local_) [[unlikely]]
      advance_intent(p.end + record_header_size);
    return write_placed(p, data, length, type);
  }

  // Steps 2-4 for a record whose intent is already announced. Its header is not stored: the
  // caller stores the header returned (the record's, or the padding's before it) last, which
  // publishes both (the record's own is then stored here).
  header_word write_placed(const placement& p, const std::byte* data, std::uint32_t length,
                           record_type type) {
    // 3. Copy the payload.
    copy_payload(ring_ + (p.start & mask_) + record_header_size, data, length);
    header_word first{p.start, pack_record_header(length, type, p.start)};
    // 2. Pad if wrapping.
    if (p.pad != 0) [[unlikely]]
      first = write_padding(written_end_, p.pad, first);
    written_end_ = p.end;
    // 4. Checkpoints of the boundaries it passed, before the header that publishes it.
    note_record_end(written_end_);
    return first;
  }

  void publish(const header_word& first) noexcept {
    publish_at(ring_, mask_, written_end_, first.at, first.word);
  }

  // Steps 5-7 (docs/design.md, "The one-transfer read"): end the chain of headers at `end`,
  // publish the first record written since the last publication (its header, then the master
  // offset), and wake sleepers if any announced itself. Every other record written since
  // then already has its header in place, behind that first one.
  void publish_at(std::byte* ring, std::uint64_t mask, std::uint64_t end, std::uint64_t first,
                  std::uint64_t first_header) noexcept {
    // 5. relaxed: ordered before the header below by its release. A reader that reaches `end`
    // finds no header there until the next record's is stored, never an older lap's (the
    // intent covers these 8 bytes: every placement reserves them).
    store_word(ring + (end & mask), 0, __ATOMIC_RELAXED);
    publish_header(ring + (first & mask), first_header, end);
  }

  // Steps 6-7: the header at `first_at`, which publishes every record up to `end`, then the
  // master offset `end`, then the wake-up.
  void publish_header(std::byte* first_at, std::uint64_t first_header, std::uint64_t end) noexcept {
    // 6. release: a reader whose acquire load of this header sees it (poll()) sees every byte
    // of the records it publishes, the cleared word after them and their checkpoints. This
    // store, not the master offset's, is the publication: one cache line for a reader that
    // waits on the header to cross (docs/design.md, "The one-transfer read").
    store_word(first_at, first_header, __ATOMIC_RELEASE);
    // release: a reader that loads this master offset (acquire) sees every byte before it.
    master_->store(end, std::memory_order_release);
    // Store-load fence between the master store above and the sleep_epoch load below; pairs
    // with the fence a reader issues between announcing sleep and re-checking the master
    // offset (docs/design.md, "No lost wake-up"). In membarrier mode the reader's membarrier()
    // makes this a compiler-only fence.
    if (fence_ == fence_mode::membarrier) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    const std::uint32_t epoch = sleep_epoch_->load(std::memory_order_relaxed);
    if (epoch != seen_sleep_epoch_) [[unlikely]]
      wake_sleepers(epoch);
  }

  // `end`: one past the last byte about to be written.
  void advance_intent(std::uint64_t end) noexcept {
    const std::uint64_t next = (end + chunk_ - 1) & ~(chunk_ - 1);
    // Gating readers (docs/design.md, "Gating readers"). The count shares sleep_epoch's line,
    // which every publish loads: no line the append path did not touch already. acquire: pairs
    // with the seq_cst increment of a reader that registered, which stored its slot's offset
    // and flag before it; the seq_cst fence below, at the previous advance, orders that
    // advance's intent store before this load (the writer's half of the registration's
    // store-load pair).
    if (gating_readers_->load(std::memory_order_acquire) != 0) [[unlikely]]
      wait_for_gating_readers(next);
    store_intent(end);
  }

  // The rest of advance_intent(), for a caller that found no gating reader itself.
  void store_intent(std::uint64_t end) noexcept {
    const std::uint64_t next = (end + chunk_ - 1) & ~(chunk_ - 1);
    intent_local_ = next;
    // release: whoever reads this intent (acquire) also sees the checkpoints written before
    // it (read_window relies on that).
    intent_->store(intent_local_, std::memory_order_release);
    update_fast_end();
    // The intent store is ordered before every ring store that follows (release): pairs with
    // the acquire fence a reader issues after copying and before loading write_intent: if its
    // copy saw any of our following stores, it also sees this intent. seq_cst, not only
    // release: it also orders this intent store before the next advance's load of
    // gating_readers (pairs with the seq_cst fence of a gating reader registering; once per
    // chunk, so its cost is spread over a sixteenth of the ring).
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }

  // Before the intent moves to `next`, which overwrites every byte below next - capacity: waits
  // until every live gating reader that the current intent has not lapped yet stands at or
  // beyond next - capacity, spinning then yielding, for at most the bound; then laps those still
  // behind and counts them. A reader already lapped gates nothing (its bytes are gone: waiting
  // would only slow the writer), so a stalled reader costs at most one bound, not one per chunk.
  // A dead reader's slot keeps its flag and offset until reused: one liveness check (a lock
  // probe) per slot that would make the writer wait, and a dead one is skipped; the intent then
  // passes it and it is never looked at again. Writer thread only.
  [[gnu::noinline]] void wait_for_gating_readers(std::uint64_t next) noexcept {
    if (next <= capacity_) return;  // nothing overwritten yet
    const std::uint64_t needed = next - capacity_;
    const std::uint64_t lapped_below = intent_local_ > capacity_ ? intent_local_ - capacity_ : 0;
    constexpr std::uint32_t max_waited = 64;  // more gating readers behind at once: the rest lap
    std::uint32_t waited[max_waited];
    std::uint32_t count = 0;
    std::uint32_t skipped = 0;
    for (std::uint32_t i = 0; i < map_->geo().slot_count; ++i) {
      const reader_slot& slot = map_->slot(i);
      if (slot.gating.load(std::memory_order_relaxed) == 0 ||
          slot.pid.load(std::memory_order_relaxed) == 0)
        continue;
      const std::uint64_t at = slot.offset.load(std::memory_order_acquire);
      if (at < lapped_below || at >= needed) continue;
      if (!reader_alive(i)) continue;
      if (count == max_waited) {
        ++skipped;
        continue;
      }
      waited[count++] = i;
    }
    if (count == 0) return;
    map_->writable_header().writer.gating_waits.fetch_add(1, std::memory_order_relaxed);
    // acquire: pairs with the reader's release store of its offset in poll(): once the offset
    // is at or beyond `needed`, the reader's loads of every byte below it happened before, so
    // the stores that follow this wait cannot change what it read.
    const auto behind = [&] {
      std::uint32_t n = 0;
      for (std::uint32_t k = 0; k < count; ++k) {
        const reader_slot& slot = map_->slot(waited[k]);
        if (slot.gating.load(std::memory_order_relaxed) != 0 &&
            slot.offset.load(std::memory_order_acquire) < needed)
          waited[n++] = waited[k];  // still behind: keep looking at it
      }
      count = n;
      return n;
    };
    const std::uint64_t deadline = monotonic_ns() + gating_bound_ns_;
    for (unsigned spin = 0; spin < gating_spins; ++spin) {
      if (behind() == 0) break;
      cpu_relax();
    }
    while (count != 0 && behind() != 0 && monotonic_ns() < deadline)
      ::sched_yield();
    if (count + skipped != 0)
      map_->writable_header().writer.gating_laps.fetch_add(count + skipped,
                                                           std::memory_order_relaxed);
  }

  // A lock probe; if even that fails, the reader counts as alive (the wait is bounded).
  bool reader_alive(std::uint32_t slot) const noexcept {
    try {
      return map_->reader_alive(slot);
    } catch (const error&) {
      return true;
    }
  }

  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
  }

  // The bound on waiting for a gating reader: the writer's own, else the log's, else the
  // default.
  static std::uint64_t gating_bound(const writer_options& options, const segment_descriptor& d) {
    if (options.max_gating_wait) {
      const std::chrono::nanoseconds v = *options.max_gating_wait;
      if (v.count() < 0 || v > max_max_gating_wait)
        throw error(errc::invalid_argument,
                    "writer_options::max_gating_wait " + std::to_string(v.count()) +
                        " ns is not between 0 and " + std::to_string(max_max_gating_wait.count()) +
                        " ns (60 s)");
      return static_cast<std::uint64_t>(v.count());
    }
    const std::uint64_t logs = std::min<std::uint64_t>(
        d.max_gating_wait_ns, static_cast<std::uint64_t>(max_max_gating_wait.count()));
    return logs != 0 ? logs : static_cast<std::uint64_t>(default_max_gating_wait.count());
  }

  // One 64-bit store, so a header is never torn.
  static void store_word(std::byte* at, std::uint64_t word, int order) noexcept {
    __atomic_store_n(reinterpret_cast<std::uint64_t*>(at), word, order);
  }

  // A padding record of `pad` bytes at `offset`, before the record whose header is `record`:
  // stores that header and returns the padding's, which the caller stores last.
  header_word write_padding(std::uint64_t offset, std::uint64_t pad,
                            const header_word& record) noexcept {
    store_word(ring_ + (record.at & mask_), record.word, __ATOMIC_RELAXED);
    note_record_end(offset + pad);
    return {offset, pack_record_header(static_cast<std::uint32_t>(pad - record_header_size),
                                       padding_record_type, offset)};
  }

  // A record ending at or before fast_end_ needs none of steps 1, 2 and 4: it and the header
  // word after it lie within the announced intent, and it ends before the next chunk boundary,
  // so it passes no checkpoint and does not wrap (the ring's end is a chunk boundary;
  // next_checkpoint_ is the first boundary after written_end_). One compare on the append path
  // instead of three.
  void update_fast_end() noexcept {
    const std::uint64_t covered =
        intent_local_ >= record_header_size ? intent_local_ - record_header_size : 0;
    fast_end_ = std::min(covered, next_checkpoint_ - 1);
  }

  // Checkpoints: every chunk boundary at or before `end` that has no entry yet gets `end`,
  // the first record start at or after it. Relaxed: published with master_offset.
  void note_record_end(std::uint64_t end) noexcept {
    while (next_checkpoint_ <= end)
      [[unlikely]] {
        checkpoints_[(next_checkpoint_ >> chunk_shift_) % checkpoint_count].store(
            end, std::memory_order_relaxed);
        next_checkpoint_ += chunk_;
        update_fast_end();
      }
  }

  [[gnu::noinline]] void wake_sleepers(std::uint32_t epoch) noexcept {
    seen_sleep_epoch_ = epoch;
    // release: a sleeper that loads the new value (acquire) also sees the master offset
    // stored above, so it does not go back to sleep on stale data.
    wake_seq_->store(++wake_count_, std::memory_order_release);
    futex_wake_all(wake_seq_);
  }

  // Called once, holding the writer lock: continue where the last writer published, or start
  // the history the producer's state calls for (docs/design.md, "History across restarts").
  // Trusts nothing the previous writer left (docs/design.md, "Takeover"): everything is checked
  // and planned before the first store, so a refusal leaves the log as it was.
  void take_over(segment_header& h, const writer_options& options) {
    writer_block& wb = h.writer;
    const std::uint64_t stored_master = master_->load(std::memory_order_relaxed);
    const std::uint64_t intent = intent_->load(std::memory_order_relaxed);
    check_offsets(stored_master, intent);
    // A writer that died between a record's header and the master offset after it published
    // the record (readers may have delivered it): it is part of the log.
    const std::uint64_t master = published_end(stored_master, intent);
    if (master != stored_master) check_offsets(master, intent);
    takeover_.previous_pid = wb.pid.load(std::memory_order_relaxed);
    takeover_.previous_crashed = wb.open.load(std::memory_order_relaxed) != 0;
    takeover_.previous_master_offset = master;
    takeover_.published_by_header = master - stored_master;

    // 1. Plan. A history block a dead writer left half-written (or damaged) holds no history
    // anyone can continue: start one that shares nothing, which sends every reader to a full
    // resync, the one outcome that is right whatever the block said.
    const std::optional<history_state> before = intact_history(h);
    if (before) {
      takeover_.plan = plan_writer_history(*before, master, options.state_replid,
                                           options.state_offset, map_->geo().lowest_held(intent));
    } else {
      takeover_.repaired_history = true;
      takeover_.plan.action = history_action::restart;
      takeover_.plan.master_offset = master;
    }
    // A branch continues the log from the state's offset: it must be a record start.
    if (takeover_.plan.action == history_action::branch)
      check_record_boundary(takeover_.plan.shared_up_to, master, intent);

    // 2. Claim the role in the header before changing anything else, so that a reader finding
    // a block half-written names this process.
    wb.start_time_ns.store(realtime_ns(), std::memory_order_relaxed);
    wb.generation.fetch_add(1, std::memory_order_relaxed);
    wb.open.store(1, std::memory_order_relaxed);
    wb.pid.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_release);

    // 3. Repair and change. Nobody else can be mid-update: we hold the writer lock.
    if (snapshot_announcement_left_odd(h)) {
      repair_snapshot_announcement(h);
      takeover_.repaired_snapshot_announcement = true;
    }
    if (master != stored_master) master_->store(master, std::memory_order_release);
    if (takeover_.plan.action != history_action::keep)
      change_history(h, before.value_or(history_state{}));

    const std::uint64_t published = master_->load(std::memory_order_relaxed);
    written_end_ = published;
    intent_local_ = intent;  // never moves back
    takeover_.master_offset = published;
    takeover_.unpublished_bytes = intent_local_ > published ? intent_local_ - published : 0;
    next_checkpoint_ = ((published >> chunk_shift_) + 1) << chunk_shift_;
    update_fast_end();
    end_chain_at(published);
    // A reader may have gone to sleep under the previous writer: wake once at the first
    // publish by making the epoch look new.
    seen_sleep_epoch_ = sleep_epoch_->load(std::memory_order_relaxed) - 1;
    wake_count_ = wake_seq_->load(std::memory_order_relaxed);

    // The log says which fence every writer uses; readers decide from the same field whether
    // to issue membarrier(). Without kernel support this writer falls back to seq_cst, which
    // is correct whatever the readers do (they then issue a membarrier() that is not needed).
    const bool asymmetric =
        static_cast<fence_mode>(h.descriptor.writer_fence) == fence_mode::membarrier;
    fence_ =
        asymmetric && membarrier_register_global() ? fence_mode::membarrier : fence_mode::seq_cst;
    wb.fence.store(static_cast<std::uint32_t>(fence_), std::memory_order_relaxed);
    if (takeover_.previous_crashed)
      wb.recovered_torn_bytes.store(takeover_.unpublished_bytes, std::memory_order_relaxed);
  }

  // The end of what the last writer published: the master offset it stored, then every record
  // whose header follows in an unbroken chain (its header stored, which publishes it; the
  // chain ends at the word the writer cleared before that). Bounded: each step moves at least
  // 8 bytes, and no record may pass the write intent.
  std::uint64_t published_end(std::uint64_t master, std::uint64_t intent) const noexcept {
    std::uint64_t at = master;
    for (;;) {
      const std::uint64_t word = racy_load_header(ring_ + (at & mask_));
      if (word == 0 || check_record_header(word, at, intent, capacity_, max_payload_) != nullptr)
        return at;
      at += record_frame_size(header_length(word));
    }
  }

  // The word at the master offset must hold no header before the next record's: a sound
  // writer leaves it cleared; anything else there (a damaged segment) is cleared now, inside
  // the intent like every ring store.
  void end_chain_at(std::uint64_t end) noexcept {
    if (racy_load_header(ring_ + (end & mask_)) == 0) return;
    if (end + record_header_size > intent_local_) advance_intent(end + record_header_size);
    store_word(ring_ + (end & mask_), 0, __ATOMIC_RELAXED);
  }

  // What a sound writer leaves, whatever the moment it stopped: a chunk-aligned write intent
  // below 2^63, an 8-aligned master offset at most a ring behind it, and for every chunk
  // boundary the readers may look up (in the held window, up to the master offset) a checkpoint
  // inside the boundary's first record. Anything else would make this writer write outside the
  // ring or readers misread it: refuse, naming the field, before anything is changed.
  void check_offsets(std::uint64_t master, std::uint64_t intent) const {
    const auto refuse = [&](const std::string& what) {
      throw error(errc::corrupt_header, "log '" + name() + "': corrupt header: " + what +
                                            "; no writer can continue this log (destroy it and "
                                            "create it again)");
    };
    if (intent >= max_log_offset || intent % chunk_ != 0)
      refuse("write_intent " + std::to_string(intent) + " is not a multiple of the intent chunk (" +
             std::to_string(chunk_) + ") below 2^63");
    if (master % record_alignment != 0 || master > intent || intent - master > capacity_)
      refuse("master_offset " + std::to_string(master) +
             " is not an 8-aligned offset at most one ring (" + std::to_string(capacity_) +
             " bytes) below write_intent " + std::to_string(intent));
    const geometry& g = map_->geo();
    if (master < g.start_offset)
      refuse("master_offset " + std::to_string(master) + " is below the log's start offset " +
             std::to_string(g.start_offset));
    // Boundaries before the log's start have no checkpoint: nothing there was ever held.
    const std::uint64_t lowest = g.lowest_held(intent);
    for (std::uint64_t b = (lowest + chunk_ - 1) & ~(chunk_ - 1); b <= master; b += chunk_) {
      const std::optional<std::uint64_t> at = checked_checkpoint(checkpoints_, b, g);
      if (!at || *at > master)
        refuse("the checkpoint of chunk boundary " + std::to_string(b) + " is " +
               std::to_string(
                   checkpoints_[(b / chunk_) % checkpoint_count].load(std::memory_order_relaxed)) +
               ", not a record start between it and the master offset " + std::to_string(master));
    }
    // The next record goes at the master offset. Inside a record, it would overwrite that
    // record's tail while its header still stands, and readers would take the mix for the
    // record. Walk to it from its chunk's checkpoint (vouched for above): at most a chunk. A
    // record may run past the master offset here (that is the case to name), by one frame.
    const std::uint64_t chunk_start = master & ~(chunk_ - 1);
    const std::uint64_t from = chunk_start < lowest
                                   ? lowest
                                   : checkpoints_[(chunk_start / chunk_) % checkpoint_count].load(
                                         std::memory_order_relaxed);
    const record_walk w = walk_records(ring_, g, from, master, master + max_frame_for(capacity_));
    if (w.problem)
      refuse("master_offset " + std::to_string(master) + " cannot be checked: the record at " +
             std::to_string(w.position) + " before it is corrupt (" + w.problem + ")");
    if (w.position != master)
      refuse("master_offset " + std::to_string(master) +
             " does not start a record (it falls inside the record at " +
             std::to_string(w.previous) + ", which ends at " + std::to_string(w.position) + ")");
  }

  // The history block as the last writer completed it, or nullopt if it is half-written (seq
  // odd: that writer died changing it) or damaged (an id that is not hex). We hold the writer
  // lock, so one look is enough. (A shared prefix beyond the master offset is no damage: a
  // mirror that follows a source's branch from behind it has one.)
  std::optional<history_state> intact_history(const segment_header& h) const noexcept {
    if (history_left_odd(h)) return std::nullopt;
    std::optional<history_id> replid;
    std::optional<history_id> replid2;
    std::uint64_t second = 0;
    if (!try_read_seqlocked(h.history.seq, [&] {
          replid = load_history_id(h.history.replid);
          replid2 = load_history_id(h.history.replid2);
          second = h.history.second_repl_offset.load(std::memory_order_relaxed);
        }))
      return std::nullopt;
    if (!replid || !replid2) return std::nullopt;
    return history_state{*replid, *replid2, replid2->is_none() ? no_offset : second};
  }

  // A branch that takes the master offset back to `target` must land on a record start of the
  // log, or the next record would be written inside an old one: walk to it from the checkpoint
  // of its chunk. A branch that cannot go back (the ring no longer holds target) can only be
  // checked for alignment.
  void check_record_boundary(std::uint64_t target, std::uint64_t master,
                             std::uint64_t intent) const {
    if (target % record_alignment != 0)
      throw error(errc::not_a_record_boundary,
                  "log '" + name() + "': writer_options::state_offset " + std::to_string(target) +
                      " is not a multiple of 8, so it cannot start a record");
    if (!takeover_.plan.rewinds) return;
    const geometry& g = map_->geo();
    const std::uint64_t oldest = g.lowest_held(intent);
    const std::uint64_t boundary = std::max(target & ~(chunk_ - 1), oldest);
    // check_offsets() vouched for every checkpoint from oldest to master.
    const std::uint64_t from =
        !g.oldest_boundary(intent) && boundary <= g.start_offset
            ? g.start_offset
            : checkpoints_[(boundary / chunk_) % checkpoint_count].load(std::memory_order_relaxed);
    const record_walk w = walk_records(ring_, g, std::min(from, target), target, master);
    if (w.problem)
      throw error(errc::corrupt_record, "log '" + name() + "': record at offset " +
                                            std::to_string(w.position) +
                                            " is corrupt: " + w.problem);
    if (w.position != target)
      throw error(errc::not_a_record_boundary,
                  "log '" + name() + "': writer_options::state_offset " + std::to_string(target) +
                      " does not start a record of the log (it falls inside the record at " +
                      std::to_string(w.previous) + ", next record at " +
                      std::to_string(w.position) + "): the producer's state is not a prefix of it");
  }

  // Writes the planned history under the history seqlock, bumps the epoch so that every
  // reader re-synchronises before it can take a byte of the new history for the old, and, for
  // a branch, takes the master offset back to where the histories diverge: all three inside
  // the seqlock, so that a reader synchronising (read_sync_point) sees them of one moment.
  // Holding the writer lock, before anything is appended.
  void change_history(segment_header& h, const history_state& before) {
    const history_plan& plan = takeover_.plan;
    history_state after;
    after.replid = history_id::random();
    if (plan.action == history_action::branch) {
      after.replid2 = before.replid;
      after.second_repl_offset = plan.shared_up_to;
    }
    write_history(h, after,
                  plan.action == history_action::branch && plan.rewinds
                      ? std::optional(plan.shared_up_to)
                      : std::nullopt,
                  std::nullopt);
    takeover_.new_history = after;
  }

  // Inside the history seqlock, so that a reader synchronising (read_sync_point) or reading the
  // window sees all of it or none: the ids; the epoch (release, then a release fence: it is
  // ordered before every byte written from now on, as the write intent is; pairs with the
  // readers' acquire fence before they load history_epoch with write_intent); for a reset, the
  // checkpoint of the new start and the intent (release: read_window acquires it, then loads
  // the checkpoint); then the master offset, after the epoch: a reader whose master load sees
  // the new offset (acquire) sees the new epoch too, and reports history_changed.
  void write_history(segment_header& h, const history_state& after,
                     std::optional<std::uint64_t> master, std::optional<std::uint64_t> intent) {
    history_block& hb = h.history;
    seqlock_write change(hb.seq);
    store_history_id(hb.replid, after.replid);
    fault_injected(fault_point::history_change_half_done);
    store_history_id(hb.replid2, after.replid2);
    hb.second_repl_offset.store(after.replid2.is_none() ? no_offset : after.second_repl_offset,
                                std::memory_order_relaxed);
    h.history_epoch.store(h.history_epoch.load(std::memory_order_relaxed) + 1,
                          std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_release);
    fault_injected(fault_point::history_change_epoch_bumped);
    if (intent) {
      const std::uint64_t start = *master;
      checkpoints_[((start >> chunk_shift_)) % checkpoint_count].store(start,
                                                                       std::memory_order_relaxed);
      intent_->store(*intent, std::memory_order_release);
      std::atomic_thread_fence(std::memory_order_release);  // as advance_intent()
    }
    if (master) {
      // A rewind lands on a record start of the old history: no reader may take that header
      // for the new history's record (the intent covers it: it is below the old master
      // offset, or a reset stored the intent above).
      store_word(ring_ + (*master & mask_), 0, __ATOMIC_RELAXED);
      master_->store(*master, std::memory_order_release);
    }
    change.finish();
  }

 public:
  // --- mirrors: writer thread only (docs/remote.md) ------------------------------------------

  std::uint64_t append_at(std::uint64_t offset, const std::byte* data, std::size_t length,
                          record_type type) {
    check_can_append(length);
    const placement p = place(static_cast<std::uint32_t>(length));
    if (p.start != offset)
      throw error(errc::unexpected_offset,
                  "log '" + name() + "': a record of " + std::to_string(length) +
                      " bytes would start at offset " + std::to_string(p.start) + ", not at " +
                      std::to_string(offset) +
                      " where the source put it (the logs have diverged); nothing was appended");
    return append_general(data, static_cast<std::uint32_t>(length), type);
  }

  void follow_history(const history_state& after, std::uint64_t master) {
    if (claim_pending_) throw_claim_pending();
    if (master > written_end_)
      throw error(errc::offset_out_of_range,
                  "log '" + name() + "': cannot follow a history change to offset " +
                      std::to_string(master) + ", beyond the master offset " +
                      std::to_string(written_end_) + " (reset_to() jumps forward)");
    if (master < written_end_) {
      // A branch back to `master`: it must be a record start the ring still holds.
      const geometry& g = map_->geo();
      const std::uint64_t lowest = g.lowest_held(intent_local_);
      if (master < lowest)
        throw error(errc::offset_out_of_range,
                    "log '" + name() + "': cannot take the master offset back to " +
                        std::to_string(master) + ": the ring holds offsets from " +
                        std::to_string(lowest) + " only (reset_to() after a full resync)");
      check_boundary_in_ring(master, "the history change's offset");
    }
    write_history(map_->writable_header(), after,
                  master < written_end_ ? std::optional(master) : std::nullopt, std::nullopt);
    move_local_end(master);
  }

  void reset_to(const history_state& after, std::uint64_t start) {
    if (claim_pending_) throw_claim_pending();
    const std::uint64_t intent = (start & ~(chunk_ - 1)) + capacity_;
    if (start % record_alignment != 0 || start < written_end_ ||
        start >= max_log_offset - 2 * capacity_ || intent < intent_local_)
      throw error(errc::offset_out_of_range,
                  "log '" + name() + "': cannot reset to offset " + std::to_string(start) +
                      ": it must be a multiple of 8 at or beyond the master offset " +
                      std::to_string(written_end_) + " and keep the write intent from going back");
    write_history(map_->writable_header(), after, start, intent);
    intent_local_ = intent;
    move_local_end(start);
  }

 private:
  // The writer's own view after its master offset was moved (follow_history, reset_to).
  void move_local_end(std::uint64_t end) noexcept {
    written_end_ = end;
    next_checkpoint_ = ((end >> chunk_shift_) + 1) << chunk_shift_;
    update_fast_end();
  }

  // That `target` (below the master offset, in the held window) starts a record: walked from the
  // checkpoint of its chunk.
  void check_boundary_in_ring(std::uint64_t target, const char* what) const {
    const geometry& g = map_->geo();
    const std::uint64_t lowest = g.lowest_held(intent_local_);
    const std::uint64_t boundary = target & ~(chunk_ - 1);
    const auto checkpoint = [&](std::uint64_t b) {
      return checkpoints_[(b / chunk_) % checkpoint_count].load(std::memory_order_relaxed);
    };
    // The first record at or after the chunk boundary below target; below the held window,
    // the oldest record held (the log's start, or the checkpoint of the oldest boundary).
    const std::uint64_t from = boundary > lowest                  ? checkpoint(boundary)
                               : g.oldest_boundary(intent_local_) ? checkpoint(lowest)
                                                                  : lowest;
    const record_walk w = from > target ? record_walk{from, from, "before the oldest record held"}
                                        : walk_records(ring_, g, from, target, written_end_);
    if (w.problem || w.position != target)
      throw error(errc::not_a_record_boundary,
                  "log '" + name() + "': " + what + " " + std::to_string(target) +
                      " does not start a record of the log" +
                      (w.problem ? std::string(" (") + w.problem + ")" : std::string()));
  }

  role_file lock_;  // holds the writer lock for as long as this object lives; never mapped
  std::shared_ptr<mapping> map_;
  mapped_log mapped_{std::make_shared<mapped_log::impl>(mapped_log::impl{map_})};
  pid_t owner_pid_;  // the process that took the role

  // Hot state, private to the writer thread.
  std::byte* ring_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t chunk_ = 0;
  unsigned chunk_shift_ = 0;
  std::uint64_t max_payload_ = 0;
  std::atomic<std::uint64_t>* master_ = nullptr;
  std::atomic<std::uint64_t>* intent_ = nullptr;
  std::atomic<std::uint32_t>* wake_seq_ = nullptr;
  std::atomic<std::uint64_t>* checkpoints_ = nullptr;
  const std::atomic<std::uint32_t>* sleep_epoch_ = nullptr;
  const std::atomic<std::uint32_t>* gating_readers_ = nullptr;  // on sleep_epoch_'s line
  std::uint64_t gating_bound_ns_ = 0;
  std::uint64_t written_end_ = 0;   // end of the last record written (published between calls)
  std::uint64_t intent_local_ = 0;  // write_intent as last stored
  std::uint64_t next_checkpoint_ = 0;
  std::uint64_t fast_end_ = 0;  // see update_fast_end()
  std::uint32_t seen_sleep_epoch_ = 0;
  std::uint32_t wake_count_ = 0;
  fence_mode fence_ = fence_mode::seq_cst;
  bool claim_pending_ = false;
  // One compare on the append path checks both rules: max_payload_ + 1, or 0 while a claim is
  // open (then no length passes).
  std::uint64_t append_ceiling_ = 0;
  takeover_info takeover_;
};

namespace {

[[noreturn]] void throw_writer_exists(segment_file& file) {
  std::uint32_t pid = 0;
  try {
    auto m = mapping::map(file, map_access::inspector);
    pid = m->header().writer.pid.load(std::memory_order_acquire);
  } catch (const error&) {
    // Still being created: the creator holds the role.
  }
  throw error(errc::writer_exists,
              "log '" + file.name() + "' already has a live writer (pid " +
                  (pid ? std::to_string(pid) : std::string("unknown: still creating the log")) +
                  "); only one writer may have a log open");
}

}  // namespace
}  // namespace detail

namespace detail {
namespace {

std::shared_ptr<mapping> map_locked(const segment_file& lock_file) {
  auto mapped_file = segment_file::open(lock_file.name(), true);
  if (!mapped_file.same_object(lock_file))
    throw error(errc::not_found, "log '" + lock_file.name() +
                                     "' was destroyed and created again while being "
                                     "opened; open it again");
  return mapping::map(mapped_file, map_access::writer);
}

}  // namespace
}  // namespace detail

struct writer::impl final : detail::writer_core {
  using writer_core::writer_core;
};

namespace {

// Maps a second description of the object the lock file holds the writer lock on, and takes
// over the log (the lock's description is never mapped: docs/design.md, "The writer lock").
std::unique_ptr<writer::impl> take_role(detail::segment_file lock_file,
                                        const writer_options& options) {
  auto map = detail::map_locked(lock_file);
  return std::make_unique<writer::impl>(std::move(lock_file), std::move(map), options);
}

}  // namespace

writer writer::open(std::string_view name, const writer_options& options) {
  // The writer lock lives on an open file description that is never mapped. A lock is released
  // only when the last reference to its description goes, and a mapping is such a reference:
  // locked on the mapped description, the role would outlive this writer in a fork()ed child
  // (a BGSAVE child still saving after the producer was killed) or in an in-process reader
  // still holding the shared mapping. docs/design.md, "The writer lock".
  auto lock_file = detail::segment_file::open(name, true);
  if (!detail::try_lock_byte(lock_file.fd(), writer_lock_byte))
    detail::throw_writer_exists(lock_file);
  return writer(take_role(std::move(lock_file), options));
}

writer writer::create(std::string_view name, const create_options& options,
                      const writer_options& writer_opts) {
  // The creator holds the writer lock from before the object has a size, and keeps it as this
  // writer's lock: no other process can take the role in between.
  auto lock_file = detail::create_segment(name, options);
  const detail::segment_file created = detail::segment_file::open(name, false);
  try {
    detail::fault_injected(detail::fault_point::segment_created);
    return writer(take_role(std::move(lock_file), writer_opts));
  } catch (...) {
    // A failed creation leaves nothing behind (unless someone destroyed and re-created the
    // name in between: that object is not ours to remove).
    detail::remove_if_same(created);
    throw;
  }
}

writer writer::open_or_create(std::string_view name, const create_options& options,
                              const writer_options& writer_opts) {
  // Another process may create or destroy the name between our two attempts: a few rounds
  // settle it, since each failure means the other call's case now holds.
  for (int attempt = 0;; ++attempt) {
    try {
      writer w = open(name, writer_opts);
      if (w.capacity() != options.capacity)
        throw error(errc::invalid_argument, "log '" + std::string(name) +
                                                "' exists with capacity " +
                                                std::to_string(w.capacity()) + ", not the " +
                                                std::to_string(options.capacity) + " asked for");
      return w;
    } catch (const error& e) {
      if (e.code() != errc::not_found || attempt == 3) throw;
    }
    try {
      return create(name, options, writer_opts);
    } catch (const error& e) {
      if (e.code() != errc::already_exists || attempt == 3) throw;
    }
  }
}

writer::writer(std::unique_ptr<impl> state) noexcept : impl_(std::move(state)) {}
writer::writer(writer&&) noexcept = default;
writer& writer::operator=(writer&&) noexcept = default;
writer::~writer() = default;

std::uint64_t writer::append(std::span<const std::byte> payload, record_type type) {
  return impl_->append(payload.data(), payload.size(), type);
}

std::uint64_t writer::append(std::string_view payload, record_type type) {
  return impl_->append(reinterpret_cast<const std::byte*>(payload.data()), payload.size(), type);
}

std::uint64_t writer::append_batch(std::span<const record_ref> records) {
  return impl_->append_batch(records);
}

std::uint64_t writer::append_at(std::uint64_t offset, std::span<const std::byte> payload,
                                record_type type) {
  return impl_->append_at(offset, payload.data(), payload.size(), type);
}
void writer::follow_history(const history_state& history, std::uint64_t master_offset) {
  impl_->follow_history(history, master_offset);
}
void writer::reset_to(const history_state& history, std::uint64_t offset) {
  impl_->reset_to(history, offset);
}

claimed_record writer::claim(std::size_t max_payload, record_type type) {
  const std::uint64_t start = impl_->claim(max_payload);
  if (start == no_offset) [[unlikely]]
    return claim_advancing(max_payload, type);  // a tail call: no register saves here
  return claimed_record(impl_.get(), {impl_->payload_at(start), max_payload}, start, type);
}

claimed_record writer::claim_advancing(std::size_t max_payload, record_type type) {
  const std::uint64_t start = impl_->claim_advancing(max_payload);
  return claimed_record(impl_.get(), {impl_->payload_at(start), max_payload}, start, type);
}

std::size_t writer::wait_for_readers(std::size_t readers, std::uint64_t offset,
                                     std::chrono::nanoseconds timeout) const {
  return impl_->wait_for_readers(readers, offset, timeout);
}
std::uint64_t writer::master_offset() const noexcept {
  return impl_->master_offset();
}
std::uint64_t writer::capacity() const noexcept {
  return impl_->capacity();
}
std::uint64_t writer::max_payload() const noexcept {
  return impl_->max_payload();
}
const std::string& writer::name() const noexcept {
  return impl_->name();
}
const takeover_info& writer::takeover() const noexcept {
  return impl_->takeover();
}
fence_mode writer::fence() const noexcept {
  return impl_->fence();
}
history_state writer::history() const {
  return detail::read_history(impl_->map());
}
const mapped_log& writer::mapped() const noexcept {
  return impl_->mapped();
}
std::uint64_t writer::snapshot_requests() const noexcept {
  return impl_->snapshot_requests();
}
void writer::announce_snapshot(const snapshot_meta& snapshot) {
  impl_->announce_snapshot(snapshot);
}
snapshot_meta writer::announced_snapshot() const {
  return detail::read_snapshot_announcement(impl_->map());
}

claimed_record::claimed_record(claimed_record&& other) noexcept
    : core_(std::exchange(other.core_, nullptr)),
      payload_(other.payload_),
      offset_(other.offset_),
      type_(other.type_) {}

claimed_record& claimed_record::operator=(claimed_record&& other) noexcept {
  if (this != &other) {
    abort();
    core_ = std::exchange(other.core_, nullptr);
    payload_ = other.payload_;
    offset_ = other.offset_;
    type_ = other.type_;
  }
  return *this;
}

void claimed_record::commit(std::size_t used) {
  if (core_ == nullptr)
    throw error(errc::invalid_argument, "commit of a claim that was already committed or aborted");
  core_->commit(offset_, payload_.size(), type_, used);
  core_ = nullptr;
}

void claimed_record::abort() noexcept {
  if (core_ != nullptr) core_->abort_claim();
  core_ = nullptr;
}

}  // namespace shmlog
