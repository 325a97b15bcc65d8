#pragma once
/// @file fused.h
/// @brief The fused kernels Megatron-LM trains with, kept apart from the plain ops of
/// Backend: flash attention (forward and backward), a linear layer with a bias + GeLU
/// epilogue (and its dGeLU + dbias backward), and bias-dropout-add. The Llama block uses
/// the attention only (grouped-query heads, no dropout). A backend that has
/// them returns them from Backend::fused(); the block runs them with `--kernels fused`.
/// Buffers hold the backend's storage dtype unless the parameter says float. Row-major.
///
/// Dropout masks are never stored: both directions regenerate them from
/// hash_uniform(seed, index) (backend.h) with the index the plain ops use, so a fused
/// block and a plain block with the same seed drop exactly the same elements.
#include <cstdint>
#include <memory>

namespace ppsim::cal {

class Backend;

/// @brief Fused kernels of one backend (owned by the backend).
class FusedOps {
 public:
  virtual ~FusedOps() = default;

  /// @brief Causal flash attention forward over `batch` samples of `seq` tokens, `heads`
  /// query heads of `head_dim` and `kv_heads` key/value heads (grouped-query attention:
  /// query head j reads key/value head j / (heads / kv_heads); GPT is kv_heads == heads).
  /// `qkv` is [batch*seq, w + 2kv] (w = heads*head_dim, kv = kv_heads*head_dim; Q in
  /// columns 0..w, K in w..w+kv, V in w+kv..w+2kv, head j at j*head_dim), as the fused
  /// QKV GEMM writes it; `out` (O) is [batch*seq, w]. Online softmax over key tiles: the
  /// s x s scores never exist. Attention dropout with probability `dropout_p` keeps score
  /// (b, j, q, k) when hash_uniform(seed, ((b*heads + j)*seq + q)*seq + k) >= dropout_p
  /// (the plain dropout's index over the [b, heads, s, s] probabilities). Writes the fp32
  /// log-sum-exp of the scaled scores per (b, j, q) to `lse` [batch, heads, seq].
  virtual void attention_forward(const void* qkv, void* out, float* lse, int batch, int seq, int heads,
                                 int kv_heads, int head_dim, float scale, float dropout_p, std::uint64_t seed) = 0;
  /// @brief Its backward: recomputes P = exp(scale QK^T - lse) tile by tile and writes
  /// dQ, dK, dV into `dqkv` ([batch*seq, w + 2kv], the layout of `qkv`); `out` and `dout`
  /// are O and dO ([batch*seq, w]). A key/value head's dK and dV sum over its query group.
  virtual void attention_backward(const void* qkv, const void* out, const void* dout, const float* lse,
                                  void* dqkv, int batch, int seq, int heads, int kv_heads, int head_dim, float scale,
                                  float dropout_p, std::uint64_t seed) = 0;

  /// @brief pre = x W^T + bias, y = GeLU(pre) (tanh approximation) in one GEMM with an
  /// epilogue: x [rows, in], W [out, in], bias [out], pre and y [rows, out]. `pre` is
  /// what backward keeps (cuBLASLt's GELU_AUX_BIAS auxiliary output).
  virtual void linear_bias_gelu_forward(const void* x, const void* weight, const void* bias, void* pre, void* y,
                                        int rows, int out, int in) = 0;
  /// @brief The GEMM that feeds a GeLU's gradient, with the dGeLU + dbias epilogue:
  /// dpre = (dy W) * GeLU'(pre) with dy [rows, n], W [n, out], pre and dpre [rows, out];
  /// dbias[c] += sum_r dpre[r, c] (cuBLASLt's DGELU_BGRAD).
  virtual void linear_dgelu_backward(const void* dy, const void* weight, const void* pre, void* dpre, void* dbias,
                                     int rows, int out, int n) = 0;

  /// @brief y = residual + dropout(x + bias): y[r, c] keeps x[r, c] + bias[c] scaled by
  /// 1/(1-p) when hash_uniform(seed, r*cols + c) >= p. Stores no mask.
  virtual void bias_dropout_add_forward(const void* x, const void* bias, const void* residual, void* y, int rows,
                                        int cols, float p, std::uint64_t seed) = 0;
  /// @brief dx = dropout'(dy) with the mask regenerated from (seed, index); the residual's
  /// gradient is dy itself and the bias's is sum_r dx (the linear's weight-gradient pass).
  virtual void bias_dropout_add_backward(const void* dy, void* dx, int rows, int cols, float p,
                                         std::uint64_t seed) = 0;
};

/// @brief FusedOps::linear_bias_gelu_forward on a backend's plain ops (its GEMM, bias
/// and GeLU kernels): the CPU's fused op, and a GPU's where cuBLASLt has no algorithm.
void linear_bias_gelu_unfused(Backend& b, const void* x, const void* weight, const void* bias, void* pre, void* y,
                              int rows, int out, int in);
/// @brief FusedOps::linear_dgelu_backward on a backend's plain ops (GEMM, GeLU backward in
/// place, bias gradient).
void linear_dgelu_unfused(Backend& b, const void* dy, const void* weight, const void* pre, void* dpre, void* dbias,
                          int rows, int out, int n);

/// @brief The CPU's fused kernels (fp32, plain loops; the linear epilogues run `gemms`'s
/// GEMM and its bias/GeLU loops in the same call). The reference the CUDA ones are
/// checked against. `gemms` must outlive the result.
std::unique_ptr<FusedOps> make_cpu_fused_ops(Backend& gemms);

}  // namespace ppsim::cal
