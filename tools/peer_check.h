// Whom `shmlog get` believes. Apart from kv_socket.cc so that the tests can call the decision
// directly, with credentials no test process can take (another uid, root).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <optional>
#include <string>

namespace shmlog::cli {

// The decision a GET client makes about the process listening on a replica's socket, before
// it sends the request: `peer` is that process's SO_PEERCRED credentials. nullopt if it is the
// process the log's reader slot names (`expected_pid`) running as the client's own effective
// uid (`my_uid`) or as root; otherwise "expected ..., found ..." for the error message. Pure:
// any caller, any thread.
std::optional<std::string> check_peer(pid_t expected_pid, uid_t my_uid, const ucred& peer);

}  // namespace shmlog::cli
