// Fault injection for tests. A test, or the test peer process, installs a hook that the library
// calls at named steps of its multi-step updates of shared memory and before system calls that
// may fail, so that a test can kill the process at exactly that step (raise(SIGKILL): a real
// kill -9, at a chosen instruction rather than a lucky one) or make the call fail. Without a
// hook each point costs one relaxed load; none is on the append or the read path.
#pragma once

#include <string_view>

namespace shmlog::detail {

enum class fault_point {
  // writer::open: the history block's seq is odd and the new ids are half written.
  history_change_half_done,
  // writer::open: the history block is written and the epoch bumped; the master offset is not
  // yet taken back (a branch), and seq is still odd.
  history_change_epoch_bumped,
  // snapshot publication: the snapshot block's seq is odd and its fields are half written.
  snapshot_announcement_half_done,
  // writer::create: the segment is initialised, the writer is not yet open.
  segment_created,
  // A reader about to sleep calls membarrier(): a hook returning true makes that call fail.
  membarrier,
  // reader slot move: move_seq is odd, the position fields half written.
  slot_move_half_done,
  // A process reading a header seqlock found it odd (or changed) and is about to retry.
  seqlock_read_retry,
};

// The hook returns true to make a failing point (membarrier) fail; it may also not return
// (raise SIGKILL) or throw (the library lets the exception through).
using fault_hook = bool (*)(fault_point);

// Tests only; any thread. nullptr removes the hook.
void set_fault_hook(fault_hook hook) noexcept;
// Library only: runs the hook, if any, at point `p`.
bool fault_injected(fault_point p);

std::string_view to_string(fault_point p) noexcept;

}  // namespace shmlog::detail
