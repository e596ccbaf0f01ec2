// shmlog promote: a mirror becomes the source of truth of its key after a failover (PSYNC2).
#include <unistd.h>

#include "../daemon_support.h"
#include "engine.h"
#include "link.h"
#include "redis_engine.h"
#include "shmlog/error.h"
#include "shmlog/remote.h"
#include "shmlog/writer.h"

namespace shmlog {

// Redis first, then the local log: the old shipper is fenced as early as possible, and a promote
// that dies between the two steps is finished by the next one (the key then names a history
// whose replid2 and second offset are exactly the local log's).
promote_result promote(std::string_view log, const promote_options& options) {
  using namespace remote;
  const std::string key = options.key.empty() ? std::string(log) : options.key;
  validate_name(key);
  const std::unique_ptr<engine> redis = connect_redis(options.redis_url);
  writer w = [&] {
    try {
      return writer::open(log);
    } catch (const error& e) {
      if (e.code() != errc::writer_exists) throw;
      throw error(errc::writer_exists,
                  std::string(e.what()) + "; stop the mirror (or producer) before promoting");
    }
  }();
  const fields meta = redis->meta(key);
  const std::optional<history_state> keyed = meta_history(meta, key);
  if (const auto cap = meta_number(meta, key, field::capacity); cap && *cap != w.capacity())
    throw error(errc::invalid_argument, "key '" + key + "' at " + redis->endpoint() +
                                            " holds a log of capacity " + std::to_string(*cap) +
                                            "; log '" + std::string(log) + "' has " +
                                            std::to_string(w.capacity()) + ": not its mirror");
  const history_state mine = w.history();
  const std::uint64_t at = w.master_offset();
  promote_result result;
  result.offset = at;
  if (keyed && meta.contains(field::promoted_by) && keyed->replid2 == mine.replid &&
      keyed->second_repl_offset == at) {
    w.follow_history(*keyed, at);  // an earlier promote published it, then stopped
    result.history = *keyed;
    result.resumed = true;
    return result;
  }
  if (keyed && keyed->replid == mine.replid && meta.contains(field::promoted_by) &&
      meta.at(field::source) == host_and_log(log))
    throw error(errc::invalid_argument, "log '" + std::string(log) +
                                            "' is already the source of key '" + key +
                                            "' (history " + mine.replid.str() + ")");
  history_state promoted;
  promoted.replid = history_id::random();
  promoted.replid2 = mine.replid;
  promoted.second_repl_offset = at;
  fields f;
  put_history(f, promoted);
  f[field::capacity] = std::to_string(w.capacity());
  f[field::source] = host_and_log(log);
  f[field::shipped] = std::to_string(at);
  f[field::epoch] = std::to_string(meta_number(meta, key, field::epoch).value_or(0) + 1);
  f[field::promoted_by] =
      host_and_log(log) + " pid " + std::to_string(::getpid()) + " at " + detail::utc_now();
  const std::string guard = keyed ? keyed->replid.str() : std::string();
  if (!redis->set_meta_if(key, field::replid, guard, f))
    throw error(errc::system_error, "key '" + key + "' at " + redis->endpoint() +
                                        " changed its history while promoting; try again");
  w.follow_history(promoted, at);
  result.history = promoted;
  return result;
}

}  // namespace shmlog
