#pragma once
/// @file timeline.h
/// @brief Timeline JSON: compute, send and recv events, collectives and memory samples.
#include <ostream>

#include <nlohmann/json.hpp>

#include "ppsim/engine/engine.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief Timeline JSON (docs/formats.md; schema views/timeline.schema.json).
nlohmann::json make_timeline(const Schedule& schedule, const SimResult& result);
/// @brief Writes the same document, compact as `make_timeline(...).dump()`, event by
/// event: a few hundred bytes of memory whatever the number of ops.
void write_timeline(std::ostream& out, const Schedule& schedule, const SimResult& result);

}  // namespace ppsim
