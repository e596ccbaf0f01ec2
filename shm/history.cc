#include "shmlog/history.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "shmlog/error.h"

namespace shmlog {

history_id history_id::random() {
  unsigned char bytes[history_id_size / 2];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw error(errc::system_error, std::string("getrandom failed while making a history id: ") +
                                          std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  static constexpr char hex[] = "0123456789abcdef";
  history_id id;
  for (std::size_t i = 0; i < sizeof bytes; ++i) {
    id.chars_[2 * i] = hex[bytes[i] >> 4];
    id.chars_[2 * i + 1] = hex[bytes[i] & 0xF];
  }
  return id;
}

std::optional<history_id> history_id::parse(std::string_view text) noexcept {
  if (text.size() != history_id_size) return std::nullopt;
  history_id id;
  for (std::size_t i = 0; i < history_id_size; ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    const bool is_hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!is_hex) return std::nullopt;
    id.chars_[i] = c;
  }
  return id;
}

bool history_id::is_none() const noexcept {
  for (char c : chars_) {
    if (c != '0') return false;
  }
  return true;
}

std::string_view to_string(resync_reason reason) noexcept {
  switch (reason) {
    case resync_reason::same_history:
      return "same_history";
    case resync_reason::shared_prefix:
      return "shared_prefix";
    case resync_reason::no_history:
      return "no_history";
    case resync_reason::unknown_history:
      return "unknown_history";
    case resync_reason::beyond_shared_prefix:
      return "beyond_shared_prefix";
    case resync_reason::offset_before_backlog:
      return "offset_before_backlog";
    case resync_reason::offset_after_master:
      return "offset_after_master";
    case resync_reason::not_a_record_boundary:
      return "not_a_record_boundary";
    case resync_reason::history_changed:
      return "history_changed";
  }
  return "unknown";
}

std::string resync_decision::describe() const {
  const std::string wanted = std::to_string(wanted_offset);
  const std::string first = std::to_string(window.first_byte_offset);
  const std::string master = std::to_string(window.master_offset);
  switch (reason) {
    case resync_reason::same_history:
      return "partial resync: offset " + wanted + " is held (window " + first + ".." + master + ")";
    case resync_reason::shared_prefix:
      return "partial resync: offset " + wanted + " is within the prefix shared with history " +
             history.replid2.str() + " (up to " + std::to_string(history.second_repl_offset) +
             "), continuing under " + history.replid.str();
    case resync_reason::no_history:
      return "full resync: the reader has no history yet";
    case resync_reason::unknown_history:
      return "full resync: the requested history is neither " + history.replid.str() + " nor " +
             history.replid2.str();
    case resync_reason::beyond_shared_prefix:
      return "full resync: offset " + wanted + " is beyond " +
             std::to_string(history.second_repl_offset) + ", where history " +
             history.replid2.str() + " and " + history.replid.str() + " diverge";
    case resync_reason::offset_before_backlog:
      return "full resync: offset " + wanted + " is before the oldest held offset " + first;
    case resync_reason::offset_after_master:
      return "full resync: offset " + wanted + " is after the master offset " + master;
    case resync_reason::not_a_record_boundary:
      return "full resync: offset " + wanted + " does not start a record";
    case resync_reason::history_changed:
      return "full resync: the writer kept changing the log's history while the reader moved "
             "to offset " +
             wanted;
  }
  return "full resync";
}

// Guard clauses in the order Redis checks them: first "is it the same history", then "is the
// offset still in the backlog". Anything that is not a clean "yes" falls through to one full
// resync result; a refused partial resync is a normal outcome, not an error.
resync_decision decide_resync(const history_state& history, const backlog_window& window,
                              std::optional<history_id> requested, std::uint64_t requested_offset) {
  resync_decision d;
  d.wanted_offset = requested_offset;
  d.window = window;
  d.history = history;
  d.kind = resync_kind::full;

  // Wanted: any history. Available: the reader has none (PSYNC ? -1).
  if (!requested || requested->is_none()) {
    d.reason = resync_reason::no_history;
    return d;
  }
  const bool same = *requested == history.replid;
  // Wanted: replid2 at offset <= second_repl_offset. Available: the shared prefix.
  const bool previous = !history.replid2.is_none() && *requested == history.replid2;
  if (!same && !previous) {
    d.reason = resync_reason::unknown_history;
    return d;
  }
  if (!same && requested_offset > history.second_repl_offset) {
    d.reason = resync_reason::beyond_shared_prefix;
    return d;
  }
  // Wanted: requested_offset. Available: [first_byte_offset, master_offset].
  if (requested_offset < window.first_byte_offset) {
    d.reason = resync_reason::offset_before_backlog;
    return d;
  }
  if (requested_offset > window.master_offset) {
    d.reason = resync_reason::offset_after_master;
    return d;
  }
  d.kind = resync_kind::partial;
  d.reason = same ? resync_reason::same_history : resync_reason::shared_prefix;
  return d;
}

std::string_view to_string(history_action action) noexcept {
  switch (action) {
    case history_action::keep:
      return "keep";
    case history_action::branch:
      return "branch";
    case history_action::restart:
      return "restart";
  }
  return "unknown";
}

std::string history_plan::describe() const {
  const std::string master = std::to_string(master_offset);
  switch (action) {
    case history_action::keep:
      return "same history, continuing at offset " + master;
    case history_action::branch:
      if (!rewinds)
        return "new history sharing the log's first " + std::to_string(shared_up_to) +
               " bytes, which the ring no longer holds; continuing at offset " + master;
      return "new history sharing the log's first " + std::to_string(shared_up_to) +
             " bytes; the master offset goes back from " + master + " to " +
             std::to_string(shared_up_to);
    case history_action::restart:
      return "new history sharing nothing with the log; continuing at offset " + master;
  }
  return "unknown";
}

// Guard clauses, each stating the wanted and the available offsets, as in decide_resync.
history_plan plan_writer_history(const history_state& log, std::uint64_t master_offset,
                                 std::optional<history_id> state_replid, std::uint64_t state_offset,
                                 std::uint64_t lowest_rewind) {
  history_plan plan;
  plan.master_offset = master_offset;
  // Wanted: nothing in particular. Available: the log as it is.
  if (!state_replid) return plan;
  // Wanted: state_offset in the current history. Available: exactly master_offset.
  const bool current = *state_replid == log.replid;
  if (current && state_offset == master_offset) return plan;
  // Wanted: a prefix of the current history, or of the previous one up to where it is shared.
  const bool prefix_of_current = current && state_offset < master_offset;
  const bool prefix_of_previous = !log.replid2.is_none() && *state_replid == log.replid2 &&
                                  state_offset <= log.second_repl_offset &&
                                  state_offset <= master_offset;
  if (prefix_of_current || prefix_of_previous) {
    plan.action = history_action::branch;
    plan.shared_up_to = state_offset;
    // Going back is only worth it (and only readable) while the ring still holds the offsets.
    plan.rewinds = state_offset >= lowest_rewind;
    return plan;
  }
  // Anything else: an unknown history, or an offset beyond what the log and the state share.
  plan.action = history_action::restart;
  return plan;
}

}  // namespace shmlog
