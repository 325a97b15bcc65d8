/// @file stages.cpp
/// @brief From a config to its stages: layer counts per stage (the partition), per-layer
/// partition costs, and each stage's summed costs under the memory model.
#include "ppsim/run/stages.h"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "ppsim/model/memory.h"
#include "ppsim/model/partition.h"
#include "ppsim/run/cluster.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/schedules/user_schedule.h"

namespace ppsim {

StageLayerBytes stage_layer_bytes(const Config& c, int first, int last) {
  StageLayerBytes sums;
  for (int i = first; i < last; ++i) {
    const LayerSpec& l = c.layers[i];
    sums.parameters += Bytes{l.parameter_bytes};
    sums.activation += Bytes{l.activation_bytes};
    sums.weight_activation += Bytes{l.weight_activation_bytes};
    sums.selective += Bytes{l.selective_recompute_bytes};
    sums.statics += Bytes{l.static_bytes};
    sums.largest_layer = std::max(sums.largest_layer, Bytes{l.parameter_bytes});
  }
  sums.input = Bytes{first > 0 ? c.layers[first - 1].output_bytes : 0};
  return sums;
}

namespace {

TimeNs collectives_time(const LayerCollectives& k, Bytes bytes, int n, const NetLink& link) {
  const std::int64_t ns = ring_collective_time(Collective::AllReduce, bytes, n, link).ns * k.all_reduce +
                          ring_collective_time(Collective::AllGather, bytes, n, link).ns * k.all_gather +
                          ring_collective_time(Collective::ReduceScatter, bytes, n, link).ns * k.reduce_scatter;
  return TimeNs{ns};
}

}  // namespace

CommGroups comm_groups(const Config& c) {
  CommGroups g;
  g.tensor = tensor_parallel_degree(c);
  if (g.tensor > 1) g.tensor_link = tensor_parallel_link(c);
  g.zero3 = c.memory.given && c.memory.sharding() == 3 ? data_parallel_degree(c) : 1;
  if (g.zero3 > 1) g.data_link = data_parallel_link(c);  // a topology walk: once per config, not per layer
  return g;
}

LayerComm layer_comm(const CommGroups& g, const LayerSpec& l) {
  LayerComm out;
  if (g.tensor > 1) {
    out.forward += collectives_time(l.tp_forward, Bytes{l.tp_comm_bytes}, g.tensor, g.tensor_link);
    out.backward += collectives_time(l.tp_backward, Bytes{l.tp_comm_bytes}, g.tensor, g.tensor_link);
  }
  if (g.zero3 > 1 && l.parameter_bytes > 0) {
    // ZeRO-3 gathers the layer's weights before its forward and again before its backward.
    const TimeNs gather = ring_collective_time(Collective::AllGather, Bytes{l.parameter_bytes}, g.zero3, g.data_link);
    out.forward += gather;
    out.backward += gather;
  }
  return out;
}

void apply_memory_model(const Config& c, int first, int last, StageCost& cost) {
  const StageMemory m = stage_memory(c.memory, data_parallel_degree(c), stage_layer_bytes(c, first, last));
  cost.activation = m.activation;
  cost.weight_activation = m.weight_activation;
  cost.static_extra = m.static_extra;
  if (c.memory.recompute == Recompute::Full) {
    cost.recompute = cost.forward;
    cost.backward += cost.forward;  // with F's collectives, which the recomputed forward runs again
    cost.backward_comm += cost.forward_comm;
  }
  if (c.memory.recompute == Recompute::Selective) {
    double extra_ms = 0;
    for (int i = first; i < last; ++i) extra_ms += c.layers[i].selective_recompute_ms;
    cost.recompute = TimeNs::from_ms(extra_ms);
    cost.backward += cost.recompute;
  }
}

std::int64_t memory_reserve_bytes(const Config& c) {
  if (c.memory.reserve_bytes >= 0) return c.memory.reserve_bytes;
  // A limit the user gave is what they can use; a card's capacity is not: the CUDA
  // context with cuBLAS/cuDNN workspaces (0.5-1 GiB), NCCL's buffers and the caching
  // allocator's fragmentation take about 2 GiB of it.
  return c.memory.limit_bytes > 0 || c.cluster.gpu_memory_bytes <= 0 ? 0 : kDefaultMemoryReserve;
}

std::int64_t memory_limit_bytes(const Config& c) {
  const std::int64_t card = c.memory.limit_bytes > 0 ? c.memory.limit_bytes : c.cluster.gpu_memory_bytes;
  if (card <= 0) return 0;
  return std::max<std::int64_t>(1, card - memory_reserve_bytes(c));
}

std::vector<std::int64_t> layer_costs_ns(const Config& c) {
  std::vector<std::int64_t> cost;
  cost.reserve(c.layers.size());
  const CommGroups groups = comm_groups(c);
  for (const LayerSpec& l : c.layers) {
    double ms = l.forward_ms + l.backward_ms;
    if (c.memory.recompute == Recompute::Full) ms += l.forward_ms;
    if (c.memory.recompute == Recompute::Selective) ms += l.selective_recompute_ms;
    std::int64_t ns = TimeNs::from_ms(ms).ns;
    if (groups.any()) {
      const LayerComm k = layer_comm(groups, l);
      ns += k.forward.ns * (c.memory.recompute == Recompute::Full ? 2 : 1) + k.backward.ns;
    }
    cost.push_back(ns);
  }
  return cost;
}

namespace {

/// The config's schedule, as prepare_run makes it; nullopt when it cannot be made
/// (prepare_run reports why).
std::optional<Schedule> schedule_of(const Config& c) {
  try {
    if (!c.pipeline.schedule_file.empty()) return load_user_schedule(c.pipeline.schedule_file, c.pipeline.chunks);
    return make_schedule(c.pipeline.schedule, ScheduleParams{c.pipeline.stages, c.pipeline.microbatches,
                                                             c.pipeline.chunks, c.pipeline.iterations});
  } catch (const ScheduleError&) {
    return std::nullopt;
  }
}

std::vector<int> balanced_for(const Config& c, int stages) {
  const std::vector<std::int64_t> cost = layer_costs_ns(c);
  const std::optional<Schedule> s = schedule_of(c);
  if (!s || s->num_stages != stages) return balanced_partition(cost, stages);
  const StagePlacement placement = placement_of(*s);
  const std::int64_t limit = memory_limit_bytes(c);
  // The memory of a holding is the formula stage_costs and the report use: the same
  // layer sums (stage_layer_bytes), stage_memory and stage_peak_memory.
  const int dp = data_parallel_degree(c);
  HoldingMemoryFn memory;
  if (limit > 0) {
    memory = [&](const StageHolding& h, int first, int last) -> std::int64_t {
      return stage_peak_memory(stage_memory(c.memory, dp, stage_layer_bytes(c, first, last)), s->weights,
                               h.peak_inflight)
          .value;
    };
  }
  DeviceSplit split = device_balanced_partition(cost, stages, placement, memory, limit);
  // Nothing fits the limit: balance by time alone, and the run reports the OOM.
  if (split.counts.empty()) return balanced_partition(cost, stages);
  return split.counts;
}

}  // namespace

std::vector<int> stage_layer_counts(const Config& c) {
  const int stages = c.pipeline.stages * c.pipeline.chunks;
  const int layers = static_cast<int>(c.layers.size());
  const auto& spec = c.pipeline.partition;
  auto fail = [&](const std::string& path, const std::string& problem) { throw ConfigError(c.file, path, problem); };
  if (stages > layers && spec.kind != PartitionSpec::Kind::Explicit)
    fail("pipeline", std::to_string(layers) + " layers cannot fill " + std::to_string(stages) + " stages (stages x chunks)");
  switch (spec.kind) {
    case PartitionSpec::Kind::Default:
      if (layers % stages != 0)
        fail("model.layers", std::to_string(layers) + " layers do not divide into " + std::to_string(stages) +
                                 " equal stages (set pipeline.partition to \"uniform\", \"balanced\" or a list)");
      return std::vector<int>(static_cast<std::size_t>(stages), layers / stages);
    case PartitionSpec::Kind::Uniform: return uniform_partition(layers, stages);
    case PartitionSpec::Kind::Balanced: return balanced_for(c, stages);
    case PartitionSpec::Kind::Explicit: {
      if (static_cast<int>(spec.counts.size()) != stages)
        fail("pipeline.partition", "lists " + std::to_string(spec.counts.size()) + " stages, the pipeline has " +
                                       std::to_string(stages) + " (stages x chunks)");
      long long sum = 0;
      for (int k : spec.counts) sum += k;
      if (sum != layers)
        fail("pipeline.partition", "layer counts sum to " + std::to_string(sum) + ", the model has " + std::to_string(layers));
      return spec.counts;
    }
  }
  return {};
}

std::vector<std::pair<int, int>> layer_ranges(const std::vector<int>& counts) {
  std::vector<std::pair<int, int>> ranges;
  int first = 0;
  for (int count : counts) {
    ranges.emplace_back(first, first + count);
    first += count;
  }
  return ranges;
}

std::vector<std::pair<int, int>> stage_layer_ranges(const Config& c) { return layer_ranges(stage_layer_counts(c)); }

std::vector<StageCost> stage_costs(const Config& c) { return stage_costs(c, stage_layer_counts(c)); }

std::vector<StageCost> stage_costs(const Config& c, const std::vector<int>& counts) {
  std::vector<StageCost> costs;
  const CommGroups groups = comm_groups(c);
  for (auto [first, last] : layer_ranges(counts)) {
    StageCost sc;
    double f = 0, b = 0, w = 0;
    for (int i = first; i < last; ++i) {
      const LayerSpec& l = c.layers[i];
      f += l.forward_ms;
      b += l.backward_ms;
      w += l.weight_grad_ms;
      sc.activation += Bytes{l.activation_bytes};
      sc.weight_activation += Bytes{l.weight_activation_bytes};
      sc.parameters += Bytes{l.parameter_bytes};
      sc.static_extra += Bytes{l.static_bytes};
    }
    sc.forward = TimeNs::from_ms(f);
    sc.backward = TimeNs::from_ms(b);
    sc.weight_grad = TimeNs::from_ms(w);
    if (groups.any()) {
      for (int i = first; i < last; ++i) {
        const LayerComm k = layer_comm(groups, c.layers[i]);
        sc.forward_comm += k.forward;
        sc.backward_comm += k.backward;
      }
      sc.forward += sc.forward_comm;  // blocking collectives: the op waits for them
      sc.backward += sc.backward_comm;
    }
    sc.output = Bytes{c.layers[last - 1].output_bytes};
    apply_memory_model(c, first, last, sc);
    costs.push_back(sc);
  }
  return costs;
}

}  // namespace ppsim
