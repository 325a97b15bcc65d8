#pragma once
/// @file measure.h
/// @brief Timing method shared by every backend and measured thing.
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/model.h"
#include "ppsim/calibrate/stats.h"

namespace ppsim::cal {

/// @brief How each quantity is timed.
struct Method {
  int warmup{10};            ///< untimed iterations first (module load, handles, caches)
  int min_iterations{10};
  int max_iterations{200};
  double target_ms{300.0};   ///< timed iterations are chosen to take about this long
  int rotate{4};             ///< input buffers cycled so caches do not flatter
};
nlohmann::json method_to_json(const Method& m, const std::string& clock);

/// @brief Timings and bytes of one layer shape.
struct LayerMeasurement {
  LayerShape shape;
  Summary forward, backward_input, backward_weight;  ///< milliseconds
  std::int64_t activation_bytes{0};        ///< saved by forward for backward (allocator)
  std::int64_t weight_grad_bytes{0};       ///< still held after backward-input for W
  std::int64_t expected_activation_bytes{0};
  std::int64_t korthikanti_bytes{0};
  std::int64_t output_bytes{0};
  std::int64_t parameter_bytes{0};
  Flops flops;
};

/// @brief Runs warm-up, then forward / backward-input / backward-weight timed separately
/// on rotating inputs; bytes from the allocator's counters.
LayerMeasurement measure_layer(Backend& backend, const LayerShape& shape, const Method& method);

nlohmann::json measurement_to_json(const LayerMeasurement& m);
nlohmann::json summary_to_json(const Summary& s);

/// @brief Iterations for a time target given the warm-up's mean per-iteration time.
int iterations_for_target(double per_iteration_ms, const Method& m);

}  // namespace ppsim::cal
