// Structural checks on a schedule before it is simulated: every op the engine will
// look for exists exactly once, and each (stage, pipe) lives on one device.
#include <algorithm>
#include <string>
#include <vector>

#include "ppsim/schedules/registry.h"

namespace ppsim {

namespace {
std::string where(int device, std::size_t index, const Op& op) {
  return "device " + std::to_string(device) + " op " + std::to_string(index) + " (" + op_token(op) +
         " stage " + std::to_string(op.stage) + ")";
}

void validate_overlap_pairs(const Schedule& s) {
  if (s.overlap_pairs.empty()) return;
  if (static_cast<int>(s.overlap_pairs.size()) != s.devices)
    throw ScheduleError("overlap pairs listed for " + std::to_string(s.overlap_pairs.size()) + " devices, expected " +
                        std::to_string(s.devices));
  for (int d = 0; d < s.devices; ++d) {
    const auto& ops = s.device_ops[d];
    std::int64_t after = -1;  // pairs must be in order and disjoint
    for (const std::int32_t i : s.overlap_pairs[d]) {
      if (i < 0 || static_cast<std::size_t>(i) + 1 >= ops.size() || i <= after)
        throw ScheduleError("device " + std::to_string(d) + " overlap pair at op " + std::to_string(i) +
                            ": out of range, out of order or overlapping the pair before");
      if (ops[i].kind != OpKind::Forward || ops[i + 1].kind != OpKind::Backward)
        throw ScheduleError(where(d, static_cast<std::size_t>(i), ops[i]) + ": an overlap pair is a forward followed by a backward");
      after = i + 1;
    }
  }
}

}  // namespace

void validate_schedule(const Schedule& s) {
  if (s.devices < 1) throw ScheduleError("schedule has no devices");
  if (static_cast<int>(s.device_ops.size()) != s.devices)
    throw ScheduleError("schedule lists " + std::to_string(s.device_ops.size()) + " devices, expected " +
                        std::to_string(s.devices));
  if (s.num_stages < 1 || s.pipes < 1 || s.pipes > 2)
    throw ScheduleError("schedule needs at least one stage and one or two pipes");
  int max_mb = -1;
  for (int d = 0; d < s.devices; ++d)
    for (std::size_t i = 0; i < s.device_ops[d].size(); ++i) {
      const Op& op = s.device_ops[d][i];
      if (op.microbatch < 0) throw ScheduleError(where(d, i, op) + ": negative micro-batch");
      if (op.stage < 0 || op.stage >= s.num_stages)
        throw ScheduleError(where(d, i, op) + ": stage out of range 0.." + std::to_string(s.num_stages - 1));
      if (op.pipe < 0 || op.pipe >= s.pipes) throw ScheduleError(where(d, i, op) + ": pipe out of range");
      if (op.chunk < 0) throw ScheduleError(where(d, i, op) + ": negative chunk");
      if (op.kind == OpKind::Weight && !s.split_backward)
        throw ScheduleError(where(d, i, op) + ": W op in a schedule without split backward");
      max_mb = std::max(max_mb, op.microbatch);
    }
  if (max_mb < 0) throw ScheduleError("schedule has no ops");
  for (const GradientSync& sync : s.gradient_syncs) {
    if (sync.stage < 0 || sync.stage >= s.num_stages)
      throw ScheduleError("gradient sync of stage " + std::to_string(sync.stage) + ": stage out of range");
    for (std::size_t i = 0; i < sync.devices.size(); ++i) {
      const int d = sync.devices[i];
      if (d < 0 || d >= s.devices || std::find(sync.devices.begin(), sync.devices.begin() + i, d) != sync.devices.begin() + i)
        throw ScheduleError("gradient sync of stage " + std::to_string(sync.stage) + ": device " + std::to_string(d) +
                            " out of range or listed twice");
    }
  }

  validate_overlap_pairs(s);
  const std::size_t slots = static_cast<std::size_t>(s.pipes) * s.num_stages;
  std::vector<int> stage_device(slots, -1);
  const std::size_t mbs = static_cast<std::size_t>(max_mb) + 1;
  std::vector<std::uint8_t> seen(slots * mbs * 3, 0);
  for (int d = 0; d < s.devices; ++d)
    for (std::size_t i = 0; i < s.device_ops[d].size(); ++i) {
      const Op& op = s.device_ops[d][i];
      const std::size_t slot = static_cast<std::size_t>(op.pipe) * s.num_stages + op.stage;
      if (stage_device[slot] == -1) stage_device[slot] = d;
      if (stage_device[slot] != d)
        throw ScheduleError(where(d, i, op) + ": stage " + std::to_string(op.stage) + " pipe " +
                            std::to_string(op.pipe) + " already runs on device " + std::to_string(stage_device[slot]));
      auto& cell = seen[(slot * mbs + op.microbatch) * 3 + static_cast<int>(op.kind)];
      if (cell != 0) throw ScheduleError(where(d, i, op) + ": appears twice");
      cell = 1;
    }
  // Every (micro-batch, pipe) that enters the pipeline must pass every stage both ways.
  for (int pipe = 0; pipe < s.pipes; ++pipe)
    for (std::size_t mb = 0; mb < mbs; ++mb) {
      bool present = false;
      for (int st = 0; st < s.num_stages && !present; ++st)
        for (int k = 0; k < 3; ++k)
          present = present || seen[((static_cast<std::size_t>(pipe) * s.num_stages + st) * mbs + mb) * 3 + k];
      if (!present) continue;
      for (int st = 0; st < s.num_stages; ++st) {
        const std::size_t base = ((static_cast<std::size_t>(pipe) * s.num_stages + st) * mbs + mb) * 3;
        const char* missing = nullptr;
        if (!seen[base]) missing = "F";
        else if (!seen[base + 1]) missing = "B";
        else if (s.split_backward && !seen[base + 2]) missing = "W";
        if (missing != nullptr)
          throw ScheduleError(std::string("schedule has no ") + missing + std::to_string(mb) + " for stage " +
                              std::to_string(st) + " pipe " + std::to_string(pipe));
      }
    }
}

}  // namespace ppsim
