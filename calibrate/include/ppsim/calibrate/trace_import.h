#pragma once
/// @file trace_import.h
/// @brief `ppsim-calibrate import`: a PyTorch profiler trace (the Chrome trace JSON that
/// `torch.profiler` exports) of a user's own training job, with layer regions named by
/// the convention below, becomes a `ppsim.profile/1` of the medians of their GPU times.
///
/// Convention: each measured phase runs inside `torch.profiler.record_function(NAME)`
/// with NAME = `ppsim/LAYER/PHASE`, LAYER one of `block`, `embedding`, `head` and PHASE
/// `F` (forward), `B` (backward; input-gradient when W is given separately) or `W`
/// (weight-gradient). tools/ppsim_regions.py wraps this. A region's GPU time is the
/// duration of its `gpu_user_annotation` event (PyTorch records one for each
/// record_function with CUDA activity on), or, when the trace has none, the span from the
/// first start to the last end of the GPU kernels, copies and sets launched inside the
/// region (matched through the launch's `correlation`).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/model.h"

namespace ppsim::cal {

/// @brief GPU times (ms) of every instance of each (layer, phase) region, in trace order.
struct TraceRegions {
  std::map<std::pair<std::string, std::string>, std::vector<double>> gpu_ms;
  std::string gpu_source;  ///< "gpu_user_annotation" or "kernels"
  std::string device;      ///< deviceProperties[0].name when the trace has it
  std::int64_t device_memory{0};
  std::string compute_capability;
};

/// @brief Reads the regions of a trace. Throws std::invalid_argument "FILE: json.path:
/// problem" for a trace that is not a Chrome trace, a malformed ppsim region name,
/// regions that overlap on one thread, a region without GPU work, or a trace with no
/// GPU activity at all (recorded without ProfilerActivity.CUDA).
TraceRegions read_torch_trace(const nlohmann::json& trace, const std::string& file);

/// @brief The profile: one layer entry per LAYER found, its shape from `block` (and
/// `vocab` for the embedding and head) at `micro_batch`, its times the medians of the
/// instances after the first `skip`, its bytes and FLOPs from the formulas of model.h
/// (activations: Korthikanti's for a block). Needs F and B of the block; without W
/// regions, B is the whole backward and backward_weight_ms is 0 (said in the layer's
/// `note`). Throws std::invalid_argument naming the missing region.
nlohmann::json profile_from_trace(const TraceRegions& regions, const LayerShape& block, std::int64_t micro_batch,
                                  int skip, const std::string& file);

}  // namespace ppsim::cal
