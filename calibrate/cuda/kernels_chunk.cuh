#pragma once
/// @file kernels_chunk.cuh
/// @brief The chunk kernels of chunked attention (chunked_attention.h): one block per
/// score row of a [heads, rows, cols] chunk, index for index the CPU's
/// (chunked_attention.cpp). Row R is query head j = R / rows, query q = q0 + R % rows,
/// which sees keys 0..q. Compiled by nvcc (cuda_chunk.cu) and with the CPU emulator
/// (emu/emu_backend.cpp).
#include "device_math.cuh"
#include "ppsim/calibrate/chunked_attention.h"

namespace ppsim::cal::PPSIM_KERNEL_NS {

/// Where a chunk row sits: its head, its query, its dropout and statistics indices.
struct Row {
  int j, q;
  unsigned long long drop0;  // dropout index of (q, key 0)
  long long stat;            // (bi*heads + j)*seq + q
};

__device__ inline Row row_of(long long R, int heads, int rows, int seq, int bi, int q0) {
  const int j = static_cast<int>(R / rows), q = q0 + static_cast<int>(R % rows);
  const long long stat = (static_cast<long long>(bi) * heads + j) * seq + q;
  return {j, q, static_cast<unsigned long long>(stat) * static_cast<unsigned long long>(seq), stat};
}

__device__ __forceinline__ float keep(const Row& r, int c, float p, unsigned long long seed) {
  if (p <= 0.0f) return 1.0f;
  return d_hash_uniform(seed, r.drop0 + static_cast<unsigned long long>(c)) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

template <class T>
__global__ void k_chunk_softmax(T* S, float* lse, int heads, int rows, int cols, int seq, int bi, int q0, float p,
                                unsigned long long seed) {
  const Row r = row_of(blockIdx.x, heads, rows, seq, bi, q0);
  T* x = S + static_cast<long long>(blockIdx.x) * cols;
  float m = -INFINITY;
  for (int c = threadIdx.x; c <= r.q; c += blockDim.x) m = fmaxf(m, to_f(x[c]));
  m = block_max(m);
  float sum = 0;
  for (int c = threadIdx.x; c <= r.q; c += blockDim.x) sum += __expf(to_f(x[c]) - m);
  sum = block_sum(sum);
  if (threadIdx.x == 0) lse[r.stat] = m + __logf(sum);
  const float inv = 1.0f / sum;
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    x[c] = from_f<T>(c <= r.q ? __expf(to_f(x[c]) - m) * inv * keep(r, c, p, seed) : 0.0f);
}

template <class T>
__global__ void k_chunk_recompute(T* S, T* Pd, const float* lse, int heads, int rows, int cols, int seq, int bi,
                                  int q0, float p, unsigned long long seed) {
  const Row r = row_of(blockIdx.x, heads, rows, seq, bi, q0);
  const long long off = static_cast<long long>(blockIdx.x) * cols;
  const float L = lse[r.stat];
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float P = c <= r.q ? __expf(to_f(S[off + c]) - L) : 0.0f;
    S[off + c] = from_f<T>(P);
    Pd[off + c] = from_f<T>(P * keep(r, c, p, seed));
  }
}

template <class T>
__global__ void k_chunk_backward(const T* P, T* dPd, const float* D, int heads, int rows, int cols, int seq, int bi,
                                 int q0, float scale, float p, unsigned long long seed) {
  const Row r = row_of(blockIdx.x, heads, rows, seq, bi, q0);
  const long long off = static_cast<long long>(blockIdx.x) * cols;
  const float Dq = D[r.stat];
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    dPd[off + c] = from_f<T>(c <= r.q ? scale * to_f(P[off + c]) * (to_f(dPd[off + c]) * keep(r, c, p, seed) - Dq)
                                      : 0.0f);
}

// One warp per (token, head): D[(bi*heads + j)*seq + q] = dO . O over the head's columns.
template <class T>
__global__ void k_row_dot(const T* O, const T* dO, float* D, long long tokens, int heads, int d, int seq) {
  const long long w = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (w >= tokens * heads) return;
  const long long t = w / heads;
  const int j = static_cast<int>(w % heads);
  const long long base = t * static_cast<long long>(heads) * d + static_cast<long long>(j) * d;
  float acc = 0;
  for (int c = lane; c < d; c += 32) acc += to_f(O[base + c]) * to_f(dO[base + c]);
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  const long long bi = t / seq, q = t % seq;
  if (lane == 0) D[(bi * heads + j) * seq + q] = acc;
}

template <class T>
class KernelChunkKernels final : public ChunkKernels {
 public:
  explicit KernelChunkKernels(KStream stream) : stream_(stream) {}

  void softmax_forward(void* S, float* lse, const AttentionShape& a, int bi, int q0, int rows, int cols) override {
    PPSIM_LAUNCH(k_chunk_softmax<T>, grid(a, rows), kThreads, 0, stream_)(static_cast<T*>(S), lse, a.heads, rows, cols, a.seq,
                                                                 bi, q0, a.dropout_p, a.seed);
    PPSIM_CHECK_LAUNCH();
  }
  void softmax_recompute(void* S, void* Pd, const float* lse, const AttentionShape& a, int bi, int q0, int rows,
                         int cols) override {
    PPSIM_LAUNCH(k_chunk_recompute<T>, grid(a, rows), kThreads, 0, stream_)(static_cast<T*>(S), static_cast<T*>(Pd), lse,
                                                                   a.heads, rows, cols, a.seq, bi, q0, a.dropout_p,
                                                                   a.seed);
    PPSIM_CHECK_LAUNCH();
  }
  void softmax_backward(const void* P, void* dPd, const float* D, const AttentionShape& a, int bi, int q0, int rows,
                        int cols) override {
    PPSIM_LAUNCH(k_chunk_backward<T>, grid(a, rows), kThreads, 0, stream_)(static_cast<const T*>(P), static_cast<T*>(dPd), D,
                                                                  a.heads, rows, cols, a.seq, bi, q0, a.scale,
                                                                  a.dropout_p, a.seed);
    PPSIM_CHECK_LAUNCH();
  }
  void row_dot(const void* out, const void* dout, float* D, const AttentionShape& a) override {
    const long long tokens = static_cast<long long>(a.batch) * a.seq;
    const long long threads = tokens * a.heads * 32;
    PPSIM_LAUNCH(k_row_dot<T>, static_cast<unsigned>((threads + kThreads - 1) / kThreads), kThreads, 0, stream_)(
        static_cast<const T*>(out), static_cast<const T*>(dout), D, tokens, a.heads, a.head_dim, a.seq);
    PPSIM_CHECK_LAUNCH();
  }

 private:
  static unsigned grid(const AttentionShape& a, int rows) { return static_cast<unsigned>(a.heads) * rows; }
  KStream stream_;
};

}  // namespace ppsim::cal::PPSIM_KERNEL_NS
