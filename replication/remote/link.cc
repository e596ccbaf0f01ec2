#include "link.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <thread>

#include "shmlog/error.h"
#include "shmlog/replica_daemon.h"

namespace shmlog {
namespace remote {
namespace {

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::uint64_t ms_since(std::chrono::steady_clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
          .count());
}

}  // namespace

std::optional<std::uint64_t> meta_number(const fields& meta, std::string_view key,
                                         const char* name) {
  const auto it = meta.find(name);
  if (it == meta.end() || it->second.empty()) return std::nullopt;
  const auto value = parse_u64(it->second);
  if (!value)
    throw error(errc::system_error, "the meta of key '" + std::string(key) + "' has field " + name +
                                        " = '" + detail::newlines_to_spaces(it->second) +
                                        "', not a decimal number");
  return value;
}

std::optional<history_state> meta_history(const fields& meta, std::string_view key) {
  const auto id = [&](const char* name) -> std::optional<history_id> {
    const auto it = meta.find(name);
    if (it == meta.end() || it->second.empty()) return std::nullopt;
    const auto parsed = history_id::parse(it->second);
    if (!parsed)
      throw error(errc::system_error, "the meta of key '" + std::string(key) + "' has field " +
                                          name + " = '" + detail::newlines_to_spaces(it->second) +
                                          "', not a history id");
    return parsed;
  };
  const auto replid = id(field::replid);
  if (!replid) return std::nullopt;
  history_state h;
  h.replid = *replid;
  h.replid2 = id(field::replid2).value_or(history_id());
  h.second_repl_offset = meta_number(meta, key, field::second_offset).value_or(no_offset);
  if (h.replid2.is_none()) h.second_repl_offset = no_offset;
  return h;
}

void put_history(fields& out, const history_state& h) {
  out[field::replid] = h.replid.str();
  out[field::replid2] = h.replid2.str();
  out[field::second_offset] =
      h.replid2.is_none() ? std::string() : std::to_string(h.second_repl_offset);
}

bool retryable(errc code) noexcept {
  return code == errc::system_error || code == errc::bad_snapshot ||
         code == errc::snapshot_timeout || code == errc::interrupted_update;
}

void back_off::wait(const std::function<bool()>& stopping) {
  constexpr auto slice = std::chrono::milliseconds(10);
  for (auto waited = std::chrono::milliseconds(0); waited < delay_ && !stopping(); waited += slice)
    std::this_thread::sleep_for(slice);
  delay_ = std::min(delay_ * 2, std::chrono::milliseconds(2000));
}

std::string crc_hex(std::uint32_t crc) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", crc);
  return buf;
}

std::string host_and_log(std::string_view log) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host) + "/" + std::string(log);
}

void link_tracker::positions(std::uint64_t offset, std::uint64_t source_offset) {
  const std::lock_guard lock(mutex_);
  status_.offset = offset;
  status_.source_offset = source_offset;
  status_.lag_bytes = source_offset > offset ? source_offset - offset : 0;
  if (status_.lag_bytes == 0) caught_up_at_ = std::chrono::steady_clock::now();
}

void link_tracker::error(const std::string& message) {
  const std::lock_guard lock(mutex_);
  status_.last_error = detail::newlines_to_spaces(message);
  error_at_ = std::chrono::steady_clock::now();
}

void link_tracker::set_state(std::string_view state) {
  const std::lock_guard lock(mutex_);
  status_.state = state;
}

std::string link_tracker::describe() {
  const std::lock_guard lock(mutex_);
  link_status s = status_;
  s.lag_ms = s.lag_bytes == 0 ? 0 : ms_since(caught_up_at_);
  s.last_error_age_ms = error_at_ ? ms_since(*error_at_) : 0;
  std::string out = "shmlog-link 1\n";
  const auto line = [&](std::string_view name, const std::string& value) {
    out.append(name).append(" ").append(value).append("\n");
  };
  line("role", detail::newlines_to_spaces(s.role));
  line("endpoint", detail::newlines_to_spaces(s.endpoint));
  line("key", detail::newlines_to_spaces(s.key));
  line("state", detail::newlines_to_spaces(s.state));
  line("replid", s.replid.str());
  line("offset", std::to_string(s.offset));
  line("source_offset", std::to_string(s.source_offset));
  line("lag_bytes", std::to_string(s.lag_bytes));
  line("lag_ms", std::to_string(s.lag_ms));
  line("records", std::to_string(s.records));
  line("entries", std::to_string(s.entries));
  line("snapshots", std::to_string(s.snapshots));
  line("full_resyncs", std::to_string(s.full_resyncs));
  line("last_error", s.last_error);
  line("last_error_age_ms", std::to_string(s.last_error_age_ms));
  return out;
}

std::optional<link_status> parse_link(std::string_view text) {
  constexpr std::string_view magic = "shmlog-link 1\n";
  if (text.substr(0, magic.size()) != magic) return std::nullopt;
  text.remove_prefix(magic.size());
  link_status s;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    if (eol == std::string_view::npos) return std::nullopt;
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 1);
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    const std::string_view name = line.substr(0, space);
    const std::string_view value = line.substr(space + 1);
    const auto number = [&](std::uint64_t& into) {
      const auto v = parse_u64(value);
      if (v) into = *v;
    };
    if (name == "role")
      s.role = value;
    else if (name == "endpoint")
      s.endpoint = value;
    else if (name == "key")
      s.key = value;
    else if (name == "state")
      s.state = value;
    else if (name == "replid")
      s.replid = history_id::parse(value).value_or(history_id());
    else if (name == "offset")
      number(s.offset);
    else if (name == "source_offset")
      number(s.source_offset);
    else if (name == "lag_bytes")
      number(s.lag_bytes);
    else if (name == "lag_ms")
      number(s.lag_ms);
    else if (name == "records")
      number(s.records);
    else if (name == "entries")
      number(s.entries);
    else if (name == "snapshots")
      number(s.snapshots);
    else if (name == "full_resyncs")
      number(s.full_resyncs);
    else if (name == "last_error")
      s.last_error = value;
    else if (name == "last_error_age_ms")
      number(s.last_error_age_ms);
  }
  return s;
}

}  // namespace remote

std::optional<link_status> query_link(pid_t pid, std::string_view log) {
  const std::optional<query_answer> answer = query_replica(pid, log, remote::link_request);
  if (!answer) return std::nullopt;
  return remote::parse_link(answer->text);
}

}  // namespace shmlog
