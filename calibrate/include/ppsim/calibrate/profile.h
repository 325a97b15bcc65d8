#pragma once
/// @file profile.h
/// @brief The versioned profile JSON (`ppsim.profile/1`): writing it atomically,
/// reading it back and refusing malformed ones with the JSON path of the problem.
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/measure.h"
#include "ppsim/engine/link_curve.h"

namespace ppsim::cal {

inline constexpr const char* kProfileSchema = "ppsim.profile/1";

/// @brief A profile that is missing a field or holds a negative / non-finite number.
/// what() is "FILE: json.path: what is wrong".
class ProfileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief A new, empty profile with the device, versions, date and method filled in.
nlohmann::json new_profile(const Backend& backend, const Method& method);
/// @brief The same for measurements that did not come from a backend (an imported
/// PyTorch trace): the backend's name, dtype, device and the method's JSON given.
nlohmann::json new_profile(const std::string& backend, Dtype dtype, const DeviceInfo& device, const nlohmann::json& method);
/// @brief Adds or replaces (by `key`) one layer measurement.
void upsert_layer(nlohmann::json& profile, const nlohmann::json& layer);
/// @brief Adds or replaces (by kind/src/dst) one link curve.
void upsert_link(nlohmann::json& profile, const nlohmann::json& link);
/// @brief True when the profile already holds a layer with this key.
bool has_layer(const nlohmann::json& profile, const std::string& key);

/// @brief Writes `path.tmp.PID` then renames it over `path`, so no reader ever sees a
/// half-written file.
void write_json_atomic(const std::string& path, const nlohmann::json& j);
/// @brief Throws ProfileError naming `file` and the JSON path of the first problem.
void validate_profile(const nlohmann::json& profile, const std::string& file);
/// @brief A link fit's `segments` array (latency + bandwidth per size range, written by
/// `p2p`): each {from_bytes >= 0 (strictly increasing), latency_us, bandwidth_GBps >= 0},
/// with a positive time at its start. Throws std::invalid_argument "PATH[i].key: problem".
/// The one reader of the format: profile validation and the simulator's links use it.
std::vector<LinkSegment> link_segments_from_json(const nlohmann::json& segments, const std::string& path);
/// @brief Reads, parses and validates a profile.
nlohmann::json load_profile(const std::string& path);

}  // namespace ppsim::cal
