#pragma once
// Shared by the calibration tests: a measurement method quick enough for a unit test.
#include "ppsim/calibrate/measure.h"

namespace ppsim::cal::testing {

/// One warm-up, exactly `iterations` timed iterations, `rotate` input buffers, a 1 ms target.
inline Method quick_method(int iterations, int rotate) {
  Method m;
  m.warmup = 1;
  m.min_iterations = iterations;
  m.max_iterations = iterations;
  m.target_ms = 1;
  m.rotate = rotate;
  return m;
}

}  // namespace ppsim::cal::testing
