// ppsim: the command-line front end. Every error is one line on stderr; exit status 0 on
// success, 2 on bad input, 1 on an internal error.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>

#include "ppsim/config.h"
#include "ppsim/engine.h"
#include "ppsim/registry.h"
#include "ppsim/report.h"
#include "ppsim/user_schedule.h"
#include "sweep_cmd.h"
#include "ppsim/trace.h"
#include "ppsim/vega.h"

namespace {

using namespace ppsim;
using nlohmann::json;

/// Command-line overrides of the config's pipeline shape.
struct Overrides {
  std::string schedule;
  int stages{0};
  int microbatches{0};
  int chunks{0};
  std::string schedule_file;
};

void add_override_options(CLI::App* cmd, Overrides& o, bool with_schedule) {
  if (with_schedule) {
    auto* name = cmd->add_option("--schedule", o.schedule, "Schedule name (overrides pipeline.schedule)");
    cmd->add_option("--schedule-file", o.schedule_file, "User schedule JSON (per-device token lists); fixes p, m, v")
        ->check(CLI::ExistingFile)
        ->excludes(name);
  }
  cmd->add_option("--stages", o.stages, "Pipeline stages p (overrides pipeline.stages)")->check(CLI::PositiveNumber);
  cmd->add_option("--microbatches", o.microbatches, "Micro-batches m (overrides pipeline.microbatches)")->check(CLI::PositiveNumber);
  cmd->add_option("--chunks", o.chunks, "Chunks per device v (overrides pipeline.chunks)")->check(CLI::PositiveNumber);
}

Config load_with_overrides(const std::string& path, Overrides o) {
  Config c = load_config(path);
  if (!o.schedule_file.empty()) {
    // The user schedule fixes the pipeline shape.
    const Schedule user = load_user_schedule(o.schedule_file);
    c.pipeline.schedule = user.name;
    c.pipeline.schedule_file = o.schedule_file;
    o.stages = user.devices;
    o.microbatches = user.microbatches;
    o.chunks = user.chunks;
  }
  if (!o.schedule.empty()) c.pipeline.schedule = o.schedule;
  if (o.stages > 0) {
    // Keep the replica count when only the stage count changes on the command line.
    if (c.devices == c.pipeline.stages) c.devices = o.stages;
    c.pipeline.stages = o.stages;
  }
  if (o.microbatches > 0) c.pipeline.microbatches = o.microbatches;
  if (o.chunks > 0) c.pipeline.chunks = o.chunks;
  resolve_devices(c);  // stages x parallel.data_parallel, or the whole cluster
  check_pipeline(c);
  return c;
}

/// A user schedule that deadlocks (a cycle of waits) is bad input (exit 2) naming its file;
/// a built-in one is our bug (exit 1).
SimResult simulate_checked(const Run& run, LinkModel& links, const SimOptions& options) {
  try {
    return simulate(run.schedule, run.costs, links, options);
  } catch (const DeadlockError& e) {
    if (run.config.pipeline.schedule_file.empty()) throw;
    throw ScheduleError(run.config.pipeline.schedule_file + ": " + e.what());
  } catch (const ScheduleError& e) {
    if (run.config.pipeline.schedule_file.empty()) throw;
    throw ScheduleError(run.config.pipeline.schedule_file + ": " + e.what());
  }
}

struct RunArgs {
  std::string config;
  Overrides overrides;
  bool json_out{false};
  std::string report, timeline;
  std::string vega, trace, svg, png, pdf;
  bool unit_time{false};
};

int cmd_run(const RunArgs& a) {
  const Config config = load_with_overrides(a.config, a.overrides);
  Run run = prepare_run(config);
  if (a.unit_time) {
    run.costs = unit_time_costs(std::move(run.costs));
    run.config.link = LinkSpec{};  // textbook figures: communication is free
  }
  auto links = make_links(run.config, run.schedule.devices);
  const SimResult result = simulate_checked(run, *links, SimOptions{});
  json report = make_report(run, result);
  report["critical_path"] = critical_path(result);
  std::vector<std::pair<std::string, std::string>> files;
  if (!a.report.empty()) files.emplace_back(a.report, report.dump(2) + "\n");
  if (!a.timeline.empty()) files.emplace_back(a.timeline, make_timeline(run.schedule, result).dump() + "\n");
  json vega;
  if (!a.vega.empty() || !a.svg.empty() || !a.png.empty() || !a.pdf.empty()) {
    VegaOptions options;
    options.unit_time = a.unit_time;
    options.iteration_time_ms = report["iteration_time_ms"].get<double>();
    options.bubble_rate = report["bubble_rate"].get<double>();
    vega = vega_spec(run.schedule, result, options);
  }
  if (!a.vega.empty()) files.emplace_back(a.vega, vega.dump() + "\n");
  if (!a.trace.empty()) files.emplace_back(a.trace, chrome_trace(run.schedule, result).dump() + "\n");
  write_files_atomically(files);
  render_vega(vega, RenderTargets{a.svg, a.png, a.pdf});
  if (a.json_out) std::cout << report.dump(2) << "\n";
  else std::cout << format_report_table(report);
  return 0;
}

struct CompareArgs {
  std::string config;
  Overrides overrides;
  std::string schedules;
  bool json_out{false};
};

/// Chunks per device a schedule is compared at: one for single-stage schedules; for
/// chunked ones the config's chunks when it asks for more than one, else the schedule's
/// own default (2 for interleaved), so a plain config still shows them.
int compare_chunks(const ScheduleInfo& info, const Config& base) {
  if (info.chunks <= 1) return 1;
  return base.pipeline.chunks > 1 ? base.pipeline.chunks : info.chunks;
}

int cmd_compare(const CompareArgs& a) {
  const Config base = load_with_overrides(a.config, a.overrides);
  std::vector<const ScheduleInfo*> infos;
  if (!a.schedules.empty()) {
    std::stringstream ss(a.schedules);
    for (std::string n; std::getline(ss, n, ',');) {
      const ScheduleInfo* info = find_schedule(n);
      if (info == nullptr)
        throw ConfigError("--schedules", "", "unknown schedule '" + n + "' (known: " + known_schedule_names() + ")");
      if (std::find(infos.begin(), infos.end(), info) == infos.end()) infos.push_back(info);
    }
  } else {
    for (const auto& info : all_schedules()) infos.push_back(&info);
  }
  json rows = json::array(), skipped = json::array();
  for (const ScheduleInfo* info : infos) {
    Config c = base;
    c.pipeline.schedule = info->name;
    c.pipeline.chunks = compare_chunks(*info, base);
    try {
      check_pipeline(c);
      const Run run = prepare_run(c);
      auto links = make_links(c, run.schedule.devices);
      const SimResult result = simulate(run.schedule, run.costs, *links, SimOptions{false});
      const json rep = make_report(run, result);
      int versions = 0;
      for (const auto& d : rep["per_device"]) versions = std::max(versions, d["weight_versions"].get<int>());
      json row = {{"schedule", info->name},
                  {"chunks", c.pipeline.chunks},
                  {"iteration_time_ms", rep["iteration_time_ms"]},
                  {"bubble_rate", rep["bubble_rate"]},
                  {"peak_memory_bytes", rep["peak_memory_bytes"]},
                  {"weight_versions", versions},
                  {"synchronous", rep["synchronous"]},
                  {"samples_per_s", rep["samples_per_s"]},
                  {"measured_window", rep["measured_window"]}};
      if (rep.contains("note")) row["note"] = rep["note"];
      // With a memory limit: "yes", or "OOM" with the excess (the report's oom object).
      if (rep.contains("fits")) row["fits"] = rep["fits"];
      if (rep.contains("oom")) row["oom"] = rep["oom"];
      rows.push_back(std::move(row));
    } catch (const ScheduleError& e) {
      skipped.push_back({{"schedule", info->name}, {"reason", e.what()}});
    } catch (const ConfigError& e) {
      skipped.push_back({{"schedule", info->name}, {"reason", e.what()}});
    }
  }
  // Ties keep registry order.
  std::stable_sort(rows.begin(), rows.end(), [](const json& x, const json& y) {
    return x["iteration_time_ms"].get<double>() < y["iteration_time_ms"].get<double>();
  });
  if (a.json_out) {
    std::cout << json{{"config", base.file},
                      {"stages", base.pipeline.stages},
                      {"microbatches", base.pipeline.microbatches},
                      {"devices", base.devices},
                      {"results", rows},
                      {"not_applicable", skipped}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << base.file << ": stages " << base.pipeline.stages << ", micro-batches " << base.pipeline.microbatches
            << ", devices " << base.devices << "; sorted by iteration time\n";
  std::cout << std::left << std::setw(13) << "schedule" << std::right << std::setw(7) << "chunks" << std::setw(14)
            << "iteration_ms" << std::setw(9) << "bubble" << std::setw(14) << "peak_mem_GiB" << std::setw(10)
            << "versions" << std::setw(6) << "sync" << std::setw(6) << "fits" << "\n";
  for (const auto& r : rows) {
    const bool sync = r["synchronous"].get<bool>();
    std::cout << std::left << std::setw(13) << r["schedule"].get<std::string>() << std::right << std::setw(7)
              << r["chunks"].get<int>() << std::fixed << std::setprecision(3) << std::setw(14)
              << r["iteration_time_ms"].get<double>() << std::setprecision(4) << std::setw(9)
              << r["bubble_rate"].get<double>() << std::setprecision(3) << std::setw(14)
              << static_cast<double>(r["peak_memory_bytes"].get<std::int64_t>()) / (1024.0 * 1024.0 * 1024.0)
              << std::setw(10) << r["weight_versions"].get<int>() << std::setw(6) << (sync ? "yes" : "no")
              << std::setw(6) << (!r.contains("fits") ? "-" : r["fits"].get<bool>() ? "yes" : "OOM")
              << (sync ? "" : "  (steady state per iteration)") << "\n";
  }
  if (!skipped.empty()) std::cout << "\nnot applicable:\n";
  for (const auto& s : skipped)
    std::cout << "  " << std::left << std::setw(12) << s["schedule"].get<std::string>() << s["reason"].get<std::string>()
              << "\n";
  return 0;
}

struct ScheduleArgs {
  std::string schedule;
  int stages{0}, microbatches{0}, chunks{1};
  bool list{false};
};

int cmd_schedule(const ScheduleArgs& a) {
  if (a.list) {
    for (const auto& info : all_schedules()) {
      std::cout << std::left << std::setw(12) << info.name;
      std::string aliases;
      for (const auto& al : info.aliases) aliases += (aliases.empty() ? "" : ", ") + al;
      std::cout << std::setw(28) << (aliases.empty() ? "" : "[" + aliases + "]") << info.description << "\n";
    }
    return 0;
  }
  if (a.schedule.empty() || a.stages <= 0 || a.microbatches <= 0)
    throw ConfigError("ppsim schedule", "", "needs --schedule, --stages and --microbatches (or --list)");
  if (static_cast<std::int64_t>(a.stages) * a.chunks * a.microbatches * 3 > kMaxOps)
    throw ConfigError("ppsim schedule", "", "shape too large (over " + std::to_string(kMaxOps) + " ops)");
  const Schedule s = make_schedule(a.schedule, ScheduleParams{a.stages, a.microbatches, a.chunks, 0});
  for (int d = 0; d < s.devices; ++d) {
    std::cout << "device " << d << ":";
    for (const Op& op : s.device_ops[d]) std::cout << ' ' << op_token(op);
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ppsim: discrete-event simulator of pipeline-parallel training schedules"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ppsim 0.1.0");

  RunArgs run_args;
  auto* run = app.add_subcommand("run", "Simulate one config; print a table or the report JSON");
  run->add_option("config", run_args.config, "Config JSON file")->required();
  add_override_options(run, run_args.overrides, true);
  run->add_flag("--json", run_args.json_out, "Print the report JSON instead of the table");
  run->add_option("--report", run_args.report, "Write the report JSON to FILE");
  run->add_option("--timeline", run_args.timeline, "Write the timeline JSON to FILE");
  run->add_option("--vega", run_args.vega, "Write the Vega-Lite Gantt spec (data inline) to FILE");
  run->add_option("--trace", run_args.trace, "Write a Chrome-trace/Perfetto JSON to FILE");
  run->add_option("--svg", run_args.svg, "Render the Gantt chart to an SVG FILE (needs tools/setup.sh)");
  run->add_option("--png", run_args.png, "Render the Gantt chart to a PNG FILE (needs tools/setup.sh)");
  run->add_option("--pdf", run_args.pdf, "Render the Gantt chart to a PDF FILE (needs tools/setup.sh)");
  run->add_flag("--unit-time", run_args.unit_time,
                "Textbook timing: F one slot, backward two (split: B one, W one), free links");

  CompareArgs cmp_args;
  auto* compare = app.add_subcommand("compare", "Run every applicable schedule on one config, sorted by iteration time");
  compare->add_option("config", cmp_args.config, "Config JSON file")->required();
  add_override_options(compare, cmp_args.overrides, false);
  compare->add_option("--schedules", cmp_args.schedules, "Comma-separated schedules to compare (default: all)");
  compare->add_flag("--json", cmp_args.json_out, "Print JSON instead of the table");

  ppsim::cli::SweepArgs sweep_args;
  auto* sweep = ppsim::cli::add_sweep_command(app, sweep_args);

  ScheduleArgs sch_args;
  auto* sched = app.add_subcommand("schedule", "Print each device's op order");
  sched->add_option("--schedule", sch_args.schedule, "Schedule name");
  sched->add_option("--stages", sch_args.stages, "Pipeline stages p")->check(CLI::PositiveNumber);
  sched->add_option("--microbatches", sch_args.microbatches, "Micro-batches m")->check(CLI::PositiveNumber);
  sched->add_option("--chunks", sch_args.chunks, "Chunks per device v")->check(CLI::PositiveNumber);
  sched->add_flag("--list", sch_args.list, "List the known schedules");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    if (*run) return cmd_run(run_args);
    if (*compare) return cmd_compare(cmp_args);
    if (*sched) return cmd_schedule(sch_args);
    if (*sweep) return ppsim::cli::cmd_sweep(sweep_args);
  } catch (const ConfigError& e) {
    std::cerr << "ppsim: error: " << e.what() << "\n";
    return 2;
  } catch (const ScheduleError& e) {
    std::cerr << "ppsim: error: " << e.what() << "\n";
    return 2;
  } catch (const OutputError& e) {
    std::cerr << "ppsim: error: " << e.what() << "\n";
    return 2;
  } catch (const DeadlockError& e) {
    std::cerr << "ppsim: internal error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ppsim: internal error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
