/// @file cluster.cpp
/// @brief The config's cluster: presets, the device count, the data-parallel degree and
/// the link model of a run.
#include "ppsim/run/cluster.h"

#include <algorithm>

#include "ppsim/run/data_files.h"

namespace ppsim {

int data_parallel_degree(const Config& c) {
  if (c.parallel.data_parallel > 0) return c.parallel.data_parallel;
  return std::max(1, c.devices / std::max(1, c.pipeline.stages));
}

void resolve_devices(Config& c) {
  const int capacity = c.cluster.given() ? c.cluster.nodes * c.cluster.gpus_per_node : c.cluster_devices;
  if (c.parallel.data_parallel > 0) {
    const std::int64_t want = std::int64_t{c.pipeline.stages} * c.parallel.data_parallel;
    if (capacity > 0 && want > capacity)
      throw ConfigError(c.file, "parallel.data_parallel",
                        std::to_string(c.pipeline.stages) + " stages x " + std::to_string(c.parallel.data_parallel) +
                            " replicas need " + std::to_string(want) + " GPUs, the cluster has " + std::to_string(capacity));
    c.devices = static_cast<int>(want);
  } else if (c.cluster.given()) {
    c.devices = capacity;
  }
}

std::unique_ptr<LinkModel> make_topology_links(const Config& c, int devices) {
  if (c.cluster.given()) return std::make_unique<TopologyLinkModel>(c.cluster, devices, data_parallel_degree(c));
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
