#pragma once
/// @file budget.h
/// @brief The memory budget, checked before any work starts: from the shape alone, an
/// estimate of a command's peak memory, refused (ConfigError, exit 2) over the budget.
/// One estimate for run, compare and sweep (docs/cli.md, "Memory budget").
#include <cstdint>
#include <string>

#include "ppsim/run/config.h"

namespace ppsim {

/// @brief What a run keeps besides the simulation itself.
struct RunOutputs {
  bool samples{false};   ///< memory samples (timeline, trace, figures, a memory limit)
  bool timeline{false};  ///< --timeline
  bool vega{false};      ///< --vega or --html (the Gantt spec, streamed)
  bool trace{false};     ///< --trace
  bool render{false};    ///< --svg/--png/--pdf: Node renders the whole spec at once
};

/// @brief Peak bytes per op, measured (BENCHMARKS.md, "Memory per op"): the schedule,
/// op graph, engine and result with the report, then what each output adds.
struct BytesPerOp {
  static constexpr std::int64_t simulation = 130;
  static constexpr std::int64_t samples = 35;
  static constexpr std::int64_t timeline = 40;   // streamed to its file: 35 B/op measured (hard-out, BENCHMARKS.md)
  static constexpr std::int64_t vega = 40;       // streamed: 37 B/op measured (was 9,517 whole)
  static constexpr std::int64_t trace = 45;      // streamed: 38 B/op measured
  /// The renderer (node tools/render.mjs, a child process running beside ppsim) parses the
  /// whole spec and builds Vega's scene graph: 42,687 B/op measured, not streamable.
  static constexpr std::int64_t render = 43000;
};
/// @brief Bytes a sweep keeps per point, measured likewise: rows stream to the CSV and to
/// the JSON's spool file, so only the summary the chart and the best-points table read
/// stays (summary_row, sweep.h): 2,116 B measured (was 17,560 with every row held).
inline constexpr std::int64_t kSweepBytesPerPoint = 2200;
/// @brief Fixed cost of a process (code, allocator, the config).
inline constexpr std::int64_t kBaseBytes = 64ll << 20;

/// @brief Upper bound on the ops of a config's schedule: 3 per stage and micro-batch
/// (forward, backward, weight gradient when split); an asynchronous schedule lays out its
/// iterations and a tail of 2p micro-batches (pipedream.cpp). check_pipeline's op limit
/// and the memory estimate both use it.
std::int64_t estimated_ops(const PipelineSpec& pipeline);

/// @brief Estimated peak bytes of simulating a pipeline shape with `outputs`, without
/// kBaseBytes (a sweep holds several at once).
std::int64_t estimated_run_bytes(const PipelineSpec& pipeline, const RunOutputs& outputs);

/// @brief The default budget: half the machine's physical memory.
std::int64_t default_memory_budget();

/// @brief Parses a --max-memory SIZE: bytes, or a number with K, M, G, T (powers of 1024,
/// optionally followed by "iB" or "B"). Throws ConfigError naming `option`.
std::int64_t parse_memory_size(const std::string& text, const std::string& option);

/// @brief The budget a --max-memory option gives: parse_memory_size of it, else
/// default_memory_budget when it is empty.
std::int64_t memory_budget(const std::string& max_memory);

/// @brief Throws ConfigError("WHAT: needs about N GiB ..., over the budget of B GiB (raise
/// it with --max-memory SIZE)") when `estimate` exceeds `budget`.
void check_memory_budget(const std::string& what, std::int64_t estimate, std::int64_t budget);

}  // namespace ppsim
