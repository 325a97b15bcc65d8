// PipeDream and PipeDream-2BW (asynchronous, no flush) and 1F1B memory, as the Chimera
// paper's comparison table states them: bubble, weight versions, stashed activations.
#include <catch2/catch.hpp>

#include "test_schedules_helpers.h"

using namespace ppsim;
using namespace ppsim_sched_test;

namespace {
constexpr std::int64_t kMa = 1000;     // activations of one micro-batch on one stage
constexpr std::int64_t kTheta = 100;   // weights of one stage
}  // namespace

TEST_CASE("pipedream: steady-state bubble 0, iteration m*(f+b), device s holds p-s weight versions", "[schedules][pipedream]") {
  for (int p : {1, 2, 4, 8}) {
    for (int m : {1, 3, 4, 8, 16}) {
      CAPTURE(p, m);
      const Schedule s = make_schedule("pipedream", {p, m, 1, 0});
      REQUIRE_FALSE(s.synchronous);
      REQUIRE(s.weights == WeightPolicy::StashInFlight);
      REQUIRE(s.iterations > s.measure_from);
      REQUIRE(s.measure_from * m >= 2 * p);  // warm-up covers the pipeline fill
      const SimResult r = simulate_free(s, uniform_costs(p, 1.0, 2.0, kMa, kTheta));
      CHECK(r.window_iterations == s.iterations - s.measure_from);
      CHECK(r.iteration_time.ns == static_cast<std::int64_t>(m) * 3'000'000);
      for (int d = 0; d < p; ++d) {
        CAPTURE(d);
        CHECK(r.per_device[d].window_busy == r.window_end - r.window_start);  // bubble exactly 0
        CHECK(r.per_device[d].weight_versions == p - d);
        CHECK(r.per_device[d].weights.value == (p - d) * kTheta);
        CHECK(r.per_device[d].peak_activation.value == (p - d) * kMa);
      }
      CHECK(mean_bubble(r) == 0.0);
    }
  }
}

TEST_CASE("pipedream runs 1F1B without a flush: no device waits between iterations", "[schedules][pipedream]") {
  const Schedule s = make_schedule("pipedream", {4, 4, 1, 3});
  REQUIRE(s.iterations == 3);
  REQUIRE(s.measure_from == 2);
  // Device 1 runs 2 warm-up forwards, then alternates across the iteration boundary.
  // 3 iterations of 4 and a tail of 2p = 8 micro-batches.
  CHECK(order(s, 1) ==
        "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 F8 B6 F9 B7 F10 B8 F11 B9 F12 B10 F13 B11 F14 B12 F15 B13 F16 B14 "
        "F17 B15 F18 B16 F19 B17 B18 B19");
  CHECK_THROWS_WITH(make_schedule("pipedream", {4, 4, 1, 1}), Catch::Contains("at least 2 iterations"));
}

TEST_CASE("2bw: steady-state bubble 0, two weight versions, activations within [Ma, p*Ma]", "[schedules][2bw]") {
  for (int p : {1, 2, 4, 8}) {
    for (int m : {8, 9, 16}) {
      CAPTURE(p, m);
      const Schedule s = make_schedule("pipedream-2bw", {p, m, 1, 0});
      REQUIRE(s.name == "2bw");
      REQUIRE(s.weights == WeightPolicy::DoubleBuffer);
      const SimResult r = simulate_free(s, uniform_costs(p, 1.0, 2.0, kMa, kTheta));
      CHECK(r.iteration_time.ns == static_cast<std::int64_t>(m) * 3'000'000);
      CHECK(mean_bubble(r) == 0.0);
      std::int64_t lo = INT64_MAX, hi = 0;
      for (int d = 0; d < p; ++d) {
        CAPTURE(d);
        CHECK(r.per_device[d].weight_versions == 2);
        CHECK(r.per_device[d].weights.value == 2 * kTheta);
        lo = std::min(lo, r.per_device[d].peak_activation.value);
        hi = std::max(hi, r.per_device[d].peak_activation.value);
      }
      CHECK(lo == kMa);      // last stage: one micro-batch at a time
      CHECK(hi == p * kMa);  // first stage: p in flight
    }
  }
  CHECK_THROWS_WITH(make_schedule("2bw", {4, 3, 1, 0}), Catch::Contains("microbatches >= stages") &&
                                                           Catch::Contains("m=3, p=4"));
}

TEST_CASE("1f1b (dapple): one weight version, activations within [Ma, p*Ma]", "[schedules][1f1b]") {
  for (int p : {2, 4, 8}) {
    for (int m : {8, 12, 32}) {
      CAPTURE(p, m);
      const SimResult r = simulate_free(make_schedule("dapple", {p, m, 1, 0}), uniform_costs(p, 1.0, 2.0, kMa, kTheta));
      for (int d = 0; d < p; ++d) {
        CHECK(r.per_device[d].weight_versions == 1);
        CHECK(r.per_device[d].weights.value == kTheta);
        CHECK(r.per_device[d].peak_activation.value == (p - d) * kMa);
      }
    }
  }
}

TEST_CASE("asynchronous iteration time follows the slowest stage", "[schedules][pipedream][2bw]") {
  // Stage 2 of 4 is twice as slow: the steady state runs at its pace, and the other
  // devices idle for the difference.
  auto costs = uniform_costs(4, 1.0, 2.0, kMa, kTheta);
  costs[2].forward = TimeNs::from_ms(2.0);
  costs[2].backward = TimeNs::from_ms(4.0);
  for (const char* name : {"pipedream", "2bw"}) {
    CAPTURE(name);
    const SimResult r = simulate_free(make_schedule(name, {4, 8, 1, 0}), costs);
    CHECK(r.iteration_time.ns == 8 * 6'000'000);
    CHECK(device_bubble(r, 2) == 0.0);
    CHECK(device_bubble(r, 0) == Approx(0.5));
  }
}
