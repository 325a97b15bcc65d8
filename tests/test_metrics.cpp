// Metrics: every reported number is computed once (metrics.h) and each view formats it.
#include <catch2/catch.hpp>

#include "ppsim/metrics/metrics.h"
#include "ppsim/views/report.h"
#include "ppsim/views/trace.h"
#include "ppsim/views/vega.h"
#include "test_vega_fixture.h"

using namespace ppsim;
using nlohmann::json;

TEST_CASE("pipeline metrics of GPipe p=2 m=2 by hand", "[metrics]") {
  const SimResult r = test::gpipe_2x2();
  const Metrics m = pipeline_metrics(r);
  // 9 ms makespan, each device busy 6 ms: bubble 3/9, overhead 3/6, idle 3 ms.
  CHECK(m.iteration_time == test::ms(9));
  CHECK(m.pipeline_time == test::ms(9));
  CHECK(m.bubble_rate == Approx(1.0 / 3.0).epsilon(1e-15));
  CHECK(m.bubble_overhead == Approx(0.5).epsilon(1e-15));
  REQUIRE(m.per_device.size() == 2);
  for (const DeviceMetrics& d : m.per_device) {
    CHECK(d.idle_ms == Approx(3.0).epsilon(1e-15));
    CHECK(d.compute == test::ms(6));
  }
  // Critical path, back from device 0's B1 (7..9): B0 on device 0 (5..7), whose input
  // B0 on device 1 (3..5) ends at 5; before it F1 (2..3) and F0 (1..2) on device 1 (the
  // previous op on the device wins a tie), and F0 on device 0 (0..1). All compute.
  CHECK(m.critical_path.ops == 6);
  CHECK(m.critical_path.compute == test::ms(9));
  CHECK(m.critical_path.link_wait == TimeNs{});
  CHECK(m.critical_path.length() == test::ms(9));
}

TEST_CASE("an exposed data-parallel all-reduce grows the window of every figure", "[metrics]") {
  const SimResult r = test::gpipe_2x2();
  const Metrics m = pipeline_metrics(r, test::ms(3));
  // T = 9 + 3 = 12 ms; busy 6 of 12: bubble 1/2, overhead 1, idle 3 + 3 = 6 ms.
  CHECK(m.iteration_time == test::ms(12));
  CHECK(m.pipeline_time == test::ms(9));
  CHECK(m.exposed_allreduce == test::ms(3));
  CHECK(m.bubble_rate == Approx(0.5).epsilon(1e-15));
  CHECK(m.bubble_overhead == Approx(1.0).epsilon(1e-15));
  for (const DeviceMetrics& d : m.per_device) CHECK(d.idle_ms == Approx(6.0).epsilon(1e-15));
}

TEST_CASE("views show the Metrics they are given, not a number of their own", "[metrics][trace][vega]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  const Metrics m = pipeline_metrics(r, test::ms(3));
  CHECK(chrome_trace(s, r, m)["otherData"]["iteration_time_ms"].get<double>() == 12.0);
  CHECK(chrome_trace(s, r)["otherData"]["iteration_time_ms"].get<double>() == 9.0);
  CHECK(vega_spec(s, r, m)["title"]["subtitle"] == "iteration 12.00 ms, bubble 50.0%");
  const json cp = critical_path_json(m.critical_path);
  CHECK(cp["length_ms"].get<double>() == 9.0);
  CHECK(cp["steps"] == json::array({"d0 F0 s0", "d1 F0 s1", "d1 F1 s1", "d1 B0 s1", "d0 B0 s0", "d0 B1 s0"}));
}

TEST_CASE("the trace draws gradient syncs on a collective lane", "[metrics][trace]") {
  Schedule s;
  SimResult r = test::gpipe_2x2(&s);
  r.collectives.push_back({0, {0, 1}, Bytes{1 << 20}, test::ms(9), test::ms(10)});
  const json trace = chrome_trace(s, r);
  int slices = 0;
  for (const json& e : trace["traceEvents"])
    if (e["ph"] == "X" && e["tid"] == kTraceCollectiveTid) {
      ++slices;
      CHECK(e["name"] == "gradient sync s0");
      CHECK(e["ts"].get<double>() == 9000.0);
      CHECK(e["dur"].get<double>() == 1000.0);
    }
  CHECK(slices == 2);  // one on each device that takes part
}
