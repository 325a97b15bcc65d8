#pragma once
/// @file costs.h
/// @brief Per-layer costs for the simulator: from a measured profile (interpolated
/// between measured micro-batch sizes) or from an analytic roofline over a device spec
/// (an estimate, and labelled so).
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/model.h"

namespace ppsim::cal {

/// @brief Costs of one layer for one micro-batch.
struct LayerCosts {
  std::string name;            ///< "embedding", "block", "head"
  double forward_ms{0};
  double backward_ms{0};       ///< full backward: input + weight gradient
  double weight_grad_ms{0};    ///< the weight-gradient part of backward_ms
  std::int64_t activation_bytes{0};
  std::int64_t output_bytes{0};
  std::int64_t parameter_bytes{0};
  double flops{0};             ///< forward + backward
  std::string source;          ///< "profile:FILE" or "roofline estimate:DEVICE"
};

/// @brief The transformer the simulator runs.
struct TransformerSpec {
  int layers{0};
  std::int64_t hidden{0};
  std::int64_t heads{0};
  std::int64_t seq{0};
  std::int64_t micro_batch{1};
  std::int64_t ffn_hidden{0};  ///< 0: 4 * hidden
  std::int64_t vocab{0};       ///< 0: no embedding / head layers
  Dtype dtype{Dtype::bf16};
  std::int64_t tp{1};              ///< tensor-parallel degree: costs are one GPU's shard
  bool sequence_parallel{false};
  BlockArch arch{BlockArch::gpt};  ///< model.block / the preset's `block`
  std::int64_t kv_heads{0};        ///< llama: key/value heads (0: heads)
  Kernels kernels{Kernels::plain};  ///< the block's kernels: a profile's fused blocks cost fused models only
};

/// @brief A shape the profile does not cover (the message says which and what is there).
class MissingShapeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief [embedding,] `layers` blocks[, head] from a validated profile. Micro-batch
/// sizes between two measured ones are interpolated linearly (times and bytes); outside
/// the measured range, or for a shape never measured, throws MissingShapeError.
std::vector<LayerCosts> costs_from_profile(const nlohmann::json& profile,
                                           const TransformerSpec& model,
                                           const std::string& label = "profile");

/// @brief Peak rates of one device, from configs/devices/*.json.
struct DeviceSpec {
  std::string name;
  std::map<std::string, double> peak_tflops;  ///< dense, by dtype name
  double memory_GBps{0};
  double memory_bytes{0};
  double nvlink_GBps{0};                      ///< per direction
  double network_GBps{0};                     ///< per GPU, inter-node, per direction
  /// Fraction of the peak a large GEMM reaches on this device, measured once by a
  /// microbenchmark (ppsim-calibrate gemm); 1 when the device file gives none.
  double gemm_efficiency{1.0};
};
DeviceSpec device_from_json(const nlohmann::json& j, const std::string& where);

/// @brief The shape of one layer of `kind` in the model.
LayerShape shape_of(LayerKind kind, const TransformerSpec& model);

/// @brief Roofline estimate: each of F, B-input, W takes max(FLOPs / (peak x
/// gemm_efficiency), bytes / memory bandwidth), bytes = parameters + saved activations + output read or written
/// once. An optimistic bound, labelled "roofline estimate" in `source`.
std::vector<LayerCosts> costs_from_roofline(const DeviceSpec& device, const TransformerSpec& model);

/// @brief Transfer time from a profile's link curve of `kind` (fit: latency + bytes/bw).
double link_time_ms(const nlohmann::json& profile, const std::string& kind, std::int64_t bytes);

}  // namespace ppsim::cal
