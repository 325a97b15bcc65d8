#include "ppsim/schedules/registry.h"

#include <algorithm>
#include <cctype>

#include "generators.h"

namespace ppsim {

const std::vector<ScheduleInfo>& all_schedules() {
  static const std::vector<ScheduleInfo> table = {
      {"gpipe", {}, "GPipe: all forwards, then all backwards, flush", true, &generate_gpipe},
      {"1f1b", {"dapple", "pipedream-flush"},
       "1F1B with flush (DAPPLE / PipeDream-Flush), Megatron-LM order", true, &generate_1f1b},
      {"1f1b-overlap", {"combined-1f1b"},
       "1F1B with steady-state F&B pairs overlapped (Megatron-LM combined 1F1B, MoE A2A overlap), 2(p-d)-1 warm-up forwards",
       true, &generate_1f1b_overlap},
      {"interleaved", {"megatron-interleaved"},
       "Interleaved 1F1B, v chunks per device (Megatron-LM virtual pipeline)", true, &generate_interleaved, 2},
      {"chimera", {}, "Chimera: two 1F1B pipelines in opposite directions merged, weights twice (even p)", true,
       &generate_chimera},
      {"gems", {}, "GEMS: two replicas in opposite directions, one micro-batch stashed per device", true,
       &generate_gems},
      {"zb-h1", {"zero-bubble-h1", "zb1p"},
       "Zero Bubble H1: split backward (B, W), W delayed to fill the cool-down (torch ZB1P order)", true,
       &generate_zb_h1},
      {"zbv", {"zb-v", "zero-bubble-v"},
       "ZB-V: two chunks per device in a V, split backward (torch ScheduleZBVZeroBubble order)", true,
       &generate_zbv, 2},
      {"dualpipe", {}, "DualPipe: two directions over the same devices, overlapped F/B pairs (DeepSeek-V3 order)",
       true, &generate_dualpipe},
      {"dualpipev", {"dualpipe-v"},
       "DualPipeV: V-shaped DualPipe, overlapped F/B pairs, split backward at the end (torch order)", true,
       &generate_dualpipev, 2},
      {"looped-bfs", {"breadth-first"},
       "Looped BFS: all forwards chunk by chunk, then backwards (torch ScheduleLoopedBFS order)", true,
       &generate_looped_bfs, 2},
      {"pipedream", {}, "PipeDream: asynchronous 1F1B, weight stashing (p-s versions), no flush", false,
       &generate_pipedream},
      {"2bw", {"pipedream-2bw"}, "PipeDream-2BW: asynchronous 1F1B, double-buffered weights, no flush", false,
       &generate_2bw},
  };
  return table;
}

static std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

const ScheduleInfo* find_schedule(std::string_view name) {
  const std::string key = lower(name);
  for (const auto& info : all_schedules()) {
    if (info.name == key) return &info;
    if (std::find(info.aliases.begin(), info.aliases.end(), key) != info.aliases.end()) return &info;
  }
  return nullptr;
}

std::string known_schedule_names() {
  std::string out;
  for (const auto& info : all_schedules()) {
    if (!out.empty()) out += ", ";
    out += info.name;
    for (const auto& a : info.aliases) out += ", " + a;
  }
  return out;
}

Schedule make_schedule(std::string_view name, const ScheduleParams& params) {
  const ScheduleInfo* info = find_schedule(name);
  if (info == nullptr)
    throw ScheduleError("unknown schedule '" + std::string(name) + "' (known: " + known_schedule_names() + ")");
  if (params.stages < 1) throw ScheduleError("stages must be at least 1");
  if (params.microbatches < 1) throw ScheduleError("microbatches must be at least 1");
  if (params.chunks < 1) throw ScheduleError("chunks must be at least 1");
  Schedule s = info->generate(params);
  s.name = info->name;
  return s;
}

}  // namespace ppsim
