#include "ppsim/run/config.h"

#include "config_sections.h"
#include "ppsim/run/budget.h"
#include "ppsim/input/json_file.h"
#include "ppsim/run/json_reader.h"
#include "transformer_costs.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/run/cluster.h"
#include "ppsim/run/stages.h"

namespace ppsim {

using detail::JsonReader;
using nlohmann::json;

namespace {

constexpr std::int64_t kMaxBytes = std::int64_t{1} << 50;  // 1 PiB: anything above is a typo

/// {"bytes": N, "forward": {"all_reduce": k, "all_gather": k, "reduce_scatter": k}, "backward": {...}}
void parse_layer_collectives(const JsonReader& r, const json& obj, const std::string& path, LayerSpec& l) {
  r.check_keys(obj, path, {"bytes", "forward", "backward"});
  l.tp_comm_bytes = r.integer(obj, "bytes", path, std::nullopt, 0, kMaxBytes);
  for (auto [key, out] : {std::pair<const char*, LayerCollectives*>{"forward", &l.tp_forward}, {"backward", &l.tp_backward}}) {
    if (!obj.contains(key)) continue;
    const std::string p = path + "." + key;
    const json& k = r.object(obj, key, path);
    r.check_keys(k, p, {"all_reduce", "all_gather", "reduce_scatter"});
    out->all_reduce = static_cast<int>(r.integer(k, "all_reduce", p, 0, 0, 64));
    out->all_gather = static_cast<int>(r.integer(k, "all_gather", p, 0, 0, 64));
    out->reduce_scatter = static_cast<int>(r.integer(k, "reduce_scatter", p, 0, 0, 64));
  }
}

void parse_layers(const JsonReader& r, const json& model, Config& c) {
  const std::string path = "model.layers";
  if (!model.contains("layers")) r.fail(path, "missing (required list of layer groups)");
  const json& layers = model.at("layers");
  if (!layers.is_array() || layers.empty()) r.fail(path, "must be a non-empty list of layer groups");
  std::int64_t total = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    const json& g = layers[i];
    if (!g.is_object()) r.fail(p, "must be an object");
    r.check_keys(g, p, {"name", "repeat", "forward_ms", "backward_ms", "weight_grad_ms", "activation_bytes",
                        "weight_activation_bytes", "parameter_bytes", "output_bytes", "static_bytes", "flops",
                        "selective_recompute_bytes", "selective_recompute_ms", "tensor_parallel_comm"});
    LayerSpec l;
    l.name = r.string(g, "name", p, "layer");
    const std::int64_t repeat = r.integer(g, "repeat", p, 1, 1, kMaxLayers);
    l.forward_ms = r.time_ms(g, "forward_ms", p, std::nullopt);
    l.backward_ms = r.time_ms(g, "backward_ms", p, std::nullopt);
    l.weight_grad_ms = r.time_ms(g, "weight_grad_ms", p, l.backward_ms / 3.0);
    if (l.weight_grad_ms > l.backward_ms)
      r.fail(p + ".weight_grad_ms", "is part of backward_ms and cannot exceed it");
    l.activation_bytes = r.integer(g, "activation_bytes", p, 0, 0, kMaxBytes);
    // Split backward keeps, by default, half of the stash until W (the weight-gradient
    // GEMMs need the layer inputs; the input-gradient path needs the rest).
    l.weight_activation_bytes = r.integer(g, "weight_activation_bytes", p, l.activation_bytes / 2, 0, kMaxBytes);
    if (l.weight_activation_bytes > l.activation_bytes)
      r.fail(p + ".weight_activation_bytes", "is part of activation_bytes and cannot exceed it");
    l.parameter_bytes = r.integer(g, "parameter_bytes", p, 0, 0, kMaxBytes);
    l.output_bytes = r.integer(g, "output_bytes", p, 0, 0, kMaxBytes);
    l.static_bytes = r.integer(g, "static_bytes", p, 0, 0, kMaxBytes);
    l.flops = r.number(g, "flops", p, 0.0, 0.0, false, 1e24);
    l.selective_recompute_bytes = r.integer(g, "selective_recompute_bytes", p, 0, 0, kMaxBytes);
    if (l.selective_recompute_bytes > l.activation_bytes)
      r.fail(p + ".selective_recompute_bytes", "is part of activation_bytes and cannot exceed it");
    l.selective_recompute_ms = r.time_ms(g, "selective_recompute_ms", p, 0.0);
    if (g.contains("tensor_parallel_comm")) parse_layer_collectives(r, r.object(g, "tensor_parallel_comm", p), p + ".tensor_parallel_comm", l);
    total += repeat;
    if (total > kMaxLayers) r.fail(path, "more than " + std::to_string(kMaxLayers) + " layers in all");
    for (std::int64_t k = 0; k < repeat; ++k) c.layers.push_back(l);
  }
}

/// Refuses a shape whose time or memory could leave int64: an upper bound on one
/// device's busy time over the whole run (every layer's compute for every micro-batch,
/// every boundary transfer at the slowest link shared by a whole node, the gradient
/// all-reduce) against kMaxRunNs, and on any memory figure (all the model's bytes, for
/// every micro-batch in flight and every weight version) against kMaxRunBytes.
void check_run_size(const JsonReader& r, const Config& c) {
  const auto& p = c.pipeline;
  double compute_ms = 0, bytes = 0, output = 0, params = 0;
  for (const LayerSpec& l : c.layers) {
    compute_ms += 2 * l.forward_ms + l.backward_ms + l.selective_recompute_ms;
    bytes += static_cast<double>(l.activation_bytes + l.weight_activation_bytes + l.parameter_bytes + l.output_bytes +
                                 l.static_bytes + l.selective_recompute_bytes);
    output = std::max(output, static_cast<double>(l.output_bytes));
    params += static_cast<double>(l.parameter_bytes + l.static_bytes);
  }
  double latency_ms = 0, slowest_GBps = 0;
  auto bound = [&](double latency_us, double GBps) {
    latency_ms = std::max(latency_ms, latency_us / 1e3);
    if (GBps > 0 && (slowest_GBps == 0 || GBps < slowest_GBps)) slowest_GBps = GBps;
  };
  for (const NetLink& link : {c.link, c.cluster.intra, c.cluster.inter}) {
    bound(link.latency_us, link.bandwidth_GBps);
    for (const LinkSegment& s : link.segments) bound(s.latency_us, s.bandwidth_GBps);
  }
  const double sharing = std::max(1, c.cluster.gpus_per_node);
  auto transfer_ms = [&](double b) { return latency_ms + (slowest_GBps > 0 ? b * sharing / (slowest_GBps * 1e6) : 0.0); };
  const double stages = static_cast<double>(p.stages) * p.chunks;
  const double microbatches = static_cast<double>(p.microbatches) * std::max(1, p.iterations) + 4.0 * (p.microbatches + stages);
  const double replicas = std::max(1, c.devices / std::max(1, p.stages));
  const double run_ns = 1e6 * (microbatches * (compute_ms + 2 * stages * transfer_ms(output)) +
                               2 * replicas * transfer_ms(2 * params));
  if (run_ns > kMaxRunNs)
    r.fail("model.layers", "times too large for this shape: one device's work could reach " + std::to_string(run_ns / 1e9) +
                               " s, over the limit of " + std::to_string(kMaxRunNs / 1e9) + " s (int64 nanoseconds)");
  if (bytes * (static_cast<double>(p.microbatches) + stages + 2) > kMaxRunBytes)
    r.fail("model.layers", "byte counts too large for this shape: the model's " + std::to_string(bytes) +
                               " bytes times (micro-batches + stages + 2) exceed 2^62");
}

}  // namespace

Config parse_config(const json& doc_in, const std::string& file) { return parse_config(doc_in, file, true); }

Config parse_config(const json& doc_in, const std::string& file, bool check) {
  // A transformer costed by a calibration profile or a roofline becomes model.layers first.
  const json doc = detail::expand_transformer_costs(doc_in, file);
  JsonReader r(file);
  Config c;
  c.file = file;
  c.source = doc;
  if (doc_in.is_object() && doc_in.contains("costs")) c.costed = doc_in;
  if (!doc.is_object()) r.fail("", "the top level must be a JSON object");
  r.check_keys(doc, "", {"model", "cluster", "pipeline", "description", "memory", "parallel"});
  (void)r.string(doc, "description", "", "");

  const json& model = r.object(doc, "model", "");
  r.check_keys(model, "model", {"name", "layers", "micro_batch_size", "sequence_length"});
  (void)r.string(model, "name", "model", "");
  parse_layers(r, model, c);
  c.micro_batch_size = static_cast<int>(r.integer(model, "micro_batch_size", "model", 1, 1, 1 << 20));
  c.sequence_length = static_cast<int>(r.integer(model, "sequence_length", "model", 0, 0, 1 << 24));

  const json& cluster = r.object(doc, "cluster", "");
  r.check_keys(cluster, "cluster", {"devices", "link", "device_peak_tflops", "nodes", "gpus_per_node", "nics_per_node",
                                    "intra_link", "inter_link", "preset", "placement", "gpu_memory_GiB"});
  detail::parse_cluster_topology(r, cluster, c);
  const std::optional<std::int64_t> all_gpus =
      c.cluster.given() ? std::optional<std::int64_t>(std::int64_t{c.cluster.nodes} * c.cluster.gpus_per_node) : std::nullopt;
  c.devices = static_cast<int>(r.integer(cluster, "devices", "cluster", all_gpus, 1, kMaxStages * 1024));
  if (all_gpus && c.devices > *all_gpus)
    r.fail("cluster.devices", std::to_string(c.devices) + " devices, but nodes x gpus_per_node = " + std::to_string(*all_gpus));
  c.cluster_devices = c.devices;
  c.device_peak_tflops = r.number(cluster, "device_peak_tflops", "cluster", c.device_peak_tflops, 0.0, false, 1e9);
  if (cluster.contains("link")) {
    const json& link = r.object(cluster, "link", "cluster");
    r.check_keys(link, "cluster.link", {"latency_us", "bandwidth_GBps", "segments"});
    c.link.latency_us = r.latency_us(link, "latency_us", "cluster.link", 0.0);
    c.link.bandwidth_GBps = r.bandwidth_GBps(link, "bandwidth_GBps", "cluster.link", std::nullopt, false);
    c.link.segments = detail::link_segments(r, link, "cluster.link.segments");
  }

  const json& pipe = r.object(doc, "pipeline", "");
  r.check_keys(pipe, "pipeline", {"schedule", "stages", "microbatches", "chunks", "iterations", "partition", "communication", "overlap"});
  c.pipeline.schedule = r.string(pipe, "schedule", "pipeline", "1f1b");
  c.pipeline.stages = static_cast<int>(r.integer(pipe, "stages", "pipeline", std::nullopt, 1, kMaxStages));
  c.pipeline.microbatches = static_cast<int>(r.integer(pipe, "microbatches", "pipeline", std::nullopt, 1, kMaxMicrobatches));
  c.pipeline.chunks = static_cast<int>(r.integer(pipe, "chunks", "pipeline", 1, 1, kMaxChunks));
  c.pipeline.iterations = static_cast<int>(r.integer(pipe, "iterations", "pipeline", 0, 0, 1000));
  const std::string comm = r.string(pipe, "communication", "pipeline", "ideal");
  if (const auto semantics = parse_comm_semantics(comm)) c.pipeline.communication = *semantics;
  else r.fail("pipeline.communication", "must be one of " + known_comm_semantics() + " (got \"" + comm + "\")");
  if (pipe.contains("overlap")) c.pipeline.overlap = r.number(pipe, "overlap", "pipeline", std::nullopt, 0.0, false, 1.0);
  detail::parse_partition(r, pipe, c);
  detail::parse_memory(r, doc, c);
  detail::parse_parallel(r, doc, c);
  if (!check) return c;
  resolve_devices(c);
  check_pipeline(c);
  return c;
}

void check_pipeline(const Config& c) {
  JsonReader r(c.file);
  const auto& p = c.pipeline;
  if (p.schedule_file.empty() && find_schedule(p.schedule) == nullptr)
    r.fail("pipeline.schedule", "unknown schedule '" + p.schedule + "' (known: " + known_schedule_names() + ")");
  if (p.stages < 1 || p.stages > kMaxStages)
    r.fail("pipeline.stages", "must be in 1.." + std::to_string(kMaxStages) + " (got " + std::to_string(p.stages) + ")");
  if (p.microbatches < 1 || p.microbatches > kMaxMicrobatches)
    r.fail("pipeline.microbatches", "must be in 1.." + std::to_string(kMaxMicrobatches) + " (got " + std::to_string(p.microbatches) + ")");
  if (p.chunks < 1 || p.chunks > kMaxChunks)
    r.fail("pipeline.chunks", "must be in 1.." + std::to_string(kMaxChunks) + " (got " + std::to_string(p.chunks) + ")");
  const std::int64_t stages = std::int64_t{p.stages} * p.chunks;
  const std::int64_t ops = estimated_ops(p);
  if (ops > kMaxOps)
    r.fail("pipeline", std::to_string(p.stages) + " stages x " + std::to_string(p.chunks) + " chunks x " +
                           std::to_string(p.microbatches) + " micro-batches is about " + std::to_string(ops) +
                           " ops, over the limit of " + std::to_string(kMaxOps));
  const std::int64_t t = std::max(1, c.parallel.tensor_parallel);
  const std::string group = t > 1 ? " x " + std::to_string(t) + "-GPU tensor-parallel" : std::string();
  if (c.devices < p.stages * t)
    r.fail("cluster.devices", std::to_string(c.devices) + " devices cannot hold " + std::to_string(p.stages) +
                                  " pipeline stages" + group);
  if (c.devices % (p.stages * t) != 0)
    r.fail("cluster.devices", std::to_string(c.devices) + " devices are not a whole number of " +
                                  std::to_string(p.stages) + "-stage" + group + " pipeline replicas");
  if (c.parallel.sequence_parallel && t == 1)
    r.fail("parallel.sequence_parallel", "needs parallel.tensor_parallel > 1 (it splits the sequence over the tensor-parallel group)");
  const auto layers = static_cast<std::int64_t>(c.layers.size());
  if (p.partition.kind == PartitionSpec::Kind::Default && layers % stages != 0)
    r.fail("model.layers", std::to_string(layers) + " layers do not divide into " + std::to_string(p.stages) +
                               " stages x " + std::to_string(p.chunks) + " chunks = " + std::to_string(stages) + " equal stages");
  if (p.partition.kind == PartitionSpec::Kind::Balanced && layers < stages)
    r.fail("pipeline", std::to_string(layers) + " layers cannot fill " + std::to_string(stages) + " stages (stages x chunks)");
  if (p.partition.kind == PartitionSpec::Kind::Uniform || p.partition.kind == PartitionSpec::Kind::Explicit)
    (void)stage_layer_counts(c);  // throws ConfigError naming pipeline.partition
  check_run_size(r, c);
}

json read_json_file(const std::string& path) {
  try {
    return read_json_input(path);
  } catch (const InputFileError& e) {
    throw ConfigError(e.file(), "", e.problem());
  }
}

Config load_config(const std::string& path) { return parse_config(read_json_file(path), path); }

}  // namespace ppsim
