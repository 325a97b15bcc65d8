// The CPU's fused kernels (fused.h), fp32: flash attention as plain loops over key tiles
// with an online softmax (no s x s buffer), the linear epilogues as the backend's GEMM
// followed by its own bias/GeLU loops in the same call, bias-dropout-add with the mask
// regenerated from the hash. The reference for the CUDA fused kernels.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/fused.h"

namespace ppsim::cal {
namespace {

/// Keys per tile of the online softmax (what a GPU kernel keeps in shared memory).
constexpr int kKeyTile = 64;

const float* F(const void* p) { return static_cast<const float*>(p); }
float* F(void* p) { return static_cast<float*>(p); }

float dot(const float* a, const float* b, int n) {
  float acc = 0;
  for (int i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

/// One (sample, query head) of the attention: row pointers into the [b*s, w + 2kv] QKV
/// and [b*s, w] O. Query head j reads key/value head j / g (g = heads / kv_heads).
struct Head {
  const float* qkv;
  int s, w, kv, d, j, g;  // seq, query width, key/value width, head dim, query head, group size
  std::int64_t row0;      // first token row of the sample
  std::uint64_t drop0;    // dropout index of score (q = 0, k = 0) of this (sample, head)
  [[nodiscard]] std::int64_t ld() const { return w + 2 * kv; }
  [[nodiscard]] std::int64_t kv_col() const { return static_cast<std::int64_t>(j / g) * d; }
  const float* q(int i) const { return qkv + (row0 + i) * ld() + static_cast<std::int64_t>(j) * d; }
  const float* k(int i) const { return qkv + (row0 + i) * ld() + w + kv_col(); }
  const float* v(int i) const { return qkv + (row0 + i) * ld() + w + kv + kv_col(); }
};

void check_groups(int heads, int kv_heads) {
  if (kv_heads < 1 || heads % kv_heads != 0)
    throw std::invalid_argument("fused attention: " + std::to_string(heads) + " query heads do not group over " +
                                std::to_string(kv_heads) + " key/value heads");
}

Head head_of(const void* qkv, int bi, int j, int seq, int heads, int kv_heads, int d) {
  return {F(qkv), seq, heads * d, kv_heads * d, d, j, heads / kv_heads, static_cast<std::int64_t>(bi) * seq,
          (static_cast<std::uint64_t>(bi) * heads + j) * seq * seq};
}

/// 1/(1-p) when score (q, k) is kept, 0 when dropped: the plain dropout's mask and scale.
float keep_scale(const Head& hd, int q, int k, float p, std::uint64_t seed) {
  const std::uint64_t idx = hd.drop0 + static_cast<std::uint64_t>(q) * hd.s + static_cast<std::uint64_t>(k);
  return hash_uniform(seed, idx) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

class CpuFusedOps final : public FusedOps {
 public:
  explicit CpuFusedOps(Backend& gemms) : b_(gemms) {}

  void attention_forward(const void* qkv, void* out, float* lse, int batch, int seq, int heads, int kv_heads,
                         int head_dim, float scale, float p, std::uint64_t seed) override {
    check_groups(heads, kv_heads);
    const int w = heads * head_dim;
    std::vector<float> acc(static_cast<std::size_t>(head_dim)), sc(kKeyTile);
    for (int bi = 0; bi < batch; ++bi)
      for (int j = 0; j < heads; ++j) {
        const Head hd = head_of(qkv, bi, j, seq, heads, kv_heads, head_dim);
        for (int q = 0; q < seq; ++q) {
          float m = -INFINITY, l = 0;
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (int k0 = 0; k0 <= q; k0 += kKeyTile) {  // causal: key tiles up to the query
            const int k1 = std::min(k0 + kKeyTile, q + 1);
            float tile_max = -INFINITY;
            for (int k = k0; k < k1; ++k) {
              sc[static_cast<std::size_t>(k - k0)] = scale * dot(hd.q(q), hd.k(k), head_dim);
              tile_max = std::max(tile_max, sc[static_cast<std::size_t>(k - k0)]);
            }
            const float m_new = std::max(m, tile_max);
            const float correction = std::exp(m - m_new);  // 0 on the first tile (m = -inf)
            l *= correction;
            for (float& a : acc) a *= correction;
            for (int k = k0; k < k1; ++k) {
              const float e = std::exp(sc[static_cast<std::size_t>(k - k0)] - m_new);
              l += e;
              const float z = keep_scale(hd, q, k, p, seed);
              if (z == 0.0f) continue;
              const float* v = hd.v(k);
              for (int c = 0; c < head_dim; ++c) acc[static_cast<std::size_t>(c)] += e * z * v[c];
            }
            m = m_new;
          }
          float* o = F(out) + (hd.row0 + q) * w + static_cast<std::int64_t>(j) * head_dim;
          for (int c = 0; c < head_dim; ++c) o[c] = acc[static_cast<std::size_t>(c)] / l;
          lse[(static_cast<std::int64_t>(bi) * heads + j) * seq + q] = m + std::log(l);
        }
      }
  }

  // FlashAttention-2's backward: D = rowsum(dO o O) (= rowsum(P o dP) with dropout too,
  // since O = (P o Z) V), then per key tile, per query: P from lse, dV += (P o Z)^T dO,
  // dS = P o (Z o dO V^T - D) * scale, dQ += dS K, dK += dS^T Q. A key/value head's dK
  // and dV accumulate over its query group (dqkv is zeroed first).
  void attention_backward(const void* qkv, const void* out, const void* dout, const float* lse, void* dqkv,
                          int batch, int seq, int heads, int kv_heads, int head_dim, float scale, float p,
                          std::uint64_t seed) override {
    check_groups(heads, kv_heads);
    const int w = heads * head_dim;
    std::fill_n(F(dqkv), static_cast<std::int64_t>(batch) * seq * (w + 2 * kv_heads * head_dim), 0.0f);
    std::vector<float> D(static_cast<std::size_t>(seq));
    for (int bi = 0; bi < batch; ++bi)
      for (int j = 0; j < heads; ++j) {
        const Head hd = head_of(qkv, bi, j, seq, heads, kv_heads, head_dim);
        auto row = [&](const void* base, int i) {
          return F(base) + (hd.row0 + i) * w + static_cast<std::int64_t>(j) * head_dim;
        };
        // part 0, 1, 2: dQ, dK, dV of token i (at the offsets of Q, K, V in qkv)
        auto grad = [&](int i, int part) {
          const float* at = part == 0 ? hd.q(i) : part == 1 ? hd.k(i) : hd.v(i);
          return F(dqkv) + (at - hd.qkv);
        };
        for (int i = 0; i < seq; ++i) D[static_cast<std::size_t>(i)] = dot(row(dout, i), row(out, i), head_dim);
        const float* L = lse + (static_cast<std::int64_t>(bi) * heads + j) * seq;
        for (int k0 = 0; k0 < seq; k0 += kKeyTile) {
          const int k1 = std::min(k0 + kKeyTile, seq);
          for (int q = k0; q < seq; ++q) {  // causal: queries from the tile's first key on
            const float* dO = row(dout, q);
            float* dQ = grad(q, 0);
            for (int k = k0; k < std::min(k1, q + 1); ++k) {
              const float P = std::exp(scale * dot(hd.q(q), hd.k(k), head_dim) - L[q]);
              const float z = keep_scale(hd, q, k, p, seed);
              const float dS = P * (z * dot(dO, hd.v(k), head_dim) - D[static_cast<std::size_t>(q)]) * scale;
              float* dK = grad(k, 1);
              float* dV = grad(k, 2);
              const float* Q = hd.q(q);
              const float* K = hd.k(k);
              for (int c = 0; c < head_dim; ++c) {
                dV[c] += P * z * dO[c];
                dQ[c] += dS * K[c];
                dK[c] += dS * Q[c];
              }
            }
          }
        }
      }
  }

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
    const float keep = 1.0f / (1.0f - p);
    for (std::int64_t r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const std::int64_t i = r * cols + c;
        const float v = F(x)[i] + F(bias)[c];
        F(y)[i] = F(residual)[i] + (hash_uniform(seed, static_cast<std::uint64_t>(i)) >= p ? v * keep : 0.0f);
      }
  }
  void bias_dropout_add_backward(const void* dy, void* dx, int rows, int cols, float p, std::uint64_t seed) override {
    const float keep = 1.0f / (1.0f - p);
    const std::int64_t n = static_cast<std::int64_t>(rows) * cols;
    for (std::int64_t i = 0; i < n; ++i)
      F(dx)[i] = hash_uniform(seed, static_cast<std::uint64_t>(i)) >= p ? F(dy)[i] * keep : 0.0f;
  }

 private:
  Backend& b_;
};

}  // namespace

void linear_bias_gelu_unfused(Backend& b, const void* x, const void* weight, const void* bias, void* pre, void* y,
                              int rows, int out, int in) {
  b.gemm(false, true, rows, out, in, 1.0f, x, in, weight, in, 0.0f, pre, out);
  b.bias_add(pre, bias, rows, out);
  b.gelu_forward(pre, y, static_cast<std::int64_t>(rows) * out);
}

void linear_dgelu_unfused(Backend& b, const void* dy, const void* weight, const void* pre, void* dpre, void* dbias,
                          int rows, int out, int n) {
  b.gemm(false, false, rows, out, n, 1.0f, dy, n, weight, out, 0.0f, dpre, out);
  b.gelu_backward(dpre, pre, dpre, static_cast<std::int64_t>(rows) * out);  // element-wise: in place is safe
  b.bias_backward(dpre, dbias, rows, out);
}

std::unique_ptr<FusedOps> make_cpu_fused_ops(Backend& gemms) { return std::make_unique<CpuFusedOps>(gemms); }

}  // namespace ppsim::cal
