#include "ppsim/cluster_report.h"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "ppsim/config.h"
#include "ppsim/memory_model.h"
#include "ppsim/metrics.h"
#include "ppsim/report.h"
#include "ppsim/topology.h"

namespace ppsim {

using nlohmann::json;

namespace {

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

void add_cluster_report(json& rep, const Run& run, const Metrics& m) {
  const Config& c = run.config;
  rep["partition"] = {{"kind", c.pipeline.partition.name()}, {"layers_per_stage", m.layers_per_stage}};
  const BytesPerParam bpp = bytes_per_param(c.memory.optimizer, c.memory.precision);
  rep["memory"] = {{"model", c.memory.given},
                   {"optimizer", optimizer_name(c.memory.optimizer)},
                   {"precision", precision_name(c.memory.precision)},
                   {"recompute", recompute_name(c.memory.recompute)},
                   {"zero1", c.memory.zero1},
                   {"bytes_per_param",
                    {{"weights", bpp.weights}, {"gradients", bpp.gradients}, {"optimizer", bpp.optimizer}}},
                   {"limit_bytes", m.memory_limit.value}};
  rep["fits"] = !m.oom.has_value();
  rep["oom"] = nullptr;
  if (m.oom)
    rep["oom"] = {{"device", m.oom->device},
                  {"time_ms", m.oom->time.ms()},
                  {"peak_bytes", m.oom->peak.value},
                  {"limit_bytes", m.oom->limit.value},
                  {"excess_bytes", (m.oom->peak - m.oom->limit).value}};
  if (m.data_parallel) {
    const DataParallelMetrics& dp = *m.data_parallel;
    rep["data_parallel"] = {{"degree", dp.degree},
                            {"ring_size", dp.ring_size},
                            {"overlap", dp.overlap},
                            {"link", dp.link},
                            {"gradient_bytes", dp.gradient_bytes.value},
                            {"allreduce_ms", dp.allreduce.ms()},
                            {"exposed_ms", dp.exposed.ms()}};
  }
  if (c.cluster.given())
    rep["cluster"] = {{"replicas_placed_alike", m.replicas_placed_alike},
                      {"nodes", c.cluster.nodes},
                      {"gpus_per_node", c.cluster.gpus_per_node},
                      {"nics_per_node", c.cluster.nics_per_node},
                      {"placement", c.cluster.placement == Placement::PipelineInner ? "pipeline" : "data"},
                      {"preset", c.cluster.preset}};
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
