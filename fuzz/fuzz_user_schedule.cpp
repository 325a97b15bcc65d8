// libFuzzer target: the user-schedule reader (load_user_schedule: per-device token
// lists, shape fields, the dependency check). Refusals must be ScheduleError or
// ConfigError.
#include "fuzz_input.h"
#include "ppsim/run/config.h"
#include "ppsim/schedules/schedule.h"
#include "ppsim/schedules/user_schedule.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = ppsim_fuzz::input_file(data, size);
  ppsim_fuzz::expect_only<ppsim::ScheduleError, ppsim::ConfigError>([&] { (void)ppsim::load_user_schedule(path); });
  return 0;
}
