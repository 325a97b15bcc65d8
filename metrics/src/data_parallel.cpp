/// @file data_parallel.cpp
/// @brief The data-parallel gradient all-reduce of a simulated run (see data_parallel.h):
/// which GPUs reduce each stage, over which link, and when each layer's bucket is ready.
#include "ppsim/metrics/data_parallel.h"

#include <algorithm>
#include <cmath>

#include "ppsim/model/memory.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/cluster.h"
#include "ppsim/run/stages.h"

namespace ppsim {

namespace {

/// Devices holding each model stage in replica 0. Bidirectional schedules keep a copy
/// per pipe; the engine already syncs those copies inside the pipeline
/// (Schedule::gradient_syncs), so each copy reduces only across the replicas here.
std::vector<std::vector<int>> stage_holders(const SimResult& r, int stages) {
  std::vector<std::vector<int>> holders(static_cast<std::size_t>(stages));
  for (int d = 0; d < r.devices; ++d)
    for (int i = r.device_first_op[d]; i < r.device_first_op[d + 1]; ++i) {
      auto& h = holders[static_cast<std::size_t>(r.ops[i].op.stage)];
      if (std::find(h.begin(), h.end(), d) == h.end()) h.push_back(d);
    }
  return holders;
}

/// The link each stage's ring runs over on a cluster topology: intra-node when all its
/// GPUs share a node, else the NIC, shared by every GPU of the job on that NIC whose ring
/// also leaves the node (they reduce at the same time: an upper bound on contention).
std::vector<NetLink> topology_rings(const Config& c, const std::vector<std::vector<int>>& holders, int n, int degree,
                                    std::string& link_name) {
  const int tp = tensor_parallel_degree(c);  // each tensor-parallel rank has its own ring, on its own NIC
  const TopologyLinkModel topo(c.cluster, n, degree, tp);
  auto crosses = [&](const std::vector<int>& h) {
    const int node = topo.node_of(topo.gpu(h[0], 0));
    for (int d : h)
      for (int k = 0; k < degree; ++k)
        if (topo.node_of(topo.gpu(d, k)) != node) return true;
    return false;
  };
  std::vector<std::uint8_t> device_crosses(static_cast<std::size_t>(n), 0);
  for (const auto& h : holders)
    if (!h.empty() && crosses(h))
      for (int d : h) device_crosses[static_cast<std::size_t>(d)] = 1;
  std::vector<NetLink> ring(holders.size(), c.cluster.intra);
  bool any_inter = false;
  for (std::size_t k = 0; k < holders.size(); ++k) {
    if (holders[k].empty() || !crosses(holders[k])) continue;
    any_inter = true;
    const int nic = topo.nic_of(topo.gpu(holders[k][0], 0));
    int sharing = 0;
    for (int e = 0; e < n; ++e)
      for (int rep = 0; rep < degree; ++rep)
        for (int k = 0; k < tp; ++k)
          if (device_crosses[static_cast<std::size_t>(e)] && topo.nic_of(topo.gpu(e, rep, k)) == nic) ++sharing;
    ring[k] = c.cluster.inter;
    ring[k].bandwidth_GBps /= std::max(1, sharing);
  }
  link_name = any_inter ? "inter" : "intra";
  return ring;
}

/// The last gradient-producing op (B, or W when split) of each (pipe, stage) device d holds.
std::vector<int> last_gradient_ops(const Schedule& s, const SimResult& r, int d) {
  std::vector<int> last_op;
  for (int i = r.device_first_op[d]; i < r.device_first_op[d + 1]; ++i) {
    const Op& op = r.ops[i].op;
    const bool grads = s.split_backward ? op.kind == OpKind::Weight : op.kind == OpKind::Backward;
    if (!grads) continue;
    auto same = std::find_if(last_op.begin(), last_op.end(), [&](int j) {
      return r.ops[j].op.stage == op.stage && r.ops[j].op.pipe == op.pipe;
    });
    if (same == last_op.end()) last_op.push_back(i);
    else if (r.ops[i].end >= r.ops[*same].end) *same = i;
  }
  return last_op;
}

/// One bucket per layer of the stage `rec` ends, ready when backward has passed through
/// the layer: its share of the op's time, counted from the stage's last layer.
std::vector<GradientBucket> layer_buckets(const Run& run, const OpRecord& rec, std::pair<int, int> layers) {
  const Config& c = run.config;
  const bool split = run.schedule.split_backward;
  const BytesPerParam bpp = bytes_per_param(c.memory.optimizer, c.memory.precision);
  // Gradients are stored in the weights' precision when the memory model is off.
  auto grad_bytes = [&](std::int64_t parameter_bytes) {
    return Bytes{c.memory.given ? parameter_bytes * bpp.gradients / bpp.weights : parameter_bytes};
  };
  const auto [first, last] = layers;
  double weight_sum = 0;
  for (int l = first; l < last; ++l) weight_sum += split ? c.layers[l].weight_grad_ms : c.layers[l].backward_ms;
  std::vector<GradientBucket> buckets;
  double done = 0;
  for (int l = last - 1; l >= first; --l) {
    done += split ? c.layers[l].weight_grad_ms : c.layers[l].backward_ms;
    const double share = weight_sum > 0 ? done / weight_sum : 1.0;
    const TimeNs ready = rec.start + TimeNs{static_cast<std::int64_t>(
                                         std::llround(share * static_cast<double>((rec.end - rec.start).ns)))};
    buckets.push_back({ready, grad_bytes(c.layers[l].parameter_bytes), TimeNs{}});
  }
  return buckets;
}

}  // namespace

DataParallelCost data_parallel_cost(const Run& run, const SimResult& r) {
  const Config& c = run.config;
  const Schedule& s = run.schedule;
  const int n = r.devices;
  DataParallelCost out;
  out.degree = data_parallel_degree(c);
  out.group = std::max(1, out.degree);
  out.overlap = c.parallel.overlap_grad_reduce;
  out.allreduce.assign(static_cast<std::size_t>(n), TimeNs{});
  out.gradient_bytes.assign(static_cast<std::size_t>(n), Bytes{});
  out.finish.assign(static_cast<std::size_t>(n), TimeNs{});
  for (int d = 0; d < n; ++d)
    for (int i = r.device_first_op[d]; i < r.device_first_op[d + 1]; ++i)
      out.finish[d] = std::max(out.finish[d], r.ops[i].end);
  if (out.group <= 1) {
    out.link = "none";
    return out;
  }
  std::vector<NetLink> ring;
  if (c.cluster.given()) {
    ring = topology_rings(c, stage_holders(r, s.num_stages), n, out.degree, out.link);
  } else {
    const NetLink link = c.link;
    ring.assign(static_cast<std::size_t>(s.num_stages), link);
    out.link = link.segments.empty() && link.bandwidth_GBps <= 0 && link.latency_us <= 0 ? "free" : "link";
  }
  const auto ranges = layer_ranges(run.layers_per_stage);
  TimeNs latest{};
  for (int d = 0; d < n; ++d) {
    std::vector<StageGradients> stages;
    for (int i : last_gradient_ops(s, r, d)) {
      const auto k = static_cast<std::size_t>(r.ops[i].op.stage);
      stages.push_back({out.group, ring[k], layer_buckets(run, r.ops[i], ranges[k])});
    }
    const DeviceAllReduce dev = device_all_reduce(stages, out.finish[d], r.first_start, out.overlap && s.synchronous);
    out.gradient_bytes[d] = dev.bytes;
    out.allreduce[d] = dev.allreduce;
    out.finish[d] = dev.finish;
    latest = std::max(latest, s.synchronous ? dev.finish : r.first_start + dev.allreduce);
  }
  out.exposed = s.synchronous ? std::max(TimeNs{}, latest - r.last_end) : latest - r.first_start;
  return out;
}

}  // namespace ppsim
