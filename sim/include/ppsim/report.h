#pragma once
/// @file report.h
/// @brief Views over one simulation: the report JSON (SPEC §8), the table, the timeline
/// JSON (SPEC §9), and atomic file output.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/config.h"
#include "ppsim/engine.h"
#include "ppsim/schedule.h"

namespace ppsim {

/// @brief A prepared run: config after overrides, its schedule and stage costs.
struct Run {
  Config config;
  Schedule schedule;
  std::vector<StageCost> costs;
};

/// @brief Builds the schedule and costs for a config (throws ConfigError/ScheduleError).
Run prepare_run(const Config& config);

/// @brief Link model the config describes.
std::unique_ptr<LinkModel> make_links(const Config& config, int devices);

struct Metrics;
struct CriticalPath;

/// @brief Report JSON (docs/formats.md): formats the run's Metrics.
nlohmann::json report_json(const Run& run, const Metrics& metrics);

/// @brief report_json(run, compute_metrics(run, result)).
nlohmann::json make_report(const Run& run, const SimResult& result);

/// @brief The critical path as report JSON.
nlohmann::json critical_path_json(const CriticalPath& path);

/// @brief critical_path_json(critical_path_of(result, max_steps)) (metrics.h).
nlohmann::json critical_path(const SimResult& result, std::size_t max_steps = 256);

/// @brief Human table for stdout.
std::string format_report_table(const nlohmann::json& report);

/// @brief Timeline JSON (SPEC §9): compute, send and recv events and memory samples.
nlohmann::json make_timeline(const Schedule& schedule, const SimResult& result);

/// @brief Thrown when an output file cannot be written.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief Writes every (path, content) pair to a temporary name, then renames them all;
/// on any failure removes the temporaries and throws OutputError. Creates parent folders.
void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace ppsim
