// ppsim run --vega/--trace/--svg/--unit-time through the binary.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"

using nlohmann::json;
using namespace ppsim_test;

namespace {

const char* kConfig = R"({
  "model": { "layers": [ { "repeat": 4, "forward_ms": 0.5, "backward_ms": 1.5,
                            "activation_bytes": 1048576, "parameter_bytes": 4194304,
                            "output_bytes": 2000000 } ] },
  "cluster": { "devices": 2, "link": { "latency_us": 10, "bandwidth_GBps": 10 } },
  "pipeline": { "schedule": "1f1b", "stages": 2, "microbatches": 4 }
})";

}  // namespace

TEST_CASE("ppsim run --vega and --trace write both views of the run", "[vega][trace][cli]") {
  const auto dir = scratch_dir("vega_cli");
  write_file(dir / "c.json", kConfig);
  const auto r = run_ppsim("run " + (dir / "c.json").string() + " --vega " + (dir / "g.vl.json").string() +
                               " --trace " + (dir / "t.json").string(),
                           dir);
  REQUIRE(r.code == 0);
  const json spec = json::parse(slurp(dir / "g.vl.json"));
  const json trace = json::parse(slurp(dir / "t.json"));
  std::size_t compute = 0, sends = 0, x = 0;
  for (const json& b : spec["datasets"]["boxes"]) {
    if (b["lane"] == "compute") ++compute;
    if (b["lane"] == "send") ++sends;
  }
  for (const json& e : trace["traceEvents"])
    if (e["ph"] == "X" && e["tid"] == 1) ++x;
  CHECK(compute == 16);  // 2 devices x 4 micro-batches x (F, B)
  CHECK(sends == 8);     // 4 activations down, 4 gradients up
  CHECK(x == 16);
  CHECK(spec["title"]["text"] == "1f1b: p=2, m=4, v=1");
  std::filesystem::remove_all(dir);
}

TEST_CASE("ppsim run --unit-time lays ops on whole slots with free links", "[vega][cli]") {
  const auto dir = scratch_dir("vega_unit");
  write_file(dir / "c.json", kConfig);
  const auto r = run_ppsim("run " + (dir / "c.json").string() + " --unit-time --json --vega " +
                               (dir / "g.vl.json").string(),
                           dir);
  REQUIRE(r.code == 0);
  // (m + p - 1) * 3 slots = 15.
  CHECK(json::parse(r.out)["iteration_time_ms"].get<double>() == 15.0);
  const json spec = json::parse(slurp(dir / "g.vl.json"));
  CHECK(spec["title"]["subtitle"] == "iteration 15 slots, bubble 20.0%");
  for (const json& b : spec["datasets"]["boxes"]) {
    CHECK(b["lane"] == "compute");
    const double len = b["end"].get<double>() - b["start"].get<double>();
    CHECK(len == (b["kind"] == "F" ? 1.0 : 2.0));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("ppsim run --unit-time makes communication free on a cluster topology too", "[vega][cli]") {
  // Two DGX-H100 nodes, p = 8, data parallel 2: links with latency and a real all-reduce
  // unless --unit-time drops them.
  const auto dir = scratch_dir("vega_unit_topo");
  const std::string config =
      (std::filesystem::path(PPSIM_SOURCE_DIR) / "configs/experiments/gpt3-13b-2x-dgx-h100.json").string();
  const auto r = run_ppsim("run " + config + " --schedule 1f1b --unit-time --json", dir);
  REQUIRE(r.code == 0);
  const json rep = json::parse(r.out);
  const int p = rep["stages"], m = rep["microbatches"];
  CHECK(rep["iteration_time_ms"].get<double>() == 3.0 * (m + p - 1));
  CHECK(rep["communication_ms"].get<double>() == 0.0);
  CHECK(rep["data_parallel"]["exposed_ms"].get<double>() == 0.0);
  CHECK(rep["memory"]["limit_bytes"].get<std::int64_t>() > 0);  // the GPU's memory still applies
  std::filesystem::remove_all(dir);
}

TEST_CASE("ppsim run --svg without the renderer says how to install it and exits 2", "[vega][cli]") {
  const auto dir = scratch_dir("vega_norender");
  write_file(dir / "c.json", kConfig);
  // A source tree with the script but without node_modules (tools/setup.sh not run).
  std::filesystem::create_directories(dir / "tools");
  std::filesystem::copy_file(std::filesystem::path(PPSIM_SOURCE_DIR) / "tools" / "render.mjs",
                             dir / "tools" / "render.mjs");
  const std::string cmd_env = "PPSIM_DATA_DIR=" + dir.string() + " ";
  const auto out = dir / "o.txt";
  const auto err = dir / "e.txt";
  const int status = std::system((cmd_env + PPSIM_BIN + " run " + (dir / "c.json").string() + " --svg " +
                                  (dir / "g.svg").string() + " --report " + (dir / "r.json").string() +
                                  " --trace " + (dir / "t.json").string() + " >" + out.string() + " 2>" +
                                  err.string())
                                     .c_str());
  CHECK(WEXITSTATUS(status) == 2);
  const std::string e = slurp(err);
  CHECK(e.find("tools/setup.sh") != std::string::npos);
  CHECK(std::count(e.begin(), e.end(), '\n') == 1);
  // One transaction: the figure failed, so neither it nor the JSON outputs were written.
  CHECK_FALSE(std::filesystem::exists(dir / "g.svg"));
  CHECK_FALSE(std::filesystem::exists(dir / "r.json"));
  CHECK_FALSE(std::filesystem::exists(dir / "t.json"));
  std::filesystem::remove_all(dir);
}
