// ppsim-calibrate replay: flags -> library calls, nothing else.
#include "ppsim/replay/command.h"

#include <iostream>

#include "ppsim/metrics/metrics.h"
#include "ppsim/replay/replay.h"
#include "ppsim/run/overrides.h"
#include "ppsim/run/transformer.h"
#include "ppsim/views/files.h"
#include "ppsim/views/timeline.h"
#include "ppsim/views/vega.h"

namespace ppsim::replay {

CLI::App* add_replay_command(CLI::App& app, CommandArgs& a) {
  auto* c = app.add_subcommand("replay", "run a config's schedule for real (one thread per device on this CPU) and "
                                         "compare it with its simulation");
  c->add_option("config", a.config, "config JSON (a transformer costed from a profile)")->required();
  c->add_option("--backend", a.backend, "cpu (a thread per device) or cuda")->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  c->add_option("--devices", a.devices, "cuda: gpus (one GPU per stage) or partitions (GPU 0 split into p SM "
                                        "partitions by green contexts)")->capture_default_str()
      ->check(CLI::IsMember({"gpus", "partitions"}));
  c->add_option("--schedule", a.schedule, "schedule name (overrides pipeline.schedule)");
  c->add_option("--stages", a.stages, "pipeline stages p (overrides pipeline.stages)")->check(CLI::PositiveNumber);
  c->add_option("--microbatches", a.microbatches, "micro-batches m (overrides pipeline.microbatches)")->check(CLI::PositiveNumber);
  c->add_option("--chunks", a.chunks, "chunks per device v (overrides pipeline.chunks)")->check(CLI::PositiveNumber);
  c->add_option("--warmup", a.warmup, "whole iterations run first and discarded")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--iterations", a.iterations, "measured iterations (the median one is kept)")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--timeline", a.timeline, "measured timeline (ppsim.timeline/1)");
  c->add_option("--sim-timeline", a.sim_timeline, "simulated timeline of the same run");
  c->add_option("--compare", a.compare, "comparison JSON (ppsim.replay_comparison/1)");
  c->add_option("--vega", a.vega, "side-by-side figure as a Vega-Lite spec");
  c->add_option("--svg", a.svg, "side-by-side figure, SVG");
  c->add_option("--png", a.png, "side-by-side figure, PNG");
  c->add_option("--pdf", a.pdf, "side-by-side figure, PDF");
  c->add_option("--width", a.width, "figure width: column, page or a length (5in, 12cm)")->capture_default_str();
  return c;
}

namespace {

cal::Dtype transformer_dtype(const Run& run) {
  const auto t = transformer_spec(run.config);
  return t ? t->dtype : cal::Dtype::bf16;  // replay_run refuses a config without one
}

ConfigOverrides overrides_of(const CommandArgs& a) {
  ConfigOverrides o;
  if (!a.schedule.empty()) o.schedule = a.schedule;
  if (a.stages > 0) o.stages = a.stages;
  if (a.microbatches > 0) o.microbatches = a.microbatches;
  if (a.chunks > 0) o.chunks = a.chunks;
  return o;
}

int replay_outputs(const CommandArgs& a) {
  OutputSet outputs;
  const std::pair<const std::string*, const char*> declared[] = {
      {&a.timeline, "--timeline"}, {&a.sim_timeline, "--sim-timeline"}, {&a.compare, "--compare"},
      {&a.vega, "--vega"}, {&a.svg, "--svg"}, {&a.png, "--png"}, {&a.pdf, "--pdf"}};
  for (const auto& [path, flag] : declared) outputs.add(*path, flag);
  const auto width = print_width_in(a.width);
  if (!width) throw ConfigError("--width", "", "'" + a.width + "' is not column, page or a length such as 5in, 12cm");
  const Run run = prepare_run(load_config_with_overrides(a.config, overrides_of(a)));
  auto links = make_links(run.config, run.schedule.devices);
  const SimResult sim = simulate_run(run, *links, SimOptions{true});
  auto executor = a.backend == "cpu" ? make_cpu_executor(run.schedule.devices)
                                     : make_cuda_executor(run.schedule.devices, a.devices == "partitions",
                                                          transformer_dtype(run));
  const Replay rep = replay_run(run, *executor, ReplayOptions{a.warmup, a.iterations});
  const Comparison cmp = compare(run.schedule, sim, rep);
  if (!a.timeline.empty())
    outputs.write(a.timeline, [&](std::ostream& out) { write_timeline(out, run.schedule, rep.measured), out << "\n"; });
  if (!a.sim_timeline.empty())
    outputs.write(a.sim_timeline, [&](std::ostream& out) { write_timeline(out, run.schedule, sim), out << "\n"; });
  if (!a.compare.empty()) outputs.write(a.compare, comparison_json(cmp, rep).dump(2) + "\n");
  if (!a.vega.empty() || !a.svg.empty() || !a.png.empty() || !a.pdf.empty()) {
    VegaOptions o;
    o.width_in = *width;
    const nlohmann::json spec = vega_pair_spec(run.schedule, {{"simulated", &sim}, {"measured (replay)", &rep.measured}}, o);
    if (!a.vega.empty()) outputs.write(a.vega, spec.dump() + "\n");
    const SpecWriter write_spec = [&](std::ostream& out) { out << spec.dump(); };
    for (const auto& [path, bytes] : render_vega_files(write_spec, RenderTargets{a.svg, a.png, a.pdf}))
      outputs.write(path, bytes);
  }
  outputs.commit();
  std::cout << "replay of " << run.schedule.name << " (p=" << run.schedule.devices << ", m=" << run.schedule.microbatches
            << ", v=" << run.schedule.chunks << ") on " << executor->backend(0).device_info().name
            << (a.backend == "cuda" ? (a.devices == "partitions" ? " (SM partitions)" : " (one GPU per stage)") : "") << ", "
            << a.iterations << " measured iterations after " << a.warmup << " warm-up\n"
            << comparison_table(cmp);
  return 0;
}

}  // namespace

int run_replay_command(const CommandArgs& a) {
  try {
    return replay_outputs(a);
  } catch (const ReplayError& e) {
    std::cerr << "ppsim-calibrate: error: " << a.config << ": " << e.what() << std::endl;
  } catch (const ConfigError& e) {
    std::cerr << "ppsim-calibrate: error: " << e.what() << std::endl;
  } catch (const ScheduleError& e) {
    std::cerr << "ppsim-calibrate: error: " << a.config << ": " << e.what() << std::endl;
  } catch (const OutputError& e) {
    std::cerr << "ppsim-calibrate: error: " << e.what() << std::endl;
  } catch (const cal::NoDeviceError& e) {
    std::cerr << "ppsim-calibrate: error: " << e.what() << std::endl;
  }
  return 2;
}

}  // namespace ppsim::replay
