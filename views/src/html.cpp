/// @file html.cpp
/// @brief The interactive timeline page: the Gantt spec and the pinned Vega scripts in
/// one HTML file.
#include "ppsim/views/html.h"

#include <cstring>
#include <filesystem>
#include <functional>
#include <streambuf>
#include <fstream>
#include <sstream>

#include "ppsim/run/data_files.h"
#include "ppsim/views/files.h"

namespace ppsim {
namespace {

namespace fs = std::filesystem;

// The browser builds of the pinned packages (package.json), inlined in this order.
constexpr const char* kScripts[] = {"node_modules/vega/build/vega.min.js",
                                    "node_modules/vega-lite/build/vega-lite.min.js",
                                    "node_modules/vega-embed/build/vega-embed.min.js"};

std::string read_script(const std::string& name) {
  const DataFileLookup lookup = find_data_file(name, "", "");
  if (lookup.found.empty())
    throw OutputError("--html needs " + name + " (looked for " + lookup.tried_list() +
                      "); install the npm packages with tools/setup.sh (npm ci in the ppsim source tree)");
  std::ifstream in(lookup.found, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) throw OutputError("cannot read " + lookup.found.string());
  return text.str();
}

// JSON inside <script>: "</" would end the element early, and JSON allows "\/". A
// stream buffer in front of the page that writes every "</" as "<\/", so the spec streams
// into the page (write_vega_spec) rather than being held as text.
class ScriptSafeBuf : public std::streambuf {
 public:
  explicit ScriptSafeBuf(std::streambuf* dest) : dest_(dest) {}

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::streamsize done = 0;
    while (done < n) {
      // A "/" right after "<" (also across two writes) gets its backslash first.
      if (s[done] == '/' && after_lt_ && dest_->sputc('\\') == traits_type::eof()) return done;
      const void* slash = std::memchr(s + done + 1, '/', static_cast<std::size_t>(n - done - 1));
      const std::streamsize end = slash == nullptr ? n : static_cast<const char*>(slash) - s;
      if (dest_->sputn(s + done, end - done) != end - done) return done;
      after_lt_ = s[end - 1] == '<';
      done = end;
    }
    return n;
  }

 private:
  std::streambuf* dest_;
  bool after_lt_{false};
};

// A script inlined whole: it must not contain "</script" (the pinned builds do not; a
// future one that did would end the element early, so refuse rather than break).
std::string script_checked(const std::string& name, std::string text) {
  if (text.find("</script") != std::string::npos || text.find("</SCRIPT") != std::string::npos)
    throw OutputError("--html: " + name + " contains \"</script\" and cannot be inlined");
  return text;
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

// Embeds the spec, then counts the op boxes drawn (the mark named "ops", compute lane)
// and reports in document.title; errors and console.error calls are counted from the start.
constexpr const char* kBootScript = R"JS(
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); });
  var consoleError = console.error;
  console.error = function () { errors.push(Array.prototype.join.call(arguments, ' ')); consoleError.apply(console, arguments); };
  function report(text) { document.title = text; document.getElementById('status').textContent = text; }
  function countOps(item) {
    var n = 0;
    if (item.marktype === 'rect' && item.name === 'ops_marks')
      item.items.forEach(function (i) { if (i.datum && i.datum.lane === 'compute') ++n; });
    (item.items || []).forEach(function (i) { n += countOps(i); });
    return n;
  }
  var spec = JSON.parse(document.getElementById('spec').textContent);
  // #zoom-check (the browser test): wheel over the middle of the chart, then report the
  // time axis before and after, which the Gantt chart and the memory panel share.
  function zoomCheck(view) {
    var before = view.scale('x').domain().slice();
    var box = document.querySelector('#view svg').getBoundingClientRect();
    var at = { clientX: box.left + box.width / 2, clientY: box.top + box.height / 3 };
    var target = document.elementFromPoint(at.clientX, at.clientY) || document.querySelector('#view svg');
    target.dispatchEvent(new WheelEvent('wheel', Object.assign({ deltaY: -400, bubbles: true, cancelable: true }, at)));
    return view.runAsync().then(function () {
      var after = view.scale('x').domain();
      return ' zoom=' + (after[1] - after[0] < before[1] - before[0] ? 'in' : 'none') +
             ' span=' + (before[1] - before[0]).toFixed(3) + '->' + (after[1] - after[0]).toFixed(3);
    });
  }
  vegaEmbed('#view', spec, { actions: false, renderer: 'svg' }).then(function (result) {
    return result.view.runAsync().then(function (view) {
      var ops = countOps(view.scenegraph().root);
      var extra = location.hash === '#zoom-check' ? zoomCheck(view) : Promise.resolve('');
      return extra.then(function (text) {
        report('ppsim-view: ok ops=' + ops + ' errors=' + errors.length + text +
               (errors.length ? ' first=' + errors[0] : ''));
      });
    });
  }).catch(function (e) { report('ppsim-view: error ' + e.message); });
})();
)JS";

}  // namespace

void write_gantt_html(std::ostream& page, const std::function<void(std::ostream&)>& write_spec,
                      const std::string& title, const std::string& header) {
  page << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>ppsim-view: loading</title>\n"
       << "<style>body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:16px;color:#1a1a1a}"
          "h1{font-size:18px;margin:0 0 8px}pre{font-size:12px;background:#f6f6f6;padding:8px;overflow:auto}"
          "p.help,#status{font-size:12px;color:#555}</style>\n";
  for (const char* name : kScripts) page << "<script>/* " << name << " */\n" << script_checked(name, read_script(name)) << "\n</script>\n";
  page << "</head>\n<body>\n<h1>" << html_escape(title) << "</h1>\n<pre id=\"report\">" << html_escape(header)
       << "</pre>\n<p class=\"help\">Hover a box for its op; scroll on the chart to zoom the time axis, drag to pan, "
          "double-click to reset. The memory panel follows the time axis.</p>\n<div id=\"view\"></div>\n"
          "<p id=\"status\"></p>\n<script type=\"application/json\" id=\"spec\">";
  {
    page.flush();
    ScriptSafeBuf safe(page.rdbuf());
    std::ostream spec(&safe);
    write_spec(spec);
    spec.flush();
    if (!spec) page.setstate(std::ios::badbit);
  }
  page << "</script>\n<script>" << kBootScript << "</script>\n</body>\n</html>\n";
}

}  // namespace ppsim
