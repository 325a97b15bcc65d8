#pragma once
// Hand-built runs for the Vega-Lite and Chrome-trace tests: they do not need the engine.
#include <memory>

#include "ppsim/engine/engine.h"
#include "ppsim/engine/op_graph.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim::test {

inline TimeNs ms(double v) { return TimeNs::from_ms(v); }

inline void add_op(SimResult& r, int device, OpKind kind, int mb, int stage, double start,
                   double end, int chunk = 0, int pipe = 0) {
  Op op;
  op.kind = kind;
  op.microbatch = mb;
  op.stage = stage;
  op.chunk = static_cast<std::int16_t>(chunk);
  op.pipe = static_cast<std::int8_t>(pipe);
  OpRecord rec{};
  rec.op = op;
  rec.device = device;
  rec.start = ms(start);
  rec.end = ms(end);
  r.ops.push_back(rec);
}

/// GPipe, p=2, m=2, unit time (F 1 ms, B 2 ms), free links: makespan 9 ms, each device
/// busy 6 ms, bubble 1/3. Memory: 1 MiB static, +1 MiB per stashed micro-batch.
inline SimResult gpipe_2x2(Schedule* schedule_out = nullptr) {
  Schedule s;
  s.name = "gpipe";
  s.devices = 2;
  s.num_stages = 2;
  s.microbatches = 2;
  SimResult r;
  r.devices = 2;
  add_op(r, 0, OpKind::Forward, 0, 0, 0, 1);
  add_op(r, 0, OpKind::Forward, 1, 0, 1, 2);
  add_op(r, 0, OpKind::Backward, 0, 0, 5, 7);
  add_op(r, 0, OpKind::Backward, 1, 0, 7, 9);
  add_op(r, 1, OpKind::Forward, 0, 1, 1, 2);
  add_op(r, 1, OpKind::Forward, 1, 1, 2, 3);
  add_op(r, 1, OpKind::Backward, 0, 1, 3, 5);
  add_op(r, 1, OpKind::Backward, 1, 1, 5, 7);
  r.device_first_op = {0, 4, 8};
  for (const OpRecord& o : r.ops) s.device_ops.resize(2), s.device_ops[o.device].push_back(o.op);
  r.graph = std::make_shared<const OpGraph>(build_op_graph(s));
  const std::int64_t MiB = 1 << 20;
  const struct { int d; double t; std::int64_t b; } mem[] = {
      {0, 0, 2 * MiB}, {0, 1, 3 * MiB}, {0, 7, 2 * MiB}, {0, 9, MiB},
      {1, 1, 2 * MiB}, {1, 2, 3 * MiB}, {1, 5, 2 * MiB}, {1, 7, MiB}};
  for (const auto& m : mem) r.memory.push_back({m.d, ms(m.t), Bytes{m.b}});
  r.per_device.resize(2);
  for (auto& d : r.per_device) d.compute_busy = d.window_busy = ms(6);
  r.first_start = ms(0);
  r.last_end = ms(9);
  r.iteration_time = ms(9);
  r.window_start = ms(0);
  r.window_end = ms(9);
  if (schedule_out) *schedule_out = s;
  return r;
}

/// The same run with links that take 0.5 ms: the four cross-device transfers
/// (activations 0->1, gradients 1->0). Times are shifted only where the tests need not care.
inline SimResult gpipe_2x2_with_links(Schedule* schedule_out = nullptr) {
  SimResult r = gpipe_2x2(schedule_out);
  // producer/consumer are op indices: D0 F0=0, F1=1, B0=2, B1=3; D1 F0=4, F1=5, B0=6, B1=7.
  r.transfers.push_back({0, 1, 0, 4, Bytes{4096}, ms(1), ms(1.5)});
  r.transfers.push_back({0, 1, 1, 5, Bytes{4096}, ms(2), ms(2.5)});
  r.transfers.push_back({1, 0, 6, 2, Bytes{4096}, ms(5), ms(5.5)});
  r.transfers.push_back({1, 0, 7, 3, Bytes{4096}, ms(7), ms(7.5)});
  return r;
}

}  // namespace ppsim::test
