// Every registered schedule, over many small shapes: either a ScheduleError that says why,
// or a schedule that validates and runs to the end without deadlock, doing each
// micro-batch's F and B (and W) on every stage exactly once.
#include <catch2/catch.hpp>

#include "test_schedules_helpers.h"

using namespace ppsim;
using namespace ppsim_sched_test;

TEST_CASE("every schedule either refuses a shape with a reason or runs it to the end", "[schedules][all]") {
  for (const auto& info : all_schedules()) {
    int ran = 0;
    for (int p = 1; p <= 6; ++p) {
      for (int m = 1; m <= 13; ++m) {
        for (int v = 1; v <= 3; ++v) {
          CAPTURE(info.name, p, m, v);
          Schedule s;
          try {
            s = make_schedule(info.name, {p, m, v, 0});
          } catch (const ScheduleError& e) {
            CHECK(std::string(e.what()).size() > 20);
            continue;
          }
          REQUIRE(s.devices == p);
          const SimResult r = simulate_free(s, uniform_costs(s.num_stages, 1.0, 2.0));
          // Per-iteration work: m micro-batches through every stage of every pipe they use.
          std::size_t ops = 0;
          for (const auto& d : s.device_ops) ops += d.size();
          const std::size_t per_mb_stage = s.split_backward ? 3 : 2;
          if (s.synchronous) CHECK(ops == static_cast<std::size_t>(m) * s.num_stages * per_mb_stage);
          CHECK(r.iteration_time.ns > 0);
          CHECK(r.ops.size() == ops);
          ++ran;
        }
      }
    }
    CAPTURE(info.name);
    CHECK(ran > 5);
  }
}
