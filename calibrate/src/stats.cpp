#include "ppsim/calibrate/stats.h"

#include <algorithm>
#include <tuple>
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

namespace {

/// The line ms = a + b * bytes minimising the squared relative error over points
/// [i, j] (weighted least squares, weights 1/t^2): the one fit both link models use.
/// `ok` is false when the sizes do not determine a slope.
struct RelativeLine {
  double a{0}, b{0};
  bool ok{false};
  double r1_over_s11{0};  ///< the slope of the line through the origin
  double mean{0};         ///< the flat line: weighted mean of the times
};
RelativeLine relative_line(const std::vector<double>& x, const std::vector<double>& t, std::size_t i, std::size_t j) {
  double s00 = 0, s01 = 0, s11 = 0, r0 = 0, r1 = 0;
  for (std::size_t k = i; k <= j; ++k) {
    if (!(t[k] > 0)) throw std::invalid_argument("latency/bandwidth fit needs positive times");
    const double w = 1.0 / (t[k] * t[k]);
    s00 += w;
    s01 += w * x[k];
    s11 += w * x[k] * x[k];
    r0 += w * t[k];
    r1 += w * x[k] * t[k];
  }
  RelativeLine l;
  const double det = s00 * s11 - s01 * s01;
  l.ok = std::abs(det) > 1e-300 * std::max(1.0, s00 * s11);
  l.r1_over_s11 = r1 / s11;
  l.mean = r0 / s00;
  if (l.ok) {
    l.a = (r0 * s11 - r1 * s01) / det;
    l.b = (s00 * r1 - s01 * r0) / det;
  }
  return l;
}

double bandwidth_GBps_of(double ms_per_byte) { return ms_per_byte > 0 ? 1.0 / (ms_per_byte * 1e-3) / 1e9 : 0.0; }

}  // namespace

LinkFit fit_latency_bandwidth(const std::vector<double>& bytes, const std::vector<double>& ms) {
  if (bytes.size() != ms.size() || bytes.size() < 2)
    throw std::invalid_argument("latency/bandwidth fit needs at least two (bytes, time) points");
  const RelativeLine l = relative_line(bytes, ms, 0, bytes.size() - 1);
  if (!l.ok) throw std::invalid_argument("latency/bandwidth fit needs at least two distinct sizes");
  double a = l.a, b = l.b;
  if (a < 0) {  // refit slope through the origin
    a = 0;
    b = l.r1_over_s11;
  }
  LinkFit fit;
  fit.latency_us = a * 1e3;
  fit.bandwidth_GBps = bandwidth_GBps_of(b);  // b in ms per byte
  return fit;
}

namespace {

/// The relative least-squares line of points [i, j], not clamped: a may be negative where
/// the per-byte time grows with size. A falling run (noise among latency-bound sizes)
/// gets the flat line b = 0 through their weighted mean.
LinkSegment segment_line(const std::vector<double>& x, const std::vector<double>& t, std::size_t i, std::size_t j) {
  RelativeLine l = relative_line(x, t, i, j);
  if (!l.ok || l.b <= 0) {
    l.a = l.mean;
    l.b = 0;
  }
  return {static_cast<std::int64_t>(x[i]), l.a * 1e3, bandwidth_GBps_of(l.b)};
}

double worst_in_run(const LinkSegment& seg, const std::vector<double>& x, const std::vector<double>& t, std::size_t i,
                    std::size_t j) {
  double worst = 0;
  for (std::size_t k = i; k <= j; ++k)
    worst = std::max(worst, std::abs(link_curve_ms({seg}, static_cast<std::int64_t>(x[k])) - t[k]) / t[k]);
  return worst;
}

}  // namespace

LinkCurveFit fit_link_segments(const std::vector<double>& bytes, const std::vector<double>& ms, double tolerance) {
  if (bytes.size() != ms.size() || bytes.size() < 2)
    throw std::invalid_argument("link curve fit needs at least two (bytes, time) points");
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    if (!(ms[k] > 0)) throw std::invalid_argument("link curve fit needs positive times");
    if (k > 0 && !(bytes[k] > bytes[k - 1])) throw std::invalid_argument("link curve fit needs increasing sizes");
  }
  LinkCurveFit fit;
  std::size_t i = 0;
  while (i + 1 < bytes.size()) {
    std::size_t j = i + 1;  // a run of two: its line passes through both points
    LinkSegment seg = segment_line(bytes, ms, i, j);
    while (j + 1 < bytes.size()) {
      const LinkSegment longer = segment_line(bytes, ms, i, j + 1);
      if (worst_in_run(longer, bytes, ms, i, j + 1) > tolerance) break;
      seg = longer;
      ++j;
    }
    fit.segments.push_back(seg);
    i = j;
  }
  std::tie(fit.worst_error, fit.worst_bytes) = link_curve_error(fit.segments, bytes, ms);
  return fit;
}

std::pair<double, std::int64_t> link_curve_error(const std::vector<LinkSegment>& segments,
                                                 const std::vector<double>& bytes, const std::vector<double>& ms) {
  double worst = 0;
  std::int64_t at = 0;
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    const auto b = static_cast<std::int64_t>(bytes[k]);
    const double e = std::abs(link_curve_ms(segments, b) - ms[k]) / ms[k];
    if (e > worst || k == 0) {
      worst = e;
      at = b;
    }
  }
  return {worst, at};
}

}  // namespace ppsim::cal
