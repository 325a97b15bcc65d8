#pragma once
// SM partitions of one GPU through green contexts (CUDA 12.4+): the replay's devices on
// one GPU, and the partition `ppsim-calibrate layers` measures on when
// PPSIM_CUDA_SM_PARTITIONS is set (calibrate/README.md, "Replay"). Driver API entry
// points come through cudaGetDriverEntryPointByVersion, so nothing links libcuda.
#include <cuda.h>
#include <cuda_runtime.h>

#include <vector>

namespace ppsim::cal {

struct SmPartition {
  CUgreenCtx context{};
  cudaStream_t stream{};  ///< a non-blocking stream of the green context
  unsigned sms{0};
};

/// @brief GPU 0 split into `count` equal groups of SMs (SMs / count each, rounded by the
/// driver to the architecture's granularity; the rest unused), a green context and a
/// stream each. Throws NoDeviceError when the driver cannot.
std::vector<SmPartition> make_sm_partitions(int count);
/// @brief Makes the partition's green context current on the calling thread.
void bind_sm_partition(const SmPartition& p);
/// @brief SM partitions PPSIM_CUDA_SM_PARTITIONS asks for (0: none, the whole GPU).
int sm_partitions_from_env();

}  // namespace ppsim::cal
