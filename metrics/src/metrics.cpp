/// @file metrics.cpp
/// @brief The one place every reported number is computed (see metrics.h).
#include "ppsim/metrics/metrics.h"

#include <algorithm>
#include <stdexcept>

#include "ppsim/run/config.h"
#include "ppsim/model/memory.h"
#include "ppsim/run/run.h"
#include "ppsim/metrics/data_parallel.h"
#include "ppsim/model/topology.h"
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
  double bubble_sum = 0, overhead_sum = 0;
  for (int d = 0; d < r.devices; ++d) {
    const DeviceSummary& sum = r.per_device[d];
    const double busy = static_cast<double>(sum.window_busy.ns);
    DeviceMetrics dm;
    dm.device = d;
    dm.compute = sum.compute_busy;
    dm.window_busy = sum.window_busy;
    dm.idle_ms = (window_ns - busy) / 1e6 / r.window_iterations;
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
  const auto ranges = stage_layer_ranges(run.config);
  const std::vector<int> inflight = stage_inflight_peaks(run.schedule);
  m.layers_per_stage = stage_layer_counts(run.config);
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
  m.pipeline_replicas = c.devices / std::max(1, c.pipeline.stages);
  const double iter_s = m.iteration_time.ms() / 1e3;
  const double samples = static_cast<double>(c.pipeline.microbatches) * c.micro_batch_size * m.pipeline_replicas;
  m.samples_per_s = iter_s > 0 ? samples / iter_s : 0.0;
  if (c.sequence_length > 0) m.tokens_per_s = m.samples_per_s * c.sequence_length;
  double flops = 0;
  for (const auto& l : c.layers) flops += l.flops;
  if (flops > 0 && c.device_peak_tflops > 0 && iter_s > 0) {
    const double achieved = flops * c.pipeline.microbatches * m.pipeline_replicas / iter_s;
    m.mfu = achieved / (c.device_peak_tflops * 1e12 * c.devices);
  }
  add_stages(m, run);
  m.memory_limit = Bytes{memory_limit_bytes(c)};
  if (const auto oom = find_out_of_memory(r, m.memory_limit))
    m.oom = OomMetrics{oom->device, oom->time, oom->peak, oom->limit};
  m.replicas_placed_alike = replicas_placed_alike(c, r.devices, dp.degree);
  return m;
}

CriticalPath critical_path_of(const SimResult& r, std::size_t max_steps) {
  CriticalPath cp;
  if (r.ops.empty()) return cp;
  if (r.last_input.size() != r.ops.size() || r.last_input_transfer.size() != r.ops.size())
    throw std::invalid_argument("critical_path_of: the result records no binding input per op");
  int op = 0;
  for (int i = 1; i < static_cast<int>(r.ops.size()); ++i)
    if (r.ops[i].end > r.ops[op].end) op = i;
  auto label = [&](const OpRecord& rec) {
    return "d" + std::to_string(rec.device) + " " + op_token(rec.op) + " s" + std::to_string(rec.op.stage);
  };
  while (op >= 0) {
    const OpRecord& rec = r.ops[op];
    cp.compute += rec.end - rec.start;
    ++cp.ops;
    cp.steps.push_back(label(rec));
    const bool has_prev = op > r.device_first_op[rec.device];
    const int in = r.last_input[op];
    const int tr = r.last_input_transfer[op];
    const TimeNs input_at = in < 0 ? TimeNs{} : (tr >= 0 ? r.transfers[tr].end : r.ops[in].end);
    if (has_prev && r.ops[op - 1].end == rec.start && (in < 0 || r.ops[op - 1].end >= input_at)) {
      op = op - 1;
    } else if (in >= 0 && input_at == rec.start) {
      if (tr >= 0) {
        const TransferRecord& t = r.transfers[tr];
        cp.communication += t.end - t.start;
        cp.link_wait += t.start - r.ops[in].end;  // queued behind other transfers on its link
        ++cp.transfers;
        cp.steps.push_back("link " + std::to_string(t.src) + "->" + std::to_string(t.dst));
      }
      op = in;
    } else {
      cp.link_wait += rec.start - r.first_start;  // nothing left to explain the start
      op = -1;
    }
  }
  std::reverse(cp.steps.begin(), cp.steps.end());
  cp.steps_truncated = cp.steps.size() > max_steps;
  if (cp.steps_truncated) cp.steps.erase(cp.steps.begin(), cp.steps.end() - static_cast<std::ptrdiff_t>(max_steps));
  return cp;
}

}  // namespace ppsim
