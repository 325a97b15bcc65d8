#pragma once
// Internal: turns a transformer model with `"costs": {"profile": ...}` (measured by
// ppsim-calibrate) or `"costs": {"device": ...}` (analytic roofline, an estimate) into the
// synthetic `model.layers` form (SPEC §7), before the config is parsed.
#include <string>

#include <nlohmann/json.hpp>

namespace ppsim::detail {

/// @brief Returns `doc` unchanged when it has no "costs"; otherwise a copy whose
/// model.layers come from the profile / device spec. Throws ConfigError naming the path.
nlohmann::json expand_transformer_costs(const nlohmann::json& doc, const std::string& file);

}  // namespace ppsim::detail
