#pragma once
/// @file cluster.h
/// @brief The config's cluster: presets, the device count, the data-parallel degree and
/// the link model of a run.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "ppsim/model/topology.h"
#include "ppsim/run/config.h"

namespace ppsim {

/// @brief Data-parallel degree of the config (parallel.data_parallel or devices / stages).
int data_parallel_degree(const Config& config);

/// @brief Sets `devices` from the parallel and cluster sections after the pipeline shape
/// changed: stages * data_parallel when the degree is given, nodes * gpus_per_node when
/// only the cluster is; checks the cluster can hold them (ConfigError otherwise).
void resolve_devices(Config& config);

/// @brief Link model for a config: the topology when cluster.nodes is given, else
/// cluster.link for every pair.
std::unique_ptr<LinkModel> make_topology_links(const Config& config, int devices);

/// @brief Loads a cluster preset by name (configs/clusters/NAME.json) or path, found by
/// find_data_file (data_files.h); throws ConfigError saying where it looked.
nlohmann::json load_cluster_preset(const std::string& name, const std::string& config_file);

}  // namespace ppsim
