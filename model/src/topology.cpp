// Cluster topology link model and the data-parallel all-reduce. The model is specified
// in topology.h.
#include "ppsim/model/topology.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ppsim/run/config.h"
#include "ppsim/run/data_files.h"
#include "ppsim/model/memory.h"
#include "ppsim/run/run.h"

namespace ppsim {

TimeNs NetLink::serialization(Bytes bytes) const {
  if (bandwidth_GBps <= 0.0) return {};
  return TimeNs{static_cast<std::int64_t>(std::llround(static_cast<double>(bytes.value) / bandwidth_GBps))};
}
TimeNs NetLink::latency() const { return TimeNs::from_ms(latency_us / 1000.0); }

TopologyLinkModel::TopologyLinkModel(const ClusterSpec& cluster, int stages, int replicas)
    : cluster_(cluster), stages_(stages), replicas_(std::max(1, replicas)) {
  if (cluster_.gpus_per_node < 1) cluster_.gpus_per_node = 1;
  if (cluster_.nics_per_node < 1) cluster_.nics_per_node = 1;
  const int nodes = std::max(cluster_.nodes, (stages_ * replicas_ + cluster_.gpus_per_node - 1) / cluster_.gpus_per_node);
  egress_free_.assign(static_cast<std::size_t>(nodes) * cluster_.nics_per_node, TimeNs{});
  ingress_free_ = egress_free_;
  pair_free_.assign(static_cast<std::size_t>(stages_) * stages_, TimeNs{});
  sharing_.assign(static_cast<std::size_t>(stages_) * stages_, 1);
  for (int s = 0; s < stages_; ++s)
    for (int d = 0; d < stages_; ++d) {
      if (node_of(gpu(s)) == node_of(gpu(d))) continue;
      int egress = 0, ingress = 0;
      for (int r = 0; r < replicas_; ++r) {
        const int gs = gpu(s, r), gd = gpu(d, r);
        if (node_of(gs) == node_of(gd)) continue;
        egress += nic_of(gs) == nic_of(gpu(s)) ? 1 : 0;
        ingress += nic_of(gd) == nic_of(gpu(d)) ? 1 : 0;
      }
      sharing_[static_cast<std::size_t>(s) * stages_ + d] = std::max({1, egress, ingress});
    }
}

int TopologyLinkModel::gpu(int device, int replica) const {
  return cluster_.placement == Placement::PipelineInner ? replica * stages_ + device : device * replicas_ + replica;
}
int TopologyLinkModel::nic_of(int g) const {
  return node_of(g) * cluster_.nics_per_node + (g % cluster_.gpus_per_node) % cluster_.nics_per_node;
}
int TopologyLinkModel::sharing(int src, int dst) const { return sharing_[static_cast<std::size_t>(src) * stages_ + dst]; }

TransferSlot TopologyLinkModel::reserve(int src, int dst, Bytes bytes, TimeNs ready) {
  const int gs = gpu(src), gd = gpu(dst);
  if (node_of(gs) == node_of(gd)) {
    TimeNs& free_at = pair_free_[static_cast<std::size_t>(src) * stages_ + dst];
    const TimeNs start = std::max(ready, free_at);
    free_at = start + cluster_.intra.serialization(bytes);
    return {start, free_at + cluster_.intra.latency()};
  }
  TimeNs& egress = egress_free_[static_cast<std::size_t>(nic_of(gs))];
  TimeNs& ingress = ingress_free_[static_cast<std::size_t>(nic_of(gd))];
  const TimeNs start = std::max({ready, egress, ingress});
  const TimeNs held = cluster_.inter.serialization(bytes * sharing(src, dst));
  egress = ingress = start + held;
  return {start, start + held + cluster_.inter.latency()};
}

void TopologyLinkModel::reset() {
  std::fill(pair_free_.begin(), pair_free_.end(), TimeNs{});
  std::fill(egress_free_.begin(), egress_free_.end(), TimeNs{});
  std::fill(ingress_free_.begin(), ingress_free_.end(), TimeNs{});
}

TimeNs ring_allreduce_time(Bytes bytes, int n, const NetLink& link) {
  if (n <= 1) return {};
  double ns = 0;
  if (link.bandwidth_GBps > 0) ns = 2.0 * (n - 1) / n * static_cast<double>(bytes.value) / link.bandwidth_GBps;
  return TimeNs{static_cast<std::int64_t>(std::llround(ns))} + TimeNs{link.latency().ns * 2 * (n - 1)};
}

int data_parallel_degree(const Config& c) {
  if (c.parallel.data_parallel > 0) return c.parallel.data_parallel;
  return std::max(1, c.devices / std::max(1, c.pipeline.stages));
}

void resolve_devices(Config& c) {
  const int capacity = c.cluster.given() ? c.cluster.nodes * c.cluster.gpus_per_node : c.cluster_devices;
  if (c.parallel.data_parallel > 0) {
    const std::int64_t want = std::int64_t{c.pipeline.stages} * c.parallel.data_parallel;
    if (capacity > 0 && want > capacity)
      throw ConfigError(c.file, "parallel.data_parallel",
                        std::to_string(c.pipeline.stages) + " stages x " + std::to_string(c.parallel.data_parallel) +
                            " replicas need " + std::to_string(want) + " GPUs, the cluster has " + std::to_string(capacity));
    c.devices = static_cast<int>(want);
  } else if (c.cluster.given()) {
    c.devices = capacity;
  }
}

std::unique_ptr<LinkModel> make_topology_links(const Config& c, int devices) {
  if (c.cluster.given()) return std::make_unique<TopologyLinkModel>(c.cluster, devices, data_parallel_degree(c));
  return std::make_unique<UniformLinkModel>(devices, TimeNs::from_ms(c.link.latency_us / 1000.0), c.link.bandwidth_GBps);
}

DataParallelCost data_parallel_cost(const Run& run, const SimResult& r) {
  const Config& c = run.config;
  const Schedule& s = run.schedule;
  DataParallelCost out;
  out.degree = data_parallel_degree(c);
  out.overlap = c.parallel.overlap_grad_reduce;
  const int n = r.devices;
  out.allreduce.assign(static_cast<std::size_t>(n), TimeNs{});
  out.gradient_bytes.assign(static_cast<std::size_t>(n), Bytes{});
  out.finish.assign(static_cast<std::size_t>(n), TimeNs{});
  for (int d = 0; d < n; ++d)
    for (int i = r.device_first_op[d]; i < r.device_first_op[d + 1]; ++i)
      out.finish[d] = std::max(out.finish[d], r.ops[i].end);
  // Devices holding each model stage in replica 0. Bidirectional schedules keep a copy
  // per pipe; the engine already syncs those copies inside the pipeline
  // (Schedule::gradient_syncs), so each copy reduces only across the replicas here.
  std::vector<std::vector<int>> holders(static_cast<std::size_t>(s.num_stages));
  for (int d = 0; d < n; ++d)
    for (int i = r.device_first_op[d]; i < r.device_first_op[d + 1]; ++i) {
      auto& h = holders[static_cast<std::size_t>(r.ops[i].op.stage)];
      if (std::find(h.begin(), h.end(), d) == h.end()) h.push_back(d);
    }
  auto group_size = [&](int) { return out.degree; };
  for (int k = 0; k < s.num_stages; ++k) out.group = std::max(out.group, group_size(k));
  if (out.group <= 1) {
    out.link = "none";
    return out;
  }
  // Gradients are stored in the weights' precision when the memory model is off.
  const BytesPerParam bpp = bytes_per_param(c.memory.optimizer, c.memory.precision);
  auto grad_bytes = [&](std::int64_t parameter_bytes) {
    return Bytes{c.memory.given ? parameter_bytes * bpp.gradients / bpp.weights : parameter_bytes};
  };
  // The link each stage's ring runs over.
  std::vector<NetLink> ring(static_cast<std::size_t>(s.num_stages));
  if (c.cluster.given()) {
    const TopologyLinkModel topo(c.cluster, n, out.degree);
    auto crosses = [&](int stage) {
      const int node = topo.node_of(topo.gpu(holders[static_cast<std::size_t>(stage)][0], 0));
      for (int h : holders[static_cast<std::size_t>(stage)])
        for (int k = 0; k < out.degree; ++k)
          if (topo.node_of(topo.gpu(h, k)) != node) return true;
      return false;
    };
    std::vector<std::uint8_t> device_crosses(static_cast<std::size_t>(n), 0);
    for (int k = 0; k < s.num_stages; ++k)
      if (group_size(k) > 1 && crosses(k))
        for (int h : holders[static_cast<std::size_t>(k)]) device_crosses[static_cast<std::size_t>(h)] = 1;
    bool any_inter = false;
    for (int k = 0; k < s.num_stages; ++k) {
      if (group_size(k) <= 1) continue;
      if (!crosses(k)) {
        ring[k] = c.cluster.intra;
        continue;
      }
      any_inter = true;
      // Every GPU of the job on this NIC whose ring also leaves the node reduces at the
      // same time (an upper bound on contention): they share the NIC's bandwidth.
      const int nic = topo.nic_of(topo.gpu(holders[static_cast<std::size_t>(k)][0], 0));
      int sharing = 0;
      for (int e = 0; e < n; ++e)
        for (int rep = 0; rep < out.degree; ++rep)
          if (device_crosses[static_cast<std::size_t>(e)] && topo.nic_of(topo.gpu(e, rep)) == nic) ++sharing;
      ring[k] = c.cluster.inter;
      ring[k].bandwidth_GBps /= std::max(1, sharing);
    }
    out.link = any_inter ? "inter" : "intra";
  } else {
    const NetLink link{c.link.latency_us, c.link.bandwidth_GBps};
    std::fill(ring.begin(), ring.end(), link);
    out.link = link.bandwidth_GBps <= 0 && link.latency_us <= 0 ? "free" : "link";
  }
  const auto ranges = stage_layer_ranges(c);
  TimeNs latest{};
  for (int d = 0; d < n; ++d) {
    // The last gradient-producing op of each (pipe, stage) the device holds.
    std::vector<int> last_op;
    for (int i = r.device_first_op[d]; i < r.device_first_op[d + 1]; ++i) {
      const Op& op = r.ops[i].op;
      const bool grads = s.split_backward ? op.kind == OpKind::Weight : op.kind == OpKind::Backward;
      if (!grads || group_size(op.stage) <= 1) continue;
      auto same = std::find_if(last_op.begin(), last_op.end(), [&](int j) {
        return r.ops[j].op.stage == op.stage && r.ops[j].op.pipe == op.pipe;
      });
      if (same == last_op.end()) last_op.push_back(i);
      else if (r.ops[i].end >= r.ops[*same].end) *same = i;
    }
    struct Bucket {
      TimeNs ready;
      TimeNs time;
    };
    std::vector<Bucket> buckets;
    Bytes total{};
    TimeNs whole{};  // without overlap: one all-reduce per stage held, after the last op
    for (int i : last_op) {
      const OpRecord& rec = r.ops[i];
      const int stage = rec.op.stage;
      const auto [first, last] = ranges[static_cast<std::size_t>(stage)];
      double weight_sum = 0;
      for (int l = first; l < last; ++l)
        weight_sum += s.split_backward ? c.layers[l].weight_grad_ms : c.layers[l].backward_ms;
      double done = 0;
      Bytes stage_bytes{};
      for (int l = last - 1; l >= first; --l) {  // backward runs from the stage's last layer
        done += s.split_backward ? c.layers[l].weight_grad_ms : c.layers[l].backward_ms;
        const double share = weight_sum > 0 ? done / weight_sum : 1.0;
        const TimeNs ready = rec.start + TimeNs{static_cast<std::int64_t>(
                                             std::llround(share * static_cast<double>((rec.end - rec.start).ns)))};
        const Bytes b = grad_bytes(c.layers[l].parameter_bytes);
        buckets.push_back({ready, ring_allreduce_time(b, group_size(stage), ring[stage])});
        stage_bytes += b;
      }
      total += stage_bytes;
      whole += ring_allreduce_time(stage_bytes, group_size(stage), ring[stage]);
    }
    out.gradient_bytes[d] = total;
    out.allreduce[d] = whole;
    TimeNs t = out.finish[d];
    if (out.overlap && s.synchronous) {
      std::stable_sort(buckets.begin(), buckets.end(), [](const Bucket& a, const Bucket& b) { return a.ready < b.ready; });
      TimeNs busy = r.first_start;
      TimeNs sum{};
      for (const Bucket& b : buckets) {
        busy = std::max(busy, b.ready) + b.time;
        sum += b.time;
      }
      out.allreduce[d] = sum;
      t = std::max(t, busy);
    } else {
      t += out.allreduce[d];
    }
    out.finish[d] = t;
    latest = std::max(latest, s.synchronous ? t : r.first_start + out.allreduce[d]);
  }
  if (s.synchronous) out.exposed = std::max(TimeNs{}, latest - r.last_end);
  else out.exposed = latest - r.first_start;
  return out;
}

nlohmann::json load_cluster_preset(const std::string& name, const std::string& config_file) {
  const DataFileLookup lookup = find_data_file(name, "clusters", config_file);
  if (lookup.found.empty())
    throw ConfigError(config_file, "cluster.preset",
                      "no cluster preset '" + name + "' (looked for " + lookup.tried_list() + ")");
  nlohmann::json doc = read_json_file(lookup.found.string());
  doc["__file"] = lookup.found.string();
  return doc;
}

}  // namespace ppsim
