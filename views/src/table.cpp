/// @file table.cpp
/// @brief The human table `ppsim run` prints: a view over the report JSON.
#include <iomanip>
#include <sstream>

#include "format.h"
#include "ppsim/views/report.h"

namespace ppsim {

using nlohmann::json;

using views::human_bytes;

namespace {

// Partition, memory, OOM, placement and data-parallel lines.
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
        << " precision, recompute " << m["recompute"].get<std::string>() << (m["zero"].get<std::string>() == "0" ? "" : m["zero"].get<std::string>() == "distributed" ? ", distributed optimizer" : ", ZeRO-" + m["zero"].get<std::string>())
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
  if (rep.value("tensor_parallel", 1) > 1) {
    double f = 0, b = 0;
    for (const auto& st : rep["per_stage"]) {
      f += st["forward_comm_ms"].get<double>();
      b += st["backward_comm_ms"].get<double>();
    }
    o << "tensor parallel: t = " << rep["tensor_parallel"].get<int>()
      << (rep["sequence_parallel"].get<bool>() ? " with sequence parallelism" : "") << ", collectives "
      << std::setprecision(3) << f << " ms of F and " << b << " ms of B per micro-batch over all stages\n";
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


}  // namespace

namespace {

// Iteration, bubble, memory, throughput and critical path lines. A unit-time report
// (--unit-time) counts slots and has no rate: it shows slots, bubble and memory only.
std::string format_summary_lines(const json& rep, bool slots) {
  const char* unit = slots ? " slots" : " ms";
  std::ostringstream o;
  o << std::fixed;
  o << std::setprecision(slots ? 2 : 4) << "iteration time " << rep["iteration_time_ms"].get<double>() << unit;
  if (!rep["synchronous"].get<bool>())
    o << " (steady state over " << rep["measured_window"]["iterations"] << " iterations)";
  o << std::setprecision(4) << "  bubble rate " << rep["bubble_rate"].get<double>() << "  bubble overhead "
    << rep["bubble_overhead"].get<double>() << "\n";
  o << "peak memory " << human_bytes(rep["peak_memory_bytes"].get<double>());
  if (!slots) {
    o << "  throughput " << std::setprecision(2) << rep["samples_per_s"].get<double>() << " samples/s";
    if (rep.contains("tokens_per_s")) o << ", " << rep["tokens_per_s"].get<double>() << " tokens/s";
    if (rep.contains("mfu")) o << ", MFU " << std::setprecision(3) << rep["mfu"].get<double>();
  }
  o << "\n";
  if (rep.contains("critical_path")) {
    const auto& cp = rep["critical_path"];
    o << std::setprecision(3) << "critical path " << cp["length_ms"].get<double>() << unit << ": compute "
      << cp["compute_ms"].get<double>() << unit << " over " << cp["ops"] << " ops, communication "
      << cp["communication_ms"].get<double>() << unit << " over " << cp["transfers"] << " transfers, link waits "
      << cp["link_wait_ms"].get<double>() << unit << "\n";
  }
  return o.str();
}

std::string format_device_lines(const json& rep, bool slots) {
  const int w = slots ? 14 : 12;  // the ms table keeps its columns
  std::ostringstream o;
  o << std::fixed;
  const bool comm = rep.contains("communication");  // blocked time exists only beyond ideal communication
  o << std::left << std::setw(7) << "device" << std::right << std::setw(w) << (slots ? "compute_slots" : "compute_ms");
  if (comm) o << std::setw(12) << (slots ? "blocked_slots" : "blocked_ms");
  o << std::setw(12) << (slots ? "idle_slots" : "idle_ms") << std::setw(8) << "bubble" << std::setw(14)
    << "peak_memory" << std::setw(14) << "activations" << std::setw(14) << "weights" << std::setw(9) << "versions"
    << "\n";
  for (const auto& d : rep["per_device"]) {
    o << std::left << std::setw(7) << d["device"].get<int>() << std::right << std::setprecision(3) << std::setw(w)
      << d["compute_ms"].get<double>();
    if (comm) o << std::setw(12) << d["blocked_ms"].get<double>();
    o << std::setw(12) << d["idle_ms"].get<double>() << std::setw(8)
      << d["bubble_rate"].get<double>() << std::setw(14) << human_bytes(d["peak_memory_bytes"].get<double>())
      << std::setw(14) << human_bytes(d["peak_activation_bytes"].get<double>()) << std::setw(14)
      << human_bytes(d["weights_bytes"].get<double>()) << std::setw(9) << d["weight_versions"].get<int>() << "\n";
  }
  return o.str();
}

}  // namespace

std::string format_report_table(const json& rep) {
  const bool slots = rep.value("unit_time", false);
  std::ostringstream o;
  o << "schedule " << rep["schedule"].get<std::string>() << "  stages " << rep["stages"] << "  microbatches "
    << rep["microbatches"] << "  chunks " << rep["chunks"] << "  devices " << rep["devices"];
  if (rep.contains("communication")) o << "  communication " << rep["communication"].get<std::string>();
  if (rep.contains("overlap")) o << "  overlap " << rep["overlap"].get<double>();
  o << "\n";
  if (slots)
    o << "unit time: a stage's F is 1 slot, its backward 2 (split: B 1, W 1); a chunk op is 1/v of that\n";
  else if (rep.contains("model") && rep["model"].is_string() &&
           rep["model"].get<std::string>().find("[costs:") != std::string::npos)
    o << "model " << rep["model"].get<std::string>() << "\n";
  o << format_summary_lines(rep, slots) << format_cluster_lines(rep) << "\n" << format_device_lines(rep, slots);
  return o.str();
}

}  // namespace ppsim
