// Zero-bubble schedules (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR'24): the
// backward is split into B (input gradient, on the critical path) and W (weight gradient,
// free to move), and W fills the bubbles 1F1B leaves.
//
// zb-h1: the order torch.distributed.pipelining's ScheduleInterleavedZeroBubble (its ZB1P,
// i.e. ZB-H1) produces with one stage per device: device d runs min(p-d-1, m) warm-up
// forwards (1F1B's), then F, B pairs; from its (d+1)-th pair on, each B is followed by the
// W of the oldest backward whose W is still pending; the cool-down runs B (and W from the
// same point on), then the W's left. Delaying d W's lets device d's last W's fill the
// cool-down bubble, so with equal F, B and W the bubble shrinks from 1F1B's
// (p-1)(F+B+W) to (p-1)(F+B-W), at 1F1B's activation memory.
#include <algorithm>

#include "generators.h"

namespace ppsim {

Schedule generate_zb_h1(const ScheduleParams& params) {
  require_single_chunk("zb-h1", params);
  const int p = params.stages;
  const int m = params.microbatches;
  Schedule s = make_empty_schedule("zb-h1", params);
  s.split_backward = true;
  for (int d = 0; d < p; ++d) {
    auto& ops = s.device_ops[d];
    ops.reserve(3 * static_cast<std::size_t>(m));
    const int warmup = std::min(p - d - 1, m);
    const int steady = m - warmup;
    const int delayed = d;  // W's held back before the first one runs
    int next_f = 0, next_b = 0, next_w = 0;
    for (int step = 0; step < m + warmup; ++step) {
      if (step < warmup) {
        ops.push_back(forward(next_f++, d));
        continue;
      }
      if (step < warmup + steady) ops.push_back(forward(next_f++, d));
      ops.push_back(backward(next_b++, d));
      if (step - warmup >= delayed) ops.push_back(weight(next_w++, d));
    }
    while (next_w < m) ops.push_back(weight(next_w++, d));
  }
  return s;
}

}  // namespace ppsim
