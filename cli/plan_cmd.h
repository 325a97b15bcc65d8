#pragma once
// `ppsim plan`: registered by main.cpp, implemented in plan_cmd.cpp.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace ppsim::cli {

struct PlanArgs {
  std::string config;
  int gpus{0};
  long long global_batch{0};
  std::vector<int> tensor, pipeline, micro_batch, chunks;
  std::vector<std::string> schedules, recompute, zero;
  std::string sequence_parallel;  ///< "", "on", "off", "both"
  std::string csv, json;
  int jobs{0};
  int top{10};
  bool quiet{false};
};

/// Adds the `plan` subcommand to `app`, filling `args`.
CLI::App* add_plan_command(CLI::App& app, PlanArgs& args);

/// Runs it; returns the exit status (errors are thrown as in the other commands).
int cmd_plan(const PlanArgs& args);

}  // namespace ppsim::cli
