// The CLI on good and bad input: every bad input exits 2 with one line naming the file,
// the JSON path and the problem, and leaves no output file behind.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"

using namespace ppsim_test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json good_config() {
  return json::parse(R"({
    "model": { "layers": [ { "repeat": 8, "forward_ms": 1.0, "backward_ms": 2.0,
                              "activation_bytes": 1048576, "parameter_bytes": 1048576,
                              "output_bytes": 0 } ] },
    "cluster": { "devices": 4 },
    "pipeline": { "schedule": "1f1b", "stages": 4, "microbatches": 8, "chunks": 1 }
  })");
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("the SPEC §7 minimal config runs and reports the 1F1B bubble", "[cli]") {
  const auto dir = scratch_dir("cli_good");
  write_file(dir / "c.json", good_config().dump());
  const auto r = run_ppsim("run " + (dir / "c.json").string() + " --json --report " + (dir / "r.json").string() +
                               " --timeline " + (dir / "t.json").string(),
                           dir);
  REQUIRE(r.code == 0);
  const json rep = json::parse(r.out);
  CHECK(rep["bubble_rate"].get<double>() == Approx(3.0 / 11.0).epsilon(1e-12));
  CHECK(rep["iteration_time_ms"].get<double>() == Approx(11 * 6.0));
  CHECK(rep["peak_memory_bytes"].get<std::int64_t>() == 2 * 1048576 + 4 * 2 * 1048576);
  for (const char* key : {"schedule", "stages", "devices", "microbatches", "chunks", "iteration_time_ms", "bubble_rate",
                          "bubble_overhead", "peak_memory_bytes", "samples_per_s", "per_device"})
    CHECK(rep.contains(key));
  for (const char* key : {"device", "compute_ms", "idle_ms", "bubble_rate", "peak_memory_bytes",
                          "peak_activation_bytes", "weights_bytes", "weight_versions"})
    CHECK(rep["per_device"][0].contains(key));
  CHECK(json::parse(slurp(dir / "r.json")) == rep);
  const json tl = json::parse(slurp(dir / "t.json"));
  CHECK(tl["schema"] == "ppsim.timeline/1");
  CHECK(tl["events"].size() == 4 * 16);
  fs::remove_all(dir);
}

TEST_CASE("command-line overrides and the table", "[cli]") {
  const auto dir = scratch_dir("cli_override");
  write_file(dir / "c.json", good_config().dump());
  const auto r = run_ppsim("run " + (dir / "c.json").string() + " --schedule gpipe --stages 2 --microbatches 3", dir);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("schedule gpipe  stages 2  microbatches 3") != std::string::npos);
  CHECK(r.out.find("bubble rate 0.2500") != std::string::npos);  // (2-1)/(3+2-1)
  // The 4 devices stay: 3 stages do not divide them; with one replica (3 devices) the
  // 8 layers do not divide into 3 stages.
  const auto bad = run_ppsim("run " + (dir / "c.json").string() + " --stages 3", dir);
  CHECK(bad.code == 2);
  CHECK(bad.err == "ppsim: error: " + (dir / "c.json").string() +
                       ": cluster.devices: 4 devices are not a whole number of 3-stage pipeline replicas\n");
  const auto layers = run_ppsim("run " + (dir / "c.json").string() + " --stages 3 --data-parallel 1", dir);
  CHECK(layers.code == 2);
  CHECK(layers.err.find("model.layers: 8 layers do not divide into 3") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("run --micro-batch-size and --data-parallel", "[cli][overrides]") {
  const auto dir = scratch_dir("cli_mbs_dp");
  write_file(dir / "c.json", good_config().dump());
  // b = 2 doubles a stage's F and B (2 layers: F 4 ms, B 8 ms) and its activations.
  const auto b2 = run_ppsim("run " + (dir / "c.json").string() + " --micro-batch-size 2 --json", dir);
  REQUIRE(b2.code == 0);
  const json rep = json::parse(b2.out);
  CHECK(rep["micro_batch_size"] == 2);
  CHECK(rep["iteration_time_ms"].get<double>() == 11 * 12.0);
  CHECK(rep["peak_memory_bytes"].get<std::int64_t>() == 2 * 1048576 + 4 * 4 * 1048576);
  CHECK(rep["samples_per_s"].get<double>() == Approx(8 * 2 / 0.132));
  // Two stages and a degree of 2: 4 devices, 2 replicas.
  const auto dp = run_ppsim("run " + (dir / "c.json").string() + " --stages 2 --data-parallel 2 --json", dir);
  REQUIRE(dp.code == 0);
  const json d = json::parse(dp.out);
  CHECK(d["devices"] == 4);
  CHECK(d["pipeline_replicas"] == 2);
  CHECK(d["data_parallel"]["degree"] == 2);
  // Without --stages the degree needs 4 x 2 GPUs.
  const auto big = run_ppsim("run " + (dir / "c.json").string() + " --data-parallel 2", dir);
  CHECK(big.code == 2);
  CHECK(big.err == "ppsim: error: " + (dir / "c.json").string() +
                       ": parallel.data_parallel: 4 stages x 2 replicas need 8 GPUs, the cluster has 4\n");
  CHECK(run_ppsim("run " + (dir / "c.json").string() + " --micro-batch-size 0", dir).code == 2);
  // A profile-costed model (configs/default.json) is re-costed at b, as if the file said b.
  json prof = json::parse(slurp(PPSIM_SOURCE_DIR "/configs/default.json"));
  prof["model"]["preset"] = PPSIM_SOURCE_DIR "/configs/models/gpt3-1.3b.json";
  prof["costs"]["profile"] = PPSIM_SOURCE_DIR "/configs/profiles/h200.json";
  write_file(dir / "p1.json", prof.dump());
  prof["model"]["micro_batch_size"] = 2;
  write_file(dir / "p2.json", prof.dump());
  const auto over = run_ppsim("run " + (dir / "p1.json").string() + " --micro-batch-size 2 --json", dir);
  const auto file = run_ppsim("run " + (dir / "p2.json").string() + " --json", dir);
  REQUIRE(over.code == 0);
  REQUIRE(file.code == 0);
  const json o = json::parse(over.out), f = json::parse(file.out);
  CHECK(o["micro_batch_size"] == 2);
  CHECK(o["iteration_time_ms"] == f["iteration_time_ms"]);
  CHECK(o["peak_memory_bytes"] == f["peak_memory_bytes"]);
  const auto help = run_ppsim("run --help", dir);
  CHECK(help.code == 0);
  CHECK_THAT(help.out, Catch::Contains("--data-parallel") && Catch::Contains("--micro-batch-size") &&
                           Catch::Contains("the devices stay"));
  fs::remove_all(dir);
}

TEST_CASE("ppsim schedule prints one device a line", "[cli]") {
  const auto dir = scratch_dir("cli_schedule");
  const auto r = run_ppsim("schedule --schedule 1f1b --stages 2 --microbatches 3", dir);
  REQUIRE(r.code == 0);
  CHECK(r.out == "device 0: F0 F1 B0 F2 B1 B2\ndevice 1: F0 B0 F1 B1 F2 B2\n");
  CHECK(run_ppsim("schedule --schedule 1f1b --stages 0 --microbatches 3", dir).code == 2);
  CHECK(run_ppsim("schedule --schedule zz --stages 2 --microbatches 3", dir).code == 2);
  CHECK(run_ppsim("--help", dir).code == 0);
  CHECK(run_ppsim("bogus", dir).code == 2);
  fs::remove_all(dir);
}

TEST_CASE("every bad input exits 2 with one line naming file and JSON path, and writes nothing", "[cli][errors]") {
  struct Case {
    std::string name;
    std::string text;        // config file content
    std::string expect;      // substring of the error line
  };
  auto with = [](const std::function<void(json&)>& edit) {
    json c = good_config();
    edit(c);
    return c.dump();
  };
  const std::vector<Case> cases = {
      {"malformed", "{ \"model\": ", "malformed JSON"},
      {"not an object", "[1, 2]", "the top level must be a JSON object"},
      {"missing layers", with([](json& c) { c["model"].erase("layers"); }), "model.layers: missing"},
      {"missing forward", with([](json& c) { c["model"]["layers"][0].erase("forward_ms"); }),
       "model.layers[0].forward_ms: missing"},
      {"wrong type", with([](json& c) { c["pipeline"]["stages"] = "4"; }), "pipeline.stages: must be an integer"},
      {"fractional count", with([](json& c) { c["pipeline"]["microbatches"] = 2.5; }),
       "pipeline.microbatches: must be an integer"},
      {"zero microbatches", with([](json& c) { c["pipeline"]["microbatches"] = 0; }),
       "pipeline.microbatches: must be at least 1"},
      {"negative stages", with([](json& c) { c["pipeline"]["stages"] = -4; }), "pipeline.stages: must be at least 1"},
      {"negative time", with([](json& c) { c["model"]["layers"][0]["backward_ms"] = -2.0; }),
       "model.layers[0].backward_ms: must be >= 0"},
      {"infinite time", R"({"model":{"layers":[{"repeat":8,"forward_ms":1e999,"backward_ms":2}]},"cluster":{"devices":4},"pipeline":{"stages":4,"microbatches":8}})",
       "numbers must be finite: number overflow parsing '1e999'"},
      {"NaN", R"({"model":{"layers":[{"repeat":8,"forward_ms":NaN,"backward_ms":2}]},"cluster":{"devices":4},"pipeline":{"stages":4,"microbatches":8}})",
       "malformed JSON"},
      {"negative bytes", with([](json& c) { c["model"]["layers"][0]["activation_bytes"] = -1; }),
       "model.layers[0].activation_bytes: must be at least 0"},
      {"indivisible layers", with([](json& c) { c["model"]["layers"][0]["repeat"] = 6; }),
       "model.layers: 6 layers do not divide into 4"},
      {"unknown schedule", with([](json& c) { c["pipeline"]["schedule"] = "zigzag"; }),
       "pipeline.schedule: unknown schedule 'zigzag' (known: gpipe"},
      {"unknown key", with([](json& c) { c["pipeline"]["microbatchs"] = 8; }),
       "pipeline.microbatchs: unknown key"},
      {"unknown layer key", with([](json& c) { c["model"]["layers"][0]["forwrd_ms"] = 1; }),
       "model.layers[0].forwrd_ms: unknown key"},
      {"too few devices", with([](json& c) { c["cluster"]["devices"] = 2; }),
       "cluster.devices: 2 devices cannot hold 4 pipeline stages"},
      {"huge microbatches", with([](json& c) { c["pipeline"]["microbatches"] = 1000000000; }),
       "pipeline.microbatches: must be at most 1000000"},
      {"huge op count", with([](json& c) {
         c["pipeline"]["stages"] = 8000; c["pipeline"]["microbatches"] = 100000;
         c["cluster"]["devices"] = 8000; c["model"]["layers"][0]["repeat"] = 8000; }),
       "pipeline: 8000 stages x 1 chunks x 100000 micro-batches is about"},
      {"huge integer", with([](json& c) { c["pipeline"]["stages"] = 18446744073709551615ULL; }),
       "pipeline.stages: must be at most"},
      {"weight grad over backward", with([](json& c) { c["model"]["layers"][0]["weight_grad_ms"] = 5.0; }),
       "model.layers[0].weight_grad_ms: is part of backward_ms"},
  };
  const auto dir = scratch_dir("cli_errors");
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto cfg = dir / "bad.json";
    write_file(cfg, c.text);
    const auto report = dir / "report.json";
    const auto timeline = dir / "timeline.json";
    const auto r = run_ppsim("run " + cfg.string() + " --report " + report.string() + " --timeline " + timeline.string(), dir);
    CHECK(r.code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find(cfg.string() + ": ") != std::string::npos);
    CHECK(r.err.find(c.expect) != std::string::npos);
    CHECK(r.out.empty());
    CHECK_FALSE(fs::exists(report));
    CHECK_FALSE(fs::exists(timeline));
  }
  // Nothing but the config is left in the folder: no temporaries either.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  CHECK(entries == 1);

  SECTION("a missing file") {
    const auto r = run_ppsim("run " + (dir / "absent.json").string(), dir);
    CHECK(r.code == 2);
    CHECK(r.err.find("absent.json: cannot open file") != std::string::npos);
  }
  SECTION("an unwritable output leaves nothing half-written") {
    write_file(dir / "good.json", good_config().dump());
    const auto r = run_ppsim("run " + (dir / "good.json").string() + " --report " + (dir / "r.json").string() +
                                 " --timeline /proc/nope/t.json",
                             dir);
    CHECK(r.code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK_FALSE(fs::exists(dir / "r.json"));
  }
  fs::remove_all(dir);
}

TEST_CASE("ppsim run with overlap and communication flags: the table says which, bad values are one line", "[cli][overlap]") {
  const auto dir = scratch_dir("cli_overlap");
  write_file(dir / "c.json", good_config().dump());
  const std::string cfg = (dir / "c.json").string();
  const auto r = run_ppsim("run " + cfg + " --schedule dualpipe --overlap 0.5", dir);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("schedule dualpipe  stages 4  microbatches 8  chunks 1  devices 4  overlap 0.5\n") == 0);
  const auto range = run_ppsim("run " + cfg + " --overlap 1.5", dir);
  CHECK(range.code == 2);
  CHECK(count_lines(range.err) == 1);
  CHECK(range.err.rfind("ppsim: error: --overlap", 0) == 0);
  // DualPipe has no Megatron calls: refused up front, not reported as a deadlock.
  const auto meg = run_ppsim("run " + cfg + " --schedule dualpipe --comm megatron", dir);
  CHECK(meg.code == 2);
  CHECK(meg.err == "ppsim: error: " + cfg +
                       ": pipeline.communication: megatron semantics model Megatron-LM's 1f1b and interleaved schedules "
                       "(and one-chunk orders like them); dualpipe runs two directions: use torch or ideal\n");
  const auto interleaved = run_ppsim("run " + cfg + " --schedule interleaved --chunks 2 --comm megatron", dir);
  CHECK(interleaved.code == 0);
  CHECK(interleaved.out.find("communication megatron") != std::string::npos);
  fs::remove_all(dir);
}
