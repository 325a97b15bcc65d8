#pragma once
// Shared helpers for the schedule tests: equal-stage costs, free links, op-order strings.
#include <string>
#include <vector>

#include "ppsim/engine/engine.h"
#include "ppsim/metrics/metrics.h"
#include "ppsim/schedules/registry.h"

namespace ppsim_sched_test {

using namespace ppsim;

/// Every stage costs f ms forward and b ms backward (a third of it weight gradient),
/// stashes `act` bytes per micro-batch and holds `params` bytes of weights.
inline std::vector<StageCost> uniform_costs(int stages, double f_ms, double b_ms, std::int64_t act = 1000,
                                            std::int64_t params = 100) {
  StageCost c;
  c.forward = TimeNs::from_ms(f_ms);
  c.backward = TimeNs::from_ms(b_ms);
  c.weight_grad = TimeNs::from_ms(b_ms / 3);
  c.activation = Bytes{act};
  c.weight_activation = Bytes{act / 2};
  c.parameters = Bytes{params};
  return std::vector<StageCost>(static_cast<std::size_t>(stages), c);
}

inline SimResult simulate_free(const Schedule& s, const std::vector<StageCost>& costs) {
  UniformLinkModel free_links(s.devices, TimeNs{}, 0.0);
  return simulate(s, costs, free_links);
}

/// The report's overall bubble rate (metrics.h computes it, here as everywhere).
inline double mean_bubble(const SimResult& r) { return pipeline_metrics(r).bubble_rate; }

inline double device_bubble(const SimResult& r, int d) {
  return pipeline_metrics(r).per_device[static_cast<std::size_t>(d)].bubble_rate;
}

/// One device's op order as `ppsim schedule` prints it.
inline std::string order(const Schedule& s, int device) {
  std::string out;
  for (const Op& op : s.device_ops[device]) {
    if (!out.empty()) out += ' ';
    out += op_token(op);
  }
  return out;
}

}  // namespace ppsim_sched_test
