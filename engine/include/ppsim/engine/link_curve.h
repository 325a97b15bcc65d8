#pragma once
/// @file link_curve.h
/// @brief A measured link curve as latency + bandwidth per size range: the one formula
/// the simulator's links (UniformLinkModel, NetLink in model/topology.h) and ppsim-calibrate's fit and `validate`
/// both use. Header-only and standard-library-only, so the standalone calibrate build
/// (device machines without Boost) includes it too.
#include <algorithm>
#include <cstdint>
#include <iterator>
#include <vector>

namespace ppsim {

/// @brief One size range of a measured link curve: messages of `from_bytes` bytes and
/// more (up to the next segment's start) take `latency_us + bytes / bandwidth_GBps`. A
/// fitted segment's latency may be negative where the measured bandwidth falls with
/// size; its time stays positive over its range (the fit checks it).
struct LinkSegment {
  std::int64_t from_bytes{0};
  double latency_us{0};
  double bandwidth_GBps{0};  ///< 10^9 bytes per second; 0: no bytes term (a flat range)
};

/// @brief A message's time split the way a link model uses it: `latency_ns` (does not
/// hold the link, never negative) and `per_byte_ns` (holds it).
struct LinkCurvePart {
  double latency_ns{0};
  double per_byte_ns{0};
};

/// @brief The segment a `message_bytes` transfer falls in: the last one starting at or
/// below it, or the first one for a message below every start. `segments` non-empty,
/// sorted by from_bytes.
inline const LinkSegment& link_segment_for(const std::vector<LinkSegment>& segments, std::int64_t message_bytes) {
  auto it = std::upper_bound(segments.begin(), segments.end(), message_bytes,
                             [](std::int64_t b, const LinkSegment& s) { return b < s.from_bytes; });
  return it == segments.begin() ? segments.front() : *std::prev(it);
}

/// @brief Latency and per-byte time of a `message_bytes` message on the curve. A
/// negative intercept moves into the bytes term, so latency + bytes * per_byte is the
/// segment's line at that size exactly.
/// Below the first segment's start (smaller than any measured size) the time is the
/// curve's time at that start: such messages are latency-bound.
inline LinkCurvePart link_curve_part(const std::vector<LinkSegment>& segments, std::int64_t message_bytes) {
  const LinkSegment& s = link_segment_for(segments, message_bytes);
  const double per_byte_ns = s.bandwidth_GBps > 0 ? 1.0 / s.bandwidth_GBps : 0.0;
  if (message_bytes < s.from_bytes)
    return {s.latency_us * 1e3 + static_cast<double>(s.from_bytes) * per_byte_ns, 0.0};
  LinkCurvePart p{s.latency_us * 1e3, per_byte_ns};
  if (p.latency_ns < 0) {
    p.per_byte_ns = message_bytes > 0 ? (p.latency_ns + static_cast<double>(message_bytes) * p.per_byte_ns) /
                                            static_cast<double>(message_bytes)
                                      : 0.0;
    p.latency_ns = 0;
  }
  return p;
}

/// @brief The curve's time of one `bytes`-byte message, in ms.
inline double link_curve_ms(const std::vector<LinkSegment>& segments, std::int64_t bytes) {
  const LinkCurvePart p = link_curve_part(segments, bytes);
  return (p.latency_ns + static_cast<double>(bytes) * p.per_byte_ns) / 1e6;
}

/// @brief Steps of a ring collective over `ranks` ranks, each moving bytes / ranks per
/// rank: all-reduce 2(n - 1) (reduce-scatter then all-gather), all-gather and
/// reduce-scatter n - 1; none for one rank. The simulator's ring_collective_time costs
/// these steps, and nccl-tests' bus-bandwidth factor is steps / n
/// (ppsim-calibrate's bus_bandwidth_factor).
inline int ring_collective_steps(bool all_reduce, int ranks) { return ranks <= 1 ? 0 : (all_reduce ? 2 : 1) * (ranks - 1); }

}  // namespace ppsim
