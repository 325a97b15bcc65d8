// Zero-bubble H1 and looped BFS, in torch.distributed.pipelining's orders.
#include <catch2/catch.hpp>

#include "test_schedules_helpers.h"

using namespace ppsim;
using namespace ppsim_sched_test;

namespace {
// F = 1, B (input gradient) = 1, W = 1 ms: backward 2 ms of which 1 ms weight gradient.
std::vector<StageCost> zb_costs(int stages, std::int64_t act = 900) {
  auto costs = uniform_costs(stages, 1.0, 2.0, act);
  for (auto& c : costs) {
    c.weight_grad = TimeNs::from_ms(1.0);
    c.weight_activation = Bytes{act / 3};
  }
  return costs;
}
}  // namespace

TEST_CASE("zb-h1 p=4 m=6 order: device d holds back d weight gradients", "[schedules][zb-h1]") {
  const Schedule s = make_schedule("zb-h1", {4, 6, 1, 0});
  REQUIRE(s.split_backward);
  CHECK(order(s, 0) == "F0 F1 F2 F3 B0 W0 F4 B1 W1 F5 B2 W2 B3 W3 B4 W4 B5 W5");
  CHECK(order(s, 1) == "F0 F1 F2 B0 F3 B1 W0 F4 B2 W1 F5 B3 W2 B4 W3 B5 W4 W5");
  CHECK(order(s, 2) == "F0 F1 B0 F2 B1 F3 B2 W0 F4 B3 W1 F5 B4 W2 B5 W3 W4 W5");
  CHECK(order(s, 3) == "F0 B0 F1 B1 F2 B2 F3 B3 W0 F4 B4 W1 F5 B5 W2 W3 W4 W5");
}

TEST_CASE("zb-h1 with F = B = W: bubble (p-1)(F+B-W) instead of 1F1B's (p-1)(F+B+W)", "[schedules][zb-h1][bubble]") {
  for (int p : {2, 3, 4, 8}) {
    for (int m : {8, 12, 24}) {
      CAPTURE(p, m);
      const SimResult zb = simulate_free(make_schedule("zb-h1", {p, m, 1, 0}), zb_costs(p));
      CHECK(zb.iteration_time.ns == static_cast<std::int64_t>(3 * m + p - 1) * 1'000'000);
      CHECK(mean_bubble(zb) == Approx(static_cast<double>(p - 1) / (3 * m + p - 1)).epsilon(1e-12));
      const SimResult dapple = simulate_free(make_schedule("1f1b", {p, m, 1, 0}), zb_costs(p));
      CHECK(dapple.iteration_time.ns == static_cast<std::int64_t>(3 * m + 3 * (p - 1)) * 1'000'000);
      // Activation memory no higher than 1F1B's p*Ma.
      for (int d = 0; d < p; ++d) CHECK(zb.per_device[d].peak_activation.value <= p * 900);
      CHECK(zb.per_device[0].peak_activation.value == p * 900);
    }
  }
  validate_schedule(make_schedule("zb-h1", {8, 3, 1, 0}));  // m < p runs too
}

TEST_CASE("looped-bfs order and bubble (p-1)/(v*m+p-1) for m >= p", "[schedules][looped-bfs]") {
  const Schedule s = make_schedule("looped-bfs", {2, 3, 2, 0});
  CHECK(order(s, 1) == "F0 F1 F2 F0c1 F1c1 F2c1 B2c1 B1c1 B0c1 B2 B1 B0");
  for (int p : {2, 4}) {
    for (int v : {1, 2, 3}) {
      for (int m : {4, 8, 9}) {
        CAPTURE(p, v, m);
        const SimResult r = simulate_free(make_schedule("looped-bfs", {p, m, v, 0}), uniform_costs(p * v, 1.0, 2.0));
        CHECK(r.iteration_time.ns == static_cast<std::int64_t>(v * m + p - 1) * 3'000'000);
        CHECK(mean_bubble(r) == Approx(static_cast<double>(p - 1) / (v * m + p - 1)).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("zbv: torch's V order, makespan 6m+p-1 with F = B = W per chunk for m >= 2p-1", "[schedules][zbv]") {
  const Schedule s = make_schedule("zb-v", {4, 8, 2, 0});
  REQUIRE(s.name == "zbv");
  REQUIRE(s.num_stages == 8);
  // Device 3 (the V's tip): 1 chunk-0 forward, 3 (chunk-1, chunk-0) forward pairs, then
  // chunk 1's first F B W.
  CHECK(order(s, 3).rfind("F0 F0c1 F1 F1c1 F2 F2c1 F3 F3c1 B0c1 W0c1 F4 B0 W0 F4c1", 0) == 0);
  CHECK(order(s, 0).rfind("F0 F1 F2 F3 F4 F5 F6 F0c1 B0c1 W0c1 F1c1 B1c1 W1c1", 0) == 0);
  for (int d = 0; d < 4; ++d)
    for (const Op& op : s.device_ops[d]) CHECK(op.stage == (op.chunk == 0 ? d : 7 - d));
  for (int p : {2, 4, 6}) {
    for (int m : {2 * p - 1, 2 * p, 3 * p + 1}) {
      CAPTURE(p, m);
      const Schedule z = make_schedule("zbv", {p, m, 2, 0});
      const SimResult r = simulate_free(z, zb_costs(2 * p, 600));
      CHECK(r.iteration_time.ns == static_cast<std::int64_t>(6 * m + p - 1) * 1'000'000);
      // Activations: at most 2p chunk micro-batches, as 1F1B's p whole-device ones.
      for (int d = 0; d < p; ++d) CHECK(r.per_device[d].peak_activation.value <= 2 * p * 600);
    }
  }
  for (int m : {1, 2, 3, 5}) validate_schedule(make_schedule("zbv", {4, m, 2, 0}));  // ops of m.. dropped
  CHECK_THROWS_WITH(make_schedule("zbv", {4, 8, 1, 0}), Catch::Contains("exactly 2 chunks"));
}

TEST_CASE("dualpipev: torch's order, written out by hand for p=2 m=4", "[schedules][dualpipev]") {
  const Schedule s = make_schedule("dualpipev", {2, 4, 2, 0});
  REQUIRE(s.split_backward);
  // A full backward is B followed at once by its W; the W's of input-gradient-only
  // backwards wait in a queue, oldest first.
  CHECK(order(s, 0) == "F0 F1 F2 F0c1 B0c1 W0c1 F1c1 F3 B1c1 W1c1 F2c1 B0 W0 B2c1 W2c1 F3c1 B1 W1 B3c1 W3c1 B2 W2 B3 W3");
  CHECK(order(s, 1) == "F0 F0c1 F1 F1c1 F2 B0c1 W0c1 F2c1 B0 W0 F3 B1c1 W1c1 F3c1 B1 W1 B2c1 W2c1 B2 W2 B3c1 B3 W3c1 W3");
  for (int p : {2, 4, 8}) {
    for (int m : {2 * p, 3 * p, 4 * p + 2}) {
      CAPTURE(p, m);
      const Schedule z = make_schedule("dualpipev", {p, m, 2, 0});
      for (int d = 0; d < p; ++d)
        for (const Op& op : z.device_ops[d]) CHECK(op.stage == (op.chunk == 0 ? d : 2 * p - 1 - d));
      // With F = B = W per chunk and the overlapped pairs run back to back it matches ZB-V.
      const SimResult r = simulate_free(z, zb_costs(2 * p));
      CHECK(r.iteration_time.ns == static_cast<std::int64_t>(6 * m + p - 1) * 1'000'000);
    }
  }
  CHECK_THROWS_WITH(make_schedule("dualpipev", {4, 7, 2, 0}), Catch::Contains("microbatches >= 2*stages"));
  CHECK_THROWS_WITH(make_schedule("dualpipev", {4, 8, 3, 0}), Catch::Contains("exactly 2 chunks"));
}
