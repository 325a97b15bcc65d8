#pragma once
/// @file config.h
/// @brief The experiment config (SPEC §7): model layers, cluster, pipeline shape.
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/engine/engine.h"
#include "ppsim/model/memory.h"
#include "ppsim/model/partition.h"
#include "ppsim/model/topology.h"
#include "ppsim/schedules/communication.h"

namespace ppsim {

/// @brief Bad input: the message is one line naming the file, the JSON path and the problem.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, const std::string& json_path, const std::string& problem)
      : std::runtime_error(file + ": " + (json_path.empty() ? std::string() : json_path + ": ") + problem) {}
};

/// @brief Collectives one layer runs inside one op (counts of each kind).
struct LayerCollectives {
  int all_reduce{0};
  int all_gather{0};
  int reduce_scatter{0};
  [[nodiscard]] bool any() const { return all_reduce + all_gather + reduce_scatter > 0; }
};

/// @brief One layer after `repeat` is expanded.
struct LayerSpec {
  std::string name;
  double forward_ms{0};
  double backward_ms{0};
  double weight_grad_ms{0};
  std::int64_t activation_bytes{0};
  std::int64_t weight_activation_bytes{0};
  std::int64_t parameter_bytes{0};
  std::int64_t output_bytes{0};
  std::int64_t static_bytes{0};  ///< gradients + optimizer state
  double flops{0};               ///< forward+backward FLOPs per micro-batch (0 = unknown)
  std::int64_t selective_recompute_bytes{0};  ///< part of activation_bytes selective recompute drops
  double selective_recompute_ms{0};           ///< time selective recompute adds to backward
  /// Tensor parallelism (Megatron-LM): the collectives of F and of B (input gradient)
  /// over the tensor-parallel group, each on `tp_comm_bytes` (b s h elements).
  std::int64_t tp_comm_bytes{0};
  LayerCollectives tp_forward;
  LayerCollectives tp_backward;
};

struct PipelineSpec {
  std::string schedule{"1f1b"};
  int stages{1};
  int microbatches{1};
  int chunks{1};
  int iterations{0};  ///< asynchronous schedules; 0 lets the schedule choose
  std::string schedule_file;  ///< a user schedule (JSON token lists) instead of `schedule`
  CommSemantics communication{CommSemantics::Ideal};  ///< how transfers behave (communication.h)
  /// pipeline.overlap in [0, 1]: run the schedule's overlapped F&B pairs as units
  /// (SimOptions::overlap); unset, they run as two ops in turn.
  std::optional<double> overlap;
  PartitionSpec partition;  ///< how layers are split into stages
};

/// `cluster.link`: a NetLink (model/topology.h), its latency and bandwidth, or the
/// measured curve's `segments` costs.link copies from a profile (link_curve.h).
using LinkSpec = NetLink;

struct Config {
  std::string file;  ///< where it came from, for messages
  std::vector<LayerSpec> layers;
  int micro_batch_size{1};
  int sequence_length{0};  ///< tokens per sample; 0 = the model has no tokens
  int devices{1};
  double device_peak_tflops{0};  ///< for MFU; 0 = unknown
  LinkSpec link;
  PipelineSpec pipeline;
  int cluster_devices{0};  ///< GPUs the cluster has (cluster.devices or nodes x gpus_per_node)
  ClusterSpec cluster;     ///< nodes, links, placement (topology.h)
  MemorySpec memory;       ///< optimizer, precision, recompute, limit (memory_model.h)
  ParallelSpec parallel;   ///< data parallelism (topology.h)
  nlohmann::json source;  ///< the parsed document
  /// The document as given when its model is costed from a profile or roofline
  /// ("costs"): apply_overrides re-costs it when b, t or sequence parallelism change.
  nlohmann::json costed;
};

/// @brief Limits that stop a run from exhausting memory.
inline constexpr std::int64_t kMaxMicrobatches = 1'000'000;
inline constexpr std::int64_t kMaxStages = 16'384;
inline constexpr std::int64_t kMaxChunks = 256;
inline constexpr std::int64_t kMaxLayers = 10'000'000;
inline constexpr std::int64_t kMaxOps = 100'000'000;

/// @brief Bounds on numbers that keep every derived time (int64 ns) and byte count
/// inside int64 (docs/config.md, "Limits"). Per field:
inline constexpr double kMaxLayerMs = 1e6;          ///< one layer's forward/backward/... time: 1000 s
inline constexpr double kMaxLatencyUs = 1e6;        ///< a link's latency: 1 s
inline constexpr double kMinBandwidthGBps = 1e-3;   ///< a link's bandwidth: 1 MB/s ...
inline constexpr double kMaxBandwidthGBps = 1e6;    ///< ... to 1 PB/s
inline constexpr double kMaxGiB = 1 << 20;          ///< a memory size: 1 PiB
/// @brief and for the whole run (check_pipeline, with the shape): all work of one
/// iteration on one device, compute and transfers, under kMaxRunNs; all bytes of the
/// model times (micro-batches + stages + 2) under kMaxRunBytes.
inline constexpr double kMaxRunNs = 1e18;  ///< about 31.7 years
inline constexpr double kMaxRunBytes = 4.6e18;  ///< 2^62

/// @brief Reads and parses a JSON file through read_json_input (ppsim/input/json_file.h:
/// regular files only, bounded size, depth and strings); throws ConfigError(path, "",
/// reason) when it cannot be read, is malformed, breaks a limit, or holds a number that
/// overflows a double.
nlohmann::json read_json_file(const std::string& path);

/// @brief Parses and validates a config document; throws ConfigError.
Config parse_config(const nlohmann::json& doc, const std::string& file);
/// @brief The same; with `check` false the whole-config checks (devices, pipeline shape)
/// are left to the caller, which applies overrides first (apply_overrides).
Config parse_config(const nlohmann::json& doc, const std::string& file, bool check);

/// @brief Reads, parses and validates a config file; throws ConfigError.
Config load_config(const std::string& path);

/// @brief Checks the pipeline shape against the model and cluster and the size limits
/// (called again after command-line overrides). `origin` names where the shape came from.
void check_pipeline(const Config& config);

}  // namespace ppsim
