// ppsim sweep: grid expansion, overrides, parallel runs in point order, OOM and
// not-applicable rows, CSV/JSON/Vega-Lite outputs, shards and errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <iomanip>
#include <map>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "ppsim/run/cluster.h"
#include "ppsim/run/config.h"
#include "ppsim/run/overrides.h"
#include "ppsim/views/report.h"
#include "ppsim/sweep/sweep.h"

using namespace ppsim;
using nlohmann::json;

namespace {

json base_config() {
  return json{{"model",
               {{"layers", json::array({{{"repeat", 8}, {"forward_ms", 1.0}, {"backward_ms", 2.0},
                                         {"activation_bytes", 1000}, {"parameter_bytes", 100}, {"output_bytes", 0}}})},
                {"sequence_length", 16}}},
              {"cluster", {{"devices", 4}}},
              {"pipeline", {{"schedule", "1f1b"}, {"stages", 4}, {"microbatches", 8}}}};
}

json sweep_doc(const json& grid) { return json{{"base", base_config()}, {"grid", grid}}; }

}  // namespace

TEST_CASE("sweep grid: points, overrides and order", "[sweep]") {
  const SweepSpec spec = parse_sweep(
      sweep_doc({{"microbatches", {4, 8}}, {"schedule", {"gpipe", "1f1b"}}, {"stages", {2, 3, 4}}}), "s.json");
  REQUIRE(spec.size() == 12);
  // Axes in the fixed order schedule, stages, microbatches; the last varies fastest.
  CHECK(spec.axes[0].name == "schedule");
  CHECK(spec.axes[2].name == "microbatches");
  CHECK(spec.overrides(0) == json{{"schedule", "gpipe"}, {"stages", 2}, {"microbatches", 4}});
  CHECK(spec.overrides(1) == json{{"schedule", "gpipe"}, {"stages", 2}, {"microbatches", 8}});
  CHECK(spec.overrides(11) == json{{"schedule", "1f1b"}, {"stages", 4}, {"microbatches", 8}});

  SweepOptions opt;
  opt.jobs = 2;
  const auto rows = run_sweep(spec, opt);
  REQUIRE(rows.size() == 12);
  for (std::size_t i = 0; i < rows.size(); ++i) CHECK(rows[i].point == i);
  // The base's 4 devices stay and 3 stages do not divide them: not applicable, with the
  // config's reason.
  CHECK(rows[2].status == "not_applicable");
  CHECK(rows[2].reason == "s.json (base): cluster.devices: 4 devices are not a whole number of 3-stage pipeline replicas");
  // p=2 on the same 4 devices: 2 replicas.
  CHECK(rows[0].report["devices"] == 4);
  CHECK(rows[0].report["pipeline_replicas"] == 2);
  // gpipe p=4 m=8, F 2 ms and B 4 ms a stage: (m + p - 1) * 6 ms = 66 ms.
  CHECK(rows[5].status == "ok");
  CHECK(rows[5].report["iteration_time_ms"].get<double>() == Approx(66.0));
  CHECK(rows[5].report["devices"] == 4);
  // Same answer as a direct run.
  Config c = parse_config(base_config(), "b.json");
  c.pipeline.schedule = "1f1b";
  c.pipeline.microbatches = 4;
  const Run run = prepare_run(c);
  auto links = make_links(c, run.schedule.devices);
  const json direct = make_report(run, simulate(run.schedule, run.costs, *links));
  CHECK(rows[10].report["iteration_time_ms"] == direct["iteration_time_ms"]);
  CHECK(rows[10].report["peak_memory_bytes"] == direct["peak_memory_bytes"]);
  CHECK_FALSE(rows[10].report.contains("per_device"));

  SECTION("one thread gives the same CSV and JSON") {
    SweepOptions one;
    one.jobs = 1;
    const auto again = run_sweep(spec, one);
    CHECK(sweep_csv(spec, again) == sweep_csv(spec, rows));
    CHECK(sweep_json(spec, again, one) == sweep_json(spec, rows, one));
  }
  SECTION("CSV: a header and one line per point") {
    const std::string csv = sweep_csv(spec, rows);
    std::istringstream in(csv);
    std::string header;
    std::getline(in, header);
    CHECK_THAT(header, Catch::StartsWith("point,status,reason,schedule,stages,microbatches,"));
    CHECK_THAT(header, Catch::Contains(",iteration_time_ms,"));
    CHECK_THAT(header, Catch::Contains(",data_parallel.exposed_ms"));
    std::size_t lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
    CHECK(lines == 12);
  }
  SECTION("JSON and Vega-Lite") {
    const json j = sweep_json(spec, rows, opt);
    CHECK(j["schema"] == "ppsim.sweep/1");
    CHECK(j["points"] == 12);
    CHECK(j["counts"]["ok"] == 8);
    CHECK(j["counts"]["not_applicable"] == 4);
    CHECK(j["rows"][5]["report"]["schedule"] == "gpipe");
    const json v = sweep_vega(spec, rows);
    CHECK(v["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json");
    CHECK(v["hconcat"].size() == 2);
    CHECK(v["datasets"]["sweep"].size() == 8);
    CHECK(v["hconcat"][0]["encoding"]["x"]["field"] == "microbatches");
    CHECK(v["hconcat"][1]["layer"][0]["encoding"]["x"]["field"] == "peak_memory_GiB");
  }
  SECTION("best points by throughput") {
    const std::string best = format_best_points(rows, 3);
    CHECK_THAT(best, Catch::StartsWith("12 points: 8 fit, 0 out of memory, 4 not applicable\nbest 3 by throughput"));
    // The table and the chart read only what summary_row keeps.
    std::vector<SweepRow> kept;
    for (SweepRow row : rows) kept.push_back(summary_row(std::move(row)));
    CHECK(format_best_points(kept, 3) == best);
    CHECK(sweep_vega(spec, kept) == sweep_vega(spec, rows));
  }
  SECTION("CSV columns are known before any point runs") {
    // point, status, reason, the three axes, then every report field not yet there, in
    // the report's order: the same header whatever the rows.
    std::vector<std::string> want = {"point", "status", "reason", "schedule", "stages", "microbatches"};
    for (const std::string& f : report_scalar_fields())
      if (f != "schedule" && f != "stages" && f != "microbatches") want.push_back(f);
    const SweepCsv csv(spec);
    CHECK(csv.columns() == want);
    CHECK(sweep_csv(spec, {}) == csv.header());
    CHECK(sweep_csv(spec, rows).starts_with(csv.header()));
    // The report's order: sorted, "oom" before "oom.device", "data_parallel.*" before
    // "data_parallel_degree".
    CHECK(std::is_sorted(report_scalar_fields().begin(), report_scalar_fields().end()));
    CHECK(csv.header().find(",oom,oom.device,") != std::string::npos);
    CHECK(csv.header().find(",data_parallel.ring_size,data_parallel_degree,") != std::string::npos);
  }
  SECTION("rows stream in point order; the JSON streamed is the whole document's bytes") {
    std::vector<std::size_t> order;
    SweepJsonWriter writer(spec, opt);
    run_sweep(spec, opt, [&](SweepRow&& row) {
      order.push_back(row.point);
      writer.add(row);
    });
    CHECK(order == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
    std::ostringstream streamed, whole;
    writer.finish(streamed);
    whole << std::setw(1) << sweep_json(spec, rows, opt);
    CHECK(streamed.str() == whole.str());
    SweepJsonWriter empty(spec, opt);  // no rows: "rows": []
    std::ostringstream e, ew;
    empty.finish(e);
    ew << std::setw(1) << sweep_json(spec, {}, opt);
    CHECK(e.str() == ew.str());
  }
  SECTION("a row that cannot be written stops the sweep with its error") {
    std::size_t handed = 0;
    CHECK_THROWS_WITH(run_sweep(spec, opt,
                                [&](SweepRow&&) {
                                  if (++handed == 3) throw std::runtime_error("disk full");
                                }),
                      "disk full");
    CHECK(handed == 3);
  }
}

TEST_CASE("every report field has a sweep CSV column", "[sweep]") {
  // Reports with the optional parts: OOM, data parallel, a schedule note,
  // non-ideal communication, unit time, a transformer's rates; each line must find its
  // columns (SweepCsv::line throws on a field report_scalar_fields lacks).
  json doc = sweep_doc({{"schedule", {"1f1b", "chimera"}}, {"data_parallel", {1, 2}}, {"communication", {"ideal", "torch"}},
                        {"micro_batch_size", {1, 2}}});
  doc["base"]["cluster"]["devices"] = 8;
  doc["base"]["memory"] = {{"limit_bytes", 4000 + 8 * 100 * 8}};  // 1f1b fits at b = 1 only
  const SweepSpec spec = parse_sweep(doc, "s.json");
  std::vector<SweepRow> rows = run_sweep(spec, SweepOptions{});
  Config c = parse_config(base_config(), "b.json");
  const Run unit = unit_time_run(prepare_run(c));
  auto links = make_links(c, unit.schedule.devices);
  SweepRow unit_row;
  unit_row.status = "ok";
  unit_row.report = make_report(unit, simulate(unit.schedule, unit.costs, *links));
  rows.push_back(unit_row);
  const SweepCsv csv(spec);
  std::map<std::string, std::size_t> filled;
  for (const SweepRow& row : rows) {
    std::vector<std::string> cells(1);  // split at commas outside quotes (RFC 4180)
    bool quoted = false;
    for (char ch : csv.line(row)) {
      if (ch == '"') quoted = !quoted;
      else if (ch == ',' && !quoted) cells.emplace_back();
      else if (ch != '\n') cells.back() += ch;
    }
    CHECK(cells.size() == csv.columns().size());
    for (std::size_t i = 0; i < cells.size() && i < csv.columns().size(); ++i)
      if (!cells[i].empty()) ++filled[csv.columns()[i]];
  }
  for (const char* optional : {"oom.device", "note", "communication", "unit_time", "data_parallel.degree",
                               "data_parallel_degree"})
  {
    INFO(optional);
    CHECK(filled[optional] > 0);
  }
  SweepRow odd;
  odd.report = {{"no_such_field", 1}};
  CHECK_THROWS_AS(csv.line(odd), std::logic_error);
}

TEST_CASE("run-style and sweep-style stage overrides give the same config", "[sweep][overrides]") {
  // devices 8, stages 4 (2 replicas), then stages 2: the 8 devices stay, 4 replicas.
  json doc = sweep_doc({{"stages", {2}}});
  doc["base"]["cluster"]["devices"] = 8;
  const SweepSpec spec = parse_sweep(doc, "s.json");
  ConfigOverrides o;
  o.stages = 2;
  const Config run_style = apply_overrides(spec.base, o);
  CHECK(run_style.devices == 8);
  CHECK(data_parallel_degree(run_style) == 4);
  const auto rows = run_sweep(spec, SweepOptions{});
  REQUIRE(rows.size() == 1);
  REQUIRE(rows[0].status == "ok");
  CHECK(rows[0].report["devices"] == 8);
  CHECK(rows[0].report["pipeline_replicas"] == 4);
  CHECK(rows[0].report["data_parallel"]["degree"] == 4);
  // The same report as a direct run of the run-style config.
  const Run run = prepare_run(run_style);
  auto links = make_links(run_style, run.schedule.devices);
  const json direct = make_report(run, simulate(run.schedule, run.costs, *links));
  CHECK(rows[0].report["iteration_time_ms"] == direct["iteration_time_ms"]);
  CHECK(rows[0].report["samples_per_s"] == direct["samples_per_s"]);
}

TEST_CASE("compare is a sweep over the schedule axis", "[sweep][compare]") {
  const Config base = parse_config(base_config(), "b.json");
  const SweepSpec spec = compare_sweep(base, {"gpipe", "interleaved", "chimera", "zbv"});
  REQUIRE(spec.size() == 4);
  REQUIRE(spec.axes.size() == 1);
  CHECK(spec.axes[0].name == "schedule");
  CHECK(spec.axes[0].values.size() == 4);
  // Chunked schedules at their own default chunks (the base asks for one).
  CHECK(spec.overrides(0) == json{{"schedule", "gpipe"}, {"chunks", 1}});
  CHECK(spec.overrides(1) == json{{"schedule", "interleaved"}, {"chunks", 2}});
  CHECK(spec.overrides(3) == json{{"schedule", "zbv"}, {"chunks", 2}});
  Config four = base;
  four.pipeline.stages = 2;
  four.pipeline.chunks = 4;
  CHECK(compare_chunks("interleaved", four) == 4);
  CHECK(compare_chunks("gpipe", four) == 1);
  SweepOptions opt;
  opt.per_device = true;
  const auto rows = run_sweep(spec, opt);
  REQUIRE(rows.size() == 4);
  // gpipe p=4 m=8, F 2 ms and B 4 ms a stage: (m + p - 1) * 6 ms = 66 ms.
  CHECK(rows[0].status == "ok");
  CHECK(rows[0].report["iteration_time_ms"] == 66.0);
  CHECK(rows[1].report["chunks"] == 2);
  CHECK(rows[1].report["per_device"].size() == 4);
  // zbv: 8 layers fill 4 devices x 2 chunks, one layer a stage.
  CHECK(rows[3].status == "ok");
}

TEST_CASE("sweep shards split the points i mod n", "[sweep]") {
  const SweepSpec spec = parse_sweep(sweep_doc({{"microbatches", {1, 2, 3, 4, 5, 6, 7}}}), "s.json");
  SweepOptions opt;
  parse_shard("1/3", opt.shard_index, opt.shard_count);
  const auto rows = run_sweep(spec, opt);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].point == 1);
  CHECK(rows[1].point == 4);
  CHECK(sweep_json(spec, rows, opt)["shard"] == "1/3");
  int i = 0, n = 0;
  CHECK_THROWS_WITH(parse_shard("3/3", i, n), "--shard: must be i/n with 0 <= i < n (got '3/3')");
  CHECK_THROWS_WITH(parse_shard("1", i, n), "--shard: must be i/n with 0 <= i < n (got '1')");
  CHECK_THROWS_WITH(parse_shard("a/2", i, n), "--shard: must be i/n with 0 <= i < n (got 'a/2')");
}

TEST_CASE("sweep overrides: micro-batch size, data parallel, recompute, partition, OOM", "[sweep]") {
  json doc = sweep_doc({{"micro_batch_size", {1, 2}}, {"data_parallel", {1, 2}}});
  doc["base"]["cluster"]["devices"] = 8;
  doc["base"]["memory"] = {{"limit_bytes", 4000 + 8 * 100 * 8}};  // fits only micro-batch size 1
  const SweepSpec spec = parse_sweep(doc, "s.json");
  const auto rows = run_sweep(spec, SweepOptions{});
  REQUIRE(rows.size() == 4);
  // b=1, dp=1: 4 devices; stage 0 peak = 2 layers x 100 B x 16 B/param / 2 + 4 x 2000 B.
  CHECK(rows[0].status == "ok");
  CHECK(rows[0].report["devices"] == 4);
  CHECK(rows[0].report["peak_memory_bytes"] == 1600 + 8000);
  CHECK(rows[1].report["devices"] == 8);
  CHECK(rows[1].report["samples_per_s"].get<double>() ==
        Approx(2 * rows[0].report["samples_per_s"].get<double>()));
  // b=2 doubles times and activations: out of memory on device 0.
  CHECK(rows[2].status == "oom");
  CHECK(rows[2].report["iteration_time_ms"].get<double>() == Approx(2 * rows[0].report["iteration_time_ms"].get<double>()));
  CHECK_THAT(rows[2].reason, Catch::StartsWith("device 0 exceeds the limit by"));
  CHECK(format_best_points(rows, 5).find("2 fit, 2 out of memory") != std::string::npos);

  const SweepSpec rp = parse_sweep(sweep_doc({{"recompute", {"none", "full"}}, {"partition", {"balanced", json::array({1, 2, 2, 3})}}}), "s.json");
  const auto r2 = run_sweep(rp, SweepOptions{});
  REQUIRE(r2.size() == 4);
  // Axis order: partition outer, recompute inner.
  CHECK(r2[0].report["partition"]["layers_per_stage"] == json::array({2, 2, 2, 2}));
  CHECK(r2[2].report["partition"]["layers_per_stage"] == json::array({1, 2, 2, 3}));
  CHECK(r2[1].report["memory"]["recompute"] == "full");
  // Full recompute: B += F, 2 ms more per stage per micro-batch.
  CHECK(r2[1].report["iteration_time_ms"].get<double>() == Approx(r2[0].report["iteration_time_ms"].get<double>() + 11 * 2.0));
}

TEST_CASE("sweep overlap axis: pipeline.overlap per point", "[sweep][overlap]") {
  json doc = sweep_doc({{"schedule", {"1f1b", "1f1b-overlap"}}, {"overlap", {0, 0.5, 1}}});
  doc["base"]["pipeline"]["stages"] = 2;
  doc["base"]["pipeline"]["microbatches"] = 4;
  doc["base"]["cluster"]["devices"] = 2;
  const SweepSpec spec = parse_sweep(doc, "s.json");
  REQUIRE(spec.size() == 6);
  CHECK(spec.axes[1].name == "overlap");
  CHECK(spec.overrides(4) == json{{"schedule", "1f1b-overlap"}, {"overlap", 0.5}});
  const auto rows = run_sweep(spec, SweepOptions{});
  auto ms = [&](std::size_t i) { return rows[i].report["iteration_time_ms"].get<double>(); };
  // 1F1B has no pairs: the same at every overlap.
  CHECK(ms(0) == ms(1));
  CHECK(ms(1) == ms(2));
  // 1f1b-overlap: a pair of F 4 ms and B 8 ms lasts 12, 10 and 8 ms; faster as it grows.
  CHECK(ms(3) > ms(4));
  CHECK(ms(4) > ms(5));
  // Each point is the run of a config with that pipeline.overlap.
  for (const double overlap : {0.0, 0.5, 1.0}) {
    json base = doc["base"];
    base["pipeline"]["schedule"] = "1f1b-overlap";
    base["pipeline"]["overlap"] = overlap;
    const Config c = parse_config(base, "b.json");
    const Run run = prepare_run(c);
    auto links = make_links(c, run.schedule.devices);
    const json direct = make_report(run, simulate_run(run, *links));
    CHECK(ms(3 + static_cast<std::size_t>(overlap * 2)) == direct["iteration_time_ms"].get<double>());
  }
  CHECK_THROWS_WITH(parse_sweep(sweep_doc({{"overlap", {0.5, 1.5}}}), "s.json"),
                    "s.json: grid.overlap[1]: must be a number in 0..1 (got 1.5)");
}

TEST_CASE("sweep file errors name the file and path", "[sweep]") {
  CHECK_THROWS_WITH(parse_sweep(sweep_doc({{"colour", {1}}}), "s.json"),
                    Catch::StartsWith("s.json: grid.colour: unknown axis (allowed: schedule, tensor_parallel, sequence_parallel, stages,"));
  CHECK_THROWS_WITH(parse_sweep(sweep_doc({{"stages", json::array()}}), "s.json"),
                    "s.json: grid.stages: must be a non-empty list of values");
  CHECK_THROWS_WITH(parse_sweep(sweep_doc({{"stages", {2, 0}}}), "s.json"),
                    "s.json: grid.stages[1]: must be a positive integer (got 0)");
  CHECK_THROWS_WITH(parse_sweep(sweep_doc({{"schedule", {"1f1b", "zigzag"}}}), "s.json"),
                    Catch::StartsWith("s.json: grid.schedule[1]: unknown schedule 'zigzag'"));
  CHECK_THROWS_WITH(parse_sweep(sweep_doc({{"recompute", {"partial"}}}), "s.json"),
                    Catch::StartsWith("s.json: grid.recompute[0]: must be \"none\", \"selective\" or \"full\""));
  CHECK_THROWS_WITH(parse_sweep(json{{"grid", json::object()}}, "s.json"),
                    Catch::StartsWith("s.json: base: missing"));
  CHECK_THROWS_WITH(parse_sweep(json{{"base", base_config()}, {"grid", json::object()}, {"outputs", 1}}, "s.json"),
                    Catch::StartsWith("s.json: outputs: unknown key"));
  json bad_base = sweep_doc({{"stages", {2}}});
  bad_base["base"]["pipeline"]["stages"] = "four";
  CHECK_THROWS_WITH(parse_sweep(bad_base, "s.json"),
                    Catch::StartsWith("s.json (base): pipeline.stages: must be an integer"));
  CHECK_THROWS_WITH(load_sweep("/nonexistent/sweep.json"), "/nonexistent/sweep.json: cannot open file (No such file or directory)");
}

#ifdef PPSIM_HAVE_PROFILES
TEST_CASE("sweep re-costs a transformer base at each micro-batch size", "[sweep]") {
  const json base = {{"model", {{"preset", "configs/models/tiny.json"}, {"sequence_length", 32}, {"micro_batch_size", 1}}},
                     {"costs", {{"device", "configs/devices/h100-sxm.json"}}},
                     {"cluster", {{"devices", 2}}},
                     {"pipeline", {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 4}, {"partition", "uniform"}}}};
  const std::string file = PPSIM_SOURCE_DIR "/configs/sweeps/tiny.json";
  const SweepSpec spec = parse_sweep(json{{"base", base}, {"grid", {{"micro_batch_size", {1, 4}}}}}, file);
  REQUIRE(spec.base_by_shard.size() == 1);  // b = 4; b = 1 is the base's own shape
  const auto rows = run_sweep(spec, SweepOptions{});
  REQUIRE(rows.size() == 2);
  json direct = base;
  direct["model"]["micro_batch_size"] = 4;
  const Config c = parse_config(direct, file);
  const Run run = prepare_run(c);
  auto links = make_links(c, run.schedule.devices);
  const json want = make_report(run, simulate(run.schedule, run.costs, *links));
  CHECK(rows[1].report["micro_batch_size"] == 4);
  CHECK(rows[1].report["iteration_time_ms"] == want["iteration_time_ms"]);
  CHECK(rows[1].report["peak_memory_bytes"] == want["peak_memory_bytes"]);
}
#endif

TEST_CASE("sweep chart: only points that fit, Pareto front of throughput against memory", "[sweep][vega]") {
  const SweepSpec spec = parse_sweep(sweep_doc({{"stages", {2}}}), "s.json");
  auto row = [](std::size_t point, const char* status, double samples, double gib) {
    SweepRow r;
    r.point = point;
    r.status = status;
    r.report = {{"schedule", "1f1b"}, {"stages", 2}, {"microbatches", 4}, {"chunks", 1},
                {"micro_batch_size", 1}, {"bubble_rate", 0.1}, {"iteration_time_ms", 1.0},
                {"samples_per_s", samples}, {"peak_memory_bytes", gib * 1024 * 1024 * 1024}};
    return r;
  };
  // By hand: 0 (10/s, 4 GiB), 1 (20/s, 8 GiB) and 3 (30/s, 16 GiB) are each the fastest
  // at their memory; 2 (15/s, 8 GiB) is beaten by 1, 4 (25/s, 16 GiB) by 3; 5 is
  // faster than all but out of memory, so it neither shows nor dominates.
  const std::vector<SweepRow> rows = {row(0, "ok", 10, 4), row(1, "ok", 20, 8), row(2, "ok", 15, 8),
                                      row(3, "ok", 30, 16), row(4, "ok", 25, 16), row(5, "oom", 99, 1000)};
  const json v = sweep_vega(spec, rows);
  std::vector<std::size_t> front;
  for (const json& d : v["datasets"]["sweep"])
    if (d["pareto"].get<bool>()) front.push_back(d["point"].get<std::size_t>());
  CHECK(front == std::vector<std::size_t>{0, 1, 3});
  const json& layers = v["hconcat"][1]["layer"];
  CHECK(layers[0]["transform"][0]["filter"] == "datum.status == 'ok' && datum.pareto");
  CHECK(layers[0]["mark"]["type"] == "line");
  CHECK(layers[1]["transform"][0]["filter"] == "datum.status == 'ok'");
}
