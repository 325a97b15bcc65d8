#include "ppsim/run/config.h"

#include <fstream>
#include <sstream>

#include "config_sections.h"
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
                        "selective_recompute_bytes", "selective_recompute_ms"});
    LayerSpec l;
    l.name = r.string(g, "name", p, "layer");
    const std::int64_t repeat = r.integer(g, "repeat", p, 1, 1, kMaxLayers);
    l.forward_ms = r.number(g, "forward_ms", p, std::nullopt);
    l.backward_ms = r.number(g, "backward_ms", p, std::nullopt);
    l.weight_grad_ms = r.number(g, "weight_grad_ms", p, l.backward_ms / 3.0);
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
    l.flops = r.number(g, "flops", p, 0.0);
    l.selective_recompute_bytes = r.integer(g, "selective_recompute_bytes", p, 0, 0, kMaxBytes);
    if (l.selective_recompute_bytes > l.activation_bytes)
      r.fail(p + ".selective_recompute_bytes", "is part of activation_bytes and cannot exceed it");
    l.selective_recompute_ms = r.number(g, "selective_recompute_ms", p, 0.0);
    total += repeat;
    if (total > kMaxLayers) r.fail(path, "more than " + std::to_string(kMaxLayers) + " layers in all");
    for (std::int64_t k = 0; k < repeat; ++k) c.layers.push_back(l);
  }
}

}  // namespace

Config parse_config(const json& doc_in, const std::string& file) {
  // A transformer costed by a calibration profile or a roofline becomes model.layers first.
  const json doc = detail::expand_transformer_costs(doc_in, file);
  JsonReader r(file);
  Config c;
  c.file = file;
  c.source = doc;
  if (!doc.is_object()) r.fail("", "the top level must be a JSON object");
  r.check_keys(doc, "", {"model", "cluster", "pipeline", "description", "memory", "parallel"});

  const json& model = r.object(doc, "model", "");
  r.check_keys(model, "model", {"name", "layers", "micro_batch_size", "sequence_length"});
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
  c.device_peak_tflops = r.number(cluster, "device_peak_tflops", "cluster", c.device_peak_tflops);
  if (cluster.contains("link")) {
    const json& link = r.object(cluster, "link", "cluster");
    r.check_keys(link, "cluster.link", {"latency_us", "bandwidth_GBps"});
    c.link.latency_us = r.number(link, "latency_us", "cluster.link", 0.0);
    c.link.bandwidth_GBps = r.number(link, "bandwidth_GBps", "cluster.link", std::nullopt, 0.0, true);
  }

  const json& pipe = r.object(doc, "pipeline", "");
  r.check_keys(pipe, "pipeline", {"schedule", "stages", "microbatches", "chunks", "iterations", "partition", "communication"});
  c.pipeline.schedule = r.string(pipe, "schedule", "pipeline", "1f1b");
  c.pipeline.stages = static_cast<int>(r.integer(pipe, "stages", "pipeline", std::nullopt, 1, kMaxStages));
  c.pipeline.microbatches = static_cast<int>(r.integer(pipe, "microbatches", "pipeline", std::nullopt, 1, kMaxMicrobatches));
  c.pipeline.chunks = static_cast<int>(r.integer(pipe, "chunks", "pipeline", 1, 1, kMaxChunks));
  c.pipeline.iterations = static_cast<int>(r.integer(pipe, "iterations", "pipeline", 0, 0, 1000));
  const std::string comm = r.string(pipe, "communication", "pipeline", "ideal");
  if (const auto semantics = parse_comm_semantics(comm)) c.pipeline.communication = *semantics;
  else r.fail("pipeline.communication", "must be one of " + known_comm_semantics() + " (got \"" + comm + "\")");
  detail::parse_partition(r, pipe, c);
  detail::parse_memory(r, doc, c);
  detail::parse_parallel(r, doc, c);
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
  const std::int64_t ops = stages * p.microbatches * 3 * std::max(1, p.iterations);
  if (ops > kMaxOps)
    r.fail("pipeline", std::to_string(p.stages) + " stages x " + std::to_string(p.chunks) + " chunks x " +
                           std::to_string(p.microbatches) + " micro-batches is about " + std::to_string(ops) +
                           " ops, over the limit of " + std::to_string(kMaxOps));
  if (c.devices < p.stages)
    r.fail("cluster.devices", std::to_string(c.devices) + " devices cannot hold " + std::to_string(p.stages) + " pipeline stages");
  if (c.devices % p.stages != 0)
    r.fail("cluster.devices", std::to_string(c.devices) + " devices are not a whole number of " +
                                  std::to_string(p.stages) + "-stage pipeline replicas");
  const auto layers = static_cast<std::int64_t>(c.layers.size());
  if (p.partition.kind == PartitionSpec::Kind::Default && layers % stages != 0)
    r.fail("model.layers", std::to_string(layers) + " layers do not divide into " + std::to_string(p.stages) +
                               " stages x " + std::to_string(p.chunks) + " chunks = " + std::to_string(stages) + " equal stages");
  if (p.partition.kind == PartitionSpec::Kind::Balanced && layers < stages)
    r.fail("pipeline", std::to_string(layers) + " layers cannot fill " + std::to_string(stages) + " stages (stages x chunks)");
  if (p.partition.kind == PartitionSpec::Kind::Uniform || p.partition.kind == PartitionSpec::Kind::Explicit)
    (void)stage_layer_counts(c);  // throws ConfigError naming pipeline.partition
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "", "cannot open file");
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return json::parse(buf.str());
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (auto pos = what.find("parse error"); pos != std::string::npos) what = what.substr(pos);
    throw ConfigError(path, "", "malformed JSON: " + what);
  } catch (const json::out_of_range& e) {
    // nlohmann refuses numbers that overflow a double (1e999): non-finite input.
    std::string what = e.what();
    if (auto pos = what.find("number overflow"); pos != std::string::npos) what = what.substr(pos);
    throw ConfigError(path, "", "numbers must be finite: " + what);
  }
}

Config load_config(const std::string& path) { return parse_config(read_json_file(path), path); }

}  // namespace ppsim
