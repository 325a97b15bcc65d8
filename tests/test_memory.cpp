// Memory model: a GPT-3 1.3B-like model per stage against a hand calculation, the
// optimizer/precision/ZeRO-1 variants, recomputation, and OOM reporting.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/model.h"
#include "ppsim/run/config.h"
#include "ppsim/model/memory.h"
#include "ppsim/views/report.h"
#include "ppsim/run/stages.h"

using namespace ppsim;
using nlohmann::json;

namespace {

// GPT-3 1.3B (Brown et al. 2020, Table 2.1): 24 layers, h = 2048, 16 heads, s = 2048,
// GPT-2 vocabulary of 50257, micro-batch 1, 16-bit activations.
constexpr std::int64_t L = 24, h = 2048, a = 16, s = 2048, V = 50257, b = 1;
// Parameters: a block 12h^2 + 13h; the embedding V*h tokens + s*h learned positions;
// the head a copy of the V*h word embedding (Megatron keeps one on the last stage)
// plus the final layer norm 2h.
constexpr std::int64_t P_block = 12 * h * h + 13 * h;
constexpr std::int64_t P_embed = V * h + s * h;
constexpr std::int64_t P_head = V * h + 2 * h;
// Activations per micro-batch (Korthikanti et al. 2022): a block sbh(34 + 5as/h); the
// embedding its dropout mask sbh; the head the final LN and projection inputs 4sbh and
// the fp32 logits for the loss 4sbV.
constexpr std::int64_t A_block = s * b * h * 34 + 5 * a * s * s * b;
constexpr std::int64_t A_embed = s * b * h;
constexpr std::int64_t A_head = 4 * s * b * h + 4 * s * b * V;
constexpr std::int64_t A_attention = 5 * a * s * s * b;  // what selective recompute drops
constexpr std::int64_t out_bytes = 2 * s * b * h;          // a layer's output, fp16

json gpt3_doc(const json& memory, int microbatches = 8) {
  json layers = json::array({
      {{"name", "embedding"}, {"forward_ms", 1.0}, {"backward_ms", 2.0}, {"parameter_bytes", 2 * P_embed},
       {"activation_bytes", A_embed}, {"output_bytes", out_bytes}},
      {{"name", "block"}, {"repeat", L}, {"forward_ms", 1.0}, {"backward_ms", 2.0}, {"parameter_bytes", 2 * P_block},
       {"activation_bytes", A_block}, {"output_bytes", out_bytes}, {"selective_recompute_bytes", A_attention},
       {"selective_recompute_ms", 0.25}},
      {{"name", "head"}, {"forward_ms", 1.0}, {"backward_ms", 2.0}, {"parameter_bytes", 2 * P_head},
       {"activation_bytes", A_head}, {"output_bytes", 0}},
  });
  json doc = {{"model", {{"layers", layers}, {"sequence_length", s}}},
              {"cluster", {{"devices", 4}}},
              {"pipeline", {{"schedule", "1f1b"}, {"stages", 4}, {"microbatches", microbatches},
                            {"partition", json::array({7, 6, 6, 7})}}}};
  if (!memory.is_null()) doc["memory"] = memory;
  return doc;
}

json report_of(const json& doc) {
  const Config c = parse_config(doc, "gpt3.json");
  const Run run = prepare_run(c);
  auto links = make_links(c, run.schedule.devices);
  return make_report(run, simulate(run.schedule, run.costs, *links));
}

// Stage k of [embedding + 6 blocks | 6 | 6 | 6 blocks + head].
constexpr std::int64_t P_stage[4] = {P_embed + 6 * P_block, 6 * P_block, 6 * P_block, 6 * P_block + P_head};
constexpr std::int64_t A_stage[4] = {A_embed + 6 * A_block, 6 * A_block, 6 * A_block, 6 * A_block + A_head};

}  // namespace

TEST_CASE("transformer formulas", "[memory]") {
  // The one activation formula (calibrate's, Korthikanti et al.), at the 1.3B shape in bf16.
  cal::LayerShape block;
  block.hidden = 2048;
  block.heads = 16;
  block.seq = 2048;
  block.dtype = cal::Dtype::bf16;
  CHECK(cal::parameter_bytes(block) == 2 * 50'358'272);  // 12h^2 + 13h parameters, 2 bytes each
  CHECK(cal::korthikanti_activation_bytes(block) == 478'150'656);  // sbh(34 + 5as/h)
  CHECK(cal::korthikanti_attention_bytes(block) == 335'544'320);   // 5as^2b
  CHECK(P_block == 50'358'272);
  CHECK(A_block == 478'150'656);
  // 24 blocks + embedding + final LN: 1.316 B parameters, as the name says.
  CHECK(L * P_block + P_embed + 2 * h == 1'315'723'264);
}

TEST_CASE("GPT-3 1.3B per stage: weights, gradients, Adam state and activations", "[memory]") {
  const json rep = report_of(gpt3_doc({{"optimizer", "adam"}, {"precision", "mixed"}}));
  REQUIRE(rep["per_device"].size() == 4);
  for (int k = 0; k < 4; ++k) {
    INFO("stage " << k);
    const json& d = rep["per_device"][k];
    // 1F1B: stage k holds p - k = 4 - k micro-batches at its peak (m = 8 >= p).
    const std::int64_t inflight = 4 - k;
    CHECK(d["weights_bytes"].get<std::int64_t>() == 2 * P_stage[k]);
    CHECK(d["static_bytes"].get<std::int64_t>() == 14 * P_stage[k]);  // fp16 grads 2 + fp32 master, m, v 12
    CHECK(d["peak_activation_bytes"].get<std::int64_t>() == inflight * A_stage[k]);
    CHECK(d["peak_memory_bytes"].get<std::int64_t>() == 16 * P_stage[k] + inflight * A_stage[k]);
    CHECK(rep["per_stage"][k]["peak_memory_bytes"].get<std::int64_t>() == 16 * P_stage[k] + inflight * A_stage[k]);
  }
  // Stage 0: 409,270,272 parameters x 16 B + 4 x 2,873,098,240 B = 18,040,717,312 B.
  CHECK(rep["per_device"][0]["peak_memory_bytes"].get<std::int64_t>() == 18'040'717'312);
  CHECK(rep["peak_memory_bytes"].get<std::int64_t>() == 18'040'717'312);
  CHECK(rep["memory"]["bytes_per_param"]["optimizer"] == 12);
  CHECK(rep["fits"] == true);
  CHECK(rep["oom"].is_null());
}

TEST_CASE("optimizer, precision and ZeRO-1 change the static bytes", "[memory]") {
  SECTION("SGD, mixed precision: 2 + 2 + 4 (fp32 master) = 8 B/param") {
    const json rep = report_of(gpt3_doc({{"optimizer", "sgd"}}));
    CHECK(rep["per_device"][1]["static_bytes"].get<std::int64_t>() == 6 * P_stage[1]);
  }
  SECTION("Adam, fp32: parameter_bytes are fp32 weights, grads as many, m and v twice") {
    const json rep = report_of(gpt3_doc({{"precision", "fp32"}}));
    CHECK(rep["per_device"][1]["static_bytes"].get<std::int64_t>() == 3 * 2 * P_stage[1]);
  }
  SECTION("ZeRO-1 over 8 data-parallel replicas shards the 12 B/param of optimizer state") {
    json doc = gpt3_doc({{"zero1", true}});
    doc["cluster"]["devices"] = 32;
    doc["parallel"] = {{"data_parallel", 8}};
    const json rep = report_of(doc);
    CHECK(rep["data_parallel"]["degree"] == 8);
    for (int k = 0; k < 4; ++k)
      CHECK(rep["per_device"][k]["static_bytes"].get<std::int64_t>() == 2 * P_stage[k] + (12 * P_stage[k] + 7) / 8);
  }
  SECTION("without a memory section static bytes come from the layers (0 here)") {
    const json rep = report_of(gpt3_doc(nullptr));
    CHECK(rep["per_device"][0]["static_bytes"].get<std::int64_t>() == 0);
    CHECK(rep["memory"]["model"] == false);
  }
}

TEST_CASE("recomputation changes memory and time", "[memory]") {
  const json none = report_of(gpt3_doc({{"recompute", "none"}}));
  SECTION("selective keeps sbh*34 per block and adds the attention forward to backward") {
    const json rep = report_of(gpt3_doc({{"recompute", "selective"}}));
    const std::int64_t A0 = A_embed + 6 * (A_block - A_attention);
    CHECK(rep["per_device"][0]["peak_activation_bytes"].get<std::int64_t>() == 4 * A0);
    CHECK(rep["per_stage"][0]["backward_ms"].get<double>() == Approx(14.0 + 6 * 0.25));
    CHECK(rep["per_stage"][3]["backward_ms"].get<double>() == Approx(14.0 + 6 * 0.25));
  }
  SECTION("full keeps only each stage's input, holds one micro-batch's activations while recomputing, B += F") {
    const json rep = report_of(gpt3_doc({{"recompute", "full"}}));
    for (int k = 0; k < 4; ++k) {
      INFO("stage " << k);
      const std::int64_t input = k == 0 ? 0 : out_bytes;  // stage 0's input is token ids
      CHECK(rep["per_device"][k]["peak_activation_bytes"].get<std::int64_t>() == (4 - k) * input);
      CHECK(rep["per_device"][k]["peak_memory_bytes"].get<std::int64_t>() ==
            16 * P_stage[k] + A_stage[k] + (4 - k) * input);
      const double layers = k == 1 || k == 2 ? 6.0 : 7.0;
      CHECK(rep["per_stage"][k]["backward_ms"].get<double>() == Approx(2.0 * layers + 1.0 * layers));
    }
    CHECK(rep["iteration_time_ms"].get<double>() > none["iteration_time_ms"].get<double>());
  }
}

TEST_CASE("stage_memory and stage_peak_memory: the one memory formula", "[memory]") {
  // A stage of 1000 B of weights, 300 B stashed per micro-batch (40 of it until W, 100 of
  // it what selective recompute drops), 70 B of static bytes in its layers and a 20 B
  // input.
  const StageLayerBytes sums{Bytes{1000}, Bytes{300}, Bytes{40}, Bytes{100}, Bytes{70}, Bytes{20}};
  MemorySpec spec;  // no memory section: static bytes come from the layers
  StageMemory m = stage_memory(spec, 1, sums);
  CHECK(m.parameters == Bytes{1000});
  CHECK(m.activation == Bytes{300});
  CHECK(m.weight_activation == Bytes{40});
  CHECK(m.static_extra == Bytes{70});
  // Weights x versions + static + activation x in flight.
  CHECK(stage_peak_memory(m, WeightPolicy::Single, 4) == Bytes{1000 + 70 + 4 * 300});
  CHECK(stage_peak_memory(m, WeightPolicy::DoubleBuffer, 4) == Bytes{2 * 1000 + 70 + 4 * 300});
  CHECK(stage_peak_memory(m, WeightPolicy::StashInFlight, 4) == Bytes{4 * 1000 + 70 + 4 * 300});
  SECTION("a memory section: Adam in mixed precision keeps 2 + 12 bytes per 2 of weights") {
    spec.given = true;
    CHECK(stage_memory(spec, 1, sums).static_extra == Bytes{7000});
    spec.zero = 1;  // optimizer state 6000 over 4 replicas
    CHECK(stage_memory(spec, 4, sums).static_extra == Bytes{1000 + 1500});
  }
  SECTION("selective recompute drops its bytes from the stash") {
    spec.recompute = Recompute::Selective;
    m = stage_memory(spec, 1, sums);
    CHECK(m.activation == Bytes{200});
    CHECK(m.weight_activation == Bytes{40});
    CHECK(m.static_extra == Bytes{70});
  }
  SECTION("full recompute stashes the input and counts one micro-batch's activations as workspace") {
    spec.recompute = Recompute::Full;
    m = stage_memory(spec, 1, sums);
    CHECK(m.activation == Bytes{20});
    CHECK(m.weight_activation == Bytes{});
    CHECK(m.static_extra == Bytes{70 + 300});
    CHECK(stage_peak_memory(m, WeightPolicy::Single, 3) == Bytes{1000 + 370 + 3 * 20});
  }
}

TEST_CASE("stage costs, the per-stage report and the partitioner share the memory formula", "[memory]") {
  json doc = gpt3_doc({{"recompute", "selective"}});
  const Config c = parse_config(doc, "gpt3.json");
  const Run run = prepare_run(c);
  auto links = make_links(c, run.schedule.devices);
  const json rep = make_report(run, simulate(run.schedule, run.costs, *links));
  const auto ranges = stage_layer_ranges(c);
  for (std::size_t k = 0; k < 4; ++k) {
    const auto [first, last] = ranges[k];
    const StageMemory m = stage_memory(c.memory, 1, stage_layer_bytes(c, first, last));
    CHECK(run.costs[k].activation == m.activation);
    CHECK(run.costs[k].static_extra == m.static_extra);
    // 1F1B with 8 micro-batches on 4 stages: 4 - k in flight.
    const int inflight = 4 - static_cast<int>(k);
    CHECK(rep["per_stage"][k]["peak_memory_bytes"].get<std::int64_t>() ==
          stage_peak_memory(m, WeightPolicy::Single, inflight).value);
    CHECK(rep["per_stage"][k]["peak_memory_bytes"].get<std::int64_t>() ==
          16 * P_stage[k] + (A_stage[k] - 6 * A_attention) * inflight);  // six blocks a stage
  }
}

TEST_CASE("a memory limit reports OOM: device, time and excess", "[memory]") {
  // Stage 0 holds 3 micro-batches after warm-up's third F and a fourth from the start of
  // F3 at t = 3 x 7 ms. Set the limit half a micro-batch above the three.
  const std::int64_t limit = 16 * P_stage[0] + 3 * A_stage[0] + A_stage[0] / 2;
  json doc = gpt3_doc({{"limit_bytes", limit}});
  const json rep = report_of(doc);
  CHECK(rep["fits"] == false);
  REQUIRE(rep["oom"].is_object());
  CHECK(rep["oom"]["device"] == 0);
  CHECK(rep["oom"]["time_ms"].get<double>() == Approx(21.0));
  CHECK(rep["oom"]["excess_bytes"].get<std::int64_t>() == A_stage[0] / 2);
  CHECK(rep["oom"]["limit_bytes"].get<std::int64_t>() == limit);
  CHECK(rep["oom"]["peak_bytes"].get<std::int64_t>() == limit + A_stage[0] / 2);
  const std::string table = format_report_table(rep);
  CHECK_THAT(table, Catch::Contains("OOM: device 0 exceeds the"));
  CHECK_THAT(table, Catch::Contains("from t = 21.000 ms"));

  SECTION("with room to spare it fits") {
    doc["memory"] = {{"limit_GiB", 80}};
    const json ok = report_of(doc);
    CHECK(ok["fits"] == true);
    CHECK(ok["memory"]["limit_bytes"].get<std::int64_t>() == std::int64_t{80} << 30);
    CHECK_THAT(format_report_table(ok), Catch::Contains("fits: peak"));
  }
  SECTION("the balanced partitioner respects the limit when it can") {
    // Every layer takes 3 ms. By time alone the best split is 7 layers a stage at most
    // ({5,7,7,7}), but under a 15e9 B limit stage 1 (3 micro-batches in flight) can hold
    // 6 blocks (13.44e9 B; 7 need 15.68e9) and stage 0 (4 in flight) the embedding and
    // 4 blocks (12.60e9; 5 need 15.32e9): 8 layers on the slowest stage is the best that
    // fits, and {4,6,8,8} the first such split.
    doc["memory"] = {{"limit_bytes", 15'000'000'000}};
    doc["pipeline"]["partition"] = "balanced";
    const Config c = parse_config(doc, "gpt3.json");
    CHECK(stage_layer_counts(c) == std::vector<int>{4, 6, 8, 8});
    CHECK(report_of(doc)["fits"] == true);
    doc.erase("memory");
    CHECK(stage_layer_counts(parse_config(doc, "gpt3.json")) == std::vector<int>{5, 7, 7, 7});
  }
}

TEST_CASE("memory section errors name the path", "[memory][config]") {
  CHECK_THROWS_WITH(parse_config(gpt3_doc({{"optimizer", "adagrad"}}), "m.json"),
                    "m.json: memory.optimizer: must be \"adam\" or \"sgd\" (got \"adagrad\")");
  CHECK_THROWS_WITH(parse_config(gpt3_doc({{"recompute", "some"}}), "m.json"),
                    "m.json: memory.recompute: must be \"none\", \"selective\" or \"full\" (got \"some\")");
  CHECK_THROWS_WITH(parse_config(gpt3_doc({{"limit_bytes", 1}, {"limit_GiB", 1}}), "m.json"),
                    "m.json: memory.limit_GiB: give limit_bytes or limit_GiB, not both");
  CHECK_THROWS_WITH(parse_config(gpt3_doc({{"zero1", 1}}), "m.json"),
                    "m.json: memory.zero1: must be true or false (got 1)");
  CHECK_THROWS_WITH(parse_config(gpt3_doc({{"limit", 1}}), "m.json"),
                    Catch::StartsWith("m.json: memory.limit: unknown key"));
}

#ifdef PPSIM_HAVE_PROFILES
TEST_CASE("transformer configs carry what selective recompute drops", "[memory][config]") {
  // configs/models/tiny.json: h = 64, 4 heads, ffn 256, s = 32; bf16, micro-batch 2.
  const json doc = {{"model", {{"preset", "configs/models/tiny.json"}, {"sequence_length", 32}, {"micro_batch_size", 2}}},
                    {"costs", {{"device", "configs/devices/h100-sxm.json"}}},
                    {"cluster", {{"devices", 2}}},
                    {"pipeline", {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 4}, {"partition", "uniform"}}},
                    {"memory", {{"recompute", "selective"}}}};
  const Config c = parse_config(doc, PPSIM_SOURCE_DIR "/configs/experiments/tiny.json");
  int blocks = 0;
  for (const LayerSpec& l : c.layers) {
    if (l.name.rfind("block", 0) != 0) {
      CHECK(l.selective_recompute_bytes == 0);
      continue;
    }
    ++blocks;
    // a s^2 b (2e + 1) with e = 2: 4 * 32^2 * 2 * 5.
    CHECK(l.selective_recompute_bytes == 40'960);
    // The attention core's share of forward FLOPs: 4bs^2h / (8bsh^2 + 4bsh*ffn + 4bs^2h).
    const double share = 4.0 * 32 * 32 * 64 / (8.0 * 32 * 64 * 64 + 4.0 * 32 * 64 * 256 + 4.0 * 32 * 32 * 64);
    CHECK(l.selective_recompute_ms == Approx(l.forward_ms * share));
  }
  CHECK(blocks == 4);
}
TEST_CASE("model.kernels fused: the fused block's bytes (GPT and Llama), and nothing for selective recompute to drop", "[memory][config][fused]") {
  // The same tiny model: h = 64, 4 heads, s = 32, b = 2, bf16, t = 1. Fused kernels keep
  // sbh(8 + 16/t) + 4asb/t = 4096 * 24 + 4 * 4 * 32 * 2 = 99,328 bytes per block, plus the
  // two layer norms' fp32 mean and 1/std, 16 sb = 1,024: 100,352 (plain: sbh(34 + 5as/h)
  // + 1,024 = 181,248); selective recompute finds only the log-sum-exp, 1,024.
  json doc = {{"model", {{"preset", "configs/models/tiny.json"}, {"sequence_length", 32}, {"micro_batch_size", 2}, {"kernels", "fused"}}},
              {"costs", {{"device", "configs/devices/h100-sxm.json"}}},
              {"cluster", {{"devices", 2}}},
              {"pipeline", {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 4}, {"partition", "uniform"}}}};
  const std::string where = PPSIM_SOURCE_DIR "/configs/experiments/tiny.json";
  auto block_bytes = [&](const json& d) {
    const Config c = parse_config(d, where);
    for (const LayerSpec& l : c.layers)
      if (l.name.rfind("block", 0) == 0) return std::pair{l.activation_bytes, l.selective_recompute_bytes};
    return std::pair<std::int64_t, std::int64_t>{-1, -1};
  };
  CHECK(block_bytes(doc) == std::pair<std::int64_t, std::int64_t>{100'352, 1'024});
  doc["model"]["kernels"] = "plain";
  CHECK(block_bytes(doc).first == 181'248);
  doc["model"]["kernels"] = "flash";
  CHECK_THROWS_WITH(parse_config(doc, where), Catch::EndsWith("model.kernels: unknown kernels 'flash' (expected plain or fused)"));
  // A Llama block (kv heads = heads = 4) has fused kernels too: 4e sbh 32,768 + e sb
  // (2h + 2kv) 32,768 + 3e sb ffn 98,304 + log-sum-exp 4asb 1,024 + 1/rms 8 sb 512 =
  // 165,376 (plain: the softmax output e a s^2 b = 16,384 instead: 180,736); selective
  // recompute again finds only the log-sum-exp.
  doc["model"]["kernels"] = "fused";
  doc["model"]["block"] = "llama";
  CHECK(block_bytes(doc) == std::pair<std::int64_t, std::int64_t>{165'376, 1'024});
  doc["model"]["kernels"] = "plain";
  CHECK(block_bytes(doc) == std::pair<std::int64_t, std::int64_t>{180'736, 16'384});
}
#endif
