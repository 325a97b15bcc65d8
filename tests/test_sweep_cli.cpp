// `ppsim sweep` and the cluster/memory sections through the binary: exit codes, files
// written, one-line errors, OOM said clearly with exit 0.
#include <catch2/catch.hpp>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"

using namespace ppsim_test;
using nlohmann::json;

namespace {

const json kBase = {{"model",
                     {{"layers", json::array({{{"repeat", 8}, {"forward_ms", 1.0}, {"backward_ms", 2.0},
                                               {"activation_bytes", 1 << 20}, {"parameter_bytes", 1 << 20}}})}}},
                    {"cluster", {{"devices", 4}}},
                    {"pipeline", {{"schedule", "1f1b"}, {"stages", 4}, {"microbatches", 8}}}};

}  // namespace

TEST_CASE("ppsim sweep writes CSV, JSON and Vega-Lite and prints the best points", "[sweep][cli]") {
  const auto dir = scratch_dir("sweep_cli");
  write_file(dir / "base.json", kBase.dump());
  write_file(dir / "s.json", json{{"base", "base.json"},
                                  {"grid", {{"schedule", {"gpipe", "1f1b"}}, {"stages", {2, 3, 4}}, {"microbatches", {4, 8}}}},
                                  {"top", 2}}
                                 .dump());
  const auto csv = dir / "out.csv", js = dir / "out.json", vl = dir / "out.vl.json";
  const CliResult r = run_ppsim("sweep " + (dir / "s.json").string() + " --csv " + csv.string() + " --json " +
                                    js.string() + " --vega " + vl.string() + " -j 2",
                                dir);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("12 points: 8 fit, 0 out of memory, 4 not applicable\nbest 2 by throughput"));
  CHECK_THAT(r.err, Catch::Contains("sweep: 12 points in"));
  CHECK(json::parse(slurp(js))["rows"].size() == 12);
  CHECK(json::parse(slurp(vl))["hconcat"].size() == 2);
  const std::string csv_text = slurp(csv);
  CHECK(std::count(csv_text.begin(), csv_text.end(), '\n') == 13);

  SECTION("--shard writes only its points") {
    const CliResult s = run_ppsim("sweep " + (dir / "s.json").string() + " --shard 0/5 -q --csv " + csv.string() +
                                      " --json " + js.string(),
                                  dir);
    REQUIRE(s.code == 0);
    CHECK(s.err.empty());
    const json j = json::parse(slurp(js));
    CHECK(j["rows"].size() == 3);  // points 0, 5, 10
    CHECK(j["rows"][1]["point"] == 5);
  }
  SECTION("bad input: one line naming file and path, exit 2, nothing written") {
    write_file(dir / "bad.json", json{{"base", "base.json"}, {"grid", {{"stages", {2, "x"}}}}}.dump());
    const auto none = dir / "none.csv";
    const CliResult b = run_ppsim("sweep " + (dir / "bad.json").string() + " --csv " + none.string(), dir);
    CHECK(b.code == 2);
    CHECK(b.err == "ppsim: error: " + (dir / "bad.json").string() + ": grid.stages[1]: must be a positive integer (got \"x\")\n");
    CHECK_FALSE(std::filesystem::exists(none));
    const CliResult shard = run_ppsim("sweep " + (dir / "s.json").string() + " --shard 2/2", dir);
    CHECK(shard.code == 2);
    CHECK(shard.err == "ppsim: error: --shard: must be i/n with 0 <= i < n (got '2/2')\n");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("run, sweep and compare agree on a stage override: devices stay, replicas follow", "[sweep][cli][overrides]") {
  const auto dir = scratch_dir("overrides_cli");
  json base = kBase;
  base["cluster"]["devices"] = 8;  // 4 stages: 2 replicas
  write_file(dir / "base.json", base.dump());
  write_file(dir / "s.json", json{{"base", "base.json"}, {"grid", {{"stages", {2}}}}}.dump());
  const CliResult run = run_ppsim("run " + (dir / "base.json").string() + " --stages 2 --json", dir);
  REQUIRE(run.code == 0);
  const json r = json::parse(run.out);
  CHECK(r["devices"] == 8);
  CHECK(r["pipeline_replicas"] == 4);
  const CliResult sweep = run_ppsim("sweep " + (dir / "s.json").string() + " -q --csv " + (dir / "o.csv").string() +
                                        " --json " + (dir / "o.json").string(),
                                    dir);
  REQUIRE(sweep.code == 0);
  const json row = json::parse(slurp(dir / "o.json"))["rows"][0]["report"];
  CHECK(row["devices"] == 8);
  CHECK(row["pipeline_replicas"] == 4);
  CHECK(row["iteration_time_ms"] == r["iteration_time_ms"]);
  CHECK(row["samples_per_s"] == r["samples_per_s"]);
  const CliResult cmp =
      run_ppsim("compare " + (dir / "base.json").string() + " --stages 2 --schedules 1f1b --json", dir);
  REQUIRE(cmp.code == 0);
  const json c = json::parse(cmp.out);
  CHECK(c["devices"] == 8);
  CHECK(c["results"][0]["iteration_time_ms"] == r["iteration_time_ms"]);
  CHECK(c["results"][0]["samples_per_s"] == r["samples_per_s"]);
  std::filesystem::remove_all(dir);
}

TEST_CASE("ppsim run says OOM clearly and still exits 0", "[memory][cli]") {
  const auto dir = scratch_dir("oom_cli");
  json doc = kBase;
  doc["pipeline"]["schedule"] = "gpipe";
  doc["memory"] = {{"limit_bytes", 10 << 20}};  // a stage's weights + grads + Adam: 16 MiB
  write_file(dir / "c.json", doc.dump());
  const CliResult r = run_ppsim("run " + (dir / "c.json").string(), dir);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("OOM: device 0 exceeds the 10.00 MiB limit by"));
  const CliResult j = run_ppsim("run --json " + (dir / "c.json").string(), dir);
  REQUIRE(j.code == 0);
  const json rep = json::parse(j.out);
  CHECK(rep["fits"] == false);
  CHECK(rep["oom"]["device"] == 0);
  CHECK(rep["oom"]["time_ms"] == 0.0);  // static memory alone is over the limit
  doc["memory"]["limit_bytes"] = "lots";
  write_file(dir / "c.json", doc.dump());
  const CliResult bad = run_ppsim("run " + (dir / "c.json").string(), dir);
  CHECK(bad.code == 2);
  CHECK(bad.err == "ppsim: error: " + (dir / "c.json").string() + ": memory.limit_bytes: must be an integer (got \"lots\")\n");
  std::filesystem::remove_all(dir);
}
