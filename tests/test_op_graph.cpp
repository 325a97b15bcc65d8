// The op graph: its edges pinned on a small schedule, cycles named before simulating, and
// the property that its longest path and the engine agree on the makespan to the
// nanosecond for every registered schedule over a grid of shapes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "ppsim/engine/engine.h"
#include "ppsim/engine/event_queue.h"
#include "ppsim/engine/op_graph.h"
#include "ppsim/schedules/registry.h"

using namespace ppsim;

namespace {

std::vector<std::pair<std::uint32_t, std::uint32_t>> edge_list(const OpGraph& g) {
  std::vector<std::pair<std::uint32_t, std::uint32_t>> out;
  for (const auto e : boost::make_iterator_range(boost::edges(g.csr)))
    out.emplace_back(static_cast<std::uint32_t>(boost::source(e, g.csr)), static_cast<std::uint32_t>(boost::target(e, g.csr)));
  return out;
}

/// Stage costs that differ per stage, all positive and even so transfer times are exact.
std::vector<StageCost> varied_costs(int stages) {
  std::vector<StageCost> costs(static_cast<std::size_t>(stages));
  for (int k = 0; k < stages; ++k) {
    StageCost& c = costs[k];
    c.forward = TimeNs{1'000 + 170 * k};
    c.weight_grad = TimeNs{700 + 30 * (k % 3)};
    c.backward = c.weight_grad + TimeNs{1'300 + 90 * (k % 4)};
    c.activation = Bytes{1'000};
    c.output = Bytes{40 + 20 * (k % 3)};        // 20-40 ns at 2 bytes/ns
    c.parameters = Bytes{600 + 120 * (k % 5)};  // gradient sync ring steps
  }
  return costs;
}

constexpr std::int64_t kLatency = 15;   // ns
constexpr std::int64_t kBytesPerNs = 2; // 2 GB/s

/// The makespan as the longest path over the graph, costed here independently of the
/// engine and its link model: an op takes its duration, a data edge between devices
/// latency + bytes / bandwidth, a gradient sync 2(n-1) ring steps of a 1/n piece.
std::int64_t longest_path_makespan(const Schedule& s, const OpGraph& g, const std::vector<StageCost>& costs, bool links) {
  std::vector<const Op*> op(g.num_ops);
  std::vector<int> device(g.num_ops);
  for (int d = 0; d < s.devices; ++d)
    for (std::size_t i = 0; i < s.device_ops[d].size(); ++i) {
      op[g.device_first_op[d] + i] = &s.device_ops[d][i];
      device[g.device_first_op[d] + i] = d;
    }
  auto node = [&](std::uint32_t v) -> std::int64_t {
    if (g.is_sync(v)) {
      const GradientSync& sync = s.gradient_syncs[v - g.num_ops];
      const std::int64_t n = static_cast<std::int64_t>(sync.devices.size());
      if (!links || n < 2) return 0;
      const std::int64_t piece = (costs[sync.stage].parameters.value + n - 1) / n;
      return 2 * (n - 1) * (kLatency + (piece + kBytesPerNs - 1) / kBytesPerNs);
    }
    const StageCost& c = costs[op[v]->stage];
    switch (op[v]->kind) {
      case OpKind::Forward: return c.forward.ns;
      case OpKind::Backward: return (s.split_backward ? c.backward - c.weight_grad : c.backward).ns;
      case OpKind::Weight: return c.weight_grad.ns;
    }
    return 0;
  };
  auto edge = [&](std::uint32_t u, std::uint32_t v) -> std::int64_t {
    if (!links || g.is_sync(v) || device[u] == device[v]) return 0;
    return kLatency + costs[std::min(op[u]->stage, op[v]->stage)].output.value / kBytesPerNs;
  };
  const LongestPath lp = longest_path(g, node, edge, [](auto, auto, auto) { return false; });
  return *std::max_element(lp.end.begin(), lp.end.end());
}

/// True when no transfer and no gradient sync waited for a busy link in the run.
bool no_link_wait(const SimResult& r, bool links) {
  for (const TransferRecord& t : r.transfers)
    if (t.start != r.ops[t.producer].end) return false;
  for (const CollectiveRecord& c : r.collectives) {
    const std::int64_t n = static_cast<std::int64_t>(c.devices.size());
    if (n < 2 || !links) continue;
    const std::int64_t piece = (c.bytes.value + n - 1) / n;
    const std::int64_t step = kLatency + piece / kBytesPerNs + (piece % kBytesPerNs != 0 ? 1 : 0);
    if ((c.end - c.start).ns != 2 * (n - 1) * step) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("op graph of 1f1b p=2 m=1: data, split and device-order edges in their fixed order", "[op_graph]") {
  const Schedule s = make_schedule("1f1b", {2, 1, 1, 0});
  const OpGraph g = build_op_graph(s);
  // nodes: 0 d0 F0, 1 d0 B0, 2 d1 F0, 3 d1 B0
  CHECK(g.num_ops == 4);
  CHECK(g.num_nodes() == 4);
  CHECK(g.device_first_op == std::vector<int>{0, 2, 4});
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> expected = {
      {0, 2}, {0, 1},  // F0 s0 -> F0 s1, -> its B0 (data and device order: one edge)
      {2, 3},          // F0 s1 -> its B0
      {3, 1}};         // B0 s1 -> B0 s0
  CHECK(edge_list(g) == expected);
  CHECK(in_degrees(g) == std::vector<std::uint32_t>{0, 2, 1, 1});
  std::vector<std::uint32_t> counted;
  build_op_graph(s, &counted);
  CHECK(counted == in_degrees(g));
  CHECK(topological_order(g) == std::vector<std::uint32_t>{0, 2, 3, 1});
  CHECK(find_cycle(g).empty());
}

TEST_CASE("op graph: W waits for B, and a gradient sync for each replica's last op on its stage", "[op_graph]") {
  const Schedule zb = make_schedule("zb-h1", {2, 1, 1, 0});
  const OpGraph g = build_op_graph(zb);
  // device 1 runs F0 B0 W0 (nodes 3, 4, 5): B0 feeds B0 of stage 0 (node 1) and W0
  // (data and device order, one edge)
  auto out = [&](std::uint32_t u) {
    std::vector<std::uint32_t> t;
    for (const auto e : boost::make_iterator_range(boost::out_edges(u, g.csr))) t.push_back(static_cast<std::uint32_t>(boost::target(e, g.csr)));
    return t;
  };
  REQUIRE(g.num_ops == 6);
  CHECK(out(4) == std::vector<std::uint32_t>{1, 5});
  CHECK(out(5).empty());

  const Schedule dp = make_schedule("dualpipe", {2, 4, 1, 0});
  REQUIRE(!dp.gradient_syncs.empty());
  std::vector<std::uint32_t> in;
  const OpGraph h = build_op_graph(dp, &in);
  CHECK(in == in_degrees(h));
  for (std::size_t k = 0; k < dp.gradient_syncs.size(); ++k) {
    CHECK(in[h.num_ops + k] == dp.gradient_syncs[k].devices.size());
  }
}

TEST_CASE("a cycle of waits across devices is named device by device", "[op_graph]") {
  // device 0: F0 B0 F1 B1; device 1: F1 F0 B0 B1 (F1 jumps ahead of F0 on device 1)
  Schedule s = make_schedule("1f1b", {2, 2, 1, 0});
  s.device_ops[0] = {{OpKind::Forward, 0, 0, 0, 0}, {OpKind::Backward, 0, 0, 0, 0},
                     {OpKind::Forward, 1, 0, 0, 0}, {OpKind::Backward, 1, 0, 0, 0}};
  s.device_ops[1] = {{OpKind::Forward, 1, 1, 0, 0}, {OpKind::Forward, 0, 1, 0, 0},
                     {OpKind::Backward, 0, 1, 0, 0}, {OpKind::Backward, 1, 1, 0, 0}};
  const OpGraph g = build_op_graph(s);
  CHECK(find_cycle(g) == std::vector<std::uint32_t>{1, 6, 5, 4, 2});
  UniformLinkModel free_links(2, TimeNs{}, 0.0);
  CHECK_THROWS_MATCHES(simulate(s, varied_costs(2), free_links), ScheduleError,
                       Catch::Message("cycle of waits: device 0 B0 (stage 0) waits for device 1 B0 (stage 1), which "
                                      "waits for device 1 F0 (stage 1), which waits for device 1 F1 (stage 1), which "
                                      "waits for device 0 F1 (stage 0), which waits for device 0 B0 (stage 0)"));
}

TEST_CASE("ppsim run: a user schedule with a cycle exits 2 with one line naming the file and the cycle", "[op_graph][cli]") {
  using namespace ppsim_test;
  const auto dir = scratch_dir("op_graph_cycle");
  write_file(dir / "c.json", R"({"model": {"layers": [{"repeat": 4, "forward_ms": 1, "backward_ms": 2}]},
    "cluster": {"devices": 2}, "pipeline": {"stages": 2, "microbatches": 2}})");
  const std::string file = std::string(PPSIM_TEST_DATA) + "/cycle_schedule.json";
  const auto r = run_ppsim("run " + (dir / "c.json").string() + " --schedule-file " + file + " --report " +
                               (dir / "r.json").string(),
                           dir);
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK(r.err == "ppsim: error: " + file +
                     ": cycle of waits: device 0 B0 (stage 0) waits for device 1 B0 (stage 1), which waits for device 1 "
                     "F0 (stage 1), which waits for device 1 F1 (stage 1), which waits for device 0 F1 (stage 0), which "
                     "waits for device 0 B0 (stage 0)\n");
  CHECK(!std::filesystem::exists(dir / "r.json"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("longest path over the op graph equals the engine's makespan for every schedule and shape",
          "[op_graph][property]") {
  int compared = 0, queued = 0, syncs = 0;
  for (const ScheduleInfo& info : all_schedules())
    for (int p = 1; p <= 6; ++p)
      for (int m = 1; m <= 12; ++m)
        for (int v = 1; v <= 3; ++v) {
          Schedule s;
          try {
            s = make_schedule(info.name, {p, m, v, 0});
          } catch (const ScheduleError&) {
            continue;
          }
          const auto costs = varied_costs(s.num_stages);
          const OpGraph g = build_op_graph(s);
          for (const bool links : {false, true}) {
            UniformLinkModel model(s.devices, links ? TimeNs{kLatency} : TimeNs{}, links ? double(kBytesPerNs) : 0.0);
            const SimResult r = simulate(s, costs, model);
            if (!no_link_wait(r, links)) {
              ++queued;
              continue;
            }
            INFO(info.name << " p=" << p << " m=" << m << " v=" << v << " links=" << links);
            const std::int64_t makespan = (r.last_end - r.first_start).ns;
            REQUIRE(longest_path_makespan(s, g, costs, links) == makespan);
            if (s.synchronous) REQUIRE(r.iteration_time.ns == makespan);
            ++compared;
            syncs += static_cast<int>(r.collectives.size());
          }
        }
  // At these costs only gradient syncs that share a device pair queue (69 of 1688 runs
  // today); both kinds of edge and the syncs are covered.
  CHECK(compared > 10 * queued);
  CHECK(compared > 1000);
  CHECK(syncs > 100);
}

TEMPLATE_TEST_CASE("event queues pop in (time, seq) order", "[engine][queue]", BinaryHeapQueue, QuaternaryHeapQueue) {
  TestType q;
  CHECK(q.empty());
  std::mt19937_64 rng(7);
  std::vector<Event> pushed;
  std::uint64_t seq = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 40; ++i) {
      const Event e = Event::make(TimeNs{static_cast<std::int64_t>(rng() % 100)}, seq++,
                                  static_cast<std::uint32_t>(rng() % 1000), (rng() & 1) != 0);
      q.push(e);
      pushed.push_back(e);
    }
    std::sort(pushed.begin(), pushed.end(), [](const Event& a, const Event& b) { return a.key < b.key; });
    for (int i = 0; i < 30; ++i) {  // pop most, keep some across rounds
      REQUIRE(!q.empty());
      const Event e = q.pop();
      REQUIRE(e.key == pushed.front().key);
      pushed.erase(pushed.begin());
    }
  }
  while (!pushed.empty()) {
    REQUIRE(q.pop().key == pushed.front().key);
    pushed.erase(pushed.begin());
  }
  CHECK(q.empty());
  const Event e = Event::make(TimeNs{123'456'789}, 42, 99'999, true);
  CHECK(e.time().ns == 123'456'789);
  CHECK(e.target() == 99'999);
  CHECK(e.flag());
}

TEST_CASE("the engine gives the same run on every event queue", "[engine][queue]") {
  for (const char* name : {"1f1b", "interleaved", "dualpipe", "zbv"}) {
    const Schedule s = make_schedule(name, {4, 8, name == std::string("1f1b") || name == std::string("dualpipe") ? 1 : 2, 0});
    UniformLinkModel a(s.devices, TimeNs{5'000}, 0.5), b(s.devices, TimeNs{5'000}, 0.5);
    const auto costs = varied_costs(s.num_stages);
    const SimResult x = simulate(s, costs, a, SimOptions{true, EventQueueKind::BinaryHeap});
    const SimResult y = simulate(s, costs, b, SimOptions{true, EventQueueKind::QuaternaryHeap});
    REQUIRE(x.ops.size() == y.ops.size());
    for (std::size_t i = 0; i < x.ops.size(); ++i) {
      REQUIRE(x.ops[i].start == y.ops[i].start);
      REQUIRE(x.ops[i].end == y.ops[i].end);
    }
    REQUIRE(x.transfers.size() == y.transfers.size());
    for (std::size_t i = 0; i < x.transfers.size(); ++i) REQUIRE(x.transfers[i].start == y.transfers[i].start);
    CHECK(x.last_end == y.last_end);
  }
}
