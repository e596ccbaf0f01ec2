// The Redis engine behind the remote-replication seam (engine.h), on Debian's hiredis 0.14
// (synchronous API, RESP2, no TLS). Private to the library. Data model: docs/remote.md, "Redis
// data model".
//
// Keys of a log shipped under key K (K follows the log-name rule: 1-200 characters from
// [A-Za-z0-9._-]); the {K} hash tag puts every key of one log in one Redis Cluster slot, so the
// scripts may touch several of them:
//   shmlog:{K}:meta                        hash: replid, ..., shipped (end offset of the newest
//                                          entry the append script added)
//   shmlog:{K}:stream:<replid>             stream, one per history: entry ID <first_offset>-1,
//                                          fields e (end offset, decimal) and r (packed records)
//   shmlog:{K}:snap:<generation>:<index>   string: one chunk of a snapshot
//
// One engine holds one connection and is not thread-safe: one thread uses it at a time.
// Errors: a bad URL is error(invalid_argument); a bad key is error(invalid_name); a connection
// failure, a timeout, a reply that does not parse or an error reply from Redis is
// error(system_error) whose message starts with the endpoint (never the password) and quotes
// Redis's text. The engine never retries; after an I/O error or a timeout it drops the
// connection and the next call connects again (AUTH, SELECT and the scripts included).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine.h"

namespace shmlog::remote {

// redis://[user:password@]host[:port][/db], parsed.
struct redis_url {
  std::string user;      // "" = the default user (AUTH with the password alone)
  std::string password;  // "" = no AUTH
  std::string host;      // a name, an IPv4 address, or an IPv6 address (written [..] in URLs)
  std::uint16_t port = 6379;
  std::uint32_t db = 0;

  // redis://[user@]host:port/db: for logs and shmlog info, without the password.
  std::string endpoint() const;
};

// Parses strictly: scheme redis:// (rediss:// is refused: hiredis 0.14 has no TLS), user and
// password may be percent-encoded (%40 for '@', %3A for ':'), userinfo needs its ':' (write
// redis://:password@host for the default user), port 1-65535, db a decimal number, nothing
// after the db. Throws error(invalid_argument) naming what is wrong; the message shows the URL
// with its password replaced by "***".
redis_url parse_redis_url(std::string_view url);

struct redis_options {
  // Connecting (TCP handshake) gives up after this.
  std::chrono::milliseconds connect_timeout{3000};
  // Every command (AUTH, SELECT and script loading on connect included) fails if its reply has
  // not arrived after this; a blocking read waits for its `block` plus this.
  std::chrono::milliseconds command_timeout{5000};
  // Connect in connect_redis() (a bad address or password is reported at once); false: on the
  // first call.
  bool connect_at_once = true;
};

// An engine on the Redis at `url`. Throws what parse_redis_url() throws, and error(system_error)
// if `connect_at_once` and connecting fails. For ship, mirror and promote (and their tests).
std::unique_ptr<engine> connect_redis(std::string_view url, const redis_options& options = {});

}  // namespace shmlog::remote
