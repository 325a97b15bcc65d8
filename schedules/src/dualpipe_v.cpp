// DualPipeV (the V-shaped, one-copy variant of DeepSeek-V3's DualPipe), in the order
// torch.distributed.pipelining's ScheduleDualPipeV produces (itself from
// deepseek-ai/DualPipe). Two chunks per device in a V: device d holds stage d (chunk 0)
// and stage 2p-1-d (chunk 1). Needs m >= 2p (as many micro-batches as stages).
//
// Device d runs eight phases: 2(p-d-1) chunk-0 forwards; d+1 (chunk-0 F, chunk-1 F);
// p-d-1 (chunk-1 B, a pending W, chunk-1 F); m-2p+d+1 main steps of (chunk-0 F with
// chunk-1 full backward) and (chunk-1 F with chunk-0 full backward); p-d-1 (chunk-1 full
// backward, chunk-1 F with chunk-0 full backward); d+1 (chunk-1, chunk-0 backwards,
// switching to input-gradient-only halfway); p-d-1 (pending W, chunk-0 backward); d+1
// pending W's. Pending W's are taken oldest first.
//
// Modelling choices (the README lists them): the overlapped forward+backward pairs are
// listed in Schedule::overlap_pairs; a run with pipeline.overlap runs each as one unit
// (both inputs first, both outputs at its end), otherwise forward then backward. A full
// backward is a B immediately followed by its W, so its input gradient leaves after the
// B part rather than after both.
#include <deque>
#include <map>

#include "generators.h"

namespace ppsim {

Schedule generate_dualpipev(const ScheduleParams& params) {
  const int p = params.stages;
  const int m = params.microbatches;
  require_v_shape("dualpipev", params);
  if (m < 2 * p)
    throw ScheduleError("dualpipev needs microbatches >= 2*stages (m=" + std::to_string(m) + ", 2p=" +
                        std::to_string(2 * p) + "): every stage of the V must be busy in the main phase");
  Schedule s = make_empty_schedule("dualpipev", params);
  s.split_backward = true;
  s.overlap_pairs.resize(static_cast<std::size_t>(p));
  for (int d = 0; d < p; ++d) {
    const int stage0 = d;
    const int stage1 = 2 * p - 1 - d;
    auto& ops = s.device_ops[d];
    ops.reserve(6 * static_cast<std::size_t>(m));
    std::map<int, int> next_forward, next_backward;  // per stage: next micro-batch
    std::deque<std::pair<int, int>> pending_weights;  // (stage, micro-batch), oldest first
    auto chunk_of = [&](int stage) { return stage == stage0 ? 0 : 1; };
    auto fwd = [&](int stage) { ops.push_back(forward(next_forward[stage]++, stage, chunk_of(stage))); };
    auto input_grad = [&](int stage) {
      const int mb = next_backward[stage]++;
      ops.push_back(backward(mb, stage, chunk_of(stage)));
      pending_weights.emplace_back(stage, mb);
    };
    auto full_backward = [&](int stage) {
      const int mb = next_backward[stage]++;
      ops.push_back(backward(mb, stage, chunk_of(stage)));
      ops.push_back(weight(mb, stage, chunk_of(stage)));
    };
    auto pending_weight = [&] {
      if (pending_weights.empty()) return;
      const auto [stage, mb] = pending_weights.front();
      pending_weights.pop_front();
      ops.push_back(weight(mb, stage, chunk_of(stage)));
    };
    // An overlapped pair: a forward and a full backward (OVERLAP_F_B).
    auto overlapped = [&](int f_stage, int b_stage) {
      s.overlap_pairs[d].push_back(static_cast<std::int32_t>(ops.size()));
      fwd(f_stage);
      full_backward(b_stage);
    };
    for (int i = 0; i < 2 * (p - d - 1); ++i) fwd(stage0);
    for (int i = 0; i < d + 1; ++i) {
      fwd(stage0);
      fwd(stage1);
    }
    for (int i = 0; i < p - d - 1; ++i) {
      input_grad(stage1);
      pending_weight();
      fwd(stage1);
    }
    for (int i = 0; i < m - 2 * p + d + 1; ++i) {
      overlapped(stage0, stage1);
      overlapped(stage1, stage0);
    }
    for (int i = 0; i < p - d - 1; ++i) {
      full_backward(stage1);
      overlapped(stage1, stage0);
    }
    bool split = false;
    const int tail = d + 1;
    for (int i = 0; i < tail; ++i) {
      if (i == tail / 2 && d % 2 == 1) split = true;
      split ? input_grad(stage1) : full_backward(stage1);
      if (i == tail / 2 && d % 2 == 0) split = true;
      split ? input_grad(stage0) : full_backward(stage0);
    }
    for (int i = 0; i < p - d - 1; ++i) {
      pending_weight();
      split ? input_grad(stage0) : full_backward(stage0);
    }
    for (int i = 0; i < d + 1; ++i) pending_weight();
    if (!pending_weights.empty())
      throw ScheduleError("dualpipev: internal error, weight gradients left on device " + std::to_string(d));
  }
  s.note = std::string(kPairsInTurnNote) + "; a full backward is B then its W";
  return s;
}

}  // namespace ppsim
