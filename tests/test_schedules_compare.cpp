// `ppsim compare`: every applicable schedule, sorted by iteration time, the others with
// their reason; --json for machines.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"

using namespace ppsim_test;

namespace {
// 2 layers per stage of F=1, B=1 ms (so Chimera's equal-slot bubble applies), free links.
std::string compare_config(int stages, int microbatches) {
  return R"({"model": {"layers": [{"repeat": )" + std::to_string(2 * stages) + R"(, "forward_ms": 1.0, "backward_ms": 1.0,
            "activation_bytes": 1048576, "parameter_bytes": 1048576, "output_bytes": 0}]},
            "cluster": {"devices": )" +
         std::to_string(stages) + R"(}, "pipeline": {"schedule": "1f1b", "stages": )" + std::to_string(stages) +
         R"(, "microbatches": )" + std::to_string(microbatches) + "}}";
}
}  // namespace

TEST_CASE("compare --json lists every schedule, sorted by iteration time", "[schedules][compare][cli]") {
  const auto dir = scratch_dir("compare_json");
  write_file(dir / "c.json", compare_config(4, 8));
  const auto r = run_ppsim("compare " + (dir / "c.json").string() + " --json", dir);
  REQUIRE(r.code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  const auto& rows = doc["results"];
  std::vector<std::string> names;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    names.push_back(rows[i]["schedule"].get<std::string>());
    if (i > 0) CHECK(rows[i - 1]["iteration_time_ms"].get<double>() <= rows[i]["iteration_time_ms"].get<double>());
    for (const char* key : {"iteration_time_ms", "bubble_rate", "peak_memory_bytes", "weight_versions", "synchronous"})
      CHECK(rows[i].contains(key));
  }
  for (const char* name : {"gpipe", "1f1b", "interleaved", "chimera", "gems", "pipedream", "2bw"})
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
  for (const auto& row : rows) {
    const std::string name = row["schedule"].get<std::string>();
    CAPTURE(name);
    // Layer-level F = B = 1 ms, two layers per stage (one per chunk for interleaved).
    if (name == "1f1b" || name == "gpipe") CHECK(row["iteration_time_ms"].get<double>() == Approx(4.0 * (8 + 3)));
    if (name == "chimera") CHECK(row["bubble_rate"].get<double>() == Approx(2.0 / 18.0));
    if (name == "interleaved") CHECK(row["chunks"].get<int>() == 2);
    if (name == "pipedream") {
      CHECK(row["weight_versions"].get<int>() == 4);
      CHECK_FALSE(row["synchronous"].get<bool>());
      CHECK(row["bubble_rate"].get<double>() == 0.0);
    }
    if (name == "2bw") CHECK(row["weight_versions"].get<int>() == 2);
  }
  CHECK(doc["not_applicable"].empty());
}

TEST_CASE("compare names the schedules that do not apply and why", "[schedules][compare][cli]") {
  const auto dir = scratch_dir("compare_table");
  write_file(dir / "c.json", compare_config(3, 6));  // odd p: everything but chimera applies
  const auto r = run_ppsim("compare " + (dir / "c.json").string(), dir);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("not applicable:") && Catch::Contains("even number of stages"));
  CHECK_THAT(r.out, Catch::Contains("pipedream") && Catch::Contains("iteration_ms"));
  const auto only = run_ppsim("compare " + (dir / "c.json").string() + " --schedules dapple,1f1b,nope", dir);
  CHECK(only.code == 2);
  CHECK_THAT(only.err, Catch::Contains("unknown schedule 'nope'"));
}
