// PipeDream (Narayanan et al., SOSP'19): asynchronous 1F1B with weight stashing and no
// flush. Device s admits p-s micro-batches (NOAM = p for a straight pipeline): p-s-1
// warm-up forwards, then one forward and one backward at a time, across iteration
// boundaries, so it stashes one weight version per micro-batch in flight (p-s).
// Several iterations of m micro-batches are laid out, then a tail of 2p micro-batches
// that keeps the pipeline full while the last measured iteration runs (without it the
// drain would speed the last iteration up); the engine measures the steady-state time
// per iteration over [measure_from, iterations) and counts the tail in no iteration.
#include <algorithm>

#include "generators.h"

namespace ppsim {

AsyncLayout choose_async_layout(const std::string& name, const ScheduleParams& params) {
  const int p = params.stages;
  const int m = params.microbatches;
  // Warm-up iterations cover at least 2p micro-batches, so every device has reached its
  // steady state (the fill takes p micro-batches with equal stages) before measuring.
  const int warm = std::max(1, (2 * p + m - 1) / m);
  AsyncLayout layout;
  if (params.iterations > 0) {
    if (params.iterations < 2)
      throw ScheduleError(name + " is asynchronous: it needs at least 2 iterations to measure a steady state (got " +
                          std::to_string(params.iterations) + ")");
    layout.iterations = params.iterations;
    layout.measure_from = std::min(warm, params.iterations - 1);
  } else {
    layout.iterations = warm + 3;
    layout.measure_from = warm;
  }
  layout.tail_microbatches = 2 * p;
  return layout;
}

std::string async_note(const AsyncLayout& layout, const ScheduleParams& params) {
  return "asynchronous: " + std::to_string(layout.iterations) + " iterations of " +
         std::to_string(params.microbatches) + " micro-batches and a tail of " +
         std::to_string(layout.tail_microbatches) + " laid out; steady state measured over iterations " +
         std::to_string(layout.measure_from) + ".." + std::to_string(layout.iterations - 1);
}

void fill_async_1f1b(Schedule& s, int total_microbatches) {
  const int p = s.devices;
  for (int d = 0; d < p; ++d) {
    const int warmup = std::min(p - d - 1, total_microbatches);
    auto& ops = s.device_ops[d];
    ops.reserve(2 * static_cast<std::size_t>(total_microbatches));
    for (int mb = 0; mb < warmup; ++mb) ops.push_back(forward(mb, d));
    for (int mb = 0; mb + warmup < total_microbatches; ++mb) {
      ops.push_back(forward(mb + warmup, d));
      ops.push_back(backward(mb, d));
    }
    for (int mb = total_microbatches - warmup; mb < total_microbatches; ++mb) ops.push_back(backward(mb, d));
  }
}

Schedule make_async_1f1b(const std::string& name, const ScheduleParams& params, WeightPolicy weights) {
  require_single_chunk(name, params);
  Schedule s = make_empty_schedule(name, params);
  const AsyncLayout layout = choose_async_layout(name, params);
  s.synchronous = false;
  s.weights = weights;
  s.iterations = layout.iterations;
  s.measure_from = layout.measure_from;
  fill_async_1f1b(s, layout.iterations * params.microbatches + layout.tail_microbatches);
  s.note = async_note(layout, params);
  return s;
}

Schedule generate_pipedream(const ScheduleParams& params) {
  return make_async_1f1b("pipedream", params, WeightPolicy::StashInFlight);
}

}  // namespace ppsim
