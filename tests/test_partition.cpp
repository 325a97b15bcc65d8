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
#include "ppsim/schedules/registry.h"
#include "ppsim/views/report.h"
#include "ppsim/run/stages.h"

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

namespace {

/// Interleaved placement: device d runs stages d, d+p, ..., each for m micro-batches.
StagePlacement interleaved_placement(int p, int v, int m) {
  StagePlacement placement(static_cast<std::size_t>(p));
  for (int d = 0; d < p; ++d)
    for (int r = 0; r < v; ++r) placement[d].push_back({d + r * p, 0, m, p - d + (v - 1 - r) * p});
  return placement;
}

/// V-shaped placement (zbv, dualpipev): device d runs stages d and 2p-1-d.
StagePlacement v_placement(int p, int m) {
  StagePlacement placement(static_cast<std::size_t>(p));
  for (int d = 0; d < p; ++d) {
    placement[d].push_back({d, 0, m, 2 * (p - d)});
    placement[d].push_back({2 * p - 1 - d, 0, m, 1 + d});
  }
  return placement;
}

struct DeviceBrute {
  std::vector<int> counts;  // lexicographically first with the least (busiest, slowest)
  std::int64_t busiest{0}, slowest{0};
};

/// Every split, in lexicographic order; device loads summed by hand here.
DeviceBrute device_brute_force(const std::vector<std::int64_t>& cost, int stages, const StagePlacement& placement,
                               const HoldingMemoryFn& memory, std::int64_t cap) {
  DeviceBrute best;
  std::vector<int> prefix;
  each_split(static_cast<int>(cost.size()), stages, prefix, [&](const std::vector<int>& counts) {
    std::vector<int> first(counts.size() + 1, 0);
    std::vector<std::int64_t> stage(counts.size(), 0);
    for (std::size_t k = 0; k < counts.size(); ++k) {
      first[k + 1] = first[k] + counts[k];
      for (int i = first[k]; i < first[k + 1]; ++i) stage[k] += cost[static_cast<std::size_t>(i)];
    }
    std::int64_t busiest = 0;
    for (const auto& held : placement) {
      std::int64_t load = 0, used = 0;
      for (const StageHolding& h : held) {
        load += h.microbatches * stage[h.stage];
        if (memory) used += memory(h, first[h.stage], first[h.stage + 1]);
      }
      if (memory && used > cap) return;
      busiest = std::max(busiest, load);
    }
    const std::int64_t slowest = *std::max_element(stage.begin(), stage.end());
    if (best.counts.empty() || std::pair(busiest, slowest) < std::pair(best.busiest, best.slowest))
      best = {counts, busiest, slowest};
  });
  return best;
}

/// Checks device_balanced_partition against brute force on random small models.
void check_against_brute_force(const std::function<StagePlacement(int)>& placement_for, int stages_per_device,
                               bool capped, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> cost_of(1, 30);
  std::uniform_int_distribution<int> bytes_of(1, 10);
  int feasible = 0, infeasible = 0;
  for (int p = 1; p <= 3; ++p) {
    const int stages = p * stages_per_device;
    const StagePlacement placement = placement_for(p);
    for (int n = stages; n <= std::min(stages + 4, 10); ++n) {
      for (int trial = 0; trial < 6; ++trial) {
        std::vector<std::int64_t> cost(static_cast<std::size_t>(n)), bytes(static_cast<std::size_t>(n));
        for (auto& c : cost) c = cost_of(rng);
        for (auto& b : bytes) b = bytes_of(rng);
        HoldingMemoryFn memory;
        if (capped)
          memory = [&](const StageHolding& h, int first, int last) {
            std::int64_t sum = 0;
            for (int i = first; i < last; ++i) sum += bytes[static_cast<std::size_t>(i)];
            return sum * h.peak_inflight;
          };
        const std::int64_t cap = capped ? 20 + trial * 10 : 0;
        const DeviceBrute b = device_brute_force(cost, stages, placement, memory, cap);
        const DeviceSplit split = device_balanced_partition(cost, stages, placement, memory, cap);
        REQUIRE(split.exact);
        if (b.counts.empty()) {
          REQUIRE(split.counts.empty());
          ++infeasible;
          continue;
        }
        INFO("busiest " << split.busiest << " vs " << b.busiest << ", slowest " << split.slowest_stage << " vs "
                        << b.slowest << ", capped " << capped << ", p " << p << " cost " << ::Catch::Detail::stringify(cost));
        REQUIRE(split.counts == b.counts);
        REQUIRE(split.busiest == b.busiest);
        REQUIRE(split.slowest_stage == b.slowest);
        ++feasible;
      }
    }
  }
  CHECK(feasible > 20);
  if (capped) CHECK(infeasible > 0);
}

}  // namespace

TEST_CASE("placement_of reads which stages each device runs from the schedule", "[partition]") {
  const StagePlacement one = placement_of(make_schedule("1f1b", ScheduleParams{4, 8, 1, 0}));
  REQUIRE(one.size() == 4);
  for (int d = 0; d < 4; ++d) {
    REQUIRE(one[d].size() == 1);
    CHECK(one[d][0].stage == d);
    CHECK(one[d][0].microbatches == 8);
    CHECK(one[d][0].peak_inflight == 4 - d);  // 1F1B's warm-up depth
  }
  const StagePlacement inter = placement_of(make_schedule("interleaved", ScheduleParams{4, 8, 2, 0}));
  REQUIRE(inter.size() == 4);
  for (int d = 0; d < 4; ++d) {
    REQUIRE(inter[d].size() == 2);
    CHECK(inter[d][0].stage == d);
    CHECK(inter[d][1].stage == d + 4);
  }
  const StagePlacement v = placement_of(make_schedule("zbv", ScheduleParams{4, 8, 2, 0}));
  for (int d = 0; d < 4; ++d) {
    REQUIRE(v[d].size() == 2);
    CHECK(v[d][0].stage == d);
    CHECK(v[d][1].stage == 7 - d);
  }
  const StagePlacement chimera = placement_of(make_schedule("chimera", ScheduleParams{4, 8, 1, 0}));
  for (int d = 0; d < 4; ++d) {
    REQUIRE(chimera[d].size() == 2);
    for (const StageHolding& h : chimera[d]) {
      CHECK(h.stage == (h.pipe == 0 ? d : 3 - d));
      CHECK(h.microbatches == 4);  // each pipe gets half the micro-batches
    }
  }
}

TEST_CASE("device-balanced partition: a hand-checked interleaved case", "[partition]") {
  // Ten equal layers, p = 2, v = 2: device 0 runs stages 0 and 2, device 1 stages 1 and 3.
  // Stage balancing gives {1,3,3,3} (slowest stage 3, lexicographically first), so the
  // devices carry 1+3 = 4 and 3+3 = 6. Five each is best, with no stage above 3:
  // {2,2,3,3} is the first such split.
  const std::vector<std::int64_t> cost(10, 1);
  CHECK(balanced_partition(cost, 4) == std::vector<int>{1, 3, 3, 3});
  const StagePlacement placement = interleaved_placement(2, 2, 1);
  CHECK(busiest_device_load(cost, placement, {1, 3, 3, 3}) == 6);
  const DeviceSplit split = device_balanced_partition(cost, 4, placement);
  CHECK(split.counts == std::vector<int>{2, 2, 3, 3});
  CHECK(split.busiest == 5);
  CHECK(split.slowest_stage == 3);
  CHECK(split.exact);
  // One stage per device: the stage-balanced split, ties and all.
  const DeviceSplit single = device_balanced_partition({1, 1, 1}, 2, interleaved_placement(2, 1, 4));
  CHECK(single.counts == std::vector<int>{1, 2});
  CHECK(single.busiest == 8);
}

TEST_CASE("device-balanced partition equals brute force: interleaved v = 1, 2, 3", "[partition]") {
  for (int v = 1; v <= 3; ++v) {
    INFO("v = " << v);
    check_against_brute_force([v](int p) { return interleaved_placement(p, v, 4); }, v, false, 11 + v);
    check_against_brute_force([v](int p) { return interleaved_placement(p, v, 4); }, v, true, 21 + v);
  }
}

TEST_CASE("device-balanced partition equals brute force: V-shaped placement", "[partition]") {
  check_against_brute_force([](int p) { return v_placement(p, 4); }, 2, false, 31);
  check_against_brute_force([](int p) { return v_placement(p, 4); }, 2, true, 32);
}

TEST_CASE("device-balanced partition stays fast on a 40-layer, 16-stage model", "[partition]") {
  // GPT-like: a light embedding, 40 equal blocks, a heavier head; interleaved p = 8, v = 2.
  std::vector<std::int64_t> cost(42, 4254);
  cost.front() = 508;
  cost.back() = 3198;
  const StagePlacement placement = placement_of(make_schedule("interleaved", ScheduleParams{8, 32, 2, 0}));
  const DeviceSplit split = device_balanced_partition(cost, 16, placement);
  // Five blocks and the head on device 7 is the least any split can give it (36 blocks on
  // the other seven would put six on one); no stage above three blocks.
  CHECK(split.busiest == 32 * (5 * 4254 + 3198));
  CHECK(split.slowest_stage == 3 * 4254);
  CHECK(split.counts == std::vector<int>{3, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3});
  // Bounded work (a few ms): the search budget, not the clock, is what the test pins.
  CHECK(split.nodes <= 6'000);
  const std::vector<int> today = balanced_partition(cost, 16);
  CHECK(split.busiest < busiest_device_load(cost, placement, today));
}

#ifdef PPSIM_HAVE_PROFILES
TEST_CASE("GPT-3 13B on two DGX-H100: interleaved (v=2) ranks ahead of 1F1B", "[partition][config]") {
  const Config base = load_config(PPSIM_SOURCE_DIR "/configs/experiments/gpt3-13b-2x-dgx-h100.json");
  auto iteration_ms = [&](const std::string& schedule, int chunks) {
    Config c = base;
    c.pipeline.schedule = schedule;
    c.pipeline.chunks = chunks;
    check_pipeline(c);
    const Run run = prepare_run(c);
    auto links = make_links(c, run.schedule.devices);
    const json rep = make_report(run, simulate(run.schedule, run.costs, *links, SimOptions{false}));
    CHECK(rep["fits"] == true);
    return rep["iteration_time_ms"].get<double>();
  };
  Config inter = base;
  inter.pipeline.schedule = "interleaved";
  inter.pipeline.chunks = 2;
  // Each device: five blocks (device 0 also the embedding, device 7 the head).
  CHECK(stage_layer_counts(inter) == std::vector<int>{3, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3});
  CHECK(iteration_ms("interleaved", 2) < iteration_ms("1f1b", 1));
}
#endif
