// Partitioning: uniform and explicit splits, and the balanced dynamic program against
// brute force over every contiguous split of small models.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "ppsim/run/config.h"
#include "ppsim/model/partition.h"
#include "ppsim/views/report.h"

using namespace ppsim;
using nlohmann::json;

namespace {

/// Every way to split `n` layers into `stages` non-empty contiguous stages.
void each_split(int n, int stages, std::vector<int>& prefix, const std::function<void(const std::vector<int>&)>& visit) {
  if (stages == 1) {
    prefix.push_back(n);
    visit(prefix);
    prefix.pop_back();
    return;
  }
  for (int k = 1; k <= n - (stages - 1); ++k) {
    prefix.push_back(k);
    each_split(n - k, stages - 1, prefix, visit);
    prefix.pop_back();
  }
}

struct Brute {
  std::int64_t best{std::numeric_limits<std::int64_t>::max()};
  bool any{false};
};

Brute brute_force(const std::vector<std::int64_t>& cost, int stages, const StageMemoryFn& memory, std::int64_t cap) {
  Brute b;
  std::vector<int> prefix;
  each_split(static_cast<int>(cost.size()), stages, prefix, [&](const std::vector<int>& counts) {
    if (memory) {
      int first = 0;
      for (std::size_t s = 0; s < counts.size(); ++s) {
        if (memory(static_cast<int>(s), first, first + counts[s]) > cap) return;
        first += counts[s];
      }
    }
    b.any = true;
    b.best = std::min(b.best, slowest_stage_cost(cost, counts));
  });
  return b;
}

json partition_doc(const json& layers, int stages, const json& partition) {
  json pipe = {{"schedule", "1f1b"}, {"stages", stages}, {"microbatches", 4}};
  if (!partition.is_null()) pipe["partition"] = partition;
  return json{{"model", {{"layers", layers}}}, {"cluster", {{"devices", stages}}}, {"pipeline", pipe}};
}

}  // namespace

TEST_CASE("uniform partition gives equal counts and the remainder to the middle stages", "[partition]") {
  CHECK(uniform_partition(8, 4) == std::vector<int>{2, 2, 2, 2});
  CHECK(uniform_partition(10, 4) == std::vector<int>{2, 3, 3, 2});
  CHECK(uniform_partition(11, 4) == std::vector<int>{3, 3, 3, 2});
  CHECK(uniform_partition(26, 4) == std::vector<int>{6, 7, 7, 6});
  CHECK(uniform_partition(3, 3) == std::vector<int>{1, 1, 1});
  CHECK_THROWS_AS(uniform_partition(2, 3), std::invalid_argument);
}

TEST_CASE("balanced partition: hand-checked cases", "[partition]") {
  // A heavy first layer (an embedding) and a heavy last one (a head).
  const std::vector<std::int64_t> cost = {5, 1, 1, 1, 1, 1, 1, 4};
  const auto counts = balanced_partition(cost, 3);
  CHECK(counts == std::vector<int>{1, 5, 2});  // stages 5 | 5 | 5
  CHECK(slowest_stage_cost(cost, counts) == 5);
  CHECK(balanced_partition({1, 1, 1, 1}, 4) == std::vector<int>{1, 1, 1, 1});
  CHECK(balanced_partition({3, 1, 1, 1}, 1) == std::vector<int>{4});
  // Ties: the lexicographically smallest boundaries.
  CHECK(balanced_partition({1, 1, 1}, 2) == std::vector<int>{1, 2});
  CHECK_THROWS_AS(balanced_partition({1, 2}, 3), std::invalid_argument);
}

TEST_CASE("balanced partition equals brute force on every small case", "[partition]") {
  std::mt19937_64 rng(20261127);
  std::uniform_int_distribution<int> cost_of(1, 40);
  int checked = 0;
  for (int n = 1; n <= 11; ++n) {
    for (int stages = 1; stages <= std::min(n, 6); ++stages) {
      for (int trial = 0; trial < 6; ++trial) {
        std::vector<std::int64_t> cost(static_cast<std::size_t>(n));
        for (auto& c : cost) c = cost_of(rng);
        const auto counts = balanced_partition(cost, stages);
        REQUIRE(static_cast<int>(counts.size()) == stages);
        for (int k : counts) REQUIRE(k >= 1);
        const Brute b = brute_force(cost, stages, {}, 0);
        REQUIRE(slowest_stage_cost(cost, counts) == b.best);
        ++checked;
      }
    }
  }
  CHECK(checked > 250);
}

TEST_CASE("balanced partition under a memory cap equals brute force", "[partition]") {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> cost_of(1, 30);
  std::uniform_int_distribution<int> bytes_of(1, 10);
  int feasible = 0, infeasible = 0;
  for (int n = 2; n <= 10; ++n) {
    for (int stages = 2; stages <= std::min(n, 5); ++stages) {
      for (int trial = 0; trial < 8; ++trial) {
        std::vector<std::int64_t> cost(static_cast<std::size_t>(n)), bytes(static_cast<std::size_t>(n));
        for (auto& c : cost) c = cost_of(rng);
        for (auto& b : bytes) b = bytes_of(rng);
        // Earlier stages hold more micro-batches in flight, as in 1F1B: (stages - s).
        StageMemoryFn memory = [&](int stage, int first, int last) {
          std::int64_t sum = 0;
          for (int i = first; i < last; ++i) sum += bytes[static_cast<std::size_t>(i)];
          return sum * (stages - stage);
        };
        const std::int64_t cap = 8 + trial * 4;
        const Brute b = brute_force(cost, stages, memory, cap);
        const auto counts = balanced_partition(cost, stages, memory, cap);
        if (!b.any) {
          REQUIRE(counts.empty());
          ++infeasible;
          continue;
        }
        REQUIRE(static_cast<int>(counts.size()) == stages);
        int first = 0;
        for (std::size_t s = 0; s < counts.size(); ++s) {
          REQUIRE(memory(static_cast<int>(s), first, first + counts[s]) <= cap);
          first += counts[s];
        }
        REQUIRE(slowest_stage_cost(cost, counts) == b.best);
        ++feasible;
      }
    }
  }
  CHECK(feasible > 50);
  CHECK(infeasible > 5);
}

TEST_CASE("pipeline.partition in a config: uniform, balanced, explicit and their errors", "[partition][config]") {
  const json layers = json::array({
      {{"name", "embedding"}, {"forward_ms", 3.0}, {"backward_ms", 6.0}},
      {{"name", "block"}, {"repeat", 6}, {"forward_ms", 1.0}, {"backward_ms", 2.0}},
      {{"name", "head"}, {"forward_ms", 2.0}, {"backward_ms", 4.0}},
  });
  SECTION("the default split needs layers to divide evenly") {
    CHECK_THROWS_WITH(parse_config(partition_doc(layers, 3, nullptr), "p.json"),
                      Catch::Contains("p.json: model.layers: 8 layers do not divide"));
  }
  SECTION("uniform") {
    const Config c = parse_config(partition_doc(layers, 3, "uniform"), "p.json");
    CHECK(stage_layer_counts(c) == std::vector<int>{3, 3, 2});
  }
  SECTION("balanced: slowest stage 12 ms where uniform's is 15 ms") {
    const Config c = parse_config(partition_doc(layers, 3, "balanced"), "p.json");
    // Layer F+B: 9, then 3 x6, then 6. No split beats 12: the embedding (9) plus any block
    // is 12, and alone it leaves 24 for two stages. The lexicographically first split
    // reaching 12 is [9] [3,3,3,3] [3,3,6].
    const auto counts = stage_layer_counts(c);
    CHECK(slowest_stage_cost(layer_costs_ns(c), counts) == 12'000'000);
    CHECK(slowest_stage_cost(layer_costs_ns(c), uniform_partition(8, 3)) == 15'000'000);
    CHECK(counts == std::vector<int>{1, 4, 3});
    const Run run = prepare_run(c);
    REQUIRE(run.costs.size() == 3);
    CHECK(run.costs[0].forward == TimeNs::from_ms(3.0));
    CHECK(run.costs[1].forward == TimeNs::from_ms(4.0));
    CHECK(run.costs[2].forward == TimeNs::from_ms(4.0));
    auto links = make_links(c, run.schedule.devices);
    const json rep = make_report(run, simulate(run.schedule, run.costs, *links));
    CHECK(rep["partition"]["kind"] == "balanced");
    CHECK(rep["partition"]["layers_per_stage"] == json::array({1, 4, 3}));
    CHECK(rep["per_stage"][1]["layers"] == json::array({1, 5}));
    CHECK(rep["per_stage"][1]["layer_count"] == 4);
    CHECK(rep["per_stage"][1]["time_ms"].get<double>() == Approx(12.0));
  }
  SECTION("explicit list") {
    const Config c = parse_config(partition_doc(layers, 3, json::array({1, 5, 2})), "p.json");
    CHECK(stage_layer_ranges(c) == std::vector<std::pair<int, int>>{{0, 1}, {1, 6}, {6, 8}});
    CHECK_THROWS_WITH(parse_config(partition_doc(layers, 3, json::array({1, 5, 3})), "p.json"),
                      "p.json: pipeline.partition: layer counts sum to 9, the model has 8");
    CHECK_THROWS_WITH(parse_config(partition_doc(layers, 3, json::array({4, 4})), "p.json"),
                      "p.json: pipeline.partition: lists 2 stages, the pipeline has 3 (stages x chunks)");
    CHECK_THROWS_WITH(parse_config(partition_doc(layers, 3, json::array({4, 0, 4})), "p.json"),
                      Catch::StartsWith("p.json: pipeline.partition[1]: must be a layer count >= 1"));
    CHECK_THROWS_WITH(parse_config(partition_doc(layers, 3, "greedy"), "p.json"),
                      Catch::StartsWith("p.json: pipeline.partition: must be \"uniform\", \"balanced\" or a list"));
  }
  SECTION("more stages than layers") {
    CHECK_THROWS_WITH(parse_config(partition_doc(layers, 9, "balanced"), "p.json"),
                      Catch::StartsWith("p.json: pipeline: 8 layers cannot fill 9 stages"));
  }
}
