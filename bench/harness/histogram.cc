#include "histogram.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

namespace shmlog::bench {

std::size_t histogram::index_of(std::uint64_t value) noexcept {
  if (value < sub_bucket_count) return static_cast<std::size_t>(value);
  const unsigned exponent = 63u - static_cast<unsigned>(__builtin_clzll(value));
  if (exponent >= top_exponent) return bucket_count - 1;
  // Within [2^e, 2^(e+1)) the top sub_bucket_bits + 1 bits of the value, less the leading one,
  // say which of the 64 equal slices it falls in.
  const unsigned shift = exponent - sub_bucket_bits;
  const std::uint64_t sub = (value >> shift) - sub_bucket_count;
  return static_cast<std::size_t>(sub_bucket_count + shift * sub_bucket_count + sub);
}

std::uint64_t histogram::lowest_in(std::size_t index) noexcept {
  if (index < sub_bucket_count) return index;
  const std::uint64_t shift = (index - sub_bucket_count) / sub_bucket_count;
  const std::uint64_t sub = (index - sub_bucket_count) % sub_bucket_count;
  return (sub_bucket_count + sub) << shift;
}

std::uint64_t histogram::highest_in(std::size_t index) noexcept {
  if (index < sub_bucket_count) return index;
  const std::uint64_t shift = (index - sub_bucket_count) / sub_bucket_count;
  return lowest_in(index) + (std::uint64_t{1} << shift) - 1;
}

void histogram::merge(const histogram& other) noexcept {
  for (std::size_t i = 0; i < bucket_count; ++i)
    counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
  min_ = std::min(min_, other.min_);
}

std::uint64_t histogram::percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  if (p >= 100.0) return max_;
  const double wanted = std::ceil(p / 100.0 * double(count_));
  const std::uint64_t rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(wanted));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      // The top bucket also holds everything beyond the range: its midpoint means nothing
      // there, so fall back to the exact maximum.
      if (i == bucket_count - 1) return max_;
      const std::uint64_t mid = lowest_in(i) + (highest_in(i) - lowest_in(i)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

std::string histogram::serialize() const {
  std::string s = std::to_string(count_) + " " + std::to_string(sum_) + " " +
                  std::to_string(min()) + " " + std::to_string(max());
  for (std::size_t i = 0; i < bucket_count; ++i)
    if (counts_[i] != 0) {
      s += ' ';
      s += std::to_string(i);
      s += ':';
      s += std::to_string(counts_[i]);
    }
  return s;
}

std::optional<histogram> histogram::parse(std::string_view text) {
  std::istringstream in{std::string(text)};
  histogram h;
  std::uint64_t mn = 0;
  if (!(in >> h.count_ >> h.sum_ >> mn >> h.max_)) return std::nullopt;
  h.min_ = h.count_ ? mn : ~std::uint64_t{0};
  std::uint64_t total = 0;
  for (std::string pair; in >> pair;) {
    const auto colon = pair.find(':');
    if (colon == std::string::npos) return std::nullopt;
    char* end = nullptr;
    const unsigned long long index = std::strtoull(pair.c_str(), &end, 10);
    const unsigned long long n = std::strtoull(pair.c_str() + colon + 1, nullptr, 10);
    if (end != pair.c_str() + colon || index >= bucket_count) return std::nullopt;
    h.counts_[index] += n;
    total += n;
  }
  if (total != h.count_) return std::nullopt;
  return h;
}

std::vector<std::pair<double, std::uint64_t>> percentile_spectrum(const histogram& h) {
  std::vector<double> ps;
  // 100 / 2^k is exact in binary, so every p_k is exact too (no near-duplicates from rounding).
  for (int k = 0; k <= 17; ++k)
    ps.push_back(100.0 - 100.0 / double(std::uint64_t{1} << k));
  for (const double p : {99.0, 99.9, 99.99, 99.999, 100.0})
    ps.push_back(p);
  std::sort(ps.begin(), ps.end());
  std::vector<std::pair<double, std::uint64_t>> out;
  for (const double p : ps)
    out.emplace_back(p, p <= 0 ? h.min() : h.percentile(p));
  return out;
}

std::string spectrum_json(const std::vector<std::pair<double, std::uint64_t>>& spectrum) {
  std::string s = "[";
  for (const auto& [p, ns] : spectrum) {
    if (s.size() > 1) s += ", ";
    // 17 significant digits: 99.999237060546875 (k = 17) is written exactly.
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", p);
    s += '[';
    s += buf;
    s += ", ";
    s += std::to_string(ns);
    s += ']';
  }
  return s + "]";
}

// ---------------------------------------------------------------------------------------------

namespace {

struct checker {
  int failures = 0;
  void expect(bool ok, const std::string& what) {
    if (!ok) {
      ++failures;
      std::fprintf(stderr, "histogram selftest: FAILED: %s\n", what.c_str());
    }
  }
  // |got - want| <= want * rel (or exact when rel is 0)
  void near(std::uint64_t got, std::uint64_t want, double rel, const std::string& what) {
    const double err = std::fabs(double(got) - double(want));
    expect(err <= double(want) * rel,
           what + ": got " + std::to_string(got) + ", want " + std::to_string(want));
  }
};

}  // namespace

int histogram_selftest() {
  checker c;
  constexpr double bound = 1.0 / 64;  // the documented worst case: half a bucket is 1/128

  // Bucket geometry: contiguous, non-overlapping, relative width <= 1/64.
  for (std::size_t i = 0; i + 1 < histogram::bucket_count; ++i) {
    c.expect(histogram::highest_in(i) + 1 == histogram::lowest_in(i + 1),
             "buckets " + std::to_string(i) + " and " + std::to_string(i + 1) + " are contiguous");
    c.expect(histogram::index_of(histogram::lowest_in(i)) == i &&
                 histogram::index_of(histogram::highest_in(i)) == i,
             "bucket " + std::to_string(i) + " maps its own bounds to itself");
    const double width = double(histogram::highest_in(i) - histogram::lowest_in(i) + 1);
    c.expect(i < histogram::sub_bucket_count || width / double(histogram::lowest_in(i)) <= bound,
             "bucket " + std::to_string(i) + " is narrow enough");
  }
  c.expect(histogram::highest_in(histogram::bucket_count - 2) >= 100'000'000'000u,
           "the buckets below the top one reach 100 s");

  // Small values are exact.
  {
    histogram h;
    for (std::uint64_t v = 1; v <= 63; ++v)
      h.record(v);
    c.expect(h.percentile(50) == 32, "p50 of 1..63 is 32");
    c.expect(h.percentile(100) == 63 && h.min() == 1, "min and max of 1..63");
  }
  // Uniform 1..1,000,000: p-th percentile is p% of a million, within the bucket error.
  {
    histogram h;
    for (std::uint64_t v = 1; v <= 1'000'000; ++v)
      h.record(v);
    c.expect(h.count() == 1'000'000, "count of the uniform data");
    c.near(h.percentile(50), 500'000, bound, "uniform p50");
    c.near(h.percentile(90), 900'000, bound, "uniform p90");
    c.near(h.percentile(99), 990'000, bound, "uniform p99");
    c.near(h.percentile(99.9), 999'000, bound, "uniform p99.9");
    c.near(h.percentile(99.99), 999'900, bound, "uniform p99.99");
    c.expect(h.percentile(100) == 1'000'000, "uniform max is exact");
    c.near(static_cast<std::uint64_t>(h.mean()), 500'000, 0.0, "uniform mean is exact");
  }
  // A bimodal tail: 99% at 100 ns, 1% at 1 ms. p99 is still 100 ns; p99.9 is 1 ms.
  {
    histogram h;
    for (int i = 0; i < 99'000; ++i)
      h.record(100);
    for (int i = 0; i < 1'000; ++i)
      h.record(1'000'000);
    c.near(h.percentile(50), 100, bound, "bimodal p50");
    c.near(h.percentile(99), 100, bound, "bimodal p99");
    c.near(h.percentile(99.01), 1'000'000, bound, "bimodal p99.01");
    c.near(h.percentile(99.9), 1'000'000, bound, "bimodal p99.9");
  }
  // Any single value reads back within the bound, across the whole range (geometric sweep).
  for (double v = 1; v < 1.3e11; v *= 1.037) {
    histogram h;
    const auto value = static_cast<std::uint64_t>(v);
    h.record(value);
    h.record(value + 1);  // two samples, so p50 comes from the bucket, not the clamp to max
    c.near(h.percentile(50), value, bound, "single value " + std::to_string(value));
  }
  // Beyond the range: counted, max exact.
  {
    histogram h;
    h.record(500'000'000'000u);
    c.expect(h.count() == 1 && h.max() == 500'000'000'000u, "a 500 s value is counted, max exact");
  }
  // Merge and the text form used between processes.
  {
    histogram a, b;
    for (std::uint64_t v = 1; v <= 5000; ++v)
      (v % 2 ? a : b).record(v * 37);
    histogram m = a;
    m.merge(b);
    const auto parsed = histogram::parse(m.serialize());
    c.expect(parsed.has_value(), "serialized histogram parses");
    if (parsed) {
      for (double p : {1.0, 50.0, 90.0, 99.0, 99.9, 100.0})
        c.expect(parsed->percentile(p) == m.percentile(p),
                 "round trip keeps p" + std::to_string(p));
      c.expect(parsed->count() == 5000 && parsed->min() == 37 && parsed->max() == 185'000,
               "round trip keeps count, min and max");
    }
    c.near(m.percentile(50), 2500 * 37, bound, "merged p50");
    c.expect(!histogram::parse("3 0 1 2 5:1").has_value(), "a count that does not add up fails");
  }
  // Empty.
  {
    histogram h;
    c.expect(h.percentile(99) == 0 && h.max() == 0 && h.count() == 0, "empty histogram");
  }
  // The spectrum: 18 log-spaced points plus 99, 99.9, 99.99, 99.999 and 100, strictly
  // increasing in p and (monotone data) non-decreasing in value, exact at both ends.
  {
    histogram h;
    for (std::uint64_t v = 1; v <= 1'000'000; ++v)
      h.record(v);
    const auto s = percentile_spectrum(h);
    c.expect(s.size() == 23, "the spectrum has 23 points, got " + std::to_string(s.size()));
    bool sorted = true;
    for (std::size_t i = 1; i < s.size(); ++i)
      sorted = sorted && s[i - 1].first < s[i].first && s[i - 1].second <= s[i].second;
    c.expect(sorted, "the spectrum is sorted by p and by value");
    c.expect(s.front().first == 0 && s.front().second == 1, "spectrum p0 is the exact minimum");
    c.expect(s.back().first == 100 && s.back().second == 1'000'000,
             "spectrum p100 is the exact maximum");
    c.expect(s[1].first == 50 && s[2].first == 75 && s[3].first == 87.5,
             "spectrum starts 0, 50, 75, 87.5");
    for (const auto& [p, v] : s)
      if (p > 0 && p < 100)
        c.near(v, static_cast<std::uint64_t>(std::ceil(p * 10'000)), bound,
               "uniform spectrum p" + std::to_string(p));
    c.expect(
        spectrum_json({{0, 5}, {99.999237060546875, 7}}) == "[[0, 5], [99.999237060546875, 7]]",
        "spectrum JSON writes p exactly");
  }
  return c.failures;
}

}  // namespace shmlog::bench
