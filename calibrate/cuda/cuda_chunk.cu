// The CUDA chunk kernels (cuda_chunk.h); the kernels and their launches are
// kernels_chunk.cuh, shared with the CPU emulator.
#include "cuda_chunk.h"

#include "kernels_chunk.cuh"

namespace ppsim::cal {

std::unique_ptr<ChunkKernels> make_cuda_chunk_kernels(Dtype dtype, cudaStream_t stream) {
  switch (dtype) {
    case Dtype::fp32: return std::make_unique<kern::KernelChunkKernels<float>>(stream);
    case Dtype::fp16: return std::make_unique<kern::KernelChunkKernels<__half>>(stream);
    case Dtype::bf16: return std::make_unique<kern::KernelChunkKernels<__nv_bfloat16>>(stream);
  }
  return nullptr;
}

}  // namespace ppsim::cal
