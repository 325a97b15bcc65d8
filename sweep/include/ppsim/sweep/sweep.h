#pragma once
/// @file sweep.h
/// @brief `ppsim sweep`: a base config and a grid of overrides, run in parallel.
///
/// SWEEP.json:
/// ```json
/// { "base": "../experiments/gpt3-1.3b-dgx-a100.json",   // path (relative to this file) or an inline config
///   "grid": { "schedule": ["gpipe", "1f1b"], "stages": [2, 4, 8], "microbatches": [8, 16, 32],
///             "chunks": [1, 2], "micro_batch_size": [1, 2], "partition": ["uniform", "balanced"],
///             "recompute": ["none", "selective", "full"], "data_parallel": [1, 2] },
///   "output": { "csv": "sweep.csv", "json": "sweep.json", "vega": "sweep.vl.json" },  // optional
///   "top": 10 }                                                                     // optional
/// ```
/// Points are the cartesian product of the grid, numbered with the last axis varying
/// fastest. `--shard i/n` runs the points whose number is i mod n. Each point is the base
/// with its overrides applied by apply_overrides (overrides.h), as `ppsim run` applies
/// its flags.
#include <cstddef>
#include <cstdio>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/run/config.h"
#include "ppsim/run/overrides.h"

namespace ppsim {

/// @brief One grid axis: an override name and its values.
struct SweepAxis {
  std::string name;
  std::vector<nlohmann::json> values;
};

struct SweepSpec {
  std::string file;
  Config base;
  /// Transformer bases costed from a profile or roofline ("costs"): the base re-costed
  /// at each shard shape of the grid (micro_batch_size x tensor_parallel x
  /// sequence_parallel; the profile interpolates between measured sizes), or the reason
  /// it cannot be. Synthetic bases scale linearly with b instead.
  std::map<ShardShape, Config> base_by_shard;
  std::map<ShardShape, std::string> shard_error;
  /// Held fixed over the grid (0 = not): every point uses `gpus` GPUs (the data-parallel
  /// degree is derived as gpus / (tensor x pipeline) unless the grid gives it) and a
  /// global batch of `global_batch` samples (micro-batches m = global_batch / (b x d)).
  /// A point that cannot meet them is "not_applicable" with the reason.
  int gpus{0};
  std::int64_t global_batch{0};
  std::vector<SweepAxis> axes;
  /// Explicit points ({axis name: value} each), run instead of the grid's product when
  /// not empty: `ppsim compare` has one per schedule, each with the chunks it runs at.
  std::vector<nlohmann::json> points;
  std::string csv_path, json_path, vega_path;  ///< output paths from the file ("" = not given)
  int top{10};
  /// @brief Number of points (product of the axis sizes, or the explicit points).
  [[nodiscard]] std::size_t size() const;
  /// @brief The overrides of point `index`: {axis name: value}.
  [[nodiscard]] nlohmann::json overrides(std::size_t index) const;
};

/// @brief Names the grid accepts (in the order points vary, last fastest).
const std::vector<std::string>& sweep_axis_names();
/// @brief A grid name as given ("tensor", "pipeline", "data" are the short forms of
/// tensor_parallel, stages and data_parallel) in its canonical form; "" if unknown.
std::string canonical_axis_name(const std::string& name);

/// @brief The shard shape a point's overrides ask for (the base's where they say nothing).
ShardShape point_shard_shape(const SweepSpec& spec, const nlohmann::json& overrides);
/// @brief Costs the base once per shard shape the grid (or the explicit points) asks
/// for: base_by_shard, or shard_error with the reason. parse_sweep calls it.
void cost_shards(SweepSpec& spec);

/// @brief Applies the sweep's fixed gpus and global batch to a point's overrides (adds
/// data_parallel and microbatches); returns the reason when the point cannot meet them.
std::optional<std::string> apply_sweep_constraints(const SweepSpec& spec, nlohmann::json& overrides);

/// @brief Reads and validates a sweep file (and its base config); throws ConfigError.
SweepSpec load_sweep(const std::string& path);
/// @brief The same from a parsed document; `file` names it in messages and anchors
/// relative paths.
SweepSpec parse_sweep(const nlohmann::json& doc, const std::string& file);

/// @brief `ppsim compare` as a sweep: a schedule axis over `schedules` (registry names),
/// each point run at compare_chunks(schedule, base).
SweepSpec compare_sweep(const Config& base, const std::vector<std::string>& schedules);

/// @brief Chunks per device a schedule is compared at: one for single-chunk schedules;
/// for chunked ones the base's chunks when it asks for more than one, else the
/// schedule's own default (2 for interleaved), so a plain config still shows them.
int compare_chunks(const std::string& schedule, const Config& base);

struct SweepOptions {
  int jobs{0};             ///< threads; 0 = all cores
  int shard_index{0};
  int shard_count{1};
  bool per_device{false};  ///< keep per_device / per_stage in the JSON rows
  std::ostream* progress{nullptr};
};

/// @brief Threads a sweep of `points` points runs on (SweepOptions::jobs, else all cores).
int sweep_jobs(const SweepOptions& opt, std::size_t points);

/// @brief Estimated peak bytes of run_sweep (budget.h): its threads, each simulating the
/// largest shape a point can take, and the rows it keeps.
std::int64_t estimated_sweep_bytes(const SweepSpec& spec, const SweepOptions& opt);

/// @brief One point's outcome.
struct SweepRow {
  std::size_t point{0};
  std::string status;  ///< "ok", "oom", "not_applicable" or "error"
  std::string reason;  ///< why not ok
  nlohmann::json overrides;
  nlohmann::json report;  ///< the report JSON (null unless ok or oom)
};

/// @brief Runs the shard's points on `jobs` threads and hands each row to `on_row` in
/// point order as soon as it and every earlier point have finished: only rows that
/// finished out of order wait, so a sweep holds a few rows, not all. `on_row` is called
/// by one thread at a time; an exception it throws stops the sweep and is rethrown.
void run_sweep(const SweepSpec& spec, const SweepOptions& options, const std::function<void(SweepRow&&)>& on_row);
/// @brief The same, every row kept and returned in point order (compare, plan, tests).
std::vector<SweepRow> run_sweep(const SweepSpec& spec, const SweepOptions& options);

/// @brief The sweep CSV, one line per row as each row arrives. Its columns are known
/// before any point runs: point, status, reason, the axes, then every scalar field a
/// report can have (report_scalar_fields, views/report.h: nested objects flattened with
/// dots, numeric lists joined with spaces) not already there, in the report's own
/// (sorted) order. A field a row lacks is empty.
class SweepCsv {
 public:
  explicit SweepCsv(const SweepSpec& spec);
  [[nodiscard]] const std::vector<std::string>& columns() const { return columns_; }
  /// @brief The header line (with its newline).
  [[nodiscard]] std::string header() const;
  /// @brief One row's line (with its newline). A report field outside the columns is a
  /// bug in report_scalar_fields: std::logic_error.
  [[nodiscard]] std::string line(const SweepRow& row) const;

 private:
  std::vector<std::string> columns_;
  std::map<std::string, std::size_t> index_;
};

/// @brief The whole CSV of `rows`: SweepCsv's header and lines.
std::string sweep_csv(const SweepSpec& spec, const std::vector<SweepRow>& rows);

/// @brief The sweep JSON written as rows arrive: each row goes to an unnamed temporary
/// file (removed by the system however the process ends), and `finish` writes the
/// document, the counts first, byte for byte as `std::setw(1) << sweep_json(...)`.
class SweepJsonWriter {
 public:
  SweepJsonWriter(const SweepSpec& spec, const SweepOptions& options);
  SweepJsonWriter(const SweepJsonWriter&) = delete;
  SweepJsonWriter& operator=(const SweepJsonWriter&) = delete;
  ~SweepJsonWriter();
  void add(const SweepRow& row);
  /// @brief Writes the whole document (without a final newline). Throws OutputError.
  void finish(std::ostream& out);

 private:
  const SweepSpec& spec_;
  SweepOptions options_;
  std::FILE* spool_{nullptr};
  std::size_t rows_{0}, ok_{0}, oom_{0}, na_{0}, err_{0};
};

/// @brief What the chart (sweep_vega) and the best-points table read of a row: its
/// point, status and the report cut to the fields they show (no overrides, no reason),
/// which is all a streamed sweep keeps of a point (BENCHMARKS.md, "Memory per op").
SweepRow summary_row(SweepRow&& row);

/// @brief One CSV field (RFC 4180): quoted when it holds a comma, quote or newline.
std::string csv_field(const std::string& s);
/// @brief JSON document with the grid and every row.
nlohmann::json sweep_json(const SweepSpec& spec, const std::vector<SweepRow>& rows, const SweepOptions& options);
/// @brief Vega-Lite spec (data inline): bubble rate against m per schedule, and
/// throughput against peak memory (OOM points marked).
nlohmann::json sweep_vega(const SweepSpec& spec, const std::vector<SweepRow>& rows);
/// @brief Table of the `top` best points by samples/s among those that fit.
std::string format_best_points(const std::vector<SweepRow>& rows, int top);

/// @brief Parses "i/n" (0 <= i < n); throws ConfigError naming --shard.
void parse_shard(const std::string& text, int& index, int& count);

}  // namespace ppsim
