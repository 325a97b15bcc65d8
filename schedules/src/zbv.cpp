// ZB-V (Qi et al., ICLR'24, Section 6), in the order torch.distributed.pipelining's
// ScheduleZBVZeroBubble produces. Exactly two chunks per device in a V: device d holds
// stage d (chunk 0) and stage 2p-1-d (chunk 1), so the first and the last stage share
// device 0. Backward is split into B (input gradient) and W (weight gradient).
// Device d: 2(p-d)-1 chunk-0 forwards; d pairs (chunk-1 F, chunk-0 F); p-d triples
// (chunk-1 F, B, W); then, while work is left, chunk-0 F (until all are issued), B, W and
// chunk-1 F, B, W; cool-down: d pairs (chunk-0 B, chunk-1 B), p-d pairs (chunk-0 B, W),
// then the remaining chunk-1 and chunk-0 W's. Like torch it lays the pattern out for
// max(2p-1, m) micro-batches and drops the ops of micro-batches >= m.
#include <algorithm>

#include "generators.h"

namespace ppsim {

Schedule generate_zbv(const ScheduleParams& params) {
  const int p = params.stages;
  const int m = params.microbatches;
  require_v_shape("zbv", params);
  Schedule s = make_empty_schedule("zbv", params);
  s.split_backward = true;
  const int n_micro = std::max(2 * p - 1, m);
  for (int d = 0; d < p; ++d) {
    const int stage0 = d;
    const int stage1 = 2 * p - 1 - d;
    auto& ops = s.device_ops[d];
    ops.reserve(6 * static_cast<std::size_t>(m));
    int f0 = 0, f1 = 0, b0 = 0, b1 = 0;
    auto emit = [&](const Op& op) {
      if (op.microbatch < m) ops.push_back(op);
    };
    for (int i = 0; i < 2 * (p - d) - 1; ++i) emit(forward(f0++, stage0, 0));
    for (int i = 0; i < d; ++i) {
      emit(forward(f1++, stage1, 1));
      emit(forward(f0++, stage0, 0));
    }
    for (int i = 0; i < p - d; ++i) {
      emit(forward(f1++, stage1, 1));
      emit(backward(b1, stage1, 1));
      emit(weight(b1++, stage1, 1));
    }
    while (f1 < f0 || f0 < n_micro) {
      if (f0 < n_micro) emit(forward(f0++, stage0, 0));
      emit(backward(b0, stage0, 0));
      emit(weight(b0++, stage0, 0));
      emit(forward(f1++, stage1, 1));
      emit(backward(b1, stage1, 1));
      emit(weight(b1++, stage1, 1));
    }
    int w0 = b0, w1 = b1;
    for (int i = 0; i < d; ++i) {
      emit(backward(b0++, stage0, 0));
      emit(backward(b1++, stage1, 1));
    }
    for (int i = 0; i < p - d; ++i) {
      emit(backward(b0++, stage0, 0));
      emit(weight(w0++, stage0, 0));
    }
    while (w1 < b1) emit(weight(w1++, stage1, 1));
    while (w0 < b0) emit(weight(w0++, stage0, 0));
  }
  return s;
}

}  // namespace ppsim
