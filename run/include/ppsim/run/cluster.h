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

/// @brief Data-parallel degree of the config (parallel.data_parallel, or devices /
/// (stages x tensor_parallel)).
int data_parallel_degree(const Config& config);

/// @brief Tensor-parallel degree t (parallel.tensor_parallel, 1 by default).
int tensor_parallel_degree(const Config& config);

/// @brief Sets `devices` (GPUs in all) from the parallel and cluster sections after the
/// shape changed: stages x tensor_parallel x data_parallel when the degree is given,
/// nodes x gpus_per_node when only the cluster is; checks the cluster can hold them and
/// that a tensor-parallel group stays within a node (ConfigError otherwise).
void resolve_devices(Config& config);

/// @brief The link a tensor-parallel group's collectives run on: the intra-node link of
/// the topology (the group never leaves a node), else cluster.link.
NetLink tensor_parallel_link(const Config& config);

/// @brief The link the data-parallel ring of stage 0 runs on (intra-node when all its
/// replicas share a node, else inter-node), without NIC sharing: ZeRO-3's gathers.
NetLink data_parallel_link(const Config& config);

/// @brief Link model for a config: the topology when cluster.nodes is given, else
/// cluster.link for every pair.
std::unique_ptr<LinkModel> make_topology_links(const Config& config, int devices);

/// @brief Loads a cluster preset by name (configs/clusters/NAME.json) or path, found by
/// find_data_file (data_files.h); throws ConfigError saying where it looked.
nlohmann::json load_cluster_preset(const std::string& name, const std::string& config_file);

}  // namespace ppsim
