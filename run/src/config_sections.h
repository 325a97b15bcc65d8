#pragma once
// Internal: parsing of the config sections issue 6 adds (pipeline.partition, memory,
// cluster topology, parallel). Called from parse_config; every error is one line naming
// the file and the JSON path.
#include <nlohmann/json.hpp>

#include "ppsim/run/json_reader.h"
#include "ppsim/run/config.h"

namespace ppsim::detail {

/// Keys parse_cluster_topology reads from `cluster` (besides devices, link, device_peak_tflops).
inline constexpr const char* kClusterTopologyKeys[] = {"nodes", "gpus_per_node", "nics_per_node", "intra_link",
                                                       "inter_link", "preset", "placement", "gpu_memory_GiB"};

/// Reads pipeline.partition.
void parse_partition(const JsonReader& r, const nlohmann::json& pipeline, Config& c);
/// Reads the top-level `memory` section.
void parse_memory(const JsonReader& r, const nlohmann::json& doc, Config& c);
/// Reads cluster.nodes, gpus_per_node, ... (and a preset) into c.cluster; call before
/// cluster.devices is read, whose default becomes nodes * gpus_per_node.
void parse_cluster_topology(const JsonReader& r, const nlohmann::json& cluster, Config& c);
/// A link fit's optional `segments` (ppsim-calibrate p2p's piecewise fit) under `fit`,
/// read by cal::link_segments_from_json; empty when absent. Errors name `path`.
std::vector<LinkSegment> link_segments(const JsonReader& r, const nlohmann::json& fit, const std::string& path);
/// Reads the top-level `parallel` section.
void parse_parallel(const JsonReader& r, const nlohmann::json& doc, Config& c);

}  // namespace ppsim::detail
