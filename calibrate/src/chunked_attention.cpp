// Chunked causal attention (chunked_attention.h): the GEMM sequence over the backend, and
// the CPU's chunk kernels. Per sample and chunk of queries [q0, q0 + rows), keys [0, cols)
// with cols = q0 + rows; for each offset g within a query group one batched GEMM runs
// over the kv heads (query heads g, g + group, ... read kv heads 0, 1, ...), so GQA needs
// no copies of K and V.
#include "ppsim/calibrate/chunked_attention.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/model.h"

namespace ppsim::cal {

void AttentionShape::validate() const {
  if (batch < 1 || seq < 1 || heads < 1 || kv_heads < 1 || head_dim < 1 || heads % kv_heads != 0)
    throw std::invalid_argument("attention: batch " + std::to_string(batch) + ", seq " + std::to_string(seq) +
                                ", heads " + std::to_string(heads) + ", kv heads " + std::to_string(kv_heads) +
                                ", head dim " + std::to_string(head_dim) +
                                ": sizes must be positive and kv heads must divide heads");
}

int default_chunk_rows(const AttentionShape& a) {
  constexpr std::int64_t kMaxElements = std::int64_t{1} << 25;
  const std::int64_t fit = std::max<std::int64_t>(1, kMaxElements / (std::int64_t{a.heads} * a.seq));
  const std::int64_t rows = fit >= 64 ? fit / 64 * 64 : fit;
  return static_cast<int>(std::min<std::int64_t>(rows, a.seq));
}

int chunk_rows(const AttentionShape& a) {
  return std::min(env_int("PPSIM_ATTENTION_CHUNK_ROWS", 1, 1 << 30, default_chunk_rows(a)), a.seq);
}

std::size_t chunk_workspace_elements(const AttentionShape& a, int rows, bool backward) {
  const std::size_t one = static_cast<std::size_t>(a.heads) * static_cast<std::size_t>(rows) *
                          static_cast<std::size_t>(a.seq);
  return backward ? 3 * one : one;
}

namespace {

/// Element offsets into the three layouts, and one batched GEMM per group offset g.
struct Chunked {
  Backend& b;
  const AttentionShape& a;
  std::size_t e;  // bytes per element
  int rows, cols, bi, q0;

  const void* at(const void* p, std::int64_t elements) const { return static_cast<const char*>(p) + elements * e; }
  void* at(void* p, std::int64_t elements) const { return static_cast<char*>(p) + elements * e; }
  std::int64_t token(int pos) const { return std::int64_t{bi} * a.seq + pos; }
  std::int64_t q_col(int g) const { return std::int64_t{g} * a.head_dim; }
  std::int64_t k_col() const { return std::int64_t{a.heads} * a.head_dim; }
  std::int64_t v_col() const { return std::int64_t{a.heads + a.kv_heads} * a.head_dim; }
  std::int64_t chunk(int g) const { return std::int64_t{g} * rows * cols; }  // head g of a [heads, rows, cols] buffer
  std::int64_t chunk_stride() const { return std::int64_t{a.group()} * rows * cols; }
  std::int64_t q_stride() const { return std::int64_t{a.group()} * a.head_dim; }

  /// S[j] = scale Q_j K_{j/group}^T for the chunk's queries and keys 0..cols.
  void scores(const void* qkv, void* S) const {
    for (int g = 0; g < a.group(); ++g)
      b.gemm_batched(false, true, rows, cols, a.head_dim, a.scale, at(qkv, token(q0) * a.ld() + q_col(g)), a.ld(),
                     q_stride(), at(qkv, token(0) * a.ld() + k_col()), a.ld(), a.head_dim, 0.0f, at(S, chunk(g)), cols,
                     chunk_stride(), a.kv_heads);
  }
  /// C_j[rows, d] (+)= X_j[rows, cols] Y_{j/group}[cols, d], Y a K or V slice of qkv at `col`.
  void times_keys(const void* X, const void* qkv, std::int64_t col, void* C, std::int64_t c_row0, int ldc,
                  std::int64_t c_col0) const {
    for (int g = 0; g < a.group(); ++g)
      b.gemm_batched(false, false, rows, a.head_dim, cols, 1.0f, at(X, chunk(g)), cols, chunk_stride(),
                     at(qkv, token(0) * a.ld() + col), a.ld(), a.head_dim, 0.0f,
                     at(C, c_row0 * ldc + c_col0 + q_col(g)), ldc, q_stride(), a.kv_heads);
  }
  /// dKV_{g'}[cols, d] += sum over the group of X_j^T[cols, rows] Y_j[rows, d] (Y: rows of a
  /// [tokens, ldy] buffer at column y_col0 + j*d); into dqkv at column `col`.
  void transposed_into(const void* X, const void* Y, int ldy, std::int64_t y_col0, void* dqkv,
                       std::int64_t col) const {
    for (int g = 0; g < a.group(); ++g)
      b.gemm_batched(true, false, cols, a.head_dim, rows, 1.0f, at(X, chunk(g)), cols, chunk_stride(),
                     at(Y, token(q0) * ldy + y_col0 + q_col(g)), ldy, q_stride(), 1.0f,
                     at(dqkv, token(0) * a.ld() + col), a.ld(), a.head_dim, a.kv_heads);
  }
};

}  // namespace

void chunked_attention_forward(Backend& b, ChunkKernels& k, const AttentionShape& a, int rows, const void* qkv,
                               void* out, float* lse, void* work) {
  a.validate();
  const std::size_t e = static_cast<std::size_t>(dtype_bytes(b.dtype()));
  for (int bi = 0; bi < a.batch; ++bi)
    for (int q0 = 0; q0 < a.seq; q0 += rows) {
      const int r = std::min(rows, a.seq - q0);
      const Chunked c{b, a, e, r, q0 + r, bi, q0};
      c.scores(qkv, work);
      k.softmax_forward(work, lse, a, bi, q0, r, q0 + r);
      c.times_keys(work, qkv, c.v_col(), out, c.token(q0), a.width(), 0);  // O = dropout(P) V
    }
}

void chunked_attention_backward(Backend& b, ChunkKernels& k, const AttentionShape& a, int rows, const void* qkv,
                                const void* out, const void* dout, const float* lse, void* dqkv, void* work,
                                float* D) {
  a.validate();
  const std::size_t e = static_cast<std::size_t>(dtype_bytes(b.dtype()));
  b.fill_zero_bytes(dqkv, static_cast<std::size_t>(a.batch) * a.seq * a.ld() * e);
  k.row_dot(out, dout, D, a);
  const std::size_t one = chunk_workspace_elements(a, rows, false);
  void* P = work;
  void* Pd = static_cast<char*>(work) + one * e;
  void* dS = static_cast<char*>(work) + 2 * one * e;
  for (int bi = 0; bi < a.batch; ++bi)
    for (int q0 = 0; q0 < a.seq; q0 += rows) {
      const int r = std::min(rows, a.seq - q0);
      const Chunked c{b, a, e, r, q0 + r, bi, q0};
      c.scores(qkv, P);
      k.softmax_recompute(P, Pd, lse, a, bi, q0, r, q0 + r);
      c.transposed_into(Pd, dout, a.width(), 0, dqkv, c.v_col());  // dV += dropout(P)^T dO
      for (int g = 0; g < a.group(); ++g)                          // dPd = dO V^T
        b.gemm_batched(false, true, r, q0 + r, a.head_dim, 1.0f, c.at(dout, c.token(q0) * a.width() + c.q_col(g)),
                       a.width(), c.q_stride(), c.at(qkv, c.token(0) * a.ld() + c.v_col()), a.ld(), a.head_dim, 0.0f,
                       c.at(dS, c.chunk(g)), q0 + r, c.chunk_stride(), a.kv_heads);
      k.softmax_backward(P, dS, D, a, bi, q0, r, q0 + r);
      c.times_keys(dS, qkv, c.k_col(), dqkv, c.token(q0), a.ld(), 0);  // dQ = dS K
      c.transposed_into(dS, qkv, a.ld(), 0, dqkv, c.k_col());         // dK += dS^T Q
    }
}

namespace {

/// 1/(1-p) when score (q, k) of head j of sample bi is kept, else 0 (the plain dropout's).
float keep(const AttentionShape& a, int bi, int j, int q, int k) {
  if (a.dropout_p <= 0.0f) return 1.0f;
  const std::uint64_t idx =
      ((static_cast<std::uint64_t>(bi) * a.heads + j) * a.seq + q) * static_cast<std::uint64_t>(a.seq) + k;
  return hash_uniform(a.seed, idx) >= a.dropout_p ? 1.0f / (1.0f - a.dropout_p) : 0.0f;
}

std::int64_t stat(const AttentionShape& a, int bi, int j, int q) {
  return (std::int64_t{bi} * a.heads + j) * a.seq + q;
}

class CpuChunkKernels final : public ChunkKernels {
 public:
  void softmax_forward(void* S, float* lse, const AttentionShape& a, int bi, int q0, int rows, int cols) override {
    for (int j = 0; j < a.heads; ++j)
      for (int r = 0; r < rows; ++r) {
        float* x = static_cast<float*>(S) + (std::int64_t{j} * rows + r) * cols;
        const int q = q0 + r;
        const float m = *std::max_element(x, x + q + 1);
        float sum = 0;
        for (int c = 0; c <= q; ++c) sum += std::exp(x[c] - m);
        lse[stat(a, bi, j, q)] = m + std::log(sum);
        for (int c = 0; c < cols; ++c) x[c] = c <= q ? std::exp(x[c] - m) / sum * keep(a, bi, j, q, c) : 0.0f;
      }
  }
  void softmax_recompute(void* S, void* Pd, const float* lse, const AttentionShape& a, int bi, int q0, int rows,
                         int cols) override {
    for (int j = 0; j < a.heads; ++j)
      for (int r = 0; r < rows; ++r) {
        const std::int64_t off = (std::int64_t{j} * rows + r) * cols;
        float* p = static_cast<float*>(S) + off;
        float* pd = static_cast<float*>(Pd) + off;
        const int q = q0 + r;
        const float L = lse[stat(a, bi, j, q)];
        for (int c = 0; c < cols; ++c) {
          p[c] = c <= q ? std::exp(p[c] - L) : 0.0f;
          pd[c] = p[c] * keep(a, bi, j, q, c);
        }
      }
  }
  void softmax_backward(const void* P, void* dPd, const float* D, const AttentionShape& a, int bi, int q0, int rows,
                        int cols) override {
    for (int j = 0; j < a.heads; ++j)
      for (int r = 0; r < rows; ++r) {
        const std::int64_t off = (std::int64_t{j} * rows + r) * cols;
        const float* p = static_cast<const float*>(P) + off;
        float* d = static_cast<float*>(dPd) + off;
        const int q = q0 + r;
        const float Dq = D[stat(a, bi, j, q)];
        for (int c = 0; c < cols; ++c) d[c] = c <= q ? a.scale * p[c] * (d[c] * keep(a, bi, j, q, c) - Dq) : 0.0f;
      }
  }
  void row_dot(const void* out, const void* dout, float* D, const AttentionShape& a) override {
    const auto* o = static_cast<const float*>(out);
    const auto* g = static_cast<const float*>(dout);
    for (int bi = 0; bi < a.batch; ++bi)
      for (int q = 0; q < a.seq; ++q)
        for (int j = 0; j < a.heads; ++j) {
          const std::int64_t base = (std::int64_t{bi} * a.seq + q) * a.width() + std::int64_t{j} * a.head_dim;
          float acc = 0;
          for (int c = 0; c < a.head_dim; ++c) acc += o[base + c] * g[base + c];
          D[stat(a, bi, j, q)] = acc;
        }
  }
};

}  // namespace

std::unique_ptr<ChunkKernels> make_cpu_chunk_kernels() { return std::make_unique<CpuChunkKernels>(); }

}  // namespace ppsim::cal
