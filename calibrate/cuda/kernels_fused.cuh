#pragma once
/// @file kernels_fused.cuh
/// @brief The fused ops' own kernels and `KernelFusedOps`, the FusedOps that launch
/// them: attention (chunked by default, chunked_attention.h; or our flash kernels,
/// PPSIM_FUSED_ATTENTION=flash), bias-dropout-add, and linear + bias + GeLU unfused (the
/// GPU's cuda_fused.cu overrides those two with cuBLASLt epilogues). Compiled by nvcc
/// and with the CPU emulator (emu/emu_backend.cpp).
//
// Flash attention: FlashAttention-2's algorithm with fp32 math over the storage dtype,
// on CUDA cores (no tensor cores: the first, checkable version, kept to compare the two
// on a GPU). Tiles of 32 queries x 32 keys in shared memory; the forward keeps an online
// softmax per query row and writes O and the fp32 log-sum-exp; the backward recomputes P
// from Q, K and the log-sum-exp in two passes without atomics: one block per key tile of
// a key/value head accumulates dK and dV over the queries of every query head of its
// group, one block per query tile accumulates dQ over the keys. Grouped-query attention
// (Llama): query head j reads key/value head j / (heads / kv_heads) of the
// [b*s, w + 2kv] QKV; GPT is kv_heads == heads. Attention dropout is regenerated from
// the counter hash with the plain dropout's index.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "device_math.cuh"
#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/chunked_attention.h"
#include "ppsim/calibrate/fused.h"
#include "ppsim/calibrate/model.h"

namespace ppsim::cal::PPSIM_KERNEL_NS {

constexpr int kTile = 32;      // queries and keys per tile (one key per lane)
constexpr int kWarps = 8;      // 256 threads; each warp owns kTile / kWarps queries or keys
constexpr int kRowsPerWarp = kTile / kWarps;
constexpr int kMaxChunks = 8;  // head_dim <= 256: each lane holds head_dim / 32 accumulators

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Where one (sample, query head) lives in the [b*s, w + 2kv] QKV and [b*s, w] O buffers
/// (cpu_fused.cpp's Head): query head j reads key/value head j / g, g = heads / kv_heads.
struct HeadAt {
  long long row0;        // first token row of the sample
  int w, kv, d, j, g, s;     // query width, key/value width, head dim, query head, group size, seq
  unsigned long long drop0;  // dropout index of score (0, 0) of this (sample, head)
  __device__ long long ld() const { return static_cast<long long>(w) + 2LL * kv; }
  __device__ long long q_col() const { return static_cast<long long>(j) * d; }
  __device__ long long k_col() const { return w + static_cast<long long>(j / g) * d; }
  __device__ long long v_col() const { return k_col() + kv; }
  __device__ long long row(int i) const { return (row0 + i) * ld(); }
  __device__ long long q(int i) const { return row(i) + q_col(); }
  __device__ long long o(int i) const { return (row0 + i) * static_cast<long long>(w) + static_cast<long long>(j) * d; }
  __device__ float keep(int qi, int ki, float p, unsigned long long seed) const {
    const unsigned long long idx = drop0 + static_cast<unsigned long long>(qi) * s + static_cast<unsigned long long>(ki);
    return d_hash_uniform(seed, idx) >= p ? 1.0f / (1.0f - p) : 0.0f;
  }
};

/// Query head j of sample blockIdx.z.
__device__ inline HeadAt head_at(int j, int s, int heads, int kv_heads, int d) {
  const int b = blockIdx.z;
  return {static_cast<long long>(b) * s, heads * d, kv_heads * d, d, j, heads / kv_heads, s,
          (static_cast<unsigned long long>(b) * heads + j) * static_cast<unsigned long long>(s) * s};
}

/// Rows [r0, r0 + kTile) of one head's slice at column offset `col` of a buffer with row
/// stride `stride` into shared fp32 [kTile][ld]; rows past the sequence read as zeros.
template <class T>
__device__ void load_tile(const T* base, long long row0, int r0, int s, long long stride, long long col, int d,
                          float* dst, int ld) {
  for (int i = threadIdx.x; i < kTile * d; i += blockDim.x) {
    const int r = i / d, c = i % d;
    dst[r * ld + c] = r0 + r < s ? to_f(base[(row0 + r0 + r) * stride + col + c]) : 0.0f;
  }
}

// Grid (query tiles, heads, batch). Each warp owns kRowsPerWarp query rows; per key tile,
// lane k scores key k (Q row broadcast, K rows padded to d + 1: no bank conflicts), then
// every lane updates its head_dim/32 accumulators of O with the kept probabilities.
template <class T>
__global__ void k_flash_forward(const T* qkv, T* out, float* lse, int s, int heads, int kv_heads, int d, float scale,
                                float p, unsigned long long seed) {
  PPSIM_DYNAMIC_SHARED(float, sm);
  float* Qs = sm;                    // [kTile][d]
  float* Ks = Qs + kTile * d;        // [kTile][d + 1]
  float* Vs = Ks + kTile * (d + 1);  // [kTile][d]
  const HeadAt h = head_at(blockIdx.y, s, heads, kv_heads, d);
  const int q0 = blockIdx.x * kTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  load_tile(qkv, h.row0, q0, s, h.ld(), h.q_col(), d, Qs, d);
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kMaxChunks];
  for (int i = 0; i < kRowsPerWarp; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
    for (int c = 0; c < kMaxChunks; ++c) acc[i][c] = 0.0f;
  }
  const int q_last = min(q0 + kTile, s) - 1;
  for (int k0 = 0; k0 <= q_last; k0 += kTile) {
    __syncthreads();
    load_tile(qkv, h.row0, k0, s, h.ld(), h.k_col(), d, Ks, d + 1);
    load_tile(qkv, h.row0, k0, s, h.ld(), h.v_col(), d, Vs, d);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp * kRowsPerWarp + i, q = q0 + r;
      if (q >= s || k0 > q) continue;  // warp-uniform
      const int key = k0 + lane;
      const bool valid = key <= q;
      float sc = -INFINITY;
      if (valid) {
        float dot = 0.0f;
        for (int c = 0; c < d; ++c) dot += Qs[r * d + c] * Ks[lane * (d + 1) + c];
        sc = scale * dot;
      }
      const float m_new = fmaxf(m[i], warp_max(sc));  // key k0 <= q is valid: finite
      const float corr = __expf(m[i] - m_new);        // 0 on the first tile
      const float e = valid ? __expf(sc - m_new) : 0.0f;
      l[i] = l[i] * corr + warp_sum(e);
      const float pz = valid ? e * h.keep(q, key, p, seed) : 0.0f;
#pragma unroll
      for (int c = 0; c < kMaxChunks; ++c) acc[i][c] *= corr;
      for (int k = 0; k < kTile; ++k) {
        const float pk = __shfl_sync(0xffffffffu, pz, k);
#pragma unroll
        for (int c = 0; c < kMaxChunks; ++c)
          if (lane + 32 * c < d) acc[i][c] += pk * Vs[k * d + lane + 32 * c];
      }
      m[i] = m_new;
    }
  }
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int q = q0 + warp * kRowsPerWarp + i;
    if (q >= s) continue;
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c)
      if (lane + 32 * c < d) out[h.o(q) + lane + 32 * c] = from_f<T>(acc[i][c] / l[i]);
    if (lane == 0) lse[(static_cast<long long>(blockIdx.z) * heads + h.j) * s + q] = m[i] + logf(l[i]);
  }
}

// D[b, j, q] = dO . O per query row (FlashAttention-2's preprocessing): one warp per row.
template <class T>
__global__ void k_flash_backward_dot(const T* out, const T* dout, float* D, long long rows_heads, int s, int heads,
                                     int d) {
  const int lane = threadIdx.x % 32;
  const long long warps = static_cast<long long>(gridDim.x) * blockDim.x / 32;
  for (long long warp = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; warp < rows_heads;
       warp += warps) {  // warp-uniform
    const long long bj = warp / s;  // (b * heads + j)
    const int q = static_cast<int>(warp % s), j = static_cast<int>(bj % heads);
    const long long b = bj / heads;
    const long long o = (b * s + q) * static_cast<long long>(heads) * d + static_cast<long long>(j) * d;
    float acc = 0.0f;
    for (int c = lane; c < d; c += 32) acc += to_f(dout[o + c]) * to_f(out[o + c]);
    acc = warp_sum(acc);
    if (lane == 0) D[warp] = acc;
  }
}

// dK and dV. Grid (key tiles, kv heads, batch). Each warp owns kRowsPerWarp keys; per
// query head of the key/value head's group and per query tile, lane t takes query t: P
// and dP for (query t, key) against the broadcast K and V rows, then lanes over head_dim
// accumulate dV += P Z dO and dK += dS Q (summed over the group: no atomics).
template <class T>
__global__ void k_flash_backward_kv(const T* qkv, const T* dout, const float* lse, const float* D, T* dqkv, int s,
                                    int heads, int kv_heads, int d, float scale, float p, unsigned long long seed) {
  PPSIM_DYNAMIC_SHARED(float, sm);
  float* Ks = sm;                     // [kTile][d]
  float* Vs = Ks + kTile * d;         // [kTile][d]
  float* Qs = Vs + kTile * d;         // [kTile][d + 1]
  float* dOs = Qs + kTile * (d + 1);  // [kTile][d + 1]
  float* Ls = dOs + kTile * (d + 1);  // [kTile]
  float* Ds = Ls + kTile;             // [kTile]
  const int g = heads / kv_heads;
  const HeadAt kvh = head_at(static_cast<int>(blockIdx.y) * g, s, heads, kv_heads, d);  // the group's first query head
  const int k0 = blockIdx.x * kTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  load_tile(qkv, kvh.row0, k0, s, kvh.ld(), kvh.k_col(), d, Ks, d);
  load_tile(qkv, kvh.row0, k0, s, kvh.ld(), kvh.v_col(), d, Vs, d);
  float dK[kRowsPerWarp][kMaxChunks], dV[kRowsPerWarp][kMaxChunks];
  for (int i = 0; i < kRowsPerWarp; ++i)
    for (int c = 0; c < kMaxChunks; ++c) dK[i][c] = dV[i][c] = 0.0f;
  for (int gi = 0; gi < g; ++gi) {
    const HeadAt h = head_at(static_cast<int>(blockIdx.y) * g + gi, s, heads, kv_heads, d);
    const long long stat0 = (static_cast<long long>(blockIdx.z) * heads + h.j) * s;
    for (int q0 = k0; q0 < s; q0 += kTile) {  // causal: queries from the tile's first key on
      __syncthreads();
      load_tile(qkv, h.row0, q0, s, h.ld(), h.q_col(), d, Qs, d + 1);
      load_tile(dout, h.row0, q0, s, static_cast<long long>(h.w), h.q_col(), d, dOs, d + 1);
      if (threadIdx.x < kTile) {
        const bool in = q0 + static_cast<int>(threadIdx.x) < s;
        Ls[threadIdx.x] = in ? lse[stat0 + q0 + threadIdx.x] : 0.0f;
        Ds[threadIdx.x] = in ? D[stat0 + q0 + threadIdx.x] : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const int kr = warp * kRowsPerWarp + i, key = k0 + kr, q = q0 + lane;
        if (key >= s) continue;  // warp-uniform
        const bool valid = q < s && key <= q;
        float pz = 0.0f, ds = 0.0f;
        if (valid) {
          float qk = 0.0f, dp = 0.0f;
          for (int c = 0; c < d; ++c) {
            qk += Qs[lane * (d + 1) + c] * Ks[kr * d + c];
            dp += dOs[lane * (d + 1) + c] * Vs[kr * d + c];
          }
          const float P = __expf(scale * qk - Ls[lane]);
          const float z = h.keep(q, key, p, seed);
          pz = P * z;
          ds = P * (z * dp - Ds[lane]) * scale;
        }
        for (int t = 0; t < kTile; ++t) {
          const float pt = __shfl_sync(0xffffffffu, pz, t), st = __shfl_sync(0xffffffffu, ds, t);
#pragma unroll
          for (int c = 0; c < kMaxChunks; ++c)
            if (lane + 32 * c < d) {
              dV[i][c] += pt * dOs[t * (d + 1) + lane + 32 * c];
              dK[i][c] += st * Qs[t * (d + 1) + lane + 32 * c];
            }
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int key = k0 + warp * kRowsPerWarp + i;
    if (key >= s) continue;
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c)
      if (lane + 32 * c < d) {
        dqkv[kvh.row(key) + kvh.k_col() + lane + 32 * c] = from_f<T>(dK[i][c]);
        dqkv[kvh.row(key) + kvh.v_col() + lane + 32 * c] = from_f<T>(dV[i][c]);
      }
  }
}

// dQ. Grid (query tiles, heads, batch). Each warp owns kRowsPerWarp queries; per key
// tile, lane k takes key k (K and V rows padded), then lanes over head_dim accumulate
// dQ += dS K.
template <class T>
__global__ void k_flash_backward_q(const T* qkv, const T* dout, const float* lse, const float* D, T* dqkv, int s,
                                   int heads, int kv_heads, int d, float scale, float p, unsigned long long seed) {
  PPSIM_DYNAMIC_SHARED(float, sm);
  float* Qs = sm;                     // [kTile][d]
  float* dOs = Qs + kTile * d;        // [kTile][d]
  float* Ks = dOs + kTile * d;        // [kTile][d + 1]
  float* Vs = Ks + kTile * (d + 1);   // [kTile][d + 1]
  const HeadAt h = head_at(blockIdx.y, s, heads, kv_heads, d);
  const long long stat0 = (static_cast<long long>(blockIdx.z) * heads + h.j) * s;
  const int q0 = blockIdx.x * kTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  load_tile(qkv, h.row0, q0, s, h.ld(), h.q_col(), d, Qs, d);
  load_tile(dout, h.row0, q0, s, static_cast<long long>(h.w), h.q_col(), d, dOs, d);
  float dQ[kRowsPerWarp][kMaxChunks];
  for (int i = 0; i < kRowsPerWarp; ++i)
    for (int c = 0; c < kMaxChunks; ++c) dQ[i][c] = 0.0f;
  const int q_last = min(q0 + kTile, s) - 1;
  for (int k0 = 0; k0 <= q_last; k0 += kTile) {
    __syncthreads();
    load_tile(qkv, h.row0, k0, s, h.ld(), h.k_col(), d, Ks, d + 1);
    load_tile(qkv, h.row0, k0, s, h.ld(), h.v_col(), d, Vs, d + 1);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp * kRowsPerWarp + i, q = q0 + r, key = k0 + lane;
      if (q >= s || k0 > q) continue;  // warp-uniform
      float ds = 0.0f;
      if (key <= q) {
        float qk = 0.0f, dp = 0.0f;
        for (int c = 0; c < d; ++c) {
          qk += Qs[r * d + c] * Ks[lane * (d + 1) + c];
          dp += dOs[r * d + c] * Vs[lane * (d + 1) + c];
        }
        const float P = __expf(scale * qk - lse[stat0 + q]);
        ds = P * (h.keep(q, key, p, seed) * dp - D[stat0 + q]) * scale;
      }
      for (int k = 0; k < kTile; ++k) {
        const float sk = __shfl_sync(0xffffffffu, ds, k);
#pragma unroll
        for (int c = 0; c < kMaxChunks; ++c)
          if (lane + 32 * c < d) dQ[i][c] += sk * Ks[k * (d + 1) + lane + 32 * c];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int q = q0 + warp * kRowsPerWarp + i;
    if (q >= s) continue;
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c)
      if (lane + 32 * c < d) dqkv[h.q(q) + lane + 32 * c] = from_f<T>(dQ[i][c]);
  }
}

template <class T>
__global__ void k_bias_dropout_add(const T* x, const T* bias, const T* residual, T* y, long long n, int cols, float p,
                                   unsigned long long seed) {
  const float keep = 1.0f / (1.0f - p);
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const float v = to_f(x[i]) + to_f(bias[i % cols]);
    y[i] = from_f<T>(to_f(residual[i]) + (d_hash_uniform(seed, i) >= p ? v * keep : 0.0f));
  }
}

template <class T>
__global__ void k_dropout_regenerated(const T* dy, T* dx, long long n, float p, unsigned long long seed) {
  const float keep = 1.0f / (1.0f - p);
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x)
    dx[i] = from_f<T>(d_hash_uniform(seed, i) >= p ? to_f(dy[i]) * keep : 0.0f);
}

template <class T> __global__ void k_add_into(T* y, const T* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = from_f<T>(to_f(y[i]) + to_f(x[i]));
}


inline unsigned grid_of(long long n, int threads) {
  const long long blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65535LL * 16 ? (blocks > 0 ? blocks : 1) : 65535LL * 16);
}

/// Which attention the fused ops run: chunked (chunked_attention.h: batched GEMMs, on a
/// GPU cuBLAS on tensor cores; the default) or our own flash kernels (CUDA cores),
/// chosen with PPSIM_FUSED_ATTENTION=flash to compare the two on a GPU.
inline bool flash_attention_requested() {
  return env_choice("PPSIM_FUSED_ATTENTION", {"chunked", "flash"}) == "flash";
}

/// The fused ops as our kernels, written once for the GPU and the emulator. The derived
/// class supplies the scratch buffers (and, on a GPU, the cuBLASLt linear ops).
template <class T>
class KernelFusedOps : public FusedOps {
 public:
  KernelFusedOps(KStream stream, Backend& backend, std::unique_ptr<ChunkKernels> chunk)
      : stream_(stream), b_(backend), chunk_(std::move(chunk)) {}

  void attention_forward(const void* qkv, void* out, float* lse, int batch, int seq, int heads, int kv_heads,
                         int head_dim, float scale, float p, std::uint64_t seed) override {
    if (!flash_) {
      const AttentionShape a{batch, seq, heads, kv_heads, head_dim, scale, p, seed};
      const int rows = chunk_rows(a);
      chunked_attention_forward(b_, *chunk_, a, rows, qkv, out, lse,
                                buffer<T>(Slot::work, chunk_workspace_elements(a, rows, false)));
      return;
    }
    check_head_dim(head_dim);
    check_groups(heads, kv_heads);
    const std::size_t smem = sizeof(float) * kTile * (3 * head_dim + 1);
    allow_dynamic_shared(k_flash_forward<T>, smem);
    const dim3 grid(static_cast<unsigned>((seq + kTile - 1) / kTile), static_cast<unsigned>(heads),
                    static_cast<unsigned>(batch));
    PPSIM_LAUNCH(k_flash_forward<T>, grid, kWarps * 32, smem, stream_)(C(qkv), P(out), lse, seq, heads, kv_heads,
                                                                       head_dim, scale, p, seed);
    PPSIM_CHECK_LAUNCH();
  }

  void attention_backward(const void* qkv, const void* out, const void* dout, const float* lse, void* dqkv, int batch,
                          int seq, int heads, int kv_heads, int head_dim, float scale, float p,
                          std::uint64_t seed) override {
    const long long rows_heads = static_cast<long long>(batch) * heads * seq;
    float* D = buffer<float>(Slot::stats, static_cast<std::size_t>(rows_heads));
    if (!flash_) {
      const AttentionShape a{batch, seq, heads, kv_heads, head_dim, scale, p, seed};
      const int rows = chunk_rows(a);
      chunked_attention_backward(b_, *chunk_, a, rows, qkv, out, dout, lse, dqkv,
                                 buffer<T>(Slot::work, chunk_workspace_elements(a, rows, true)), D);
      return;
    }
    check_head_dim(head_dim);
    check_groups(heads, kv_heads);
    PPSIM_LAUNCH(k_flash_backward_dot<T>, grid_of(rows_heads * 32, 256), 256, 0, stream_)(C(out), C(dout), D,
                                                                                          rows_heads, seq, heads,
                                                                                          head_dim);
    PPSIM_CHECK_LAUNCH();
    const unsigned tiles = static_cast<unsigned>((seq + kTile - 1) / kTile);
    const dim3 grid(tiles, static_cast<unsigned>(heads), static_cast<unsigned>(batch));  // per query head
    const dim3 grid_kv(tiles, static_cast<unsigned>(kv_heads), static_cast<unsigned>(batch));  // per key/value head
    const std::size_t smem_kv = sizeof(float) * (kTile * (4 * head_dim + 2) + 2 * kTile);
    allow_dynamic_shared(k_flash_backward_kv<T>, smem_kv);
    PPSIM_LAUNCH(k_flash_backward_kv<T>, grid_kv, kWarps * 32, smem_kv, stream_)(C(qkv), C(dout), lse, D, P(dqkv),
                                                                                 seq, heads, kv_heads, head_dim, scale,
                                                                                 p, seed);
    PPSIM_CHECK_LAUNCH();
    const std::size_t smem_q = sizeof(float) * kTile * (4 * head_dim + 2);
    allow_dynamic_shared(k_flash_backward_q<T>, smem_q);
    PPSIM_LAUNCH(k_flash_backward_q<T>, grid, kWarps * 32, smem_q, stream_)(C(qkv), C(dout), lse, D, P(dqkv), seq,
                                                                            heads, kv_heads, head_dim, scale, p, seed);
    PPSIM_CHECK_LAUNCH();
  }

  /// The backend's GEMM, bias and GeLU (what the GPU's cuBLASLt epilogue fuses).
  void linear_bias_gelu_forward(const void* x, const void* weight, const void* bias, void* pre, void* y, int rows,
                                int out, int in) override {
    linear_bias_gelu_unfused(b_, x, weight, bias, pre, y, rows, out, in);
  }
  void linear_dgelu_backward(const void* dy, const void* weight, const void* pre, void* dpre, void* dbias, int rows,
                             int out, int n) override {
    linear_dgelu_unfused(b_, dy, weight, pre, dpre, dbias, rows, out, n);
  }

  void bias_dropout_add_forward(const void* x, const void* bias, const void* residual, void* y, int rows, int cols,
                                float p, std::uint64_t seed) override {
    const long long n = static_cast<long long>(rows) * cols;
    PPSIM_LAUNCH(k_bias_dropout_add<T>, grid_of(n, 256), 256, 0, stream_)(C(x), C(bias), C(residual), P(y), n, cols,
                                                                          p, seed);
    PPSIM_CHECK_LAUNCH();
  }
  void bias_dropout_add_backward(const void* dy, void* dx, int rows, int cols, float p, std::uint64_t seed) override {
    const long long n = static_cast<long long>(rows) * cols;
    PPSIM_LAUNCH(k_dropout_regenerated<T>, grid_of(n, 256), 256, 0, stream_)(C(dy), P(dx), n, p, seed);
    PPSIM_CHECK_LAUNCH();
  }

 protected:
  /// The scratch buffers, kept between calls: D = rowsum(dO o O), one GEMM's dbias,
  /// chunked attention's workspace.
  enum class Slot { stats, bias, work };
  /// A device buffer for `slot` of at least `bytes`.
  virtual void* scratch(Slot slot, std::size_t bytes) = 0;
  template <class U> U* buffer(Slot slot, std::size_t n) { return static_cast<U*>(scratch(slot, n * sizeof(U))); }

  static T* P(void* p) { return static_cast<T*>(p); }
  static const T* C(const void* p) { return static_cast<const T*>(p); }
  static void check_head_dim(int d) {
    if (d < 1 || d > 32 * kMaxChunks)
      throw std::invalid_argument("fused attention: head dimension " + std::to_string(d) + " outside 1.." +
                                  std::to_string(32 * kMaxChunks));
  }
  static void check_groups(int heads, int kv_heads) {
    if (kv_heads < 1 || heads % kv_heads != 0)
      throw std::invalid_argument("fused attention: " + std::to_string(heads) + " query heads do not group over " +
                                  std::to_string(kv_heads) + " key/value heads");
  }

  KStream stream_;
  Backend& b_;
  std::unique_ptr<ChunkKernels> chunk_;
  bool flash_{flash_attention_requested()};
};

}  // namespace ppsim::cal::PPSIM_KERNEL_NS
