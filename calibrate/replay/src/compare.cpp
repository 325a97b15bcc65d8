// Measured against simulated: the figures of docs/metrics.md "Replay comparison".
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "ppsim/calibrate/stats.h"
#include "ppsim/metrics/metrics.h"
#include "ppsim/replay/replay.h"

namespace ppsim::replay {
namespace {

ErrorStats stats_of(const std::vector<double>& v, const std::vector<std::string>& labels) {
  ErrorStats s;
  if (v.empty()) return s;
  s.median = cal::median(v);
  s.p95 = cal::percentile(v, 95);
  const auto worst = std::max_element(v.begin(), v.end());
  s.worst = *worst;
  s.worst_op = labels[static_cast<std::size_t>(worst - v.begin())];
  return s;
}

double pct(double part, double whole) { return whole > 0 ? part / whole * 100.0 : 0.0; }

}  // namespace

Comparison compare(const Schedule& schedule, const SimResult& sim, const Replay& replay) {
  const SimResult& meas = replay.measured;
  if (sim.ops.size() != meas.ops.size()) throw std::logic_error("compare: the runs have different ops");
  Comparison c;
  c.simulated_ms = sim.iteration_time.ms();
  c.measured_ms = meas.iteration_time.ms();
  c.iteration_error_pct = pct(c.simulated_ms - c.measured_ms, c.measured_ms);
  std::vector<double> start_ms, start_pct, dur_pct;
  std::vector<std::string> labels;
  for (std::size_t i = 0; i < sim.ops.size(); ++i) {
    const OpRecord& s = sim.ops[i];
    const OpRecord& m = meas.ops[i];
    labels.push_back("device " + std::to_string(m.device) + " " + op_label(m.op, schedule.chunks > 1, schedule.pipes > 1));
    start_ms.push_back(std::abs((s.start - m.start).ms()));
    start_pct.push_back(pct(start_ms.back(), c.measured_ms));
    dur_pct.push_back(pct(std::abs(((s.end - s.start) - (m.end - m.start)).ms()), (m.end - m.start).ms()));
  }
  c.start_error_ms = stats_of(start_ms, labels);
  c.start_error_pct = stats_of(start_pct, labels);
  c.duration_error_pct = stats_of(dur_pct, labels);
  c.simulated_bubble_rate = pipeline_metrics(sim).bubble_rate;
  c.measured_bubble_rate = pipeline_metrics(meas).bubble_rate;
  for (std::size_t d = 0; d < sim.per_device.size(); ++d) {
    c.simulated_peak_activation.push_back(sim.per_device[d].peak_activation.value);
    c.measured_peak_activation.push_back(replay.memory[d].peak);
    c.measured_peak_between_ops.push_back(replay.memory[d].peak_between_ops);
  }
  c.ops = meas.ops.size();
  c.transfers = meas.transfers.size();
  return c;
}

nlohmann::json comparison_json(const Comparison& c, const Replay& replay) {
  auto stats = [](const ErrorStats& s) {
    return nlohmann::json{{"median", s.median}, {"p95", s.p95}, {"worst", s.worst}, {"worst_op", s.worst_op}};
  };
  return {{"schema", "ppsim.replay_comparison/1"},
          {"iteration_ms", {{"simulated", c.simulated_ms}, {"measured", c.measured_ms}, {"error_percent", c.iteration_error_pct},
                            {"measured_iterations", replay.iteration_ms}}},
          {"start_error_ms", stats(c.start_error_ms)},
          {"start_error_percent_of_iteration", stats(c.start_error_pct)},
          {"duration_error_percent", stats(c.duration_error_pct)},
          {"bubble_rate", {{"simulated", c.simulated_bubble_rate}, {"measured", c.measured_bubble_rate}}},
          {"peak_activation_bytes", {{"simulated", c.simulated_peak_activation},
                                     {"measured", c.measured_peak_activation},
                                     {"measured_between_ops", c.measured_peak_between_ops}}},
          {"ops", c.ops},
          {"transfers", c.transfers},
          {"layer_copies_per_stage", replay.slots}};
}

std::string comparison_table(const Comparison& c) {
  char buf[256];
  std::string out;
  auto line = [&](const char* name, double sim, double meas, const char* unit) {
    std::snprintf(buf, sizeof buf, "%-28s %12.4f %12.4f%s%s\n", name, sim, meas, *unit ? " " : "", unit);
    out += buf;
  };
  std::snprintf(buf, sizeof buf, "%-28s %12s %12s\n", "", "simulated", "measured");
  out += buf;
  line("iteration time", c.simulated_ms, c.measured_ms, "ms");
  line("bubble rate", c.simulated_bubble_rate, c.measured_bubble_rate, "");
  for (std::size_t d = 0; d < c.measured_peak_activation.size(); ++d) {
    const std::string name = "peak activations, device " + std::to_string(d);
    line(name.c_str(), static_cast<double>(c.simulated_peak_activation[d]) / 1048576.0,
         static_cast<double>(c.measured_peak_activation[d]) / 1048576.0, "MiB");
  }
  std::snprintf(buf, sizeof buf, "iteration time error %+.2f%% (simulated vs measured)\n", c.iteration_error_pct);
  out += buf;
  auto err = [&](const char* name, const ErrorStats& s, const char* unit) {
    std::snprintf(buf, sizeof buf, "%-28s median %.3f%s  p95 %.3f%s  worst %.3f%s (%s)\n", name, s.median, unit, s.p95,
                  unit, s.worst, unit, s.worst_op.c_str());
    out += buf;
  };
  err("op start error", c.start_error_ms, " ms");
  err("op start error / iteration", c.start_error_pct, "%");
  err("op duration error", c.duration_error_pct, "%");
  return out;
}

}  // namespace ppsim::replay
