#pragma once
/// @file stats.h
/// @brief Summary statistics of repeated timings and the latency + bandwidth fit of
/// transfer curves. Shared by every backend so CPU and CUDA numbers mean the same.
#include <cstdint>
#include <vector>

namespace ppsim::cal {

/// @brief Median of `v` (mean of the two middle values for even sizes). Throws on empty.
double median(std::vector<double> v);
/// @brief Percentile `q` in [0,100] with linear interpolation between closest ranks
/// (numpy's default): percentile({1,2,3,4}, 95) == 3.85.
double percentile(std::vector<double> v, double q);
/// @brief Arithmetic mean.
double mean(const std::vector<double>& v);
/// @brief Sample standard deviation (n-1 denominator); 0 for fewer than two values.
double stddev(const std::vector<double>& v);

/// @brief What a profile keeps of one timed quantity.
struct Summary {
  double median{0};
  double p95{0};
  double stddev{0};
  double min{0};
  int iterations{0};
};
/// @brief Median, p95, stddev and min of `samples`. Throws on empty.
Summary summarize(const std::vector<double>& samples);

/// @brief A transfer model `time = latency + bytes / bandwidth`.
struct LinkFit {
  double latency_us{0};
  double bandwidth_GBps{0};  ///< 10^9 bytes per second
};
/// @brief Fits `ms = a + bytes * b` minimising squared *relative* error, so the small
/// sizes (latency) and the large ones (bandwidth) both count. Latency is clamped at 0.
/// Needs at least two distinct sizes.
LinkFit fit_latency_bandwidth(const std::vector<double>& bytes, const std::vector<double>& ms);

}  // namespace ppsim::cal
