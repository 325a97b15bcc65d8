/// @file cluster.cpp
/// @brief The config's cluster: presets, the device count, the data-parallel degree and
/// the link model of a run.
#include "ppsim/run/cluster.h"

#include <algorithm>

#include "ppsim/run/data_files.h"

namespace ppsim {

int tensor_parallel_degree(const Config& c) { return std::max(1, c.parallel.tensor_parallel); }

int data_parallel_degree(const Config& c) {
  if (c.parallel.data_parallel > 0) return c.parallel.data_parallel;
  return std::max(1, c.devices / std::max(1, c.pipeline.stages * tensor_parallel_degree(c)));
}

void resolve_devices(Config& c) {
  const int t = tensor_parallel_degree(c);
  if (t > 1 && c.cluster.given() && c.cluster.gpus_per_node % t != 0)
    throw ConfigError(c.file, "parallel.tensor_parallel",
                      "a tensor-parallel group of " + std::to_string(t) + " GPUs would cross a node of " +
                          std::to_string(c.cluster.gpus_per_node) + " GPUs (t must divide gpus_per_node)");
  const int capacity = c.cluster.given() ? c.cluster.nodes * c.cluster.gpus_per_node : c.cluster_devices;
  if (c.parallel.data_parallel > 0) {
    const std::int64_t want = std::int64_t{c.pipeline.stages} * t * c.parallel.data_parallel;
    if (capacity > 0 && want > capacity)
      throw ConfigError(c.file, "parallel.data_parallel",
                        std::to_string(c.pipeline.stages) + " stages x " + (t > 1 ? std::to_string(t) + " tensor x " : "") +
                            std::to_string(c.parallel.data_parallel) + " replicas need " + std::to_string(want) +
                            " GPUs, the cluster has " + std::to_string(capacity));
    c.devices = static_cast<int>(want);
  } else if (c.cluster.given()) {
    c.devices = capacity;
  }
}

NetLink tensor_parallel_link(const Config& c) {
  return c.cluster.given() ? c.cluster.intra : c.link;
}

NetLink data_parallel_link(const Config& c) {
  if (!c.cluster.given()) return c.link;
  const int d = data_parallel_degree(c);
  const TopologyLinkModel topo(c.cluster, c.pipeline.stages, d, tensor_parallel_degree(c));
  for (int r = 1; r < d; ++r)
    if (topo.node_of(topo.gpu(0, r)) != topo.node_of(topo.gpu(0, 0))) return c.cluster.inter;
  return c.cluster.intra;
}

std::unique_ptr<LinkModel> make_topology_links(const Config& c, int devices) {
  if (c.cluster.given())
    return std::make_unique<TopologyLinkModel>(c.cluster, devices, data_parallel_degree(c), tensor_parallel_degree(c));
  if (!c.link.segments.empty()) return std::make_unique<UniformLinkModel>(devices, c.link.segments);
  return std::make_unique<UniformLinkModel>(devices, TimeNs::from_ms(c.link.latency_us / 1000.0), c.link.bandwidth_GBps);
}

nlohmann::json load_cluster_preset(const std::string& name, const std::string& config_file) {
  const DataFileLookup lookup = find_data_file(name, "clusters", config_file);
  if (lookup.found.empty())
    throw ConfigError(config_file, "cluster.preset",
                      "no cluster preset '" + name + "' (looked for " + lookup.tried_list() + ")");
  nlohmann::json doc = read_json_file(lookup.found.string());
  doc["__file"] = lookup.found.string();
  return doc;
}

}  // namespace ppsim
