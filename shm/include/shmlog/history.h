// History ids and the resync decision, as in Redis PSYNC (see docs/design.md, "Resync").
//
// A log's history is named by a 40-character hex id (Redis: replid). When a writer restarts and
// cannot continue the same history it starts a new id, keeps the old one as replid2, and records
// second_repl_offset: readers of replid2 at an offset <= second_repl_offset read bytes that both
// histories share, so they may continue under the new id (Redis PSYNC2).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shmlog/export.h"
#include "shmlog/framing.h"

namespace shmlog {

class SHMLOG_API history_id {
 public:
  // The "none" id: forty '0' characters, as Redis prints a cleared replid2.
  history_id() noexcept { chars_.fill('0'); }

  // Forty lowercase hex characters from the kernel's random source (getrandom).
  static history_id random();
  // Accepts exactly forty hex characters (either case; stored lowercase); nullopt otherwise.
  static std::optional<history_id> parse(std::string_view text) noexcept;

  bool is_none() const noexcept;
  std::string_view view() const noexcept { return {chars_.data(), chars_.size()}; }
  std::string str() const { return std::string(view()); }
  friend bool operator==(const history_id&, const history_id&) = default;

 private:
  std::array<char, history_id_size> chars_;
};

// The log's history as a reader sees it at one moment.
struct history_state {
  history_id replid;
  history_id replid2;                            // none if the log never changed history
  std::uint64_t second_repl_offset = no_offset;  // no_offset: replid2 is none
};

// Where the backlog stands at one moment: the held window is [first_byte_offset, master_offset].
struct backlog_window {
  std::uint64_t first_byte_offset = 0;  // offset of the oldest record still held
  std::uint64_t master_offset = 0;      // offset one past the newest published byte
};

enum class resync_kind {
  partial,  // +CONTINUE: read on from the requested offset
  full,     // +FULLRESYNC: load a snapshot, then read on from the snapshot's offset
};

enum class resync_reason {
  same_history,           // partial: the requested id is the current one
  shared_prefix,          // partial: requested id is replid2, offset within the shared prefix
  no_history,             // full: the reader had no history (a new reader, Redis "PSYNC ? -1")
  unknown_history,        // full: the requested id is neither replid nor replid2
  beyond_shared_prefix,   // full: requested id is replid2 but offset > second_repl_offset
  offset_before_backlog,  // full: offset < first_byte_offset (overwritten)
  offset_after_master,    // full: offset > master_offset (a future the log never had)
  not_a_record_boundary,  // full: offset inside the window that does not start a record
  // full: a starting writer kept changing the history while the reader moved (the reader
  // decides again with each new history; this is what is left if it never settled)
  history_changed,
};

struct SHMLOG_API resync_decision {
  resync_kind kind = resync_kind::full;
  resync_reason reason = resync_reason::no_history;
  std::uint64_t wanted_offset = no_offset;  // what the reader asked for
  backlog_window window;                    // what the log held when it decided
  history_state history;                    // the log's history when it decided

  bool is_partial() const noexcept { return kind == resync_kind::partial; }
  // One line for logs, e.g. "full resync: offset 50 is before the oldest held offset 100".
  std::string describe() const;
};

// The decision of Redis's masterTryPartialResynchronization, restated for shmlog. Pure: it
// does not check record boundaries (the reader does that with the ring in hand). `requested`
// empty means the reader has no history.
SHMLOG_API resync_decision decide_resync(const history_state& history, const backlog_window& window,
                                         std::optional<history_id> requested,
                                         std::uint64_t requested_offset);

SHMLOG_API std::string_view to_string(resync_reason reason) noexcept;

// What a starting writer does with the log's history, given what its producer's state is
// (Redis PSYNC2 as seen from a restarted master; docs/design.md, "History across restarts").
enum class history_action {
  keep,     // same history: the producer has no state of its own, or its state is exactly the
            // log's content (same id, offset == master offset)
  branch,   // new id sharing [0, shared_up_to) with the log: replid2 = the log's replid,
            // second_repl_offset = shared_up_to, and the master offset goes back to it
  restart,  // new id sharing nothing: the producer's state is not any prefix of this log
};

struct SHMLOG_API history_plan {
  history_action action = history_action::keep;
  std::uint64_t shared_up_to = no_offset;  // branch: where the histories diverge
  std::uint64_t master_offset = 0;         // the log's master offset when it decided
  // branch: whether the master offset goes back to shared_up_to. Only if the ring still holds
  // offsets there (shared_up_to >= lowest_rewind); otherwise no reader can use the shared
  // prefix anyway, and the new history goes on from the master offset.
  bool rewinds = false;
  std::string describe() const;
};

// `state_replid` empty: the producer keeps no state (it only appends, like shmlog write).
// `lowest_rewind`: the lowest offset the master offset can go back to and still be readable,
// write_intent - capacity (the intent never moves back).
SHMLOG_API history_plan plan_writer_history(const history_state& log, std::uint64_t master_offset,
                                            std::optional<history_id> state_replid,
                                            std::uint64_t state_offset,
                                            std::uint64_t lowest_rewind = 0);
SHMLOG_API std::string_view to_string(history_action action) noexcept;

}  // namespace shmlog
