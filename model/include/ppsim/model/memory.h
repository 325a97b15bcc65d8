#pragma once
/// @file memory_model.h
/// @brief Static memory (weights, gradients, optimizer state), activation stash under
/// recomputation, and the per-device memory limit (OOM).
///
/// Bytes per parameter (Rajbhandari et al., ZeRO, 2020, Sec. 3.1; Megatron-LM):
///   precision "mixed" (fp16/bf16 training): weights 2, gradients 2, and the optimizer
///     keeps an fp32 master copy (4) plus, for Adam, momentum (4) and variance (4):
///     Adam 2+2+12 = 16 B/param, SGD 2+2+4 = 8 B/param.
///   precision "fp32": weights 4, gradients 4; Adam momentum+variance 8 (16 B/param),
///     SGD 0 (8 B/param). "sgd" is plain SGD without momentum.
///   ZeRO (Rajbhandari et al. 2020, Sec. 5) over the data-parallel degree d, rounded up
///   per stage:
///     stage 1 (and Megatron-LM's distributed optimizer): optimizer state / d;
///     stage 2: gradients and optimizer state / d;
///     stage 3: weights, gradients and optimizer state / d, plus a working buffer of two
///       layers' gathered weights (the layer computing and the one prefetched) held for
///       the whole run. Its all-gathers are costed in the stage times (run/stages.h).
///   Megatron-LM keeps fp32 main gradients (4 B/param, not 2) beside a distributed
///   optimizer; this model counts gradients at the precision's bytes for every stage.
/// The number of parameters of a layer is its `parameter_bytes` divided by the weight
/// bytes of the precision (parameter_bytes are the working weights as trained).
///
/// Recompute (Korthikanti et al., "Reducing Activation Recomputation in Large
/// Transformer Models", 2022):
///   none:      every layer stashes `activation_bytes` per micro-batch (a transformer
///              block: sbh(34 + 5as/h) bytes, Sec. 4.1).
///   selective: each layer stashes activation_bytes - selective_recompute_bytes (a
///              block drops the 5as^2b attention scores/softmax/dropout term, keeping
///              34sbh); backward grows by selective_recompute_ms (the attention core's
///              forward, about forward * s/(6h+s) for a block).
///   full:      a stage stashes only its input per micro-batch (the previous layer's
///              output_bytes; 0 for the first stage, whose input is token ids), B
///              recomputes the stage's forward first (B += F), and one micro-batch's full
///              stage activations are live while it does: that workspace is counted
///              for the whole run, with the static bytes. Under split backward the
///              weight-gradient part keeps nothing beyond the workspace.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ppsim/engine/engine.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

struct Run;

enum class Optimizer { Adam, Sgd };
enum class Precision { Mixed, Fp32 };
enum class Recompute { None, Selective, Full };

std::string optimizer_name(Optimizer o);
std::string precision_name(Precision p);
std::string recompute_name(Recompute r);
/// @brief Parses "none" / "selective" / "full"; nullopt otherwise.
std::optional<Recompute> parse_recompute(const std::string& s);

/// @brief The config's `memory` section.
struct MemorySpec {
  bool given{false};             ///< a `memory` section was present: static bytes come from the model
  std::int64_t limit_bytes{0};   ///< per-device limit; 0 = none (a cluster preset may supply one)
  std::int64_t reserve_bytes{-1};///< kept free of the limit (CUDA context, NCCL buffers); -1 = default
  Optimizer optimizer{Optimizer::Adam};
  Precision precision{Precision::Mixed};
  Recompute recompute{Recompute::None};
  int zero{0};                      ///< ZeRO stage 0..3 (memory.zero; memory.zero1 = true is 1)
  bool distributed_optimizer{false};///< Megatron-LM's: shards like ZeRO stage 1
  /// @brief The stage whose sharding applies: zero, or 1 for the distributed optimizer.
  [[nodiscard]] int sharding() const { return distributed_optimizer && zero < 1 ? 1 : zero; }
};

/// @brief "0".."3" or "distributed" as the report and sweep name it.
std::string zero_name(const MemorySpec& spec);

/// @brief Bytes per parameter for weights, gradients and optimizer state.
struct BytesPerParam {
  int weights{2};
  int gradients{2};
  int optimizer{12};
};
BytesPerParam bytes_per_param(Optimizer optimizer, Precision precision);

/// @brief Static bytes (gradients + optimizer state, sharded over `dp` by the ZeRO stage)
/// of a stage whose weights take `parameter_bytes`.
std::int64_t static_bytes_for(const MemorySpec& spec, std::int64_t parameter_bytes, int data_parallel);

/// @brief Sums over a stage's layers [first, last): what the memory model starts from.
/// run/stages.h fills it from a config (stage_layer_bytes) for the costs and the partitioner.
struct StageLayerBytes {
  Bytes parameters;         ///< sum of parameter_bytes (one weight version)
  Bytes activation;         ///< sum of activation_bytes
  Bytes weight_activation;  ///< sum of weight_activation_bytes
  Bytes selective;          ///< sum of selective_recompute_bytes
  Bytes statics;            ///< sum of static_bytes (used when there is no memory section)
  Bytes input;              ///< output_bytes of layer first-1; 0 for the first stage
  Bytes largest_layer{};    ///< the largest parameter_bytes of one layer (ZeRO-3's buffer)
};

/// @brief A stage's memory under the memory section and recompute mode: the fields of
/// StageCost with the same names.
struct StageMemory {
  Bytes parameters;         ///< one weight version
  Bytes activation;         ///< stashed per micro-batch in flight
  Bytes weight_activation;  ///< part of `activation` kept until W under split backward
  Bytes static_extra;       ///< gradients + optimizer state (+ the full-recompute workspace)
};

/// @brief The memory model, the one place it is written (see the file comment):
/// static bytes from the memory section when given (else the layers' static_bytes),
/// selective recompute drops `selective` from the stash, full recompute stashes only
/// `input` and counts the stage's activations as a workspace with the static bytes.
StageMemory stage_memory(const MemorySpec& spec, int data_parallel, const StageLayerBytes& sums);

/// @brief Peak memory of a stage on the device that runs it, when at most `inflight`
/// micro-batches are stashed at once: parameters x weight_versions(policy, inflight) +
/// static_extra + activation x inflight.
Bytes stage_peak_memory(const StageMemory& memory, WeightPolicy policy, int inflight);
/// @brief The same for a stage's costs (their memory fields).
Bytes stage_peak_memory(const StageCost& cost, WeightPolicy policy, int inflight);

/// @brief Where a run first runs out of memory.
struct OutOfMemory {
  int device{0};
  TimeNs time;          ///< first instant its memory exceeds the limit
  Bytes peak;           ///< its peak memory
  Bytes limit;
  [[nodiscard]] Bytes excess() const { return peak - limit; }
};

/// @brief The device that exceeds `limit` first in time (ties: the lower index), or
/// nullopt when every device fits. Uses the memory samples when recorded, else the
/// time the static part alone exceeds (the run's start) or the peak time.
std::optional<OutOfMemory> find_out_of_memory(const SimResult& result, Bytes limit);

}  // namespace ppsim
