// Static memory, recomputation and the memory limit. The formulas and their sources are
// in memory_model.h.
#include "ppsim/model/memory.h"

#include <algorithm>

#include "ppsim/model/topology.h"

namespace ppsim {

std::string optimizer_name(Optimizer o) { return o == Optimizer::Adam ? "adam" : "sgd"; }
std::string precision_name(Precision p) { return p == Precision::Mixed ? "mixed" : "fp32"; }
std::string recompute_name(Recompute r) {
  switch (r) {
    case Recompute::None: return "none";
    case Recompute::Selective: return "selective";
    case Recompute::Full: return "full";
  }
  return "none";
}
std::optional<Recompute> parse_recompute(const std::string& s) {
  if (s == "none") return Recompute::None;
  if (s == "selective") return Recompute::Selective;
  if (s == "full") return Recompute::Full;
  return std::nullopt;
}

BytesPerParam bytes_per_param(Optimizer optimizer, Precision precision) {
  if (precision == Precision::Mixed) return {2, 2, optimizer == Optimizer::Adam ? 12 : 4};
  return {4, 4, optimizer == Optimizer::Adam ? 8 : 0};
}

std::string zero_name(const MemorySpec& spec) {
  if (spec.distributed_optimizer && spec.zero < 1) return "distributed";
  return std::to_string(spec.zero);
}

namespace {
std::int64_t shard(std::int64_t bytes, int d) { return d > 1 ? (bytes + d - 1) / d : bytes; }
}  // namespace

std::int64_t static_bytes_for(const MemorySpec& spec, std::int64_t parameter_bytes, int data_parallel) {
  const BytesPerParam bpp = bytes_per_param(spec.optimizer, spec.precision);
  std::int64_t gradients = parameter_bytes * bpp.gradients / bpp.weights;
  std::int64_t optimizer = parameter_bytes * bpp.optimizer / bpp.weights;
  const int zero = spec.sharding();
  if (zero >= 1) optimizer = shard(optimizer, data_parallel);
  if (zero >= 2) gradients = shard(gradients, data_parallel);
  return gradients + optimizer;
}

StageMemory stage_memory(const MemorySpec& spec, int data_parallel, const StageLayerBytes& sums) {
  StageMemory m{sums.parameters, sums.activation, sums.weight_activation, sums.statics};
  if (spec.given) m.static_extra = Bytes{static_bytes_for(spec, sums.parameters.value, data_parallel)};
  if (spec.given && spec.sharding() == 3 && data_parallel > 1) {
    m.parameters = Bytes{shard(sums.parameters.value, data_parallel)};
    m.static_extra += sums.largest_layer * 2;  // gathered weights: the layer computing + the prefetched one
  }
  switch (spec.recompute) {
    case Recompute::None: break;
    case Recompute::Selective:
      m.activation -= sums.selective;
      m.weight_activation = std::min(m.weight_activation, m.activation);
      break;
    case Recompute::Full:
      m.static_extra += m.activation;  // one micro-batch's activations while B recomputes
      m.activation = sums.input;
      m.weight_activation = Bytes{};
      break;
  }
  return m;
}

Bytes stage_peak_memory(const StageMemory& m, WeightPolicy policy, int inflight) {
  return m.parameters * weight_versions(policy, inflight) + m.static_extra + m.activation * inflight;
}

Bytes stage_peak_memory(const StageCost& cost, WeightPolicy policy, int inflight) {
  return stage_peak_memory(StageMemory{cost.parameters, cost.activation, cost.weight_activation, cost.static_extra},
                           policy, inflight);
}

std::optional<OutOfMemory> find_out_of_memory(const SimResult& r, Bytes limit) {
  if (limit.value <= 0) return std::nullopt;
  std::optional<OutOfMemory> first;
  // Memory samples are grouped by device, time-ordered within each.
  std::vector<TimeNs> crossing(static_cast<std::size_t>(r.devices), TimeNs::max());
  for (const MemorySample& m : r.memory)
    if (m.bytes > limit && crossing[m.device] == TimeNs::max()) crossing[m.device] = m.t;
  for (int d = 0; d < r.devices; ++d) {
    const DeviceSummary& s = r.per_device[d];
    if (s.peak_memory <= limit) continue;
    TimeNs t = crossing[d];
    if (t == TimeNs::max()) t = s.weights + s.static_extra > limit ? r.first_start : s.peak_time;
    if (!first || t < first->time) first = OutOfMemory{d, t, s.peak_memory, limit};
  }
  return first;
}

}  // namespace ppsim
