#include "ppsim/schedules/schedule.h"

#include <algorithm>
#include <cstdio>

namespace ppsim {

char op_letter(OpKind kind) {
  switch (kind) {
    case OpKind::Forward: return 'F';
    case OpKind::Backward: return 'B';
    case OpKind::Weight: return 'W';
  }
  return '?';
}

const char* op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::Forward: return "F";
    case OpKind::Backward: return "B";
    case OpKind::Weight: return "W";
  }
  return "?";
}

std::string op_label(const Op& op, bool show_chunk, bool show_pipe) {
  std::string s = op_kind_name(op.kind) + std::to_string(op.microbatch);
  if (show_chunk) s += "c" + std::to_string(op.chunk);
  if (show_pipe) s += "p" + std::to_string(op.pipe);
  return s;
}

std::string pair_label(const Op& forward, const Op& backward, bool show_chunk, bool show_pipe) {
  return op_label(forward, show_chunk, show_pipe) + "+" + op_label(backward, show_chunk, show_pipe);
}

const char* pair_kind_name() { return "F&B"; }

std::string note_with_overlap(const std::string& note, double overlap) {
  const std::string from = kPairsInTurnNote;
  const auto at = note.find(from);
  if (at == std::string::npos) return note;
  char amount[32];
  std::snprintf(amount, sizeof amount, "%g", overlap);
  return note.substr(0, at) + "each overlapped F&B pair runs as one unit of max(F, B) + (1 - " + amount +
         ") * min(F, B)" + note.substr(at + from.size());
}

std::string op_token(const Op& op) {
  std::string token(1, op_letter(op.kind));
  token += std::to_string(op.microbatch);
  if (op.chunk != 0) token += "c" + std::to_string(op.chunk);
  if (op.pipe != 0) token += "p" + std::to_string(op.pipe);
  return token;
}

int weight_versions(WeightPolicy policy, int inflight) {
  switch (policy) {
    case WeightPolicy::Single: return 1;
    case WeightPolicy::DoubleBuffer: return 2;
    case WeightPolicy::StashInFlight: return inflight > 1 ? inflight : 1;
  }
  return 1;
}

std::vector<std::vector<std::uint8_t>> overlap_pair_starts(const Schedule& s) {
  std::vector<std::vector<std::uint8_t>> starts(s.device_ops.size());
  for (std::size_t d = 0; d < s.device_ops.size(); ++d) {
    starts[d].assign(s.device_ops[d].size(), 0);
    if (d < s.overlap_pairs.size())
      for (const std::int32_t i : s.overlap_pairs[d]) starts[d][static_cast<std::size_t>(i)] = 1;
  }
  return starts;
}

std::vector<int> stage_inflight_peaks(const Schedule& s) {
  std::vector<int> peak(static_cast<std::size_t>(s.num_stages), 0);
  for (const auto& ops : s.device_ops) {
    std::vector<int> cur(static_cast<std::size_t>(s.pipes) * s.num_stages, 0);
    for (const Op& op : ops) {
      int& n = cur[static_cast<std::size_t>(op.pipe) * s.num_stages + op.stage];
      if (op.kind == OpKind::Forward) peak[op.stage] = std::max(peak[op.stage], ++n);
      if (op.kind == OpKind::Backward) --n;
    }
  }
  return peak;
}

}  // namespace ppsim
