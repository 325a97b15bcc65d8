#pragma once
/// @file replay.h
/// @brief Replays a prepared run for real: every device executes its op list in order
/// with the harness's layers (layers.h) at the config's shape, real activations and
/// gradients go between devices, and each op waits for every node the op graph
/// (build_op_graph, the simulator's own) says it waits for, through the executor's
/// synchronisation. The measured run is a SimResult, so the timeline, the metrics and the
/// figures read it as they read a simulated one. calibrate/README.md, "Replay".
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/engine/engine.h"
#include "ppsim/replay/executor.h"
#include "ppsim/run/run.h"

namespace ppsim::replay {

/// @brief A config the replay cannot run (the CLI exits 2 with the message).
class ReplayError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ReplayOptions {
  int warmup{1};      ///< whole iterations run first and discarded
  int iterations{3};  ///< measured iterations; the one of median iteration time is kept
};

/// @brief One device's memory as its allocator counted it.
struct DeviceMemory {
  std::int64_t baseline{0};        ///< before the iteration: every layer copy's weights and gradients
  std::int64_t peak{0};            ///< allocator high-water mark in the kept iteration, less the baseline
  std::int64_t peak_between_ops{0};  ///< highest in-use at an op boundary, less the baseline
};

/// @brief What a replay measured.
struct Replay {
  /// The kept iteration as a result: ops in SimResult order with their real start and
  /// end, each transfer (the copy) with its real start and end, memory samples at op
  /// boundaries (allocator bytes in use, baseline included), per-device summaries, the
  /// op graph it followed. Times from the first op's start.
  SimResult measured;
  std::vector<double> iteration_ms;  ///< every measured iteration, in order
  std::vector<DeviceMemory> memory;
  std::vector<int> executed;  ///< per op (SimResult order): times it ran in the kept iteration
  std::vector<int> slots;     ///< per model stage: layer sets allocated (its in-flight peak)
};

/// @brief Replays `run` on `executor` (executor.devices() == run.schedule.devices).
/// Throws ReplayError for what it cannot replay: a model not costed from "costs"
/// (explicit layers have no shapes), a dtype the executor's backend does not store,
/// gradient syncs, communication steps other than ideal, asynchronous schedules, tensor
/// parallelism, recompute. With data parallelism one pipeline replica runs.
Replay replay_run(const Run& run, Executor& executor, const ReplayOptions& options = {});

/// @brief Distribution of one error over the ops.
struct ErrorStats {
  double median{0};
  double p95{0};
  double worst{0};
  std::string worst_op;  ///< "device D OPTOKEN" of the worst
};

/// @brief Measured against simulated; docs/metrics.md "Replay comparison".
struct Comparison {
  double simulated_ms{0};
  double measured_ms{0};
  double iteration_error_pct{0};  ///< (simulated - measured) / measured x 100
  ErrorStats start_error_ms;      ///< |simulated start - measured start| per op
  ErrorStats start_error_pct;     ///< the same as % of the measured iteration time
  ErrorStats duration_error_pct;  ///< |simulated - measured| / measured duration x 100 per op
  double simulated_bubble_rate{0};
  double measured_bubble_rate{0};
  std::vector<std::int64_t> simulated_peak_activation;  ///< per device
  std::vector<std::int64_t> measured_peak_activation;   ///< per device: allocator high-water less baseline
  std::vector<std::int64_t> measured_peak_between_ops;  ///< per device
  std::size_t ops{0};
  std::size_t transfers{0};
};

/// @brief Compares a replay with the simulation of the same run (ops matched by index:
/// both are in SimResult order). Bubble rates are pipeline_metrics' of each result.
Comparison compare(const Schedule& schedule, const SimResult& simulated, const Replay& replay);
nlohmann::json comparison_json(const Comparison& c, const Replay& replay);
/// @brief A short table for the terminal.
std::string comparison_table(const Comparison& c);

}  // namespace ppsim::replay
