// libFuzzer target: the profile reader of ppsim-calibrate (load_profile: JSON and the
// ppsim.profile/1 schema check). Refusals must be ProfileError.
#include "fuzz_input.h"
#include "ppsim/calibrate/profile.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = ppsim_fuzz::input_file(data, size);
  ppsim_fuzz::expect_only<ppsim::cal::ProfileError>([&] { (void)ppsim::cal::load_profile(path); });
  return 0;
}
