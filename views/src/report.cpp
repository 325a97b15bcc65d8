#include "ppsim/views/report.h"

#include <algorithm>

#include "ppsim/metrics/metrics.h"
#include "ppsim/model/memory.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/cluster.h"
#include "ppsim/run/stages.h"

namespace ppsim {

using nlohmann::json;

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
            {"collective_ms", d.collective_ms},
            {"recompute_ms", d.recompute_ms},
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
          {"forward_comm_ms", sc.forward_comm.ms()},
          {"backward_comm_ms", sc.backward_comm.ms()},
          {"recompute_ms", sc.recompute.ms()},
          {"static_bytes", sc.static_extra.value},
          {"peak_inflight_microbatches", st.peak_inflight},
          {"peak_memory_bytes", st.peak_memory.value}};
}

}  // namespace

namespace {

/// `partition`, `memory`, `fits`, `oom`, `data_parallel` and `cluster`.
void add_cluster_report(json& rep, const Run& run, const Metrics& m) {
  const Config& c = run.config;
  rep["partition"] = {{"kind", c.pipeline.partition.name()}, {"layers_per_stage", m.layers_per_stage}};
  const BytesPerParam bpp = bytes_per_param(c.memory.optimizer, c.memory.precision);
  rep["memory"] = {{"model", c.memory.given},
                   {"optimizer", optimizer_name(c.memory.optimizer)},
                   {"precision", precision_name(c.memory.precision)},
                   {"recompute", recompute_name(c.memory.recompute)},
                   {"zero", zero_name(c.memory)},
                   {"reserve_bytes", memory_reserve_bytes(c)},
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
              {"tensor_parallel", tensor_parallel_degree(c)},
              {"sequence_parallel", c.parallel.sequence_parallel},
              {"data_parallel_degree", data_parallel_degree(c)},
              {"global_batch", std::int64_t{c.micro_batch_size} * c.pipeline.microbatches * data_parallel_degree(c)},
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
  // Unit time: every *_ms is in slots (1 slot = 1 ms) and no rate means anything.
  if (run.unit_time) rep["unit_time"] = true;
  if (m.tokens_per_s && !run.unit_time) rep["tokens_per_s"] = *m.tokens_per_s;
  // Where the layer costs came from (a calibration profile, or a roofline labelled ESTIMATE).
  if (c.source.contains("model") && c.source["model"].contains("name")) rep["model"] = c.source["model"]["name"];
  if (m.mfu && !run.unit_time) rep["mfu"] = *m.mfu;
  if (m.tflops_per_gpu && !run.unit_time) rep["tflops_per_gpu"] = *m.tflops_per_gpu;
  rep["collective_ms"] = m.collective_ms;
  rep["recompute_ms"] = m.recompute_ms;
  if (!s.note.empty()) rep["note"] = s.note;
  // Ideal communication (the default) keeps the report as it was: no key means ideal.
  if (c.pipeline.communication != CommSemantics::Ideal) {
    rep["communication"] = comm_semantics_name(c.pipeline.communication);
    for (std::size_t d = 0; d < m.per_device.size(); ++d) rep["per_device"][d]["blocked_ms"] = m.per_device[d].blocked_ms;
  }
  // Unset overlap (the default) keeps the report as it was.
  if (c.pipeline.overlap) rep["overlap"] = *c.pipeline.overlap;
  add_cluster_report(rep, run, m);
  return rep;
}

json make_report(const Run& run, const SimResult& result) { return report_json(run, compute_metrics(run, result)); }

const std::vector<std::string>& report_scalar_fields() {
  // Every scalar (or list of numbers) report_json can write, nested objects' members
  // written with dots, in the order the JSON writes them (sorted; "." sorts before any
  // letter, digit or "_", so "oom" < "oom.device" < "oom_x" as the nesting has them).
  // tests/test_sweep.cpp checks it against reports that have every optional part.
  static const std::vector<std::string> fields = [] {
    std::vector<std::string> f = {
        "bubble_overhead", "bubble_rate", "chunks", "cluster.gpus_per_node", "cluster.nics_per_node",
        "cluster.nodes", "cluster.placement", "cluster.preset", "cluster.replicas_placed_alike", "collective_ms",
        "communication", "communication_ms", "critical_path.communication_ms", "critical_path.compute_ms",
        "critical_path.length_ms", "critical_path.link_wait_ms", "critical_path.ops", "critical_path.steps_truncated",
        "critical_path.transfers", "data_parallel.allreduce_ms", "data_parallel.degree", "data_parallel.exposed_ms",
        "data_parallel.gradient_bytes", "data_parallel.link", "data_parallel.overlap", "data_parallel.ring_size",
        "data_parallel_degree", "devices", "fits", "global_batch", "iteration_time_ms", "measured_window.end_ms",
        "measured_window.iterations", "measured_window.start_ms", "measured_window.steady_state",
        "memory.bytes_per_param.gradients", "memory.bytes_per_param.optimizer", "memory.bytes_per_param.weights",
        "memory.limit_bytes", "memory.model", "memory.optimizer", "memory.precision", "memory.recompute",
        "memory.reserve_bytes", "memory.zero", "mfu", "micro_batch_size", "microbatches", "model", "note", "oom",
        "oom.device", "oom.excess_bytes", "oom.limit_bytes", "oom.peak_bytes", "oom.time_ms", "partition.kind",
        "partition.layers_per_stage", "peak_memory_bytes", "pipeline_replicas", "pipeline_time_ms", "recompute_ms",
        "samples_per_s", "schedule", "sequence_parallel", "stages", "synchronous", "tensor_parallel",
        "tflops_per_gpu", "tokens_per_s", "transfers", "unit_time"};
    std::sort(f.begin(), f.end());
    return f;
  }();
  return fields;
}

}  // namespace ppsim
