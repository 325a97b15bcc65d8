// Partitioning layers into contiguous stages. The balanced partitioner is the exact
// min-max dynamic program of GPipe's and PipeDream's partitioners, solved over suffixes
// so that the forward reconstruction can pick the lexicographically smallest optimal
// boundaries (a deterministic answer among ties).
#include "ppsim/model/partition.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "ppsim/run/config.h"
#include "ppsim/model/memory.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/cluster.h"

namespace ppsim {

std::string PartitionSpec::name() const {
  switch (kind) {
    case Kind::Default:
    case Kind::Uniform: return "uniform";
    case Kind::Balanced: return "balanced";
    case Kind::Explicit: return "explicit";
  }
  return "uniform";
}

std::vector<int> uniform_partition(int layers, int stages) {
  if (stages < 1 || layers < stages)
    throw std::invalid_argument(std::to_string(layers) + " layers cannot fill " + std::to_string(stages) + " stages");
  const int q = layers / stages;
  const int r = layers % stages;
  std::vector<int> counts(static_cast<std::size_t>(stages), q);
  const int from = (stages - r) / 2;
  for (int k = 0; k < r; ++k) ++counts[static_cast<std::size_t>(from + k)];
  return counts;
}

std::int64_t slowest_stage_cost(const std::vector<std::int64_t>& layer_cost, const std::vector<int>& counts) {
  std::int64_t worst = 0;
  std::size_t i = 0;
  for (int c : counts) {
    std::int64_t sum = 0;
    for (int k = 0; k < c; ++k) sum += layer_cost.at(i++);
    worst = std::max(worst, sum);
  }
  return worst;
}

std::vector<int> balanced_partition(const std::vector<std::int64_t>& layer_cost, int stages,
                                    const StageMemoryFn& memory, std::int64_t cap) {
  const int n = static_cast<int>(layer_cost.size());
  if (stages < 1 || stages > n)
    throw std::invalid_argument("cannot split " + std::to_string(n) + " layers into " + std::to_string(stages) + " stages");
  constexpr std::int64_t kInf = std::numeric_limits<std::int64_t>::max();
  std::vector<std::int64_t> prefix(static_cast<std::size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + layer_cost[i];
  const bool capped = memory && cap > 0;
  auto fits = [&](int stage, int first, int last) { return !capped || memory(stage, first, last) <= cap; };
  // best[k][i]: smallest bottleneck for layers [i, n) in the last k stages (stage
  // indices stages-k .. stages-1); kInf when impossible.
  const auto width = static_cast<std::size_t>(n) + 1;
  std::vector<std::int64_t> best(static_cast<std::size_t>(stages + 1) * width, kInf);
  auto at = [&](int k, int i) -> std::int64_t& { return best[static_cast<std::size_t>(k) * width + i]; };
  for (int i = 0; i < n; ++i)
    if (fits(stages - 1, i, n)) at(1, i) = prefix[n] - prefix[i];
  for (int k = 2; k <= stages; ++k) {
    const int stage = stages - k;
    for (int i = 0; i + k <= n; ++i) {
      std::int64_t b = kInf;
      for (int j = i + 1; j + (k - 1) <= n; ++j) {
        const std::int64_t rest = at(k - 1, j);
        if (rest == kInf) continue;
        const std::int64_t here = prefix[j] - prefix[i];
        if (std::max(here, rest) >= b) {
          if (here >= b) break;  // later ends only make this stage slower
          continue;
        }
        if (!fits(stage, i, j)) continue;
        b = std::max(here, rest);
      }
      at(k, i) = b;
    }
  }
  const std::int64_t target = at(stages, 0);
  if (target == kInf) return {};
  std::vector<int> counts;
  int i = 0;
  for (int k = stages; k >= 2; --k) {
    const int stage = stages - k;
    int chosen = -1;
    for (int j = i + 1; j + (k - 1) <= n; ++j) {
      const std::int64_t rest = at(k - 1, j);
      if (rest == kInf || prefix[j] - prefix[i] > target) continue;
      if (std::max(prefix[j] - prefix[i], rest) <= target && fits(stage, i, j)) {
        chosen = j;
        break;
      }
    }
    counts.push_back(chosen - i);
    i = chosen;
  }
  counts.push_back(n - i);
  return counts;
}

std::vector<std::int64_t> layer_costs_ns(const Config& c) {
  std::vector<std::int64_t> cost;
  cost.reserve(c.layers.size());
  for (const LayerSpec& l : c.layers) {
    double ms = l.forward_ms + l.backward_ms;
    if (c.memory.recompute == Recompute::Full) ms += l.forward_ms;
    if (c.memory.recompute == Recompute::Selective) ms += l.selective_recompute_ms;
    cost.push_back(TimeNs::from_ms(ms).ns);
  }
  return cost;
}

namespace {

std::vector<int> balanced_for(const Config& c, int stages) {
  const std::vector<std::int64_t> cost = layer_costs_ns(c);
  const std::int64_t limit = memory_limit_bytes(c);
  if (limit > 0) {
    try {
      const Schedule s = make_schedule(c.pipeline.schedule, ScheduleParams{c.pipeline.stages, c.pipeline.microbatches,
                                                                           c.pipeline.chunks, c.pipeline.iterations});
      const std::vector<int> inflight = stage_inflight_peaks(s);
      // Prefix sums keep each memory query O(1); the arithmetic mirrors
      // apply_memory_model (memory_model.cpp), which stage_costs applies to the result.
      const std::size_t n = c.layers.size();
      std::vector<std::int64_t> act(n + 1, 0), sel(n + 1, 0), par(n + 1, 0), stat(n + 1, 0);
      for (std::size_t i = 0; i < n; ++i) {
        const LayerSpec& l = c.layers[i];
        act[i + 1] = act[i] + l.activation_bytes;
        sel[i + 1] = sel[i] + l.selective_recompute_bytes;
        par[i + 1] = par[i] + l.parameter_bytes;
        stat[i + 1] = stat[i] + l.static_bytes;
      }
      const int dp = data_parallel_degree(c);
      auto memory = [&](int stage, int first, int last) -> std::int64_t {
        const std::int64_t params = par[last] - par[first];
        std::int64_t activation = act[last] - act[first];
        std::int64_t statics = c.memory.given ? static_bytes_for(c.memory, params, dp) : stat[last] - stat[first];
        if (c.memory.recompute == Recompute::Selective) activation -= sel[last] - sel[first];
        if (c.memory.recompute == Recompute::Full) {
          statics += activation;  // the recompute workspace
          activation = first > 0 ? c.layers[static_cast<std::size_t>(first) - 1].output_bytes : 0;
        }
        const int held = std::max(1, inflight[static_cast<std::size_t>(stage)]);
        return params * weight_versions(s.weights, held) + statics + activation * held;
      };
      // A device holds `chunks` stages: each gets an equal share of the device's limit.
      auto counts = balanced_partition(cost, stages, memory, limit / std::max(1, c.pipeline.chunks));
      if (!counts.empty()) return counts;
    } catch (const ScheduleError&) {
      // prepare_run reports the schedule's error; balance by time alone meanwhile.
    }
  }
  return balanced_partition(cost, stages);
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

}  // namespace ppsim
