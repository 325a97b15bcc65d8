#pragma once
// Internal: generator declarations and small helpers shared by the generator files.
#include <string>

#include "ppsim/schedules/schedule.h"

namespace ppsim {

Schedule generate_gpipe(const ScheduleParams& params);
Schedule generate_1f1b(const ScheduleParams& params);
Schedule generate_1f1b_overlap(const ScheduleParams& params);
Schedule generate_interleaved(const ScheduleParams& params);
Schedule generate_pipedream(const ScheduleParams& params);
Schedule generate_2bw(const ScheduleParams& params);
Schedule generate_chimera(const ScheduleParams& params);
Schedule generate_gems(const ScheduleParams& params);
Schedule generate_zb_h1(const ScheduleParams& params);
Schedule generate_looped_bfs(const ScheduleParams& params);
Schedule generate_zbv(const ScheduleParams& params);
Schedule generate_dualpipev(const ScheduleParams& params);
Schedule generate_dualpipe(const ScheduleParams& params);

/// How an asynchronous schedule lays out iterations: `iterations` in all, the steady
/// state measured over [measure_from, iterations), then a cool-down tail of micro-batches
/// that belongs to no iteration.
struct AsyncLayout {
  int iterations{0};
  int measure_from{0};
  int tail_microbatches{0};
};
/// Warm-up iterations covering at least 2p micro-batches, then 3 measured ones, unless
/// params.iterations (>= 2) says how many to lay out.
AsyncLayout choose_async_layout(const std::string& name, const ScheduleParams& params);
/// The schedule note saying which window was measured.
std::string async_note(const AsyncLayout& layout, const ScheduleParams& params);
/// Fills `s` (p devices, one stage each) with asynchronous 1F1B over micro-batches
/// 0..total-1: p-d-1 warm-up forwards on device d, then one forward, one backward.
void fill_async_1f1b(Schedule& s, int total_microbatches);
/// PipeDream and PipeDream-2BW share the op order and the measured window; they differ
/// only in how many weight versions a device keeps.
Schedule make_async_1f1b(const std::string& name, const ScheduleParams& params, WeightPolicy weights);

inline Op forward(int mb, int stage, int chunk = 0, int pipe = 0) {
  return Op{OpKind::Forward, mb, stage, static_cast<std::int16_t>(chunk), static_cast<std::int8_t>(pipe)};
}
inline Op backward(int mb, int stage, int chunk = 0, int pipe = 0) {
  return Op{OpKind::Backward, mb, stage, static_cast<std::int16_t>(chunk), static_cast<std::int8_t>(pipe)};
}
inline Op weight(int mb, int stage, int chunk = 0, int pipe = 0) {
  return Op{OpKind::Weight, mb, stage, static_cast<std::int16_t>(chunk), static_cast<std::int8_t>(pipe)};
}

/// A schedule with p devices, p*v stages, empty op lists.
inline Schedule make_empty_schedule(const std::string& name, const ScheduleParams& params) {
  Schedule s;
  s.name = name;
  s.devices = params.stages;
  s.chunks = params.chunks;
  s.num_stages = params.stages * params.chunks;
  s.microbatches = params.microbatches;
  s.device_ops.resize(static_cast<std::size_t>(params.stages));
  return s;
}

/// V-shaped schedules (zbv, dualpipev) hold stage d and stage 2p-1-d on device d.
inline void require_v_shape(const std::string& name, const ScheduleParams& params) {
  if (params.chunks != 2)
    throw ScheduleError(name + " needs exactly 2 chunks per device (got " + std::to_string(params.chunks) +
                        "): its V places stage d and stage 2p-1-d on device d");
}

inline void require_single_chunk(const std::string& name, const ScheduleParams& params) {
  if (params.chunks != 1)
    throw ScheduleError(name + " holds one stage per device: chunks must be 1 (got " +
                        std::to_string(params.chunks) + "); use 'interleaved' for v > 1");
}

}  // namespace ppsim
