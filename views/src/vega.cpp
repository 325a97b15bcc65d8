/// @file vega.cpp
/// @brief Vega-Lite Gantt chart: a pure view over SimResult.
#include "ppsim/views/vega.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ppsim/run/data_files.h"
#include "ppsim/views/files.h"

namespace ppsim {
namespace {

using nlohmann::json;

// Fills are chosen by greyscale luminance first, hue second, so a figure printed in
// black and white still tells the classes apart: F lightest, W middle, B darkest, and
// chunk 1 a clear step darker than chunk 0 of the same kind (luminance steps of ~40 on
// 0..255). Pipe 1 ("up") uses other hues at the same luminances and is outlined in
// black, which survives greyscale.
struct Shade {
  const char* fill;
  bool dark;  // luminance below ~128: white text
};
constexpr std::array<std::array<Shade, 4>, 3> kPipe0 = {{
    {{{"#deebf7", false}, {"#a6c8e8", false}, {"#6ba3d6", false}, {"#3d7fc0", true}}},  // F
    {{{"#a3202a", true}, {"#4d0a12", true}, {"#d0584f", true}, {"#2b0508", true}}},     // B
    {{{"#5fb86a", false}, {"#2f8a47", true}, {"#a4d8a6", false}, {"#145a2a", true}}},   // W
}};
constexpr std::array<std::array<Shade, 4>, 3> kPipe1 = {{
    {{{"#fde0c5", false}, {"#f7b988", false}, {"#f08c3c", false}, {"#c45f12", true}}},  // F
    {{{"#7f3b08", true}, {"#3f1d04", true}, {"#a65a1c", true}, {"#241002", true}}},     // B
    {{{"#b08fc7", false}, {"#7b5aa6", true}, {"#d5c3e3", false}, {"#4d2f78", true}}},   // W
}};
constexpr const char* kActivationFill = "#bdbdbd";
constexpr const char* kGradientFill = "#737373";
constexpr double kDigitEm = 0.64;  // digit advance of DejaVu Sans, the fallback sans font
constexpr double kMinBoxPx = 1.5;
// Every box is outlined so the lightest fill still stands out from the white page.
constexpr const char* kOutline = "#404040";

int kind_index(OpKind kind) { return static_cast<int>(kind); }


std::string class_name(OpKind kind, int chunk, int pipe, bool chunks, bool pipes) {
  std::string s = op_kind_name(kind);
  if (chunks) s += " c" + std::to_string(chunk);  // as in op tokens: F3c1
  if (pipes) s += pipe == 0 ? " down" : " up";
  return s;
}

const Shade& shade_for(OpKind kind, int chunk, int pipe) {
  const auto& table = pipe == 0 ? kPipe0 : kPipe1;
  return table[static_cast<std::size_t>(kind_index(kind))][static_cast<std::size_t>(chunk) % 4];
}

std::string format_number(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

// Enough decimals to show four significant digits of a time in ms.
std::string format_ms(double ms) {
  const double mag = std::fabs(ms);
  const int decimals = mag >= 1000 ? 0 : mag >= 100 ? 1 : mag >= 10 ? 2 : 3;
  return format_number(ms, decimals) + " ms";
}

std::string format_slots(double slots) {
  // Unit-time runs land on whole slots; keep a fraction visible if one does not.
  if (std::fabs(slots - std::round(slots)) < 1e-9) return format_number(slots, 0) + " slots";
  return format_number(slots, 2) + " slots";
}

struct MemoryUnit {
  const char* name;
  double divisor;
};

MemoryUnit memory_unit(std::int64_t peak) {
  constexpr double kKiB = 1024.0;
  if (peak >= kKiB * kKiB * kKiB) return {"GiB", kKiB * kKiB * kKiB};
  if (peak >= kKiB * kKiB) return {"MiB", kKiB * kKiB};
  if (peak >= kKiB) return {"KiB", kKiB};
  return {"bytes", 1.0};
}

std::string device_row(int device) { return "D" + std::to_string(device); }

// What every part of the Gantt chart needs: the run, the options and the values derived
// from them once.
struct Gantt {
  const Schedule& schedule;
  const SimResult& result;
  const VegaOptions& options;
  bool chunks{false};
  bool pipes{false};
  int devices{0};
  bool comm_lanes{false};
  double t0{0};
  double t1{0};
  double px_per_ms{0};
  double min_box_ms{0};
  // Asynchronous schedules: the steady-state window the iteration time is measured on.
  bool window{false};
};

Gantt make_gantt(const Schedule& schedule, const SimResult& result, const VegaOptions& options) {
  Gantt g{schedule, result, options};
  g.chunks = schedule.chunks > 1;
  g.pipes = schedule.pipes > 1;
  g.devices = std::max(result.devices, schedule.devices);
  g.comm_lanes = options.show_comm_lanes && !result.transfers.empty();
  g.t0 = result.first_start.ms();
  g.t1 = result.last_end.ms();
  if (g.t1 <= g.t0) g.t1 = g.t0 + 1.0;  // empty run: keep the scale non-degenerate
  g.px_per_ms = options.width_px / (g.t1 - g.t0);
  // Short transfers would vanish at paper size: draw every box at least this wide (the
  // data keeps the true end for tooltips).
  g.min_box_ms = kMinBoxPx / g.px_per_ms;
  g.window = !schedule.synchronous && result.window_end > result.window_start;
  return g;
}

// The micro-batch number goes in at the label size, or up to two pixels smaller when
// that is what fits; narrower boxes stay blank rather than overflow.
struct Label {
  std::string text;
  int size{0};
};

Label label_if_fits(const Gantt& g, std::int32_t microbatch, double start, double end) {
  std::string text = std::to_string(microbatch);
  const double box_px = (end - start) * g.px_per_ms;
  const int smallest = std::max(1, g.options.label_font_px - 2);
  for (int size = g.options.label_font_px; size >= smallest; --size) {
    const double need = static_cast<double>(text.size()) * kDigitEm * size + 1.5;
    if (box_px >= need) return Label{text, size};
  }
  return Label{};
}

// Rows, top to bottom: each device, then its send and recv lanes when shown.
json row_order(const Gantt& g) {
  json rows = json::array();
  for (int d = 0; d < g.devices; ++d) {
    rows.push_back(device_row(d));
    if (g.comm_lanes) {
      rows.push_back(device_row(d) + " send");
      rows.push_back(device_row(d) + " recv");
    }
  }
  return rows;
}

bool is_gradient(const SimResult& result, const TransferRecord& t) {
  return result.ops.at(static_cast<std::size_t>(t.producer)).op.kind != OpKind::Forward;
}

struct ColourScale {
  json domain = json::array();
  json range = json::array();
  int kinds{0};  // op kinds present: one legend column each
};

// Colour classes in legend order: variants (chunk, pipe) outer, kinds inner, so a
// legend with one column per kind lines the shades of a kind up vertically.
ColourScale colour_scale(const Gantt& g) {
  std::set<std::tuple<int, int, int>> present;  // (pipe, chunk, kind)
  for (const OpRecord& r : g.result.ops) present.insert({r.op.pipe, r.op.chunk, kind_index(r.op.kind)});
  std::set<int> kinds_present;
  for (const auto& [p, c, k] : present) kinds_present.insert(k);
  ColourScale scale;
  scale.kinds = static_cast<int>(kinds_present.size());
  for (const auto& [p, c, k] : present) {
    const auto kind = static_cast<OpKind>(k);
    scale.domain.push_back(class_name(kind, c, p, g.chunks, g.pipes));
    scale.range.push_back(shade_for(kind, c, p).fill);
  }
  if (!g.comm_lanes) return scale;
  bool has_activation = false;
  bool has_gradient = false;
  for (const TransferRecord& t : g.result.transfers) (is_gradient(g.result, t) ? has_gradient : has_activation) = true;
  if (has_activation) {
    scale.domain.push_back("activation");
    scale.range.push_back(kActivationFill);
  }
  if (has_gradient) {
    scale.domain.push_back("gradient");
    scale.range.push_back(kGradientFill);
  }
  return scale;
}

json op_box(const Gantt& g, const OpRecord& r) {
  const Shade& shade = shade_for(r.op.kind, r.op.chunk, r.op.pipe);
  const double start = r.start.ms();
  const double end = r.end.ms();
  const Label label = label_if_fits(g, r.op.microbatch, start, end);
  return {
      {"row", device_row(r.device)},
      {"device", r.device},
      {"lane", "compute"},
      {"op", op_label(r.op, g.chunks, g.pipes)},
      {"kind", op_kind_name(r.op.kind)},
      {"microbatch", r.op.microbatch},
      {"stage", r.op.stage},
      {"chunk", r.op.chunk},
      {"pipe", r.op.pipe},
      {"start", start},
      {"end", end},
      {"draw_end", std::max(end, start + g.min_box_ms)},
      {"mid", (start + end) / 2},
      {"class", class_name(r.op.kind, r.op.chunk, r.op.pipe, g.chunks, g.pipes)},
      {"label", label.text},
      {"label_size", label.size},
      {"text_color", shade.dark ? "white" : "black"},
      {"direction", r.op.pipe == 0 ? "down" : "up"},
  };
}

// One transfer's box on the sender's send lane (side 0) or the receiver's recv lane (side 1).
json transfer_box(const Gantt& g, const TransferRecord& t, int side) {
  const Op& produced = g.result.ops.at(static_cast<std::size_t>(t.producer)).op;
  const bool grad = produced.kind != OpKind::Forward;
  const double start = t.start.ms();
  const double end = t.end.ms();
  const Label label = label_if_fits(g, produced.microbatch, start, end);
  const int device = side == 0 ? t.src : t.dst;
  return {
      {"row", device_row(device) + (side == 0 ? " send" : " recv")},
      {"device", device},
      {"lane", side == 0 ? "send" : "recv"},
      {"op", op_label(produced, g.chunks, g.pipes) + (side == 0 ? " to D" + std::to_string(t.dst)
                                                                 : " from D" + std::to_string(t.src))},
      {"kind", grad ? "gradient" : "activation"},
      {"microbatch", produced.microbatch},
      {"stage", produced.stage},
      {"chunk", produced.chunk},
      {"pipe", produced.pipe},
      {"start", start},
      {"end", end},
      {"draw_end", std::max(end, start + g.min_box_ms)},
      {"mid", (start + end) / 2},
      {"class", grad ? "gradient" : "activation"},
      {"label", label.text},
      {"label_size", label.size},
      {"text_color", grad ? "white" : "black"},
      {"direction", "down"},
  };
}

// Every op box, then (when the lanes are shown) each transfer's send and recv boxes.
json boxes(const Gantt& g) {
  json out = json::array();
  for (const OpRecord& r : g.result.ops) out.push_back(op_box(g, r));
  if (!g.comm_lanes) return out;
  for (const TransferRecord& t : g.result.transfers)
    for (int side = 0; side < 2; ++side) out.push_back(transfer_box(g, t, side));
  return out;
}

// The time scale the Gantt chart and the memory panels share.
json time_scale(const Gantt& g) { return {{"domain", {g.t0, g.t1}}, {"nice", false}, {"zero", false}}; }

json time_axis(const Gantt& g) {
  const std::string time_title = g.options.unit_time ? "time (slots)" : "time (ms)";
  json x_axis = {{"title", time_title}, {"grid", false}, {"tickCount", 8}};
  if (g.options.unit_time) {
    x_axis["format"] = "d";
    x_axis["tickMinStep"] = 1;
  }
  return x_axis;
}

json colour_legend(const Gantt& g, const ColourScale& colours) {
  return {{"orient", "top"}, {"direction", "horizontal"}, {"columns", colours.kinds},
          {"symbolType", "square"}, {"symbolSize", 90},
          {"symbolStrokeColor", "#1a1a1a"}, {"symbolStrokeWidth", 0.5},
          {"labelFontSize", 9}, {"columnPadding", 10}, {"rowPadding", 2},
          {"offset", g.schedule.synchronous ? 4 : 10}};
}

json box_layer(const Gantt& g, const json& rows, const ColourScale& colours) {
  return {
      {"mark", {{"type", "rect"}, {"strokeWidth", 0.5}}},
      {"encoding",
       {{"y", {{"field", "row"}, {"type", "nominal"}, {"sort", rows}, {"title", nullptr},
               {"scale", {{"paddingInner", 0.12}, {"paddingOuter", 0.06}}},
               {"axis", {{"ticks", false}, {"domain", false},
                         {"labelExpr", "indexof(datum.value, ' ') > 0 ? "
                                       "substring(datum.value, indexof(datum.value, ' ') + 1) : "
                                       "datum.value"}}}}},
        {"x", {{"field", "start"}, {"type", "quantitative"}, {"scale", time_scale(g)}, {"axis", time_axis(g)}}},
        {"x2", {{"field", "draw_end"}}},
        {"color", {{"field", "class"}, {"type", "nominal"}, {"title", nullptr},
                   {"scale", {{"domain", colours.domain}, {"range", colours.range}}},
                   {"legend", colour_legend(g, colours)}}},
        {"stroke", {{"value", kOutline}}},
        {"tooltip", json::array({{{"field", "op"}},
                                  {{"field", "row"}, {"title", "lane"}},
                                  {{"field", "microbatch"}},
                                  {{"field", "stage"}},
                                  {{"field", "chunk"}},
                                  {{"field", "pipe"}},
                                  {{"field", "start"}, {"format", ".3f"}},
                                  {{"field", "end"}, {"format", ".3f"}}})}}},
  };
}

json label_layer(const Gantt& g, const json& rows) {
  return {
      {"mark", {{"type", "text"}, {"fontSize", g.options.label_font_px}, {"baseline", "middle"},
                {"align", "center"}}},
      {"transform", json::array({{{"filter", "datum.label != ''"}}})},
      {"encoding",
       {{"y", {{"field", "row"}, {"type", "nominal"}, {"sort", rows}}},
        {"x", {{"field", "mid"}, {"type", "quantitative"}}},
        {"text", {{"field", "label"}}},
        {"size", {{"field", "label_size"}, {"type", "quantitative"}, {"scale", nullptr}}},
        {"color", {{"field", "text_color"}, {"type", "nominal"}, {"scale", nullptr}}}}},
  };
}

// Bidirectional schedules: pipe 1 ("up") gets a thicker dashed outline on top, which
// tells the directions apart in greyscale too (Vega-Lite has no dash channel for rect).
json pipe_outline_layer(const json& rows) {
  return {
      {"transform", json::array({{{"filter", "datum.direction == 'up'"}}})},
      {"mark", {{"type", "rect"}, {"fillOpacity", 0}, {"stroke", "black"}, {"strokeWidth", 1.1},
                {"strokeDash", {2, 1}}}},
      {"encoding",
       {{"y", {{"field", "row"}, {"type", "nominal"}, {"sort", rows}}},
        {"x", {{"field", "start"}, {"type", "quantitative"}}},
        {"x2", {{"field", "draw_end"}}}}},
  };
}

// A legend for the outlines: an empty line layer whose strokeDash channel (which
// line marks do have) carries the two directions.
json pipe_legend_layer(const json& rows) {
  return {
      {"transform", json::array({{{"filter", "false"}}})},
      {"mark", {{"type", "line"}, {"color", "black"}, {"strokeWidth", 1.1}}},
      {"encoding",
       {{"x", {{"field", "start"}, {"type", "quantitative"}}},
        {"y", {{"field", "row"}, {"type", "nominal"}, {"sort", rows}}},
        {"strokeDash",
         {{"field", "direction"}, {"type", "nominal"}, {"title", nullptr},
          {"scale", {{"domain", {"down", "up"}},
                     {"range", json::array({json::array({1, 0}), json::array({2, 1})})}}},
          {"legend", {{"orient", "top"}, {"direction", "horizontal"}, {"symbolType", "stroke"},
                      {"symbolSize", 120}, {"symbolStrokeWidth", 1.1}, {"labelFontSize", 9},
                      {"labelExpr", "datum.value + ' pipe'"}, {"offset", 4}}}}}}},
  };
}

// Asynchronous schedules: mark the steady-state window the iteration time is measured on.
// Full-height dashed rules go under the boxes (so they never cross a micro-batch
// number) and show in the gaps; a bracket above the top row marks the window plainly.
json window_rule_layer(const Gantt& g) {
  const double ws = g.result.window_start.ms();
  const double we = g.result.window_end.ms();
  return {
      {"data", {{"values", json::array({{{"t", ws}}, {{"t", we}}})}}},
      {"mark", {{"type", "rule"}, {"strokeDash", {3, 2}}, {"color", "#1a1a1a"},
                {"strokeWidth", 1}}},
      {"encoding", {{"x", {{"field", "t"}, {"type", "quantitative"}}}}},
  };
}

// The bracket over the window: a horizontal rule above the top row, then its two ticks.
void add_window_bracket_layers(json& layers, const Gantt& g) {
  const double ws = g.result.window_start.ms();
  const double we = g.result.window_end.ms();
  const json bracket_mark = {{"type", "rule"}, {"color", "#1a1a1a"}, {"strokeWidth", 1},
                             {"clip", false}};
  layers.push_back({
      {"data", {{"values", json::array({{{"t", ws}, {"t2", we}}})}}},
      {"mark", bracket_mark},
      {"encoding", {{"x", {{"field", "t"}, {"type", "quantitative"}}},
                    {"x2", {{"field", "t2"}}},
                    {"y", {{"value", -4}}}}},
  });
  layers.push_back({
      {"data", {{"values", json::array({{{"t", ws}}, {{"t", we}}})}}},
      {"mark", bracket_mark},
      {"encoding", {{"x", {{"field", "t"}, {"type", "quantitative"}}},
                    {"y", {{"value", -7}}},
                    {"y2", {{"value", -1}}}}},
  });
}

// Layers bottom to top: the window rules, the boxes, their labels, the pipe outlines
// and their legend, the window bracket.
json gantt_panel(const Gantt& g) {
  const json rows = row_order(g);
  json layers = json::array();
  if (g.window) layers.push_back(window_rule_layer(g));
  layers.push_back(box_layer(g, rows, colour_scale(g)));
  layers.push_back(label_layer(g, rows));
  if (g.pipes) {
    layers.push_back(pipe_outline_layer(rows));
    layers.push_back(pipe_legend_layer(rows));
  }
  if (g.window) add_window_bracket_layers(layers, g);
  return {
      {"width", g.options.width_px},
      {"height", {{"step", g.options.row_px}}},
      {"data", {{"name", "boxes"}}},
      {"layer", layers},
  };
}

bool shows_memory(const Gantt& g) { return g.options.show_memory && !g.result.memory.empty(); }

std::int64_t memory_peak(const SimResult& result) {
  std::int64_t peak = 0;
  for (const MemorySample& s : result.memory) peak = std::max(peak, s.bytes.value);
  return peak;
}

// Memory is a step function ("from t on"): of several samples at one instant only the
// last holds, and each device's curve is closed at the end of the run.
json memory_data(const Gantt& g, const MemoryUnit& unit) {
  std::map<int, std::vector<std::pair<double, double>>> curves;
  for (const MemorySample& s : g.result.memory) {
    auto& curve = curves[s.device];
    const double t = s.t.ms();
    const double value = static_cast<double>(s.bytes.value) / unit.divisor;
    if (!curve.empty() && curve.back().first == t) curve.back().second = value;
    else curve.emplace_back(t, value);
  }
  json memory = json::array();
  for (auto& [device, curve] : curves) {
    if (curve.back().first < g.t1) curve.emplace_back(g.t1, curve.back().second);
    for (const auto& [t, value] : curve)
      memory.push_back({{"row", device_row(device)}, {"t", t}, {"value", value}});
  }
  return memory;
}

// One small panel per device, from zero to the run's peak, under the Gantt chart.
json memory_panel(const Gantt& g, std::int64_t peak, const MemoryUnit& unit) {
  const double peak_in_unit = static_cast<double>(peak) / unit.divisor;
  json device_rows = json::array();
  for (int d = 0; d < g.devices; ++d) device_rows.push_back(device_row(d));
  const std::string y_title = std::string("memory (") + unit.name + ")";
  return {
      {"data", {{"name", "memory"}}},
      // The unit goes in a small title above the panels rather than a rotated axis
      // title beside them: at 3.3 inches every pixel of left margin counts.
      {"title", {{"text", y_title}, {"anchor", "start"}, {"fontSize", 9},
                 {"fontWeight", "normal"}, {"offset", 3}}},
      {"facet", {{"row", {{"field", "row"}, {"type", "nominal"}, {"sort", device_rows},
                          {"title", nullptr},
                          {"header", {{"labelAngle", 0}, {"labelOrient", "left"},
                                      {"labelAlign", "right"}, {"labelPadding", 2}}}}}}},
      {"spacing", 3},
      {"spec",
       {{"width", g.options.width_px},
        {"height", g.options.memory_row_px},
        {"mark", {{"type", "area"}, {"interpolate", "step-after"}, {"color", "#c8c8c8"},
                  {"line", {{"color", "#1a1a1a"}, {"strokeWidth", 0.8}}}}},
        {"encoding",
         {{"x", {{"field", "t"}, {"type", "quantitative"}, {"scale", time_scale(g)},
                 {"axis", nullptr}}},
          {"y", {{"field", "value"}, {"type", "quantitative"}, {"title", nullptr},
                 {"scale", {{"domain", {0.0, peak_in_unit}}, {"nice", false}}},
                 {"axis", {{"values", {0.0, peak_in_unit}}, {"grid", false},
                           {"labelFontSize", 8}, {"labelFlush", true}, {"format", ".3~r"}}}}}}}}},
  };
}

// Title: schedule and shape.
std::string title_text(const Gantt& g) {
  const std::string label = g.options.schedule_label.empty() ? g.schedule.name : g.options.schedule_label;
  return label + ": p=" + std::to_string(g.schedule.devices) +
         ", m=" + std::to_string(g.schedule.microbatches) +
         ", v=" + std::to_string(g.schedule.chunks);
}

// Subtitle: iteration time and bubble rate.
json subtitle(const Gantt& g, const Metrics& metrics) {
  const double iter_ms = metrics.iteration_time.ms();
  const double bubble = metrics.bubble_rate;
  const std::string time = g.options.unit_time ? format_slots(iter_ms) : format_ms(iter_ms);
  json lines = "iteration " + time + ", bubble " + format_number(100.0 * bubble, 1) + "%";
  // A second line rather than a longer one: the title must not widen the figure.
  if (g.window) lines = json::array({lines, "(steady state over the bracketed window)"});
  return lines;
}

json config_block() {
  return {
      {"font", "DejaVu Sans, Helvetica, Arial, sans-serif"},
      {"padding", 4},
      {"view", {{"stroke", nullptr}}},
      {"axis", {{"labelFontSize", 9}, {"titleFontSize", 9}, {"titleFontWeight", "normal"},
                {"labelColor", "#1a1a1a"}, {"titleColor", "#1a1a1a"}}},
      {"header", {{"labelFontSize", 9}}},
      // Stack the top legends (colours, then pipe outlines) instead of setting them
      // side by side, which would widen the figure past one column.
      {"legend", {{"labelFontSize", 9}, {"labelColor", "#1a1a1a"},
                  {"layout", {{"top", {{"direction", "vertical"}, {"anchor", "start"},
                                       {"margin", 2}}}}}}},
  };
}

}  // namespace

json vega_spec(const Schedule& schedule, const SimResult& result, const VegaOptions& options) {
  return vega_spec(schedule, result, pipeline_metrics(result), options);
}

json vega_spec(const Schedule& schedule, const SimResult& result, const Metrics& metrics,
               const VegaOptions& options) {
  const Gantt g = make_gantt(schedule, result, options);
  json vconcat = json::array({gantt_panel(g)});
  json memory = json::array();
  if (shows_memory(g)) {
    const std::int64_t peak = memory_peak(result);
    const MemoryUnit unit = memory_unit(peak);
    memory = memory_data(g, unit);
    vconcat.push_back(memory_panel(g, peak, unit));
  }
  const std::string title = title_text(g);
  return {
      {"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
      {"description", "ppsim Gantt chart: " + title},
      {"title", {{"text", title}, {"subtitle", subtitle(g, metrics)}, {"anchor", "start"},
                 {"fontSize", 10}, {"subtitleFontSize", 9}, {"offset", 4}}},
      {"datasets", {{"boxes", boxes(g)}, {"memory", memory}}},
      {"vconcat", vconcat},
      {"spacing", 6},
      {"resolve", {{"scale", {{"x", "shared"}}}}},
      {"config", config_block()},
  };
}

}  // namespace ppsim

// ---- rendering (I/O lives here, away from the pure spec builder) ----

namespace ppsim {

namespace {

namespace fs = std::filesystem;

std::optional<fs::path> find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// Runs argv, returns (exit status, first line of its stderr).
std::pair<int, std::string> run_capturing_stderr(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw OutputError("cannot create a pipe to run node");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  if (spawned == 0) register_child_process(pid);  // a signal kills it before removing temporaries
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  if (spawned != 0) throw OutputError("cannot run " + argv[0] + ": " + std::strerror(spawned));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  register_child_process(0);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // Keep the last non-empty line: render.mjs says what failed in one line at the end.
  std::string line;
  std::stringstream lines(err);
  for (std::string l; std::getline(lines, l);)
    if (!l.empty()) line = l;
  return {code, line};
}

}  // namespace

void render_vega(const nlohmann::json& spec, const RenderTargets& targets) {
  if (targets.svg.empty() && targets.png.empty() && targets.pdf.empty()) return;
  // The renderer and its node_modules live in one data root (ppsim/data_files.h).
  const DataFileLookup lookup = find_data_file("tools/render.mjs", "", "");
  const fs::path script = lookup.found;
  const fs::path repo = script.empty() ? fs::path() : script.parent_path().parent_path();
  const std::string how = "; install it with tools/setup.sh (npm ci in " +
                          (repo.empty() ? std::string("the ppsim source tree") : repo.string()) +
                          ", Debian librsvg2-bin for PNG/PDF)";
  const auto node = find_on_path("node");
  if (!node) throw OutputError("--svg/--png/--pdf need Node.js (node not on PATH)" + how);
  if (script.empty())
    throw OutputError("--svg/--png/--pdf need tools/render.mjs (looked for " + lookup.tried_list() +
                      "; set PPSIM_DATA_DIR to an installed share/ppsim or the source tree)");
  if (!fs::exists(repo / "node_modules" / "vega-lite" / "package.json") ||
      !fs::exists(repo / "node_modules" / "vega" / "package.json"))
    throw OutputError("--svg/--png/--pdf need the npm packages vega and vega-lite (not in " +
                      (repo / "node_modules").string() + ")" + how);
  if ((!targets.png.empty() || !targets.pdf.empty()) && !find_on_path("rsvg-convert"))
    throw OutputError("--png/--pdf need rsvg-convert (Debian: apt-get install librsvg2-bin)");

  // The spec goes to the renderer through a private temporary file.
  std::string tmpl = (fs::temp_directory_path() / "ppsim-vega-XXXXXX.json").string();
  const int fd = ::mkstemps(tmpl.data(), 5);
  if (fd < 0) throw OutputError("cannot create a temporary file for the Vega-Lite spec");
  const int spec_slot = register_temp_path(tmpl, TempKind::file);
  const std::string text = spec.dump();
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  std::vector<std::string> argv = {node->string(), script.string(), tmpl};
  if (!targets.svg.empty()) argv.insert(argv.end(), {"--svg", targets.svg});
  if (!targets.png.empty()) argv.insert(argv.end(), {"--png", targets.png});
  if (!targets.pdf.empty()) argv.insert(argv.end(), {"--pdf", targets.pdf});
  std::pair<int, std::string> result{0, ""};
  try {
    if (!written) throw OutputError("cannot write the Vega-Lite spec to " + tmpl);
    result = run_capturing_stderr(argv);
  } catch (...) {
    fs::remove(tmpl);
    unregister_temp_path(spec_slot);
    throw;
  }
  fs::remove(tmpl);
  unregister_temp_path(spec_slot);
  if (result.first != 0) {
    std::string why = result.second.empty() ? "node exited with status " + std::to_string(result.first)
                                            : result.second;
    if (result.first == 77) why += how;
    throw OutputError("rendering failed: " + why);
  }
}

std::vector<std::pair<std::string, std::string>> render_vega_files(const nlohmann::json& spec,
                                                                    const RenderTargets& targets) {
  std::vector<std::pair<std::string, std::string>> out;
  if (targets.svg.empty() && targets.png.empty() && targets.pdf.empty()) return out;
  std::string tmpl = (fs::temp_directory_path() / "ppsim-render-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw OutputError("cannot create a temporary folder for rendering");
  const fs::path dir = tmpl;
  const int dir_slot = register_temp_path(tmpl, TempKind::folder_with_files);
  RenderTargets staged;
  std::vector<std::pair<std::string, fs::path>> pairs;
  auto stage = [&](const std::string& target, std::string& field, const char* name) {
    if (target.empty()) return;
    field = (dir / name).string();
    pairs.emplace_back(target, field);
  };
  stage(targets.svg, staged.svg, "chart.svg");
  stage(targets.png, staged.png, "chart.png");
  stage(targets.pdf, staged.pdf, "chart.pdf");
  try {
    render_vega(spec, staged);
    for (const auto& [target, file] : pairs) {
      std::ifstream in(file, std::ios::binary);
      if (!in.is_open()) throw OutputError(target + ": rendering produced no file");
      std::ostringstream bytes;
      bytes << in.rdbuf();
      out.emplace_back(target, bytes.str());
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    unregister_temp_path(dir_slot);
    throw;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  unregister_temp_path(dir_slot);
  return out;
}

}  // namespace ppsim
