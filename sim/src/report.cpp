#include "ppsim/report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <unistd.h>

#include "ppsim/cluster_report.h"
#include "ppsim/op_graph.h"
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

namespace {
double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }
}  // namespace

json make_report(const Run& run, const SimResult& r) {
  const Config& c = run.config;
  const Schedule& s = run.schedule;
  const double window_ns = static_cast<double>((r.window_end - r.window_start).ns);
  json per_device = json::array();
  double bubble_sum = 0, overhead_sum = 0;
  std::int64_t peak = 0;
  std::vector<double> send_ms(r.devices, 0.0), recv_ms(r.devices, 0.0);
  for (const auto& t : r.transfers) {
    send_ms[t.src] += (t.end - t.start).ms();
    recv_ms[t.dst] += (t.end - t.start).ms();
  }
  for (int d = 0; d < r.devices; ++d) {
    const DeviceSummary& sum = r.per_device[d];
    const double busy = static_cast<double>(sum.window_busy.ns);
    const double bubble = window_ns > 0 ? 1.0 - busy / window_ns : 0.0;
    bubble_sum += bubble;
    overhead_sum += ratio(window_ns - busy, busy);
    peak = std::max(peak, sum.peak_memory.value);
    per_device.push_back({{"device", d},
                          {"compute_ms", sum.compute_busy.ms()},
                          {"idle_ms", (window_ns - busy) / 1e6 / r.window_iterations},
                          {"bubble_rate", bubble},
                          {"peak_memory_bytes", sum.peak_memory.value},
                          {"peak_activation_bytes", sum.peak_activation.value},
                          {"peak_inflight_microbatches", sum.peak_inflight},
                          {"weights_bytes", sum.weights.value},
                          {"static_bytes", sum.static_extra.value},
                          {"weight_versions", sum.weight_versions},
                          {"peak_time_ms", sum.peak_time.ms()},
                          {"send_ms", send_ms[d]},
                          {"recv_ms", recv_ms[d]}});
  }
  json per_stage = json::array();
  const auto ranges = stage_layer_ranges(c);
  for (std::size_t k = 0; k < run.costs.size(); ++k) {
    const StageCost& sc = run.costs[k];
    per_stage.push_back({{"stage", k},
                         {"layers", {ranges[k].first, ranges[k].second}},
                         {"forward_ms", sc.forward.ms()},
                         {"backward_ms", sc.backward.ms()},
                         {"weight_grad_ms", sc.weight_grad.ms()},
                         {"activation_bytes", sc.activation.value},
                         {"output_bytes", sc.output.value},
                         {"parameter_bytes", sc.parameters.value}});
  }
  const double iter_ms = r.iteration_time.ms();
  const int replicas = c.devices / std::max(1, c.pipeline.stages);
  const double samples = static_cast<double>(c.pipeline.microbatches) * c.micro_batch_size * replicas;
  json rep = {{"schedule", s.name},
              {"synchronous", s.synchronous},
              {"stages", c.pipeline.stages},
              {"devices", c.devices},
              {"pipeline_replicas", replicas},
              {"microbatches", c.pipeline.microbatches},
              {"chunks", c.pipeline.chunks},
              {"micro_batch_size", c.micro_batch_size},
              {"iteration_time_ms", iter_ms},
              {"bubble_rate", r.devices > 0 ? bubble_sum / r.devices : 0.0},
              {"bubble_overhead", r.devices > 0 ? overhead_sum / r.devices : 0.0},
              {"peak_memory_bytes", peak},
              {"samples_per_s", iter_ms > 0 ? samples / (iter_ms / 1e3) : 0.0},
              {"communication_ms", [&] { double t = 0; for (double x : send_ms) t += x; return t; }()},
              {"transfers", r.transfers.size()},
              {"measured_window",
               {{"start_ms", r.window_start.ms()}, {"end_ms", r.window_end.ms()}, {"iterations", r.window_iterations},
                {"steady_state", !s.synchronous}}},
              {"per_device", per_device},
              {"per_stage", per_stage}};
  if (c.sequence_length > 0) rep["tokens_per_s"] = rep["samples_per_s"].get<double>() * c.sequence_length;
  // Where the layer costs came from (a calibration profile, or a roofline labelled ESTIMATE).
  if (c.source.contains("model") && c.source["model"].contains("name")) rep["model"] = c.source["model"]["name"];
  double flops = 0;
  for (const auto& l : c.layers) flops += l.flops;
  if (flops > 0 && c.device_peak_tflops > 0 && iter_ms > 0) {
    const double achieved = flops * c.pipeline.microbatches * replicas / (iter_ms / 1e3);
    rep["mfu"] = achieved / (c.device_peak_tflops * 1e12 * c.devices);
  }
  if (!s.note.empty()) rep["note"] = s.note;
  add_cluster_report(rep, run, r);
  return rep;
}

json critical_path(const SimResult& r, std::size_t max_steps) {
  if (r.ops.empty()) return json{{"length_ms", 0.0}};
  const OpGraph& g = *r.graph;
  // The transfer into each op (at most one: an op's other inputs are on its own device).
  std::vector<int> transfer_into(r.ops.size(), -1);
  for (std::size_t t = 0; t < r.transfers.size(); ++t) transfer_into[r.transfers[t].consumer] = static_cast<int>(t);
  auto carried_by = [&](std::uint32_t u, std::uint32_t v) {
    const int t = g.is_sync(v) ? -1 : transfer_into[v];
    return t >= 0 && r.transfers[t].producer == static_cast<int>(u) ? t : -1;
  };
  // The critical path is the longest path's chain of maxima, walked back from the last
  // op: along the longest path an op ends its duration after the latest of its in-edges
  // (a predecessor's end, plus the transfer's time on a data edge between devices). The
  // run's own times are those longest-path ends (the op-graph property test checks it to
  // the nanosecond), so one pass over the graph's edges finds, per op, the in-edge that
  // set its start. Among ties the previous op on its device wins, then a transfer.
  auto rank = [&](std::uint32_t u, std::uint32_t v) {
    return u + 1 == v && r.ops[u].device == r.ops[v].device ? 2 : (carried_by(u, v) >= 0 ? 1 : 0);
  };
  std::vector<int> pred(r.ops.size(), -1);
  for (std::uint32_t u = 0; u < g.num_ops; ++u)
    for (const auto e : boost::make_iterator_range(boost::out_edges(u, g.csr))) {
      const auto v = static_cast<std::uint32_t>(boost::target(e, g.csr));
      if (g.is_sync(v)) continue;
      const int t = carried_by(u, v);
      if ((t >= 0 ? r.transfers[t].end : r.ops[u].end) != r.ops[v].start) continue;
      if (pred[v] < 0 || rank(u, v) > rank(static_cast<std::uint32_t>(pred[v]), v)) pred[v] = static_cast<int>(u);
    }
  int op = 0;
  for (int i = 1; i < static_cast<int>(r.ops.size()); ++i)
    if (r.ops[i].end > r.ops[op].end) op = i;
  std::vector<std::string> steps;
  TimeNs compute{}, comm{}, wait{};
  std::size_t op_count = 0, transfer_count = 0;
  while (op >= 0) {
    const OpRecord& rec = r.ops[op];
    compute += rec.end - rec.start;
    ++op_count;
    steps.push_back("d" + std::to_string(rec.device) + " " + op_token(rec.op) + " s" + std::to_string(rec.op.stage));
    const int in = pred[op];
    if (in < 0) {
      wait += rec.start - r.first_start;  // nothing left to explain the start
      break;
    }
    if (const int tr = carried_by(static_cast<std::uint32_t>(in), static_cast<std::uint32_t>(op)); tr >= 0) {
      const TransferRecord& t = r.transfers[tr];
      comm += t.end - t.start;
      wait += t.start - r.ops[in].end;  // queued behind other transfers on its link
      ++transfer_count;
      steps.push_back("link " + std::to_string(t.src) + "->" + std::to_string(t.dst));
    }
    op = in;
  }
  std::reverse(steps.begin(), steps.end());
  const bool truncated = steps.size() > max_steps;
  if (truncated) steps.erase(steps.begin(), steps.end() - static_cast<std::ptrdiff_t>(max_steps));
  return json{{"length_ms", (compute + comm + wait).ms()},
              {"compute_ms", compute.ms()},
              {"communication_ms", comm.ms()},
              {"link_wait_ms", wait.ms()},
              {"ops", op_count},
              {"transfers", transfer_count},
              {"steps", steps},
              {"steps_truncated", truncated}};
}

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
  return json{{"schema", "ppsim.timeline/1"},
              {"time_unit", "ms"},
              {"schedule", s.name},
              {"devices", r.devices},
              {"events", std::move(events)},
              {"memory", std::move(memory)}};
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
