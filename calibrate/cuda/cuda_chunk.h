#pragma once
/// @file cuda_chunk.h
/// @brief The CUDA chunk kernels of chunked attention (chunked_attention.h): causal
/// softmax with log-sum-exp, its recomputation and backward, with the dropout mask
/// regenerated from the counter hash; fp32 math over the storage dtype.
#include <cuda_runtime.h>

#include <memory>

#include "ppsim/calibrate/chunked_attention.h"
#include "ppsim/calibrate/model.h"

namespace ppsim::cal {

/// @brief Chunk kernels on `stream` for storage dtype `dtype`.
std::unique_ptr<ChunkKernels> make_cuda_chunk_kernels(Dtype dtype, cudaStream_t stream);

}  // namespace ppsim::cal
