#pragma once
/// @file user_schedule.h
/// @brief Schedules written by users as JSON: per-device token lists.
#include <string>

#include <nlohmann/json.hpp>

#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief Parses a user schedule document. Format:
/// `{"name": "mine", "devices": 2, "microbatches": 2, "chunks": 1, "pipes": 1,
///   "split_backward": false, "ops": [["F0","F1","B0","B1"], ["F0","B0","F1","B1"]]}`.
/// Tokens are `F3`, `B3`, `W3` with optional suffixes `c<chunk>`, `p<pipe>` and
/// `s<stage>`. Without `s`, pipe 0 places chunk c of device d at stage c*devices+d
/// (Megatron's interleaving) and pipe 1 mirrors it (stage S-1 minus that).
/// Throws ScheduleError whose message starts with "<json path>: ".
Schedule parse_user_schedule(const nlohmann::json& doc);

/// @brief Reads and parses a user schedule file; errors name the file and JSON path. A
/// file whose name ends in `.csv` is PyTorch's schedule CSV (parse_torch_csv), read for a
/// pipeline of `chunks` chunks per device.
Schedule load_user_schedule(const std::string& path, int chunks = 1);

}  // namespace ppsim
