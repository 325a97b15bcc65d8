// Chrome trace: well-formed and complete against the simulated run.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "ppsim/views/trace.h"
#include "test_vega_fixture.h"

using namespace ppsim;
using nlohmann::json;

TEST_CASE("trace names each device a process with compute/send/recv threads", "[trace]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  const json trace = chrome_trace(s, r);
  CHECK(trace["displayTimeUnit"] == "ms");
  std::map<int, std::string> processes;
  std::map<std::pair<int, int>, std::string> threads;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] != "M") continue;
    if (e["name"] == "process_name") processes[e["pid"]] = e["args"]["name"];
    if (e["name"] == "thread_name") threads[{e["pid"], e["tid"]}] = e["args"]["name"];
  }
  CHECK(processes == std::map<int, std::string>{{1, "device 0"}, {2, "device 1"}});
  CHECK(threads.size() == 6);
  CHECK(threads[{1, kTraceComputeTid}] == "compute");
  CHECK(threads[{2, kTraceSendTid}] == "send");
  CHECK(threads[{2, kTraceRecvTid}] == "recv");
}

TEST_CASE("trace has one complete event per op with times in microseconds", "[trace]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  const json trace = chrome_trace(s, r);
  std::vector<json> ops;
  for (const json& e : trace["traceEvents"])
    if (e["ph"] == "X" && e["tid"] == kTraceComputeTid) ops.push_back(e);
  REQUIRE(ops.size() == r.ops.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const OpRecord& rec = r.ops[i];
    CHECK(ops[i]["pid"] == trace_pid(rec.device));
    CHECK(ops[i]["ts"].get<double>() == static_cast<double>(rec.start.ns) / 1e3);
    CHECK(ops[i]["dur"].get<double>() == static_cast<double>((rec.end - rec.start).ns) / 1e3);
    CHECK(ops[i]["args"]["microbatch"] == rec.op.microbatch);
    CHECK(ops[i]["args"]["stage"] == rec.op.stage);
    CHECK(ops[i]["args"]["chunk"] == rec.op.chunk);
    CHECK(ops[i]["args"]["op_index"] == i);
  }
  // Device 0's B0: 5 ms to 7 ms.
  CHECK(ops[2]["name"] == "B0");
  CHECK(ops[2]["ts"].get<double>() == 5000.0);
  CHECK(ops[2]["dur"].get<double>() == 2000.0);
}

TEST_CASE("trace has one flow per transfer: send, recv, consuming op", "[trace]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2_with_links(&s);
  const json trace = chrome_trace(s, r);
  std::map<int, std::string> phases;  // flow id -> phases in order
  std::map<int, std::vector<json>> steps;
  int sends = 0, recvs = 0;
  for (const json& e : trace["traceEvents"]) {
    const std::string ph = e["ph"];
    if (ph == "s" || ph == "t" || ph == "f") {
      phases[e["id"]] += ph;
      steps[e["id"]].push_back(e);
    }
    if (ph == "X" && e["tid"] == kTraceSendTid) ++sends;
    if (ph == "X" && e["tid"] == kTraceRecvTid) ++recvs;
  }
  CHECK(sends == 4);
  CHECK(recvs == 4);
  REQUIRE(phases.size() == r.transfers.size());
  for (const auto& [id, p] : phases) CHECK(p == "stf");
  // Transfer 2: D1's B0 gradient (5-5.5 ms) to D0's B0 (5-7 ms).
  const auto& flow = steps[2];
  CHECK(flow[0]["pid"] == 2);
  CHECK(flow[0]["tid"] == kTraceSendTid);
  CHECK(flow[0]["ts"].get<double>() == 5250.0);
  CHECK(flow[1]["pid"] == 1);
  CHECK(flow[1]["tid"] == kTraceRecvTid);
  CHECK(flow[2]["pid"] == 1);
  CHECK(flow[2]["tid"] == kTraceComputeTid);
  CHECK(flow[2]["bp"] == "e");
  CHECK(flow[2]["ts"].get<double>() == 6000.0);  // inside D0's B0, off its boundaries
  for (const json& e : flow) CHECK(e["cat"] == flow[0]["cat"]);
}

TEST_CASE("trace memory counters equal the simulated samples", "[trace]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2(&s);
  const json trace = chrome_trace(s, r);
  std::vector<json> counters;
  for (const json& e : trace["traceEvents"])
    if (e["ph"] == "C") counters.push_back(e);
  REQUIRE(counters.size() == r.memory.size());
  for (std::size_t i = 0; i < counters.size(); ++i) {
    CHECK(counters[i]["name"] == "memory");
    CHECK(counters[i]["pid"] == trace_pid(r.memory[i].device));
    CHECK(counters[i]["ts"].get<double>() == static_cast<double>(r.memory[i].t.ns) / 1e3);
    CHECK(counters[i]["args"]["bytes"].get<std::int64_t>() == r.memory[i].bytes.value);
  }
  CHECK(counters[1]["args"]["bytes"] == 3 * (1 << 20));
}

TEST_CASE("trace slices on one thread never overlap", "[trace]") {
  Schedule s;
  const SimResult r = test::gpipe_2x2_with_links(&s);
  std::map<std::pair<int, int>, std::vector<std::pair<double, double>>> lanes;
  const json doc1 = chrome_trace(s, r);
  for (const json& e : doc1["traceEvents"])
    if (e["ph"] == "X")
      lanes[{e["pid"], e["tid"]}].push_back({e["ts"].get<double>(),
                                            e["ts"].get<double>() + e["dur"].get<double>()});
  for (auto& [lane, slices] : lanes) {
    std::sort(slices.begin(), slices.end());
    for (std::size_t i = 1; i < slices.size(); ++i) CHECK(slices[i].first >= slices[i - 1].second);
  }
}

TEST_CASE("trace puts overlapping transfers of one device on extra lanes", "[trace]") {
  Schedule s;
  SimResult r = test::gpipe_2x2_with_links(&s);
  // D0 sends F1's output while F0's is still in flight (1.0-1.5 ms): a second send lane.
  r.transfers.insert(r.transfers.begin() + 1, {0, 1, 1, 5, Bytes{4096}, test::ms(1.2), test::ms(1.8)});
  r.transfers.erase(r.transfers.begin() + 2);  // drop the old F1 transfer at 2.0 ms
  const json trace = chrome_trace(s, r);
  std::map<std::pair<int, int>, std::string> threads;
  std::map<std::pair<int, int>, std::vector<std::pair<double, double>>> lanes;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") threads[{e["pid"], e["tid"]}] = e["args"]["name"];
    if (e["ph"] == "X")
      lanes[{e["pid"], e["tid"]}].push_back({e["ts"].get<double>(),
                                            e["ts"].get<double>() + e["dur"].get<double>()});
  }
  CHECK(extra_lane_tid(kTraceSendTid, 1) == 201);
  CHECK(threads[{1, 201}] == "send 2");
  CHECK(threads[{2, 301}] == "recv 2");
  CHECK(lanes[{1, kTraceSendTid}].size() == 1);  // 1.0-1.5
  CHECK(lanes[{1, 201}].size() == 1);            // 1.2-1.8
  CHECK(threads.count({1, 202}) == 0);
  for (auto& [lane, slices] : lanes) {
    std::sort(slices.begin(), slices.end());
    for (std::size_t i = 1; i < slices.size(); ++i) CHECK(slices[i].first >= slices[i - 1].second);
  }
  // Flows follow the lanes the slices went to.
  for (const json& e : trace["traceEvents"])
    if (e["ph"] == "s" && e["id"] == 1) CHECK(e["tid"] == 201);
}
