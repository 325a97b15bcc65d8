#pragma once
/// @file stats.h
/// @brief Summary statistics of repeated timings and the latency + bandwidth fit of
/// transfer curves. Shared by every backend so CPU and CUDA numbers mean the same.
#include <cstdint>
#include <utility>
#include <vector>

#include "ppsim/engine/link_curve.h"

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

/// @brief A piecewise fit of a link curve and how far it is from the points.
struct LinkCurveFit {
  std::vector<LinkSegment> segments;
  double worst_error{0};       ///< max |fit - measured| / measured over the points
  std::int64_t worst_bytes{0};  ///< the size where it is
};
/// @brief Latency + bandwidth per size range: from the smallest size, each segment is
/// the relative least-squares line of the longest run of consecutive points it fits
/// within `tolerance` (a rising run of two is fitted exactly; a falling one, timer noise
/// among latency-bound sizes, gets the flat line of its mean); the next segment starts at
/// the run's last point. Points sorted by bytes, at least two, times positive.
LinkCurveFit fit_link_segments(const std::vector<double>& bytes, const std::vector<double>& ms,
                               double tolerance = 0.05);
/// @brief Worst relative error of the curve `segments` (link_curve_ms) against points.
std::pair<double, std::int64_t> link_curve_error(const std::vector<LinkSegment>& segments,
                                                 const std::vector<double>& bytes, const std::vector<double>& ms);

}  // namespace ppsim::cal
