#pragma once
// `ppsim sweep`: registered by main.cpp, implemented in sweep_cmd.cpp.
#include <string>

#include <CLI/CLI.hpp>

namespace ppsim::cli {

struct SweepArgs {
  std::string sweep;
  std::string csv, json, vega, shard;
  std::string max_memory;
  int jobs{0};
  int top{-1};
  bool per_device{false};
  bool quiet{false};
};

/// Adds the `sweep` subcommand to `app`, filling `args`.
CLI::App* add_sweep_command(CLI::App& app, SweepArgs& args);

/// Runs it; returns the exit status (errors are thrown as in the other commands).
int cmd_sweep(const SweepArgs& args);

}  // namespace ppsim::cli
