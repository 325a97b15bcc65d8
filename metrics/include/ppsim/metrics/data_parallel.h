#pragma once
/// @file data_parallel.h
/// @brief The data-parallel gradient all-reduce of a simulated run.
#include <string>
#include <vector>

#include "ppsim/engine/engine.h"
#include "ppsim/run/run.h"

namespace ppsim {

/// @brief Data-parallel gradient all-reduce of one iteration.
struct DataParallelCost {
  int degree{1};
  int group{1};  ///< GPUs in each ring (the degree; 1 = nothing to reduce)
  bool overlap{false};
  std::vector<TimeNs> allreduce;  ///< per pipeline device: total all-reduce time
  std::vector<TimeNs> finish;     ///< per device: when its last all-reduce ends
  std::vector<Bytes> gradient_bytes;
  TimeNs exposed;                 ///< added to the iteration time
  std::string link;               ///< "intra", "inter", "link" (cluster.link) or "free"
};

/// @brief The all-reduce after the pipeline's iteration (zero for degree 1). Each device
/// reduces its stages' gradients over the GPUs holding the same stage in the other
/// replicas. Without overlap it starts when the device's last op ends; with overlap
/// each layer's gradients form one bucket, ready when backward has passed through the
/// layer (its share of the last B, or W, of that stage), and buckets reduce one after
/// another on the device. For asynchronous schedules the whole all-reduce is added per
/// iteration (no overlap). Bidirectional schedules sync their two copies of a stage
/// inside the pipeline in the engine (Schedule::gradient_syncs); here each copy reduces
/// across the replicas.
DataParallelCost data_parallel_cost(const Run& run, const SimResult& result);

}  // namespace ppsim
