// A log-linear latency histogram in the HdrHistogram manner, written for this harness: values
// below 64 have a bucket each; every power-of-two range [2^e, 2^(e+1)) above that is split into
// 64 equal sub-buckets. A bucket is then at most 1/64 of its lower bound wide, so a value read
// back (the bucket's midpoint) is within 0.8% of any value recorded into it. Values cover 1 ns to
// 2^37 ns (137 s); larger ones are counted in the top bucket, and the exact maximum is kept apart.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmlog::bench {

class histogram {
 public:
  static constexpr unsigned sub_bucket_bits = 6;
  static constexpr std::uint64_t sub_bucket_count = std::uint64_t{1} << sub_bucket_bits;
  static constexpr unsigned top_exponent = 37;  // values >= 2^37 go to the last bucket
  static constexpr std::size_t bucket_count =
      sub_bucket_count + (top_exponent - sub_bucket_bits) * sub_bucket_count;

  static std::size_t index_of(std::uint64_t value) noexcept;
  static std::uint64_t lowest_in(std::size_t index) noexcept;
  static std::uint64_t highest_in(std::size_t index) noexcept;

  void record(std::uint64_t value) noexcept {
    ++counts_[index_of(value)];
    ++count_;
    sum_ += value;
    if (value > max_) max_ = value;
    if (value < min_) min_ = value;
  }

  void merge(const histogram& other) noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return count_ ? max_ : 0; }
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  double mean() const noexcept { return count_ ? double(sum_) / double(count_) : 0.0; }
  // The value at percentile p (0 < p <= 100): the midpoint of the bucket holding the sample of
  // rank ceil(p/100 * count), clamped to [min, max]; p = 100 is the exact maximum.
  std::uint64_t percentile(double p) const noexcept;

  // "count sum min max index:n index:n ..." (only non-empty buckets); parse() is its inverse.
  std::string serialize() const;
  static std::optional<histogram> parse(std::string_view text);

 private:
  std::array<std::uint64_t, bucket_count> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = ~std::uint64_t{0};
};

// The percentile spectrum of a latency case, HdrHistogram style: p = 100 (1 - 2^-k) for
// k = 0..17 (0, 50, 75, 87.5, ... 99.9992), plus 99, 99.9, 99.99, 99.999 and 100, sorted by p,
// each with its value in ns. p = 0 is the exact minimum and p = 100 the exact maximum; the
// others are histogram::percentile. Log-spaced, so a plot against 1 / (1 - p) on a log axis
// spaces the tail evenly.
std::vector<std::pair<double, std::uint64_t>> percentile_spectrum(const histogram& h);
// [[p, ns], ...] as JSON.
std::string spectrum_json(const std::vector<std::pair<double, std::uint64_t>>& spectrum);

// Checks the histogram against data whose percentiles are known; prints what fails on stderr
// and returns the number of failures (0: all good).
int histogram_selftest();

}  // namespace shmlog::bench
