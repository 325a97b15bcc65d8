// Vega-Lite Gantt spec: structure, data, labels, colours, title.
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <string>

#include "ppsim/views/vega.h"
#include "test_vega_fixture.h"

using namespace ppsim;
using nlohmann::json;

namespace {

json compute_boxes(const json& spec) {
  json out = json::array();
  for (const json& b : spec["datasets"]["boxes"])
    if (b["lane"] == "compute") out.push_back(b);
  return out;
}

// Rec. 601 luma of "#rrggbb", as a greyscale printer would see it.
double luma(const std::string& hex) {
  const auto channel = [&](int i) { return std::stoi(hex.substr(1 + 2 * i, 2), nullptr, 16); };
  return 0.299 * channel(0) + 0.587 * channel(1) + 0.114 * channel(2);
}

}  // namespace

TEST_CASE("vega spec is Vega-Lite v5 with one box per op, data inline", "[vega]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  const json spec = vega_spec(s, r);
  CHECK(spec["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json");
  const json boxes = compute_boxes(spec);
  REQUIRE(boxes.size() == 8);
  // Box 2 is device 0's B0 from 5 to 7 ms.
  CHECK(boxes[2]["row"] == "D0");
  CHECK(boxes[2]["op"] == "B0");
  CHECK(boxes[2]["kind"] == "B");
  CHECK(boxes[2]["start"].get<double>() == 5.0);
  CHECK(boxes[2]["end"].get<double>() == 7.0);
  CHECK(boxes[2]["mid"].get<double>() == 6.0);
  CHECK(boxes[2]["stage"] == 0);
  CHECK(boxes[6]["row"] == "D1");
  CHECK(boxes[6]["stage"] == 1);
  // No external data: every data reference names an inline dataset.
  CHECK(spec["vconcat"][0]["data"]["name"] == "boxes");
  CHECK(spec.dump().find("\"url\"") == std::string::npos);
}

TEST_CASE("vega rows put device 0 on top and time on a fixed domain", "[vega]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  const json spec = vega_spec(s, r);
  const json& rect = spec["vconcat"][0]["layer"][0]["encoding"];
  CHECK(rect["y"]["sort"] == json::array({"D0", "D1"}));
  CHECK(rect["x"]["scale"]["domain"] == json::array({0.0, 9.0}));
  CHECK(rect["x"]["axis"]["title"] == "time (ms)");
  VegaOptions unit;
  unit.unit_time = true;
  CHECK(vega_spec(s, r, unit)["vconcat"][0]["layer"][0]["encoding"]["x"]["axis"]["title"] ==
        "time (slots)");
}

TEST_CASE("vega writes the micro-batch number only where it fits", "[vega]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  // A digit at size z needs 0.64 z + 1.5 px: 6.62 px at 8, 5.98 at 7, 5.34 at 6.
  VegaOptions wide;  // 300 px over 9 ms: a 1 ms box is 33 px
  for (const json& b : compute_boxes(vega_spec(s, r, wide))) {
    CHECK(b["label"] == std::to_string(b["microbatch"].get<int>()));
    CHECK(b["label_size"] == 8);
  }
  const auto f_label_size = [&](int width_px) {
    VegaOptions o;
    o.width_px = width_px;
    const json boxes = compute_boxes(vega_spec(s, r, o));
    CHECK(boxes[2]["label_size"] == 8);  // B is 2 ms wide: always fits at full size
    CHECK(boxes[2]["label"] == "0");
    CHECK(boxes[0]["kind"] == "F");
    return std::pair{boxes[0]["label"].get<std::string>(), boxes[0]["label_size"].get<int>()};
  };
  CHECK(f_label_size(60) == std::pair<std::string, int>{"0", 8});  // 6.67 px per ms
  CHECK(f_label_size(54) == std::pair<std::string, int>{"0", 7});  // 6.00
  // Never under 7 px (7 pt in print): 5.56 px per ms would fit a digit at 6, but stays blank.
  CHECK(f_label_size(50) == std::pair<std::string, int>{"", 0});  // 5.56
  CHECK(f_label_size(45) == std::pair<std::string, int>{"", 0});  // 5.00: blank
}

TEST_CASE("vega colours: one class per kind, luminance-separated for greyscale", "[vega]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  const json scale = vega_spec(s, r)["vconcat"][0]["layer"][0]["encoding"]["color"]["scale"];
  CHECK(scale["domain"] == json::array({"F", "B"}));
  CHECK(luma(scale["range"][0]) - luma(scale["range"][1]) >= 32);  // F0 above B0 in grey-scale

  // Split backward, two chunks, two pipes: every class distinct in greyscale within a
  // pipe (>= 30 of 255 apart); pipe 1 is outlined instead.
  SimResult big = r;
  Schedule bs = s;
  bs.chunks = 2;
  bs.pipes = 2;
  for (int pipe = 0; pipe < 2; ++pipe)
    for (int chunk = 0; chunk < 2; ++chunk)
      for (OpKind k : {OpKind::Forward, OpKind::Backward, OpKind::Weight})
        test::add_op(big, 0, k, 0, 0, 9, 9, chunk, pipe);
  const json spec = vega_spec(bs, big);
  const json bigscale = spec["vconcat"][0]["layer"][0]["encoding"]["color"]["scale"];
  REQUIRE(bigscale["domain"].size() == 12);
  CHECK(bigscale["domain"][0] == "F c0 down");
  CHECK(bigscale["domain"][11] == "W c1 up");
  for (int pipe = 0; pipe < 2; ++pipe)
    for (int i = 0; i < 6; ++i)
      for (int j = i + 1; j < 6; ++j)
        CHECK(std::fabs(luma(bigscale["range"][pipe * 6 + i]) -
                        luma(bigscale["range"][pipe * 6 + j])) >= 30);
  for (const json& b : spec["datasets"]["boxes"])
    CHECK(b["direction"] == (b["pipe"] == 0 ? "down" : "up"));
  // A third layer outlines the "up" boxes with dashes; one pipe has no such layer.
  const json& dashed = spec["vconcat"][0]["layer"][2];
  CHECK(dashed["transform"][0]["filter"] == "datum.direction == 'up'");
  CHECK(dashed["mark"]["strokeDash"] == json::array({2, 1}));
  CHECK(vega_spec(s, r)["vconcat"][0]["layer"].size() == 2);
  // ...and an empty line layer gives the outlines a legend of their own.
  const json& key = spec["vconcat"][0]["layer"][3];
  CHECK(key["transform"][0]["filter"] == "false");
  CHECK(key["encoding"]["strokeDash"]["scale"]["range"] == json::parse("[[1, 0], [2, 1]]"));
}

TEST_CASE("vega title names schedule, shape, iteration time and bubble rate", "[vega]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  CHECK(pipeline_metrics(r).bubble_rate == Approx(1.0 / 3.0));
  const json t = vega_spec(s, r)["title"];
  CHECK(t["text"] == "gpipe: p=2, m=2, v=1");
  CHECK(t["subtitle"] == "iteration 9.000 ms, bubble 33.3%");
  VegaOptions unit;
  unit.unit_time = true;
  unit.schedule_label = "GPipe";
  const json u = vega_spec(s, r, unit)["title"];
  CHECK(u["text"] == "GPipe: p=2, m=2, v=1");
  CHECK(u["subtitle"] == "iteration 9 slots, bubble 33.3%");
  // The title shows the Metrics it is given: with an exposed data-parallel all-reduce of
  // 3 ms the iteration is 12 ms and each device is busy 6 of them.
  const json dp = vega_spec(s, r, pipeline_metrics(r, test::ms(3)))["title"];
  CHECK(dp["subtitle"] == "iteration 12.00 ms, bubble 50.0%");

  // Asynchronous: the steady-state window is marked by two dashed rules, said on line 2.
  Schedule async = s;
  async.synchronous = false;
  SimResult windowed = r;
  windowed.window_start = test::ms(3);
  windowed.window_end = test::ms(7);
  windowed.window_iterations = 2;
  windowed.iteration_time = test::ms(2);
  for (auto& d : windowed.per_device) d.window_busy = test::ms(3);  // 3 of the window's 4 ms
  const json spec = vega_spec(async, windowed);
  CHECK(spec["title"]["subtitle"] ==
        json::array({"iteration 2.000 ms, bubble 25.0%", "(steady state over the bracketed window)"}));
  const json& layers = spec["vconcat"][0]["layer"];
  REQUIRE(layers.size() == 5);  // rules, boxes, labels, bracket, bracket ends
  CHECK(layers[0]["mark"]["type"] == "rule");  // under the boxes
  CHECK(layers[0]["data"]["values"] == json::parse(R"([{"t": 3.0}, {"t": 7.0}])"));
  CHECK(layers[1]["mark"]["type"] == "rect");
  CHECK(layers[3]["data"]["values"] == json::parse(R"([{"t": 3.0, "t2": 7.0}])"));
  CHECK(layers[4]["encoding"]["y"]["value"] == -7);
}

TEST_CASE("vega communication lanes hold each transfer on both ends", "[vega]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2_with_links(&s);
  const json spec = vega_spec(s, r);
  CHECK(spec["vconcat"][0]["layer"][0]["encoding"]["y"]["sort"] ==
        json::array({"D0", "D0 send", "D0 recv", "D1", "D1 send", "D1 recv"}));
  int sends = 0, recvs = 0;
  for (const json& b : spec["datasets"]["boxes"]) {
    if (b["lane"] == "send") ++sends;
    if (b["lane"] == "recv") ++recvs;
  }
  CHECK(sends == 4);
  CHECK(recvs == 4);
  const json domain = spec["vconcat"][0]["layer"][0]["encoding"]["color"]["scale"]["domain"];
  CHECK(domain == json::array({"F", "B", "activation", "gradient"}));
  VegaOptions off;
  off.show_comm_lanes = false;
  CHECK(vega_spec(s, r, off)["vconcat"][0]["layer"][0]["encoding"]["y"]["sort"] ==
        json::array({"D0", "D1"}));
}

TEST_CASE("vega memory panel: one facet per device, samples in MiB, closed at the end", "[vega]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  const json spec = vega_spec(s, r);
  REQUIRE(spec["vconcat"].size() == 2);
  const json& panel = spec["vconcat"][1];
  CHECK(panel["facet"]["row"]["sort"] == json::array({"D0", "D1"}));
  CHECK(panel["title"]["text"] == "memory (MiB)");
  const json& mem = spec["datasets"]["memory"];
  // 8 samples; device 0's last is at the end already, device 1's is closed at 9 ms.
  REQUIRE(mem.size() == 9);
  CHECK(mem[1] == json({{"row", "D0"}, {"t", 1.0}, {"value", 3.0}}));
  CHECK(mem[8] == json({{"row", "D1"}, {"t", 9.0}, {"value", 1.0}}));
  // One y scale for all devices, from 0 to the peak (3 MiB), labelled at both ends.
  const json& y = panel["spec"]["encoding"]["y"];
  CHECK(y["scale"]["domain"] == json::array({0.0, 3.0}));
  CHECK(y["axis"]["values"] == json::array({0.0, 3.0}));
  VegaOptions off;
  off.show_memory = false;
  CHECK(vega_spec(s, r, off)["vconcat"].size() == 1);
}

TEST_CASE("vega memory keeps the last of several samples at one instant", "[vega]") {
  Schedule s;
  SimResult r = test::gpipe_2x2(&s);
  r.memory.insert(r.memory.begin() + 1, {0, test::ms(0), Bytes{5 << 20}});  // D0 at 0: 2, then 5 MiB
  const json mem = vega_spec(s, r)["datasets"]["memory"];
  REQUIRE(mem.size() == 9);
  CHECK(mem[0] == json({{"row", "D0"}, {"t", 0.0}, {"value", 5.0}}));
  CHECK(mem[1] == json({{"row", "D0"}, {"t", 1.0}, {"value", 3.0}}));
}

TEST_CASE("vega draws short boxes at least 1.5 px wide, keeping the true end", "[vega]") {
  Schedule s;
  SimResult r = test::gpipe_2x2_with_links(&s);
  r.transfers[0].end = r.transfers[0].start + TimeNs{1000};  // 1 us: 0.03 px at 300 px / 9 ms
  const json doc1 = vega_spec(s, r);
  for (const json& b : doc1["datasets"]["boxes"]) {
    if (b["lane"] != "send" || b["microbatch"] != 0 || b["kind"] != "activation") continue;
    CHECK(b["end"].get<double>() == Approx(1.001));
    CHECK(b["draw_end"].get<double>() == Approx(1.0 + 1.5 * 9.0 / 300.0));
  }
}

TEST_CASE("vega spec streamed: the same bytes as the whole document's dump", "[vega]") {
  // write_vega_spec writes the data values one at a time; what it writes must be
  // vega_spec's dump() exactly, whatever parts the chart has.
  const auto streamed = [](const Schedule& s, const SimResult& r, const VegaOptions& o) {
    std::ostringstream out;
    write_vega_spec(out, s, r, pipeline_metrics(r), o);
    return out.str();
  };
  Schedule s;
  const SimResult plain = test::gpipe_2x2(&s);  // memory samples, no links
  VegaOptions o;
  CHECK(streamed(s, plain, o) == vega_spec(s, plain, o).dump());
  o.show_memory = false;
  CHECK(streamed(s, plain, o) == vega_spec(s, plain, o).dump());
  VegaOptions printed;
  printed.width_in = 3.33;  // usermeta after vconcat
  printed.title = "a </script> title";
  printed.one_based = true;
  CHECK(streamed(s, plain, printed) == vega_spec(s, plain, printed).dump());
  Schedule ls;
  const SimResult links = test::gpipe_2x2_with_links(&ls);  // send and recv lanes
  CHECK(streamed(ls, links, VegaOptions{}) == vega_spec(ls, links, VegaOptions{}).dump());
  Schedule async = s;
  async.synchronous = false;
  SimResult windowed = plain;
  windowed.window_start = test::ms(3);
  windowed.window_end = test::ms(7);
  VegaOptions page;
  page.interactive = true;
  CHECK(streamed(async, windowed, page) == vega_spec(async, windowed, page).dump());
  CHECK(vega_title(s, VegaOptions{}) == "gpipe: p=2, m=2, v=1");
  CHECK(vega_title(s, printed) == "a </script> title");
}
