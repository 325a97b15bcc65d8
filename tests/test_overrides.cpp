// apply_overrides: each override, the replica rule (the world size stays; a data-parallel
// degree fixes devices = stages x degree), and the JSON form the sweep uses.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "ppsim/run/cluster.h"
#include "ppsim/run/overrides.h"
#include "ppsim/views/report.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/stages.h"

using namespace ppsim;
using nlohmann::json;

namespace {

// 8 layers on 8 devices, 4 stages: 2 pipeline replicas.
json base_doc() {
  return json{{"model",
               {{"layers", json::array({{{"repeat", 8}, {"forward_ms", 1.0}, {"backward_ms", 2.0},
                                         {"activation_bytes", 1000}, {"parameter_bytes", 100}, {"output_bytes", 10},
                                         {"flops", 1e9}}})}}},
              {"cluster", {{"devices", 8}}},
              {"pipeline", {{"schedule", "1f1b"}, {"stages", 4}, {"microbatches", 8}}}};
}

Config base() { return parse_config(base_doc(), "b.json"); }

ConfigOverrides stages(int p) {
  ConfigOverrides o;
  o.stages = p;
  return o;
}

}  // namespace

TEST_CASE("overrides: stages keep the world size; data parallel = devices / stages", "[overrides]") {
  const Config b = base();
  REQUIRE(b.devices == 8);
  REQUIRE(data_parallel_degree(b) == 2);
  const Config two = apply_overrides(b, stages(2));
  CHECK(two.pipeline.stages == 2);
  CHECK(two.devices == 8);
  CHECK(data_parallel_degree(two) == 4);
  const Config eight = apply_overrides(b, stages(8));
  CHECK(eight.devices == 8);
  CHECK(data_parallel_degree(eight) == 1);
  CHECK_THROWS_WITH(apply_overrides(b, stages(3)),
                    "b.json: cluster.devices: 8 devices are not a whole number of 3-stage pipeline replicas");
  CHECK_THROWS_WITH(apply_overrides(b, stages(16)), "b.json: cluster.devices: 8 devices cannot hold 16 pipeline stages");
  // Applying an override twice, or none, gives the same devices (compare runs its
  // schedules over an already overridden config).
  CHECK(apply_overrides(two, ConfigOverrides{}).devices == 8);
  CHECK(apply_overrides(b, ConfigOverrides{}).devices == 8);
}

TEST_CASE("overrides: a data-parallel degree fixes devices = stages x degree", "[overrides]") {
  ConfigOverrides o = stages(2);
  o.data_parallel = 1;
  const Config one = apply_overrides(base(), o);
  CHECK(one.devices == 2);
  CHECK(one.parallel.data_parallel == 1);
  ConfigOverrides dp2;
  dp2.data_parallel = 2;
  CHECK(apply_overrides(base(), dp2).devices == 8);
  ConfigOverrides dp4;
  dp4.data_parallel = 4;
  CHECK_THROWS_WITH(apply_overrides(base(), dp4),
                    "b.json: parallel.data_parallel: 4 stages x 4 replicas need 16 GPUs, the cluster has 8");
  // The degree in the config file: stages change the devices, not the replicas.
  json doc = base_doc();
  doc["parallel"] = {{"data_parallel", 1}};
  const Config fixed = parse_config(doc, "b.json");
  REQUIRE(fixed.devices == 4);
  CHECK(apply_overrides(fixed, stages(2)).devices == 2);
  CHECK(apply_overrides(fixed, stages(8)).devices == 8);
}

TEST_CASE("overrides: schedule, microbatches, chunks, partition, recompute", "[overrides]") {
  ConfigOverrides o;
  o.schedule = "gpipe";
  o.microbatches = 16;
  o.chunks = 2;
  o.recompute = Recompute::Full;
  o.partition = PartitionSpec{PartitionSpec::Kind::Balanced, {}};
  const Config c = apply_overrides(base(), o);
  CHECK(c.pipeline.schedule == "gpipe");
  CHECK(c.pipeline.microbatches == 16);
  CHECK(c.pipeline.chunks == 2);
  CHECK(c.memory.recompute == Recompute::Full);
  CHECK(c.pipeline.partition.kind == PartitionSpec::Kind::Balanced);
  ConfigOverrides counts;
  counts.partition = PartitionSpec{PartitionSpec::Kind::Explicit, {1, 2, 2, 3}};
  CHECK(stage_layer_counts(apply_overrides(base(), counts)) == std::vector<int>{1, 2, 2, 3});
  ConfigOverrides bad;
  bad.schedule = "zigzag";
  CHECK_THROWS_WITH(apply_overrides(base(), bad), Catch::StartsWith("b.json: pipeline.schedule: unknown schedule 'zigzag'"));
  ConfigOverrides many;
  many.microbatches = 2'000'000;
  CHECK_THROWS_WITH(apply_overrides(base(), many), "b.json: pipeline.microbatches: must be in 1..1000000 (got 2000000)");
}

TEST_CASE("overrides: micro-batch size scales per-micro-batch costs, not weights", "[overrides]") {
  ConfigOverrides o;
  o.micro_batch_size = 4;
  const Config c = apply_overrides(base(), o);
  CHECK(c.micro_batch_size == 4);
  const LayerSpec& l = c.layers[0];
  CHECK(l.forward_ms == 4.0);
  CHECK(l.backward_ms == 8.0);
  CHECK(l.weight_grad_ms == Approx(8.0 / 3.0));  // default backward / 3
  CHECK(l.activation_bytes == 4000);
  CHECK(l.weight_activation_bytes == 2000);  // default activation / 2
  CHECK(l.output_bytes == 40);
  CHECK(l.flops == 4e9);
  CHECK(l.parameter_bytes == 100);
  // A document with explicit layers is scaled, not re-costed.
  CHECK_FALSE(recost_shard(parse_config(base_doc(), "b.json"), ShardShape{4, 1, false}).has_value());
}

TEST_CASE("overrides: a user schedule file sets stages, micro-batches and chunks", "[overrides]") {
  using namespace ppsim_test;
  const auto dir = scratch_dir("overrides_user");
  const std::string file = (dir / "u.json").string();
  write_file(file, R"({"devices": 2, "microbatches": 2, "ops": [["F0","F1","B0","B1"], ["F0","B0","F1","B1"]]})");
  ConfigOverrides o;
  o.schedule_file = file;
  o.stages = 4;  // the file's shape wins
  const Config c = apply_overrides(base(), o);
  CHECK(c.pipeline.schedule_file == file);
  CHECK(c.pipeline.stages == 2);
  CHECK(c.pipeline.microbatches == 2);
  CHECK(c.pipeline.chunks == 1);
  CHECK(c.devices == 8);  // 4 replicas of the 2-device user pipeline
  // 4 layers a stage: F 4 ms, B 8 ms; 1F1B order, (m + p - 1)(f + b) = 36 ms.
  const Run run = prepare_run(c);
  auto links = make_links(c, run.schedule.devices);
  CHECK(make_report(run, simulate(run.schedule, run.costs, *links))["iteration_time_ms"] == 36.0);
  // A schedule by name replaces the user schedule.
  ConfigOverrides named;
  named.schedule = "gpipe";
  CHECK(apply_overrides(c, named).pipeline.schedule_file.empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("overrides from a sweep point's JSON", "[overrides]") {
  const ConfigOverrides o = overrides_from_json(json{{"schedule", "zb-h1"},
                                                     {"stages", 2},
                                                     {"microbatches", 6},
                                                     {"chunks", 1},
                                                     {"micro_batch_size", 3},
                                                     {"partition", {4, 4}},
                                                     {"recompute", "selective"},
                                                     {"data_parallel", 2}});
  CHECK(o.schedule == "zb-h1");
  CHECK(o.stages == 2);
  CHECK(o.microbatches == 6);
  CHECK(o.chunks == 1);
  CHECK(o.micro_batch_size == 3);
  REQUIRE(o.partition.has_value());
  CHECK(o.partition->kind == PartitionSpec::Kind::Explicit);
  CHECK(o.partition->counts == std::vector<int>{4, 4});
  CHECK(o.recompute == Recompute::Selective);
  CHECK(o.data_parallel == 2);
  CHECK(o.schedule_file.empty());
  CHECK(overrides_from_json(json{{"partition", "uniform"}}).partition->kind == PartitionSpec::Kind::Uniform);
  const ConfigOverrides none = overrides_from_json(json::object());
  CHECK_FALSE(none.stages.has_value());
  CHECK_FALSE(none.schedule.has_value());
}
