#include "ppsim/report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <unistd.h>

#include "ppsim/cluster_report.h"
#include "ppsim/metrics.h"
#include "ppsim/registry.h"
#include "ppsim/user_schedule.h"
#include "ppsim/topology.h"

namespace ppsim {

using nlohmann::json;

Run prepare_run(const Config& config) {
  check_pipeline(config);
  Run run{config, {}, {}};
  ScheduleParams params{config.pipeline.stages, config.pipeline.microbatches, config.pipeline.chunks,
                        config.pipeline.iterations};
  if (config.pipeline.schedule_file.empty()) {
    run.schedule = make_schedule(config.pipeline.schedule, params);
  } else {
    run.schedule = load_user_schedule(config.pipeline.schedule_file);
    if (run.schedule.devices != params.stages || run.schedule.microbatches != params.microbatches ||
        run.schedule.chunks != params.chunks)
      throw ScheduleError(config.pipeline.schedule_file + ": its shape (devices " + std::to_string(run.schedule.devices) +
                          ", microbatches " + std::to_string(run.schedule.microbatches) + ", chunks " +
                          std::to_string(run.schedule.chunks) + ") differs from the config's pipeline");
  }
  run.costs = stage_costs(config);
  return run;
}

std::unique_ptr<LinkModel> make_links(const Config& config, int devices) {
  return make_topology_links(config, devices);
}

json critical_path_json(const CriticalPath& cp) {
  return json{{"length_ms", cp.length().ms()},
              {"compute_ms", cp.compute.ms()},
              {"communication_ms", cp.communication.ms()},
              {"link_wait_ms", cp.link_wait.ms()},
              {"ops", cp.ops},
              {"transfers", cp.transfers},
              {"steps", cp.steps},
              {"steps_truncated", cp.steps_truncated}};
}

json critical_path(const SimResult& result, std::size_t max_steps) {
  return critical_path_json(critical_path_of(result, max_steps));
}

namespace {

json device_json(const DeviceMetrics& d) {
  json o = {{"device", d.device},
            {"compute_ms", d.compute.ms()},
            {"idle_ms", d.idle_ms},
            {"bubble_rate", d.bubble_rate},
            {"peak_memory_bytes", d.peak_memory.value},
            {"peak_activation_bytes", d.peak_activation.value},
            {"peak_inflight_microbatches", d.peak_inflight},
            {"weights_bytes", d.weights.value},
            {"static_bytes", d.static_bytes.value},
            {"weight_versions", d.weight_versions},
            {"peak_time_ms", d.peak_time.ms()},
            {"send_ms", d.send_ms},
            {"recv_ms", d.recv_ms}};
  if (d.has_allreduce) {
    o["allreduce_ms"] = d.allreduce.ms();
    o["allreduce_end_ms"] = d.allreduce_end.ms();
  }
  return o;
}

json stage_json(const StageMetrics& st, int layer_count) {
  const StageCost& sc = st.cost;
  return {{"stage", st.stage},
          {"layers", {st.first_layer, st.last_layer}},
          {"forward_ms", sc.forward.ms()},
          {"backward_ms", sc.backward.ms()},
          {"weight_grad_ms", sc.weight_grad.ms()},
          {"activation_bytes", sc.activation.value},
          {"output_bytes", sc.output.value},
          {"parameter_bytes", sc.parameters.value},
          {"layer_count", layer_count},
          {"time_ms", (sc.forward + sc.backward).ms()},
          {"static_bytes", sc.static_extra.value},
          {"peak_inflight_microbatches", st.peak_inflight},
          {"peak_memory_bytes", st.peak_memory.value}};
}

}  // namespace

json report_json(const Run& run, const Metrics& m) {
  const Config& c = run.config;
  const Schedule& s = run.schedule;
  json per_device = json::array();
  for (const DeviceMetrics& d : m.per_device) per_device.push_back(device_json(d));
  json per_stage = json::array();
  for (const StageMetrics& st : m.per_stage)
    per_stage.push_back(stage_json(st, m.layers_per_stage[static_cast<std::size_t>(st.stage)]));
  json rep = {{"schedule", s.name},
              {"synchronous", s.synchronous},
              {"stages", c.pipeline.stages},
              {"devices", c.devices},
              {"pipeline_replicas", m.pipeline_replicas},
              {"microbatches", c.pipeline.microbatches},
              {"chunks", c.pipeline.chunks},
              {"micro_batch_size", c.micro_batch_size},
              {"iteration_time_ms", m.iteration_time.ms()},
              {"bubble_rate", m.bubble_rate},
              {"bubble_overhead", m.bubble_overhead},
              {"peak_memory_bytes", m.peak_memory.value},
              {"samples_per_s", m.samples_per_s},
              {"communication_ms", m.communication_ms},
              {"transfers", m.transfers},
              {"measured_window",
               {{"start_ms", m.window_start.ms()}, {"end_ms", m.window_end.ms()}, {"iterations", m.window_iterations},
                {"steady_state", !s.synchronous}}},
              {"per_device", per_device},
              {"per_stage", per_stage},
              {"critical_path", critical_path_json(m.critical_path)}};
  if (m.exposed_allreduce.ns > 0) rep["pipeline_time_ms"] = m.pipeline_time.ms();
  if (m.tokens_per_s) rep["tokens_per_s"] = *m.tokens_per_s;
  // Where the layer costs came from (a calibration profile, or a roofline labelled ESTIMATE).
  if (c.source.contains("model") && c.source["model"].contains("name")) rep["model"] = c.source["model"]["name"];
  if (m.mfu) rep["mfu"] = *m.mfu;
  if (!s.note.empty()) rep["note"] = s.note;
  add_cluster_report(rep, run, m);
  return rep;
}

json make_report(const Run& run, const SimResult& result) { return report_json(run, compute_metrics(run, result)); }

namespace {
std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) { b /= 1024.0; ++u; }
  std::ostringstream o;
  o << std::fixed << std::setprecision(u == 0 ? 0 : 2) << b << ' ' << units[u];
  return o.str();
}
}  // namespace

std::string format_report_table(const json& rep) {
  std::ostringstream o;
  o << std::fixed;
  o << "schedule " << rep["schedule"].get<std::string>() << "  stages " << rep["stages"] << "  microbatches "
    << rep["microbatches"] << "  chunks " << rep["chunks"] << "  devices " << rep["devices"] << "\n";
  if (rep.contains("model") && rep["model"].is_string() && rep["model"].get<std::string>().find("[costs:") != std::string::npos)
    o << "model " << rep["model"].get<std::string>() << "\n";
  o << std::setprecision(4) << "iteration time " << rep["iteration_time_ms"].get<double>() << " ms";
  if (!rep["synchronous"].get<bool>())
    o << " (steady state over " << rep["measured_window"]["iterations"] << " iterations)";
  o << "  bubble rate " << rep["bubble_rate"].get<double>() << "  bubble overhead "
    << rep["bubble_overhead"].get<double>() << "\n";
  o << "peak memory " << human_bytes(rep["peak_memory_bytes"].get<double>()) << "  throughput "
    << std::setprecision(2) << rep["samples_per_s"].get<double>() << " samples/s";
  if (rep.contains("tokens_per_s")) o << ", " << rep["tokens_per_s"].get<double>() << " tokens/s";
  if (rep.contains("mfu")) o << ", MFU " << std::setprecision(3) << rep["mfu"].get<double>();
  o << "\n";
  if (rep.contains("critical_path")) {
    const auto& cp = rep["critical_path"];
    o << std::setprecision(3) << "critical path " << cp["length_ms"].get<double>() << " ms: compute "
      << cp["compute_ms"].get<double>() << " ms over " << cp["ops"] << " ops, communication "
      << cp["communication_ms"].get<double>() << " ms over " << cp["transfers"] << " transfers, link waits "
      << cp["link_wait_ms"].get<double>() << " ms\n";
  }
  o << format_cluster_lines(rep);
  o << "\n";
  o << std::left << std::setw(7) << "device" << std::right << std::setw(12) << "compute_ms" << std::setw(12) << "idle_ms"
    << std::setw(8) << "bubble" << std::setw(14) << "peak_memory" << std::setw(14) << "activations" << std::setw(14)
    << "weights" << std::setw(9) << "versions" << "\n";
  for (const auto& d : rep["per_device"]) {
    o << std::left << std::setw(7) << d["device"].get<int>() << std::right << std::setprecision(3) << std::setw(12)
      << d["compute_ms"].get<double>() << std::setw(12) << d["idle_ms"].get<double>() << std::setw(8)
      << d["bubble_rate"].get<double>() << std::setw(14) << human_bytes(d["peak_memory_bytes"].get<double>())
      << std::setw(14) << human_bytes(d["peak_activation_bytes"].get<double>()) << std::setw(14)
      << human_bytes(d["weights_bytes"].get<double>()) << std::setw(9) << d["weight_versions"].get<int>() << "\n";
  }
  return o.str();
}

json make_timeline(const Schedule& s, const SimResult& r) {
  json events = json::array();
  auto event = [](int device, const char* lane, const Op& op, TimeNs start, TimeNs end) {
    return json{{"device", device}, {"lane", lane}, {"op", std::string(1, op_letter(op.kind))},
                {"microbatch", op.microbatch}, {"stage", op.stage}, {"chunk", op.chunk}, {"pipe", op.pipe},
                {"start", start.ms()}, {"end", end.ms()}};
  };
  for (const auto& rec : r.ops) events.push_back(event(rec.device, "compute", rec.op, rec.start, rec.end));
  for (const auto& t : r.transfers) {
    const Op& op = r.ops[t.producer].op;
    json send = event(t.src, "send", op, t.start, t.end);
    send["peer"] = t.dst;
    send["bytes"] = t.bytes.value;
    json recv = event(t.dst, "recv", op, t.start, t.end);
    recv["peer"] = t.src;
    recv["bytes"] = t.bytes.value;
    events.push_back(std::move(send));
    events.push_back(std::move(recv));
  }
  json memory = json::array();
  for (const auto& m : r.memory) memory.push_back({{"device", m.device}, {"t", m.t.ms()}, {"bytes", m.bytes.value}});
  json doc = {{"schema", "ppsim.timeline/1"},
              {"time_unit", "ms"},
              {"schedule", s.name},
              {"devices", r.devices},
              {"events", std::move(events)},
              {"memory", std::move(memory)}};
  if (!r.collectives.empty()) {
    json collectives = json::array();
    for (const CollectiveRecord& c : r.collectives)
      collectives.push_back({{"kind", "gradient_sync"}, {"stage", c.stage}, {"devices", c.devices},
                             {"bytes", c.bytes.value}, {"start", c.start.ms()}, {"end", c.end.ms()}});
    doc["collectives"] = std::move(collectives);
  }
  return doc;
}

void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files) {
  namespace fs = std::filesystem;
  std::vector<std::string> temps;
  auto cleanup = [&] {
    for (const auto& t : temps) std::remove(t.c_str());
  };
  for (const auto& [path, content] : files) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    std::error_code ec;
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      cleanup();
      throw OutputError(path + ": cannot write (" + (ec ? ec.message() : std::string("cannot create file")) + ")");
    }
    temps.push_back(tmp);
    out << content;
    out.close();
    if (!out) {
      cleanup();
      throw OutputError(path + ": write failed");
    }
  }
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (std::rename(temps[i].c_str(), files[i].first.c_str()) != 0) {
      cleanup();
      throw OutputError(files[i].first + ": cannot rename temporary file into place");
    }
  }
}

}  // namespace ppsim
