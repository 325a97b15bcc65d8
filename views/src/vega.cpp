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
#include "json_array_stream.h"
#include "op_names.h"

namespace ppsim {
namespace {

using nlohmann::json;

// The one colour table of op boxes (tests/test_vega_colours.cpp measures it). Chosen by a
// search over CIELCh with two constraints:
//  - grey-scale: within a pipe, the six classes of a v <= 2 figure lie at least 32 of 255
//    apart in luma (Rec. 601), lightest to darkest W0, F0, B0, W1, F1, B1; chunk 1 is at
//    least 35 L* darker than chunk 0 of its kind, chunks 2 and 3 (rare) a middle and a
//    darkest step;
//  - colour-vision deficiency: every pair of those six stays at least 20 CIEDE2000 apart
//    after simulating deuteranopia, protanopia and tritanopia (Machado et al. 2009,
//    severity 1.0).
// Per kind pipe 0 uses blue (F), rose (B) and olive (W); pipe 1 ("up") ochre, violet and
// sage at the same lumas and is outlined dashed in black.
struct Shade {
  const char* fill;
  bool dark;  // luma below 128: white text
};
constexpr std::array<std::array<Shade, 4>, 3> kPipe0 = {{
    {{{"#94d1e6", false}, {"#435c78", true}, {"#6994af", false}, {"#1e3953", true}}},  // F
    {{{"#b29691", false}, {"#5a2621", true}, {"#875c56", true}, {"#3b0902", true}}},   // B
    {{{"#e9f192", false}, {"#7c8e18", true}, {"#b2be57", false}, {"#586702", true}}},  // W
}};
constexpr std::array<std::array<Shade, 4>, 3> kPipe1 = {{
    {{{"#dbc56b", false}, {"#7a5120", true}, {"#ac8843", false}, {"#513001", true}}},  // F
    {{{"#a58ede", false}, {"#362f53", true}, {"#6a5c96", true}, {"#1c1738", true}}},   // B
    {{{"#dee8e1", false}, {"#628879", true}, {"#a0b7aa", false}, {"#3e6254", true}}},  // W
}};
constexpr const char* kActivationFill = "#bdbdbd";
constexpr const char* kGradientFill = "#737373";
constexpr const char* kCollectiveFill = "#252525";  // on its own lane, under the device's ops
// Time a device spends blocked in communication (SimResult::blocked), drawn on its compute
// row between its ops: a saturated violet, at least 17 CIEDE2000 from every op class of
// either pipe (chunks 0 and 1) and from the white of idle time under each simulated
// colour-vision deficiency (tests/test_vega_colours.cpp).
constexpr const char* kBlockedFill = "#8811ff";
constexpr double kDigitEm = 0.64;  // digit advance of DejaVu Sans, the fallback sans font
constexpr double kMinBoxPx = 1.5;
// Print sizes: 1 px of the spec is 1 pt on paper when the figure is set at its --width,
// and no text is smaller than 7 pt.
constexpr int kMinFontPt = 7;
constexpr double kPointsPerInch = 72.0;
// Left margin beside the plot (device names, the memory panel's value axis) plus the
// padding, in pt: the plot gets the rest of the width.
constexpr int kMarginWithMemoryPt = 67;
constexpr int kMarginPt = 24;
// Every box is outlined so the lightest fill still stands out from the white page.
constexpr const char* kOutline = "#404040";

int kind_index(OpKind kind) { return static_cast<int>(kind); }


// Numbers as the figure shows them: from 0 as in ppsim's other outputs, or from 1
// (--one-based) as many papers number devices, stages, chunks and micro-batches.
int shown(const VegaOptions& options, int n) { return options.one_based ? n + 1 : n; }

std::string class_name(OpKind kind, int chunk, int pipe, bool chunks, bool pipes, const VegaOptions& options) {
  std::string s = op_kind_name(kind);
  if (chunks) s += " c" + std::to_string(shown(options, chunk));  // as in op tokens: F3c1
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
  std::string text = format_number(slots, 2);  // half slots (v = 2) read 28.5, not 28.50
  if (text.back() == '0') text.pop_back();
  return text + " slots";
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

std::string device_row(const VegaOptions& options, int device) { return "D" + std::to_string(shown(options, device)); }

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
  int width_px{0};  // of the plot area
  double px_per_ms{0};
  double min_box_ms{0};
  // Asynchronous schedules: the steady-state window the iteration time is measured on.
  bool window{false};
  // Memory per device as a step function (time ms, value in `unit`), when sampled.
  std::map<int, std::vector<std::pair<double, double>>> memory_curves;
  MemoryUnit unit{"bytes", 1.0};
  // A "collective" lane under each device: its ops' tensor-parallel / ZeRO-3 collectives.
  bool collective_lanes{false};
};

std::int64_t memory_peak(const SimResult& result) {
  std::int64_t peak = 0;
  for (const MemorySample& s : result.memory) peak = std::max(peak, s.bytes.value);
  return peak;
}

// Memory is a step function ("from t on"): of several samples at one instant only the
// last holds, and each device's curve is closed at the end of the run.
std::map<int, std::vector<std::pair<double, double>>> memory_curves(const SimResult& result, double t1,
                                                                     const MemoryUnit& unit) {
  std::map<int, std::vector<std::pair<double, double>>> curves;
  for (const MemorySample& s : result.memory) {
    auto& curve = curves[s.device];
    const double t = s.t.ms();
    const double value = static_cast<double>(s.bytes.value) / unit.divisor;
    if (!curve.empty() && curve.back().first == t) curve.back().second = value;
    else curve.emplace_back(t, value);
  }
  for (auto& [device, curve] : curves)
    if (curve.back().first < t1) curve.emplace_back(t1, curve.back().second);
  return curves;
}

// The plot area: what --width leaves beside the margin, or width_px.
int plot_width_px(const VegaOptions& o) {
  if (o.width_in <= 0) return o.width_px;
  const int margin = o.show_memory ? kMarginWithMemoryPt : kMarginPt;
  return std::max(40, static_cast<int>(std::floor(o.width_in * kPointsPerInch)) - margin);
}

// The time axis [t0, t1] and what follows from it at the plot's width.
void set_time_range(Gantt& g, double t0, double t1) {
  g.t0 = t0;
  g.t1 = t1 > t0 ? t1 : t0 + 1.0;  // empty run: keep the scale non-degenerate
  g.px_per_ms = g.width_px / (g.t1 - g.t0);
  // Short transfers would vanish at paper size: draw every box at least this wide (the
  // data keeps the true end for tooltips).
  g.min_box_ms = kMinBoxPx / g.px_per_ms;
}

Gantt make_gantt(const Schedule& schedule, const SimResult& result, const VegaOptions& options) {
  Gantt g{schedule, result, options, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {"bytes", 1.0}};
  g.chunks = schedule.chunks > 1;
  g.pipes = schedule.pipes > 1;
  g.devices = std::max(result.devices, schedule.devices);
  g.comm_lanes = options.show_comm_lanes && !result.transfers.empty();
  g.collective_lanes = std::any_of(result.ops.begin(), result.ops.end(), [](const OpRecord& r) { return r.collective.ns > 0; });
  g.width_px = plot_width_px(options);
  set_time_range(g, result.first_start.ms(), result.last_end.ms());
  g.window = !schedule.synchronous && result.window_end > result.window_start;
  if (!result.memory.empty()) {
    g.unit = memory_unit(memory_peak(result));
    g.memory_curves = memory_curves(result, g.t1, g.unit);
  }
  return g;
}

// The memory panel's points, from the curves make_gantt drew once, one at a time.
template <typename Visit>
void for_each_memory_point(const Gantt& g, Visit&& visit) {
  for (const auto& [device, curve] : g.memory_curves)
    for (const auto& [t, value] : curve) visit(json{{"row", device_row(g.options, device)}, {"t", t}, {"value", value}});
}

// A device's memory just after time t (the op ending at t included), as text.
std::string memory_at(const Gantt& g, int device, double t) {
  const auto it = g.memory_curves.find(device);
  if (it == g.memory_curves.end()) return "";
  const auto& curve = it->second;
  auto after = std::upper_bound(curve.begin(), curve.end(), t,
                                [](double x, const std::pair<double, double>& p) { return x < p.first; });
  if (after == curve.begin()) return format_number(0.0, 0) + " " + g.unit.name;
  return format_number(std::prev(after)->second, 3) + " " + g.unit.name;
}

// The micro-batch number goes in at the label size, or up to two pixels smaller when
// that is what fits; narrower boxes stay blank rather than overflow.
struct Label {
  std::string text;
  int size{0};
};

Label label_if_fits(const Gantt& g, std::int32_t microbatch, double start, double end) {
  std::string text = std::to_string(shown(g.options, microbatch));
  const double box_px = (end - start) * g.px_per_ms;
  const int smallest = std::max(kMinFontPt, g.options.label_font_px - 2);
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
    rows.push_back(device_row(g.options, d));
    if (g.collective_lanes) rows.push_back(device_row(g.options, d) + " collective");
    if (g.comm_lanes) {
      rows.push_back(device_row(g.options, d) + " send");
      rows.push_back(device_row(g.options, d) + " recv");
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
    scale.domain.push_back(class_name(kind, c, p, g.chunks, g.pipes, g.options));
    scale.range.push_back(shade_for(kind, c, p).fill);
  }
  if (g.collective_lanes) {
    scale.domain.push_back("collective");
    scale.range.push_back(kCollectiveFill);
  }
  if (!g.result.blocked.empty()) {
    scale.domain.push_back("blocked");
    scale.range.push_back(kBlockedFill);
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
  const VegaOptions& o = g.options;
  json box = {
      {"row", device_row(o, r.device)},
      {"device", shown(o, r.device)},
      {"lane", "compute"},
      {"op", views::record_label(g.result, static_cast<std::size_t>(&r - g.result.ops.data()), g.chunks, g.pipes)},
      {"kind", op_kind_name(r.op.kind)},
      {"microbatch", shown(o, r.op.microbatch)},
      {"stage", shown(o, r.op.stage)},
      {"chunk", shown(o, r.op.chunk)},
      {"pipe", r.op.pipe},
      {"start", start},
      {"end", end},
      {"duration", end - start},
      {"draw_end", std::max(end, start + g.min_box_ms)},
      {"mid", (start + end) / 2},
      {"class", class_name(r.op.kind, r.op.chunk, r.op.pipe, g.chunks, g.pipes, g.options)},
      {"label", label.text},
      {"label_size", label.size},
      {"text_color", shade.dark ? "white" : "black"},
      {"direction", r.op.pipe == 0 ? "down" : "up"},
  };
  if (!g.memory_curves.empty()) box["memory"] = memory_at(g, r.device, r.end.ms());
  if (r.pair != 0) box["pair"] = pair_kind_name();
  return box;
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
      {"row", device_row(g.options, device) + (side == 0 ? " send" : " recv")},
      {"device", shown(g.options, device)},
      {"lane", side == 0 ? "send" : "recv"},
      {"op", op_label(produced, g.chunks, g.pipes) + (side == 0 ? " to D" + std::to_string(t.dst)
                                                                 : " from D" + std::to_string(t.src))},
      {"kind", grad ? "gradient" : "activation"},
      {"microbatch", shown(g.options, produced.microbatch)},
      {"stage", shown(g.options, produced.stage)},
      {"chunk", shown(g.options, produced.chunk)},
      {"pipe", produced.pipe},
      {"start", start},
      {"end", end},
      {"duration", end - start},
      {"draw_end", std::max(end, start + g.min_box_ms)},
      {"mid", (start + end) / 2},
      {"class", grad ? "gradient" : "activation"},
      {"label", label.text},
      {"label_size", label.size},
      {"text_color", grad ? "white" : "black"},
      {"direction", "down"},
  };
}

// An op's blocking collectives as its last part, on the device's collective lane.
json collective_box(const Gantt& g, const OpRecord& r) {
  json box = op_box(g, r);
  const double start = (r.end - r.collective).ms();
  const double end = r.end.ms();
  box["row"] = device_row(g.options, r.device) + " collective";
  box["lane"] = "collective";
  box["op"] = "collectives of " + box["op"].get<std::string>();
  box["start"] = start;
  box["duration"] = end - start;
  box["draw_end"] = std::max(end, start + g.min_box_ms);
  box["mid"] = (start + end) / 2;
  box["class"] = "collective";
  box["label"] = "";
  box["text_color"] = "white";
  return box;
}

// A span a device spends blocked in communication, on its compute row.
json blocked_box(const Gantt& g, const BlockedRecord& b) {
  const double start = b.start.ms();
  const double end = b.end.ms();
  return {
      {"row", device_row(g.options, b.device)},
      {"device", shown(g.options, b.device)},
      {"lane", "compute"},
      {"op", "blocked in communication"},
      {"kind", "blocked"},
      {"start", start},
      {"end", end},
      {"duration", end - start},
      {"draw_end", std::max(end, start + g.min_box_ms)},
      {"mid", (start + end) / 2},
      {"class", "blocked"},
      {"label", ""},
      {"label_size", 0},
      {"text_color", "white"},
      {"direction", "down"},
  };
}

// Every op box, the spans blocked in communication, its collectives' box when it has
// some, then (when the lanes are shown) each transfer's send and recv boxes, one at a
// time: the spec streams them.
template <typename Visit>
void for_each_box(const Gantt& g, Visit&& visit) {
  for (const OpRecord& r : g.result.ops) visit(op_box(g, r));
  for (const BlockedRecord& b : g.result.blocked) visit(blocked_box(g, b));
  if (g.collective_lanes)
    for (const OpRecord& r : g.result.ops)
      if (r.collective.ns > 0) visit(collective_box(g, r));
  if (!g.comm_lanes) return;
  for (const TransferRecord& t : g.result.transfers)
    for (int side = 0; side < 2; ++side) visit(transfer_box(g, t, side));
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

// One legend column per kind lines the shades of a kind up; when those columns would be
// wider than the plot (long labels such as "W c1 down", "activation"), fewer columns,
// down to one, so the legend never widens the figure. Widths are estimated from the
// label lengths at 8 pt (0.62 em a character, about DejaVu Sans' average). This is the
// fourth thing dropped for space, after the labels cli.md lists: the legend's alignment.
int legend_columns(const Gantt& g, const ColourScale& colours) {
  constexpr double kCharPx = 0.62 * 8, kSymbolPx = 14, kColumnPaddingPx = 8;
  // Vega gives every column of a legend grid the width of the widest entry.
  double widest = 0;
  for (const json& label : colours.domain)
    widest = std::max(widest, kSymbolPx + static_cast<double>(label.get<std::string>().size()) * kCharPx);
  for (int columns = std::max(1, colours.kinds); columns > 1; --columns)
    if (columns * widest + (columns - 1) * kColumnPaddingPx <= g.width_px) return columns;
  return 1;
}

json colour_legend(const Gantt& g, const ColourScale& colours) {
  return {{"orient", "top"}, {"direction", "horizontal"}, {"columns", legend_columns(g, colours)},
          {"symbolType", "square"}, {"symbolSize", 90},
          {"symbolStrokeColor", "#1a1a1a"}, {"symbolStrokeWidth", 0.5},
          {"labelFontSize", 8}, {"columnPadding", 8}, {"rowPadding", 2},
          {"offset", g.schedule.synchronous ? 4 : 10}};
}

// What hovering a box shows: the op, where and when it ran, and the device's memory
// once it ended.
json tooltip(const Gantt& g) {
  const std::string unit = g.options.unit_time ? " (slots)" : " (ms)";
  json t = json::array({{{"field", "op"}},
                        {{"field", "kind"}},
                        {{"field", "microbatch"}, {"title", "micro-batch"}},
                        {{"field", "chunk"}},
                        {{"field", "stage"}},
                        {{"field", "device"}},
                        {{"field", "row"}, {"title", "lane"}},
                        {{"field", "start"}, {"title", "start" + unit}, {"format", ".3f"}},
                        {{"field", "duration"}, {"title", "duration" + unit}, {"format", ".3f"}}});
  if (!g.memory_curves.empty()) t.push_back({{"field", "memory"}, {"title", "memory at its end"}});
  return t;
}

json box_layer(const Gantt& g, const json& rows, const ColourScale& colours) {
  json layer = {
      {"name", "ops"},
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
        {"tooltip", tooltip(g)}}},
  };
  // The interactive page: wheel zooms and drag pans the time axis, which the memory
  // panel shares (resolve: shared), so it follows.
  if (g.options.interactive)
    layer["params"] = json::array({{{"name", "zoom"},
                                    {"select", {{"type", "interval"}, {"encodings", {"x"}}}},
                                    {"bind", "scales"}}});
  return layer;
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
                      {"symbolSize", 120}, {"symbolStrokeWidth", 1.1}, {"labelFontSize", 8},
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
json gantt_panel(const Gantt& g, const std::string& data = "boxes") {
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
      {"width", g.width_px},
      {"height", {{"step", g.options.row_px}}},
      {"data", {{"name", data}}},
      {"layer", layers},
  };
}

bool shows_memory(const Gantt& g) { return g.options.show_memory && !g.result.memory.empty(); }

// One small panel per device, from zero to the run's peak, under the Gantt chart.
json memory_panel(const Gantt& g, std::int64_t peak, const MemoryUnit& unit) {
  const double peak_in_unit = static_cast<double>(peak) / unit.divisor;
  json device_rows = json::array();
  for (int d = 0; d < g.devices; ++d) device_rows.push_back(device_row(g.options, d));
  const std::string y_title = std::string("memory (") + unit.name + ")";
  return {
      {"data", {{"name", "memory"}}},
      // The unit goes in a small title above the panels rather than a rotated axis
      // title beside them: at 3.3 inches every pixel of left margin counts.
      {"title", {{"text", y_title}, {"anchor", "start"}, {"fontSize", 8},
                 {"fontWeight", "normal"}, {"offset", 3}}},
      {"facet", {{"row", {{"field", "row"}, {"type", "nominal"}, {"sort", device_rows},
                          {"title", nullptr},
                          {"header", {{"labelAngle", 0}, {"labelOrient", "left"},
                                      {"labelAlign", "right"}, {"labelPadding", 2}}}}}}},
      {"spacing", 3},
      {"spec",
       {{"width", g.width_px},
        {"height", g.options.memory_row_px},
        {"mark", {{"type", "area"}, {"interpolate", "step-after"}, {"color", "#c8c8c8"},
                  {"line", {{"color", "#1a1a1a"}, {"strokeWidth", 0.8}}}}},
        {"encoding",
         {{"x", {{"field", "t"}, {"type", "quantitative"}, {"scale", time_scale(g)},
                 {"axis", nullptr}}},
          {"y", {{"field", "value"}, {"type", "quantitative"}, {"title", nullptr},
                 {"scale", {{"domain", {0.0, peak_in_unit}}, {"nice", false}}},
                 {"axis", {{"values", {0.0, peak_in_unit}}, {"grid", false},
                           {"labelFontSize", kMinFontPt}, {"labelFlush", true}, {"format", ".3~r"}}}}}}}}},
  };
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
      {"axis", {{"labelFontSize", 8}, {"titleFontSize", 8}, {"titleFontWeight", "normal"},
                {"labelColor", "#1a1a1a"}, {"titleColor", "#1a1a1a"}, {"labelOverlap", "greedy"}}},
      {"header", {{"labelFontSize", 8}}},
      // Stack the top legends (colours, then pipe outlines) instead of setting them
      // side by side, which would widen the figure past one column.
      {"legend", {{"labelFontSize", 8}, {"labelColor", "#1a1a1a"},
                  {"layout", {{"top", {{"direction", "vertical"}, {"anchor", "start"},
                                       {"margin", 2}}}}}}},
  };
}

}  // namespace

std::optional<double> print_width_in(const std::string& text) {
  if (text == "column") return 3.33;
  if (text == "page") return 7.0;
  static const std::pair<const char*, double> kUnits[] = {{"in", 1.0}, {"cm", 1 / 2.54}, {"mm", 1 / 25.4},
                                                          {"pt", 1 / kPointsPerInch}};
  for (const auto& [unit, inches] : kUnits) {
    const std::size_t n = std::strlen(unit);
    if (text.size() <= n || text.compare(text.size() - n, n, unit) != 0) continue;
    const std::string number = text.substr(0, text.size() - n);
    char* end = nullptr;
    const double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size() || !std::isfinite(value) || value <= 0) return std::nullopt;
    // Narrower than 1.5 in leaves no plot beside the labels; wider than 40 in is a typo.
    const double width = value * inches;
    if (width < 1.5 || width > 40) return std::nullopt;
    return width;
  }
  return std::nullopt;
}

std::string op_fill(OpKind kind, int chunk, int pipe) { return shade_for(kind, chunk, pipe).fill; }

std::string blocked_fill() { return kBlockedFill; }

json vega_spec(const Schedule& schedule, const SimResult& result, const VegaOptions& options) {
  return vega_spec(schedule, result, pipeline_metrics(result), options);
}

std::string vega_title(const Schedule& schedule, const VegaOptions& options) {
  if (!options.title.empty()) return options.title;
  const std::string label = options.schedule_label.empty() ? schedule.name : options.schedule_label;
  return label + ": p=" + std::to_string(schedule.devices) + ", m=" + std::to_string(schedule.microbatches) +
         ", v=" + std::to_string(schedule.chunks);
}

namespace {

// The spec without its data: "datasets" is null, filled in (vega_spec) or streamed
// (write_vega_spec) from for_each_box and for_each_memory_point.
json spec_frame(const Gantt& g, const Metrics& metrics) {
  json vconcat = json::array({gantt_panel(g)});
  if (shows_memory(g)) vconcat.push_back(memory_panel(g, memory_peak(g.result), g.unit));
  const std::string title = vega_title(g.schedule, g.options);
  json spec = {
      {"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
      {"description", "ppsim Gantt chart: " + title},
      // A title too long for the width is cut with an ellipsis rather than widening it.
      {"title", {{"text", title}, {"subtitle", subtitle(g, metrics)}, {"anchor", "start"},
                 {"fontSize", 9}, {"subtitleFontSize", 8}, {"offset", 4},
                 {"limit", g.width_px + (shows_memory(g) ? kMarginWithMemoryPt : kMarginPt) - 8}}},
      {"datasets", nullptr},
      {"vconcat", vconcat},
      {"spacing", 6},
      {"resolve", {{"scale", {{"x", "shared"}}}}},
      {"config", config_block()},
  };
  // The renderer sets the figure's printed size from this (tools/render.mjs).
  if (g.options.width_in > 0)
    spec["usermeta"] = {{"ppsim", {{"width_in", g.options.width_in}, {"min_font_pt", kMinFontPt}}}};
  return spec;
}

// {"boxes":[...],"memory":[...]}, element by element, as dump() writes the object.
void write_datasets(std::ostream& out, const Gantt& g) {
  out << '{';
  write_json_key(out, "boxes");
  JsonArrayStream boxes(out);
  for_each_box(g, [&](const json& box) { boxes.push_back(box); });
  boxes.close();
  out << ',';
  write_json_key(out, "memory");
  JsonArrayStream memory(out);
  if (shows_memory(g)) for_each_memory_point(g, [&](const json& point) { memory.push_back(point); });
  memory.close();
  out << '}';
}

}  // namespace

json vega_spec(const Schedule& schedule, const SimResult& result, const Metrics& metrics,
               const VegaOptions& options) {
  const Gantt g = make_gantt(schedule, result, options);
  json spec = spec_frame(g, metrics);
  json boxes = json::array();
  for_each_box(g, [&](const json& box) { boxes.push_back(box); });
  json memory = json::array();
  if (shows_memory(g)) for_each_memory_point(g, [&](const json& point) { memory.push_back(point); });
  spec["datasets"] = {{"boxes", std::move(boxes)}, {"memory", std::move(memory)}};
  return spec;
}

void write_vega_spec(std::ostream& out, const Schedule& schedule, const SimResult& result, const Metrics& metrics,
                     const VegaOptions& options) {
  const Gantt g = make_gantt(schedule, result, options);
  const json frame = spec_frame(g, metrics);
  // The object's members in dump()'s (sorted) order; the datasets stream in their place.
  out << '{';
  bool first = true;
  for (const auto& member : frame.items()) {
    if (!first) out << ',';
    first = false;
    write_json_key(out, member.key().c_str());
    if (member.key() == "datasets") write_datasets(out, g);
    else out << member.value().dump();
  }
  out << '}';
}

json vega_pair_spec(const Schedule& schedule, const std::vector<std::pair<std::string, const SimResult*>>& runs,
                    const VegaOptions& options) {
  VegaOptions o = options;
  o.show_memory = false;  // one time axis for the runs; memory is in each timeline
  std::vector<Gantt> gantts;
  double t1 = 0;
  for (const auto& [label, result] : runs) {
    gantts.push_back(make_gantt(schedule, *result, o));
    t1 = std::max(t1, result->last_end.ms());
  }
  json panels = json::array(), datasets = json::object();
  for (std::size_t i = 0; i < gantts.size(); ++i) {
    set_time_range(gantts[i], 0.0, t1);  // both from the run's start, to the later end
    const std::string data = "boxes" + std::to_string(i);
    json rows = json::array();
    for_each_box(gantts[i], [&](const json& box) { rows.push_back(box); });
    datasets[data] = std::move(rows);
    json panel = gantt_panel(gantts[i], data);
    for (json& layer : panel["layer"])  // mark names are global in Vega: one per panel
      if (layer.contains("name")) layer["name"] = layer["name"].get<std::string>() + std::to_string(i);
    panel["title"] = {{"text", runs[i].first}, {"subtitle", subtitle(gantts[i], pipeline_metrics(*runs[i].second))},
                      {"anchor", "start"}, {"fontSize", 9}, {"subtitleFontSize", 8}, {"offset", 3}};
    panels.push_back(panel);
  }
  const std::string title = vega_title(schedule, options);
  json spec = {
      {"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
      {"description", "ppsim Gantt charts on one time axis: " + title},
      {"title", {{"text", title}, {"anchor", "start"}, {"fontSize", 9}, {"offset", 4}}},
      {"datasets", datasets},
      {"vconcat", panels},
      {"spacing", 8},
      {"resolve", {{"scale", {{"x", "shared"}, {"color", "shared"}}}, {"legend", {{"color", "shared"}}}}},
      {"config", config_block()},
  };
  if (o.width_in > 0) spec["usermeta"] = {{"ppsim", {{"width_in", o.width_in}, {"min_font_pt", kMinFontPt}}}};
  return spec;
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

void render_vega(const SpecWriter& write_spec, const RenderTargets& targets) {
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
  ::close(fd);
  const int spec_slot = register_temp_path(tmpl, TempKind::file);
  bool written = false;
  {
    std::ofstream file(tmpl, std::ios::binary | std::ios::trunc);
    if (file.is_open()) write_spec(file);  // streamed: the spec is never held whole
    file.close();
    written = !file.fail();
  }
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

std::vector<std::pair<std::string, std::string>> render_vega_files(const SpecWriter& write_spec,
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
    render_vega(write_spec, staged);
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
