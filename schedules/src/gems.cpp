// GEMS (Jain et al., SC'20), its memory-aware synchronous schedule (MAST): two model
// replicas over the same p devices in opposite directions. Replica 0 (pipe 0) maps stage
// k to device k, replica 1 (pipe 1) to device p-1-k. Micro-batches alternate between the
// replicas, and a device starts the next micro-batch's forward only after it has finished
// the previous one's backward, so it never stashes more than one micro-batch's activations
// (Ma) while holding both replicas' weights (2 M_theta). At most two micro-batches are
// active at once: the second replica's forward follows the first one's backward wave
// device by device. With backward twice the forward, a pair of micro-batches takes 4p+2
// forward-times in the steady state, the bubble ratio (p-1)/(p+1/2) the Chimera paper's
// comparison table gives for GEMS.
#include "generators.h"

namespace ppsim {

Schedule generate_gems(const ScheduleParams& params) {
  require_single_chunk("gems", params);
  const int p = params.stages;
  const int m = params.microbatches;
  Schedule s = make_empty_schedule("gems", params);
  s.pipes = 2;
  for (int d = 0; d < p; ++d) {
    auto& ops = s.device_ops[d];
    ops.reserve(2 * static_cast<std::size_t>(m));
    for (int mb = 0; mb < m; ++mb) {
      const int pipe = mb % 2;
      const int stage = pipe == 0 ? d : p - 1 - d;
      ops.push_back(forward(mb, stage, 0, pipe));
      ops.push_back(backward(mb, stage, 0, pipe));
    }
  }
  // Synchronous training: the two replicas of each stage all-reduce their gradients (with
  // odd p the middle device holds both replicas of its stage and adds them locally).
  if (m > 1)
    for (int k = 0; k < p; ++k)
      if (k != p - 1 - k) s.gradient_syncs.push_back({k, {k, p - 1 - k}});
  return s;
}

}  // namespace ppsim
