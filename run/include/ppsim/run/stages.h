#pragma once
/// @file stages.h
/// @brief From a config to its stages: the partition of its layers, their costs, and
/// each stage's memory under the memory model (model/memory.h holds the formula).
#include <cstdint>
#include <utility>
#include <vector>

#include "ppsim/engine/engine.h"
#include "ppsim/model/memory.h"
#include "ppsim/run/config.h"

namespace ppsim {

/// @brief The sums of the config's layers [first, last).
StageLayerBytes stage_layer_bytes(const Config& config, int first, int last);

/// @brief Applies the memory section and recompute mode to the summed cost of layers
/// [first, last) of the config (stage_costs calls it for each stage): stage_memory for
/// the memory fields, and the recompute's extra backward time.
void apply_memory_model(const Config& config, int first, int last, StageCost& cost);

/// @brief Default memory.reserve_GiB when the limit is a card's capacity: 2 GiB.
inline constexpr std::int64_t kDefaultMemoryReserve = std::int64_t{2} << 30;

/// @brief Bytes kept free of the limit: memory.reserve_GiB, else kDefaultMemoryReserve
/// when the limit is the cluster's GPU memory, else 0 (a limit the user gave is usable).
std::int64_t memory_reserve_bytes(const Config& config);

/// @brief The per-device memory limit in force: (memory.limit_bytes, else the cluster's
/// GPU memory) minus memory_reserve_bytes; 0 (none) without either.
std::int64_t memory_limit_bytes(const Config& config);

/// @brief Time one layer's blocking collectives add to its F and its B.
struct LayerComm {
  TimeNs forward;
  TimeNs backward;
};
/// @brief The groups a config's layers run blocking collectives over, and their links.
struct CommGroups {
  int tensor{1};         ///< t; collectives on tensor_link when > 1
  NetLink tensor_link;
  int zero3{1};          ///< data-parallel degree under ZeRO-3 (1 otherwise); gathers on data_link
  NetLink data_link;
  [[nodiscard]] bool any() const { return tensor > 1 || zero3 > 1; }
};
CommGroups comm_groups(const Config& config);

/// @brief Tensor parallelism: the layer's collectives (tp_forward, tp_backward) over the
/// t GPUs on tensor_parallel_link, each ring_collective_time; ZeRO-3: one all-gather of
/// the layer's weights over the data-parallel degree before F and one before B, on
/// data_parallel_link. Full recompute repeats F's (stage_costs adds F to B).
LayerComm layer_comm(const CommGroups& groups, const LayerSpec& layer);

/// @brief Layer counts per model stage (stages * chunks of them) for the config's
/// partition. "balanced" runs device_balanced_partition over the placement of the
/// config's schedule, each holding's memory the memory model's stage_peak_memory, under
/// memory_limit_bytes; when nothing fits (or the schedule cannot be made) it balances by
/// time alone. Throws ConfigError when an explicit list does not fit the model.
std::vector<int> stage_layer_counts(const Config& config);

/// @brief Per-layer cost the balanced partitioner minimises: F + B time in ns, with the
/// recompute mode's extra forward work included.
std::vector<std::int64_t> layer_costs_ns(const Config& config);

/// @brief Splits layers into stages*chunks contiguous stages (stage_layer_counts) and
/// sums their costs under the memory model.
std::vector<StageCost> stage_costs(const Config& config);
/// @brief The same for a partition already made (`counts` layers per stage).
std::vector<StageCost> stage_costs(const Config& config, const std::vector<int>& counts);

/// @brief Layer ranges [first, last) of consecutive stages of `counts` layers.
std::vector<std::pair<int, int>> layer_ranges(const std::vector<int>& counts);

/// @brief Per-stage layer ranges [first, last) of the partition.
std::vector<std::pair<int, int>> stage_layer_ranges(const Config& config);

}  // namespace ppsim
