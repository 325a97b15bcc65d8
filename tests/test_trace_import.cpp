// ppsim-calibrate import: synthetic torch.profiler traces (issue 13 item 4). Medians are
// computed by hand from the events below.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/profile.h"
#include "ppsim/calibrate/trace_import.h"

using namespace ppsim::cal;
using nlohmann::json;

namespace {

json cpu(const std::string& name, double ts, double dur, int tid = 1) {
  return {{"ph", "X"}, {"cat", "user_annotation"}, {"name", name}, {"pid", 7}, {"tid", tid}, {"ts", ts}, {"dur", dur}};
}
json gpu(const std::string& name, double ts, double dur) {
  return {{"ph", "X"}, {"cat", "gpu_user_annotation"}, {"name", name}, {"pid", 0}, {"tid", 7}, {"ts", ts}, {"dur", dur}};
}
json launch(double ts, int correlation, int tid = 1) {
  return {{"ph", "X"}, {"cat", "cuda_runtime"}, {"name", "cudaLaunchKernel"}, {"pid", 7}, {"tid", tid},
          {"ts", ts}, {"dur", 2}, {"args", {{"correlation", correlation}}}};
}
json kernel(double ts, double dur, int correlation) {
  return {{"ph", "X"}, {"cat", "kernel"}, {"name", "sm90_gemm"}, {"pid", 0}, {"tid", 7},
          {"ts", ts}, {"dur", dur}, {"args", {{"correlation", correlation}}}};
}

LayerShape small_block() {
  LayerShape s;
  s.hidden = 256;
  s.heads = 4;
  s.seq = 128;
  s.dtype = Dtype::bf16;
  s.vocab = 0;
  return s;
}

}  // namespace

TEST_CASE("import: gpu_user_annotation durations, medians after --skip", "[calibrate][import]") {
  json ev = json::array();
  // Three iterations: F 100/110/130 us, B 200/230/210 us, W 90/80/100 us on the GPU.
  const double f[] = {100, 110, 130}, b[] = {200, 230, 210}, w[] = {90, 80, 100};
  for (int i = 0; i < 3; ++i) {
    const double t0 = 1000.0 * i;
    ev.push_back(cpu("ppsim/block/F", t0, 20));
    ev.push_back(cpu("ppsim/block/B", t0 + 30, 20));
    ev.push_back(cpu("ppsim/block/W", t0 + 60, 20));
    ev.push_back(gpu("ppsim/block/F", t0 + 5, f[i]));
    ev.push_back(gpu("ppsim/block/B", t0 + 300, b[i]));
    ev.push_back(gpu("ppsim/block/W", t0 + 600, w[i]));
  }
  const json trace = {{"traceEvents", ev}, {"deviceProperties", json::array({{{"name", "NVIDIA H200"}, {"totalGlobalMem", 150000000000},
                                                                              {"computeMajor", 9}, {"computeMinor", 0}}})}};
  const TraceRegions r = read_torch_trace(trace, "t.json");
  CHECK(r.gpu_source == "gpu_user_annotation");
  CHECK(r.device == "NVIDIA H200");
  CHECK(r.gpu_ms.at({"block", "B"}) == std::vector<double>{0.200, 0.230, 0.210});
  const json p = profile_from_trace(r, small_block(), 2, 0, "t.json");
  const json& l = p.at("layers").at(0);
  CHECK(l.at("kind") == "transformer_block");
  CHECK(l.at("shape").at("micro_batch") == 2);
  CHECK(l.at("forward_ms").at("median").get<double>() == Approx(0.110));
  CHECK(l.at("backward_input_ms").at("median").get<double>() == Approx(0.210));
  CHECK(l.at("backward_weight_ms").at("median").get<double>() == Approx(0.090));
  CHECK(p.at("device").at("compute_capability") == "9.0");
  // Dropping the first instance: medians of {110, 130}, {230, 210}, {80, 100}.
  const json skipped = profile_from_trace(r, small_block(), 2, 1, "t.json");
  CHECK(skipped.at("layers").at(0).at("forward_ms").at("median").get<double>() == Approx(0.120));
  CHECK(skipped.at("layers").at(0).at("backward_input_ms").at("median").get<double>() == Approx(0.220));
  CHECK_THROWS_WITH(profile_from_trace(r, small_block(), 2, 3, "t.json"),
                    "t.json: ppsim/block/F: 3 instances, none left after --skip 3");
  CHECK_NOTHROW(validate_profile(p, "t.json"));
}

TEST_CASE("import: without GPU annotations, the span of the kernels each region launched", "[calibrate][import]") {
  // F launches kernels 1 and 2 (GPU 500-540 and 545-600: span 100 us); B launches 3
  // (GPU 700-880: 180 us). Kernel 9 was launched outside any region and is ignored.
  const json trace = {{"traceEvents", json::array({cpu("ppsim/block/F", 100, 50), launch(110, 1), launch(120, 2),
                                                   cpu("ppsim/block/B", 200, 50), launch(210, 3), launch(300, 9),
                                                   kernel(500, 40, 1), kernel(545, 55, 2), kernel(700, 180, 3),
                                                   kernel(900, 10, 9)})}};
  const TraceRegions r = read_torch_trace(trace, "k.json");
  CHECK(r.gpu_source == "kernels");
  CHECK(r.gpu_ms.at({"block", "F"}) == std::vector<double>{0.100});
  CHECK(r.gpu_ms.at({"block", "B"}) == std::vector<double>{0.180});
  const json p = profile_from_trace(r, small_block(), 1, 0, "k.json");
  // No W regions: B is the whole backward, W is 0, and the layer says so.
  CHECK(p.at("layers").at(0).at("backward_weight_ms").at("median").get<double>() == 0.0);
  CHECK(p.at("layers").at(0).at("note").get<std::string>().find("no W regions") != std::string::npos);
}

TEST_CASE("import: error cases name the file, the event and the problem", "[calibrate][import]") {
  SECTION("missing region") {
    const json trace = {{"traceEvents", json::array({cpu("ppsim/block/F", 0, 10), gpu("ppsim/block/F", 0, 10)})}};
    CHECK_THROWS_WITH(profile_from_trace(read_torch_trace(trace, "m.json"), small_block(), 1, 0, "m.json"),
                      "m.json: no ppsim/block/B region: the block's F and B are needed");
  }
  SECTION("a layer with W but no F or B") {
    const json trace = {{"traceEvents", json::array({gpu("ppsim/block/F", 0, 10), gpu("ppsim/block/B", 20, 10),
                                                     gpu("ppsim/head/W", 40, 10)})}};
    LayerShape s = small_block();
    s.vocab = 1000;
    CHECK_THROWS_WITH(profile_from_trace(read_torch_trace(trace, "w.json"), s, 1, 0, "w.json"),
                      "w.json: ppsim/head: needs F and B regions, has W only");
  }
  SECTION("overlapping regions on one thread") {
    const json trace = {{"traceEvents", json::array({cpu("ppsim/block/F", 0, 100), cpu("ppsim/block/B", 50, 100),
                                                     gpu("ppsim/block/F", 0, 10), gpu("ppsim/block/B", 20, 10)})}};
    CHECK_THROWS_WITH(read_torch_trace(trace, "o.json"),
                      Catch::StartsWith("o.json: traceEvents[1]: region 'ppsim/block/B' at 50.000000 us overlaps "
                                        "'ppsim/block/F' (traceEvents[0]"));
    // The same regions on two threads do not overlap.
    const json two = {{"traceEvents", json::array({cpu("ppsim/block/F", 0, 100, 1), cpu("ppsim/block/B", 50, 100, 2),
                                                   gpu("ppsim/block/F", 0, 10), gpu("ppsim/block/B", 20, 10)})}};
    CHECK_NOTHROW(read_torch_trace(two, "o.json"));
  }
  SECTION("CPU-only trace") {
    const json trace = {{"traceEvents", json::array({cpu("ppsim/block/F", 0, 10), cpu("ppsim/block/B", 20, 10)})}};
    CHECK_THROWS_WITH(read_torch_trace(trace, "c.json"), Catch::StartsWith("c.json: traceEvents: no GPU activity"));
  }
  SECTION("a region that launched nothing") {
    const json trace = {{"traceEvents", json::array({cpu("ppsim/block/F", 0, 10), launch(5, 1), cpu("ppsim/block/B", 20, 10),
                                                     kernel(30, 5, 1)})}};
    CHECK_THROWS_WITH(read_torch_trace(trace, "n.json"),
                      Catch::StartsWith("n.json: traceEvents[2]: region 'ppsim/block/B' launched no GPU work"));
  }
  SECTION("malformed names, events and documents") {
    CHECK_THROWS_WITH(read_torch_trace({{"traceEvents", json::array({cpu("ppsim/mlp/F", 0, 1)})}}, "x.json"),
                      Catch::StartsWith("x.json: traceEvents[0].name: 'ppsim/mlp/F' is not ppsim/LAYER/PHASE"));
    json bad = cpu("ppsim/block/F", 0, 1);
    bad["dur"] = "long";
    CHECK_THROWS_WITH(read_torch_trace({{"traceEvents", json::array({bad})}}, "x.json"),
                      "x.json: traceEvents[0].dur: missing or not a number");
    CHECK_THROWS_WITH(read_torch_trace(json::object(), "x.json"),
                      Catch::StartsWith("x.json: traceEvents: missing: not a Chrome trace"));
    CHECK_THROWS_WITH(read_torch_trace({{"traceEvents", json::array({kernel(0, 1, 1)})}}, "x.json"),
                      Catch::StartsWith("x.json: traceEvents: no ppsim/LAYER/PHASE regions"));
  }
}
