// 1F1B with overlapped forward-backward pairs, as Megatron-LM's combined 1F1B (the
// schedule behind its MoE all-to-all overlap) runs it: in the steady state the forward
// of one micro-batch and the backward of another are one overlapped unit. A pair cannot
// hold a micro-batch's forward and its own backward (the backward needs the forward's
// output), and a pair's backward needs the gradient from the next device's pair of the
// same step: with 1F1B's warm-up (one forward fewer per device down the pipeline) each
// device would wait for its neighbour every step and idle half the time. So, as
// Megatron-LM's interleaved schedule with the combined 1F1B does (2(p-d-1) warm-ups, plus
// one), device d runs min(2(p-d)-1, m) warm-up forwards, then pairs (forward of
// micro-batch k+w, backward of k), then drains the remaining backwards.
#include <algorithm>

#include "generators.h"

namespace ppsim {

Schedule generate_1f1b_overlap(const ScheduleParams& params) {
  require_single_chunk("1f1b-overlap", params);
  Schedule s = make_empty_schedule("1f1b-overlap", params);
  const int p = params.stages;
  const int m = params.microbatches;
  s.overlap_pairs.resize(static_cast<std::size_t>(p));
  for (int d = 0; d < p; ++d) {
    const int warmup = std::min(2 * (p - d) - 1, m);
    auto& ops = s.device_ops[d];
    ops.reserve(2 * static_cast<std::size_t>(m));
    int next_f = 0;
    int next_b = 0;
    for (int i = 0; i < warmup; ++i) ops.push_back(forward(next_f++, d));
    for (int i = 0; i < m - warmup; ++i) {
      s.overlap_pairs[d].push_back(static_cast<std::int32_t>(ops.size()));
      ops.push_back(forward(next_f++, d));
      ops.push_back(backward(next_b++, d));
    }
    while (next_b < m) ops.push_back(backward(next_b++, d));
  }
  s.note = kPairsInTurnNote;
  return s;
}

}  // namespace ppsim
