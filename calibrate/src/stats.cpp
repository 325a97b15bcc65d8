#include "ppsim/calibrate/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace ppsim::cal {

double median(std::vector<double> v) {
  if (v.empty()) throw std::invalid_argument("median of an empty sample");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) throw std::invalid_argument("percentile of an empty sample");
  if (!(q >= 0.0 && q <= 100.0)) throw std::invalid_argument("percentile outside [0,100]");
  std::sort(v.begin(), v.end());
  const double rank = q / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

double mean(const std::vector<double>& v) {
  if (v.empty()) throw std::invalid_argument("mean of an empty sample");
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

Summary summarize(const std::vector<double>& samples) {
  Summary s;
  s.median = median(samples);
  s.p95 = percentile(samples, 95.0);
  s.stddev = stddev(samples);
  s.min = *std::min_element(samples.begin(), samples.end());
  s.iterations = static_cast<int>(samples.size());
  return s;
}

LinkFit fit_latency_bandwidth(const std::vector<double>& bytes, const std::vector<double>& ms) {
  if (bytes.size() != ms.size() || bytes.size() < 2)
    throw std::invalid_argument("latency/bandwidth fit needs at least two (bytes, time) points");
  // Weighted least squares with weights 1/t^2: minimise sum(((a + b x - t)/t)^2).
  double s00 = 0, s01 = 0, s11 = 0, r0 = 0, r1 = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (!(ms[i] > 0)) throw std::invalid_argument("latency/bandwidth fit needs positive times");
    const double w = 1.0 / (ms[i] * ms[i]);
    s00 += w;
    s01 += w * bytes[i];
    s11 += w * bytes[i] * bytes[i];
    r0 += w * ms[i];
    r1 += w * bytes[i] * ms[i];
  }
  const double det = s00 * s11 - s01 * s01;
  if (std::abs(det) <= 1e-300 * std::max(1.0, s00 * s11))
    throw std::invalid_argument("latency/bandwidth fit needs at least two distinct sizes");
  double a = (r0 * s11 - r1 * s01) / det;
  double b = (s00 * r1 - s01 * r0) / det;
  if (a < 0) {  // refit slope through the origin
    a = 0;
    b = r1 / s11;
  }
  LinkFit fit;
  fit.latency_us = a * 1e3;
  fit.bandwidth_GBps = b > 0 ? 1.0 / (b * 1e-3) / 1e9 : 0.0;  // b in ms per byte
  return fit;
}

}  // namespace ppsim::cal
