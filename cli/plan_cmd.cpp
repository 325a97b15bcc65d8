#include "plan_cmd.h"

#include <chrono>
#include <iostream>

#include "ppsim/run/config.h"
#include "ppsim/sweep/plan.h"
#include "ppsim/views/files.h"

namespace ppsim::cli {

CLI::App* add_plan_command(CLI::App& app, PlanArgs& a) {
  auto* cmd = app.add_subcommand(
      "plan",
      "Which training shape is fastest and fits? Tries tensor x pipeline x data, chunks, micro-batch size, schedule, "
      "recompute and ZeRO for N GPUs and a fixed global batch; prints the ranked configurations that fit");
  cmd->add_option("config", a.config, "Config JSON file (the model, its costs, the cluster, the memory model)")->required();
  cmd->add_option("--gpus", a.gpus, "GPUs of the job (t x p x d)")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--global-batch", a.global_batch, "Samples per iteration (m = global batch / (b x d))")
      ->required()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tensor", a.tensor, "Tensor-parallel degrees to try (default 1,2,4,8 within a node)")->delimiter(',');
  cmd->add_option("--pipeline", a.pipeline, "Pipeline stages to try (default every divisor of the GPUs)")->delimiter(',');
  cmd->add_option("--micro-batch-sizes", a.micro_batch, "Micro-batch sizes to try (default 1,2,4)")->delimiter(',');
  cmd->add_option("--schedules", a.schedules, "Schedules to try (default 1f1b,interleaved,zb-h1)")->delimiter(',');
  cmd->add_option("--chunks", a.chunks, "Chunks for multi-chunk schedules (default 2)")->delimiter(',');
  cmd->add_option("--recompute", a.recompute, "Recompute modes to try (default none,selective,full)")->delimiter(',');
  cmd->add_option("--zero", a.zero, "ZeRO stages to try: 0,1,2,3,distributed (default 0,1)")->delimiter(',');
  cmd->add_option("--sequence-parallel", a.sequence_parallel, "on, off or both (default both; on needs t > 1)")
      ->check(CLI::IsMember({"on", "off", "both"}));
  cmd->add_option("--csv", a.csv, "Write every fitting configuration, ranked, as CSV to FILE");
  cmd->add_option("--json", a.json, "Write the ranked configurations and why the others were not chosen as JSON to FILE");
  cmd->add_option("--top", a.top, "Rows of the table (default 10)")->check(CLI::PositiveNumber);
  cmd->add_option("--jobs,-j", a.jobs, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--quiet,-q", a.quiet, "No progress on stderr");
  return cmd;
}

int cmd_plan(const PlanArgs& a) {
  PlanOptions o;
  o.gpus = a.gpus;
  o.global_batch = a.global_batch;
  o.tensor = a.tensor;
  o.pipeline = a.pipeline;
  o.micro_batch = a.micro_batch;
  o.chunks = a.chunks;
  o.schedules = a.schedules;
  o.recompute = a.recompute;
  for (const std::string& z : a.zero) {
    if (z == "distributed") o.zero.emplace_back(z);
    else if (z == "0" || z == "1" || z == "2" || z == "3") o.zero.emplace_back(std::stoi(z));
    else throw ConfigError("ppsim plan", "--zero", "must list 0, 1, 2, 3 or distributed (got '" + z + "')");
  }
  for (const std::string& r : a.recompute)
    if (r != "none" && r != "selective" && r != "full")
      throw ConfigError("ppsim plan", "--recompute", "must list none, selective or full (got '" + r + "')");
  if (a.sequence_parallel == "on") o.sequence_parallel = {true};
  if (a.sequence_parallel == "off") o.sequence_parallel = {false};
  const Config base = load_config(a.config);
  const SweepSpec spec = plan_sweep(base, o);
  SweepOptions opt;
  opt.jobs = a.jobs;
  opt.progress = a.quiet ? nullptr : &std::cerr;
  const auto rows = run_sweep(spec, opt);
  std::vector<std::pair<std::string, std::string>> files;
  if (!a.csv.empty()) files.emplace_back(a.csv, plan_csv(rows));
  if (!a.json.empty()) files.emplace_back(a.json, plan_json(o, rows).dump(1) + "\n");
  write_files_atomically(files);
  std::cout << format_plan(o, rows, a.top);
  return 0;
}

}  // namespace ppsim::cli
