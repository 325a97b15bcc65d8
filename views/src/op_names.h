#pragma once
// Internal to views/: what an executed op is called in every view (timeline, trace,
// Gantt chart), over the schedule's one naming (op_label, pair_label, pair_kind_name).
#include <cstddef>
#include <string>

#include "ppsim/engine/engine.h"

namespace ppsim::views {

/// @brief The op's op_label, or, for an op of an overlapped pair run as one unit, the
/// pair's pair_label (both halves carry it).
inline std::string record_label(const SimResult& r, std::size_t i, bool chunks, bool pipes) {
  const OpRecord& rec = r.ops[i];
  if (rec.pair == 0) return op_label(rec.op, chunks, pipes);
  const std::size_t f = rec.pair == 1 ? i : i - 1;
  return pair_label(r.ops[f].op, r.ops[f + 1].op, chunks, pipes);
}

}  // namespace ppsim::views
