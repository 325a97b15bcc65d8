#include "sweep_cmd.h"

#include <filesystem>
#include <iomanip>
#include <iostream>

#include "ppsim/run/budget.h"
#include "ppsim/views/files.h"
#include "ppsim/views/report.h"
#include "ppsim/sweep/sweep.h"

namespace ppsim::cli {

CLI::App* add_sweep_command(CLI::App& app, SweepArgs& a) {
  auto* cmd = app.add_subcommand("sweep",
                                 "Run a grid of overrides over a base config in parallel; write CSV, JSON and a "
                                 "Vega-Lite chart; print the best points that fit");
  cmd->add_option("sweep", a.sweep, "Sweep JSON file (base config + grid)")->required();
  cmd->add_option("--csv", a.csv, "Write the CSV to FILE (default: output.csv of the sweep, else STEM.csv)");
  cmd->add_option("--json", a.json, "Write the JSON to FILE (default: output.json of the sweep, else STEM.json)");
  cmd->add_option("--vega", a.vega, "Write a Vega-Lite spec (bubble rate vs m, throughput vs peak memory) to FILE");
  cmd->add_option("--jobs,-j", a.jobs, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--shard", a.shard, "Run only points i, i+n, i+2n, ... (i/n, 0 <= i < n) for a job array");
  cmd->add_option("--top", a.top, "How many best points to print (default: the sweep's top, else 10)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--per-device", a.per_device, "Keep per_device and per_stage lists in the JSON rows");
  cmd->add_flag("--quiet,-q", a.quiet, "No progress on stderr");
  cmd->add_option("--max-memory", a.max_memory,
                  "Refuse to start when the estimated peak memory exceeds SIZE (e.g. 16G; default: half the "
                  "machine's memory)");
  return cmd;
}

int cmd_sweep(const SweepArgs& a) {
  SweepOptions opt;
  if (!a.shard.empty()) parse_shard(a.shard, opt.shard_index, opt.shard_count);
  const SweepSpec spec = load_sweep(a.sweep);
  opt.jobs = a.jobs;
  opt.per_device = a.per_device;
  opt.progress = a.quiet ? nullptr : &std::cerr;
  const std::string stem = std::filesystem::path(a.sweep).stem().string() +
                           (opt.shard_count > 1 ? ".shard-" + std::to_string(opt.shard_index) + "-of-" +
                                                      std::to_string(opt.shard_count)
                                                : std::string());
  const std::string csv = !a.csv.empty() ? a.csv : !spec.csv_path.empty() ? spec.csv_path : stem + ".csv";
  const std::string json_path = !a.json.empty() ? a.json : !spec.json_path.empty() ? spec.json_path : stem + ".json";
  const std::string vega = !a.vega.empty() ? a.vega : spec.vega_path;
  // The outputs are checked before the points run and published together at the end.
  OutputSet outputs;
  outputs.add(csv, "--csv");
  outputs.add(json_path, "--json");
  outputs.add(vega, "--vega");
  check_memory_budget(a.sweep, estimated_sweep_bytes(spec, opt),
                      memory_budget(a.max_memory));
  // Each row goes to the CSV (and the JSON's spool) when its point and every earlier one
  // have finished; only what the chart and the table need of it is kept.
  const SweepCsv csv_lines(spec);
  SweepJsonWriter json_rows(spec, opt);
  std::vector<SweepRow> rows;
  outputs.write(csv, [&](std::ostream& out) {
    out << csv_lines.header();
    run_sweep(spec, opt, [&](SweepRow&& row) {
      out << csv_lines.line(row);
      if (!out) throw OutputError(csv + ": write failed");
      json_rows.add(row);
      rows.push_back(summary_row(std::move(row)));
    });
  });
  outputs.write(json_path, [&](std::ostream& out) {
    json_rows.finish(out);
    out << "\n";
  });
  if (!vega.empty()) outputs.write(vega, [&](std::ostream& out) { out << std::setw(1) << sweep_vega(spec, rows) << "\n"; });
  outputs.commit();
  std::cout << format_best_points(rows, a.top >= 0 ? a.top : spec.top);
  std::cout << "wrote " << csv << ", " << json_path << (vega.empty() ? "" : ", " + vega) << "\n";
  return 0;
}

}  // namespace ppsim::cli
