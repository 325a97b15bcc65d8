#pragma once
/// @file partition.h
/// @brief Splitting the model's layers into contiguous pipeline stages: uniform
/// (equal layer counts), balanced (dynamic programming that minimises the slowest
/// stage, optionally under a per-stage memory cap), or an explicit list of counts.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ppsim {

struct Config;

/// @brief How `pipeline.partition` asks for layers to be split.
struct PartitionSpec {
  enum class Kind {
    Default,   ///< absent: equal counts, and the layers must divide evenly (SPEC §7)
    Uniform,   ///< "uniform": equal counts; a remainder goes to the middle stages
    Balanced,  ///< "balanced": minimise the slowest stage's F+B time
    Explicit,  ///< a list of layer counts, one per model stage
  };
  Kind kind{Kind::Default};
  std::vector<int> counts;  ///< Explicit only
  /// @brief "uniform", "balanced" or "explicit" ("uniform" for Default).
  [[nodiscard]] std::string name() const;
};

/// @brief Equal layer counts over `stages`. With `layers = q*stages + r`, the r stages
/// starting at index (stages - r) / 2 get q+1 layers, so the first and last stages
/// (which often also hold the embedding and the head) get the smaller share.
std::vector<int> uniform_partition(int layers, int stages);

/// @brief Memory of model stage `stage` if it held layers [first, last).
using StageMemoryFn = std::function<std::int64_t(int stage, int first, int last)>;

/// @brief Contiguous split of `layer_cost.size()` layers into `stages` non-empty stages
/// minimising the largest per-stage sum of `layer_cost` (exact, O(stages * layers^2)).
/// With `memory` and `cap` > 0 only splits whose every stage has memory(stage, first,
/// last) <= cap are allowed. Among equally good splits it returns the one whose stage
/// boundaries are lexicographically smallest. Returns an empty vector when no split
/// fits the cap; throws std::invalid_argument when stages is not in 1..layers.
std::vector<int> balanced_partition(const std::vector<std::int64_t>& layer_cost, int stages,
                                    const StageMemoryFn& memory = {}, std::int64_t cap = 0);

/// @brief The largest per-stage sum of `layer_cost` for the split `counts`.
std::int64_t slowest_stage_cost(const std::vector<std::int64_t>& layer_cost, const std::vector<int>& counts);

/// @brief Layer counts per model stage (stages * chunks of them) for the config's
/// partition. Throws ConfigError when an explicit list does not fit the model.
std::vector<int> stage_layer_counts(const Config& config);

/// @brief Per-layer cost the balanced partitioner minimises: F + B time in ns, with the
/// recompute mode's extra forward work included.
std::vector<std::int64_t> layer_costs_ns(const Config& config);

}  // namespace ppsim
