// The CPU backend: the same layer math as the CUDA backend, fp32 storage, CBLAS GEMM
// (OpenBLAS) when available, plain loops for everything else. It is the reference the
// CUDA kernels are checked against and what CI calibrates end to end.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <thread>

#include "ppsim/calibrate/backend.h"

#ifdef PPSIM_HAVE_CBLAS
#include <cblas.h>
#endif

namespace ppsim::cal {
namespace {

class SteadyTimer final : public Timer {
 public:
  void start() override { t0_ = std::chrono::steady_clock::now(); }
  void stop() override { t1_ = std::chrono::steady_clock::now(); }
  double elapsed_ms() override { return std::chrono::duration<double, std::milli>(t1_ - t0_).count(); }

 private:
  std::chrono::steady_clock::time_point t0_, t1_;
};

const float* F(const void* p) { return static_cast<const float*>(p); }
float* F(void* p) { return static_cast<float*>(p); }

float gelu(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}
float gelu_grad(float x) {
  const float k = 0.7978845608028654f;
  const float u = k * (x + 0.044715f * x * x * x);
  const float t = std::tanh(u);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
}

class CpuBackend final : public Backend {
 public:
  [[nodiscard]] std::string name() const override { return "cpu"; }
  [[nodiscard]] Dtype dtype() const override { return Dtype::fp32; }
  [[nodiscard]] DeviceInfo device_info() const override {
    DeviceInfo d;
    d.name = "cpu (" + std::to_string(std::thread::hardware_concurrency()) + " threads)";
#ifdef PPSIM_HAVE_CBLAS
    d.blas = "cblas (OpenBLAS)";
#else
    d.blas = "naive loops (no CBLAS at build time)";
#endif
    d.clock = "std::chrono::steady_clock";
    return d;
  }
  FusedOps* fused() override { return fused_.get(); }

  void* raw_alloc(std::size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void raw_free(void* p) override { std::free(p); }
  void synchronize() override {}
  std::unique_ptr<Timer> make_timer() override { return make_steady_timer(); }

  void upload(const float* host, void* dst, std::int64_t n) override {
    std::memcpy(dst, host, static_cast<std::size_t>(n) * 4);
  }
  void download(const void* src, float* host, std::int64_t n) override {
    std::memcpy(host, src, static_cast<std::size_t>(n) * 4);
  }
  void upload_bytes(const void* host, void* dst, std::size_t bytes) override { std::memcpy(dst, host, bytes); }
  void download_bytes(const void* src, void* host, std::size_t bytes) override { std::memcpy(host, src, bytes); }
  void copy_bytes(const void* src, void* dst, std::size_t bytes) override { std::memcpy(dst, src, bytes); }
  void fill_uniform(void* dst, std::int64_t n, std::uint64_t seed, float scale) override {
    float* y = F(dst);
    for (std::int64_t i = 0; i < n; ++i)
      y[i] = (2.0f * hash_uniform(seed, static_cast<std::uint64_t>(i)) - 1.0f) * scale;
  }
  void fill_zero_bytes(void* dst, std::size_t bytes) override { std::memset(dst, 0, bytes); }

  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int lda,
            const void* B, int ldb, float beta, void* C, int ldc) override {
#ifdef PPSIM_HAVE_CBLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, F(A), lda, F(B), ldb, beta, F(C), ldc);
#else
    const float* a = F(A);
    const float* b = F(B);
    float* c = F(C);
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        double acc = 0;
        for (int k = 0; k < K; ++k)
          acc += static_cast<double>(ta ? a[k * lda + i] : a[i * lda + k]) *
                 (tb ? b[j * ldb + k] : b[k * ldb + j]);
        c[i * ldc + j] = alpha * static_cast<float>(acc) + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
      }
#endif
  }
  void gemm_batched(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int lda,
                    std::int64_t sa, const void* B, int ldb, std::int64_t sb, float beta, void* C,
                    int ldc, std::int64_t sc, int batch) override {
    for (int i = 0; i < batch; ++i)
      gemm(ta, tb, M, N, K, alpha, F(A) + i * sa, lda, F(B) + i * sb, ldb, beta, F(C) + i * sc, ldc);
  }

  void layernorm_forward(const void* x, const void* gamma, const void* beta, void* y, float* mean,
                         float* rstd, int rows, int cols) override {
    for (int r = 0; r < rows; ++r) {
      const float* xr = F(x) + static_cast<std::int64_t>(r) * cols;
      float* yr = F(y) + static_cast<std::int64_t>(r) * cols;
      double s = 0;
      for (int c = 0; c < cols; ++c) s += xr[c];
      const double mu = s / cols;
      double v = 0;
      for (int c = 0; c < cols; ++c) v += (xr[c] - mu) * (xr[c] - mu);
      const double rs = 1.0 / std::sqrt(v / cols + 1e-5);
      mean[r] = static_cast<float>(mu);
      rstd[r] = static_cast<float>(rs);
      for (int c = 0; c < cols; ++c)
        yr[c] = static_cast<float>((xr[c] - mu) * rs) * F(gamma)[c] + F(beta)[c];
    }
  }
  void layernorm_backward_input(const void* dy, const void* x, const void* gamma,
                                const float* mean, const float* rstd, void* dx, int rows, int cols,
                                bool accumulate) override {
    for (int r = 0; r < rows; ++r) {
      const std::int64_t o = static_cast<std::int64_t>(r) * cols;
      double s1 = 0, s2 = 0;
      for (int c = 0; c < cols; ++c) {
        const double g = F(dy)[o + c] * F(gamma)[c];
        const double xh = (F(x)[o + c] - mean[r]) * rstd[r];
        s1 += g;
        s2 += g * xh;
      }
      s1 /= cols;
      s2 /= cols;
      for (int c = 0; c < cols; ++c) {
        const double g = F(dy)[o + c] * F(gamma)[c];
        const double xh = (F(x)[o + c] - mean[r]) * rstd[r];
        const float v = static_cast<float>(rstd[r] * (g - s1 - xh * s2));
        F(dx)[o + c] = accumulate ? F(dx)[o + c] + v : v;
      }
    }
  }
  void layernorm_backward_weight(const void* dy, const void* x, const float* mean,
                                 const float* rstd, void* dgamma, void* dbeta, int rows,
                                 int cols) override {
    for (int r = 0; r < rows; ++r) {
      const std::int64_t o = static_cast<std::int64_t>(r) * cols;
      for (int c = 0; c < cols; ++c) {
        const float xh = (F(x)[o + c] - mean[r]) * rstd[r];
        F(dgamma)[c] += F(dy)[o + c] * xh;
        F(dbeta)[c] += F(dy)[o + c];
      }
    }
  }
  void bias_add(void* y, const void* bias, int rows, int cols) override {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) F(y)[static_cast<std::int64_t>(r) * cols + c] += F(bias)[c];
  }
  void bias_backward(const void* dy, void* dbias, int rows, int cols) override {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) F(dbias)[c] += F(dy)[static_cast<std::int64_t>(r) * cols + c];
  }
  void gelu_forward(const void* x, void* y, std::int64_t n) override {
    for (std::int64_t i = 0; i < n; ++i) F(y)[i] = gelu(F(x)[i]);
  }
  void gelu_backward(const void* dy, const void* x, void* dx, std::int64_t n) override {
    for (std::int64_t i = 0; i < n; ++i) F(dx)[i] = F(dy)[i] * gelu_grad(F(x)[i]);
  }
  void softmax_causal_forward(void* x, std::int64_t rows, int cols) override {
    for (std::int64_t r = 0; r < rows; ++r) {
      float* xr = F(x) + r * cols;
      const int valid = static_cast<int>(r % cols) + 1;
      float mx = -INFINITY;
      for (int c = 0; c < valid; ++c) mx = std::max(mx, xr[c]);
      double s = 0;
      for (int c = 0; c < valid; ++c) s += std::exp(static_cast<double>(xr[c] - mx));
      for (int c = 0; c < cols; ++c)
        xr[c] = c < valid ? static_cast<float>(std::exp(static_cast<double>(xr[c] - mx)) / s) : 0.0f;
    }
  }
  void softmax_backward(const void* P, void* dP, std::int64_t rows, int cols, float scale) override {
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* p = F(P) + r * cols;
      float* d = F(dP) + r * cols;
      double dot = 0;
      for (int c = 0; c < cols; ++c) dot += static_cast<double>(p[c]) * d[c];
      for (int c = 0; c < cols; ++c) d[c] = static_cast<float>(p[c] * (d[c] - dot) * scale);
    }
  }
  void dropout_forward(const void* x, void* y, std::uint8_t* mask, std::int64_t n, float p,
                       std::uint64_t seed) override {
    const float keep = 1.0f / (1.0f - p);
    for (std::int64_t i = 0; i < n; ++i) {
      mask[i] = hash_uniform(seed, static_cast<std::uint64_t>(i)) >= p ? 1 : 0;
      F(y)[i] = mask[i] ? F(x)[i] * keep : 0.0f;
    }
  }
  void dropout_backward(const void* dy, const std::uint8_t* mask, void* dx, std::int64_t n,
                        float p) override {
    const float keep = 1.0f / (1.0f - p);
    for (std::int64_t i = 0; i < n; ++i) F(dx)[i] = mask[i] ? F(dy)[i] * keep : 0.0f;
  }
  void residual_add(const void* a, const void* b, void* out, std::int64_t n) override {
    for (std::int64_t i = 0; i < n; ++i) F(out)[i] = F(a)[i] + F(b)[i];
  }
  void embedding_forward(const std::int32_t* ids, const void* table, const void* pos, void* y,
                         int tokens, int seq, int hidden) override {
    for (int t = 0; t < tokens; ++t)
      for (int c = 0; c < hidden; ++c)
        F(y)[static_cast<std::int64_t>(t) * hidden + c] =
            F(table)[static_cast<std::int64_t>(ids[t]) * hidden + c] +
            (pos ? F(pos)[static_cast<std::int64_t>(t % seq) * hidden + c] : 0.0f);
  }
  void embedding_backward(const std::int32_t* ids, const void* dy, void* dtable, void* dpos,
                          int tokens, int seq, int hidden) override {
    for (int t = 0; t < tokens; ++t)
      for (int c = 0; c < hidden; ++c) {
        const float g = F(dy)[static_cast<std::int64_t>(t) * hidden + c];
        F(dtable)[static_cast<std::int64_t>(ids[t]) * hidden + c] += g;
        if (dpos) F(dpos)[static_cast<std::int64_t>(t % seq) * hidden + c] += g;
      }
  }
  void cross_entropy_forward(void* logits, const std::int32_t* labels, float* loss, int rows,
                             int vocab) override {
    for (int r = 0; r < rows; ++r) {
      float* x = F(logits) + static_cast<std::int64_t>(r) * vocab;
      float mx = -INFINITY;
      for (int c = 0; c < vocab; ++c) mx = std::max(mx, x[c]);
      double s = 0;
      for (int c = 0; c < vocab; ++c) s += std::exp(static_cast<double>(x[c] - mx));
      loss[r] = static_cast<float>(std::log(s) + mx - x[labels[r]]);
      for (int c = 0; c < vocab; ++c) x[c] = static_cast<float>(std::exp(static_cast<double>(x[c] - mx)) / s);
    }
  }
  void cross_entropy_backward(void* probs, const std::int32_t* labels, int rows, int vocab,
                              float scale) override {
    for (int r = 0; r < rows; ++r) {
      float* x = F(probs) + static_cast<std::int64_t>(r) * vocab;
      for (int c = 0; c < vocab; ++c) x[c] = (x[c] - (c == labels[r] ? 1.0f : 0.0f)) * scale;
    }
  }

  // ---- Llama block: RMSNorm, rotary, SwiGLU (backend.h).
  void rmsnorm_forward(const void* x, const void* gamma, void* y, float* rstd, int rows, int cols) override {
    for (int r = 0; r < rows; ++r) {
      const float* xr = F(x) + static_cast<std::int64_t>(r) * cols;
      float* yr = F(y) + static_cast<std::int64_t>(r) * cols;
      double ss = 0;
      for (int c = 0; c < cols; ++c) ss += static_cast<double>(xr[c]) * xr[c];
      const float rs = static_cast<float>(1.0 / std::sqrt(ss / cols + 1e-5));
      rstd[r] = rs;
      for (int c = 0; c < cols; ++c) yr[c] = xr[c] * rs * F(gamma)[c];
    }
  }
  void rmsnorm_backward_input(const void* dy, const void* x, const void* gamma, const float* rstd, void* dx,
                              int rows, int cols, bool accumulate) override {
    for (int r = 0; r < rows; ++r) {
      const std::int64_t o = static_cast<std::int64_t>(r) * cols;
      double dot = 0;
      for (int c = 0; c < cols; ++c)
        dot += static_cast<double>(F(dy)[o + c]) * F(gamma)[c] * F(x)[o + c] * rstd[r];
      dot /= cols;
      for (int c = 0; c < cols; ++c) {
        const double g = static_cast<double>(F(dy)[o + c]) * F(gamma)[c];
        const double xh = static_cast<double>(F(x)[o + c]) * rstd[r];
        const float v = static_cast<float>(rstd[r] * (g - xh * dot));
        F(dx)[o + c] = accumulate ? F(dx)[o + c] + v : v;
      }
    }
  }
  void rmsnorm_backward_weight(const void* dy, const void* x, const float* rstd, void* dgamma, int rows,
                               int cols) override {
    for (int r = 0; r < rows; ++r) {
      const std::int64_t o = static_cast<std::int64_t>(r) * cols;
      for (int c = 0; c < cols; ++c) F(dgamma)[c] += F(dy)[o + c] * (F(x)[o + c] * rstd[r]);
    }
  }
  void rotary_forward(void* x, std::int64_t rows, int seq, int heads, int head_dim, int row_stride,
                      float theta) override {
    rotate(x, rows, seq, heads, head_dim, row_stride, theta, 1.0f);
  }
  void rotary_backward(void* dx, std::int64_t rows, int seq, int heads, int head_dim, int row_stride,
                       float theta) override {
    rotate(dx, rows, seq, heads, head_dim, row_stride, theta, -1.0f);
  }
  void swiglu_forward(const void* gu, void* y, int rows, int cols) override {
    for (int r = 0; r < rows; ++r) {
      const float* g = F(gu) + static_cast<std::int64_t>(r) * 2 * cols;
      float* yr = F(y) + static_cast<std::int64_t>(r) * cols;
      for (int c = 0; c < cols; ++c) yr[c] = silu(g[c]) * g[cols + c];
    }
  }
  void swiglu_backward(const void* dy, const void* gu, void* dgu, int rows, int cols) override {
    for (int r = 0; r < rows; ++r) {
      const float* g = F(gu) + static_cast<std::int64_t>(r) * 2 * cols;
      const float* d = F(dy) + static_cast<std::int64_t>(r) * cols;
      float* o = F(dgu) + static_cast<std::int64_t>(r) * 2 * cols;
      for (int c = 0; c < cols; ++c) {
        const float s = 1.0f / (1.0f + std::exp(-g[c]));
        o[c] = d[c] * g[cols + c] * s * (1.0f + g[c] * (1.0f - s));
        o[cols + c] = d[c] * g[c] * s;
      }
    }
  }

 private:
  static float silu(float v) { return v / (1.0f + std::exp(-v)); }
  /// Turns each (i, i + d/2) pair by `sign` x pos x theta^(-2i/d), angles in fp32 as HF does.
  static void rotate(void* x, std::int64_t rows, int seq, int heads, int d, int stride, float theta, float sign) {
    const int half = d / 2;
    for (std::int64_t r = 0; r < rows; ++r) {
      const float pos = static_cast<float>(r % seq);
      for (int i = 0; i < half; ++i) {
        const float inv_freq = std::pow(theta, -2.0f * static_cast<float>(i) / static_cast<float>(d));
        const float angle = pos * inv_freq;
        const float c = std::cos(angle), s = sign * std::sin(angle);
        for (int hd = 0; hd < heads; ++hd) {
          float* p = F(x) + r * stride + static_cast<std::int64_t>(hd) * d;
          const float x1 = p[i], x2 = p[i + half];
          p[i] = x1 * c - x2 * s;
          p[i + half] = x2 * c + x1 * s;
        }
      }
    }
  }

 private:
  std::unique_ptr<FusedOps> fused_ = make_cpu_fused_ops(*this);  // cpu_fused.cpp
};

std::map<std::string, BackendFactory>& registry() {
  static std::map<std::string, BackendFactory> table{
      {"cpu", [](Dtype d) -> std::unique_ptr<Backend> {
         if (d != Dtype::fp32)
           throw std::invalid_argument("the cpu backend stores fp32 only (got --dtype " +
                                       dtype_name(d) + ")");
         return std::make_unique<CpuBackend>();
       }}};
  return table;
}

}  // namespace

std::unique_ptr<Timer> make_steady_timer() { return std::make_unique<SteadyTimer>(); }

std::unique_ptr<Backend> make_cpu_backend(Dtype dtype) { return registry().at("cpu")(dtype); }

void set_cpu_blas_threads(int threads) {
#ifdef PPSIM_HAVE_CBLAS
  openblas_set_num_threads(threads);
#else
  (void)threads;  // plain loops are single-threaded already
#endif
}

void register_backend(const std::string& name, BackendFactory factory) { registry()[name] = factory; }

std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const auto& [n, f] : registry()) names.push_back(n);
  return names;
}

Dtype default_dtype(const std::string& backend_name) { return backend_name == "cpu" ? Dtype::fp32 : Dtype::bf16; }

std::unique_ptr<Backend> make_backend(const std::string& name, Dtype dtype) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown backend '" + name + "' (built: " + known + ")");
  }
  return it->second(dtype);
}

}  // namespace ppsim::cal
