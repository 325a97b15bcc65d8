// libFuzzer target: the config reader (load_config: JSON, presets, profiles, clusters,
// every section's checks). Refusals must be ConfigError or ScheduleError.
#include "fuzz_input.h"
#include "ppsim/run/config.h"
#include "ppsim/schedules/schedule.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = ppsim_fuzz::input_file(data, size);
  ppsim_fuzz::expect_only<ppsim::ConfigError, ppsim::ScheduleError>([&] { (void)ppsim::load_config(path); });
  return 0;
}
