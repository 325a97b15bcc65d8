// Looped BFS (Lamy-Poirier, "Breadth-First Pipeline Parallelism"), in the order of
// torch.distributed.pipelining's ScheduleLoopedBFS: device d holds v chunks (stage
// c*p + d); it runs every micro-batch's forward through chunk 0, then chunk 1, ...;
// then the backwards chunk by chunk from the last, each chunk's micro-batches from the
// last to the first. Chunks per device v >= 1 (v = 1 is GPipe with backwards reversed).
#include "generators.h"

namespace ppsim {

Schedule generate_looped_bfs(const ScheduleParams& params) {
  const int p = params.stages;
  const int m = params.microbatches;
  const int v = params.chunks;
  Schedule s = make_empty_schedule("looped-bfs", params);
  for (int d = 0; d < p; ++d) {
    auto& ops = s.device_ops[d];
    ops.reserve(2 * static_cast<std::size_t>(m) * v);
    for (int c = 0; c < v; ++c)
      for (int mb = 0; mb < m; ++mb) ops.push_back(forward(mb, c * p + d, c));
    for (int c = v - 1; c >= 0; --c)
      for (int mb = m - 1; mb >= 0; --mb) ops.push_back(backward(mb, c * p + d, c));
  }
  return s;
}

}  // namespace ppsim
