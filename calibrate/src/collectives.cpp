// The collectives' shared part: op names, nccl-tests' bus-bandwidth factors, sizes,
// communicator layout, and the one result (JSON, table, ring-link fit) every transport fills.
#include "ppsim/calibrate/collectives.h"

#include "ppsim/engine/link_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "ppsim/calibrate/p2p.h"
#include "ppsim/calibrate/stats.h"

namespace ppsim::cal {

std::string collective_op_name(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::all_reduce: return "all_reduce";
    case CollectiveOp::all_gather: return "all_gather";
    case CollectiveOp::reduce_scatter: return "reduce_scatter";
    case CollectiveOp::broadcast: return "broadcast";
  }
  return "?";
}

CollectiveOp parse_collective_op(const std::string& name) {
  std::string n = name;
  std::replace(n.begin(), n.end(), '-', '_');
  for (CollectiveOp op : {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter,
                          CollectiveOp::broadcast}) {
    std::string compact = collective_op_name(op);
    compact.erase(std::remove(compact.begin(), compact.end(), '_'), compact.end());
    if (n == collective_op_name(op) || n == compact) return op;
  }
  throw std::invalid_argument("--ops: unknown op '" + name +
                              "' (all_reduce, all_gather, reduce_scatter, broadcast)");
}

std::vector<CollectiveOp> parse_collective_ops(const std::string& csv) {
  std::vector<CollectiveOp> ops;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const CollectiveOp op = parse_collective_op(item);
    if (std::find(ops.begin(), ops.end(), op) != ops.end())
      throw std::invalid_argument("--ops: '" + item + "' given twice");
    ops.push_back(op);
  }
  if (ops.empty()) throw std::invalid_argument("--ops: empty list");
  return ops;
}

double bus_bandwidth_factor(CollectiveOp op, int ranks) {
  if (ranks < 1) throw std::invalid_argument("bus_bandwidth_factor: ranks must be >= 1");
  if (op == CollectiveOp::broadcast) return 1.0;  // nccl-tests: the bus carries the buffer once
  // The simulator's ring steps (link_curve.h) over n: 2(n-1)/n all-reduce, (n-1)/n the others.
  return static_cast<double>(ring_collective_steps(op == CollectiveOp::all_reduce, ranks)) / ranks;
}

std::int64_t collective_bytes(CollectiveOp op, std::int64_t bytes, int ranks, int element_bytes) {
  const bool split = op == CollectiveOp::all_gather || op == CollectiveOp::reduce_scatter;
  const std::int64_t unit = static_cast<std::int64_t>(element_bytes) * (split ? ranks : 1);
  return bytes / unit * unit;
}

void CollectiveOptions::validate() const {
  if (min_bytes <= 0 || max_bytes < min_bytes)
    throw std::invalid_argument("--min-bytes/--max-bytes: need 0 < min <= max (got " + format_size(min_bytes) +
                                " and " + format_size(max_bytes) + ")");
  if (iters < 1) throw std::invalid_argument("--iters: must be >= 1");
  if (warmup < 0) throw std::invalid_argument("--warmup: must be >= 0");
  if (group_size < 0) throw std::invalid_argument("--group-size: must be >= 0 (0: all ranks)");
  if (group_stride < 1) throw std::invalid_argument("--group-stride: must be >= 1");
}

std::vector<std::int64_t> collective_sizes(std::int64_t min_bytes, std::int64_t max_bytes) {
  if (min_bytes <= 0 || max_bytes < min_bytes) throw std::invalid_argument("collective sizes: need 0 < min <= max");
  std::vector<std::int64_t> sizes;
  for (std::int64_t s = min_bytes; s < max_bytes; s *= 2) sizes.push_back(s);
  sizes.push_back(max_bytes);
  return sizes;
}

GroupLayout GroupLayout::of(int world, int size, int stride) {
  if (size == 0) size = world;
  if (world < 1 || size < 1 || stride < 1 || world % (static_cast<long long>(size) * stride) != 0)
    throw std::invalid_argument("--group-size " + std::to_string(size) + " x --group-stride " + std::to_string(stride) +
                                " must divide the " + std::to_string(world) + " ranks");
  return {world, size, stride};
}

int GroupLayout::group_of(int rank) const {
  const int block = size * stride;
  return rank / block * stride + rank % stride;
}

int GroupLayout::rank_in_group(int rank) const { return rank % (size * stride) / stride; }

std::string requested_algorithm(const std::string& transport) {
  if (transport != "nccl") return "auto";
  std::string out;
  for (const char* var : {"NCCL_ALGO", "NCCL_PROTO"}) {
    const char* v = std::getenv(var);
    if (v == nullptr || *v == '\0') continue;
    if (!out.empty()) out += ',';
    out.append(var).append("=").append(v);
  }
  return out.empty() ? "auto" : out;
}

CollectiveRun sweep_collectives(const CollectiveOptions& o, const GroupLayout& layout, const std::string& transport,
                                const CollectiveTimer& timer, const RankSync& sync,
                                const std::function<void(const std::string&)>& progress) {
  const int element = dtype_bytes(o.dtype);
  for (CollectiveOp op : o.ops)
    if (collective_bytes(op, o.min_bytes, layout.size, element) == 0)
      throw std::invalid_argument("--min-bytes " + format_size(o.min_bytes) + ": too small for " +
                                  collective_op_name(op) + " over " + std::to_string(layout.size) + " ranks of " +
                                  dtype_name(o.dtype));
  CollectiveRun run{transport, requested_algorithm(transport), layout, o.dtype, o.iters, o.warmup, {}};
  for (CollectiveOp op : o.ops) {
    std::int64_t previous = 0;
    for (std::int64_t size : collective_sizes(o.min_bytes, o.max_bytes)) {
      const std::int64_t bytes = collective_bytes(op, size, layout.size, element);
      if (bytes == previous) continue;
      previous = bytes;
      sync.barrier();
      const double slowest = sync.slowest(median(timer(op, bytes)));
      run.points.push_back({op, bytes, slowest});
      if (sync.rank == 0 && progress)
        progress(collective_op_name(op) + " " + format_size(bytes) + ": " + std::to_string(slowest) + " ms");
    }
  }
  return run;
}

double algorithm_bandwidth_GBps(std::int64_t bytes, double time_ms) {
  return time_ms > 0 ? static_cast<double>(bytes) / (time_ms * 1e-3) / 1e9 : 0.0;
}

namespace {

// An op's points as one ring step each: (bytes / n, time / steps), steps = factor x n.
void ring_step_points(const CollectiveRun& run, CollectiveOp op, std::vector<double>& xs, std::vector<double>& ts) {
  const int n = run.groups.size;
  const double steps = bus_bandwidth_factor(op, n) * n;
  for (const CollectivePoint& p : run.points) {
    if (p.op != op || p.time_ms <= 0) continue;
    xs.push_back(static_cast<double>(p.bytes) / n);
    ts.push_back(p.time_ms / steps);
  }
}

}  // namespace

nlohmann::json ring_link_fit(const CollectiveRun& run, CollectiveOp op) {
  const int n = run.groups.size;
  if (op == CollectiveOp::broadcast || n < 2) return nullptr;
  std::vector<double> xs, ts;
  ring_step_points(run, op, xs, ts);
  if (xs.size() < 2) return nullptr;
  nlohmann::json fit = link_fit_json(xs, ts);
  fit["ring_steps"] = static_cast<int>(std::lround(bus_bandwidth_factor(op, n) * n));
  return fit;
}

std::string ring_link_kind(const CollectiveRun& run, CollectiveOp op) {
  std::string kind = run.transport + "_" + collective_op_name(op) + "_ring_n" + std::to_string(run.groups.size);
  if (run.groups.stride > 1) kind += "_stride" + std::to_string(run.groups.stride);
  return kind;
}

nlohmann::json ring_link_curves(const CollectiveRun& run) {
  nlohmann::json curves = nlohmann::json::array();
  for (CollectiveOp op : {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter}) {
    nlohmann::json fit = ring_link_fit(run, op);
    if (fit.is_null()) continue;
    std::vector<double> xs, ts;
    ring_step_points(run, op, xs, ts);
    nlohmann::json points = nlohmann::json::array();
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const auto bytes = static_cast<std::int64_t>(xs[i]);
      points.push_back({{"bytes", bytes}, {"size", format_size(bytes)}, {"median_ms", ts[i]},
                        {"GBps", algorithm_bandwidth_GBps(bytes, ts[i])}});
    }
    curves.push_back({{"kind", ring_link_kind(run, op)}, {"src", 0}, {"dst", run.groups.stride},
                      {"units", {{"bandwidth", "GB/s = 1e9 B/s"}, {"size", "powers of 1024"}}},
                      {"note", "one ring step of " + collective_op_name(op) + " over " +
                                   std::to_string(run.groups.size) + " ranks (" + run.transport +
                                   "): bytes / n per step, time / steps; ppsim-calibrate collectives"},
                      {"points", points}, {"fit", fit}});
  }
  return curves;
}

nlohmann::json collectives_json(const CollectiveRun& run) {
  const int n = run.groups.size;
  nlohmann::json results = nlohmann::json::array();
  for (const CollectivePoint& p : run.points) {
    const double algbw = algorithm_bandwidth_GBps(p.bytes, p.time_ms);
    results.push_back({{"op", collective_op_name(p.op)}, {"bytes", p.bytes}, {"size", format_size(p.bytes)},
                       {"time_ms", p.time_ms}, {"algbw_GBps", algbw},
                       {"busbw_GBps", algbw * bus_bandwidth_factor(p.op, n)}, {"ranks", n},
                       {"transport", run.transport}, {"algorithm", run.algorithm}});
  }
  nlohmann::json ring = nlohmann::json::object();
  for (const CollectivePoint& p : run.points)
    if (!ring.contains(collective_op_name(p.op))) {
      nlohmann::json fit = ring_link_fit(run, p.op);
      if (!fit.is_null()) ring[collective_op_name(p.op)] = fit;
    }
  return {{"schema", "ppsim.collectives/1"},
          {"transport", run.transport},
          {"algorithm", run.algorithm},
          {"dtype", dtype_name(run.dtype)},
          {"world_ranks", run.groups.world},
          {"ranks", n},
          {"groups", {{"count", run.groups.count()}, {"size", n}, {"stride", run.groups.stride}}},
          {"method", {{"warmup", run.warmup}, {"iters", run.iters}, {"statistic", "median over iters, max over ranks"}}},
          {"units", {{"bandwidth", "GB/s = 1e9 B/s"}, {"size", "powers of 1024"}, {"time", "ms"}}},
          {"results", results},
          {"ring_links", ring}};
}

std::string collectives_table(const CollectiveRun& run) {
  const int n = run.groups.size;
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "# %s, %d ranks per communicator (%d communicators), %s, algorithm %s\n",
                run.transport.c_str(), n, run.groups.count(), dtype_name(run.dtype).c_str(), run.algorithm.c_str());
  out += line;
  std::snprintf(line, sizeof line, "%-15s %14s %12s %12s %12s\n", "op", "size (B)", "time (us)", "algbw (GB/s)",
                "busbw (GB/s)");
  out += line;
  for (const CollectivePoint& p : run.points) {
    const double algbw = algorithm_bandwidth_GBps(p.bytes, p.time_ms);
    std::snprintf(line, sizeof line, "%-15s %14lld %12.2f %12.3f %12.3f\n", collective_op_name(p.op).c_str(),
                  static_cast<long long>(p.bytes), p.time_ms * 1e3, algbw, algbw * bus_bandwidth_factor(p.op, n));
    out += line;
  }
  return out;
}

}  // namespace ppsim::cal
