#pragma once
/// @file plan.h
/// @brief `ppsim plan`: "with N GPUs and a global batch of B samples, which shape
/// (tensor x pipeline x data, chunks, micro-batch size, schedule, recompute, ZeRO) is
/// fastest and fits?" A sweep over those axes with the GPUs and the global batch held
/// fixed (apply_sweep_constraints), ranked by iteration time among the points that fit.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/run/config.h"
#include "ppsim/sweep/sweep.h"

namespace ppsim {

/// @brief The question and the candidates (empty lists take the defaults below).
struct PlanOptions {
  int gpus{0};
  std::int64_t global_batch{0};
  std::vector<int> tensor;               ///< default 1, 2, 4, 8 (within a node, dividing the GPUs);
                                         ///< the config's own t for explicit layers (no re-costing)
  std::vector<int> pipeline;             ///< default every divisor of the GPUs up to the layer count
  std::vector<int> micro_batch;          ///< default 1, 2, 4
  std::vector<std::string> schedules;    ///< default 1f1b, interleaved, zb-h1
  std::vector<int> chunks;               ///< chunks for multi-chunk schedules; default 2
  std::vector<std::string> recompute;    ///< default none, selective, full
  std::vector<nlohmann::json> zero;      ///< default 0, 1
  std::vector<bool> sequence_parallel;   ///< default false, true (true only with t > 1)
};

/// @brief The candidates as explicit sweep points (each with a balanced partition),
/// keeping only those that meet the fixed GPUs and global batch; throws ConfigError for
/// a question that cannot be asked (no GPUs, no global batch, no memory section).
SweepSpec plan_sweep(const Config& base, const PlanOptions& options);

/// @brief The rows that fit, fastest first (ties: less peak memory).
std::vector<const SweepRow*> rank_plan(const std::vector<SweepRow>& rows);

/// @brief The columns of a plan row, the one list the table, CSV and JSON use.
struct PlanColumn {
  std::string name;
  nlohmann::json (*value)(const nlohmann::json& report);
};
const std::vector<PlanColumn>& plan_columns();

/// @brief The ranked table (top rows) and why the best one wins: its bubble, exposed
/// data-parallel all-reduce, collectives and recompute against the runner-up.
std::string format_plan(const PlanOptions& options, const std::vector<SweepRow>& rows, int top);
/// @brief Every fitting row, ranked, as CSV (plan_columns) and as JSON.
std::string plan_csv(const std::vector<SweepRow>& rows);
nlohmann::json plan_json(const PlanOptions& options, const std::vector<SweepRow>& rows);

}  // namespace ppsim
