// DualPipe (DeepSeek-V3 technical report), in the order deepseek-ai/DualPipe's
// dualpipe.py runs: two pipelines in opposite directions over p devices (p even), like
// Chimera. Pipe 0 maps stage k to device k and carries micro-batches 0..m/2-1; pipe 1
// maps stage k to device p-1-k and carries m/2..m-1. Needs m even and m >= 2p.
//
// With h = min(d, p-1-d) and, for the first half of the devices, "phase 0" = pipe 0 and
// "phase 1" = pipe 1 (swapped on the second half), device d runs: 2(p/2-h-1) phase-0
// forwards; h+1 (phase-0 F, phase-1 F); p/2-h-1 (phase-1 B, a pending W, phase-1 F);
// m/2-p+h+1 main steps of (phase-0 F with phase-1 full backward) and (phase-1 F with
// phase-0 full backward); p/2-h-1 (phase-1 full backward, phase-1 F with phase-0 full
// backward); h+1 (phase-1, phase-0 backwards, input-gradient-only from halfway on);
// p/2-h-1 (pending W, phase-0 B); h+1 pending W's. Pending W's run oldest first.
// Each stage's two replicas all-reduce their gradients at the end, as in Chimera.
//
// Modelling choices as for dualpipev: the overlapped F&B pairs are listed in
// Schedule::overlap_pairs (a run with pipeline.overlap runs each as one unit, otherwise
// forward then backward), and a full backward is B immediately followed by its W.
#include <algorithm>
#include <array>
#include <deque>

#include "generators.h"

namespace ppsim {

Schedule generate_dualpipe(const ScheduleParams& params) {
  require_single_chunk("dualpipe", params);
  const int p = params.stages;
  const int m = params.microbatches;
  if (p % 2 != 0)
    throw ScheduleError("dualpipe needs an even number of stages (got p=" + std::to_string(p) +
                        "): its two directions meet in the middle pair of devices");
  if (m % 2 != 0 || m < 2 * p)
    throw ScheduleError("dualpipe needs an even number of microbatches >= 2*stages (m=" + std::to_string(m) +
                        ", 2p=" + std::to_string(2 * p) + "): each direction takes m/2 of them");
  Schedule s = make_empty_schedule("dualpipe", params);
  s.pipes = 2;
  s.split_backward = true;
  const int half_ranks = p / 2;
  const int half_m = m / 2;
  s.overlap_pairs.resize(static_cast<std::size_t>(p));
  for (int d = 0; d < p; ++d) {
    const int h = std::min(d, p - 1 - d);
    const bool second_half = d >= half_ranks;
    // phase -> (pipe, stage)
    const std::array<int, 2> pipe_of = {second_half ? 1 : 0, second_half ? 0 : 1};
    auto stage_of = [&](int pipe) { return pipe == 0 ? d : p - 1 - d; };
    std::array<int, 2> next_f = {0, 0}, next_b = {0, 0};  // per pipe, index within the pipe
    std::deque<std::pair<int, int>> pending;               // (pipe, micro-batch)
    auto& ops = s.device_ops[d];
    ops.reserve(3 * static_cast<std::size_t>(m));
    auto mb_id = [&](int pipe, int index) { return pipe * half_m + index; };
    auto fwd = [&](int phase) {
      const int pipe = pipe_of[phase];
      ops.push_back(forward(mb_id(pipe, next_f[pipe]++), stage_of(pipe), 0, pipe));
    };
    auto bwd = [&](int phase, bool input_only) {
      const int pipe = pipe_of[phase];
      const int mb = mb_id(pipe, next_b[pipe]++);
      ops.push_back(backward(mb, stage_of(pipe), 0, pipe));
      if (input_only) pending.emplace_back(pipe, mb);
      else ops.push_back(weight(mb, stage_of(pipe), 0, pipe));
    };
    auto pending_weight = [&] {
      if (pending.empty()) return;
      const auto [pipe, mb] = pending.front();
      pending.pop_front();
      ops.push_back(weight(mb, stage_of(pipe), 0, pipe));
    };
    // dualpipe.py's _forward_backward_chunk: a forward and a full backward as one pair.
    auto overlapped = [&](int f_phase, int b_phase) {
      s.overlap_pairs[d].push_back(static_cast<std::int32_t>(ops.size()));
      fwd(f_phase);
      bwd(b_phase, false);
    };
    for (int i = 0; i < 2 * (half_ranks - h - 1); ++i) fwd(0);
    for (int i = 0; i < h + 1; ++i) {
      fwd(0);
      fwd(1);
    }
    for (int i = 0; i < half_ranks - h - 1; ++i) {
      bwd(1, true);
      pending_weight();
      fwd(1);
    }
    for (int i = 0; i < half_m - p + h + 1; ++i) {
      overlapped(0, 1);
      overlapped(1, 0);
    }
    for (int i = 0; i < half_ranks - h - 1; ++i) {
      bwd(1, false);
      overlapped(1, 0);
    }
    bool zero_bubble = false;
    for (int i = 0; i < h + 1; ++i) {
      if (i == (h + 1) / 2 && h % 2 == 1) zero_bubble = true;
      bwd(1, zero_bubble);
      if (i == (h + 1) / 2 && h % 2 == 0) zero_bubble = true;
      bwd(0, zero_bubble);
    }
    for (int i = 0; i < half_ranks - h - 1; ++i) {
      pending_weight();
      bwd(0, true);
    }
    for (int i = 0; i < h + 1; ++i) pending_weight();
    if (!pending.empty())
      throw ScheduleError("dualpipe: internal error, weight gradients left on device " + std::to_string(d));
  }
  for (int k = 0; k < p; ++k) s.gradient_syncs.push_back({k, {k, p - 1 - k}});
  s.note = std::string(kPairsInTurnNote) + "; a full backward is B then its W";
  return s;
}

}  // namespace ppsim
