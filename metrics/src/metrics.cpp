/// @file metrics.cpp
/// @brief The one place every reported number is computed (see metrics.h).
#include "ppsim/metrics/metrics.h"

#include <boost/range/iterator_range.hpp>

#include <algorithm>
#include <array>
#include <stdexcept>

#include "ppsim/run/config.h"
#include "ppsim/model/memory.h"
#include "ppsim/run/run.h"
#include "ppsim/engine/op_graph.h"
#include "ppsim/metrics/data_parallel.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/cluster.h"
#include "ppsim/run/stages.h"

namespace ppsim {

namespace {

double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

/// Per-device time figures over the measured window grown by the exposed all-reduce.
void add_device_times(Metrics& m, const SimResult& r, TimeNs exposed) {
  const double window_ns = static_cast<double>((r.window_end - r.window_start).ns);
  const double grown_ns = window_ns + static_cast<double>(exposed.ns) * r.window_iterations;
  std::vector<double> send_ms(static_cast<std::size_t>(r.devices), 0.0), recv_ms(send_ms);
  for (const auto& t : r.transfers) {
    send_ms[t.src] += (t.end - t.start).ms();
    recv_ms[t.dst] += (t.end - t.start).ms();
  }
  std::vector<double> blocked_ns(static_cast<std::size_t>(r.devices), 0.0);
  for (const BlockedRecord& b : r.blocked) {
    const TimeNs lo = std::max(b.start, r.window_start), hi = std::min(b.end, r.window_end);
    if (hi > lo) blocked_ns[static_cast<std::size_t>(b.device)] += static_cast<double>((hi - lo).ns);
  }
  double bubble_sum = 0, overhead_sum = 0;
  for (int d = 0; d < r.devices; ++d) {
    const DeviceSummary& sum = r.per_device[d];
    const double busy = static_cast<double>(sum.window_busy.ns);
    DeviceMetrics dm;
    dm.device = d;
    dm.compute = sum.compute_busy;
    dm.window_busy = sum.window_busy;
    dm.idle_ms = (window_ns - busy - blocked_ns[d]) / 1e6 / r.window_iterations;
    dm.blocked_ms = blocked_ns[d] / 1e6 / r.window_iterations;
    if (exposed.ns > 0) dm.idle_ms += exposed.ms();
    dm.bubble_rate = grown_ns > 0 ? 1.0 - busy / grown_ns : 0.0;
    dm.bubble_overhead = ratio(grown_ns - busy, busy);
    dm.peak_memory = sum.peak_memory;
    dm.peak_activation = sum.peak_activation;
    dm.peak_inflight = sum.peak_inflight;
    dm.weights = sum.weights;
    dm.static_bytes = sum.static_extra;
    dm.weight_versions = sum.weight_versions;
    dm.peak_time = sum.peak_time;
    dm.send_ms = send_ms[d];
    dm.recv_ms = recv_ms[d];
    bubble_sum += dm.bubble_rate;
    overhead_sum += dm.bubble_overhead;
    m.peak_memory = std::max(m.peak_memory, sum.peak_memory);
    m.communication_ms += send_ms[d];
    m.per_device.push_back(dm);
  }
  if (r.devices > 0) {
    m.bubble_rate = bubble_sum / r.devices;
    m.bubble_overhead = overhead_sum / r.devices;
  }
}

/// Per-stage layers, costs and peak memory, and the partition.
void add_stages(Metrics& m, const Run& run) {
  const auto ranges = layer_ranges(run.layers_per_stage);
  const std::vector<int> inflight = stage_inflight_peaks(run.schedule);
  m.layers_per_stage = run.layers_per_stage;
  for (std::size_t k = 0; k < run.costs.size(); ++k) {
    StageMetrics st;
    st.stage = static_cast<int>(k);
    st.first_layer = ranges[k].first;
    st.last_layer = ranges[k].second;
    st.cost = run.costs[k];
    st.peak_inflight = inflight[k];
    st.peak_memory = stage_peak_memory(st.cost, run.schedule.weights, inflight[k]);
    m.per_stage.push_back(st);
  }
}

/// Per device and iteration, the collectives and recomputation inside its ops in the
/// measured window: F carries its stage's forward_comm; B (or the whole backward) its
/// backward_comm and recompute; W neither.
void add_op_breakdown(Metrics& m, const Run& run, const SimResult& r) {
  const double iterations = std::max(1, r.window_iterations);
  for (const OpRecord& rec : r.ops) {
    if (rec.start < r.window_start || rec.start >= r.window_end) continue;
    const StageCost& sc = run.costs[static_cast<std::size_t>(rec.op.stage)];
    DeviceMetrics& dm = m.per_device[static_cast<std::size_t>(rec.device)];
    if (rec.op.kind == OpKind::Forward) dm.collective_ms += sc.forward_comm.ms() / iterations;
    if (rec.op.kind == OpKind::Backward) {
      dm.collective_ms += sc.backward_comm.ms() / iterations;
      dm.recompute_ms += sc.recompute.ms() / iterations;
    }
  }
  for (const DeviceMetrics& dm : m.per_device) {
    m.collective_ms = std::max(m.collective_ms, dm.collective_ms);
    m.recompute_ms = std::max(m.recompute_ms, dm.recompute_ms);
  }
}

/// Data-parallel all-reduce per device and in all.
DataParallelMetrics add_data_parallel(Metrics& m, const DataParallelCost& dp) {
  DataParallelMetrics out;
  out.degree = dp.degree;
  out.ring_size = dp.group;
  out.overlap = dp.overlap;
  out.link = dp.link;
  out.exposed = dp.exposed;
  for (std::size_t d = 0; d < dp.allreduce.size(); ++d) {
    out.allreduce = std::max(out.allreduce, dp.allreduce[d]);
    out.gradient_bytes = std::max(out.gradient_bytes, dp.gradient_bytes[d]);
    if (d < m.per_device.size()) {
      m.per_device[d].has_allreduce = true;
      m.per_device[d].allreduce = dp.allreduce[d];
      m.per_device[d].allreduce_end = dp.finish[d];
    }
  }
  return out;
}

/// Whether every replica crosses nodes at the same stage boundaries as replica 0 (only
/// replica 0 is simulated).
bool replicas_placed_alike(const Config& c, int devices, int degree) {
  if (!c.cluster.given()) return true;
  const TopologyLinkModel topo(c.cluster, devices, degree);
  for (int rep = 1; rep < degree; ++rep)
    for (int d = 0; d + 1 < devices; ++d)
      if ((topo.node_of(topo.gpu(d, rep)) != topo.node_of(topo.gpu(d + 1, rep))) !=
          (topo.node_of(topo.gpu(d, 0)) != topo.node_of(topo.gpu(d + 1, 0))))
        return false;
  return true;
}

}  // namespace

Metrics pipeline_metrics(const SimResult& r, TimeNs exposed) {
  Metrics m;
  m.pipeline_time = r.iteration_time;
  m.exposed_allreduce = exposed;
  m.iteration_time = r.iteration_time + exposed;
  m.transfers = r.transfers.size();
  m.window_start = r.window_start;
  m.window_end = r.window_end;
  m.window_iterations = r.window_iterations;
  add_device_times(m, r, exposed);
  m.critical_path = critical_path_of(r);
  return m;
}

Metrics compute_metrics(const Run& run, const SimResult& r) {
  const Config& c = run.config;
  const DataParallelCost dp = data_parallel_cost(run, r);
  Metrics m = pipeline_metrics(r, dp.exposed);
  m.data_parallel = add_data_parallel(m, dp);
  m.pipeline_replicas = data_parallel_degree(c);
  const double iter_s = m.iteration_time.ms() / 1e3;
  const double samples = static_cast<double>(c.pipeline.microbatches) * c.micro_batch_size * m.pipeline_replicas;
  m.samples_per_s = iter_s > 0 ? samples / iter_s : 0.0;
  if (c.sequence_length > 0) m.tokens_per_s = m.samples_per_s * c.sequence_length;
  // Layer FLOPs are one GPU's shard; the tensor-parallel group does t of them.
  double flops = 0;
  for (const auto& l : c.layers) flops += l.flops;
  flops *= tensor_parallel_degree(c);
  if (flops > 0 && iter_s > 0) {
    const double achieved = flops * c.pipeline.microbatches * m.pipeline_replicas / iter_s;
    m.tflops_per_gpu = achieved / c.devices / 1e12;
    if (c.device_peak_tflops > 0) m.mfu = achieved / (c.device_peak_tflops * 1e12 * c.devices);
  }
  add_stages(m, run);
  add_op_breakdown(m, run, r);
  m.memory_limit = Bytes{memory_limit_bytes(c)};
  if (const auto oom = find_out_of_memory(r, m.memory_limit))
    m.oom = OomMetrics{oom->device, oom->time, oom->peak, oom->limit};
  m.replicas_placed_alike = replicas_placed_alike(c, r.devices, dp.degree);
  return m;
}

namespace {

/// Per op, the in-edge of the op graph that set its start (-1 when none did): the
/// longest path's chain of maxima. Along the longest path an op ends its duration after
/// the latest of its in-edges (a predecessor's end, plus the transfer's time on a data
/// edge between devices); the run's own times are those longest-path ends (the op-graph
/// property test checks it to the nanosecond), so one pass over the graph's edges finds
/// it. Among ties the previous op on its device wins, then a transfer.
struct BindingInputs {
  std::vector<int> pred;
  /// The transfers into each op: one, or two into the forward of an overlapped pair run
  /// as a unit (its own input and its backward's); -1 for none.
  std::vector<std::array<int, 2>> transfer_into;
};

int carried_by(const SimResult& r, const BindingInputs& b, std::uint32_t u, std::uint32_t v) {
  if (!r.graph->is_op(v)) return -1;
  for (const int t : b.transfer_into[v])
    if (t >= 0 && r.graph->releases(static_cast<std::uint32_t>(r.transfers[static_cast<std::size_t>(t)].producer)) == u) return t;
  return -1;
}

BindingInputs binding_inputs(const SimResult& r) {
  const OpGraph& g = *r.graph;
  BindingInputs b;
  b.transfer_into.assign(r.ops.size(), {-1, -1});
  for (std::size_t t = 0; t < r.transfers.size(); ++t) {
    auto& into = b.transfer_into[g.needs(static_cast<std::uint32_t>(r.transfers[t].consumer))];
    into[into[0] < 0 ? 0 : 1] = static_cast<int>(t);
  }
  auto rank = [&](std::uint32_t u, std::uint32_t v) {
    return u + 1 == v && r.ops[u].device == r.ops[v].device ? 2 : (carried_by(r, b, u, v) >= 0 ? 1 : 0);
  };
  b.pred.assign(r.ops.size(), -1);
  for (std::uint32_t u = 0; u < g.num_ops; ++u)
    for (const auto e : boost::make_iterator_range(boost::out_edges(u, g.csr))) {
      const auto v = static_cast<std::uint32_t>(boost::target(e, g.csr));
      if (!g.is_op(v)) continue;
      const int t = carried_by(r, b, u, v);
      if ((t >= 0 ? r.transfers[static_cast<std::size_t>(t)].end : r.ops[u].end) != r.ops[v].start) continue;
      if (b.pred[v] < 0 || rank(u, v) > rank(static_cast<std::uint32_t>(b.pred[v]), v)) b.pred[v] = static_cast<int>(u);
    }
  return b;
}

}  // namespace

CriticalPath critical_path_of(const SimResult& r, std::size_t max_steps) {
  CriticalPath cp;
  if (r.ops.empty() || !r.graph) return cp;
  const BindingInputs b = binding_inputs(r);
  int op = 0;
  for (int i = 1; i < static_cast<int>(r.ops.size()); ++i)
    if (r.ops[i].end > r.ops[op].end) op = i;
  while (op >= 0) {
    const OpRecord& rec = r.ops[op];
    cp.compute += rec.end - rec.start;
    ++cp.ops;
    cp.steps.push_back("d" + std::to_string(rec.device) + " " + op_token(rec.op) + " s" + std::to_string(rec.op.stage));
    const int in = b.pred[static_cast<std::size_t>(op)];
    if (in < 0) {
      cp.link_wait += rec.start - r.first_start;  // nothing left to explain the start
      break;
    }
    if (const int tr = carried_by(r, b, static_cast<std::uint32_t>(in), static_cast<std::uint32_t>(op)); tr >= 0) {
      const TransferRecord& t = r.transfers[static_cast<std::size_t>(tr)];
      cp.communication += t.end - t.start;
      cp.link_wait += t.start - r.ops[in].end;  // queued behind other transfers on its link
      ++cp.transfers;
      cp.steps.push_back("link " + std::to_string(t.src) + "->" + std::to_string(t.dst));
    }
    op = in;
  }
  std::reverse(cp.steps.begin(), cp.steps.end());
  cp.steps_truncated = cp.steps.size() > max_steps;
  if (cp.steps_truncated) cp.steps.erase(cp.steps.begin(), cp.steps.end() - static_cast<std::ptrdiff_t>(max_steps));
  return cp;
}

}  // namespace ppsim
