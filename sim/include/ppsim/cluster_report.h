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
struct Metrics;

/// @brief Adds `partition`, `memory`, `fits`, `oom`, `data_parallel` and `cluster` to a
/// report, formatting the run's Metrics.
void add_cluster_report(nlohmann::json& report, const Run& run, const Metrics& metrics);

/// @brief Table lines for those fields (empty when there is nothing to say).
std::string format_cluster_lines(const nlohmann::json& report);

}  // namespace ppsim
