#pragma once
/// @file kernel_support.cuh
/// @brief What the kernel headers (`kernels_*.cuh`) need, for either compiler: under
/// nvcc the real launch syntax; with `PPSIM_CUDA_EMU` defined, the CPU emulator
/// (emu/cuda_emu.h), so the same kernels and the same launch shapes run in CI.
///
/// `PPSIM_LAUNCH(kernel, grid, block, smem, stream)(args...)` launches;
/// `PPSIM_CHECK_LAUNCH()` checks it; `PPSIM_DYNAMIC_SHARED(type, name)` declares the
/// dynamic shared memory; `KStream` is the stream type. The kernels live in namespace
/// `PPSIM_KERNEL_NS` (`kern`, or `kern_emu` in the emulator's build), so a binary with
/// both never mixes their template instances.
#include <cstddef>

#if defined(PPSIM_CUDA_EMU)
#include "emu/cuda_emu.h"
#define PPSIM_KERNEL_NS kern_emu
namespace ppsim::cal::kern_emu {
using KStream = void*;
/// The emulator checks the launch's shared memory against sm_90's limit itself.
template <class K> void allow_dynamic_shared(K, std::size_t) {}
}
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_check.h"
#define PPSIM_KERNEL_NS kern
#define PPSIM_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define PPSIM_CHECK_LAUNCH() CUDA_CHECK_LAUNCH()
#define PPSIM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
namespace ppsim::cal::kern {
using KStream = cudaStream_t;
/// Opts a kernel in to more than 48 KiB of dynamic shared memory when it needs it.
template <class K> void allow_dynamic_shared(K kernel, std::size_t smem) {
  if (smem > 48u * 1024u)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
}
}
#endif
