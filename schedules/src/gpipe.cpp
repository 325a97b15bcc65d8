// GPipe (Huang et al., 2019): all forwards, then all backwards, then the flush.
// Backwards run in micro-batch order 0..m-1 as torch.distributed.pipelining's
// ScheduleGPipe does.
#include "generators.h"

namespace ppsim {

Schedule generate_gpipe(const ScheduleParams& params) {
  require_single_chunk("gpipe", params);
  Schedule s = make_empty_schedule("gpipe", params);
  for (int d = 0; d < params.stages; ++d) {
    auto& ops = s.device_ops[d];
    ops.reserve(2 * static_cast<std::size_t>(params.microbatches));
    for (int mb = 0; mb < params.microbatches; ++mb) ops.push_back(forward(mb, d));
    for (int mb = 0; mb < params.microbatches; ++mb) ops.push_back(backward(mb, d));
  }
  return s;
}

}  // namespace ppsim
