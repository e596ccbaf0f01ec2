#include "redis_engine.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <limits>
#include <utility>
#include <vector>

#include "os.h"
#include "shmlog/error.h"
#include "shmlog/segment.h"

namespace shmlog::remote {
namespace {

using detail::printable;

// --- URLs ------------------------------------------------------------------------------------

// The URL with whatever could be a password replaced by "***": what follows the userinfo's first
// ':' up to the last '@' (the whole userinfo if it has no ':'). Used on URLs that did not parse,
// so it guesses generously: it hides too much rather than too little.
std::string redact(std::string_view url) {
  const std::size_t scheme = url.find("://");
  const std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  const std::size_t at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return printable(url);
  const std::size_t colon = url.find(':', start);
  const std::size_t hide_from = colon != std::string_view::npos && colon < at ? colon + 1 : start;
  return printable(url.substr(0, hide_from)) + "***" + printable(url.substr(at));
}

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

template <typename T>
std::optional<T> parse_decimal(std::string_view s) {
  if (!is_digits(s)) return std::nullopt;
  T value{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int high = hex_value(s[i + 1]);
    const int low = hex_value(s[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::string percent_encode_user(std::string_view s) {
  std::string out;
  for (const unsigned char c : s) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_' || c == '~';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

bool is_host_name(std::string_view s) {
  for (const char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool is_ipv6_text(std::string_view s) {
  for (const char c : s)
    if (hex_value(c) < 0 && c != ':' && c != '.') return false;
  return s.find(':') != std::string_view::npos;
}

[[noreturn]] void bad_url(std::string_view url, const std::string& why) {
  throw error(errc::invalid_argument, "invalid Redis URL '" + redact(url) + "': " + why +
                                          " (expected redis://[user:password@]host[:port][/db])");
}

}  // namespace

std::string redis_url::endpoint() const {
  std::string out = "redis://";
  if (!user.empty()) out += percent_encode_user(user) + "@";
  out += host.find(':') == std::string::npos ? host : "[" + host + "]";
  out += ":" + std::to_string(port) + "/" + std::to_string(db);
  return out;
}

redis_url parse_redis_url(std::string_view url) {
  redis_url out;
  constexpr std::string_view scheme = "redis://";
  if (url.starts_with("rediss://"))
    bad_url(url,
            "TLS (rediss://) is not supported: Debian's hiredis 0.14 has no TLS (docs/remote.md, "
            "\"Security\")");
  if (!url.starts_with(scheme)) bad_url(url, "it does not start with redis://");
  std::string_view rest = url.substr(scheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos)
    bad_url(url, "a query (?...) or fragment (#...) is not supported");

  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    if (db.empty()) bad_url(url, "no database number after '/'");
    const auto number = parse_decimal<std::uint32_t>(db);
    if (!number || *number > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()))
      bad_url(url, "database '" + printable(db) + "' is not a number from 0 to 2147483647");
    out.db = *number;
  }

  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const std::size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      bad_url(url,
              "the part before '@' needs a ':' (user:password, or :password for the default user)");
    const auto user = percent_decode(userinfo.substr(0, colon));
    if (!user) bad_url(url, "bad percent-encoding in the user name");
    const auto password = percent_decode(userinfo.substr(colon + 1));
    if (!password) bad_url(url, "bad percent-encoding in the password");
    if (password->empty())
      bad_url(url, "the password is empty (leave out 'user:password@' for no AUTH)");
    out.user = *user;
    out.password = *password;
  }

  std::string_view port;
  bool has_port = false;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) bad_url(url, "'[' of an IPv6 address without its ']'");
    out.host = authority.substr(1, close - 1);
    if (!is_ipv6_text(out.host))
      bad_url(url, "'" + printable(out.host) + "' is not an IPv6 address");
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':')
        bad_url(url, "unexpected '" + printable(after) + "' after the IPv6 address");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    const std::size_t colon = authority.find(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
      if (port.find(':') != std::string_view::npos)
        bad_url(url,
                "more than one ':' in host:port (write an IPv6 address in brackets: [::1]:6379)");
    }
    if (!is_host_name(out.host))
      bad_url(url,
              "host '" + printable(out.host) + "' has characters other than A-Z a-z 0-9 . _ -");
  }
  if (out.host.empty()) bad_url(url, "no host");
  if (has_port) {
    const auto number = parse_decimal<std::uint32_t>(port);
    if (!number || *number == 0 || *number > 65535)
      bad_url(url, "port '" + printable(port) + "' is not a number from 1 to 65535");
    out.port = static_cast<std::uint16_t>(*number);
  }
  return out;
}

namespace {

// --- Lua scripts -----------------------------------------------------------------------------

// KEYS: meta, stream. ARGV: replid, entry ID, end offset, records, max entries (0: no trim).
// Fencing and the append are one atomic step (a script runs alone in Redis). XADD refuses an ID
// at or below the stream's top with "ERR The ID specified in XADD is equal or smaller than the
// target stream top item": pcall turns that into a DUPLICATE reply, any other error is raised.
constexpr std::string_view append_script = R"lua(
local current = redis.call('HGET', KEYS[1], 'replid')
if current ~= ARGV[1] then
  return {'FENCED', current or ''}
end
local added
if ARGV[5] == '0' then
  added = redis.pcall('XADD', KEYS[2], ARGV[2], 'e', ARGV[3], 'r', ARGV[4])
else
  added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], ARGV[2], 'e', ARGV[3], 'r', ARGV[4])
end
if type(added) == 'table' and added.err then
  if string.find(added.err, 'equal or smaller', 1, true) then
    return {'DUPLICATE'}
  end
  return redis.error_reply(added.err)
end
redis.call('HSET', KEYS[1], 'shipped', ARGV[3])
return {'APPENDED'}
)lua";

// KEYS: meta. ARGV: guard field, guard value ("" = absent), then field, value pairs.
constexpr std::string_view set_meta_if_script = R"lua(
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then
  return 0
end
if #ARGV > 2 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
end
return 1
)lua";

// --- hiredis plumbing ------------------------------------------------------------------------

struct reply_deleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

struct context_deleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

// hiredis 0.14 writes with write(2), not send(MSG_NOSIGNAL): writing to a connection the server
// has reset raises SIGPIPE, which kills a process that did not ignore it (a shipper daemon must
// not die because Redis did). For the guard's life SIGPIPE is blocked in this thread, and one it
// raised is taken off the pending set before the old mask comes back; the process's disposition
// is left alone (a library must not change it).
class sigpipe_guard {
 public:
  sigpipe_guard() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~sigpipe_guard() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{};
        while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

// One command's arguments, binary-safe (hiredis's argv/argvlen interface). Views must outlive
// the command; numbers are kept here, each in its own heap string so that a view of it stays
// valid when the command moves (a std::vector<command> that grows moves its commands). Move-only:
// a copy would view the original's strings.
class command {
 public:
  command() = default;
  command(command&&) noexcept = default;
  command& operator=(command&&) noexcept = default;
  command(const command&) = delete;
  command& operator=(const command&) = delete;

  command& add(std::string_view arg) {
    args_.push_back(arg);
    return *this;
  }
  command& add_number(std::uint64_t n) { return add_owned(std::to_string(n)); }
  command& add_number(std::int64_t n) { return add_owned(std::to_string(n)); }
  command& add_owned(std::string arg) {
    owned_.push_back(std::make_unique<std::string>(std::move(arg)));
    args_.push_back(*owned_.back());
    return *this;
  }
  // Adds the arguments of `other`, which must outlive this command.
  command& append_args(const command& other) {
    args_.insert(args_.end(), other.args_.begin(), other.args_.end());
    return *this;
  }
  std::string_view name() const { return args_.empty() ? std::string_view() : args_[0]; }
  // Appends the command to the context's output buffer.
  bool append_to(redisContext* c) const {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args_.size());
    lengths.reserve(args_.size());
    for (const std::string_view a : args_) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    return redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data()) ==
           REDIS_OK;
  }

 private:
  std::vector<std::unique_ptr<std::string>> owned_;
  std::vector<std::string_view> args_;
};

bool is_error(const redisReply* r) {
  return r->type == REDIS_REPLY_ERROR;
}
std::string_view text_of(const redisReply* r) {
  return {r->str, r->len};
}
bool is_string(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

const char* type_name(int type) {
  switch (type) {
    case REDIS_REPLY_STRING:
      return "string";
    case REDIS_REPLY_ARRAY:
      return "array";
    case REDIS_REPLY_INTEGER:
      return "integer";
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_STATUS:
      return "status";
    case REDIS_REPLY_ERROR:
      return "error";
    default:
      return "unknown";
  }
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

void check_replid(std::string_view replid) {
  bool ok = !replid.empty() && replid.size() <= 64;
  for (const char c : replid)
    ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
  if (!ok)
    throw error(errc::invalid_argument,
                "invalid replid '" + printable(replid) +
                    "' for a Redis stream key (use 1-64 letters and digits)");
}

std::string meta_key(std::string_view key) {
  return "shmlog:{" + std::string(key) + "}:meta";
}
std::string stream_key(std::string_view key, std::string_view replid) {
  return "shmlog:{" + std::string(key) + "}:stream:" + std::string(replid);
}
std::string snap_prefix(std::string_view key) {
  return "shmlog:{" + std::string(key) + "}:snap:";
}
std::string chunk_key(std::string_view key, std::uint64_t generation, std::uint64_t index) {
  return snap_prefix(key) + std::to_string(generation) + ":" + std::to_string(index);
}
std::string entry_id(std::uint64_t first_offset) {
  return std::to_string(first_offset) + "-1";
}

// --- the engine ------------------------------------------------------------------------------

class redis_engine final : public engine {
 public:
  redis_engine(redis_url url, const redis_options& options)
      : url_(std::move(url)), endpoint_(url_.endpoint()), options_(options) {
    if (options_.connect_timeout.count() <= 0 || options_.command_timeout.count() <= 0)
      throw error(errc::invalid_argument,
                  endpoint_ + ": the connect and command timeouts must be positive");
    if (options_.connect_at_once) connection();
  }

  std::string endpoint() const override { return endpoint_; }

  fields meta(std::string_view key) override {
    validate_name(key);
    const std::string meta = meta_key(key);
    const reply_ptr r = run(command().add("HGETALL").add(meta));
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
      unexpected("HGETALL " + meta, r.get());
    fields out;
    for (std::size_t i = 0; i < r->elements; i += 2) {
      const redisReply* name = r->element[i];
      const redisReply* value = r->element[i + 1];
      if (!is_string(name) || !is_string(value)) unexpected("HGETALL " + meta, r.get());
      out.emplace(std::string(text_of(name)), std::string(text_of(value)));
    }
    return out;
  }

  bool set_meta_if(std::string_view key, std::string_view guard_field, std::string_view guard_value,
                   const fields& values) override {
    validate_name(key);
    const std::string meta = meta_key(key);
    command args;
    args.add("1").add(meta).add(guard_field).add(guard_value);
    for (const auto& [name, value] : values)
      args.add(name).add(value);
    const reply_ptr r = eval(set_meta_if_script, set_meta_sha_, args, "set_meta_if on " + meta);
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
      unexpected("set_meta_if on " + meta, r.get());
    return r->integer == 1;
  }

  std::int64_t increment_meta(std::string_view key, std::string_view field,
                              std::int64_t by) override {
    validate_name(key);
    const std::string meta = meta_key(key);
    const reply_ptr r = run(command().add("HINCRBY").add(meta).add(field).add_number(by));
    if (r->type != REDIS_REPLY_INTEGER) unexpected("HINCRBY " + meta, r.get());
    return r->integer;
  }

  std::vector<append_result> append(std::string_view key, std::string_view replid,
                                    std::span<const entry> entries,
                                    std::uint64_t max_entries) override {
    validate_name(key);
    check_replid(replid);
    const std::string meta = meta_key(key);
    const std::string stream = stream_key(key, replid);
    for (const entry& e : entries)
      if (e.end_offset <= e.first_offset)
        throw error(errc::invalid_argument, endpoint_ + ": an entry for " + stream + " ends at " +
                                                std::to_string(e.end_offset) +
                                                ", not after its first offset " +
                                                std::to_string(e.first_offset));
    // The arguments after the script: EVALSHA and EVAL share them.
    std::vector<command> args(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const entry& e = entries[i];
      args[i]
          .add("2")
          .add(meta)
          .add(stream)
          .add(replid)
          .add_owned(entry_id(e.first_offset))
          .add_number(e.end_offset)
          .add(e.records)
          .add_number(max_entries);
    }

    std::vector<append_result> results;
    if (entries.empty()) return results;
    results.reserve(entries.size());
    connection();  // loads the script: append_sha_ is set from here on
    std::size_t next = 0;
    while (next < entries.size()) {
      std::vector<command> batch;
      batch.reserve(entries.size() - next);
      for (std::size_t i = next; i < entries.size(); ++i)
        batch.push_back(evalsha_command(append_sha_, args[i]));
      std::vector<reply_ptr> replies = run_pipeline(batch);
      std::size_t i = 0;
      for (; i < replies.size(); ++i) {
        if (is_noscript(replies[i].get())) break;
        const append_result result = append_outcome(stream, entries[next + i], replies[i].get());
        results.push_back(result);
        if (result == append_result::fenced) return results;
      }
      if (i == replies.size()) break;
      // The script left Redis's cache (SCRIPT FLUSH) before entry next + i. Those after it were
      // refused too unless someone loaded the script meanwhile; then one of them may be in the
      // stream while this one is not, and resending this one would report it as a duplicate:
      // say so rather than hide a hole in the stream.
      for (std::size_t j = i + 1; j < replies.size(); ++j)
        if (!is_noscript(replies[j].get()))
          fail("XADD of " + stream, "the append script vanished from Redis's script cache in the " +
                                        std::string("middle of a batch, at the entry at offset ") +
                                        std::to_string(entries[next + i].first_offset) +
                                        "; the entries after it may have been appended");
      // EVAL caches the script again, so the rest of the batch can go by EVALSHA.
      const std::size_t at = next + i;
      const std::vector<reply_ptr> eval_reply = run_one(eval_command(append_script, args[at]));
      const append_result result = append_outcome(stream, entries[at], eval_reply[0].get());
      results.push_back(result);
      if (result == append_result::fenced) return results;
      next = at + 1;
    }
    return results;
  }

  std::vector<entry> read(std::string_view key, std::string_view replid,
                          std::optional<std::uint64_t> after, std::size_t max,
                          std::chrono::milliseconds block) override {
    validate_name(key);
    check_replid(replid);
    if (max == 0) throw error(errc::invalid_argument, endpoint_ + ": read of 0 entries");
    if (block.count() < 0)
      throw error(errc::invalid_argument, endpoint_ + ": read with a negative block time");
    const std::string stream = stream_key(key, replid);
    // IDs are <first offset>-1, so the entries after ID <after>-1 are those whose first offset
    // is above `after`; 0-0 is below every ID. Redis's BLOCK 0 waits forever: block 0 here
    // means no BLOCK at all.
    command c;
    c.add("XREAD").add("COUNT").add_number(static_cast<std::uint64_t>(max));
    if (block.count() > 0) c.add("BLOCK").add_number(static_cast<std::int64_t>(block.count()));
    c.add("STREAMS").add(stream).add_owned(after ? entry_id(*after) : "0-0");
    const reply_ptr r = run(c, block);
    std::vector<entry> out;
    if (r->type == REDIS_REPLY_NIL) return out;  // nothing within `block`
    const std::string what = "XREAD " + stream;
    // [[stream name, [[id, [field, value, ...]], ...]]]
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1) unexpected(what, r.get());
    const redisReply* only = r->element[0];
    if (only->type != REDIS_REPLY_ARRAY || only->elements != 2 || !is_string(only->element[0]) ||
        text_of(only->element[0]) != stream || only->element[1]->type != REDIS_REPLY_ARRAY)
      unexpected(what, r.get());
    const redisReply* list = only->element[1];
    if (list->elements > max) unexpected(what, r.get());
    out.reserve(list->elements);
    for (std::size_t i = 0; i < list->elements; ++i)
      out.push_back(parse_entry(stream, list->element[i]));
    return out;
  }

  std::optional<std::uint64_t> oldest(std::string_view key, std::string_view replid) override {
    const auto e = edge(key, replid, "XRANGE", "-", "+");
    if (!e) return std::nullopt;
    return e->first_offset;
  }

  std::optional<std::uint64_t> newest_end(std::string_view key, std::string_view replid) override {
    const auto e = edge(key, replid, "XREVRANGE", "+", "-");
    if (!e) return std::nullopt;
    return e->end_offset;
  }

  std::optional<entry> at_or_before(std::string_view key, std::string_view replid,
                                    std::uint64_t offset) override {
    return edge(key, replid, "XREVRANGE", entry_id(offset), "-");
  }

  void put_chunk(std::string_view key, std::uint64_t generation, std::uint64_t index,
                 std::string_view bytes) override {
    validate_name(key);
    const std::string k = chunk_key(key, generation, index);
    const reply_ptr r = run(command().add("SET").add(k).add(bytes));
    if (r->type != REDIS_REPLY_STATUS || text_of(r.get()) != "OK") unexpected("SET " + k, r.get());
  }

  std::optional<std::string> get_chunk(std::string_view key, std::uint64_t generation,
                                       std::uint64_t index) override {
    validate_name(key);
    const std::string k = chunk_key(key, generation, index);
    const reply_ptr r = run(command().add("GET").add(k));
    if (r->type == REDIS_REPLY_NIL) return std::nullopt;
    if (r->type != REDIS_REPLY_STRING) unexpected("GET " + k, r.get());
    return std::string(text_of(r.get()));
  }

  void drop_chunks_below(std::string_view key, std::uint64_t keep_from) override {
    validate_name(key);
    const std::string prefix = snap_prefix(key);
    // SCAN, not KEYS: KEYS walks the whole keyspace in one go and stalls every other client.
    // Key names of the form shmlog:{K}:snap:<generation>:<index> hold no glob characters.
    const std::string pattern = prefix + "*";
    std::string cursor = "0";
    do {
      const reply_ptr r =
          run(command().add("SCAN").add(cursor).add("MATCH").add(pattern).add("COUNT").add("1000"));
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_string(r->element[0]) ||
          r->element[1]->type != REDIS_REPLY_ARRAY)
        unexpected("SCAN " + pattern, r.get());
      cursor = std::string(text_of(r->element[0]));
      const redisReply* keys = r->element[1];
      command del;
      del.add("DEL");
      std::size_t doomed = 0;
      for (std::size_t i = 0; i < keys->elements; ++i) {
        if (!is_string(keys->element[i])) unexpected("SCAN " + pattern, r.get());
        const std::string_view name = text_of(keys->element[i]);
        if (!name.starts_with(prefix)) continue;
        const std::string_view rest = name.substr(prefix.size());
        const std::size_t colon = rest.find(':');
        const auto generation = parse_decimal<std::uint64_t>(rest.substr(0, colon));
        // A key that is not <generation>:<index> is not one of ours: left alone.
        if (colon == std::string_view::npos || !generation ||
            !parse_decimal<std::uint64_t>(rest.substr(colon + 1)))
          continue;
        if (*generation < keep_from) {
          del.add_owned(std::string(name));
          ++doomed;
        }
      }
      if (doomed > 0) {
        const reply_ptr d = run(del);
        if (d->type != REDIS_REPLY_INTEGER)
          unexpected("DEL of snapshot chunks of " + prefix, d.get());
      }
    } while (cursor != "0");
  }

 private:
  [[noreturn]] void fail(const std::string& what, std::string_view detail) const {
    throw error(errc::system_error, endpoint_ + ": " + what + ": " + printable(detail));
  }

  [[noreturn]] void bad_entry(const std::string& stream, std::string_view id,
                              const std::string& why) const {
    fail("reading " + stream, "entry " + printable(id) + ": " + why);
  }

  [[noreturn]] void unexpected(const std::string& what, const redisReply* r) const {
    if (is_error(r)) fail(what, text_of(r));
    fail(what, std::string("unexpected reply of type ") + type_name(r->type));
  }

  // The live connection, connecting first if there is none.
  redisContext* connection() {
    if (context_) return context_.get();
    sigpipe_guard guard;
    context_ptr c(redisConnectWithTimeout(url_.host.c_str(), url_.port,
                                          to_timeval(options_.connect_timeout)));
    if (!c) fail("cannot connect", "out of memory");
    if (c->err) fail("cannot connect", c->errstr);
    if (redisSetTimeout(c.get(), to_timeval(options_.command_timeout)) != REDIS_OK)
      fail("cannot set the command timeout", c->errstr);
    timeout_ = options_.command_timeout;
    context_ = std::move(c);

    std::vector<command> setup;
    if (!url_.password.empty()) {
      command auth;
      auth.add("AUTH");
      if (!url_.user.empty()) auth.add(url_.user);
      auth.add(url_.password);
      setup.push_back(std::move(auth));
    }
    if (url_.db != 0)
      setup.push_back(std::move(command().add("SELECT").add_number(std::uint64_t{url_.db})));
    setup.push_back(std::move(command().add("SCRIPT").add("LOAD").add(append_script)));
    setup.push_back(std::move(command().add("SCRIPT").add("LOAD").add(set_meta_if_script)));
    std::vector<reply_ptr> replies;
    try {
      replies = run_pipeline(setup);
    } catch (...) {
      context_.reset();
      throw;
    }
    std::size_t i = 0;
    const auto check = [&](const std::string& what) -> const redisReply* {
      const redisReply* r = replies[i++].get();
      if (is_error(r)) {
        context_.reset();
        fail(what, text_of(r));
      }
      return r;
    };
    if (!url_.password.empty())
      check(url_.user.empty() ? "AUTH (password only)"
                              : "AUTH as user '" + printable(url_.user) + "'");
    if (url_.db != 0) check("SELECT " + std::to_string(url_.db));
    const redisReply* append_loaded = check("SCRIPT LOAD");
    const redisReply* set_meta_loaded = check("SCRIPT LOAD");
    if (append_loaded->type != REDIS_REPLY_STRING || set_meta_loaded->type != REDIS_REPLY_STRING) {
      context_.reset();
      fail("SCRIPT LOAD", "the reply is not a SHA1");
    }
    append_sha_ = std::string(text_of(append_loaded));
    set_meta_sha_ = std::string(text_of(set_meta_loaded));
    return context_.get();
  }

  // After an I/O error or a timeout the connection is in an unknown state (a reply may still
  // come): it is dropped, and the next call connects again.
  [[noreturn]] void io_failure(redisContext* c, std::string_view what, int saved_errno) {
    std::string detail = c->errstr;
    if (c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
      detail = "no reply within " + std::to_string(timeout_.count()) + " ms (timed out)";
    else if (c->err == REDIS_ERR_EOF)
      detail = "the server closed the connection (" + detail + ")";
    context_.reset();
    fail(std::string(what), detail);
  }

  // Sets the socket timeouts to command_timeout + extra, unless they already are that.
  void use_timeout(redisContext* c, std::chrono::milliseconds extra) {
    const std::chrono::milliseconds wanted = options_.command_timeout + extra;
    if (wanted == timeout_) return;
    if (redisSetTimeout(c, to_timeval(wanted)) != REDIS_OK)
      io_failure(c, "setting the timeout", errno);
    timeout_ = wanted;
  }

  // Sends `commands` in one write and reads their replies in order (error replies included).
  // Throws, dropping the connection, if any reply cannot be read.
  std::vector<reply_ptr> run_pipeline(std::span<const command> commands,
                                      std::chrono::milliseconds extra_timeout = {}) {
    redisContext* c = connection();
    sigpipe_guard guard;
    use_timeout(c, extra_timeout);
    for (const command& cmd : commands)
      if (!cmd.append_to(c)) io_failure(c, std::string(cmd.name()), errno);
    std::vector<reply_ptr> replies;
    replies.reserve(commands.size());
    for (const command& cmd : commands) {
      void* raw = nullptr;
      if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) io_failure(c, cmd.name(), errno);
      replies.emplace_back(static_cast<redisReply*>(raw));
    }
    return replies;
  }

  // One command; its reply (error replies included) as the only element.
  std::vector<reply_ptr> run_one(const command& cmd) { return run_pipeline(std::span(&cmd, 1)); }

  // One command; an error reply throws (the connection stays: Redis answered).
  reply_ptr run(const command& cmd, std::chrono::milliseconds extra_timeout = {}) {
    std::vector<reply_ptr> replies = run_pipeline(std::span(&cmd, 1), extra_timeout);
    reply_ptr r = std::move(replies[0]);
    if (is_error(r.get())) fail(std::string(cmd.name()), text_of(r.get()));
    return r;
  }

  static bool is_noscript(const redisReply* r) {
    return is_error(r) && text_of(r).starts_with("NOSCRIPT");
  }

  static command evalsha_command(const std::string& sha, const command& args) {
    command c;
    c.add("EVALSHA").add(sha);
    c.append_args(args);
    return c;
  }

  static command eval_command(std::string_view script, const command& args) {
    command c;
    c.add("EVAL").add(script);
    c.append_args(args);
    return c;
  }

  // EVALSHA, or EVAL if Redis lost the script (SCRIPT FLUSH since this connection loaded it).
  reply_ptr eval(std::string_view script, const std::string& sha, const command& args,
                 const std::string& what) {
    connection();  // loads the scripts: `sha` is set from here on
    std::vector<reply_ptr> replies = run_one(evalsha_command(sha, args));
    reply_ptr r = std::move(replies[0]);
    if (is_noscript(r.get())) r = std::move(run_one(eval_command(script, args))[0]);
    if (is_error(r.get())) fail(what, text_of(r.get()));
    return r;
  }

  append_result append_outcome(const std::string& stream, const entry& e,
                               const redisReply* r) const {
    const std::string what =
        "append of the entry at offset " + std::to_string(e.first_offset) + " to " + stream;
    if (is_error(r)) fail(what, text_of(r));
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && is_string(r->element[0])) {
      const std::string_view word = text_of(r->element[0]);
      if (word == "APPENDED" && r->elements == 1) return append_result::appended;
      if (word == "DUPLICATE" && r->elements == 1) return append_result::duplicate;
      if (word == "FENCED" && r->elements == 2) return append_result::fenced;
    }
    unexpected(what, r);
  }

  // The first (XRANGE - +) or last (XREVRANGE + -) entry of the stream.
  std::optional<entry> edge(std::string_view key, std::string_view replid, std::string_view verb,
                            std::string_view from, std::string_view to) {
    validate_name(key);
    check_replid(replid);
    const std::string stream = stream_key(key, replid);
    const reply_ptr r =
        run(command().add(verb).add(stream).add(from).add(to).add("COUNT").add("1"));
    if (r->type != REDIS_REPLY_ARRAY || r->elements > 1)
      unexpected(std::string(verb) + " " + stream, r.get());
    if (r->elements == 0) return std::nullopt;
    return parse_entry(stream, r->element[0]);
  }

  // [id, [field, value, ...]] of a stream entry, strictly: ID <offset>-1, fields e (end offset,
  // above the first) and r (records); other fields are ignored (a later version may add some).
  entry parse_entry(const std::string& stream, const redisReply* r) const {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_string(r->element[0]))
      fail("reading " + stream, "an entry that is not [id, fields]");
    const std::string_view id = text_of(r->element[0]);
    const std::size_t dash = id.find('-');
    const auto first = parse_decimal<std::uint64_t>(id.substr(0, dash));
    if (dash == std::string_view::npos || !first || id.substr(dash + 1) != "1")
      bad_entry(stream, id, "the ID is not <offset>-1");
    const redisReply* list = r->element[1];
    if (list->type != REDIS_REPLY_ARRAY || list->elements % 2 != 0)
      bad_entry(stream, id, "the fields are not a list of name, value pairs");
    entry out;
    out.first_offset = *first;
    bool has_end = false;
    bool has_records = false;
    for (std::size_t i = 0; i < list->elements; i += 2) {
      const redisReply* name = list->element[i];
      const redisReply* value = list->element[i + 1];
      if (!is_string(name) || !is_string(value))
        bad_entry(stream, id, "a field name or value is not a string");
      const std::string_view n = text_of(name);
      if (n == "e") {
        const auto end = parse_decimal<std::uint64_t>(text_of(value));
        if (!end)
          bad_entry(stream, id,
                    "field e '" + printable(text_of(value)) + "' is not a decimal offset");
        if (has_end) bad_entry(stream, id, "field e appears twice");
        out.end_offset = *end;
        has_end = true;
      } else if (n == "r") {
        if (has_records) bad_entry(stream, id, "field r appears twice");
        out.records.assign(value->str, value->len);
        has_records = true;
      }
    }
    if (!has_end) bad_entry(stream, id, "no field e (end offset)");
    if (!has_records) bad_entry(stream, id, "no field r (records)");
    if (out.end_offset <= out.first_offset)
      bad_entry(stream, id,
                "end offset " + std::to_string(out.end_offset) + " is not above the first offset");
    return out;
  }

  redis_url url_;
  std::string endpoint_;
  redis_options options_;
  context_ptr context_;
  std::chrono::milliseconds timeout_{};  // the socket timeouts now set on context_
  std::string append_sha_;
  std::string set_meta_sha_;
};

}  // namespace

std::unique_ptr<engine> connect_redis(std::string_view url, const redis_options& options) {
  return std::make_unique<redis_engine>(parse_redis_url(url), options);
}

}  // namespace shmlog::remote
