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

Config apply_overrides(const Config& base, ConfigOverrides o) {
  Config c = base;
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
  if (o.communication) c.pipeline.communication = *o.communication;
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
  if (o.contains("schedule_file")) out.schedule_file = o["schedule_file"].get<std::string>();
  return out;
}

std::optional<Config> recost_micro_batch(const json& doc, const std::string& file, int b) {
  if (!doc.is_object() || !doc.contains("costs")) return std::nullopt;
  json d = doc;
  d["model"]["micro_batch_size"] = b;
  return parse_config(d, file);
}

Config load_config_with_overrides(const std::string& path, ConfigOverrides o) {
  const json doc = read_json_file(path);
  std::optional<Config> base;
  if (o.micro_batch_size) base = recost_micro_batch(doc, path, *o.micro_batch_size);
  if (base) o.micro_batch_size.reset();  // already costed at this size
  else base = parse_config(doc, path);
  return apply_overrides(*base, std::move(o));
}

}  // namespace ppsim
