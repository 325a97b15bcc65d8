#include "config_sections.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "ppsim/run/data_files.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/cluster.h"
#include "ppsim/calibrate/profile.h"

namespace ppsim::detail {

using nlohmann::json;

namespace {

bool boolean(const JsonReader& r, const json& obj, const std::string& key, const std::string& path, bool fallback) {
  if (!obj.contains(key)) return fallback;
  const json& v = obj.at(key);
  if (!v.is_boolean()) r.fail(JsonReader::join(path, key), "must be true or false (got " + JsonReader::brief(v) + ")");
  return v.get<bool>();
}

}  // namespace

std::vector<LinkSegment> link_segments(const JsonReader& r, const json& fit, const std::string& path) {
  if (!fit.contains("segments")) return {};
  try {
    return cal::link_segments_from_json(fit.at("segments"), "segments");
  } catch (const std::invalid_argument& e) {
    r.fail(path, e.what());
  }
}

namespace {

/// A link fitted by ppsim-calibrate's P2P test: {"profile": PATH, "kind": KIND}. The
/// profile (a path or a bare name under configs/profiles/) is found by find_data_file.
NetLink profile_link(const JsonReader& r, const json& obj, const std::string& path) {
  const std::string name = r.string(obj, "profile", path, std::nullopt);
  const DataFileLookup lookup = find_data_file(name, "profiles", r.file());
  if (lookup.found.empty())
    r.fail(path + ".profile", "no file '" + name + "' (looked for " + lookup.tried_list() + ")");
  const std::filesystem::path file = lookup.found;
  json profile;
  try {
    profile = read_json_file(file.string());
  } catch (const ConfigError& e) {
    r.fail(path + ".profile", e.what());
  }
  const JsonReader pr(file.string());
  if (!profile.is_object()) pr.fail("", "a profile must be a JSON object");
  const json links = profile.contains("links") ? profile.at("links") : json::array();
  if (!links.is_array()) pr.fail("links", "must be an array");
  std::vector<std::string> link_kinds;  // each link's kind, checked to be a string
  std::string kinds;
  for (std::size_t i = 0; i < links.size(); ++i) {
    const std::string lp = "links[" + std::to_string(i) + "]";
    if (!links[i].is_object()) pr.fail(lp, "must be an object");
    link_kinds.push_back(pr.string(links[i], "kind", lp, ""));
    if (links[i].contains("kind")) kinds += (kinds.empty() ? "" : ", ") + links[i].at("kind").dump();
  }
  if (!obj.contains("kind") && links.size() != 1)
    r.fail(path + ".kind", "missing: the profile has " + std::to_string(links.size()) + " link curves (" + kinds + ")");
  const std::string kind = obj.contains("kind") ? r.string(obj, "kind", path, std::nullopt) : link_kinds[0];
  for (std::size_t i = 0; i < links.size(); ++i) {
    const json& l = links[i];
    if (link_kinds[i] != kind) continue;
    if (!l.contains("fit") || !l["fit"].is_object()) r.fail(path + ".profile", "link '" + kind + "' in '" + name + "' has no fit");
    NetLink link{pr.latency_us(l["fit"], "latency_us", "links." + kind + ".fit", std::nullopt),
                 pr.bandwidth_GBps(l["fit"], "bandwidth_GBps", "links." + kind + ".fit", std::nullopt, false), {}};
    link.segments = link_segments(pr, l["fit"], "links." + kind + ".fit");
    return link;
  }
  r.fail(path + ".kind", "no link curve '" + kind + "' in '" + name + "' (it has: " + (kinds.empty() ? "none" : kinds) + ")");
}

NetLink net_link(const JsonReader& r, const json& obj, const std::string& path) {
  if (!obj.is_object()) r.fail(path, "must be an object with latency_us and bandwidth_GBps, or a profile and kind");
  r.check_keys(obj, path, {"latency_us", "bandwidth_GBps", "source", "profile", "kind"});
  if (obj.contains("profile")) {
    for (const char* k : {"latency_us", "bandwidth_GBps"})
      if (obj.contains(k)) r.fail(path + "." + k, "give the profile or latency_us/bandwidth_GBps, not both");
    return profile_link(r, obj, path);
  }
  if (obj.contains("kind")) r.fail(path + ".kind", "only with a profile");
  return NetLink{r.latency_us(obj, "latency_us", path, 0.0), r.bandwidth_GBps(obj, "bandwidth_GBps", path, std::nullopt, false)};
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

}  // namespace

void parse_partition(const JsonReader& r, const json& pipe, Config& c) {
  if (!pipe.contains("partition")) return;
  const json& v = pipe.at("partition");
  const std::string path = "pipeline.partition";
  PartitionSpec& spec = c.pipeline.partition;
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s == "uniform") spec.kind = PartitionSpec::Kind::Uniform;
    else if (s == "balanced") spec.kind = PartitionSpec::Kind::Balanced;
    else r.fail(path, "must be \"uniform\", \"balanced\" or a list of layer counts (got " + JsonReader::brief(v) + ")");
    return;
  }
  if (!v.is_array() || v.empty())
    r.fail(path, "must be \"uniform\", \"balanced\" or a list of layer counts (got " + JsonReader::brief(v) + ")");
  spec.kind = PartitionSpec::Kind::Explicit;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const json& x = v[i];
    if (!x.is_number_integer() || x.get<std::int64_t>() < 1 || x.get<std::int64_t>() > kMaxLayers)
      r.fail(path + "[" + std::to_string(i) + "]", "must be a layer count >= 1 (got " + JsonReader::brief(x) + ")");
    spec.counts.push_back(static_cast<int>(x.get<std::int64_t>()));
  }
}

void parse_memory(const JsonReader& r, const json& doc, Config& c) {
  if (!doc.contains("memory")) return;
  const json& m = r.object(doc, "memory", "");
  r.check_keys(m, "memory", {"limit_bytes", "limit_GiB", "optimizer", "precision", "recompute", "zero1", "zero",
                             "distributed_optimizer", "reserve_GiB"});
  MemorySpec& spec = c.memory;
  spec.given = true;
  if (m.contains("limit_bytes") && m.contains("limit_GiB"))
    r.fail("memory.limit_GiB", "give limit_bytes or limit_GiB, not both");
  if (m.contains("limit_bytes")) spec.limit_bytes = r.integer(m, "limit_bytes", "memory", 0, 1, std::int64_t{1} << 50);
  if (m.contains("limit_GiB"))
    spec.limit_bytes = static_cast<std::int64_t>(std::llround(r.gib(m, "limit_GiB", "memory") * kGiB));
  const std::string opt = r.string(m, "optimizer", "memory", "adam");
  if (opt == "adam") spec.optimizer = Optimizer::Adam;
  else if (opt == "sgd") spec.optimizer = Optimizer::Sgd;
  else r.fail("memory.optimizer", "must be \"adam\" or \"sgd\" (got \"" + opt + "\")");
  const std::string prec = r.string(m, "precision", "memory", "mixed");
  if (prec == "mixed") spec.precision = Precision::Mixed;
  else if (prec == "fp32") spec.precision = Precision::Fp32;
  else r.fail("memory.precision", "must be \"mixed\" or \"fp32\" (got \"" + prec + "\")");
  const std::string rc = r.string(m, "recompute", "memory", "none");
  const auto parsed = parse_recompute(rc);
  if (!parsed) r.fail("memory.recompute", "must be \"none\", \"selective\" or \"full\" (got \"" + rc + "\")");
  spec.recompute = *parsed;
  if (m.contains("zero1") && m.contains("zero")) r.fail("memory.zero1", "give memory.zero (0..3), not both");
  spec.zero = boolean(r, m, "zero1", "memory", false) ? 1 : 0;
  if (m.contains("zero")) spec.zero = static_cast<int>(r.integer(m, "zero", "memory", 0, 0, 3));
  spec.distributed_optimizer = boolean(r, m, "distributed_optimizer", "memory", false);
  if (m.contains("reserve_GiB"))
    spec.reserve_bytes = static_cast<std::int64_t>(std::llround(r.number(m, "reserve_GiB", "memory", 0.0, 0.0, true) * kGiB));
}

void parse_cluster_topology(const JsonReader& r, const json& cluster, Config& c) {
  ClusterSpec& spec = c.cluster;
  // A preset supplies defaults; keys given in the config win. Errors in the preset name
  // the preset's file.
  json merged = json::object();
  if (cluster.contains("preset")) {
    spec.preset = r.string(cluster, "preset", "cluster", std::nullopt);
    json preset = load_cluster_preset(spec.preset, r.file());
    const JsonReader pr(preset.value("__file", spec.preset));
    preset.erase("__file");
    if (!preset.is_object()) pr.fail("", "a cluster preset must be a JSON object");
    pr.check_keys(preset, "", {"name", "description", "sources", "nodes", "gpus_per_node", "nics_per_node",
                               "intra_link", "inter_link", "placement", "gpu_memory_GiB", "device_peak_tflops"});
    for (auto it = preset.begin(); it != preset.end(); ++it)
      if (it.key() != "name" && it.key() != "description" && it.key() != "sources") merged[it.key()] = it.value();
    // Validate the preset's own values against its own file.
    if (merged.contains("intra_link")) net_link(pr, merged["intra_link"], "intra_link");
    if (merged.contains("inter_link")) net_link(pr, merged["inter_link"], "inter_link");
    if (merged.contains("device_peak_tflops") && !cluster.contains("device_peak_tflops"))
      c.device_peak_tflops = pr.number(merged, "device_peak_tflops", "", 0.0, 0.0, false, 1e9);
    if (!merged.contains("nodes")) merged["nodes"] = 1;
  }
  for (const char* key : kClusterTopologyKeys)
    if (cluster.contains(key) && std::string(key) != "preset") merged[key] = cluster.at(key);
  const bool topology = merged.contains("nodes") || merged.contains("gpus_per_node");
  if (!topology) {
    for (const char* key : {"nics_per_node", "intra_link", "inter_link", "placement"})
      if (merged.contains(key)) r.fail(std::string("cluster.") + key, "needs cluster.nodes and cluster.gpus_per_node");
    if (merged.contains("gpu_memory_GiB"))
      spec.gpu_memory_bytes = static_cast<std::int64_t>(std::llround(r.gib(merged, "gpu_memory_GiB", "cluster") * kGiB));
    return;
  }
  spec.nodes = static_cast<int>(r.integer(merged, "nodes", "cluster", 1, 1, 65536));
  spec.gpus_per_node = static_cast<int>(r.integer(merged, "gpus_per_node", "cluster", std::nullopt, 1, 1024));
  spec.nics_per_node = static_cast<int>(r.integer(merged, "nics_per_node", "cluster", 1, 1, 1024));
  // Links not given default to cluster.link (validated again by parse_config).
  NetLink flat;
  if (cluster.contains("link") && cluster.at("link").is_object()) {
    const json& link = cluster.at("link");
    flat = NetLink{r.latency_us(link, "latency_us", "cluster.link", 0.0), r.bandwidth_GBps(link, "bandwidth_GBps", "cluster.link", 0.0, true)};
  }
  spec.intra = merged.contains("intra_link") ? net_link(r, merged["intra_link"], "cluster.intra_link") : flat;
  spec.inter = merged.contains("inter_link") ? net_link(r, merged["inter_link"], "cluster.inter_link") : flat;
  const std::string placement = r.string(merged, "placement", "cluster", "pipeline");
  if (placement == "pipeline") spec.placement = Placement::PipelineInner;
  else if (placement == "data") spec.placement = Placement::DataInner;
  else r.fail("cluster.placement", "must be \"pipeline\" (stages on consecutive GPUs) or \"data\" (data-parallel replicas of a stage side by side), got \"" + placement + "\"");
  if (merged.contains("gpu_memory_GiB"))
    spec.gpu_memory_bytes = static_cast<std::int64_t>(std::llround(r.gib(merged, "gpu_memory_GiB", "cluster") * kGiB));
  if (static_cast<std::int64_t>(spec.nodes) * spec.gpus_per_node > kMaxStages * 1024)
    r.fail("cluster.nodes", "more than " + std::to_string(kMaxStages * 1024) + " GPUs in all");
}

void parse_parallel(const JsonReader& r, const json& doc, Config& c) {
  if (!doc.contains("parallel")) return;
  const json& p = r.object(doc, "parallel", "");
  r.check_keys(p, "parallel", {"data_parallel", "overlap_grad_reduce", "tensor_parallel", "sequence_parallel"});
  c.parallel.data_parallel = static_cast<int>(r.integer(p, "data_parallel", "parallel", 0, 1, 1 << 20));
  c.parallel.tensor_parallel = static_cast<int>(r.integer(p, "tensor_parallel", "parallel", 1, 1, 1024));
  c.parallel.sequence_parallel = boolean(r, p, "sequence_parallel", "parallel", false);
  c.parallel.overlap_grad_reduce = boolean(r, p, "overlap_grad_reduce", "parallel", false);
}

}  // namespace ppsim::detail
