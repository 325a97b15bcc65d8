#pragma once
/// @file partition.h
/// @brief Splitting the model's layers into contiguous pipeline stages: uniform
/// (equal layer counts), balanced (the busiest device's load minimised, where a device
/// may run several stages, under the per-device memory limit), or an explicit list.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ppsim {

struct Schedule;

/// @brief How `pipeline.partition` asks for layers to be split.
struct PartitionSpec {
  enum class Kind {
    Default,   ///< absent: equal counts, and the layers must divide evenly (SPEC §7)
    Uniform,   ///< "uniform": equal counts; a remainder goes to the middle stages
    Balanced,  ///< "balanced": minimise the busiest device's F+B time
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
/// minimising the largest per-stage sum of `layer_cost`. Without a cap: exact, a binary
/// search over the bottleneck with a greedy test on prefix sums, O(stages x log(layers) x
/// log(total cost)) (10^6 layers into 1000 stages in milliseconds). With `memory` and
/// `cap` > 0, where only splits whose every stage has memory(stage, first, last) <= cap
/// are allowed: up to kExactCappedPartitionSteps (capped_partition_steps), an exact
/// dynamic program of O(stages x layers) memory and up to O(stages x layers^2) steps;
/// beyond, the same binary search with a greedy test that also keeps each stage within
/// the cap (each stage ends as far as its cost and memory allow; memory must grow with a
/// stage's last layer), O(layers x log(layers) x log(total cost)) memory evaluations. The
/// greedy is exact when a stage's memory also grows as its first layer moves earlier; a
/// memory that depends on the first layer's input can make it miss the least bottleneck,
/// or every split, that the dynamic program would find (the split it returns always fits).
/// Among equally good splits the exact paths return the one whose stage boundaries are
/// lexicographically smallest; the greedy, the stages that end as late as they can.
/// Returns an empty vector when no split fits the cap (or the greedy finds none); throws
/// std::invalid_argument when stages is not in 1..layers.
std::vector<int> balanced_partition(const std::vector<std::int64_t>& layer_cost, int stages,
                                    const StageMemoryFn& memory = {}, std::int64_t cap = 0);

/// @brief balanced_partition's path beyond kExactCappedPartitionSteps: the least bound
/// its greedy meets, by binary search over bounds; the split, or empty when the greedy
/// finds none at any bound. Same arguments and errors as balanced_partition (`memory`
/// required, `cap` > 0).
std::vector<int> greedy_capped_partition(const std::vector<std::int64_t>& layer_cost, int stages,
                                         const StageMemoryFn& memory, std::int64_t cap);

/// @brief Steps of balanced_partition's dynamic program under a memory cap, an upper
/// bound: stages x layers^2 (saturating).
double capped_partition_steps(int layers, int stages);
/// @brief Largest capped_partition_steps the exact dynamic program runs (a few seconds at
/// most); larger shapes use the near-linear greedy (balanced_partition).
inline constexpr double kExactCappedPartitionSteps = 1e9;

/// @brief One model stage a device runs, as its schedule lays it out.
struct StageHolding {
  int stage{0};          ///< model stage index (what the engine's stage costs are indexed by)
  int pipe{0};           ///< which pipe of a bidirectional schedule
  int microbatches{0};   ///< its forward ops on this device: the stage's F+B work, that many times
  int peak_inflight{0};  ///< most of its micro-batches stashed on this device at once (op order)
};

/// @brief [device] -> the stages it runs, in the order it first runs them.
using StagePlacement = std::vector<std::vector<StageHolding>>;

/// @brief The placement of a schedule, read from its op lists (so it holds for every
/// registered schedule and for user schedules): one holding per (pipe, stage) a device
/// runs forward ops of. 1F1B: device d runs stage d; interleaved: d, d+p, d+2p, ...;
/// zbv and dualpipev: d and 2p-1-d; chimera: stage d of one pipe, p-1-d of the other.
StagePlacement placement_of(const Schedule& schedule);

/// @brief Memory a device needs for holding `h` if its stage held layers [first, last).
using HoldingMemoryFn = std::function<std::int64_t(const StageHolding& h, int first, int last)>;

/// @brief The load of the busiest device: max over devices of the sum over its holdings
/// of microbatches x (sum of `layer_cost` over the holding's stage under `counts`).
std::int64_t busiest_device_load(const std::vector<std::int64_t>& layer_cost, const StagePlacement& placement,
                                 const std::vector<int>& counts);

/// @brief What device_balanced_partition found.
struct DeviceSplit {
  std::vector<int> counts;        ///< layers per model stage; empty when no split fits the cap
  std::int64_t busiest{0};        ///< busiest_device_load of `counts`
  std::int64_t slowest_stage{0};  ///< slowest_stage_cost of `counts`
  bool exact{true};               ///< false when a search ran out of its node budget
  std::int64_t nodes{0};          ///< search nodes visited (a deterministic measure of work)
};

/// @brief Contiguous split of the layers into `stages` non-empty model stages that
/// minimises the busiest device's load (busiest_device_load) when devices run the stages
/// of `placement`; with `memory` and `cap` > 0, only splits where every device's memory,
/// the sum of memory(h, first, last) over its holdings, is <= cap. Among splits with the
/// least busiest load it takes those with the least slowest stage, and among those the
/// one with the lexicographically smallest boundaries.
///
/// Algorithm. When every device runs exactly one stage, once, with equal micro-batch
/// counts (1F1B, GPipe, ...), device load is stage cost and this is balanced_partition,
/// answer and tie-breaking alike. Otherwise (micro-batch counts divided by their gcd):
///  1. Seeds: balanced_partition under the per-stage cap cap / (most stages on one
///     device), a stage's memory its largest holding's (for interleaved and the
///     V-shaped schedules, the split the partitioner made before it balanced devices);
///     uniform_partition;
///     and a greedy split (each stage takes the most layers that keep its devices within
///     an even share of the room they have left) for the least target load it meets,
///     then the least stage cap. The best that fits the cap, by (busiest, slowest), is
///     polished by local search: shift a run of consecutive boundaries by one layer
///     while that lowers (busiest, slowest).
///  2. Branch and bound over stage boundaries in order, stage k taking layers [i, j),
///     keeping each device's load and memory: first for a lower busiest load (largest j
///     first), then, at that load, a lower slowest stage (binary search over the stage
///     costs there are, each bound tried in lexicographic order, smallest j first), and
///     last the lexicographically first split meeting both. A boundary is cut off once a
///     holder's load would pass the bound or the stage cost its bound (both only grow
///     with j), skipped when a holder's memory would pass the cap; a node is cut off when
///     the remaining layers' cost, times the least micro-batch weight of the remaining
///     stages, exceeds the room left under the bound on the devices still to get a
///     stage. Nodes that fail are memoised on (k, i, loads and memory of those devices).
/// Beyond 10^4 layers or 256 stages steps 1's polish and 2 are skipped (`exact` false):
/// the best seed is the answer, found in time near-linear in layers x stages.
/// Each search has a node budget (a few thousand nodes; a 40-layer, 16-stage model takes
/// 1-2 ms in all). Small models finish within it: the answer is then exact, the least
/// busiest load, then slowest stage, lexicographically first, as brute force finds it.
/// When a budget runs out `exact` is false and the answer is the best split found, never
/// worse by busiest load than the seeds.
/// Throws std::invalid_argument when stages is not in 1..layers or a holding names a
/// stage outside 0..stages-1.
DeviceSplit device_balanced_partition(const std::vector<std::int64_t>& layer_cost, int stages,
                                      const StagePlacement& placement, const HoldingMemoryFn& memory = {},
                                      std::int64_t cap = 0);

/// @brief The largest per-stage sum of `layer_cost` for the split `counts`.
std::int64_t slowest_stage_cost(const std::vector<std::int64_t>& layer_cost, const std::vector<int>& counts);

}  // namespace ppsim
