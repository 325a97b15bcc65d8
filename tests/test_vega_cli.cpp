// ppsim run --vega/--trace/--svg/--unit-time through the binary.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <sstream>

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

TEST_CASE("ppsim run --unit-time prints slots, bubble and memory and no rate", "[vega][cli]") {
  const auto dir = scratch_dir("vega_unit_table");
  write_file(dir / "c.json", kConfig);
  const auto r = run_ppsim("run " + (dir / "c.json").string() + " --unit-time", dir);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("iteration time 15.00 slots") != std::string::npos);
  CHECK(r.out.find("compute_slots") != std::string::npos);
  CHECK(r.out.find(" ms") == std::string::npos);
  CHECK(r.out.find("samples/s") == std::string::npos);
  CHECK(r.out.find("peak memory") != std::string::npos);
  const auto j = run_ppsim("run " + (dir / "c.json").string() + " --unit-time --json", dir);
  CHECK(json::parse(j.out)["unit_time"] == true);
  std::filesystem::remove_all(dir);
}

TEST_CASE("ppsim run figure options --width --one-based --no-memory --title", "[vega][cli]") {
  const auto dir = scratch_dir("vega_print");
  write_file(dir / "c.json", kConfig);
  const std::string base = "run " + (dir / "c.json").string() + " --vega " + (dir / "g.vl.json").string();
  REQUIRE(run_ppsim(base, dir).code == 0);
  json spec = json::parse(slurp(dir / "g.vl.json"));
  // Default column width: 3.33 in = 239 pt, less the 67 pt margin beside a memory panel.
  CHECK(spec["usermeta"]["ppsim"]["width_in"] == 3.33);
  CHECK(spec["vconcat"][0]["width"] == 239 - 67);
  REQUIRE(run_ppsim(base + " --width 12cm --one-based --no-memory --title 'Figure 3'", dir).code == 0);
  spec = json::parse(slurp(dir / "g.vl.json"));
  CHECK(spec["usermeta"]["ppsim"]["width_in"].get<double>() == Approx(12 / 2.54));
  CHECK(spec["vconcat"].size() == 1);  // no memory panel
  CHECK(spec["vconcat"][0]["width"] == 340 - 24);  // floor(12 / 2.54 * 72) = 340 pt
  CHECK(spec["title"]["text"] == "Figure 3");
  int first = 0;
  for (const json& b : spec["datasets"]["boxes"]) {
    CHECK(b["row"].get<std::string>().substr(0, 2) != "D0");
    if (b["lane"] == "compute" && b["op"] == "F0" && b["stage"] == 1) {  // stage 0, shown from 1
      CHECK(b["microbatch"] == 1);
      CHECK(b["device"] == 1);
      CHECK(b["row"] == "D1");
      CHECK(b["label"] == "1");
      ++first;
    }
  }
  CHECK(first == 1);
  for (const char* bad : {"wide", "0in", "-3cm", "1in", "3furlongs", "in"}) {
    const auto r = run_ppsim(base + " --width " + bad, dir);
    CHECK(r.code == 2);
    CHECK(r.err.find("ppsim: error: --width: ") == 0);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("ppsim run --html writes one self-contained page", "[vega][cli]") {
  if (!std::filesystem::exists(std::filesystem::path(PPSIM_SOURCE_DIR) / "node_modules/vega-embed/package.json")) {
    WARN("SKIP: node_modules/vega-embed not installed (tools/setup.sh)");
    return;
  }
  const auto dir = scratch_dir("vega_html");
  write_file(dir / "c.json", kConfig);
  const auto r = run_ppsim("run " + (dir / "c.json").string() + " --html " + (dir / "p.html").string(), dir);
  REQUIRE(r.code == 0);
  const std::string page = slurp(dir / "p.html");
  CHECK(page.find("<script src") == std::string::npos);  // nothing loaded from elsewhere
  CHECK(page.find("vegaEmbed('#view'") != std::string::npos);
  CHECK(page.find("iteration time") != std::string::npos);  // the report table on top
  const std::string open = "<script type=\"application/json\" id=\"spec\">";
  const auto at = page.find(open);
  REQUIRE(at != std::string::npos);
  const auto end = page.find("</script>", at);
  const json spec = json::parse(page.substr(at + open.size(), end - at - open.size()));
  CHECK(spec["vconcat"][0]["layer"][0]["params"][0]["bind"] == "scales");
  CHECK(spec["vconcat"][0]["layer"][0]["name"] == "ops");
  int ops = 0;
  for (const json& b : spec["datasets"]["boxes"]) {
    if (b["lane"] != "compute") continue;
    ++ops;
    CHECK(b.contains("memory"));
    CHECK(b["duration"].get<double>() > 0);
  }
  CHECK(ops == 16);  // 2 devices x 4 micro-batches x (F, B)
  std::filesystem::remove_all(dir);
}

TEST_CASE("ppsim compare --csv has the --json numbers with samples/s, tokens/s and MFU columns", "[cli]") {
  const auto dir = scratch_dir("compare_csv");
  write_file(dir / "c.json", kConfig);
  const std::string base = "compare " + (dir / "c.json").string() + " --schedules 1f1b,gpipe";
  const auto csv = run_ppsim(base + " --csv", dir);
  REQUIRE(csv.code == 0);
  const json results = json::parse(run_ppsim(base + " --json", dir).out)["results"];
  std::istringstream lines(csv.out);
  std::string header;
  std::getline(lines, header);
  CHECK(header ==
        "schedule,chunks,iteration_time_ms,bubble_rate,peak_memory_bytes,weight_versions,synchronous,"
        "samples_per_s,tokens_per_s,mfu,fits");
  std::size_t i = 0;
  for (std::string line; std::getline(lines, line); ++i) {
    REQUIRE(i < results.size());
    const json& r = results[i];
    // No transformer model: tokens/s and MFU are empty.
    CHECK(line == r["schedule"].get<std::string>() + "," + r["chunks"].dump() + "," + r["iteration_time_ms"].dump() +
                      "," + r["bubble_rate"].dump() + "," + r["peak_memory_bytes"].dump() + "," +
                      r["weight_versions"].dump() + "," + r["synchronous"].dump() + "," +
                      r["samples_per_s"].dump() + ",,," + (r.contains("fits") ? r["fits"].dump() : ""));
  }
  CHECK(i == 2);
  CHECK(run_ppsim(base + " --csv --json", dir).code == 2);
  std::filesystem::remove_all(dir);
}
