#pragma once
/// @file vega.h
/// @brief Vega-Lite v5 Gantt chart of a simulated run: a view over SimResult.
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/engine/engine.h"
#include "ppsim/metrics/metrics.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief What the Gantt chart shows and how it is labelled.
struct VegaOptions {
  /// Schedule name in the title; empty means `Schedule::name`.
  std::string schedule_label;
  /// Costs were replaced by unit slots (1 slot = 1 ms): label time in slots.
  bool unit_time{false};
  /// Add a send and a recv lane under each device when the run has transfers.
  bool show_comm_lanes{true};
  /// Add a memory-over-time panel per device under the Gantt chart.
  bool show_memory{true};
  /// Printed width of the whole figure in inches (`--width`: column 3.33, page 7); 0
  /// means use `width_px`. The spec is laid out so that 1 px is 1 pt at that width
  /// (every text at least 7 pt) and carries the width in usermeta.ppsim.width_in, from
  /// which tools/render.mjs sets the SVG's physical size.
  double width_in{0};
  /// Width of the plot area in pixels when `width_in` is 0.
  int width_px{300};
  /// Height of one device row in pixels.
  int row_px{16};
  /// Height of one device's memory panel in pixels.
  int memory_row_px{26};
  /// Font size of the micro-batch numbers in the boxes (down to 2 px less, never under
  /// 7, where a box is narrow; blank where even that does not fit).
  int label_font_px{8};
  /// Number devices, stages, chunks and micro-batches from 1 in labels, rows and
  /// tooltips (`--one-based`); the op tokens ("F3c1") stay as ppsim writes them.
  bool one_based{false};
  /// Replaces the title "schedule: p=.., m=.., v=.." when not empty (`--title`).
  std::string title;
  /// For the browser page (`--html`): zoom and pan on the time axis.
  bool interactive{false};
};

/// @brief A printed width for `--width`, in inches: "column" (3.33, one column of a
/// two-column paper), "page" (7, a full text width) or a positive length with its unit,
/// "5in", "12cm", "90mm", "240pt". Nothing else: nullopt.
std::optional<double> print_width_in(const std::string& text);

/// @brief The fill colour ("#rrggbb") of an op box of this kind, chunk (taken mod 4) and
/// pipe: the one colour table every figure uses.
std::string op_fill(OpKind kind, int chunk, int pipe);

/// @brief The fill of time blocked in communication (SimResult::blocked), as "#rrggbb".
std::string blocked_fill();

/// @brief Builds a self-contained Vega-Lite v5 spec (data inline) for the run: one row
/// per device (device 0 on top), one box per op coloured by kind with shades for chunk
/// and pipe, the micro-batch number in each box wide enough to hold it, optional
/// send/recv lanes, and a memory panel per device. Pure: no I/O.
/// The title's iteration time and bubble rate are the Metrics' (metrics.h).
nlohmann::json vega_spec(const Schedule& schedule, const SimResult& result, const Metrics& metrics,
                         const VegaOptions& options = {});
/// @brief The same with pipeline_metrics(result) (no data-parallel all-reduce).
nlohmann::json vega_spec(const Schedule& schedule, const SimResult& result, const VegaOptions& options = {});

/// @brief Writes vega_spec(...).dump() to `out`, byte for byte, with the data values
/// (one box per op and transfer, the memory points) written one at a time instead of held
/// as one document: a few hundred bytes per op at most (BENCHMARKS.md, "Views stream").
void write_vega_spec(std::ostream& out, const Schedule& schedule, const SimResult& result, const Metrics& metrics,
                     const VegaOptions& options = {});

/// @brief The chart's title: VegaOptions::title, else "schedule: p=.., m=.., v=..".
std::string vega_title(const Schedule& schedule, const VegaOptions& options);

/// @brief Writes a spec into a stream (write_vega_spec bound to a run).
using SpecWriter = std::function<void(std::ostream&)>;

/// @brief Several runs of one schedule (e.g. simulated and measured by
/// `ppsim-calibrate replay`), one Gantt panel each, titled by its label with its own
/// iteration time and bubble rate, stacked on one time axis from 0 to the latest end;
/// one colour legend; no memory panels. Pure: no I/O.
nlohmann::json vega_pair_spec(const Schedule& schedule, const std::vector<std::pair<std::string, const SimResult*>>& runs,
                              const VegaOptions& options = {});
/// @brief Where `render_vega` writes; an empty path is skipped.
struct RenderTargets {
  std::string svg;
  std::string png;
  std::string pdf;
};

/// @brief Renders the spec `write_spec` writes (streamed into a temporary file) with
/// `node tools/render.mjs` (npm vega + vega-lite, then
/// rsvg-convert for PNG/PDF), the script and its node_modules taken from the first data
/// root holding tools/render.mjs (find_data_file, ppsim/data_files.h: $PPSIM_DATA_DIR,
/// the installed share/ppsim, the source tree from the build folder). Each file is
/// written atomically.
/// Throws OutputError when Node, the npm packages or rsvg-convert are missing (saying how
/// to install them: tools/setup.sh) or when rendering fails.
void render_vega(const SpecWriter& write_spec, const RenderTargets& targets);

/// @brief Renders into a private temporary folder and returns (target path, bytes) for
/// each target, writing nothing at the targets: the caller writes them with its other
/// outputs in one transaction (write_files_atomically). Throws as render_vega does.
std::vector<std::pair<std::string, std::string>> render_vega_files(const SpecWriter& write_spec,
                                                                    const RenderTargets& targets);

}  // namespace ppsim
