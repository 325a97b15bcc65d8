// Engine tests: paper bubble formulas, stashed activations, a hand-computed timeline with
// links, queueing on a busy link, cycle reports and determinism.
#include <catch2/catch.hpp>

#include "ppsim/run/config.h"
#include "ppsim/engine/engine.h"
#include "ppsim/metrics/metrics.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/views/report.h"

using namespace ppsim;

namespace {

std::vector<StageCost> equal_costs(int stages, double f_ms, double b_ms, std::int64_t act = 1000,
                                   std::int64_t out = 0, std::int64_t params = 0) {
  StageCost c;
  c.forward = TimeNs::from_ms(f_ms);
  c.backward = TimeNs::from_ms(b_ms);
  c.weight_grad = TimeNs::from_ms(b_ms / 2);
  c.activation = Bytes{act};
  c.weight_activation = Bytes{act / 2};
  c.output = Bytes{out};
  c.parameters = Bytes{params};
  return std::vector<StageCost>(static_cast<std::size_t>(stages), c);
}

SimResult run_free(const Schedule& s, const std::vector<StageCost>& costs) {
  UniformLinkModel free_links(s.devices, TimeNs{}, 0.0);
  return simulate(s, costs, free_links);
}

double mean_bubble(const SimResult& r) { return pipeline_metrics(r).bubble_rate; }

}  // namespace

TEST_CASE("gpipe and 1f1b bubble rate is (p-1)/(m+p-1) with equal stages and free links", "[engine][bubble]") {
  for (const char* name : {"gpipe", "1f1b"}) {
    for (int p : {1, 2, 3, 4, 8, 16}) {
      for (int m : {1, 2, 3, 4, 7, 8, 16, 33}) {
        CAPTURE(name, p, m);
        const Schedule s = make_schedule(name, {p, m, 1, 0});
        const SimResult r = run_free(s, equal_costs(p, 1.0, 2.0));
        // Iteration time is exactly (m+p-1)(f+b): checked to the nanosecond.
        REQUIRE(r.iteration_time.ns == static_cast<std::int64_t>(m + p - 1) * 3'000'000);
        REQUIRE(mean_bubble(r) == Approx(static_cast<double>(p - 1) / (m + p - 1)).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("report bubble_rate and bubble_overhead follow SPEC §5", "[engine][report]") {
  Config c;
  c.file = "inline";
  LayerSpec l;
  l.forward_ms = 1.0;
  l.backward_ms = 2.0;
  l.weight_grad_ms = 2.0 / 3;
  c.layers.assign(8, l);
  c.devices = 4;
  c.pipeline.schedule = "1f1b";
  c.pipeline.stages = 4;
  c.pipeline.microbatches = 12;
  const Run run = prepare_run(c);
  UniformLinkModel links(4, TimeNs{}, 0.0);
  const auto rep = make_report(run, simulate(run.schedule, run.costs, links));
  CHECK(rep["bubble_rate"].get<double>() == Approx(3.0 / 15.0).epsilon(1e-12));
  CHECK(rep["bubble_overhead"].get<double>() == Approx(3.0 / 12.0).epsilon(1e-12));  // Megatron (p-1)/m
  CHECK(rep["iteration_time_ms"].get<double>() == Approx(15 * 6.0));
  CHECK(rep["samples_per_s"].get<double>() == Approx(12 / 0.090));
  CHECK(rep["per_stage"].size() == 4);
  CHECK(rep["per_stage"][1]["forward_ms"].get<double>() == Approx(2.0));
}

TEST_CASE("1f1b stashes min(p-s, m) micro-batches on device s; gpipe stashes m", "[engine][memory]") {
  for (int p : {1, 2, 4, 8}) {
    for (int m : {1, 3, 4, 8, 20}) {
      CAPTURE(p, m);
      const auto costs = equal_costs(p, 1.0, 2.0, 1000, 0, 77);
      const SimResult one = run_free(make_schedule("1f1b", {p, m, 1, 0}), costs);
      const SimResult gp = run_free(make_schedule("gpipe", {p, m, 1, 0}), costs);
      for (int s = 0; s < p; ++s) {
        CHECK(one.per_device[s].peak_activation.value == 1000LL * std::min(p - s, m));
        CHECK(one.per_device[s].peak_inflight == std::min(p - s, m));
        CHECK(gp.per_device[s].peak_activation.value == 1000LL * m);
        CHECK(one.per_device[s].weights.value == 77);
        CHECK(one.per_device[s].weight_versions == 1);
        CHECK(one.per_device[s].peak_memory.value == 77 + 1000LL * std::min(p - s, m));
      }
    }
  }
}

TEST_CASE("memory samples start and end at the weights and never go below them", "[engine][memory]") {
  const SimResult r = run_free(make_schedule("1f1b", {4, 8, 1, 0}), equal_costs(4, 1.0, 2.0, 500, 0, 64));
  for (int d = 0; d < 4; ++d) {
    std::vector<MemorySample> mine;
    for (const auto& m : r.memory)
      if (m.device == d) mine.push_back(m);
    REQUIRE(mine.size() >= 2);
    CHECK(mine.front().bytes.value == 64);
    CHECK(mine.back().bytes.value == 64);
    std::int64_t peak = 0;
    for (std::size_t i = 0; i < mine.size(); ++i) {
      CHECK(mine[i].bytes.value >= 64);
      if (i > 0) CHECK(mine[i].t >= mine[i - 1].t);
      peak = std::max(peak, mine[i].bytes.value);
    }
    CHECK(peak == r.per_device[d].peak_memory.value);
  }
}

TEST_CASE("hand-computed 1f1b timeline with link latency and bandwidth, to the nanosecond", "[engine][links]") {
  // p=2, m=2, F=1 ms, B=2 ms, 1e6 bytes over a 10 us + 10 GB/s link: 110 us per transfer.
  const Schedule s = make_schedule("1f1b", {2, 2, 1, 0});
  UniformLinkModel links(2, TimeNs{10'000}, 10.0);
  REQUIRE(links.duration(Bytes{1'000'000}).ns == 110'000);
  const SimResult r = simulate(s, equal_costs(2, 1.0, 2.0, 0, 1'000'000), links);
  // device 0: F0 F1 B0 B1; device 1: F0 B0 F1 B1
  const std::vector<std::pair<std::int64_t, std::int64_t>> expected = {
      {0, 1'000'000},         {1'000'000, 2'000'000}, {4'220'000, 6'220'000}, {7'220'000, 9'220'000},
      {1'110'000, 2'110'000}, {2'110'000, 4'110'000}, {4'110'000, 5'110'000}, {5'110'000, 7'110'000}};
  REQUIRE(r.ops.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(r.ops[i].start.ns == expected[i].first);
    CHECK(r.ops[i].end.ns == expected[i].second);
  }
  REQUIRE(r.transfers.size() == 4);
  CHECK(r.transfers[0].start.ns == 1'000'000);
  CHECK(r.transfers[0].end.ns == 1'110'000);
  CHECK(r.transfers[2].src == 1);
  CHECK(r.transfers[2].start.ns == 4'110'000);
  CHECK(r.transfers[2].end.ns == 4'220'000);
  CHECK(r.iteration_time.ns == 9'220'000);
}

TEST_CASE("back-to-back transfers queue on a busy link", "[engine][links]") {
  // gpipe p=2, m=2; 2e7 bytes at 10 GB/s + 10 us = 2.01 ms per transfer, longer than F.
  const Schedule s = make_schedule("gpipe", {2, 2, 1, 0});
  UniformLinkModel links(2, TimeNs{10'000}, 10.0);
  const SimResult r = simulate(s, equal_costs(2, 1.0, 2.0, 0, 20'000'000), links);
  REQUIRE(r.transfers.size() == 4);
  CHECK(r.transfers[0].start.ns == 1'000'000);
  CHECK(r.transfers[0].end.ns == 3'010'000);
  CHECK(r.transfers[1].start.ns == 3'010'000);  // ready at 2 ms, waits for the link
  CHECK(r.transfers[1].end.ns == 5'020'000);
  // device 1: F0 3.01-4.01, F1 5.02-6.02, B0 6.02-8.02, B1 8.02-10.02
  CHECK(r.ops[4].start.ns == 3'010'000);
  CHECK(r.ops[5].start.ns == 5'020'000);
  CHECK(r.ops[7].end.ns == 10'020'000);
  // gradients: 8.02-10.03, then 10.03-12.04; device 0: B0 10.03-12.03, B1 12.04-14.04
  CHECK(r.transfers[3].start.ns == 10'030'000);
  CHECK(r.ops[2].start.ns == 10'030'000);
  CHECK(r.ops[3].start.ns == 12'040'000);
  CHECK(r.iteration_time.ns == 14'040'000);
}

TEST_CASE("a schedule that cannot finish is refused before simulating, naming its cycle of waits", "[engine][deadlock]") {
  Schedule s;
  s.name = "bad";
  s.devices = 2;
  s.num_stages = 2;
  s.microbatches = 1;
  s.device_ops = {{{OpKind::Forward, 0, 0, 0, 0}, {OpKind::Backward, 0, 0, 0, 0}},
                  {{OpKind::Backward, 0, 1, 0, 0}, {OpKind::Forward, 0, 1, 0, 0}}};
  // Device 1 runs B0 first, but B0 needs its own F0, which device order puts after B0.
  CHECK_THROWS_MATCHES(run_free(s, equal_costs(2, 1.0, 2.0)), ScheduleError,
                       Catch::Message("cycle of waits: device 1 B0 (stage 1) waits for device 1 F0 (stage 1), "
                                      "which waits for device 1 B0 (stage 1)"));
}

TEST_CASE("malformed schedules are refused before simulation", "[engine][validate]") {
  Schedule s = make_schedule("1f1b", {2, 2, 1, 0});
  SECTION("duplicate op") {
    s.device_ops[0].push_back(s.device_ops[0].front());
    CHECK_THROWS_WITH(run_free(s, equal_costs(2, 1, 2)), Catch::Contains("appears twice"));
  }
  SECTION("missing backward") {
    s.device_ops[1].pop_back();
    CHECK_THROWS_WITH(run_free(s, equal_costs(2, 1, 2)), Catch::Contains("has no B1 for stage 1"));
  }
  SECTION("stage on two devices") {
    std::swap(s.device_ops[0][3], s.device_ops[1][3]);
    CHECK_THROWS_AS(run_free(s, equal_costs(2, 1, 2)), ScheduleError);
  }
  SECTION("W without split backward") {
    s.device_ops[0].push_back({OpKind::Weight, 0, 0, 0, 0});
    CHECK_THROWS_WITH(run_free(s, equal_costs(2, 1, 2)), Catch::Contains("without split backward"));
  }
}

TEST_CASE("simulation is deterministic", "[engine]") {
  const Schedule s = make_schedule("1f1b", {8, 32, 1, 0});
  UniformLinkModel a(8, TimeNs{1'000}, 25.0), b(8, TimeNs{1'000}, 25.0);
  const auto costs = equal_costs(8, 1.0, 2.0, 10, 4'000'000);
  const SimResult r1 = simulate(s, costs, a);
  const SimResult r2 = simulate(s, costs, b);
  REQUIRE(r1.ops.size() == r2.ops.size());
  for (std::size_t i = 0; i < r1.ops.size(); ++i) {
    REQUIRE(r1.ops[i].start == r2.ops[i].start);
    REQUIRE(r1.ops[i].end == r2.ops[i].end);
  }
}

TEST_CASE("1f1b op order is Megatron-LM's warm-up / steady / cool-down", "[schedules][1f1b]") {
  const Schedule s = make_schedule("dapple", {4, 6, 1, 0});
  auto tokens = [&](int d) {
    std::string out;
    for (const Op& op : s.device_ops[d]) out += (out.empty() ? "" : " ") + op_token(op);
    return out;
  };
  CHECK(s.name == "1f1b");
  CHECK(tokens(0) == "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
  CHECK(tokens(1) == "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5");
  CHECK(tokens(2) == "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5");
  CHECK(tokens(3) == "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
  // m < p: warm-up is capped at m
  const Schedule small = make_schedule("pipedream-flush", {4, 2, 1, 0});
  std::string d0;
  for (const Op& op : small.device_ops[0]) d0 += op_token(op);
  CHECK(d0 == "F0F1B0B1");
  const Schedule g = make_schedule("gpipe", {2, 3, 1, 0});
  std::string g1;
  for (const Op& op : g.device_ops[1]) g1 += op_token(op);
  CHECK(g1 == "F0F1F2B0B1B2");
}

TEST_CASE("gpipe and 1f1b refuse chunks > 1 with a reason", "[schedules]") {
  CHECK_THROWS_WITH(make_schedule("gpipe", {4, 8, 2, 0}), Catch::Contains("chunks must be 1"));
  CHECK_THROWS_WITH(make_schedule("nope", {4, 8, 1, 0}), Catch::Contains("known: gpipe"));
}

TEST_CASE("critical path of the hand-computed timeline", "[engine][critical]") {
  const Schedule s = make_schedule("1f1b", {2, 2, 1, 0});
  UniformLinkModel links(2, TimeNs{10'000}, 10.0);
  const SimResult r = simulate(s, equal_costs(2, 1.0, 2.0, 0, 1'000'000), links);
  const auto cp = critical_path(r);
  CHECK(cp["length_ms"].get<double>() == Approx(9.22).epsilon(1e-12));
  CHECK(cp["compute_ms"].get<double>() == Approx(9.0).epsilon(1e-12));
  CHECK(cp["communication_ms"].get<double>() == Approx(0.22).epsilon(1e-12));
  CHECK(cp["link_wait_ms"].get<double>() == 0.0);
  const std::vector<std::string> steps = {"d0 F0 s0", "link 0->1", "d1 F0 s1", "d1 B0 s1", "d1 F1 s1",
                                          "d1 B1 s1", "link 1->0", "d0 B1 s0"};
  CHECK(cp["steps"].get<std::vector<std::string>>() == steps);
}

TEST_CASE("critical path length equals the makespan, queueing included", "[engine][critical]") {
  const Schedule s = make_schedule("gpipe", {2, 2, 1, 0});
  UniformLinkModel links(2, TimeNs{10'000}, 10.0);
  const SimResult r = simulate(s, equal_costs(2, 1.0, 2.0, 0, 20'000'000), links);
  const auto cp = critical_path(r);
  CHECK(cp["length_ms"].get<double>() == Approx(r.iteration_time.ms()).epsilon(1e-12));
  CHECK(cp["link_wait_ms"].get<double>() > 0.0);  // the second activation waited for the link
}
