// End to end on the CPU: ppsim-calibrate measures a tiny model, ppsim runs on the
// profile, and the report's per-stage times are the sums of the profile's layer times.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

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

#endif
