/// @file run.cpp
/// @brief Assembles a run once: config -> schedule -> partition -> costs -> links.
#include "ppsim/run/run.h"

#include <algorithm>

#include "ppsim/model/topology.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/schedules/user_schedule.h"
#include "ppsim/run/cluster.h"
#include "ppsim/run/stages.h"

namespace ppsim {

Run prepare_run(const Config& config) {
  check_pipeline(config);
  Run run{config, {}, {}, {}, {}};
  ScheduleParams params{config.pipeline.stages, config.pipeline.microbatches, config.pipeline.chunks,
                        config.pipeline.iterations};
  if (config.pipeline.schedule_file.empty()) {
    run.schedule = make_schedule(config.pipeline.schedule, params);
  } else {
    run.schedule = load_user_schedule(config.pipeline.schedule_file, params.chunks);
    if (run.schedule.devices != params.stages || run.schedule.microbatches != params.microbatches ||
        run.schedule.chunks != params.chunks)
      throw ScheduleError(config.pipeline.schedule_file + ": its shape (devices " + std::to_string(run.schedule.devices) +
                          ", microbatches " + std::to_string(run.schedule.microbatches) + ", chunks " +
                          std::to_string(run.schedule.chunks) + ") differs from the config's pipeline");
  }
  if (config.pipeline.overlap) run.schedule.note = note_with_overlap(run.schedule.note, *config.pipeline.overlap);
  try {
    run.comm = lower_communication(run.schedule, config.pipeline.communication);
  } catch (const ScheduleError& e) {
    throw ConfigError(config.file, "pipeline.communication", e.what());
  }
  run.layers_per_stage = stage_layer_counts(config);
  run.costs = stage_costs(config, run.layers_per_stage);
  return run;
}

SimResult simulate_run(const Run& run, LinkModel& links, SimOptions options) {
  options.comm = &run.comm;
  options.overlap = run.config.pipeline.overlap;
  return simulate(run.schedule, run.costs, links, options);
}

std::unique_ptr<LinkModel> make_links(const Config& config, int devices) {
  return make_topology_links(config, devices);
}

std::vector<StageCost> unit_time_costs(std::vector<StageCost> costs, int chunks) {
  // The papers' convention (Megatron-LM's interleaved figure, zero-bubble's ZB-V): a
  // stage split into v chunks does 1/v of the stage's work per chunk op, so a chunk's F
  // is 1/v of a slot and the whole schedule is compared at equal work per device.
  const std::int64_t v = std::max(1, chunks);
  const TimeNs op{TimeNs::from_ms(1.0).ns / v};
  for (StageCost& c : costs) {
    c.forward = op;
    c.backward = op + op;
    c.weight_grad = op;
    c.output = Bytes{};
    c.forward_comm = c.backward_comm = c.recompute = TimeNs{};  // a slot is all work: nothing inside it is told apart
  }
  return costs;
}

Run unit_time_run(Run run) {
  run.costs = unit_time_costs(std::move(run.costs), run.schedule.chunks);
  run.unit_time = true;
  const std::int64_t gpu_memory = run.config.cluster.gpu_memory_bytes;
  run.config.cluster = ClusterSpec{};  // no topology: every pair uses the free cluster.link
  run.config.cluster.gpu_memory_bytes = gpu_memory;
  run.config.link = LinkSpec{};
  return run;
}

}  // namespace ppsim
