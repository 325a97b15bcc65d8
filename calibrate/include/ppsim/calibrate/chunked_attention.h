#pragma once
/// @file chunked_attention.h
/// @brief Causal attention in chunks of queries over the backend's batched GEMMs
/// (cuBLAS on tensor cores on a GPU), flash-style in what it keeps: the output O and the
/// fp32 log-sum-exp per query. The scores of one chunk of queries against the keys up to
/// the chunk's last query live only in a workspace while that chunk runs, and backward
/// recomputes them from the log-sum-exp (FlashAttention-2's algorithm, with GEMMs over a
/// chunk where a flash kernel has tiles in shared memory). The CUDA fused attention runs
/// this; its CPU run, over the CPU backend, is tested against the CPU flash kernels.
///
/// Layout, as the blocks' fused QKV GEMM writes it: row t of `qkv` is token t
/// (t = sample * seq + position) with `ld = (heads + 2 kv_heads) head_dim` columns: query
/// head j at j*head_dim, key head g at (heads + g)*head_dim, value head g at
/// (heads + kv_heads + g)*head_dim. Query head j reads key/value head j / (heads/kv_heads)
/// (grouped-query attention; GPT is kv_heads = heads). O is [tokens, heads*head_dim].
/// Attention dropout keeps score (b, j, q, k) when hash_uniform(seed, ((b*heads + j)*seq
/// + q)*seq + k) >= p, the plain dropout's index, so every implementation drops the same.
#include <cstddef>
#include <cstdint>
#include <memory>

namespace ppsim::cal {

class Backend;

/// @brief One attention call's shape and constants.
struct AttentionShape {
  int batch{1}, seq{1}, heads{1}, kv_heads{1}, head_dim{1};
  float scale{1};       ///< applied to Q K^T (1/sqrt(head_dim))
  float dropout_p{0};   ///< attention dropout probability
  std::uint64_t seed{0};
  [[nodiscard]] int ld() const { return (heads + 2 * kv_heads) * head_dim; }  ///< qkv row width
  [[nodiscard]] int width() const { return heads * head_dim; }              ///< O row width
  [[nodiscard]] int group() const { return heads / kv_heads; }              ///< query heads per kv head
  /// @brief Throws std::invalid_argument unless every size is positive and kv_heads divides heads.
  void validate() const;
};

/// @brief The elementwise steps of one chunk, per backend. A chunk is queries q0 .. q0 +
/// rows - 1 of sample `bi` against keys 0 .. cols - 1 (cols = q0 + rows: the causal
/// reach of its last query); its buffers are [heads, rows, cols] in the backend's storage
/// dtype, head j at j*rows*cols.
class ChunkKernels {
 public:
  virtual ~ChunkKernels() = default;
  /// @brief In place on the scaled scores S: S <- dropout(P), P the causal softmax of each
  /// row (keys past the query get 0); writes lse[(bi*heads + j)*seq + q] = log sum exp.
  virtual void softmax_forward(void* S, float* lse, const AttentionShape& a, int bi, int q0, int rows,
                               int cols) = 0;
  /// @brief Backward's recomputation: S <- P = exp(S - lse) (0 past the query) and
  /// Pd <- dropout(P).
  virtual void softmax_recompute(void* S, void* Pd, const float* lse, const AttentionShape& a, int bi, int q0,
                                 int rows, int cols) = 0;
  /// @brief In place on dPd = dO V^T: dPd <- scale * P o (dropout'(dPd) - D[q]), the
  /// gradient of the unscaled scores Q K^T (0 past the query).
  virtual void softmax_backward(const void* P, void* dPd, const float* D, const AttentionShape& a, int bi, int q0,
                                int rows, int cols) = 0;
  /// @brief D[(b*heads + j)*seq + q] = sum_c dO[t, j*d + c] O[t, j*d + c] for every token
  /// (fp32): rowsum(P o dP) of the softmax backward, dropout included.
  virtual void row_dot(const void* out, const void* dout, float* D, const AttentionShape& a) = 0;
};

/// @brief The CPU's chunk kernels (fp32 loops).
std::unique_ptr<ChunkKernels> make_cpu_chunk_kernels();

/// @brief Queries per chunk: the most (a multiple of 64 when at least 64) for which one
/// [heads, rows, seq] buffer stays within 32 Mi elements; at most seq.
int default_chunk_rows(const AttentionShape& a);

/// @brief The queries per chunk a fused attention runs with: PPSIM_ATTENTION_CHUNK_ROWS
/// when set to a positive number (so a GPU check can run several small, ragged chunks
/// at check sizes, e.g. 7), else default_chunk_rows; at most seq. Throws
/// std::invalid_argument on a value that is not a positive integer.
int chunk_rows(const AttentionShape& a);

/// @brief Workspace elements (storage dtype) forward (1 buffer) or backward (3 buffers)
/// needs with `rows` queries per chunk; backward also needs batch*heads*seq floats for D.
std::size_t chunk_workspace_elements(const AttentionShape& a, int rows, bool backward);

/// @brief O and lse of causal attention over `qkv`, `rows` queries per chunk. `work` holds
/// chunk_workspace_elements(a, rows, false) elements of the backend's storage dtype.
void chunked_attention_forward(Backend& b, ChunkKernels& k, const AttentionShape& a, int rows, const void* qkv,
                               void* out, float* lse, void* work);

/// @brief dQ, dK, dV into `dqkv` (the layout of `qkv`; overwritten) from O, dO and lse.
/// `work` holds chunk_workspace_elements(a, rows, true) elements; `D` batch*heads*seq floats.
void chunked_attention_backward(Backend& b, ChunkKernels& k, const AttentionShape& a, int rows, const void* qkv,
                                const void* out, const void* dout, const float* lse, void* dqkv, void* work,
                                float* D);

}  // namespace ppsim::cal
