#pragma once
/// @file kernels_backend.cuh
/// @brief The CUDA backend's own kernels (layer norm, softmax, GeLU, bias, residual,
/// dropout, embedding, cross-entropy, and the Llama block's RMSNorm, rotary and SwiGLU)
/// and `KernelBackend`, the Backend ops that launch them with their launch shapes.
/// Compiled by nvcc for the GPU (cuda_backend.cu) and by the host compiler with the
/// CPU emulator (emu/emu_backend.cpp), so CI runs these very kernels and launches.
#include <cstdint>
#include <cstring>

#include "device_math.cuh"
#include "ppsim/calibrate/backend.h"

namespace ppsim::cal::PPSIM_KERNEL_NS {

template <class T> T host_from_f(float x);
template <> inline float host_from_f<float>(float x) { return x; }
template <> inline __half host_from_f<__half>(float x) { return __float2half_rn(x); }
template <> inline __nv_bfloat16 host_from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
inline float host_to_f(float x) { return x; }
inline float host_to_f(__half x) { return __half2float(x); }
inline float host_to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

inline unsigned grid_for(std::int64_t n) {
  const std::int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 16 ? (blocks > 0 ? blocks : 1) : 65535 * 16);
}

#define GRID_STRIDE(i, n) \
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)

template <class T> __global__ void k_fill_uniform(T* y, std::int64_t n, unsigned long long seed, float scale) {
  GRID_STRIDE(i, n) y[i] = from_f<T>((2.0f * d_hash_uniform(seed, i) - 1.0f) * scale);
}

template <class T>
__global__ void k_layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, float* mean, float* rstd, int cols) {
  const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * cols;
  float s = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) s += to_f(x[o + c]);
  const float mu = block_sum(s) / cols;
  float v = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float d = to_f(x[o + c]) - mu;
    v += d * d;
  }
  const float rs = rsqrtf(block_sum(v) / cols + 1e-5f);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    y[o + c] = from_f<T>((to_f(x[o + c]) - mu) * rs * to_f(gamma[c]) + to_f(beta[c]));
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = mu;
    rstd[blockIdx.x] = rs;
  }
}

template <class T>
__global__ void k_layernorm_backward_input(const T* dy, const T* x, const T* gamma, const float* mean,
                                           const float* rstd, T* dx, int cols, bool accumulate) {
  const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * cols;
  const float mu = mean[blockIdx.x], rs = rstd[blockIdx.x];
  float s1 = 0, s2 = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float g = to_f(dy[o + c]) * to_f(gamma[c]);
    s1 += g;
    s2 += g * (to_f(x[o + c]) - mu) * rs;
  }
  s1 = block_sum(s1) / cols;
  s2 = block_sum(s2) / cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float g = to_f(dy[o + c]) * to_f(gamma[c]);
    const float xh = (to_f(x[o + c]) - mu) * rs;
    float v = rs * (g - s1 - xh * s2);
    if (accumulate) v += to_f(dx[o + c]);
    dx[o + c] = from_f<T>(v);
  }
}

// Column sums over rows into an fp32 workspace: ws_a[c] += sum dy[r,c] * xhat[r,c]
// (when x != nullptr; xhat = (x - mean) * rstd, or x * rstd when mean is null: RMSNorm),
// ws_b[c] += sum dy[r,c]. Block (32, 8), grid (cols/32, row chunks).
template <class T>
__global__ void k_column_reduce(const T* dy, const T* x, const float* mean, const float* rstd, float* ws_a,
                                float* ws_b, int rows, int cols, int rows_per_block) {
  __shared__ float sa[8][33], sb[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int r0 = blockIdx.y * rows_per_block;
  const int r1 = min(rows, r0 + rows_per_block);
  float a = 0, b = 0;
  if (c < cols)
    for (int r = r0 + threadIdx.y; r < r1; r += 8) {
      const std::int64_t i = static_cast<std::int64_t>(r) * cols + c;
      const float g = to_f(dy[i]);
      b += g;
      if (x) a += g * (to_f(x[i]) - (mean ? mean[r] : 0.0f)) * rstd[r];
    }
  sa[threadIdx.y][threadIdx.x] = a;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    for (int k = 1; k < 8; ++k) {
      a += sa[k][threadIdx.x];
      b += sb[k][threadIdx.x];
    }
    if (x) atomicAdd(ws_a + c, a);
    atomicAdd(ws_b + c, b);
  }
}

template <class T> __global__ void k_accumulate(T* y, const float* ws, int n) {
  GRID_STRIDE(i, n) y[i] = from_f<T>(to_f(y[i]) + ws[i]);
}

template <class T> __global__ void k_bias_add(T* y, const T* bias, std::int64_t n, int cols) {
  GRID_STRIDE(i, n) y[i] = from_f<T>(to_f(y[i]) + to_f(bias[i % cols]));
}

__device__ __forceinline__ float gelu_f(float x) {
  const float k = 0.7978845608028654f;
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float gelu_grad_f(float x) {
  const float k = 0.7978845608028654f;
  const float t = tanhf(k * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
}
template <class T> __global__ void k_gelu_forward(const T* x, T* y, std::int64_t n) {
  GRID_STRIDE(i, n) y[i] = from_f<T>(gelu_f(to_f(x[i])));
}
template <class T> __global__ void k_gelu_backward(const T* dy, const T* x, T* dx, std::int64_t n) {
  GRID_STRIDE(i, n) dx[i] = from_f<T>(to_f(dy[i]) * gelu_grad_f(to_f(x[i])));
}

template <class T> __global__ void k_softmax_causal(T* x, int cols) {
  const std::int64_t r = blockIdx.x;
  T* row = x + r * cols;
  const int valid = static_cast<int>(r % cols) + 1;
  float mx = -INFINITY;
  for (int c = threadIdx.x; c < valid; c += blockDim.x) mx = fmaxf(mx, to_f(row[c]));
  mx = block_max(mx);
  float s = 0;
  for (int c = threadIdx.x; c < valid; c += blockDim.x) s += __expf(to_f(row[c]) - mx);
  const float inv = 1.0f / block_sum(s);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    row[c] = from_f<T>(c < valid ? __expf(to_f(row[c]) - mx) * inv : 0.0f);
}

template <class T> __global__ void k_softmax_backward(const T* P, T* dP, int cols, float scale) {
  const std::int64_t r = blockIdx.x;
  const T* p = P + r * cols;
  T* d = dP + r * cols;
  float dot = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += to_f(p[c]) * to_f(d[c]);
  dot = block_sum(dot);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) d[c] = from_f<T>(to_f(p[c]) * (to_f(d[c]) - dot) * scale);
}

template <class T>
__global__ void k_dropout_forward(const T* x, T* y, std::uint8_t* mask, std::int64_t n, float p, unsigned long long seed) {
  const float keep = 1.0f / (1.0f - p);
  GRID_STRIDE(i, n) {
    const bool m = d_hash_uniform(seed, i) >= p;
    mask[i] = m ? 1 : 0;
    y[i] = from_f<T>(m ? to_f(x[i]) * keep : 0.0f);
  }
}
template <class T> __global__ void k_dropout_backward(const T* dy, const std::uint8_t* mask, T* dx, std::int64_t n, float p) {
  const float keep = 1.0f / (1.0f - p);
  GRID_STRIDE(i, n) dx[i] = from_f<T>(mask[i] ? to_f(dy[i]) * keep : 0.0f);
}
template <class T> __global__ void k_residual_add(const T* a, const T* b, T* out, std::int64_t n) {
  GRID_STRIDE(i, n) out[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

template <class T>
__global__ void k_embedding_forward(const std::int32_t* ids, const T* table, const T* pos, T* y, std::int64_t n, int seq, int hidden) {
  GRID_STRIDE(i, n) {
    const std::int64_t t = i / hidden;
    const int c = static_cast<int>(i % hidden);
    y[i] = from_f<T>(to_f(table[static_cast<std::int64_t>(ids[t]) * hidden + c]) +
                     (pos ? to_f(pos[static_cast<std::int64_t>(t % seq) * hidden + c]) : 0.0f));
  }
}
__device__ __forceinline__ void atomic_add_to(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_to(__half* p, float v) { atomicAdd(p, __float2half_rn(v)); }
__device__ __forceinline__ void atomic_add_to(__nv_bfloat16* p, float v) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  atomicAdd(p, __float2bfloat16_rn(v));
#endif
}
template <class T>
__global__ void k_embedding_backward(const std::int32_t* ids, const T* dy, T* dtable, T* dpos, std::int64_t n, int seq, int hidden) {
  GRID_STRIDE(i, n) {
    const std::int64_t t = i / hidden;
    const int c = static_cast<int>(i % hidden);
    const float g = to_f(dy[i]);
    atomic_add_to(dtable + static_cast<std::int64_t>(ids[t]) * hidden + c, g);
    if (dpos) atomic_add_to(dpos + static_cast<std::int64_t>(t % seq) * hidden + c, g);
  }
}

template <class T> __global__ void k_cross_entropy_forward(T* logits, const std::int32_t* labels, float* loss, int vocab) {
  T* x = logits + static_cast<std::int64_t>(blockIdx.x) * vocab;
  float mx = -INFINITY;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) mx = fmaxf(mx, to_f(x[c]));
  mx = block_max(mx);
  float s = 0;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) s += __expf(to_f(x[c]) - mx);
  s = block_sum(s);
  const float label_logit = to_f(x[labels[blockIdx.x]]);
  __syncthreads();  // everyone read the label's logit before it is overwritten
  const float inv = 1.0f / s;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) x[c] = from_f<T>(__expf(to_f(x[c]) - mx) * inv);
  if (threadIdx.x == 0) loss[blockIdx.x] = logf(s) + mx - label_logit;
}
template <class T> __global__ void k_cross_entropy_backward(T* probs, const std::int32_t* labels, std::int64_t n, int vocab, float scale) {
  GRID_STRIDE(i, n) {
    const std::int64_t r = i / vocab;
    const int c = static_cast<int>(i % vocab);
    probs[i] = from_f<T>((to_f(probs[i]) - (c == labels[r] ? 1.0f : 0.0f)) * scale);
  }
}

// ---- Llama block: RMSNorm, rotary, SwiGLU (backend.h).

template <class T> __global__ void k_rmsnorm_forward(const T* x, const T* gamma, T* y, float* rstd, int cols) {
  const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * cols;
  float ss = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = to_f(x[o + c]);
    ss += v * v;
  }
  const float rs = rsqrtf(block_sum(ss) / cols + 1e-5f);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) y[o + c] = from_f<T>(to_f(x[o + c]) * rs * to_f(gamma[c]));
  if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
}

template <class T>
__global__ void k_rmsnorm_backward_input(const T* dy, const T* x, const T* gamma, const float* rstd, T* dx, int cols,
                                         bool accumulate) {
  const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * cols;
  const float rs = rstd[blockIdx.x];
  float dot = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += to_f(dy[o + c]) * to_f(gamma[c]) * to_f(x[o + c]) * rs;
  dot = block_sum(dot) / cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float g = to_f(dy[o + c]) * to_f(gamma[c]);
    float v = rs * (g - to_f(x[o + c]) * rs * dot);
    if (accumulate) v += to_f(dx[o + c]);
    dx[o + c] = from_f<T>(v);
  }
}

// One thread per (row, head, pair i < d/2); sign -1 is the backward (inverse) rotation.
// Angles in fp32 with accurate powf and sincosf, as the CPU backend computes them.
template <class T>
__global__ void k_rotary(T* x, std::int64_t n, int seq, int heads, int d, int stride, float theta, float sign) {
  const int half = d / 2;
  GRID_STRIDE(i, n) {
    const std::int64_t r = i / (static_cast<std::int64_t>(heads) * half);
    const int rem = static_cast<int>(i % (static_cast<std::int64_t>(heads) * half));
    const int hd = rem / half, k = rem % half;
    const float inv_freq = powf(theta, -2.0f * static_cast<float>(k) / static_cast<float>(d));
    const float angle = static_cast<float>(r % seq) * inv_freq;
    float sn, cs;
    sincosf(angle, &sn, &cs);
    sn *= sign;
    T* p = x + r * stride + static_cast<std::int64_t>(hd) * d;
    const float x1 = to_f(p[k]), x2 = to_f(p[k + half]);
    p[k] = from_f<T>(x1 * cs - x2 * sn);
    p[k + half] = from_f<T>(x2 * cs + x1 * sn);
  }
}

__device__ __forceinline__ float sigmoid_f(float v) { return 1.0f / (1.0f + expf(-v)); }
template <class T> __global__ void k_swiglu_forward(const T* gu, T* y, std::int64_t n, int cols) {
  GRID_STRIDE(i, n) {
    const std::int64_t r = i / cols;
    const int c = static_cast<int>(i % cols);
    const float g = to_f(gu[r * 2 * cols + c]), u = to_f(gu[r * 2 * cols + cols + c]);
    y[i] = from_f<T>(g * sigmoid_f(g) * u);
  }
}
template <class T> __global__ void k_swiglu_backward(const T* dy, const T* gu, T* dgu, std::int64_t n, int cols) {
  GRID_STRIDE(i, n) {
    const std::int64_t r = i / cols;
    const int c = static_cast<int>(i % cols);
    const float g = to_f(gu[r * 2 * cols + c]), u = to_f(gu[r * 2 * cols + cols + c]), d = to_f(dy[i]);
    const float sg = sigmoid_f(g);
    dgu[r * 2 * cols + c] = from_f<T>(d * u * sg * (1.0f + g * (1.0f - sg)));
    dgu[r * 2 * cols + cols + c] = from_f<T>(d * g * sg);
  }
}

/// One block per row: gridDim.x may be up to 2^31 - 1.
inline dim3 row_grid(std::int64_t rows) { return dim3(static_cast<unsigned>(rows)); }

/// The Backend ops that are our kernels, written once for the GPU and the emulator. The
/// derived backend supplies the stream, memory, GEMMs and a zeroed fp32 workspace.
template <class T>
class KernelBackend : public Backend {
 public:
  void fill_uniform(void* dst, std::int64_t n, std::uint64_t seed, float scale) override {
    PPSIM_LAUNCH(k_fill_uniform<T>, grid_for(n), kThreads, 0, stream_)(P(dst), n, seed, scale);
    PPSIM_CHECK_LAUNCH();
  }
  void layernorm_forward(const void* x, const void* gamma, const void* beta, void* y, float* mean, float* rstd,
                         int rows, int cols) override {
    PPSIM_LAUNCH(k_layernorm_forward<T>, rows, row_threads(cols), 0, stream_)(C(x), C(gamma), C(beta), P(y), mean,
                                                                              rstd, cols);
    PPSIM_CHECK_LAUNCH();
  }
  void layernorm_backward_input(const void* dy, const void* x, const void* gamma, const float* mean,
                                const float* rstd, void* dx, int rows, int cols, bool accumulate) override {
    PPSIM_LAUNCH(k_layernorm_backward_input<T>, rows, row_threads(cols), 0, stream_)(C(dy), C(x), C(gamma), mean,
                                                                                     rstd, P(dx), cols, accumulate);
    PPSIM_CHECK_LAUNCH();
  }
  void layernorm_backward_weight(const void* dy, const void* x, const float* mean, const float* rstd, void* dgamma,
                                 void* dbeta, int rows, int cols) override {
    float* ws = zeroed_workspace(2 * static_cast<std::size_t>(cols));
    column_reduce(C(dy), C(x), mean, rstd, ws, ws + cols, rows, cols);
    PPSIM_LAUNCH(k_accumulate<T>, grid_for(cols), kThreads, 0, stream_)(P(dgamma), ws, cols);
    PPSIM_LAUNCH(k_accumulate<T>, grid_for(cols), kThreads, 0, stream_)(P(dbeta), ws + cols, cols);
    PPSIM_CHECK_LAUNCH();
  }
  void bias_add(void* y, const void* bias, int rows, int cols) override {
    const std::int64_t n = static_cast<std::int64_t>(rows) * cols;
    PPSIM_LAUNCH(k_bias_add<T>, grid_for(n), kThreads, 0, stream_)(P(y), C(bias), n, cols);
    PPSIM_CHECK_LAUNCH();
  }
  void bias_backward(const void* dy, void* dbias, int rows, int cols) override {
    float* ws = zeroed_workspace(static_cast<std::size_t>(cols));
    column_reduce(C(dy), nullptr, nullptr, nullptr, nullptr, ws, rows, cols);
    PPSIM_LAUNCH(k_accumulate<T>, grid_for(cols), kThreads, 0, stream_)(P(dbias), ws, cols);
    PPSIM_CHECK_LAUNCH();
  }
  void gelu_forward(const void* x, void* y, std::int64_t n) override {
    PPSIM_LAUNCH(k_gelu_forward<T>, grid_for(n), kThreads, 0, stream_)(C(x), P(y), n);
    PPSIM_CHECK_LAUNCH();
  }
  void gelu_backward(const void* dy, const void* x, void* dx, std::int64_t n) override {
    PPSIM_LAUNCH(k_gelu_backward<T>, grid_for(n), kThreads, 0, stream_)(C(dy), C(x), P(dx), n);
    PPSIM_CHECK_LAUNCH();
  }
  void softmax_causal_forward(void* x, std::int64_t rows, int cols) override {
    PPSIM_LAUNCH(k_softmax_causal<T>, row_grid(rows), row_threads(cols), 0, stream_)(P(x), cols);
    PPSIM_CHECK_LAUNCH();
  }
  void softmax_backward(const void* Pm, void* dP, std::int64_t rows, int cols, float scale) override {
    PPSIM_LAUNCH(k_softmax_backward<T>, row_grid(rows), row_threads(cols), 0, stream_)(C(Pm), P(dP), cols, scale);
    PPSIM_CHECK_LAUNCH();
  }
  void dropout_forward(const void* x, void* y, std::uint8_t* mask, std::int64_t n, float p, std::uint64_t seed) override {
    PPSIM_LAUNCH(k_dropout_forward<T>, grid_for(n), kThreads, 0, stream_)(C(x), P(y), mask, n, p, seed);
    PPSIM_CHECK_LAUNCH();
  }
  void dropout_backward(const void* dy, const std::uint8_t* mask, void* dx, std::int64_t n, float p) override {
    PPSIM_LAUNCH(k_dropout_backward<T>, grid_for(n), kThreads, 0, stream_)(C(dy), mask, P(dx), n, p);
    PPSIM_CHECK_LAUNCH();
  }
  void residual_add(const void* a, const void* b, void* out, std::int64_t n) override {
    PPSIM_LAUNCH(k_residual_add<T>, grid_for(n), kThreads, 0, stream_)(C(a), C(b), P(out), n);
    PPSIM_CHECK_LAUNCH();
  }
  void embedding_forward(const std::int32_t* ids, const void* table, const void* pos, void* y, int tokens, int seq,
                         int hidden) override {
    const std::int64_t n = static_cast<std::int64_t>(tokens) * hidden;
    PPSIM_LAUNCH(k_embedding_forward<T>, grid_for(n), kThreads, 0, stream_)(ids, C(table), C(pos), P(y), n, seq,
                                                                            hidden);
    PPSIM_CHECK_LAUNCH();
  }
  void embedding_backward(const std::int32_t* ids, const void* dy, void* dtable, void* dpos, int tokens, int seq,
                          int hidden) override {
    const std::int64_t n = static_cast<std::int64_t>(tokens) * hidden;
    PPSIM_LAUNCH(k_embedding_backward<T>, grid_for(n), kThreads, 0, stream_)(ids, C(dy), P(dtable), P(dpos), n, seq,
                                                                             hidden);
    PPSIM_CHECK_LAUNCH();
  }
  void cross_entropy_forward(void* logits, const std::int32_t* labels, float* loss, int rows, int vocab) override {
    PPSIM_LAUNCH(k_cross_entropy_forward<T>, rows, 1024, 0, stream_)(P(logits), labels, loss, vocab);
    PPSIM_CHECK_LAUNCH();
  }
  void cross_entropy_backward(void* probs, const std::int32_t* labels, int rows, int vocab, float scale) override {
    const std::int64_t n = static_cast<std::int64_t>(rows) * vocab;
    PPSIM_LAUNCH(k_cross_entropy_backward<T>, grid_for(n), kThreads, 0, stream_)(P(probs), labels, n, vocab, scale);
    PPSIM_CHECK_LAUNCH();
  }

  // ---- Llama block: RMSNorm, rotary, SwiGLU (backend.h).
  void rmsnorm_forward(const void* x, const void* gamma, void* y, float* rstd, int rows, int cols) override {
    PPSIM_LAUNCH(k_rmsnorm_forward<T>, rows, row_threads(cols), 0, stream_)(C(x), C(gamma), P(y), rstd, cols);
    PPSIM_CHECK_LAUNCH();
  }
  void rmsnorm_backward_input(const void* dy, const void* x, const void* gamma, const float* rstd, void* dx, int rows,
                              int cols, bool accumulate) override {
    PPSIM_LAUNCH(k_rmsnorm_backward_input<T>, rows, row_threads(cols), 0, stream_)(C(dy), C(x), C(gamma), rstd, P(dx),
                                                                                   cols, accumulate);
    PPSIM_CHECK_LAUNCH();
  }
  void rmsnorm_backward_weight(const void* dy, const void* x, const float* rstd, void* dgamma, int rows,
                               int cols) override {
    float* ws = zeroed_workspace(2 * static_cast<std::size_t>(cols));  // the dy column sums (ws + cols) go unused
    column_reduce(C(dy), C(x), nullptr, rstd, ws, ws + cols, rows, cols);
    PPSIM_LAUNCH(k_accumulate<T>, grid_for(cols), kThreads, 0, stream_)(P(dgamma), ws, cols);
    PPSIM_CHECK_LAUNCH();
  }
  void rotary_forward(void* x, std::int64_t rows, int seq, int heads, int head_dim, int row_stride,
                      float theta) override {
    rotary(x, rows, seq, heads, head_dim, row_stride, theta, 1.0f);
  }
  void rotary_backward(void* dx, std::int64_t rows, int seq, int heads, int head_dim, int row_stride,
                       float theta) override {
    rotary(dx, rows, seq, heads, head_dim, row_stride, theta, -1.0f);
  }
  void swiglu_forward(const void* gu, void* y, int rows, int cols) override {
    const std::int64_t n = static_cast<std::int64_t>(rows) * cols;
    PPSIM_LAUNCH(k_swiglu_forward<T>, grid_for(n), kThreads, 0, stream_)(C(gu), P(y), n, cols);
    PPSIM_CHECK_LAUNCH();
  }
  void swiglu_backward(const void* dy, const void* gu, void* dgu, int rows, int cols) override {
    const std::int64_t n = static_cast<std::int64_t>(rows) * cols;
    PPSIM_LAUNCH(k_swiglu_backward<T>, grid_for(n), kThreads, 0, stream_)(C(dy), C(gu), P(dgu), n, cols);
    PPSIM_CHECK_LAUNCH();
  }

 protected:
  static T* P(void* p) { return static_cast<T*>(p); }
  static const T* C(const void* p) { return static_cast<const T*>(p); }
  static int row_threads(int cols) { return cols >= 4096 ? 1024 : cols >= 1024 ? 512 : cols >= 256 ? 256 : 128; }
  /// An fp32 scratch buffer of at least `floats`, zeroed in stream order.
  virtual float* zeroed_workspace(std::size_t floats) = 0;

  KStream stream_{};

 private:
  void rotary(void* x, std::int64_t rows, int seq, int heads, int head_dim, int row_stride, float theta, float sign) {
    const std::int64_t n = rows * heads * (head_dim / 2);
    PPSIM_LAUNCH(k_rotary<T>, grid_for(n), kThreads, 0, stream_)(P(x), n, seq, heads, head_dim, row_stride, theta,
                                                                 sign);
    PPSIM_CHECK_LAUNCH();
  }
  void column_reduce(const T* dy, const T* x, const float* mean, const float* rstd, float* ws_a, float* ws_b,
                     int rows, int cols) {
    const int chunks = rows >= 1024 ? 64 : rows >= 64 ? rows / 16 : 1;
    const int per = (rows + chunks - 1) / chunks;
    const dim3 grid(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>(chunks));
    PPSIM_LAUNCH(k_column_reduce<T>, grid, dim3(32, 8), 0, stream_)(dy, x, mean, rstd, ws_a, ws_b, rows, cols, per);
    PPSIM_CHECK_LAUNCH();
  }
};

}  // namespace ppsim::cal::PPSIM_KERNEL_NS
