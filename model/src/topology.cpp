// Cluster topology link model and the ring all-reduce of gradient buckets. The model is specified
// in topology.h.
#include "ppsim/model/topology.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>


namespace ppsim {

TimeNs NetLink::serialization(Bytes amount, Bytes message) const {
  if (segments.empty()) {
    if (bandwidth_GBps <= 0.0) return {};
    return TimeNs{static_cast<std::int64_t>(std::llround(static_cast<double>(amount.value) / bandwidth_GBps))};
  }
  const double per_byte_ns = link_curve_part(segments, message.value).per_byte_ns;
  return TimeNs{static_cast<std::int64_t>(std::llround(static_cast<double>(amount.value) * per_byte_ns))};
}
TimeNs NetLink::latency(Bytes message) const {
  if (segments.empty()) return TimeNs::from_ms(latency_us / 1000.0);
  return TimeNs{static_cast<std::int64_t>(std::llround(link_curve_part(segments, message.value).latency_ns))};
}

TopologyLinkModel::TopologyLinkModel(const ClusterSpec& cluster, int stages, int replicas, int tensor_parallel)
    : cluster_(cluster), stages_(stages), replicas_(std::max(1, replicas)), tp_(std::max(1, tensor_parallel)) {
  if (cluster_.gpus_per_node < 1) cluster_.gpus_per_node = 1;
  if (cluster_.nics_per_node < 1) cluster_.nics_per_node = 1;
  const int gpus = stages_ * replicas_ * tp_;
  const int nodes = std::max(cluster_.nodes, (gpus + cluster_.gpus_per_node - 1) / cluster_.gpus_per_node);
  egress_free_.assign(static_cast<std::size_t>(nodes) * cluster_.nics_per_node, TimeNs{});
  ingress_free_ = egress_free_;
  pair_free_.assign(static_cast<std::size_t>(stages_) * stages_, TimeNs{});
  sharing_.assign(static_cast<std::size_t>(stages_) * stages_, 1);
  for (int s = 0; s < stages_; ++s)
    for (int d = 0; d < stages_; ++d) {
      if (node_of(gpu(s)) == node_of(gpu(d))) continue;
      int egress = 0, ingress = 0;
      for (int r = 0; r < replicas_; ++r)
        for (int k = 0; k < tp_; ++k) {
          const int gs = gpu(s, r, k), gd = gpu(d, r, k);
          if (node_of(gs) == node_of(gd)) continue;
          egress += nic_of(gs) == nic_of(gpu(s)) ? 1 : 0;
          ingress += nic_of(gd) == nic_of(gpu(d)) ? 1 : 0;
        }
      sharing_[static_cast<std::size_t>(s) * stages_ + d] = std::max({1, egress, ingress});
    }
}

int TopologyLinkModel::gpu(int device, int replica, int rank) const {
  const int group = cluster_.placement == Placement::PipelineInner ? replica * stages_ + device : device * replicas_ + replica;
  return group * tp_ + rank;
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
    return {start, free_at + cluster_.intra.latency(bytes)};
  }
  TimeNs& egress = egress_free_[static_cast<std::size_t>(nic_of(gs))];
  TimeNs& ingress = ingress_free_[static_cast<std::size_t>(nic_of(gd))];
  const TimeNs start = std::max({ready, egress, ingress});
  const TimeNs held = cluster_.inter.serialization(bytes * sharing(src, dst), bytes);
  egress = ingress = start + held;
  return {start, start + held + cluster_.inter.latency(bytes)};
}

void TopologyLinkModel::reset() {
  std::fill(pair_free_.begin(), pair_free_.end(), TimeNs{});
  std::fill(egress_free_.begin(), egress_free_.end(), TimeNs{});
  std::fill(ingress_free_.begin(), ingress_free_.end(), TimeNs{});
}

TimeNs ring_allreduce_time(Bytes bytes, int n, const NetLink& link) {
  return ring_collective_time(Collective::AllReduce, bytes, n, link);
}

std::string collective_name(Collective k) {
  switch (k) {
    case Collective::AllReduce: return "all-reduce";
    case Collective::AllGather: return "all-gather";
    case Collective::ReduceScatter: return "reduce-scatter";
  }
  return "?";
}

TimeNs ring_collective_time(Collective kind, Bytes bytes, int n, const NetLink& link) {
  if (n <= 1) return {};
  const int steps = ring_collective_steps(kind == Collective::AllReduce, n);
  // Each ring step moves one chunk of bytes / n: that size picks a measured curve's segment.
  const Bytes chunk{bytes.value / n};
  double ns = 0;
  if (!link.segments.empty())
    ns = static_cast<double>(steps) * static_cast<double>(link.serialization(chunk).ns);
  else if (link.bandwidth_GBps > 0)
    ns = static_cast<double>(steps) / n * static_cast<double>(bytes.value) / link.bandwidth_GBps;
  return TimeNs{static_cast<std::int64_t>(std::llround(ns))} + TimeNs{link.latency(chunk).ns * steps};
}

DeviceAllReduce device_all_reduce(const std::vector<StageGradients>& stages, TimeNs last_op_end, TimeNs run_start,
                                  bool overlap) {
  DeviceAllReduce out;
  std::vector<GradientBucket> buckets;
  for (const StageGradients& st : stages) {
    Bytes stage_bytes{};
    for (const GradientBucket& b : st.buckets) {
      buckets.push_back({b.ready, b.bytes, ring_allreduce_time(b.bytes, st.ring, st.link)});
      stage_bytes += b.bytes;
    }
    out.bytes += stage_bytes;
    out.allreduce += ring_allreduce_time(stage_bytes, st.ring, st.link);
  }
  out.finish = last_op_end;
  if (!overlap) {
    out.finish += out.allreduce;
    return out;
  }
  std::stable_sort(buckets.begin(), buckets.end(),
                   [](const GradientBucket& x, const GradientBucket& y) { return x.ready < y.ready; });
  TimeNs busy = run_start;
  TimeNs sum{};
  for (const GradientBucket& b : buckets) {
    busy = std::max(busy, b.ready) + b.time;
    sum += b.time;
  }
  out.allreduce = sum;
  out.finish = std::max(out.finish, busy);
  return out;
}

}  // namespace ppsim
