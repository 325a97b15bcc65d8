#pragma once
/// @file cuda_fused.h
/// @brief The CUDA backend's fused kernels (cuda_fused.cu): our own flash-attention
/// forward and backward (fp32 math over bf16/fp16/fp32 storage), cuBLASLt GEMMs with
/// the GELU_AUX_BIAS and DGELU_BGRAD epilogues, bias-dropout-add.
#include <cuda_runtime.h>

#include <memory>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/fused.h"

namespace ppsim::cal {

/// @brief Fused kernels on `stream` for storage dtype `dtype`; `backend` (the CUDA backend
/// that owns the result) runs the plain GEMM and kernels when cuBLASLt has no epilogue
/// algorithm for a shape.
std::unique_ptr<FusedOps> make_cuda_fused_ops(Dtype dtype, cudaStream_t stream, Backend& backend);

}  // namespace ppsim::cal
