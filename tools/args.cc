#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "cli.h"
#include "shmlog/replica.h"

namespace shmlog::cli {

namespace {

bool all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string quote_text(std::string_view text) {
  std::string s;
  s.append(1, '\'').append(one_line(text)).append(1, '\'');
  return s;
}

[[noreturn]] void bad_value(std::string_view option, std::string_view text, std::string_view why) {
  throw usage_error("bad --" + std::string(option) + " " + quote_text(text) + ": " +
                    std::string(why));
}

const option_spec* find_spec(std::span<const option_spec> specs, std::string_view name) {
  for (const option_spec& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

const option_spec* find_short(std::span<const option_spec> specs, char c) {
  for (const option_spec& s : specs)
    if (s.short_name == c) return &s;
  return nullptr;
}

[[noreturn]] void unknown_option(std::span<const option_spec> specs, const std::string& given) {
  std::vector<std::string_view> names;
  for (const option_spec& s : specs)
    names.push_back(s.name);
  std::string_view bare = given;
  while (!bare.empty() && bare.front() == '-')
    bare.remove_prefix(1);
  const std::optional<std::string> guess = did_you_mean(bare, names);
  throw usage_error("unknown option " + quote_text(given) +
                    (guess ? " (did you mean '--" + *guess + "'?)" : ""));
}

parsed_args parse_with(std::span<const std::string> args, std::span<const option_spec> specs) {
  parsed_args out;
  bool options_ended = false;
  const auto take_value = [&](const option_spec& spec, std::size_t& i, const std::string& shown) {
    if (i + 1 >= args.size()) throw usage_error("option " + shown + " needs a value");
    out.set(std::string(spec.name), args[++i]);
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_ended || arg.size() < 2 || arg[0] != '-') {
      out.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      out.set("help", "");
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      // -f, -n 5, -n5: a short option, alone or with its value attached.
      const option_spec* spec = find_short(specs, arg[1]);
      if (spec == nullptr) unknown_option(specs, arg);
      if (!spec->takes_value) {
        if (arg.size() != 2) throw usage_error("unknown option " + quote_text(arg));
        out.set(std::string(spec->name), "");
      } else if (arg.size() > 2) {
        out.set(std::string(spec->name), arg.substr(2));
      } else {
        take_value(*spec, i, arg);
      }
      continue;
    }
    const std::size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const option_spec* spec = find_spec(specs, name);
    if (spec == nullptr) unknown_option(specs, arg.substr(0, eq));
    if (!spec->takes_value) {
      if (eq != std::string::npos) throw usage_error("option --" + name + " takes no value");
      out.set(name, "");
    } else if (eq != std::string::npos) {
      out.set(name, arg.substr(eq + 1));
    } else {
      take_value(*spec, i, "--" + name);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> parsed_args::value(std::string_view name) const {
  const auto it = values_.find(std::string(name));
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

void parsed_args::set(const std::string& name, std::string value) {
  if (!values_.emplace(name, std::move(value)).second)
    throw usage_error("option --" + name + " given more than once");
}

parsed_args parse_args(std::span<const std::string> args, const command_spec& command) {
  return parse_with(args, command.options);
}

const std::string& single_name(const parsed_args& args, const command_spec& command) {
  return single_name(args, usage_line(command));
}

const std::string& single_name(const parsed_args& args, std::string_view usage) {
  if (args.positionals.empty())
    throw usage_error("missing log NAME (usage: " + std::string(usage) + ")");
  if (args.positionals.size() > 1)
    throw usage_error("unexpected argument " + quote_text(args.positionals[1]) +
                      " (usage: " + std::string(usage) + ")");
  return args.positionals.front();
}

// A byte count, or a count of KiB, MiB, GiB or TiB: K, M, G, T, or KiB, MiB, GiB, TiB (either
// case). KB, MB, GB and TB are refused: to some they mean powers of 1000, to others of 1024, and
// a ring size off by 2.4% is not a power of two.
std::uint64_t parse_size(std::string_view option, std::string_view text) {
  const auto lower = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); };
  std::string_view digits = text;
  std::string unit;
  while (!digits.empty() && !(digits.back() >= '0' && digits.back() <= '9')) {
    unit.insert(unit.begin(), lower(digits.back()));
    digits.remove_suffix(1);
  }
  unsigned shift = 0;
  const std::string_view prefixes = "kmgt";
  const std::size_t p = unit.empty() ? std::string_view::npos : prefixes.find(unit[0]);
  if (p != std::string_view::npos && (unit.size() == 1 || unit.substr(1) == "ib")) {
    shift = 10 * static_cast<unsigned>(p + 1);
  } else if (p != std::string_view::npos && unit.substr(1) == "b") {
    bad_value(option, text,
              std::string("'") + static_cast<char>(unit[0] - 32) +
                  "B' could mean a power of 1000 or of 1024; shmlog sizes are powers of 1024: "
                  "write " +
                  std::string(digits) + static_cast<char>(unit[0] - 32) + " or " +
                  std::string(digits) + static_cast<char>(unit[0] - 32) +
                  "iB, or the number of bytes");
  } else if (!unit.empty()) {
    digits = {};  // not a unit: reported below
  }
  if (digits.empty() || !all_digits(digits))
    bad_value(option, text,
              "expected a byte count with an optional K, M, G or T suffix (or KiB, MiB, GiB, "
              "TiB: powers of 1024), e.g. 4096, 64K, 1MiB");
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc{} || (shift != 0 && n > (~std::uint64_t{0} >> shift)))
    bad_value(option, text, "the number is too large");
  return n << shift;
}

unsigned parse_mode(std::string_view option, std::string_view text) {
  const bool octal =
      !text.empty() && text.size() <= 4 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; });
  if (!octal) bad_value(option, text, "expected an octal permission mode such as 0600 or 640");
  unsigned mode = 0;
  std::from_chars(text.data(), text.data() + text.size(), mode, 8);
  // Set-id and sticky bits mean nothing for a shared-memory object.
  if (mode > 0777) bad_value(option, text, "only permission bits (at most 0777) are allowed");
  return mode;
}

std::uint64_t parse_unsigned(std::string_view option, std::string_view text, std::uint64_t min,
                             std::uint64_t max) {
  if (!all_digits(text)) bad_value(option, text, "expected a whole number");
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{}) bad_value(option, text, "the number is too large");
  if (n < min || n > max)
    bad_value(option, text,
              max == ~std::uint64_t{0}
                  ? "must be at least " + std::to_string(min)
                  : "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return n;
}

double parse_seconds(std::string_view option, std::string_view text, double max) {
  const std::size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction =
      dot == std::string_view::npos ? std::string_view("0") : text.substr(dot + 1);
  if (!all_digits(whole) || !all_digits(fraction))
    bad_value(option, text, "expected a number of seconds, e.g. 5 or 0.5");
  double s = 0;
  std::from_chars(text.data(), text.data() + text.size(), s);
  if (!(s > 0) || s > max)
    bad_value(option, text, "must be more than 0 and at most " + std::to_string(std::lround(max)));
  return s;
}

std::chrono::milliseconds wait_for_log_option(const parsed_args& args) {
  const auto text = args.value("wait-for-log");
  if (!text) return std::chrono::milliseconds::zero();
  const double s = parse_seconds("wait-for-log", *text, 86'400);
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(s * 1000)));
}

std::string human_bytes(double bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t u = 0;
  while (bytes >= 1023.95 && u + 1 < std::size(units)) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string human_count(double count) {
  char buf[32];
  if (count < 999.5) {
    std::snprintf(buf, sizeof buf, "%.0f", count);
  } else if (count < 999'950) {
    std::snprintf(buf, sizeof buf, "%.1fk", count / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.2fM", count / 1e6);
  }
  return buf;
}

std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string octal_mode(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if none starts there.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  const std::size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 0;
  if (n == 0 || b0 > 0xF4 || i + n > s.size()) return 0;
  static constexpr std::uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
  const std::uint32_t min = min_for_length[n];
  std::uint32_t cp = b0 & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
  return cp < min || cp > 0x10FFFF || surrogate ? 0 : n;
}

// A JSON string literal. Bytes that are not valid UTF-8 (a label cut at 15 bytes may end in
// half a character) become U+FFFD, so the output is always valid JSON.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      const std::size_t n = utf8_sequence(s, i);
      out += n ? std::string(s.substr(i, n)) : "\\ufffd";
      i += n ? n : 1;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
    ++i;
  }
  return out + "\"";
}

std::string iso_utc_time(std::uint64_t realtime_ns) {
  if (realtime_ns == 0) return "";
  const auto seconds = static_cast<time_t>(realtime_ns / 1'000'000'000);
  struct tm tm {};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<unsigned>(realtime_ns / 1'000'000 % 1000));
  return buf;
}

namespace {
volatile sig_atomic_t stop_flag = 0;
// Lock-free atomics are safe in a signal handler.
std::atomic<bool> stop_signalled{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_stop_signal(int) {
  stop_flag = 1;
  stop_signalled.store(true, std::memory_order_relaxed);
}
}  // namespace

void catch_stop_signals(bool hangup_too) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (!hangup_too) return;
  // Unless SIGHUP was ignored at start (nohup): whoever started us asked to outlive a hang-up.
  struct sigaction hup {};
  if (sigaction(SIGHUP, nullptr, &hup) == 0 && hup.sa_handler == SIG_IGN) return;
  sigaction(SIGHUP, &sa, nullptr);
}

bool stop_requested() noexcept {
  return stop_flag != 0;
}

const std::atomic<bool>& stop_signal_flag() noexcept {
  return stop_signalled;
}

}  // namespace shmlog::cli
