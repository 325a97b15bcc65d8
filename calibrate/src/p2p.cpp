#include "ppsim/calibrate/p2p.h"

#include "ppsim/calibrate/profile.h"
#include "ppsim/calibrate/stats.h"

#include <algorithm>
#include <stdexcept>

namespace ppsim::cal {

std::vector<std::int64_t> p2p_sizes(const P2POptions& o) {
  if (o.min_bytes <= 0 || o.max_bytes < o.min_bytes)
    throw std::invalid_argument("p2p sizes: need 0 < min <= max");
  std::vector<std::int64_t> sizes;
  for (std::int64_t s = o.min_bytes; s < o.max_bytes; s *= 4) sizes.push_back(s);
  sizes.push_back(o.max_bytes);
  return sizes;
}

nlohmann::json measure_link_curve(const std::string& kind, int src, int dst, const P2POptions& o,
                                  const std::function<double(std::int64_t)>& transfer,
                                  const std::function<void(const std::string&)>& progress) {
  nlohmann::json points = nlohmann::json::array();
  std::vector<double> xs, ts;
  for (std::int64_t bytes : p2p_sizes(o)) {
    double warm = 0;
    for (int i = 0; i < o.method.warmup; ++i) warm += transfer(bytes);
    const int n = iterations_for_target(o.method.warmup > 0 ? warm / o.method.warmup : transfer(bytes), o.method);
    std::vector<double> samples;
    for (int i = 0; i < n; ++i) samples.push_back(transfer(bytes));
    const Summary s = summarize(samples);
    const double gbps = s.median > 0 ? static_cast<double>(bytes) / (s.median * 1e-3) / 1e9 : 0.0;
    points.push_back({{"bytes", bytes}, {"size", format_size(bytes)}, {"median_ms", s.median},
                      {"p95_ms", s.p95}, {"stddev_ms", s.stddev}, {"iterations", s.iterations},
                      {"GBps", gbps}});
    xs.push_back(static_cast<double>(bytes));
    ts.push_back(s.median);
    if (progress) progress(kind + " " + format_size(bytes) + ": " + std::to_string(s.median) + " ms, " +
                           std::to_string(gbps) + " GB/s");
  }
  const nlohmann::json fit =
      xs.size() >= 2 ? link_fit_json(xs, ts) : nlohmann::json{{"latency_us", 0.0}, {"bandwidth_GBps", 0.0}};
  return {{"kind", kind}, {"src", src}, {"dst", dst}, {"units", {{"bandwidth", "GB/s = 1e9 B/s"}, {"size", "powers of 1024"}}},
          {"points", points}, {"fit", fit}};
}

nlohmann::json link_fit_json(const std::vector<double>& bytes, const std::vector<double>& ms) {
  const LinkFit f = fit_latency_bandwidth(bytes, ms);
  const LinkCurveFit curve = fit_link_segments(bytes, ms);
  nlohmann::json segs = nlohmann::json::array();
  for (const LinkSegment& s : curve.segments)
    segs.push_back({{"from_bytes", s.from_bytes}, {"latency_us", s.latency_us}, {"bandwidth_GBps", s.bandwidth_GBps}});
  nlohmann::json fit = {{"latency_us", f.latency_us}, {"bandwidth_GBps", f.bandwidth_GBps}};
  try {
    link_segments_from_json(segs, "fit.segments");  // what ppsim and validate will accept
    fit["segments"] = segs;
    fit["worst_error"] = curve.worst_error;
    fit["worst_error_bytes"] = curve.worst_bytes;
  } catch (const std::invalid_argument& e) {
    fit["segments_refused"] = e.what();
  }
  return fit;
}

std::int64_t parse_size(const std::string& s) {
  std::size_t pos = 0;
  const double v = std::stod(s, &pos);
  std::string unit = s.substr(pos);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KiB" || unit == "K") mult = 1024.0;
  else if (unit == "MiB" || unit == "M") mult = 1024.0 * 1024;
  else if (unit == "GiB" || unit == "G") mult = 1024.0 * 1024 * 1024;
  else throw std::invalid_argument("size '" + s + "': unit must be B, KiB, MiB or GiB");
  if (!(v > 0)) throw std::invalid_argument("size '" + s + "' must be positive");
  if (!(v * mult < 0x1p62)) throw std::invalid_argument("size '" + s + "' is too large");  // int64 conversion
  return static_cast<std::int64_t>(v * mult);
}

std::string format_size(std::int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (u < 3 && b >= 1024 && b % 1024 == 0) {
    b /= 1024;
    ++u;
  }
  return std::to_string(b) + " " + units[u];
}

}  // namespace ppsim::cal
