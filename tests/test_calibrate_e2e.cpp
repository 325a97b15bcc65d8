// End to end on the CPU: ppsim-calibrate measures a tiny model, ppsim runs on the
// profile, and the report's per-stage times are the sums of the profile's layer times.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/costs.h"
#include "ppsim/calibrate/model.h"

#ifdef PPSIM_CALIBRATE_BIN

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json read(const fs::path& p) { return json::parse(slurp(p)); }

void write(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(2); }

struct Dir {
  fs::path path;
  explicit Dir(const std::string& name) : path(fs::temp_directory_path() / name) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Dir() { fs::remove_all(path); }
};

const std::string kCal = PPSIM_CALIBRATE_BIN;
const std::string kSim = PPSIM_BIN;
const fs::path kRoot = PPSIM_SOURCE_DIR;
const std::string kQuick = " --warmup 1 --min-iters 3 --max-iters 3 --target-ms 1";

double median_of(const json& profile, const std::string& key, const char* what) {
  for (const auto& l : profile.at("layers"))
    if (l.at("key") == key) return l.at(what).at("median").get<double>();
  FAIL("no layer " << key);
  return 0;
}

/// A tiny Llama preset: 4 layers, h = 64, 4 heads, 2 kv heads, ffn 160, s = 32, vocab 128.
void write_tiny_llama(const fs::path& preset) {
  write(preset, {{"name", "tiny llama"}, {"block", "llama"}, {"layers", 4}, {"hidden", 64}, {"heads", 4},
                 {"kv_heads", 2}, {"ffn_hidden", 160}, {"seq_length", 32}, {"vocab", 128}});
}

}  // namespace

TEST_CASE("cpu calibration drives ppsim: per-stage forward = sum of profile layer times", "[calibrate][e2e]") {
  Dir d("ppsim_cal_e2e");
  const fs::path profile = d.path / "profile.json";
  REQUIRE(run(kCal + " layers --backend cpu --model " + (kRoot / "configs/models/tiny.json").string() +
              " --dtype fp32 --micro-batches 1,2 -o " + profile.string() + kQuick + " 2>" + (d.path / "err.txt").string()) == 0);
  CHECK(slurp(d.path / "err.txt").find("[6/6] head h=64 s=32 fp32 v=128 b=2") != std::string::npos);  // progress on stderr
  const json p = read(profile);
  REQUIRE(p.at("layers").size() == 6);

  const json cfg = {{"model", {{"preset", (kRoot / "configs/models/tiny.json").string()},
                               {"micro_batch_size", 2}, {"dtype", "fp32"}}},
                    {"costs", {{"profile", profile.string()}}},
                    {"cluster", {{"devices", 2}}},
                    {"pipeline", {{"schedule", "gpipe"}, {"stages", 2}, {"microbatches", 4}}}};
  write(d.path / "cfg.json", cfg);
  REQUIRE(run(kSim + " run " + (d.path / "cfg.json").string() + " --json > " + (d.path / "report.json").string()) == 0);
  const json rep = read(d.path / "report.json");
  REQUIRE(rep.at("per_stage").size() == 2);
  CHECK(rep.at("model").get<std::string>().find("[costs: measured profile ") != std::string::npos);
  // 6 layers (embedding, 4 blocks, head) in 2 stages of 3.
  const std::string emb = "embedding h=64 s=32 fp32 v=128 b=2";
  const std::string blk = "transformer_block h=64 s=32 fp32 a=4 ffn=256 b=2";
  const std::string head = "head h=64 s=32 fp32 v=128 b=2";
  const double f0 = median_of(p, emb, "forward_ms") + 2 * median_of(p, blk, "forward_ms");
  const double f1 = 2 * median_of(p, blk, "forward_ms") + median_of(p, head, "forward_ms");
  CHECK(rep["per_stage"][0]["forward_ms"].get<double>() == Approx(f0).margin(1e-6));
  CHECK(rep["per_stage"][1]["forward_ms"].get<double>() == Approx(f1).margin(1e-6));
  const double b1 = 2 * (median_of(p, blk, "backward_input_ms") + median_of(p, blk, "backward_weight_ms")) +
                    median_of(p, head, "backward_input_ms") + median_of(p, head, "backward_weight_ms");
  CHECK(rep["per_stage"][1]["backward_ms"].get<double>() == Approx(b1).margin(1e-6));
  // Activation bytes come from the profile too: 2 blocks + head at b = 2.
  std::int64_t act1 = 0;
  for (const auto& l : p.at("layers"))
    if (l.at("key") == blk) act1 += 2 * l.at("activation_bytes").get<std::int64_t>();
    else if (l.at("key") == head) act1 += l.at("activation_bytes").get<std::int64_t>();
  CHECK(rep["per_stage"][1]["activation_bytes"].get<std::int64_t>() == act1);

  // --resume keeps what was measured and adds the rest.
  REQUIRE(run(kCal + " layers --backend cpu --model " + (kRoot / "configs/models/tiny.json").string() +
              " --dtype fp32 --micro-batches 1,2,3 --blocks-only --resume -o " + profile.string() + kQuick + " 2>/dev/null") == 0);
  const json p2 = read(profile);
  CHECK(p2.at("layers").size() == 7);
  CHECK(p2.at("layers")[1] == p.at("layers")[1]);  // the b=1 block, untouched

  // A micro-batch size outside the measured range is refused with the config path (exit 2).
  json bad = cfg;
  bad["model"]["micro_batch_size"] = 4;
  write(d.path / "bad.json", bad);
  CHECK(run(kSim + " run " + (d.path / "bad.json").string() + " 2>" + (d.path / "err2.txt").string()) == 2);
  CHECK(slurp(d.path / "err2.txt").find("costs.profile") != std::string::npos);
  CHECK(slurp(d.path / "err2.txt").find("outside the measured range") != std::string::npos);

  // A profile with a negative field is refused by both tools, naming the JSON path.
  json broken = p;
  broken["layers"][2]["forward_ms"]["median"] = -1.0;
  write(d.path / "broken.json", broken);
  CHECK(run(kCal + " validate " + (d.path / "broken.json").string() + " 2>" + (d.path / "err3.txt").string()) == 2);
  CHECK(slurp(d.path / "err3.txt").find("layers[2].forward_ms.median: must not be negative") != std::string::npos);
}

TEST_CASE("cpu calibration of a Llama model drives ppsim: measured bytes equal the formula", "[calibrate][e2e][llama]") {
  Dir d("ppsim_cal_llama");
  const fs::path preset = d.path / "tiny-llama.json", profile = d.path / "profile.json";
  write_tiny_llama(preset);
  REQUIRE(run(kCal + " layers --backend cpu --model " + preset.string() + " --dtype fp32 --micro-batches 1,2 --tp 1,2 -o " +
              profile.string() + kQuick + " 2>" + (d.path / "err.txt").string()) == 0);
  CHECK(slurp(d.path / "err.txt").find("[12/12] head h=64 s=32 fp32 v=128 llama t=2 b=2") != std::string::npos);
  const json p = read(profile);
  REQUIRE(p.at("layers").size() == 12);
  for (const auto& l : p.at("layers")) {
    INFO(l.at("key"));
    CHECK(l.at("activation_bytes") == l.at("expected_activation_bytes"));
    CHECK(l.at("shape").at("block") == "llama");
  }
  // The b = 2 block at t = 1 by hand (e = 4, sb = 64, h = 64, kv width 32, ffn 160, 4 heads):
  // 4e sbh 65,536 + e sb (2h + 2kv) 49,152 + 3e sb ffn 122,880 + e a s^2 b 32,768 +
  // 1/rms 2 x 4 sb 512.
  const std::string blk = "transformer_block h=64 s=32 fp32 a=4 ffn=160 llama kv=2 b=2";
  for (const auto& l : p.at("layers"))
    if (l.at("key") == blk) CHECK(l.at("activation_bytes") == 65536 + 49152 + 122880 + 32768 + 512);

  const json cfg = {{"model", {{"preset", preset.string()}, {"micro_batch_size", 2}, {"dtype", "fp32"}}},
                    {"costs", {{"profile", profile.string()}}},
                    {"cluster", {{"devices", 2}}},
                    {"pipeline", {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 4}}}};
  write(d.path / "cfg.json", cfg);
  REQUIRE(run(kSim + " run " + (d.path / "cfg.json").string() + " --json > " + (d.path / "report.json").string()) == 0);
  const json rep = read(d.path / "report.json");
  REQUIRE(rep.at("per_stage").size() == 2);
  CHECK(rep.at("model").get<std::string>().find("[costs: measured profile ") != std::string::npos);
  const std::string emb = "embedding h=64 s=32 fp32 v=128 llama b=2", head = "head h=64 s=32 fp32 v=128 llama b=2";
  CHECK(rep["per_stage"][0]["forward_ms"].get<double>() ==
        Approx(median_of(p, emb, "forward_ms") + 2 * median_of(p, blk, "forward_ms")).margin(1e-6));
  CHECK(rep["per_stage"][1]["forward_ms"].get<double>() ==
        Approx(2 * median_of(p, blk, "forward_ms") + median_of(p, head, "forward_ms")).margin(1e-6));
  // `chain` predicts a chain of Llama blocks from the profile's Llama blocks.
  REQUIRE(run(kCal + " chain --backend cpu --model " + preset.string() + " --dtype fp32 --micro-batch 2 --layers 2 --profile " +
              profile.string() + kQuick + " > " + (d.path / "chain.txt").string() + " 2>&1") == 0);
  CHECK(slurp(d.path / "chain.txt").find("predicted from ") != std::string::npos);
}

TEST_CASE("cpu calibration of a Llama model with --kernels fused drives a model.kernels fused config", "[calibrate][e2e][llama][fused]") {
  Dir d("ppsim_cal_llama_fused");
  const fs::path preset = d.path / "tiny-llama.json", profile = d.path / "profile.json";
  write_tiny_llama(preset);
  REQUIRE(run(kCal + " layers --backend cpu --model " + preset.string() + " --dtype fp32 --micro-batches 2 --kernels fused -o " +
              profile.string() + kQuick + " 2>" + (d.path / "err.txt").string()) == 0);
  const json p = read(profile);
  REQUIRE(p.at("layers").size() == 3);
  // The b = 2 block by hand: the plain Llama block's bytes (the e2e test above) less the
  // softmax output e a s^2 b 32,768, plus the log-sum-exp 4 a s b 1,024.
  const std::string blk = "transformer_block h=64 s=32 fp32 a=4 ffn=160 llama kv=2 fused b=2";
  bool seen = false;
  for (const auto& l : p.at("layers")) {
    INFO(l.at("key"));
    CHECK(l.at("activation_bytes") == l.at("expected_activation_bytes"));
    if (l.at("key") != blk) continue;
    seen = true;
    CHECK(l.at("shape").at("kernels") == "fused");
    CHECK(l.at("activation_bytes") == 65536 + 49152 + 122880 + 1024 + 512);
  }
  CHECK(seen);
  json cfg = {{"model", {{"preset", preset.string()}, {"micro_batch_size", 2}, {"dtype", "fp32"}, {"kernels", "fused"}}},
              {"costs", {{"profile", profile.string()}}},
              {"cluster", {{"devices", 2}}},
              {"pipeline", {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 4}}}};
  write(d.path / "cfg.json", cfg);
  REQUIRE(run(kSim + " run " + (d.path / "cfg.json").string() + " --json > " + (d.path / "report.json").string()) == 0);
  const json rep = read(d.path / "report.json");
  const std::string emb = "embedding h=64 s=32 fp32 v=128 llama b=2";
  CHECK(rep["per_stage"][0]["forward_ms"].get<double>() ==
        Approx(median_of(p, emb, "forward_ms") + 2 * median_of(p, blk, "forward_ms")).margin(1e-6));
  // The same config with plain kernels finds no plain blocks in this profile: exit 2.
  cfg["model"]["kernels"] = "plain";
  write(d.path / "cfg.json", cfg);
  CHECK(run(kSim + " run " + (d.path / "cfg.json").string() + " > /dev/null 2>&1") == 2);
}

TEST_CASE("roofline costs from a device spec are labelled as an estimate", "[calibrate][e2e]") {
  Dir d("ppsim_cal_roofline");
  const json cfg = {{"model", {{"preset", (kRoot / "configs/models/gpt3-1.3b.json").string()}, {"micro_batch_size", 1}}},
                    {"costs", {{"device", (kRoot / "configs/devices/h100-sxm.json").string()}}},
                    {"cluster", {{"devices", 4}}},
                    {"pipeline", {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 8}}}};
  write(d.path / "cfg.json", cfg);
  REQUIRE(run(kSim + " run " + (d.path / "cfg.json").string() + " --json > " + (d.path / "r.json").string()) == 0);
  const json rep = read(d.path / "r.json");
  CHECK(rep.at("iteration_time_ms").get<double>() > 0);
  CHECK(rep.at("model").get<std::string>().find("[costs: roofline ESTIMATE from ") != std::string::npos);
  // 26 layers (embedding, 24 blocks, head): 13 per stage.
  CHECK(rep["per_stage"][0]["layers"] == json::array({0, 13}));
}

TEST_CASE("cpu calibration of tensor-parallel shards: --tp 1,2 and costs at t = 2", "[calibrate][e2e][tp]") {
  Dir d("ppsim_cal_tp");
  const fs::path profile = d.path / "profile.json";
  const std::string tiny = " layers --backend cpu --model " + (kRoot / "configs/models/tiny.json").string() + " --dtype fp32";
  REQUIRE(run(kCal + tiny + " --tp 1,2 -o " + profile.string() + kQuick + " 2>" + (d.path / "err.txt").string()) == 0);
  CHECK(slurp(d.path / "err.txt").find("[6/6] head h=64 s=32 fp32 v=128 t=2 b=1") != std::string::npos);
  const json p = read(profile);
  REQUIRE(p.at("layers").size() == 6);
  // Each layer: saved bytes as the formula of its shard, the shard in the shape, t in the key.
  for (const auto& l : p.at("layers")) {
    INFO(l.at("key"));
    CHECK(l.at("activation_bytes") == l.at("expected_activation_bytes"));
    const bool shard = l.at("key").get<std::string>().find(" t=2 ") != std::string::npos;
    CHECK(l.at("shape").value("tensor_parallel", 1) == (shard ? 2 : 1));
  }
  // tiny: h = 64, a = 4, ffn = 256, s = 32; its t = 2 block has h^2(3 + 1)/2 + 2 h ffn/2
  // weights, biases 3h/2 + h + ffn/2 + h, layer norms 4h: 4 bytes each (fp32).
  const std::string blk2 = "transformer_block h=64 s=32 fp32 a=4 ffn=256 t=2 b=1";
  std::int64_t params2 = 0;
  for (const auto& l : p.at("layers"))
    if (l.at("key") == blk2) params2 = l.at("parameter_bytes").get<std::int64_t>();
  CHECK(params2 == 4 * (2 * 64 * 64 + 64 * 256 + 96 + 64 + 128 + 64 + 256));

  // costs_from_profile at t = 2 takes the shard's measurements, not t = 1's halved.
  ppsim::cal::TransformerSpec spec;
  spec.layers = 2;
  spec.hidden = 64;
  spec.heads = 4;
  spec.seq = 32;
  spec.micro_batch = 1;
  spec.ffn_hidden = 256;
  spec.vocab = 128;
  spec.dtype = ppsim::cal::Dtype::fp32;
  spec.tp = 2;
  const auto c = ppsim::cal::costs_from_profile(p, spec, "p.json");
  REQUIRE(c.size() == 4);
  CHECK(c[1].forward_ms == median_of(p, blk2, "forward_ms"));
  CHECK(c[1].backward_ms == median_of(p, blk2, "backward_input_ms") + median_of(p, blk2, "backward_weight_ms"));
  CHECK(c[1].parameter_bytes == params2);
  CHECK(c[3].forward_ms == median_of(p, "head h=64 s=32 fp32 v=128 t=2 b=1", "forward_ms"));
  spec.tp = 4;
  CHECK_THROWS_WITH(ppsim::cal::costs_from_profile(p, spec, "p.json"),
                    Catch::Contains("p.json: no measurement for embedding h=64 s=32 fp32 v=128 t=4;"));
  spec.vocab = 0;
  CHECK_THROWS_WITH(ppsim::cal::costs_from_profile(p, spec, "p.json"),
                    Catch::Contains("p.json: no measurement for transformer_block h=64 s=32 fp32 a=4 ffn=256 t=4;"));

  // --resume measures only the degree the profile lacks.
  REQUIRE(run(kCal + tiny + " --tp 1,2,4 --resume -o " + profile.string() + kQuick + " 2>" + (d.path / "err2.txt").string()) == 0);
  const std::string err2 = slurp(d.path / "err2.txt");
  CHECK(err2.find("[6/9] head h=64 s=32 fp32 v=128 t=2 b=1: already measured, skipped (--resume)") != std::string::npos);
  CHECK(err2.find("[7/9] embedding h=64 s=32 fp32 v=128 t=4 b=1 ...") != std::string::npos);
  const json p2 = read(profile);
  REQUIRE(p2.at("layers").size() == 9);
  CHECK(p2.at("layers")[4] == p.at("layers")[4]);  // the t = 2 block, untouched

  // A degree that does not divide the model: one error line, exit 2, nothing written.
  const fs::path never = d.path / "never.json";
  CHECK(run(kCal + tiny + " --tp 1,3 -o " + never.string() + kQuick + " 2>" + (d.path / "err3.txt").string()) == 2);
  CHECK(slurp(d.path / "err3.txt") ==
        "ppsim-calibrate: error: --tp 3: hidden (64) must be a multiple of the tensor-parallel degree 3\n");
  CHECK(run(kCal + tiny + " --vocab 102 --tp 8 -o " + never.string() + kQuick + " 2>" + (d.path / "err4.txt").string()) == 2);
  CHECK(slurp(d.path / "err4.txt") ==
        "ppsim-calibrate: error: --tp 8: heads (4) must be a multiple of the tensor-parallel degree 8\n");
  CHECK(run(kCal + tiny + " --vocab 102 --tp 2,4 -o " + never.string() + kQuick + " 2>" + (d.path / "err5.txt").string()) == 2);
  CHECK(slurp(d.path / "err5.txt") ==
        "ppsim-calibrate: error: --tp 4: vocab (102) must be a multiple of the tensor-parallel degree 4 (or measure --blocks-only)\n");
  CHECK_FALSE(fs::exists(never));
}

#endif
