// ppsim-calibrate: statistics, formulas, allocator accounting, layer math, profile
// schema, costs from profiles and rooflines. All on the CPU backend, all fast.
#include <catch2/catch.hpp>

#include "calibrate_fixtures.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/checks.h"
#include "ppsim/calibrate/costs.h"
#include "ppsim/calibrate/layers.h"
#include "ppsim/calibrate/measure.h"
#include "ppsim/calibrate/model.h"
#include "ppsim/calibrate/p2p.h"
#include "ppsim/calibrate/profile.h"
#include "ppsim/calibrate/stats.h"
#include "ppsim/model/topology.h"

using namespace ppsim::cal;
using ppsim::LinkSegment;
using ppsim::LinkCurvePart;
using ppsim::link_curve_ms;
using ppsim::link_curve_part;

namespace {

LayerShape tiny(LayerKind kind, std::int64_t mb = 1, std::int64_t tp = 1) {
  LayerShape s;
  s.tp = tp;
  s.kind = kind;
  s.hidden = 32;
  s.heads = 4;
  s.seq = 16;
  s.micro_batch = mb;
  s.vocab = kind == LayerKind::block ? 0 : 50;
  s.dtype = Dtype::fp32;
  return s;
}

Method quick() { return testing::quick_method(3, 2); }

nlohmann::json layer_json(const std::string& kind, std::int64_t mb, double f, double b, double w, std::int64_t act) {
  nlohmann::json shape = {{"hidden", 64}, {"seq_length", 32}, {"micro_batch", mb}, {"dtype", "bf16"}};
  if (kind == "transformer_block") {
    shape["heads"] = 4;
    shape["ffn_hidden"] = 256;
  } else {
    shape["vocab"] = 128;
  }
  auto sum = [](double v) { return nlohmann::json{{"median", v}, {"p95", v}, {"stddev", 0.0}}; };
  return {{"key", kind + std::to_string(mb)}, {"kind", kind}, {"shape", shape},
          {"forward_ms", sum(f)}, {"backward_input_ms", sum(b)}, {"backward_weight_ms", sum(w)},
          {"activation_bytes", act}, {"output_bytes", 100 * mb}, {"parameter_bytes", 5000}};
}

nlohmann::json synthetic_profile() {
  nlohmann::json p = {{"schema", kProfileSchema}, {"backend", "cpu"}, {"dtype", "bf16"},
                      {"device", {{"name", "test"}}}, {"method", nlohmann::json::object()},
                      {"layers", nlohmann::json::array()}, {"links", nlohmann::json::array()}};
  p["layers"].push_back(layer_json("transformer_block", 1, 1.0, 2.0, 0.5, 1000));
  p["layers"].push_back(layer_json("transformer_block", 3, 2.0, 5.0, 1.5, 3000));
  p["layers"].push_back(layer_json("embedding", 1, 0.1, 0.0, 0.2, 10));
  p["layers"].push_back(layer_json("head", 1, 0.3, 0.4, 0.5, 20));
  return p;
}

TransformerSpec spec64(std::int64_t mb, std::int64_t vocab) {
  TransformerSpec t;
  t.layers = 3;
  t.hidden = 64;
  t.heads = 4;
  t.seq = 32;
  t.micro_batch = mb;
  t.ffn_hidden = 256;
  t.vocab = vocab;
  t.dtype = Dtype::bf16;
  return t;
}

}  // namespace

TEST_CASE("calibrate statistics pin exact values", "[calibrate]") {
  CHECK(median({1, 2, 3, 4}) == 2.5);
  CHECK(median({3, 1, 2}) == 2.0);
  CHECK(median({7}) == 7.0);
  CHECK(percentile({1, 2, 3, 4}, 95) == Approx(3.85).epsilon(1e-12));
  CHECK(percentile({1, 2, 3, 4}, 0) == 1.0);
  CHECK(percentile({1, 2, 3, 4}, 100) == 4.0);
  CHECK(percentile({10, 20}, 50) == 15.0);
  CHECK(mean({1, 2, 3, 4}) == 2.5);
  CHECK(stddev({2, 4, 4, 4, 5, 5, 7, 9}) == Approx(std::sqrt(32.0 / 7.0)).epsilon(1e-12));
  CHECK(stddev({5}) == 0.0);
  const Summary s = summarize({4, 1, 3, 2});
  CHECK(s.median == 2.5);
  CHECK(s.min == 1.0);
  CHECK(s.iterations == 4);
  CHECK_THROWS_AS(median({}), std::invalid_argument);
  CHECK_THROWS_AS(percentile({1}, 101), std::invalid_argument);
}

TEST_CASE("latency + bandwidth fit recovers an exact line", "[calibrate]") {
  // 2 us latency, 10 GB/s: ms = 0.002 + bytes / 1e7.
  std::vector<double> bytes{4096, 65536, 1 << 20, 16 << 20, 256 << 20}, ms;
  for (double b : bytes) ms.push_back(0.002 + b / 1e7);
  const LinkFit f = fit_latency_bandwidth(bytes, ms);
  CHECK(f.latency_us == Approx(2.0).epsilon(1e-9));
  CHECK(f.bandwidth_GBps == Approx(10.0).epsilon(1e-9));
  CHECK_THROWS_AS(fit_latency_bandwidth({4096}, {1.0}), std::invalid_argument);
  CHECK_THROWS_AS(fit_latency_bandwidth({4096, 4096}, {1.0, 1.0}), std::invalid_argument);
}

TEST_CASE("Korthikanti activation formula, its fp32 form and the harness layout", "[calibrate]") {
  LayerShape s;
  s.hidden = 2048;
  s.heads = 16;
  s.seq = 2048;
  s.micro_batch = 1;
  s.dtype = Dtype::bf16;
  // sbh(34 + 5as/h) = 2048*2048*(34 + 80)
  CHECK(korthikanti_activation_bytes(s) == 478150656);
  CHECK(expected_activation_bytes(s) == 478150656 + 16 * 2048);  // + fp32 layer-norm stats
  s.micro_batch = 4;
  CHECK(korthikanti_activation_bytes(s) == 4 * 478150656);
  s.micro_batch = 1;
  s.dtype = Dtype::fp32;  // 16-bit tensors double, 1-byte masks do not: sbh*66 + as^2b*9
  CHECK(korthikanti_activation_bytes(s) == 2048LL * 2048 * 66 + 16LL * 2048 * 2048 * 9);  // s*b*h = 2048*1*2048
  // GPT-3 1.3B block forward FLOPs: 24 T h^2 + 4 b s^2 h
  s.dtype = Dtype::bf16;
  const Flops f = layer_flops(s);
  CHECK(f.forward == 28.0 * 2048.0 * 2048.0 * 2048.0);
  CHECK(f.backward_weight == 24.0 * 2048.0 * 2048.0 * 2048.0);
  CHECK(f.backward_input == 32.0 * 2048.0 * 2048.0 * 2048.0);
  CHECK(parameter_bytes(s) == 2 * (12LL * 2048 * 2048 + 13 * 2048));
  CHECK(output_bytes(s) == 2LL * 2048 * 2048);
}

TEST_CASE("tensor and sequence parallel shards: Korthikanti's per-GPU formulas by hand", "[calibrate][tp]") {
  // GPT-3 13B block: h = 5120, a = 40, s = 2048, b = 1, bf16; sbh = 10,485,760.
  LayerShape s;
  s.hidden = 5120;
  s.heads = 40;
  s.seq = 2048;
  s.micro_batch = 1;
  s.dtype = Dtype::bf16;
  const std::int64_t sbh = 2048LL * 5120;
  CHECK(korthikanti_activation_bytes(s) == sbh * 34 + 5LL * 40 * 2048 * 2048);  // t = 1: sbh(34 + 5as/h)
  s.tp = 8;
  // Without SP: sbh(10 + 24/t + 5as/(ht)) = sbh(10 + 3 + 10) = 23 sbh.
  CHECK(korthikanti_activation_bytes(s) == 23 * sbh);
  CHECK(korthikanti_attention_bytes(s) == 10 * sbh);  // 5as^2b/t, what selective recompute drops
  // With SP: sbh(34/t + 5as/(ht)) = sbh(4.25 + 10) = 14.25 sbh.
  s.sequence_parallel = true;
  CHECK(korthikanti_activation_bytes(s) == 57 * sbh / 4);
  CHECK(output_bytes(s) == 2 * sbh / 8);  // the stage-to-stage message is b s h / t with SP
  CHECK(expected_activation_bytes(s) == 57 * sbh / 4 + 16 * 2048 / 8);
  s.sequence_parallel = false;
  CHECK(output_bytes(s) == 2 * sbh);
  // Parameters of one shard: 12h^2/t + biases 3h/t + h + 4h/t + h + layer norms 4h.
  CHECK(parameter_bytes(s) == 2 * (12LL * 5120 * 5120 / 8 + 3 * 640 + 5120 + 4 * 640 + 5120 + 4 * 5120));
  // FLOPs of one shard: (24 T h^2 + 4 b s^2 h) / t forward.
  const Flops f = layer_flops(s);
  CHECK(f.forward == (24.0 * 2048 * 5120.0 * 5120 + 4.0 * 2048 * 2048 * 5120) / 8);
  CHECK(f.backward_weight == 24.0 * 2048 * 5120.0 * 5120 / 8);
  CHECK(attention_core_flops(s) == 4.0 * 2048 * 2048 * 5120 / 8);
  // Vocabulary-parallel head: logits over V/t rows.
  LayerShape head = s;
  head.kind = LayerKind::head;
  head.vocab = 50304;
  CHECK(parameter_bytes(head) == 2 * (2 * 5120 + 6288LL * 5120));
  CHECK(layer_flops(head).forward == 2.0 * 2048 * 5120 * 6288);
  CHECK(head.key() == "head h=5120 s=2048 bf16 v=50304 t=8 b=1");
  // Shards must divide evenly.
  s.tp = 3;
  CHECK_THROWS_AS(s.validate(), std::invalid_argument);
  s.tp = 8;
  s.sequence_parallel = true;
  s.seq = 2044;
  CHECK_THROWS_AS(s.validate(), std::invalid_argument);
}

TEST_CASE("allocator accounting measures exactly the saved activations", "[calibrate][tp]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  for (std::int64_t tp : {1, 2, 4}) {
    for (LayerKind k : {LayerKind::block, LayerKind::embedding, LayerKind::head}) {
      for (std::int64_t mb : {1, 2}) {
        const LayerShape s = tiny(k, mb, tp);
        const LayerMeasurement m = measure_layer(*cpu, s, quick());
        INFO(s.key());
        CHECK(m.activation_bytes == expected_activation_bytes(s));
        CHECK(m.forward.iterations == 3);
        CHECK(m.forward.median > 0);
        CHECK(m.backward_weight.median > 0);
        // The layer holds its shard's weights and their gradients (the head also its labels).
        Allocator a(*cpu);
        auto layer = make_layer(a, s, 1);
        CHECK(a.in_use() == 2 * parameter_bytes(s) + (k == LayerKind::head ? 4 * s.tokens() : 0));
      }
    }
  }
  // Block at fp32: Korthikanti's fp32 form + 16 s b bytes of layer-norm statistics.
  const LayerShape b = tiny(LayerKind::block);
  CHECK(expected_activation_bytes(b) ==
        16 * 32 * (16 * 4 + 2) + 4 * 16 * 16 * (2 * 4 + 1) + 16 * 16);
  // Its t = 2 shard (s = 16, b = 1, h = 32, e = 4): whole layer-norm/QKV/fc1 inputs and
  // masks sbh(4e + 2) = 9216; Q, K, V, context 4e sb h/2 = 4096; GeLU in and out
  // 2e sb ffn/2 = 8192; 2 of 4 heads' scores, probabilities, masks 2 s^2 (2e + 1) = 4608;
  // layer-norm statistics 16 s = 256.
  CHECK(expected_activation_bytes(tiny(LayerKind::block, 1, 2)) == 9216 + 4096 + 8192 + 4608 + 256);
  // The t = 4 head: input and layer-norm output 2e s h = 4096, probabilities over
  // ceil(50/4) = 13 rows e s 13 = 832, statistics 8 s = 128.
  CHECK(expected_activation_bytes(tiny(LayerKind::head, 1, 4)) == 4096 + 832 + 128);
  // The harness measures without sequence parallelism; the SP bytes are by formula.
  LayerShape sp = tiny(LayerKind::block, 1, 2);
  sp.sequence_parallel = true;
  Allocator a(*cpu);
  CHECK_THROWS_AS(make_layer(a, sp, 1), std::invalid_argument);
}

TEST_CASE("block backward-input matches finite differences", "[calibrate][tp]") {
  const std::int64_t tp = GENERATE(1, 2);  // the whole block and its tensor-parallel shard
  auto cpu = make_cpu_backend(Dtype::fp32);
  Allocator a(*cpu);
  LayerShape s = tiny(LayerKind::block, 1, tp);
  s.hidden = 16;
  s.heads = 2;
  s.seq = 8;
  INFO(s.key());
  auto layer = make_layer(a, s, 7);
  Tensor x = layer->make_input(1), dy = layer->make_output_grad(2);
  auto loss = [&](const Tensor& in) {  // L = sum(y * dy); dropout masks are seeded, so F is deterministic
    Tensor y = layer->forward(in);
    auto hy = to_host(*cpu, y), hd = to_host(*cpu, dy);
    double l = 0;
    for (std::size_t i = 0; i < hy.size(); ++i) l += static_cast<double>(hy[i]) * hd[i];
    layer->backward_input(dy);
    layer->backward_weight();
    return l;
  };
  Tensor y = layer->forward(x);
  Tensor dx = layer->backward_input(dy);
  layer->backward_weight();
  const auto g = to_host(*cpu, dx);
  float* px = x.as<float>();
  for (int i : {0, 5, 37, 100, 127}) {
    const float keep = px[i], eps = 1e-2f;
    px[i] = keep + eps;
    const double lp = loss(x);
    px[i] = keep - eps;
    const double lm = loss(x);
    px[i] = keep;
    const double fd = (lp - lm) / (2 * eps);
    INFO("element " << i << " analytic " << g[static_cast<std::size_t>(i)] << " numeric " << fd);
    CHECK(std::abs(fd - g[static_cast<std::size_t>(i)]) <= 2e-2 * std::max(1.0, std::abs(fd)));
  }
}

TEST_CASE("cpu backend passes its own cross-backend check and the check can fail", "[calibrate]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  LayerShape s = tiny(LayerKind::block, 2);
  const auto results = check_against_cpu(*cpu, s, 64);
  CHECK(results.size() > 30);
  for (const auto& r : results) {
    INFO(r.name);
    CHECK(r.passed);
  }
  // The fused kernels and blocks are covered too: GPT's, the grouped-query flash attention
  // and the fused Llama block (whole and its t = 2 shard), each weight gradient.
  auto has = [&](const std::string& name) {
    return std::any_of(results.begin(), results.end(), [&](const CheckResult& r) { return r.name == name; });
  };
  for (const char* name : {"fused_attention_backward", "fused_gqa_attention_forward", "fused_gqa_attention_backward",
                           "transformer_block_fused_output", "llama_transformer_block_fused_output",
                           "llama_transformer_block_fused_input_grad", "llama_transformer_block_fused.d_qkv_weight",
                           "llama_transformer_block_t2_fused.d_down_weight"}) {
    INFO(name);
    CHECK(has(name));
  }
  CHECK(relative_l2_error({1, 2, 3}, {1, 2, 3}) == 0.0);
  CHECK(relative_l2_error({0, 0}, {3, 4}) == 1.0);
  CHECK(std::isinf(relative_l2_error({std::nanf("")}, {1})));
  CHECK_THROWS_AS(make_cpu_backend(Dtype::bf16), std::invalid_argument);
  CHECK_THROWS_AS(make_backend("tpu", Dtype::fp32), std::invalid_argument);
}

TEST_CASE("profile validator names the JSON path of missing, negative and non-finite fields", "[calibrate]") {
  nlohmann::json p = synthetic_profile();
  CHECK_NOTHROW(validate_profile(p, "x.json"));
  auto refused = [](nlohmann::json q) -> std::string {
    try {
      validate_profile(q, "x.json");
    } catch (const ProfileError& e) {
      return e.what();
    }
    return "accepted";
  };
  nlohmann::json q = p;
  q["layers"][1]["forward_ms"].erase("median");
  CHECK(refused(q) == "x.json: layers[1].forward_ms.median: missing");
  q = p;
  q["layers"][0]["activation_bytes"] = -5;
  CHECK(refused(q) == "x.json: layers[0].activation_bytes: must not be negative (got -5.000000)");
  q = p;
  q["layers"][2]["backward_weight_ms"]["p95"] = std::numeric_limits<double>::quiet_NaN();
  CHECK(refused(q) == "x.json: layers[2].backward_weight_ms.p95: must be finite");
  q = p;
  q["layers"][0]["shape"]["hidden"] = std::numeric_limits<double>::infinity();
  CHECK(refused(q) == "x.json: layers[0].shape.hidden: must be finite");
  q = p;
  q["layers"][0]["shape"]["tensor_parallel"] = 0;
  CHECK(refused(q) == "x.json: layers[0].shape.tensor_parallel: must be a positive integer");
  q["layers"][0]["shape"]["tensor_parallel"] = 2;
  CHECK(refused(q) == "accepted");
  q = p;
  q["schema"] = "ppsim.profile/0";
  CHECK(refused(q).find("x.json: schema: unsupported") == 0);
  q = p;
  q.erase("device");
  CHECK(refused(q) == "x.json: device: missing");
  q = p;
  q["links"].push_back({{"kind", "peer"}, {"fit", {{"latency_us", 1.0}}}, {"points", nlohmann::json::array()}});
  CHECK(refused(q) == "x.json: links[0].fit.bandwidth_GBps: missing");
}

TEST_CASE("profile is written atomically and --resume keys are stable", "[calibrate]") {
  const auto dir = std::filesystem::temp_directory_path() / "ppsim_cal_atomic";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "p.json").string();
  nlohmann::json p = synthetic_profile();
  write_json_atomic(path, p);
  CHECK(load_profile(path) == p);
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++files;
  CHECK(files == 1);  // no temporary left behind
  CHECK(has_layer(p, "transformer_block3"));
  CHECK_FALSE(has_layer(p, "transformer_block2"));
  upsert_layer(p, layer_json("transformer_block", 3, 9.0, 9.0, 9.0, 1));
  CHECK(p["layers"].size() == 4);
  CHECK(p["layers"][1]["forward_ms"]["median"] == 9.0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("costs from a profile interpolate micro-batch sizes and refuse missing shapes", "[calibrate]") {
  const nlohmann::json p = synthetic_profile();
  auto c1 = costs_from_profile(p, spec64(1, 128));
  REQUIRE(c1.size() == 5);  // embedding, 3 blocks, head
  CHECK(c1[0].name == "embedding");
  CHECK(c1[1].name == "block");
  CHECK(c1[4].name == "head");
  CHECK(c1[1].forward_ms == 1.0);
  CHECK(c1[1].backward_ms == 2.5);  // input + weight
  CHECK(c1[1].weight_grad_ms == 0.5);
  CHECK(c1[4].backward_ms == Approx(0.9).epsilon(1e-12));
  auto c2 = costs_from_profile(p, spec64(2, 0));  // halfway between mb 1 and 3
  REQUIRE(c2.size() == 3);
  CHECK(c2[0].forward_ms == 1.5);
  CHECK(c2[0].backward_ms == 4.5);  // (2.5 + 6.5) / 2
  CHECK(c2[0].weight_grad_ms == 1.0);
  CHECK(c2[0].activation_bytes == 2000);
  CHECK(c2[0].output_bytes == 200);
  try {
    costs_from_profile(p, spec64(4, 0), "p.json");
    FAIL("mb 4 accepted");
  } catch (const MissingShapeError& e) {
    CHECK(std::string(e.what()).find("micro-batch 4 of transformer_block h=64 s=32 bf16 a=4 ffn=256 is outside the measured range [1, 3]") !=
          std::string::npos);
  }
  TransformerSpec other = spec64(1, 0);
  other.hidden = 128;
  CHECK_THROWS_WITH(costs_from_profile(p, other, "p.json"),
                    Catch::Contains("p.json: no measurement for transformer_block h=128"));
  CHECK_THROWS_AS(costs_from_profile(p, spec64(2, 128)), MissingShapeError);  // head measured at mb 1 only
}

TEST_CASE("roofline estimate from a device spec", "[calibrate]") {
  const nlohmann::json dev = {{"name", "toy"}, {"peak_dense_tflops", {{"bf16", 1.0}}},
                              {"memory_bandwidth_GBps", 1.0}, {"memory_bytes", 1e9}};
  const DeviceSpec d = device_from_json(dev, "toy.json");
  TransformerSpec t = spec64(1, 0);
  t.layers = 2;
  const auto c = costs_from_roofline(d, t);
  REQUIRE(c.size() == 2);
  LayerShape s;
  s.hidden = 64;
  s.heads = 4;
  s.seq = 32;
  s.ffn_hidden = 256;
  s.dtype = Dtype::bf16;
  const double bytes = static_cast<double>(parameter_bytes(s) + expected_activation_bytes(s) + output_bytes(s));
  // 1 TFLOP/s vs 1 GB/s: this layer is memory-bound, so every phase takes bytes / 1e9 s.
  CHECK(c[0].forward_ms == Approx(bytes / 1e9 * 1e3).epsilon(1e-12));
  CHECK(c[0].backward_ms == Approx(2 * bytes / 1e9 * 1e3).epsilon(1e-12));
  CHECK(c[0].source == "roofline estimate: toy");
  CHECK_THROWS_WITH(device_from_json({{"name", "x"}, {"peak_dense_tflops", {{"bf16", -1}}}}, "d.json"),
                    Catch::Contains("d.json: peak_dense_tflops.bf16: must be a positive number"));
  TransformerSpec fp8 = t;
  fp8.dtype = Dtype::fp32;
  CHECK_THROWS_WITH(costs_from_roofline(d, fp8), Catch::Contains("no peak_dense_tflops.fp32"));
}

TEST_CASE("shipped presets, device specs and the measured H200 profile load", "[calibrate]") {
  const std::filesystem::path root = PPSIM_SOURCE_DIR;
  for (const char* m : {"gpt3-125m", "gpt3-1.3b", "gpt3-13b", "gpt3-175b", "llama2-7b", "llama2-70b"}) {
    std::ifstream in(root / "configs" / "models" / (std::string(m) + ".json"));
    REQUIRE(in);
    const auto j = nlohmann::json::parse(in);
    const ModelPreset p = model_from_json(j, m);
    CHECK(p.hidden % p.heads == 0);
    CHECK_FALSE(j.at("source").get<std::string>().empty());
  }
  std::ifstream in(root / "configs" / "models" / "gpt3-175b.json");
  const ModelPreset g = model_from_json(nlohmann::json::parse(in), "175b");
  CHECK(g.layers == 96);
  CHECK(g.hidden == 12288);
  for (const char* d : {"h100-sxm", "h200-sxm", "a100-sxm-80gb"}) {
    std::ifstream f(root / "configs" / "devices" / (std::string(d) + ".json"));
    REQUIRE(f);
    const DeviceSpec spec = device_from_json(nlohmann::json::parse(f), d);
    CHECK(spec.peak_tflops.count("bf16") == 1);
  }
  const auto profile = load_profile((root / "configs" / "profiles" / "h200.json").string());
  TransformerSpec t{24, 2048, 16, 2048, 3, 0, 50304, Dtype::bf16};  // mb 3: between measured 2 and 4
  const auto c = costs_from_profile(profile, t);
  CHECK(c.size() == 26);
  CHECK(c[1].activation_bytes == 3 * (478150656 + 16 * 2048));  // linear in b: interpolation is exact
}

TEST_CASE("p2p sizes and size parsing", "[calibrate]") {
  P2POptions o;
  const auto sizes = p2p_sizes(o);
  REQUIRE(sizes.size() == 10);  // 4 KiB * 4^k up to 1 GiB
  CHECK(sizes.front() == 4096);
  CHECK(sizes[1] == 16384);
  CHECK(sizes.back() == (std::int64_t{1} << 30));
  CHECK(parse_size("4KiB") == 4096);
  CHECK(parse_size("1 GiB") == (std::int64_t{1} << 30));
  CHECK(parse_size("1000") == 1000);
  CHECK(format_size(4096) == "4 KiB");
  CHECK(format_size(3 << 20) == "3 MiB");
  CHECK_THROWS_AS(parse_size("4KB"), std::invalid_argument);
  o.min_bytes = 4096;
  o.max_bytes = 65536;
  o.method = quick();
  const auto link = measure_thread_memcpy(o, nullptr);
  REQUIRE(link.at("points").size() == 3);
  for (const auto& pt : link.at("points")) CHECK(pt.at("median_ms").get<double>() > 0);
  CHECK(link.at("points")[2].at("bytes") == 65536);
  const double bw = link.at("fit").at("bandwidth_GBps").get<double>();
  CHECK((std::isfinite(bw) && bw >= 0));  // a noisy 2-core box may flatten the slope to 0
}

TEST_CASE("link curve segments: hand-computed times, negative intercepts and sizes below the first", "[calibrate][links]") {
  // 0-1 MiB: 10 us + bytes / 50 GB/s; from 1 MiB: -20 us + bytes / 20 GB/s (bandwidth falls).
  const std::vector<LinkSegment> c{{0, 10.0, 50.0}, {1 << 20, -20.0, 20.0}};
  CHECK(link_curve_ms(c, 4096) == Approx((10e3 + 4096 / 50.0) / 1e6).epsilon(1e-12));
  // 4 MiB: -20 us + 4194304 / 20 ns = 189,715.2 ns; the intercept moves into the bytes term.
  CHECK(link_curve_ms(c, 4 << 20) == Approx(0.1897152).epsilon(1e-12));
  const LinkCurvePart p = link_curve_part(c, 4 << 20);
  CHECK(p.latency_ns == 0.0);
  CHECK(p.per_byte_ns == Approx(189715.2 / 4194304.0).epsilon(1e-12));
  // Below the first segment's start the time is the curve's time at that start.
  const std::vector<LinkSegment> from4k{{4096, 5.0, 10.0}};
  CHECK(link_curve_ms(from4k, 100) == Approx((5e3 + 409.6) / 1e6).epsilon(1e-12));
  // The simulator's links use the same formula, rounded to the nanosecond.
  ppsim::UniformLinkModel uniform(2, c);
  CHECK(uniform.duration(ppsim::Bytes{4 << 20}).ns == 189715);
  const ppsim::NetLink net{0, 0, c};
  CHECK(net.latency(ppsim::Bytes{4096}).ns == 10000);
  CHECK(net.serialization(ppsim::Bytes{4096}).ns == 82);        // 4096 / 50 = 81.92
  CHECK(net.transfer_time(ppsim::Bytes{4 << 20}).ns == 189715);
  // Two lock-step copies share the link: twice the bytes at the 4 MiB message's rate.
  CHECK(net.serialization(ppsim::Bytes{8 << 20}, ppsim::Bytes{4 << 20}).ns == 379430);
}

TEST_CASE("piecewise link fit holds every measured point within 10 % (shipped H200 and H100 curves)", "[calibrate][links]") {
  for (const char* name : {"h200.json", "h100.json"}) {
    const nlohmann::json p = load_profile(std::string(PPSIM_SOURCE_DIR) + "/configs/profiles/" + name);
    for (const auto& l : p.at("links")) {
      std::vector<double> xs, ts;
      for (const auto& pt : l.at("points")) {
        xs.push_back(pt.at("bytes").get<double>());
        ts.push_back(pt.at("median_ms").get<double>());
      }
      const LinkFit line = fit_latency_bandwidth(xs, ts);
      const auto [line_err, line_at] =
          link_curve_error({{0, line.latency_us, line.bandwidth_GBps}}, xs, ts);
      const LinkCurveFit curve = fit_link_segments(xs, ts);
      INFO(name << " " << l.at("kind") << ": one line worst " << line_err << " at " << line_at << ", "
                << curve.segments.size() << " segments worst " << curve.worst_error << " at " << curve.worst_bytes);
      CHECK(line_err > 0.10);  // the one line misses (the issue's complaint) ...
      // ... the segments hold every point: 5 % where a rising line can (the fit's tolerance),
      // and a falling pair of latency-bound points (timer noise) gets their flat mean.
      CHECK(curve.worst_error <= 0.10);
      CHECK(curve.segments.size() < xs.size() - 1);  // fewer segments than point pairs: a fit, not a table
      for (std::size_t k = 0; k < xs.size(); ++k)
        CHECK(std::abs(link_curve_ms(curve.segments, static_cast<std::int64_t>(xs[k])) - ts[k]) / ts[k] <= 0.10);
    }
  }
  CHECK_THROWS_AS(fit_link_segments({4096}, {1.0}), std::invalid_argument);
  CHECK_THROWS_AS(fit_link_segments({8192, 4096}, {1.0, 2.0}), std::invalid_argument);
}

TEST_CASE("a profile's link segments are validated with their JSON path", "[calibrate][links]") {
  using nlohmann::json;
  CHECK(link_segments_from_json(json::parse(R"([{"from_bytes":0,"latency_us":2,"bandwidth_GBps":10}])"), "s").size() == 1);
  CHECK_THROWS_WITH(link_segments_from_json(json::array(), "s"), "s: must be a non-empty array");
  CHECK_THROWS_WITH(link_segments_from_json(json::parse(R"([{"from_bytes":10,"latency_us":2,"bandwidth_GBps":10},
      {"from_bytes":10,"latency_us":2,"bandwidth_GBps":10}])"), "s"),
                    "s[1].from_bytes: must be larger than the previous segment's");
  CHECK_THROWS_WITH(link_segments_from_json(json::parse(R"([{"from_bytes":4096,"latency_us":-100,"bandwidth_GBps":10}])"), "s"),
                    "s[0]: the time at from_bytes must be positive");
  CHECK_THROWS_WITH(link_segments_from_json(json::parse(R"([{"from_bytes":0,"latency_us":1,"bandwidth_GBps":1e-9}])"), "s"),
                    "s[0].bandwidth_GBps: must be 0 (a flat range) or at least 0.001 GB/s");
}

TEST_CASE("env_int: unset or empty gives the fallback; anything but a whole number in range is an error",
          "[calibrate]") {
  ::unsetenv("PPSIM_TEST_ENV_INT");
  CHECK(env_int("PPSIM_TEST_ENV_INT", 1, 64, 0) == 0);
  ::setenv("PPSIM_TEST_ENV_INT", "", 1);
  CHECK(env_int("PPSIM_TEST_ENV_INT", 1, 64, 5) == 5);
  ::setenv("PPSIM_TEST_ENV_INT", "64", 1);
  CHECK(env_int("PPSIM_TEST_ENV_INT", 1, 64, 0) == 64);
  for (const char* bad : {"0", "65", "4x", "x", "-1", "99999999999999999999"}) {
    INFO(bad);
    ::setenv("PPSIM_TEST_ENV_INT", bad, 1);
    CHECK_THROWS_WITH(env_int("PPSIM_TEST_ENV_INT", 1, 64, 0),
                      std::string("PPSIM_TEST_ENV_INT=") + bad + ": not an integer from 1 to 64");
  }
  ::unsetenv("PPSIM_TEST_ENV_INT");
}

TEST_CASE("env_choice: unset or empty gives the first choice; another value is an error", "[calibrate]") {
  ::unsetenv("PPSIM_TEST_ENV_CHOICE");
  CHECK(env_choice("PPSIM_TEST_ENV_CHOICE", {"chunked", "flash"}) == "chunked");
  ::setenv("PPSIM_TEST_ENV_CHOICE", "flash", 1);
  CHECK(env_choice("PPSIM_TEST_ENV_CHOICE", {"chunked", "flash"}) == "flash");
  ::setenv("PPSIM_TEST_ENV_CHOICE", "flsh", 1);
  CHECK_THROWS_WITH(env_choice("PPSIM_TEST_ENV_CHOICE", {"chunked", "flash"}),
                    "PPSIM_TEST_ENV_CHOICE=flsh: expected one of chunked, flash");
  ::unsetenv("PPSIM_TEST_ENV_CHOICE");
}
