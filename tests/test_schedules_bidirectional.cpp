// Chimera and GEMS: two pipelines in opposite directions over the same devices. Checked
// against the Chimera paper's Fig. 3 (D = N = 4) and its comparison table.
#include <catch2/catch.hpp>

#include "test_schedules_helpers.h"

using namespace ppsim;
using namespace ppsim_sched_test;

namespace {
constexpr std::int64_t kMa = 1000;
constexpr std::int64_t kTheta = 100;
}  // namespace

TEST_CASE("chimera D=N=4 matches the paper's Fig. 3 slot by slot", "[schedules][chimera]") {
  const Schedule s = make_schedule("chimera", {4, 4, 1, 0});
  REQUIRE(s.pipes == 2);
  REQUIRE(s.num_stages == 4);
  // Down pipe (p0) carries micro-batches 0,1 from device 0; up pipe (p1) carries 2,3 from device 3.
  CHECK(order(s, 0) == "F0 F1 F2p1 B2p1 F3p1 B3p1 B0 B1");
  CHECK(order(s, 1) == "F0 F2p1 F1 F3p1 B2p1 B0 B3p1 B1");
  CHECK(order(s, 2) == "F2p1 F0 F3p1 F1 B0 B2p1 B1 B3p1");
  CHECK(order(s, 3) == "F2p1 F3p1 F0 B0 F1 B1 B2p1 B3p1");
  // With unit F and B the iteration is 3D-2 = 10 slots as in the figure. The engine starts
  // an op as soon as its inputs are there, so F1 runs in slot 1 where the figure waits
  // for slot 2; every other op on device 0 runs in its slot of the figure.
  const SimResult r = simulate_free(s, uniform_costs(4, 1.0, 1.0));
  CHECK(r.iteration_time.ns == 10'000'000);
  std::vector<std::int64_t> starts;
  for (int i = r.device_first_op[0]; i < r.device_first_op[1]; ++i) starts.push_back(r.ops[i].start.ns / 1'000'000);
  CHECK(starts == std::vector<std::int64_t>{0, 1, 3, 4, 5, 6, 7, 9});
}

TEST_CASE("chimera bubble is (p-2)/(2m+p-2) with equal F and B, for m a multiple of p", "[schedules][chimera][bubble]") {
  for (int p : {2, 4, 6, 8, 16}) {
    for (int units : {1, 2, 3, 5}) {
      const int m = units * p;
      CAPTURE(p, m);
      const Schedule s = make_schedule("chimera", {p, m, 1, 0});
      const SimResult r = simulate_free(s, uniform_costs(p, 1.0, 1.0, kMa, kTheta));
      CHECK(r.iteration_time.ns == static_cast<std::int64_t>(2 * m + p - 2) * 1'000'000);
      CHECK(mean_bubble(r) == Approx(static_cast<double>(p - 2) / (2 * m + p - 2)).epsilon(1e-12));
      std::int64_t lo = INT64_MAX, hi = 0;
      for (int d = 0; d < p; ++d) {
        CAPTURE(d);
        CHECK(r.per_device[d].weights.value == 2 * kTheta);  // one stage of each pipe
        CHECK(r.per_device[d].weight_versions == 1);
        lo = std::min(lo, r.per_device[d].peak_activation.value);
        hi = std::max(hi, r.per_device[d].peak_activation.value);
      }
      // The paper's table: activations within [(D/2+1) Ma, D Ma], both ends reached.
      CHECK(lo == (p / 2 + 1) * kMa);
      CHECK(hi == p * kMa);
    }
  }
}

TEST_CASE("chimera with backward twice the forward still beats 1f1b", "[schedules][chimera]") {
  for (int p : {4, 8}) {
    const int m = 2 * p;
    CAPTURE(p);
    const auto costs = uniform_costs(p, 1.0, 2.0);
    const SimResult chimera = simulate_free(make_schedule("chimera", {p, m, 1, 0}), costs);
    const SimResult dapple = simulate_free(make_schedule("1f1b", {p, m, 1, 0}), costs);
    CHECK(chimera.iteration_time < dapple.iteration_time);
  }
}

TEST_CASE("chimera needs even p and says so", "[schedules][chimera]") {
  CHECK_THROWS_WITH(make_schedule("chimera", {3, 6, 1, 0}), Catch::Contains("even number of stages") &&
                                                              Catch::Contains("p=3"));
  CHECK_THROWS_WITH(make_schedule("chimera", {4, 4, 2, 0}), Catch::Contains("chunks must be 1"));
  // Other m run too (groups of p/2 alternate between the pipes); every op is scheduled once.
  for (int m : {1, 2, 3, 5, 7}) validate_schedule(make_schedule("chimera", {4, m, 1, 0}));
}

TEST_CASE("gems: weights 2 M_theta, activations Ma, a pair of micro-batches every 4p+2", "[schedules][gems]") {
  CHECK(order(make_schedule("gems", {4, 4, 1, 0}), 2) == "F0 B0 F1p1 B1p1 F2 B2 F3p1 B3p1");
  for (int p : {2, 3, 4, 8}) {
    for (int m : {2, 4, 10, 64}) {
      CAPTURE(p, m);
      const Schedule s = make_schedule("gems", {p, m, 1, 0});
      REQUIRE(s.pipes == 2);
      // F = 1, B = 2 as in the paper's figures.
      const SimResult r = simulate_free(s, uniform_costs(p, 1.0, 2.0, kMa, kTheta));
      // Each pair after the first starts when the previous one's backward has passed
      // device 0 and both its forwards crossed the pipeline: 4p+2 per pair, plus the
      // last micro-batch's own p-1 stages of backward drain.
      const std::int64_t slots = static_cast<std::int64_t>(m / 2) * (4 * p + 2) + (p - 1);
      CHECK(r.iteration_time.ns == slots * 1'000'000);
      CHECK(mean_bubble(r) == Approx(1.0 - 3.0 * m / static_cast<double>(slots)).epsilon(1e-12));
      for (int d = 0; d < p; ++d) {
        CHECK(r.per_device[d].weights.value == 2 * kTheta);
        CHECK(r.per_device[d].peak_activation.value == kMa);
      }
    }
  }
  // As m grows the bubble tends to the paper's (D-1)/(D+1/2).
  const SimResult big = simulate_free(make_schedule("gems", {8, 2000, 1, 0}), uniform_costs(8, 1.0, 2.0));
  CHECK(mean_bubble(big) == Approx(7.0 / 8.5).epsilon(1e-3));
}

TEST_CASE("chimera and gems all-reduce each stage's gradients between its two replicas", "[schedules][chimera][gems][sync]") {
  const Schedule s = make_schedule("chimera", {4, 4, 1, 0});
  REQUIRE(s.gradient_syncs.size() == 4);
  CHECK(s.gradient_syncs[1].stage == 1);
  CHECK(s.gradient_syncs[1].devices == std::vector<int>{1, 2});
  // Parameters 1e6 bytes per stage on 1 GB/s links with no latency: a two-member ring
  // all-reduce moves 2(n-1)/n * 1e6 bytes = 1 ms. Stage 0's replicas (devices 0 and 3)
  // finish their last backward at 10 ms, so the iteration ends at 11 ms; stage 3's
  // all-reduce on the same two devices ran earlier (7..8 ms) and does not delay it.
  auto costs = uniform_costs(4, 1.0, 1.0, 1000, 1'000'000);
  UniformLinkModel links(4, TimeNs{}, 1.0);
  const SimResult r = simulate(s, costs, links);
  REQUIRE(r.collectives.size() == 4);
  CHECK(r.iteration_time.ns == 11'000'000);
  for (const auto& c : r.collectives) {
    CAPTURE(c.stage);
    CHECK(c.start.ns == (10 - c.stage) * 1'000'000);
    CHECK((c.end - c.start).ns == 1'000'000);
    CHECK(c.bytes.value == 1'000'000);
  }
  // Free links: the all-reduces cost nothing and the bubble formula stands.
  CHECK(simulate_free(s, costs).iteration_time.ns == 10'000'000);
  // GEMS with odd p: the middle device adds its two replicas locally.
  const Schedule g = make_schedule("gems", {3, 4, 1, 0});
  REQUIRE(g.gradient_syncs.size() == 2);
  CHECK(g.gradient_syncs[0].devices == std::vector<int>{0, 2});
}

TEST_CASE("dualpipe: DeepSeek's order for p=2 m=4, makespan 3m+p/2-1 with F = B = W", "[schedules][dualpipe]") {
  const Schedule s = make_schedule("dualpipe", {2, 4, 1, 0});
  REQUIRE(s.pipes == 2);
  REQUIRE(s.split_backward);
  // Device 0: phase 0 is pipe 0 (micro-batches 0,1), phase 1 is pipe 1 (2,3); device 1,
  // in the second half, has them swapped. Full backwards are B then W; the last phase-0
  // backward on device 0 is input-gradient only, its W runs last.
  CHECK(order(s, 0) == "F0 F2p1 F1 B2p1 W2p1 F3p1 B0 W0 B3p1 W3p1 B1 W1");
  CHECK(order(s, 1) == "F2p1 F0 F3p1 B0 W0 F1 B2p1 W2p1 B1 W1 B3p1 W3p1");
  for (int p : {2, 4, 6, 8}) {
    for (int m : {2 * p, 2 * p + 2, 4 * p}) {
      CAPTURE(p, m);
      const Schedule z = make_schedule("dualpipe", {p, m, 1, 0});
      auto costs = uniform_costs(p, 1.0, 2.0, 1000, 100);
      for (auto& c : costs) c.weight_grad = TimeNs::from_ms(1.0);
      const SimResult r = simulate_free(z, costs);
      CHECK(r.iteration_time.ns == static_cast<std::int64_t>(3 * m + p / 2 - 1) * 1'000'000);
      for (int d = 0; d < p; ++d) CHECK(r.per_device[d].weights.value == 200);  // a stage of each direction
      CHECK(z.gradient_syncs.size() == static_cast<std::size_t>(p));
    }
  }
  CHECK_THROWS_WITH(make_schedule("dualpipe", {3, 12, 1, 0}), Catch::Contains("even number of stages"));
  CHECK_THROWS_WITH(make_schedule("dualpipe", {4, 6, 1, 0}), Catch::Contains(">= 2*stages"));
  CHECK_THROWS_WITH(make_schedule("dualpipe", {4, 9, 1, 0}), Catch::Contains("even number of microbatches"));
}
