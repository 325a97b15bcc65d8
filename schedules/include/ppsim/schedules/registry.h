#pragma once
/// @file registry.h
/// @brief Named schedule generators.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief A pure function from a pipeline shape to per-device op lists.
/// Throws ScheduleError for shapes it does not support.
using ScheduleGenerator = Schedule (*)(const ScheduleParams&);

struct ScheduleInfo {
  std::string name;
  std::vector<std::string> aliases;
  std::string description;
  bool synchronous{true};
  ScheduleGenerator generate{nullptr};
  /// Chunks per device `ppsim compare` builds it with when the config gives one: 1 for
  /// schedules with one stage per device, 2 for interleaved and V-shaped ones.
  int chunks{1};
};

/// @brief Every registered schedule, in presentation order.
const std::vector<ScheduleInfo>& all_schedules();

/// @brief Looks a schedule up by name or alias; nullptr when unknown.
const ScheduleInfo* find_schedule(std::string_view name);

/// @brief Comma-separated list of known names, for error messages.
std::string known_schedule_names();

/// @brief Generates by name; throws ScheduleError for an unknown name or bad shape.
Schedule make_schedule(std::string_view name, const ScheduleParams& params);


}  // namespace ppsim
