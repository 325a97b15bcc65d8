#pragma once
/// @file device_scratch.h
/// @brief A device buffer grown on demand (first use is in warm-up) and freed with its
/// owner: the CUDA backend's fp32 workspace and the fused ops' scratch buffers.
#include <cuda_runtime.h>

#include <cstddef>

#include "cuda_check.h"

namespace ppsim::cal {

class DeviceScratch {
 public:
  DeviceScratch() = default;
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  ~DeviceScratch() {
    if (p_) cudaFree(p_);
  }
  /// At least `bytes`; growing waits for `stream` first (the old buffer may be in use).
  void* get(std::size_t bytes, cudaStream_t stream) {
    if (bytes > bytes_) {
      CUDA_CHECK(cudaStreamSynchronize(stream));
      if (p_) CUDA_CHECK(cudaFree(p_));
      p_ = nullptr;
      CUDA_CHECK(cudaMalloc(&p_, bytes));
      bytes_ = bytes;
    }
    return p_;
  }

 private:
  void* p_{nullptr};
  std::size_t bytes_{0};
};

}  // namespace ppsim::cal
