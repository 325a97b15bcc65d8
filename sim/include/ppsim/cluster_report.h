#pragma once
/// @file cluster_report.h
/// @brief Report fields for partitioning, memory (OOM) and data parallelism, and their
/// table lines. make_report and format_report_table call these.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/engine.h"
#include "ppsim/schedule.h"

namespace ppsim {

struct Run;

/// @brief Adds `partition`, `memory`, `fits`, `oom`, `data_parallel` and per-stage
/// layer/time/memory fields to a report, and folds the exposed data-parallel all-reduce
/// into the iteration time and every figure derived from it (throughput, MFU, bubbles).
void add_cluster_report(nlohmann::json& report, const Run& run, const SimResult& result);

/// @brief Table lines for those fields (empty when there is nothing to say).
std::string format_cluster_lines(const nlohmann::json& report);

/// @brief Most micro-batches each model stage stashes at once, from the op order alone
/// (a device runs its list in order, so this does not depend on timing).
std::vector<int> stage_inflight_peaks(const Schedule& schedule);

}  // namespace ppsim
