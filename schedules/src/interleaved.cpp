// Interleaved 1F1B (Megatron-LM virtual pipeline, Narayanan et al. SC'21), in the order
// Megatron-LM's forward_backward_pipelining_with_interleaving produces. Device d holds v
// chunks; chunk c is model stage c*p + d. Each device walks v*m "virtual micro-batches" k:
//   - chunk of k: (k mod p*v) / p, reversed for backward (backward runs the chunks last
//     to first);
//   - micro-batch of k within its chunk: (k / (p*v)) * p + k mod p;
//   - warm-up forwards: 2*(p-d-1) + (v-1)*p, capped at v*m (then everything is warm-up);
//   - then one forward (k + warm-up) and one backward (k) at a time, then the remaining
//     backwards. torch.distributed.pipelining's ScheduleInterleaved1F1B uses the same
//     warm-up count and mapping.
// Like Megatron-LM's classic schedule (microbatch_group_size_per_vp_stage = p) this needs
// m to be a multiple of p.
#include <algorithm>

#include "generators.h"

namespace ppsim {

namespace {

struct ChunkStep {
  int chunk;
  int microbatch;
};

ChunkStep virtual_step(int k, int p, int v, bool is_forward) {
  const int in_group = k % (p * v);
  int chunk = in_group / p;
  if (!is_forward) chunk = v - 1 - chunk;
  return {chunk, (k / (p * v)) * p + k % p};
}

}  // namespace

Schedule generate_interleaved(const ScheduleParams& params) {
  const int p = params.stages;
  const int m = params.microbatches;
  const int v = params.chunks;
  if (v < 2)
    throw ScheduleError("interleaved needs chunks >= 2 (got " + std::to_string(v) +
                        "); with one chunk per device use '1f1b'");
  if (m % p != 0)
    throw ScheduleError("interleaved needs microbatches to be a multiple of stages (m=" + std::to_string(m) +
                        ", p=" + std::to_string(p) +
                        "): Megatron-LM's interleaved schedule runs micro-batches in groups of p per chunk");
  Schedule s = make_empty_schedule("interleaved", params);
  const int total = v * m;
  for (int d = 0; d < p; ++d) {
    auto& ops = s.device_ops[d];
    ops.reserve(2 * static_cast<std::size_t>(total));
    const int warmup = std::min(2 * (p - d - 1) + (v - 1) * p, total);
    auto push_forward = [&](int k) {
      const ChunkStep st = virtual_step(k, p, v, true);
      ops.push_back(forward(st.microbatch, st.chunk * p + d, st.chunk));
    };
    auto push_backward = [&](int k) {
      const ChunkStep st = virtual_step(k, p, v, false);
      ops.push_back(backward(st.microbatch, st.chunk * p + d, st.chunk));
    };
    for (int k = 0; k < warmup; ++k) push_forward(k);
    for (int k = 0; k < total - warmup; ++k) {
      push_forward(k + warmup);
      push_backward(k);
    }
    for (int k = total - warmup; k < total; ++k) push_backward(k);
  }
  return s;
}

}  // namespace ppsim
