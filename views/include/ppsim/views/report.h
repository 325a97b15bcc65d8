#pragma once
/// @file report.h
/// @brief The report JSON and the table `ppsim run` prints (docs/formats.md).
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/run/run.h"
#include "ppsim/engine/engine.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

struct Metrics;
struct CriticalPath;

/// @brief Report JSON (docs/formats.md): formats the run's Metrics.
nlohmann::json report_json(const Run& run, const Metrics& metrics);

/// @brief report_json(run, compute_metrics(run, result)).
nlohmann::json make_report(const Run& run, const SimResult& result);

/// @brief The scalar fields (and lists of numbers) a report can have, whatever the run:
/// nested members as "object.member", in the JSON's own (sorted) order. The sweep CSV's
/// columns come from it before any point runs (SweepCsv, sweep.h).
const std::vector<std::string>& report_scalar_fields();

/// @brief The critical path as report JSON.
nlohmann::json critical_path_json(const CriticalPath& path);

/// @brief critical_path_json(critical_path_of(result, max_steps)) (metrics.h).
nlohmann::json critical_path(const SimResult& result, std::size_t max_steps = 256);

/// @brief Human table for stdout.
std::string format_report_table(const nlohmann::json& report);

}  // namespace ppsim
