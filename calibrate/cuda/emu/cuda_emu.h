#pragma once
/// @file cuda_emu.h
/// @brief Runs our CUDA kernels on the CPU, for testing without a GPU.
///
/// Compiled by the host compiler (never nvcc) in front of the kernel headers
/// (`kernels_*.cuh`), it supplies what those kernels use of CUDA: `threadIdx`,
/// `blockIdx`, `blockDim`, `gridDim`, `__syncthreads`, `__shfl_sync`,
/// `__shfl_xor_sync`, `atomicAdd`, static and dynamic shared memory, and the fast-math
/// intrinsics. `PPSIM_LAUNCH(kernel, grid, block, smem, stream)(args...)` runs a
/// launch: blocks one after another, each block's threads as fibers (Boost.Context),
/// switched at every barrier and shuffle, so every thread of a block really waits for
/// the others as on a GPU. Threads that return early leave the block's and their warp's
/// barriers (as exited threads do on Volta and later).
///
/// What it catches: wrong indices (out-of-bounds reads and writes under
/// AddressSanitizer), reads of shared memory nobody wrote (dynamic shared memory starts
/// as NaN), barriers not reached by every thread (a deadlock is reported, not hung
/// on), shuffles in a warp some lanes have left, launch shapes beyond CUDA's limits.
/// What it cannot: timing, memory-model races between warps (one fiber runs at a time),
/// tensor cores and cuBLAS (the emulated backend runs GEMMs on the CPU).
#if defined(__CUDACC__)
#error "cuda_emu.h is for the host compiler; nvcc compiles the kernels for the GPU"
#endif

#define __global__
#define __device__
#define __host__
#define __shared__ static  // one block runs at a time: a static is that block's shared memory

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

namespace ppsim::emu {

/// The running thread's index (the current fiber's) and its block's geometry.
const uint3& thread_index();
const uint3& block_index();
const dim3& block_dim();
const dim3& grid_dim();
/// The running thread's lane: its linear index in the block (x fastest, then y, z) mod 32.
unsigned lane_id();
/// __syncthreads: waits until every thread of the block still running arrives.
void sync_block();
/// Stores `bytes` of this lane's value, waits for the warp, copies lane `src`'s value
/// into `out`, waits again (so the slots can be reused). Every lane of the warp must run.
void warp_exchange(const void* value, void* out, std::size_t bytes, int src);
/// The launch's dynamic shared memory (filled with NaN bytes before each block).
void* dynamic_shared();
/// Runs `body` as every thread of every block of `grid`.
void run(const char* kernel, dim3 grid, dim3 block, std::size_t shared_bytes, const std::function<void()>& body);

/// The launch of one kernel; call it with the kernel's arguments.
template <class... P>
struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  std::size_t shared_bytes;
  const char* name;
  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel called with the wrong number of arguments");
    auto* k = kernel;
    // Each thread gets its own copy of the arguments, as a kernel's parameters are.
    run(name, grid, block, shared_bytes, [&] { k(static_cast<P>(args)...); });
  }
};
template <class... P>
Launch(void (*)(P...), dim3, dim3, std::size_t, const char*) -> Launch<P...>;

}  // namespace ppsim::emu

#define threadIdx (::ppsim::emu::thread_index())
#define blockIdx (::ppsim::emu::block_index())
#define blockDim (::ppsim::emu::block_dim())
#define gridDim (::ppsim::emu::grid_dim())

#define PPSIM_LAUNCH(kernel, grid, block, smem, stream) \
  ::ppsim::emu::Launch{kernel, dim3(grid), dim3(block), static_cast<std::size_t>(smem), #kernel}
#define PPSIM_CHECK_LAUNCH() ((void)0)
#define PPSIM_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::ppsim::emu::dynamic_shared())

inline void __syncthreads() { ::ppsim::emu::sync_block(); }

template <class V>
V __shfl_sync(unsigned mask, V v, int src) {
  static_assert(std::is_trivially_copyable_v<V>);
  if (mask != 0xffffffffu) std::abort();  // our kernels only shuffle whole warps
  V out;
  ::ppsim::emu::warp_exchange(&v, &out, sizeof(V), src & 31);
  return out;
}
template <class V>
V __shfl_xor_sync(unsigned mask, V v, int lane_mask) {
  static_assert(std::is_trivially_copyable_v<V>);
  if (mask != 0xffffffffu) std::abort();
  V out;
  ::ppsim::emu::warp_exchange(&v, &out, sizeof(V),
                              static_cast<int>((::ppsim::emu::lane_id() ^ static_cast<unsigned>(lane_mask)) & 31));
  return out;
}

// One fiber runs at a time, so an atomic is a plain read-modify-write.
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline __half atomicAdd(__half* p, __half v) {
  const __half old = *p;
  *p = __float2half_rn(__half2float(old) + __half2float(v));
  return old;
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* p, __nv_bfloat16 v) {
  const __nv_bfloat16 old = *p;
  *p = __float2bfloat16_rn(__bfloat162float(old) + __bfloat162float(v));
  return old;
}

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
