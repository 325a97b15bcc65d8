// Tensor and sequence parallelism, ZeRO stages and the fixed-GPU / fixed-global-batch
// sweep constraints, each pinned to a hand calculation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ppsim/model/memory.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/cluster.h"
#include "ppsim/run/config.h"
#include "ppsim/run/overrides.h"
#include "ppsim/run/run.h"
#include "ppsim/run/stages.h"
#include "ppsim/metrics/metrics.h"
#include "ppsim/sweep/plan.h"
#include "ppsim/views/timeline.h"
#include "ppsim/views/trace.h"
#include "ppsim/views/vega.h"
#include "ppsim/sweep/sweep.h"

using namespace ppsim;
using nlohmann::json;

namespace {

// GPT-3 13B on DGX-H100 nodes, costed by the H100 roofline.
json gpt13b(int nodes, const json& parallel, const json& pipeline) {
  return {{"model", {{"preset", "configs/models/gpt3-13b.json"}, {"sequence_length", 2048}, {"micro_batch_size", 1}}},
          {"costs", {{"device", "configs/devices/h100-sxm.json"}}},
          {"cluster", {{"preset", "dgx-h100"}, {"nodes", nodes}}},
          {"pipeline", pipeline},
          {"memory", {{"optimizer", "adam"}, {"precision", "mixed"}, {"recompute", "selective"}}},
          {"parallel", parallel}};
}

const std::string kFile = PPSIM_SOURCE_DIR "/configs/experiments/tp-test.json";

}  // namespace

TEST_CASE("ring collectives: the nccl-tests bus-bandwidth factors plus a latency per step", "[tp]") {
  const NetLink nvlink{2.0, 450.0};  // DGX-H100 intra-node: 2 us, 450 GB/s
  const Bytes bsh{2LL * 2048 * 5120};  // b s h bf16 of GPT-3 13B at b = 1: 20,971,520 bytes
  // all-reduce over 8: 2*7/8 * 20971520 / 450 = 81555.9 ns -> 81556, + 14 steps x 2 us
  CHECK(ring_collective_time(Collective::AllReduce, bsh, 8, nvlink).ns == 81556 + 28000);
  // all-gather and reduce-scatter over 8: 7/8 * 20971520 / 450 = 40777.96 -> 40778, + 7 x 2 us
  CHECK(ring_collective_time(Collective::AllGather, bsh, 8, nvlink).ns == 40778 + 14000);
  CHECK(ring_collective_time(Collective::ReduceScatter, bsh, 8, nvlink).ns == 40778 + 14000);
  CHECK(ring_collective_time(Collective::AllReduce, bsh, 1, nvlink).ns == 0);
  CHECK(ring_allreduce_time(bsh, 8, nvlink) == ring_collective_time(Collective::AllReduce, bsh, 8, nvlink));
}

TEST_CASE("tensor parallelism: devices, node boundary, collectives in F and B, SP message", "[tp]") {
  // t = 8, p = 2 on two nodes: one replica; every tensor-parallel group is one node.
  const json doc = gpt13b(2, {{"tensor_parallel", 8}}, {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 8},
                                                          {"partition", "uniform"}});
  const Config c = parse_config(doc, kFile);
  CHECK(c.devices == 16);
  CHECK(tensor_parallel_degree(c) == 8);
  CHECK(data_parallel_degree(c) == 1);
  // 42 layers (embedding, 40 blocks, head) uniform over 2 stages: 21 + 21.
  const Run run = prepare_run(c);
  REQUIRE(run.costs.size() == 2);
  const std::int64_t ar = 81556 + 28000;  // one all-reduce of b s h (above)
  // Stage 0: the embedding's all-reduce in F, 20 blocks x 2 in F and in B.
  CHECK(run.costs[0].forward_comm.ns == (1 + 40) * ar);
  CHECK(run.costs[0].backward_comm.ns == 40 * ar);
  // Stage 1: 20 blocks x 2 in F; in B, the blocks' 40 and the head's one.
  CHECK(run.costs[1].forward_comm.ns == 40 * ar);
  CHECK(run.costs[1].backward_comm.ns == 41 * ar);
  CHECK(run.costs[0].output.value == 2LL * 2048 * 5120);  // whole b s h without SP
  // The collectives are inside the ops' times.
  CHECK(run.costs[0].forward > run.costs[0].forward_comm);

  // Sequence parallel: each all-reduce becomes an all-gather + reduce-scatter pair (the
  // same ring time here), the embedding a reduce-scatter in F and an all-gather in B,
  // and the pipeline message shrinks to b s h / t.
  ConfigOverrides o;
  o.sequence_parallel = true;
  const Config sp = apply_overrides(c, o);
  const Run srun = prepare_run(sp);
  const std::int64_t half = 40778 + 14000;
  CHECK(srun.costs[0].forward_comm.ns == half + 40 * 2 * half);
  CHECK(srun.costs[0].backward_comm.ns == half + 40 * 2 * half);
  CHECK(srun.costs[1].forward_comm.ns == 40 * 2 * half + half);
  CHECK(srun.costs[0].output.value == 2LL * 2048 * 5120 / 8);
  // Activations shrink: Korthikanti's 23 sbh -> 14.25 sbh per block (+ LN stats).
  CHECK(srun.costs[0].activation < run.costs[0].activation);

  // A tensor-parallel group may not cross a node.
  json small_nodes = doc;
  small_nodes["cluster"] = {{"preset", "dgx-h100"}, {"nodes", 4}, {"gpus_per_node", 4}};
  CHECK_THROWS_WITH(parse_config(small_nodes, kFile),
                    Catch::Contains("parallel.tensor_parallel: a tensor-parallel group of 8 GPUs would cross a node of 4 GPUs"));
  // Heads must divide: 40 heads over t = 16 on a bigger node would not; t = 3 never does.
  json three = doc;
  three["cluster"] = {{"devices", 6}};
  three["parallel"]["tensor_parallel"] = 3;
  CHECK_THROWS_WITH(parse_config(three, kFile), Catch::Contains("parallel.tensor_parallel: hidden (5120) must be a multiple of the tensor-parallel degree 3"));
  // Sequence parallelism without tensor parallelism is refused.
  json sp1 = gpt13b(2, {{"sequence_parallel", true}}, {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 8}, {"partition", "uniform"}});
  CHECK_THROWS_WITH(parse_config(sp1, kFile), Catch::Contains("parallel.sequence_parallel: needs parallel.tensor_parallel > 1"));
}

TEST_CASE("ZeRO stages shard optimizer state, gradients and weights over d", "[tp][memory]") {
  MemorySpec spec;
  spec.given = true;  // Adam, mixed: 2 B weights, 2 B gradients, 12 B optimizer per parameter
  const std::int64_t P = 1600;  // 800 parameters
  CHECK(static_bytes_for(spec, P, 4) == 1600 + 9600);
  spec.zero = 1;
  CHECK(static_bytes_for(spec, P, 4) == 1600 + 2400);
  spec.zero = 2;
  CHECK(static_bytes_for(spec, P, 4) == 400 + 2400);
  spec.zero = 0;
  spec.distributed_optimizer = true;  // Megatron's: shards like stage 1
  CHECK(static_bytes_for(spec, P, 4) == 1600 + 2400);
  CHECK(zero_name(spec) == "distributed");
  spec.distributed_optimizer = false;
  spec.zero = 3;
  StageLayerBytes sums;
  sums.parameters = Bytes{P};
  sums.largest_layer = Bytes{500};
  const StageMemory m = stage_memory(spec, 4, sums);
  CHECK(m.parameters.value == 400);
  CHECK(m.static_extra.value == 400 + 2400 + 2 * 500);  // + two gathered layers
}

TEST_CASE("ZeRO-3 gathers each layer's weights before F and before B", "[tp][memory]") {
  // p = 1, d = 16 over two nodes (the ring crosses nodes: inter link 5 us, 50 GB/s).
  json doc = gpt13b(2, {{"data_parallel", 16}}, {{"schedule", "1f1b"}, {"stages", 1}, {"microbatches", 2}});
  doc["memory"]["zero"] = 3;
  const Config c = parse_config(doc, kFile);
  const NetLink link = data_parallel_link(c);
  CHECK(link.bandwidth_GBps == 50.0);
  const Run run = prepare_run(c);
  std::int64_t gathers = 0;
  for (const LayerSpec& l : c.layers) gathers += ring_collective_time(Collective::AllGather, Bytes{l.parameter_bytes}, 16, link).ns;
  CHECK(run.costs[0].forward_comm.ns == gathers);
  CHECK(run.costs[0].backward_comm.ns == gathers);
}

TEST_CASE("sweep holds GPUs and the global batch fixed, deriving d and m", "[tp][sweep]") {
  const json base = gpt13b(2, json::object(), {{"schedule", "1f1b"}, {"stages", 4}, {"microbatches", 8}, {"partition", "balanced"}});
  const json doc = {{"base", base}, {"gpus", 16}, {"global_batch", 512},
                    {"grid", {{"tensor", {2, 4}}, {"pipeline", {2, 4, 8}}, {"micro_batch_size", {1, 2}}, {"zero", {0, 1}}}}};
  const SweepSpec spec = parse_sweep(doc, kFile);
  json o = {{"tensor_parallel", 2}, {"stages", 4}, {"micro_batch_size", 2}};
  REQUIRE_FALSE(apply_sweep_constraints(spec, o).has_value());
  CHECK(o["data_parallel"] == 2);    // 16 / (2 x 4)
  CHECK(o["microbatches"] == 128);   // 512 / (2 x 2)
  json bad = {{"tensor_parallel", 4}, {"stages", 8}};
  CHECK(apply_sweep_constraints(spec, bad) == "16 GPUs do not divide into tensor 4 x pipeline 8");
  json uneven = {{"tensor_parallel", 2}, {"stages", 2}, {"micro_batch_size", 3}};
  CHECK(apply_sweep_constraints(spec, uneven) == "global batch 512 is not a multiple of micro-batch size 3 x data-parallel degree 4");
  const auto rows = run_sweep(spec, SweepOptions{});
  REQUIRE(rows.size() == 24);
  int ran = 0;
  for (const auto& r : rows) {
    if (r.status == "not_applicable") continue;
    ++ran;
    const json& rep = r.report;
    CHECK(rep["devices"] == 16);
    CHECK(rep["global_batch"] == 512);
    CHECK(rep["tensor_parallel"].get<int>() * rep["stages"].get<int>() * rep["data_parallel_degree"].get<int>() == 16);
  }
  CHECK(ran == 20);  // t = 4 with p = 8 needs 32 GPUs: its 4 points (b x zero) are skipped
  CHECK_THROWS_WITH(parse_sweep(json{{"base", base}, {"global_batch", 512}, {"grid", {{"microbatches", {8}}}}}, kFile),
                    Catch::Contains("grid.microbatches: cannot be an axis with global_batch fixed"));
}

TEST_CASE("plan: ranked fitting shapes for fixed GPUs and global batch", "[tp][plan]") {
  const json doc = gpt13b(2, json::object(), {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 8}, {"partition", "balanced"}});
  const Config base = parse_config(doc, kFile);
  PlanOptions o;
  o.gpus = 16;
  o.global_batch = 64;
  o.tensor = {1, 2};
  o.pipeline = {2, 4, 16};
  o.micro_batch = {1, 3};
  o.schedules = {"1f1b"};
  o.recompute = {"selective"};
  o.zero = {0, 1};
  o.sequence_parallel = {false};
  const SweepSpec spec = plan_sweep(base, o);
  // b = 3 never divides 64; t = 2 x p = 16 needs 32 GPUs: neither becomes a point.
  // Left: t in {1, 2} x p in {2, 4} x zero {0, 1} + t = 1, p = 16 x zero {0, 1} = 10.
  CHECK(spec.points.size() == 10);
  const auto rows = run_sweep(spec, SweepOptions{});
  const auto ranked = rank_plan(rows);
  REQUIRE_FALSE(ranked.empty());
  for (std::size_t i = 1; i < ranked.size(); ++i)
    CHECK(ranked[i - 1]->report["iteration_time_ms"].get<double>() <= ranked[i]->report["iteration_time_ms"].get<double>());
  for (const SweepRow* r : ranked) {
    CHECK(r->report["fits"] == true);
    CHECK(r->report["global_batch"] == 64);
    CHECK(r->report["partition"]["kind"] == "balanced");
  }
  const std::string csv = plan_csv(rows);
  CHECK(csv.rfind("rank,t,p,d,v,b,m,schedule,sp,recompute,zero,iteration_ms,", 0) == 0);
  CHECK(static_cast<std::size_t>(std::count(csv.begin(), csv.end(), '\n')) == ranked.size() + 1);
  const std::string table = format_plan(o, rows, 3);
  CHECK(table.find("16 GPUs, global batch 64: 10 configurations") == 0);
  CHECK(table.find("best: ") != std::string::npos);
  const json j = plan_json(o, rows);
  CHECK(j["ranked"].size() == ranked.size());
  CHECK(j["ranked"][0]["iteration_ms"] == ranked[0]->report["iteration_time_ms"]);
  // Explicit layers keep their own tensor degree by default: they cannot be re-costed.
  json explicit_layers = {{"model", {{"layers", {{{"repeat", 8}, {"forward_ms", 1.0}, {"backward_ms", 2.0}, {"parameter_bytes", 1000}}}}}},
                          {"cluster", {{"devices", 8}}},
                          {"pipeline", {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 4}}},
                          {"memory", {{"optimizer", "adam"}}}};
  PlanOptions defaults;
  defaults.gpus = 8;
  defaults.global_batch = 16;
  for (const json& p : plan_sweep(parse_config(explicit_layers, kFile), defaults).points) CHECK(p["tensor_parallel"] == 1);
  // A plan needs the memory model to know what fits.
  json no_memory = doc;
  no_memory.erase("memory");
  CHECK_THROWS_WITH(plan_sweep(parse_config(no_memory, kFile), o), Catch::Contains("memory: missing"));
}

TEST_CASE("an op's collectives are its last part, on their own lane in the timeline, trace and chart", "[tp][views]") {
  const json doc = gpt13b(2, {{"tensor_parallel", 8}}, {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 2},
                                                          {"partition", "uniform"}});
  const Run run = prepare_run(parse_config(doc, kFile));
  auto links = make_links(run.config, run.schedule.devices);
  const SimResult r = simulate(run.schedule, run.costs, *links);
  for (const OpRecord& rec : r.ops) {
    const StageCost& c = run.costs[static_cast<std::size_t>(rec.op.stage)];
    CHECK(rec.collective == (rec.op.kind == OpKind::Forward ? c.forward_comm : c.backward_comm));
    CHECK(rec.collective < rec.end - rec.start);
  }
  const json tl = make_timeline(run.schedule, r);
  int lane = 0;
  for (const json& e : tl["events"])
    if (e["lane"] == "collective") {
      ++lane;
      CHECK(e["end"].get<double>() > e["start"].get<double>());
    }
  CHECK(lane == static_cast<int>(r.ops.size()));  // every F and B of this run has collectives
  const json spec = vega_spec(run.schedule, r, compute_metrics(run, r), VegaOptions{});
  CHECK(spec.dump().find("D0 collective") != std::string::npos);
  std::ostringstream streamed;  // the collective lane streams as the whole document dumps
  write_vega_spec(streamed, run.schedule, r, compute_metrics(run, r), VegaOptions{});
  CHECK(streamed.str() == spec.dump());
  CHECK(chrome_trace(run.schedule, r, compute_metrics(run, r)).dump().find("collectives of F0") != std::string::npos);
  // Unit time draws slots only: no collective inside them.
  const Run unit = unit_time_run(run);
  for (const StageCost& c : unit.costs) CHECK(c.forward_comm.ns == 0);
}
