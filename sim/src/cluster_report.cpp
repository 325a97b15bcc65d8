#include "ppsim/cluster_report.h"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "ppsim/config.h"
#include "ppsim/memory_model.h"
#include "ppsim/report.h"
#include "ppsim/topology.h"

namespace ppsim {

using nlohmann::json;

std::vector<int> stage_inflight_peaks(const Schedule& s) {
  std::vector<int> peak(static_cast<std::size_t>(s.num_stages), 0);
  for (const auto& ops : s.device_ops) {
    std::vector<int> cur(static_cast<std::size_t>(s.pipes) * s.num_stages, 0);
    for (const Op& op : ops) {
      int& n = cur[static_cast<std::size_t>(op.pipe) * s.num_stages + op.stage];
      if (op.kind == OpKind::Forward) peak[op.stage] = std::max(peak[op.stage], ++n);
      if (op.kind == OpKind::Backward) --n;
    }
  }
  return peak;
}

namespace {

void fold_exposed_allreduce(json& rep, const SimResult& r, TimeNs exposed) {
  if (exposed.ns <= 0) return;
  const double old_ms = rep["iteration_time_ms"].get<double>();
  const double new_ms = old_ms + exposed.ms();
  rep["pipeline_time_ms"] = old_ms;
  rep["iteration_time_ms"] = new_ms;
  const double scale = new_ms > 0 ? old_ms / new_ms : 0.0;
  for (const char* key : {"samples_per_s", "tokens_per_s", "mfu"})
    if (rep.contains(key)) rep[key] = rep[key].get<double>() * scale;
  const double window_ms = (r.window_end - r.window_start).ms();
  const double grown_ms = window_ms + exposed.ms() * r.window_iterations;
  double bubble_sum = 0, overhead_sum = 0;
  for (auto& d : rep["per_device"]) {
    const double busy = (1.0 - d["bubble_rate"].get<double>()) * window_ms;
    const double bubble = grown_ms > 0 ? 1.0 - busy / grown_ms : 0.0;
    d["bubble_rate"] = bubble;
    d["idle_ms"] = d["idle_ms"].get<double>() + exposed.ms();
    bubble_sum += bubble;
    overhead_sum += busy > 0 ? (grown_ms - busy) / busy : 0.0;
  }
  const auto n = static_cast<double>(rep["per_device"].size());
  if (n > 0) {
    rep["bubble_rate"] = bubble_sum / n;
    rep["bubble_overhead"] = overhead_sum / n;
  }
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  const bool negative = b < 0;
  if (negative) b = -b;
  while (b >= 1024.0 && u < 5) {
    b /= 1024.0;
    ++u;
  }
  std::ostringstream o;
  o << (negative ? "-" : "") << std::fixed << std::setprecision(u == 0 ? 0 : 2) << b << ' ' << units[u];
  return o.str();
}

}  // namespace

void add_cluster_report(json& rep, const Run& run, const SimResult& r) {
  const Config& c = run.config;
  const Schedule& s = run.schedule;

  // Partition and per-stage layers, time and memory.
  const auto counts = stage_layer_counts(c);
  rep["partition"] = {{"kind", c.pipeline.partition.name()}, {"layers_per_stage", counts}};
  const std::vector<int> inflight = stage_inflight_peaks(s);
  if (rep.contains("per_stage")) {
    for (auto& st : rep["per_stage"]) {
      const auto k = st["stage"].get<std::size_t>();
      if (k >= run.costs.size()) continue;
      const StageCost& sc = run.costs[k];
      st["layer_count"] = counts[k];
      st["time_ms"] = (sc.forward + sc.backward).ms();
      st["static_bytes"] = sc.static_extra.value;
      st["peak_inflight_microbatches"] = inflight[k];
      st["peak_memory_bytes"] = stage_peak_memory(sc, s.weights, inflight[k]).value;
    }
  }

  // Memory model and limit.
  const BytesPerParam bpp = bytes_per_param(c.memory.optimizer, c.memory.precision);
  const std::int64_t limit = memory_limit_bytes(c);
  json mem = {{"model", c.memory.given},
              {"optimizer", optimizer_name(c.memory.optimizer)},
              {"precision", precision_name(c.memory.precision)},
              {"recompute", recompute_name(c.memory.recompute)},
              {"zero1", c.memory.zero1},
              {"bytes_per_param", {{"weights", bpp.weights}, {"gradients", bpp.gradients}, {"optimizer", bpp.optimizer}}},
              {"limit_bytes", limit}};
  rep["memory"] = mem;
  const auto oom = find_out_of_memory(r, Bytes{limit});
  rep["fits"] = !oom.has_value();
  if (oom) {
    rep["oom"] = {{"device", oom->device},
                  {"time_ms", oom->time.ms()},
                  {"peak_bytes", oom->peak.value},
                  {"limit_bytes", oom->limit.value},
                  {"excess_bytes", oom->excess().value}};
  } else {
    rep["oom"] = nullptr;
  }

  // Data parallelism.
  const DataParallelCost dp = data_parallel_cost(run, r);
  TimeNs longest{};
  Bytes grads{};
  for (std::size_t d = 0; d < dp.allreduce.size(); ++d) {
    longest = std::max(longest, dp.allreduce[d]);
    grads = std::max(grads, dp.gradient_bytes[d]);
  }
  rep["data_parallel"] = {{"degree", dp.degree},
                          {"ring_size", dp.group},
                          {"overlap", dp.overlap},
                          {"link", dp.link},
                          {"gradient_bytes", grads.value},
                          {"allreduce_ms", longest.ms()},
                          {"exposed_ms", dp.exposed.ms()}};
  if (rep.contains("per_device"))
    for (auto& d : rep["per_device"]) {
      const auto k = d["device"].get<std::size_t>();
      if (k >= dp.allreduce.size()) continue;
      d["allreduce_ms"] = dp.allreduce[k].ms();
      d["allreduce_end_ms"] = dp.finish[k].ms();
    }
  fold_exposed_allreduce(rep, r, dp.exposed);
  if (c.cluster.given()) {
    // Only replica 0 is simulated; say so when another replica crosses nodes at other
    // stage boundaries (p neither divides nor is a multiple of gpus_per_node).
    const TopologyLinkModel topo(c.cluster, r.devices, dp.degree);
    bool differ = false;
    for (int rep_i = 1; rep_i < dp.degree && !differ; ++rep_i)
      for (int d = 0; d + 1 < r.devices && !differ; ++d)
        differ = (topo.node_of(topo.gpu(d, rep_i)) != topo.node_of(topo.gpu(d + 1, rep_i))) !=
                 (topo.node_of(topo.gpu(d, 0)) != topo.node_of(topo.gpu(d + 1, 0)));
    rep["cluster"] = {{"replicas_placed_alike", !differ},
                      {"nodes", c.cluster.nodes},
                      {"gpus_per_node", c.cluster.gpus_per_node},
                      {"nics_per_node", c.cluster.nics_per_node},
                      {"placement", c.cluster.placement == Placement::PipelineInner ? "pipeline" : "data"},
                      {"preset", c.cluster.preset}};
  }
}

std::string format_cluster_lines(const json& rep) {
  std::ostringstream o;
  o << std::fixed;
  if (rep.contains("partition") && rep["partition"]["kind"] != "uniform") {
    o << "partition " << rep["partition"]["kind"].get<std::string>() << ": layers per stage";
    for (const auto& k : rep["partition"]["layers_per_stage"]) o << ' ' << k.get<int>();
    o << "\n";
  }
  if (rep.contains("memory")) {
    const auto& m = rep["memory"];
    if (m["model"].get<bool>() || m["recompute"] != "none")
      o << "memory model: " << m["optimizer"].get<std::string>() << ", " << m["precision"].get<std::string>()
        << " precision, recompute " << m["recompute"].get<std::string>() << (m["zero1"].get<bool>() ? ", ZeRO-1" : "")
        << "\n";
    const auto limit = m["limit_bytes"].get<std::int64_t>();
    if (rep.contains("oom") && !rep["oom"].is_null()) {
      const auto& x = rep["oom"];
      o << "OOM: device " << x["device"].get<int>() << " exceeds the " << human_bytes(static_cast<double>(limit))
        << " limit by " << human_bytes(x["excess_bytes"].get<double>()) << " (peak "
        << human_bytes(x["peak_bytes"].get<double>()) << ") from t = " << std::setprecision(3)
        << x["time_ms"].get<double>() << " ms\n";
    } else if (limit > 0) {
      o << "fits: peak " << human_bytes(rep["peak_memory_bytes"].get<double>()) << " of the "
        << human_bytes(static_cast<double>(limit)) << " limit\n";
    }
  }
  if (rep.contains("cluster") && !rep["cluster"]["replicas_placed_alike"].get<bool>())
    o << "note: pipeline replicas cross nodes at different stages; replica 0 is the one simulated\n";
  if (rep.contains("data_parallel") && rep["data_parallel"]["ring_size"].get<int>() > 1) {
    const auto& d = rep["data_parallel"];
    o << "data parallel x" << d["degree"].get<int>() << ", rings of " << d["ring_size"].get<int>() << " (" << d["link"].get<std::string>()
      << " links): gradient all-reduce " << std::setprecision(3) << d["allreduce_ms"].get<double>()
      << " ms, exposed " << d["exposed_ms"].get<double>() << " ms"
      << (d["overlap"].get<bool>() ? " (overlapped with backward)" : "") << "\n";
  }
  return o.str();
}

}  // namespace ppsim
