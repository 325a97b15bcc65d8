// Overrides of a loaded config: one function for run, compare and sweep.
#include "ppsim/run/overrides.h"

#include <cmath>

#include "ppsim/schedules/user_schedule.h"
#include "ppsim/run/cluster.h"

namespace ppsim {

using nlohmann::json;

namespace {

/// Per-micro-batch costs scale linearly with the samples in it; weights do not.
void scale_micro_batch(Config& c, int b) {
  const double k = static_cast<double>(b) / std::max(1, c.micro_batch_size);
  for (LayerSpec& l : c.layers) {
    l.forward_ms *= k;
    l.backward_ms *= k;
    l.weight_grad_ms *= k;
    l.selective_recompute_ms *= k;
    l.flops *= k;
    auto scale = [k](std::int64_t& x) { x = static_cast<std::int64_t>(std::llround(static_cast<double>(x) * k)); };
    scale(l.activation_bytes);
    scale(l.weight_activation_bytes);
    scale(l.output_bytes);
    scale(l.selective_recompute_bytes);
  }
  c.micro_batch_size = b;
}

}  // namespace

ShardShape shard_shape(const Config& c) {
  return {c.micro_batch_size, std::max(1, c.parallel.tensor_parallel), c.parallel.sequence_parallel};
}

std::optional<Config> recost_shard(const Config& base, const ShardShape& shape) {
  if (base.costed.is_null()) return std::nullopt;
  json d = base.costed;
  d["model"]["micro_batch_size"] = shape.micro_batch_size;
  if (!d.contains("parallel") || !d["parallel"].is_object()) d["parallel"] = json::object();
  d["parallel"]["tensor_parallel"] = shape.tensor_parallel;
  d["parallel"]["sequence_parallel"] = shape.sequence_parallel;
  return parse_config(d, base.file, false);
}

Config apply_overrides(const Config& base, ConfigOverrides o) {
  ShardShape shape = shard_shape(base);
  if (o.micro_batch_size) shape.micro_batch_size = *o.micro_batch_size;
  if (o.tensor_parallel) shape.tensor_parallel = *o.tensor_parallel;
  if (o.sequence_parallel) shape.sequence_parallel = *o.sequence_parallel;
  std::optional<Config> recosted;
  if (shape != shard_shape(base)) recosted = recost_shard(base, shape);
  Config c = recosted ? std::move(*recosted) : base;
  if (recosted) {
    c.parallel.data_parallel = base.parallel.data_parallel;  // the base's own overrides stay
    c.pipeline = base.pipeline;
    c.memory = base.memory;
    o.micro_batch_size.reset();  // costed at this size already
  }
  if (!o.schedule_file.empty()) {
    const Schedule user = load_user_schedule(o.schedule_file, o.chunks.value_or(c.pipeline.chunks));
    c.pipeline.schedule = user.name;
    c.pipeline.schedule_file = o.schedule_file;
    o.stages = user.devices;
    o.microbatches = user.microbatches;
    o.chunks = user.chunks;
  }
  if (o.schedule) {
    c.pipeline.schedule = *o.schedule;
    if (o.schedule_file.empty()) c.pipeline.schedule_file.clear();  // a built-in schedule by name
  }
  if (o.stages) c.pipeline.stages = *o.stages;
  if (o.microbatches) c.pipeline.microbatches = *o.microbatches;
  if (o.chunks) c.pipeline.chunks = *o.chunks;
  if (o.partition) c.pipeline.partition = *o.partition;
  if (o.recompute) c.memory.recompute = *o.recompute;
  if (o.data_parallel) c.parallel.data_parallel = *o.data_parallel;
  if (o.tensor_parallel) c.parallel.tensor_parallel = *o.tensor_parallel;
  if (o.sequence_parallel) c.parallel.sequence_parallel = *o.sequence_parallel;
  if (o.zero) {
    if (!c.memory.given)
      throw ConfigError(c.file, "memory", "a ZeRO stage needs a memory section (optimizer and precision)");
    c.memory.distributed_optimizer = *o.zero < 0;
    c.memory.zero = std::max(0, *o.zero);
  }
  if (o.communication) c.pipeline.communication = *o.communication;
  if (o.overlap) c.pipeline.overlap = *o.overlap;
  if (o.micro_batch_size && *o.micro_batch_size != c.micro_batch_size) scale_micro_batch(c, *o.micro_batch_size);
  // The world size stays; resolve_devices sets stages x data_parallel when a degree is
  // given (hand-built configs without cluster_devices keep their devices).
  if (base.cluster_devices > 0) c.devices = base.cluster_devices;
  resolve_devices(c);
  check_pipeline(c);
  return c;
}

ConfigOverrides overrides_from_json(const json& o) {
  ConfigOverrides out;
  auto integer = [&](const char* name, std::optional<int>& field) {
    if (o.contains(name)) field = o[name].get<int>();
  };
  if (o.contains("schedule")) out.schedule = o["schedule"].get<std::string>();
  integer("stages", out.stages);
  integer("microbatches", out.microbatches);
  integer("chunks", out.chunks);
  integer("micro_batch_size", out.micro_batch_size);
  integer("data_parallel", out.data_parallel);
  integer("tensor_parallel", out.tensor_parallel);
  if (o.contains("sequence_parallel")) out.sequence_parallel = o["sequence_parallel"].get<bool>();
  if (o.contains("zero")) out.zero = o["zero"] == "distributed" ? -1 : o["zero"].get<int>();
  if (o.contains("recompute")) out.recompute = parse_recompute(o["recompute"].get<std::string>());
  if (o.contains("partition")) {
    const json& p = o["partition"];
    PartitionSpec spec;
    if (p == "uniform") spec.kind = PartitionSpec::Kind::Uniform;
    else if (p == "balanced") spec.kind = PartitionSpec::Kind::Balanced;
    else {
      spec.kind = PartitionSpec::Kind::Explicit;
      spec.counts = p.get<std::vector<int>>();
    }
    out.partition = std::move(spec);
  }
  if (o.contains("communication")) out.communication = parse_comm_semantics(o["communication"].get<std::string>());
  if (o.contains("overlap")) out.overlap = o["overlap"].get<double>();
  if (o.contains("schedule_file")) out.schedule_file = o["schedule_file"].get<std::string>();
  return out;
}

Config load_config_with_overrides(const std::string& path, ConfigOverrides o) {
  return apply_overrides(parse_config(read_json_file(path), path), std::move(o));
}

}  // namespace ppsim
