// Vega-Lite spec and Chrome trace over real simulations (engine + registered schedules).
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>

#include "ppsim/run/run.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/views/trace.h"
#include "ppsim/views/vega.h"

using namespace ppsim;
using nlohmann::json;

namespace {

std::vector<StageCost> equal_costs(int stages) {
  StageCost c;
  c.forward = TimeNs::from_ms(1.0);
  c.backward = TimeNs::from_ms(2.0);
  c.weight_grad = TimeNs::from_ms(0.5);
  c.activation = Bytes{1 << 20};
  c.weight_activation = Bytes{1 << 18};
  c.output = Bytes{4 << 20};
  c.parameters = Bytes{8 << 20};
  return std::vector<StageCost>(static_cast<std::size_t>(stages), c);
}

struct Counts {
  std::size_t ops{0}, sends{0}, recvs{0}, counters{0};
  std::map<long, std::string> flows;  // id -> phases
};

Counts count(const json& trace) {
  Counts c;
  for (const json& e : trace["traceEvents"]) {
    const std::string ph = e["ph"];
    if (ph == "X" && e["tid"] == kTraceComputeTid) ++c.ops;
    if (ph == "X" && e["tid"] == kTraceSendTid) ++c.sends;
    if (ph == "X" && e["tid"] == kTraceRecvTid) ++c.recvs;
    if (ph == "C") ++c.counters;
    if (ph == "s" || ph == "t" || ph == "f") c.flows[e["id"].get<long>()] += ph;
  }
  return c;
}

}  // namespace

TEST_CASE("trace of a simulated 1F1B run is complete", "[trace][sim]") {
  const Schedule s = make_schedule("1f1b", ScheduleParams{4, 8, 1, 0});
  UniformLinkModel links(4, TimeNs::from_ms(0.01), 50.0);  // 4 MiB at 50 GB/s: ~84 us
  const SimResult r = simulate(s, equal_costs(s.num_stages), links);
  REQUIRE(r.ops.size() == 64);
  // 8 micro-batches cross 3 boundaries each way.
  REQUIRE(r.transfers.size() == 48);
  const Counts c = count(chrome_trace(s, r));
  CHECK(c.ops == r.ops.size());
  CHECK(c.sends == r.transfers.size());
  CHECK(c.recvs == r.transfers.size());
  CHECK(c.flows.size() == r.transfers.size());
  for (const auto& [id, phases] : c.flows) CHECK(phases == "stf");
  CHECK(c.counters == r.memory.size());
  // Counter values are the simulated samples, in order.
  std::vector<std::int64_t> bytes;
  const json doc1 = chrome_trace(s, r);
  for (const json& e : doc1["traceEvents"])
    if (e["ph"] == "C") bytes.push_back(e["args"]["bytes"].get<std::int64_t>());
  for (std::size_t i = 0; i < bytes.size(); ++i) CHECK(bytes[i] == r.memory[i].bytes.value);
  // Each flow ends inside the op that consumes the transfer.
  const json doc2 = chrome_trace(s, r);
  for (const json& e : doc2["traceEvents"]) {
    if (e["ph"] != "f") continue;
    const OpRecord& consumer = r.ops.at(r.transfers.at(e["id"].get<std::size_t>()).consumer);
    CHECK(e["pid"] == trace_pid(consumer.device));
    CHECK(e["ts"].get<double>() > static_cast<double>(consumer.start.ns) / 1e3);
    CHECK(e["ts"].get<double>() < static_cast<double>(consumer.end.ns) / 1e3);
  }
}

TEST_CASE("vega spec of a simulated run has every op and transfer", "[vega][sim]") {
  for (const char* name : {"gpipe", "1f1b"}) {
    const Schedule s = make_schedule(name, ScheduleParams{4, 8, 1, 0});
    UniformLinkModel links(4, TimeNs::from_ms(0.01), 50.0);
    const SimResult r = simulate(s, equal_costs(s.num_stages), links);
    const json spec = vega_spec(s, r);
    std::map<std::string, std::size_t> lanes;
    for (const json& b : spec["datasets"]["boxes"]) ++lanes[b["lane"]];
    CHECK(lanes["compute"] == r.ops.size());
    CHECK(lanes["send"] == r.transfers.size());
    CHECK(lanes["recv"] == r.transfers.size());
    CHECK(spec["vconcat"][0]["layer"][0]["encoding"]["x"]["scale"]["domain"][1].get<double>() ==
          r.last_end.ms());
  }
}

TEST_CASE("unit-time costs give the textbook 1F1B figure", "[vega][sim]") {
  const Schedule s = make_schedule("1f1b", ScheduleParams{4, 8, 1, 0});
  const std::vector<StageCost> unit = unit_time_costs(equal_costs(s.num_stages), s.chunks);
  CHECK(unit[0].forward == TimeNs::from_ms(1));
  CHECK(unit[0].backward == TimeNs::from_ms(2));
  CHECK(unit[0].weight_grad == TimeNs::from_ms(1));
  CHECK(unit[0].output == Bytes{});
  CHECK(unit[0].activation == Bytes{1 << 20});  // memory costs are kept
  UniformLinkModel free_links(4, TimeNs{}, 0.0);
  const SimResult r = simulate(s, unit, free_links);
  // (m + p - 1) * (F + B) = 11 * 3 slots; bubble (p-1)/(m+p-1) = 3/11.
  CHECK(r.iteration_time == TimeNs::from_ms(33));
  CHECK(r.transfers.empty());
  CHECK(pipeline_metrics(r).bubble_rate == Approx(3.0 / 11.0));
  VegaOptions o;
  o.unit_time = true;
  o.schedule_label = "1F1B";
  const json spec = vega_spec(s, r, o);
  CHECK(spec["title"]["text"] == "1F1B: p=4, m=8, v=1");
  CHECK(spec["title"]["subtitle"] == "iteration 33 slots, bubble 27.3%");
}

TEST_CASE("every registered schedule gives a complete spec and trace", "[vega][trace][sim]") {
  int covered = 0;
  for (const ScheduleInfo& info : all_schedules()) {
    Schedule s;
    bool made = false;
    for (int chunks : {1, 2}) {
      try {
        s = make_schedule(info.name, ScheduleParams{4, 8, chunks, 0});
        made = true;
        break;
      } catch (const ScheduleError&) {
      }
    }
    if (!made) continue;
    INFO(info.name);
    UniformLinkModel links(4, TimeNs::from_ms(0.01), 50.0);
    const SimResult r = simulate(s, equal_costs(s.num_stages), links);
    const json spec = vega_spec(s, r);
    std::size_t compute = 0;
    std::set<std::string> classes;
    for (const json& b : spec["datasets"]["boxes"]) {
      if (b["lane"] == "compute") ++compute;
      classes.insert(b["class"].get<std::string>());
    }
    CHECK(compute == r.ops.size());
    // Every class drawn has a colour in the scale (and nothing else is in it).
    std::set<std::string> domain;
    for (const json& d : spec["vconcat"][0]["layer"][s.synchronous ? 0 : 1]["encoding"]["color"]["scale"]["domain"])
      domain.insert(d.get<std::string>());
    CHECK(domain == classes);
    const Counts c = count(chrome_trace(s, r));
    CHECK(c.ops == r.ops.size());
    CHECK(c.flows.size() == r.transfers.size());
    CHECK(c.counters == r.memory.size());
    ++covered;
  }
  CHECK(covered >= 2);
}

TEST_CASE("unit time draws a chunk op at 1/v slot, as the Megatron-LM and zero-bubble papers do", "[vega][sim]") {
  UniformLinkModel free_links(4, TimeNs{}, 0.0);
  // Interleaved 1F1B, p = 4, m = 8, v = 2: F 0.5 slot, B 1 slot per chunk op. Each device
  // does m (F + B) = 8 x 3 = 24 slots of work, and the bubble is the Megatron-LM paper's
  // (p - 1)(F + B) / v = 3 x 3 / 2 = 4.5 slots: 28.5 slots in all.
  const Schedule inter = make_schedule("interleaved", ScheduleParams{4, 8, 2, 0});
  const std::vector<StageCost> half = unit_time_costs(equal_costs(inter.num_stages), inter.chunks);
  CHECK(half[0].forward == TimeNs::from_ms(0.5));
  CHECK(half[0].backward == TimeNs::from_ms(1.0));
  CHECK(half[0].weight_grad == TimeNs::from_ms(0.5));  // split B and W keep their sizes
  const SimResult ri = simulate(inter, half, free_links);
  CHECK(ri.iteration_time == TimeNs::from_ms(28.5));
  VegaOptions o;
  o.unit_time = true;
  CHECK(vega_spec(inter, ri, o)["title"]["subtitle"] == "iteration 28.5 slots, bubble 15.8%");
  // ZB-V, same shape: the same 24 slots of work per device (F, B, W half a slot each),
  // so it too is shorter than 1F1B's 33 slots, as it is in real time.
  const Schedule zbv = make_schedule("zbv", ScheduleParams{4, 8, 2, 0});
  const SimResult rz = simulate(zbv, unit_time_costs(equal_costs(zbv.num_stages), zbv.chunks), free_links);
  for (const DeviceMetrics& d : pipeline_metrics(rz).per_device) CHECK(d.compute == TimeNs::from_ms(24));
  CHECK(rz.iteration_time < TimeNs::from_ms(33));
  // v = 3: 10^6 ns is not a multiple of 3, so a chunk's F rounds down to 333333 ns.
  CHECK(unit_time_costs(equal_costs(3), 3)[0].forward == TimeNs{333333});
}
