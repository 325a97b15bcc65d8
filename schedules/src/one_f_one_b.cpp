// 1F1B with flush (PipeDream-Flush / DAPPLE), in the order Megatron-LM's
// forward_backward_pipelining_without_interleaving and DeepSpeed's TrainSchedule use:
// device s runs min(p-s-1, m) warm-up forwards, then alternates one forward and one
// backward, then drains the remaining backwards.
#include <algorithm>

#include "generators.h"

namespace ppsim {

Schedule generate_1f1b(const ScheduleParams& params) {
  require_single_chunk("1f1b", params);
  Schedule s = make_empty_schedule("1f1b", params);
  const int p = params.stages;
  const int m = params.microbatches;
  for (int d = 0; d < p; ++d) {
    const int warmup = std::min(p - d - 1, m);
    auto& ops = s.device_ops[d];
    ops.reserve(2 * static_cast<std::size_t>(m));
    int next_f = 0;
    int next_b = 0;
    for (int i = 0; i < warmup; ++i) ops.push_back(forward(next_f++, d));
    for (int i = 0; i < m - warmup; ++i) {
      ops.push_back(forward(next_f++, d));
      ops.push_back(backward(next_b++, d));
    }
    while (next_b < m) ops.push_back(backward(next_b++, d));
  }
  return s;
}

}  // namespace ppsim
