#pragma once
/// @file transformer.h
/// @brief The transformer shape of a config costed from a calibration profile or a
/// roofline ("costs"), as its costs were computed: for tools that run the model itself
/// (ppsim-calibrate replay).
#include <optional>

#include "ppsim/run/config.h"

#ifdef PPSIM_HAVE_PROFILES
#include "ppsim/calibrate/costs.h"

namespace ppsim {

/// @brief The config's transformer (layers, shape, micro-batch size, dtype, tensor
/// parallelism) read from Config::costed by the same code that costed it; nullopt for a
/// config with explicit model.layers. Throws ConfigError naming the config file.
std::optional<cal::TransformerSpec> transformer_spec(const Config& config);

}  // namespace ppsim
#endif
