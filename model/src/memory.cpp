// Static memory, recomputation and the memory limit. The formulas and their sources are
// in memory_model.h.
#include "ppsim/model/memory.h"

#include <algorithm>

#include "ppsim/run/config.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/cluster.h"

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

std::int64_t static_bytes_for(const MemorySpec& spec, std::int64_t parameter_bytes, int data_parallel) {
  const BytesPerParam bpp = bytes_per_param(spec.optimizer, spec.precision);
  const std::int64_t gradients = parameter_bytes * bpp.gradients / bpp.weights;
  std::int64_t optimizer = parameter_bytes * bpp.optimizer / bpp.weights;
  if (spec.zero1 && data_parallel > 1) optimizer = (optimizer + data_parallel - 1) / data_parallel;
  return gradients + optimizer;
}

StageLayerBytes stage_layer_bytes(const Config& c, int first, int last) {
  StageLayerBytes sums;
  for (int i = first; i < last; ++i) {
    const LayerSpec& l = c.layers[i];
    sums.parameters += Bytes{l.parameter_bytes};
    sums.activation += Bytes{l.activation_bytes};
    sums.weight_activation += Bytes{l.weight_activation_bytes};
    sums.selective += Bytes{l.selective_recompute_bytes};
    sums.statics += Bytes{l.static_bytes};
  }
  sums.input = Bytes{first > 0 ? c.layers[first - 1].output_bytes : 0};
  return sums;
}

StageMemory stage_memory(const MemorySpec& spec, int data_parallel, const StageLayerBytes& sums) {
  StageMemory m{sums.parameters, sums.activation, sums.weight_activation, sums.statics};
  if (spec.given) m.static_extra = Bytes{static_bytes_for(spec, sums.parameters.value, data_parallel)};
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

void apply_memory_model(const Config& c, int first, int last, StageCost& cost) {
  const StageMemory m = stage_memory(c.memory, data_parallel_degree(c), stage_layer_bytes(c, first, last));
  cost.activation = m.activation;
  cost.weight_activation = m.weight_activation;
  cost.static_extra = m.static_extra;
  if (c.memory.recompute == Recompute::Full) cost.backward += cost.forward;
  if (c.memory.recompute == Recompute::Selective) {
    double extra_ms = 0;
    for (int i = first; i < last; ++i) extra_ms += c.layers[i].selective_recompute_ms;
    cost.backward += TimeNs::from_ms(extra_ms);
  }
}

std::int64_t memory_limit_bytes(const Config& c) {
  return c.memory.limit_bytes > 0 ? c.memory.limit_bytes : c.cluster.gpu_memory_bytes;
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

std::int64_t transformer_block_activation_bytes(std::int64_t s, std::int64_t b, std::int64_t h, std::int64_t a) {
  return 34 * s * b * h + transformer_attention_bytes(s, b, a);
}
std::int64_t transformer_attention_bytes(std::int64_t s, std::int64_t b, std::int64_t a) { return 5 * a * s * s * b; }
std::int64_t transformer_block_parameters(std::int64_t h) { return 12 * h * h + 13 * h; }

}  // namespace ppsim
