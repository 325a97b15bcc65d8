#pragma once
/// @file checks.h
/// @brief Cross-backend checks (each kernel against the CPU backend on the same random
/// input), the N-block chain used to test prediction accuracy, and GEMM throughput.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/measure.h"

namespace ppsim::cal {

struct CheckResult {
  std::string name;
  double relative_error{0};  ///< ||out - ref|| / ||ref||
  double tolerance{0};
  bool exact{false};         ///< compared bit for bit (masks)
  bool passed{false};
};

/// @brief Relative L2 error; NaN in `out` or `ref` yields +inf.
double relative_l2_error(const std::vector<float>& out, const std::vector<float>& ref);
/// @brief What the dtype allows for a single kernel (fp32 1e-5.. bf16 1e-2).
double kernel_tolerance(Dtype d);
/// @brief What the fused attention's fp32 log-sum-exp may differ by: 1e-4 (fp32
/// statistics, as layer norm's), or one unit roundoff of the storage dtype where that is
/// larger (bf16 2^-8, fp16 2^-11). Chunked attention, the GPU's default, takes the
/// softmax of scores its GEMM stored in the dtype (as the plain attention does), so its
/// log-sum-exp carries that rounding; flash attention keeps the scores in fp32.
double lse_tolerance(Dtype d);
/// @brief What the dtype allows for a whole layer's outputs and gradients, and a
/// backward through several kernels (fp32 1e-4, fp16 and bf16 5e-2).
double layer_tolerance(Dtype d);

/// @brief Runs every backend kernel and the three layers on `test` and on the CPU
/// reference with the same inputs (rounded to the test dtype) and compares.
std::vector<CheckResult> check_against_cpu(Backend& test, const LayerShape& small_block,
                                           std::int64_t vocab);

/// @brief Times `layers` identical blocks forward then backward (input and weight
/// gradient per layer, last to first) as one region.
Summary measure_chain(Backend& backend, const LayerShape& block, int layers, const Method& method,
                      std::int64_t* peak_bytes);

/// @brief TFLOP/s of the block's four linear GEMMs (forward shape) and of a square
/// `square` GEMM, each timed with the shared method.
nlohmann::json measure_gemms(Backend& backend, const LayerShape& block, int square, const Method& method);

}  // namespace ppsim::cal
