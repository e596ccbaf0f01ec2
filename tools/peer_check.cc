#include "peer_check.h"

namespace shmlog::cli {

std::optional<std::string> check_peer(pid_t expected_pid, uid_t my_uid, const ucred& peer) {
  // The pid tells a squatter of the name from the replica: the kernel records who called
  // listen(), which no other process can fake. The uid matters when the pid was recycled: a
  // process of another user that now has the replica's pid may listen on its name.
  if (peer.pid == expected_pid && (peer.uid == my_uid || peer.uid == 0)) return std::nullopt;
  const std::string as =
      my_uid == 0 ? "root" : "uid " + std::to_string(my_uid) + " (yours) or root";
  return "expected pid " + std::to_string(expected_pid) + " running as " + as + ", found pid " +
         std::to_string(peer.pid) + " running as uid " + std::to_string(peer.uid);
}

}  // namespace shmlog::cli
