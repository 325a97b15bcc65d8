// Chimera (Li & Hoefler, SC'21): two pipelines over the same p devices in opposite
// directions. The down pipe (pipe 0) maps stage k to device k, the up pipe (pipe 1) to
// device p-1-k, so every device holds one stage of each (weights twice).
//
// The order is the one the paper's unit-slot scheduling (its Fig. 3) and its reference
// generator (chimera_pipeline_rank.py in Shigangli/Chimera) produce: micro-batches go in
// groups of p/2, alternately to the down and the up pipe; within a pipe, micro-batch j of
// its group enters at slot 2j, forwards one stage per slot and comes back one stage per
// slot, so with unit slots its forward at stage k runs in slot 2j+k and its backward at
// stage k in slot 2j+2p-1-k. For even p the two pipes never want one device in the same
// slot. Every further p micro-batches (one group per pipe) form a new basic unit that
// starts 2p slots after the previous one, which is when the reference generator starts
// the next pipeline pair (direct concatenation); with equal forward and backward times it
// leaves no bubble between units, so the iteration takes 2m+p-2 slots.
// Each device runs its ops in slot order. The two replicas of each stage all-reduce their
// gradients once both have run their last backward on it.
#include <algorithm>
#include <tuple>

#include "generators.h"

namespace ppsim {

Schedule generate_chimera(const ScheduleParams& params) {
  require_single_chunk("chimera", params);
  const int p = params.stages;
  const int m = params.microbatches;
  if (p % 2 != 0)
    throw ScheduleError("chimera needs an even number of stages (got p=" + std::to_string(p) +
                        "): its down and up pipelines merge without conflict only when p is even");
  Schedule s = make_empty_schedule("chimera", params);
  s.pipes = 2;
  const int half = p / 2;
  // (slot, op) per device, sorted by slot afterwards.
  std::vector<std::vector<std::pair<std::int64_t, Op>>> slotted(static_cast<std::size_t>(p));
  for (int mb = 0; mb < m; ++mb) {
    const int group = mb / half;
    const int unit = group / 2;
    const int pipe = group % 2;
    const int j = mb % half;
    const std::int64_t base = static_cast<std::int64_t>(2) * p * unit + 2 * j;
    for (int k = 0; k < p; ++k) {
      const int device = pipe == 0 ? k : p - 1 - k;
      slotted[device].emplace_back(base + k, forward(mb, k, 0, pipe));
      slotted[device].emplace_back(base + 2 * p - 1 - k, backward(mb, k, 0, pipe));
    }
  }
  for (int d = 0; d < p; ++d) {
    auto& ops = slotted[d];
    std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 1; i < ops.size(); ++i)
      if (ops[i].first == ops[i - 1].first)
        throw ScheduleError("chimera: internal error, two ops share slot " + std::to_string(ops[i].first) +
                            " on device " + std::to_string(d));
    s.device_ops[d].reserve(ops.size());
    for (const auto& entry : ops) s.device_ops[d].push_back(entry.second);
  }
  // Stage k's two replicas (device k down, device p-1-k up) all-reduce their gradients
  // as soon as both are done with it (the paper's eager synchronisation).
  for (int k = 0; k < p; ++k) s.gradient_syncs.push_back({k, {k, p - 1 - k}});
  s.note = "Chimera unit-slot order (paper Fig. 3, chimera_pipeline_rank.py): a basic unit of p micro-batches every 2p slots";
  if (m % p != 0) s.note += "; m is not a multiple of p, so the last unit is partial and (p-2)/(2m+p-2) does not apply";
  return s;
}

}  // namespace ppsim
