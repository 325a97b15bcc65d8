#pragma once
/// @file overrides.h
/// @brief Overrides of a loaded config. `ppsim run`'s flags, each `ppsim sweep` grid point
/// and each `ppsim compare` schedule go through apply_overrides, so one override gives
/// one config whichever command asks for it.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "ppsim/run/config.h"

namespace ppsim {

/// @brief What a command may change in a config; unset fields keep the config's value.
struct ConfigOverrides {
  std::optional<std::string> schedule;      ///< pipeline.schedule
  std::optional<int> stages;                ///< pipeline.stages p
  std::optional<int> microbatches;          ///< pipeline.microbatches m
  std::optional<int> chunks;                ///< pipeline.chunks v
  std::optional<int> micro_batch_size;      ///< model.micro_batch_size b
  std::optional<PartitionSpec> partition;   ///< pipeline.partition
  std::optional<Recompute> recompute;       ///< memory.recompute
  std::optional<int> data_parallel;         ///< parallel.data_parallel
  std::optional<int> tensor_parallel;       ///< parallel.tensor_parallel t
  std::optional<bool> sequence_parallel;    ///< parallel.sequence_parallel
  std::optional<int> zero;                  ///< memory.zero 0..3; -1 = Megatron's distributed optimizer
  std::string schedule_file;                ///< a user schedule; "" = none
  std::optional<CommSemantics> communication;  ///< pipeline.communication
  std::optional<double> overlap;               ///< pipeline.overlap
};

/// @brief The config with `o` applied and checked again (resolve_devices, check_pipeline):
/// throws ConfigError naming the config file when the result is not a valid config, and
/// ScheduleError when the user schedule file is bad.
///
/// Devices (the replica rule): the world size stays fixed, as in Megatron-LM or
/// torchtitan. Without a data-parallel degree (no parallel.data_parallel in the config,
/// no data_parallel override) the devices are the cluster's (cluster.devices, or nodes x
/// gpus_per_node) whatever the stages become, and data parallel = devices / stages; so
/// devices 8 with stages 4 -> 2 gives 4 replicas, and stages that do not divide the
/// devices are an error. With a degree, devices = stages x data_parallel, which must fit
/// in the cluster.
///
/// schedule: a built-in schedule by name (it replaces a user schedule).
/// schedule_file: the user schedule's own shape (devices, micro-batches, chunks) sets
/// stages, microbatches and chunks, over any of those overrides.
/// micro_batch_size, tensor_parallel, sequence_parallel: a transformer costed from a
/// profile or roofline (Config::costed) is costed again at the new shard shape
/// (recost_shard). Explicit layers are one GPU's costs as given: under a new b their
/// per-micro-batch costs (times, FLOPs, activation and output bytes) scale linearly with
/// b / the config's size (weights do not); a new t or sequence parallelism changes only
/// the cluster shape, never their costs (no division by t).
/// zero: the ZeRO stage of the memory model (-1 = distributed optimizer); needs a
/// memory section.
Config apply_overrides(const Config& base, ConfigOverrides o);

/// @brief The shard shape a transformer is costed at.
struct ShardShape {
  int micro_batch_size{1};
  int tensor_parallel{1};
  bool sequence_parallel{false};
  auto operator<=>(const ShardShape&) const = default;
};
/// @brief The shape of a config.
ShardShape shard_shape(const Config& config);

/// @brief `base` (costed from a profile or roofline) parsed again from its document at
/// shard shape `shape`, without the whole-config checks (apply_overrides makes them);
/// nullopt for explicit layers. Throws ConfigError when the costs cannot be had there.
std::optional<Config> recost_shard(const Config& base, const ShardShape& shape);

/// @brief Overrides from a JSON object {name: value} with the sweep grid's names
/// (sweep_axis_names; values already checked by parse_sweep); unknown names are ignored.
ConfigOverrides overrides_from_json(const nlohmann::json& o);

/// @brief Reads the config file and applies `o`. `ppsim run` and `ppsim compare` load
/// their config this way.
Config load_config_with_overrides(const std::string& path, ConfigOverrides o);

}  // namespace ppsim
