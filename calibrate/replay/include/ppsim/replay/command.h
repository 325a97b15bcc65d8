#pragma once
/// @file command.h
/// @brief `ppsim-calibrate replay CONFIG ...` (docs/cli.md): flags -> replay_run,
/// simulate_run, compare, and the outputs.
#include <string>

#include <CLI/CLI.hpp>

namespace ppsim::replay {

struct CommandArgs {
  std::string config;
  std::string backend{"cpu"};       ///< cpu (a thread per device) or cuda
  std::string devices{"partitions"};  ///< cuda: gpus (one per stage) or partitions (SM partitions of GPU 0)
  std::string schedule;
  int stages{0};
  int microbatches{0};
  int chunks{0};
  int warmup{1};
  int iterations{3};
  std::string timeline;      ///< measured timeline
  std::string sim_timeline;  ///< simulated timeline of the same run
  std::string compare;       ///< comparison JSON
  std::string svg, png, pdf, vega;  ///< the side-by-side figure
  std::string width{"page"};
};

CLI::App* add_replay_command(CLI::App& app, CommandArgs& a);
/// @brief Runs the command; prints the comparison table. Exit status 0, 2 on bad input
/// (one line `ppsim-calibrate: error: FILE: path: problem`), 1 on an internal error.
int run_replay_command(const CommandArgs& a);

}  // namespace ppsim::replay
