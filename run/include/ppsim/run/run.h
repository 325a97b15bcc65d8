#pragma once
/// @file run.h
/// @brief A prepared run: the config after overrides, its schedule, its stage costs and
/// its links, assembled once and used by run, compare, sweep, the benchmarks and tests.
#include <memory>
#include <vector>

#include "ppsim/engine/engine.h"
#include "ppsim/run/config.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief A prepared run: config after overrides, its schedule and stage costs.
struct Run {
  Config config;
  Schedule schedule;
  std::vector<int> layers_per_stage;  ///< the partition, made once (stage_layer_counts)
  std::vector<StageCost> costs;
  bool unit_time{false};  ///< costs are unit slots (unit_time_run): 1 slot = 1 ms
  CommProgram comm{};  ///< the schedule's communication steps (empty for ideal communication)
};

/// @brief Simulates a prepared run with its communication steps (`options.comm` is set
/// to the run's).
SimResult simulate_run(const Run& run, LinkModel& links, SimOptions options = {});

/// @brief Builds the schedule and costs for a config (throws ConfigError/ScheduleError).
Run prepare_run(const Config& config);

/// @brief Textbook unit-time costs (`--unit-time`), as the papers draw them: a stage's F
/// is one slot, its full backward two (when split: B one, W one), and a device holding v
/// chunks does each chunk's op in 1/v of that (F 1/v slot, B 2/v, split B and W 1/v
/// each); 1 slot = 1 ms (a chunk op rounds down to whole ns when 10^6 is not a multiple
/// of v); nothing sent. Memory costs are kept, so the memory panel still shows what is
/// stashed.
std::vector<StageCost> unit_time_costs(std::vector<StageCost> costs, int chunks);

/// @brief The run as a textbook figure draws it: unit_time_costs, and communication free
/// (no link latency, no topology, a free data-parallel all-reduce); the memory limit
/// stays.
Run unit_time_run(Run run);

/// @brief Link model the config describes.
std::unique_ptr<LinkModel> make_links(const Config& config, int devices);

}  // namespace ppsim
