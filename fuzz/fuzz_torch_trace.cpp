// libFuzzer target: ppsim-calibrate import's torch.profiler trace reader (read_torch_trace
// and profile_from_trace). Refusals must be InputFileError (the bounded JSON reader) or
// std::invalid_argument (the trace and profile checks).
#include "fuzz_input.h"
#include "ppsim/calibrate/trace_import.h"
#include "ppsim/input/json_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = ppsim_fuzz::input_file(data, size);
  ppsim_fuzz::expect_only<ppsim::InputFileError, std::invalid_argument>([&] {
    const nlohmann::json trace = ppsim::read_json_input(path);
    ppsim::cal::LayerShape block;
    block.hidden = 256;
    block.heads = 4;
    block.seq = 128;
    block.vocab = 1024;
    (void)ppsim::cal::profile_from_trace(ppsim::cal::read_torch_trace(trace, path), block, 1, 0, path);
  });
  return 0;
}
