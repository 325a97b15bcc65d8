#pragma once
/// @file html.h
/// @brief The interactive timeline page (`ppsim run --html`): one self-contained HTML file.
#include <functional>
#include <ostream>
#include <string>

namespace ppsim {

/// @brief Writes one HTML page that shows the spec `write_spec` writes (write_vega_spec
/// with VegaOptions::interactive; it streams into the page, "</" written as "<\/") with vega, vega-lite and vega-embed inlined from the pinned
/// npm packages, so it opens from file:// with no network: tooltips per op, zoom and pan
/// on the time axis, and `header` (the report table) above the chart. Once the view has
/// drawn, the page sets document.title to "ppsim-view: ok ops=N errors=E" (N the op
/// boxes drawn, E the errors logged) or "ppsim-view: error MESSAGE": what the browser
/// test reads. Opened with "#zoom-check" it also sends itself one mouse-wheel over the
/// chart and appends " zoom=in span=A->B" (the time axis' span before and after). The scripts come from the first data root holding node_modules
/// (find_data_file, ppsim/data_files.h); throws OutputError when they are missing, saying
/// how to install them (tools/setup.sh).
void write_gantt_html(std::ostream& page, const std::function<void(std::ostream&)>& write_spec,
                      const std::string& title, const std::string& header);

}  // namespace ppsim
