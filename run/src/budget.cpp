#include "ppsim/run/budget.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "ppsim/schedules/registry.h"

namespace ppsim {

namespace {

std::string gib(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

std::int64_t estimated_ops(const PipelineSpec& p) {
  const std::int64_t stages = std::int64_t{p.stages} * p.chunks;
  std::int64_t microbatches = p.microbatches;
  const ScheduleInfo* info = p.schedule_file.empty() ? find_schedule(p.schedule) : nullptr;
  if (info != nullptr && !info->synchronous) {
    const std::int64_t warm = std::max<std::int64_t>(1, (2 * std::int64_t{p.stages} + p.microbatches - 1) / p.microbatches);
    const std::int64_t iterations = p.iterations > 0 ? p.iterations : warm + 3;
    microbatches = p.microbatches * iterations + 2 * std::int64_t{p.stages};
  }
  return stages * microbatches * 3;
}

std::int64_t estimated_run_bytes(const PipelineSpec& p, const RunOutputs& o) {
  std::int64_t per_op = BytesPerOp::simulation;
  if (o.samples || o.timeline || o.vega || o.trace || o.render) per_op += BytesPerOp::samples;
  if (o.timeline) per_op += BytesPerOp::timeline;
  if (o.vega) per_op += BytesPerOp::vega;
  if (o.trace) per_op += BytesPerOp::trace;
  if (o.render) per_op += BytesPerOp::render;
  return estimated_ops(p) * per_op;
}

std::int64_t default_memory_budget() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return std::int64_t{8} << 30;  // unknown: 8 GiB
  return static_cast<std::int64_t>(pages) * page / 2;
}

std::int64_t parse_memory_size(const std::string& text, const std::string& option) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (const char* suffix : {"iB", "B"})
    if (unit.size() > 1 && unit.ends_with(suffix)) unit.resize(unit.size() - std::string(suffix).size());
  const std::string units = "KMGT";
  double scale = 1;
  if (unit.size() == 1 && units.find(static_cast<char>(std::toupper(unit[0]))) != std::string::npos)
    scale = std::pow(1024.0, 1 + static_cast<double>(units.find(static_cast<char>(std::toupper(unit[0])))));
  else if (!unit.empty() && unit != "B")
    used = 0;
  const double bytes = value * scale;
  if (used == 0 || !std::isfinite(bytes) || bytes < 1 || bytes > 9.2e18)
    throw ConfigError(option, "", "'" + text + "' is not a memory size (bytes, or a number with K, M, G or T, as in 16G)");
  return static_cast<std::int64_t>(bytes);
}

std::int64_t memory_budget(const std::string& max_memory) {
  return max_memory.empty() ? default_memory_budget() : parse_memory_size(max_memory, "--max-memory");
}

void check_memory_budget(const std::string& what, std::int64_t estimate, std::int64_t budget) {
  if (estimate <= budget) return;
  throw ConfigError(what, "", "needs about " + gib(static_cast<double>(estimate)) + " of memory, over the budget of " +
                                  gib(static_cast<double>(budget)) +
                                  " (half the machine's memory by default; raise it with --max-memory SIZE)");
}

}  // namespace ppsim
