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

void apply_memory_model(const Config& c, int first, int last, StageCost& cost) {
  Bytes workspace{};
  switch (c.memory.recompute) {
    case Recompute::None: break;
    case Recompute::Selective: {
      Bytes dropped{};
      double extra_ms = 0;
      for (int i = first; i < last; ++i) {
        dropped += Bytes{c.layers[i].selective_recompute_bytes};
        extra_ms += c.layers[i].selective_recompute_ms;
      }
      cost.activation -= dropped;
      cost.weight_activation = std::min(cost.weight_activation, cost.activation);
      cost.backward += TimeNs::from_ms(extra_ms);
      break;
    }
    case Recompute::Full:
      workspace = cost.activation;
      cost.activation = Bytes{first > 0 ? c.layers[first - 1].output_bytes : 0};
      cost.weight_activation = Bytes{};
      cost.backward += cost.forward;
      break;
  }
  if (c.memory.given) cost.static_extra = Bytes{static_bytes_for(c.memory, cost.parameters.value, data_parallel_degree(c))};
  cost.static_extra += workspace;
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
