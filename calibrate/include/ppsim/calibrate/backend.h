#pragma once
/// @file backend.h
/// @brief The operations a backend provides (GEMMs and the transformer's element-wise
/// and row-wise kernels), an accounting caching allocator and timers. The layer math
/// is written once over this interface (layers.h), so the CPU and CUDA backends run
/// exactly the same algorithm and save exactly the same tensors.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "ppsim/calibrate/fused.h"
#include "ppsim/calibrate/model.h"

namespace ppsim::cal {

/// @brief No usable device for the requested backend (the CLI exits 2).
class NoDeviceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief Times one region on the backend's own clock (CUDA events / steady_clock).
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  /// @brief Waits for the region to finish; milliseconds between start and stop.
  virtual double elapsed_ms() = 0;
};

/// @brief A Timer on std::chrono::steady_clock (the CPU backends').
std::unique_ptr<Timer> make_steady_timer();

/// @brief Device description written into profiles.
struct DeviceInfo {
  std::string name;
  std::int64_t memory_bytes{0};
  int count{1};
  std::string driver;
  std::string runtime;
  std::string blas;
  std::string compute_capability;
  std::string clock;  ///< what times regions
};

/// @brief A backend: memory, data movement, math. All buffers hold elements of the
/// backend's storage dtype unless the parameter says float/uint8/int32. Row-major.
class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  [[nodiscard]] virtual Dtype dtype() const = 0;
  [[nodiscard]] virtual DeviceInfo device_info() const = 0;
  /// @brief The backend's fused kernels (fused.h), or nullptr when it has none.
  virtual FusedOps* fused() { return nullptr; }

  virtual void* raw_alloc(std::size_t bytes) = 0;
  virtual void raw_free(void* p) = 0;
  virtual void synchronize() = 0;
  virtual std::unique_ptr<Timer> make_timer() = 0;

  /// @brief Host floats -> `n` storage elements (rounded to the dtype).
  virtual void upload(const float* host, void* dst, std::int64_t n) = 0;
  /// @brief `n` storage elements -> host floats.
  virtual void download(const void* src, float* host, std::int64_t n) = 0;
  virtual void upload_bytes(const void* host, void* dst, std::size_t bytes) = 0;
  virtual void download_bytes(const void* src, void* host, std::size_t bytes) = 0;
  virtual void copy_bytes(const void* src, void* dst, std::size_t bytes) = 0;
  /// @brief Fills with uniform values in [-scale, scale] from a counter-based hash of
  /// (seed, index): the same values on every backend.
  virtual void fill_uniform(void* dst, std::int64_t n, std::uint64_t seed, float scale) = 0;
  virtual void fill_zero_bytes(void* dst, std::size_t bytes) = 0;

  /// @brief C[M,N] = alpha * op(A) op(B) + beta * C, row-major, fp32 accumulation.
  virtual void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                    const void* A, int lda, const void* B, int ldb, float beta, void* C,
                    int ldc) = 0;
  /// @brief `batch` GEMMs, matrix i at element offsets i*stride_{a,b,c}.
  virtual void gemm_batched(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const void* A, int lda, std::int64_t stride_a, const void* B,
                            int ldb, std::int64_t stride_b, float beta, void* C, int ldc,
                            std::int64_t stride_c, int batch) = 0;

  /// @brief y = LN(x) * gamma + beta per row; saves mean and 1/std (fp32).
  virtual void layernorm_forward(const void* x, const void* gamma, const void* beta, void* y,
                                 float* mean, float* rstd, int rows, int cols) = 0;
  /// @brief dx (+)= d LN / dx . dy; `accumulate` adds into dx.
  virtual void layernorm_backward_input(const void* dy, const void* x, const void* gamma,
                                        const float* mean, const float* rstd, void* dx, int rows,
                                        int cols, bool accumulate) = 0;
  /// @brief dgamma += sum_rows dy * xhat; dbeta += sum_rows dy.
  virtual void layernorm_backward_weight(const void* dy, const void* x, const float* mean,
                                         const float* rstd, void* dgamma, void* dbeta, int rows,
                                         int cols) = 0;
  /// @brief y[r, c] += bias[c].
  virtual void bias_add(void* y, const void* bias, int rows, int cols) = 0;
  /// @brief dbias[c] += sum_r dy[r, c].
  virtual void bias_backward(const void* dy, void* dbias, int rows, int cols) = 0;
  /// @brief tanh-approximation GeLU.
  virtual void gelu_forward(const void* x, void* y, std::int64_t n) = 0;
  virtual void gelu_backward(const void* dy, const void* x, void* dx, std::int64_t n) = 0;
  /// @brief In place over `rows` rows of length `cols`: row r is query (r % cols) and
  /// keeps keys 0..query (causal); x <- softmax(x) (scale already applied by the GEMM).
  virtual void softmax_causal_forward(void* x, std::int64_t rows, int cols) = 0;
  /// @brief In place: dP <- P * (dP - sum(P*dP)) * scale.
  virtual void softmax_backward(const void* P, void* dP, std::int64_t rows, int cols,
                                float scale) = 0;
  /// @brief y = x * mask / (1-p), mask[i] = hash(seed, i) >= p; writes the mask.
  virtual void dropout_forward(const void* x, void* y, std::uint8_t* mask, std::int64_t n,
                               float p, std::uint64_t seed) = 0;
  virtual void dropout_backward(const void* dy, const std::uint8_t* mask, void* dx,
                                std::int64_t n, float p) = 0;
  /// @brief out = a + b (out may alias a or b).
  virtual void residual_add(const void* a, const void* b, void* out, std::int64_t n) = 0;
  /// @brief y[t, :] = table[ids[t], :] + pos[t % seq, :]; `pos` null: no position table
  /// (rotary models), y[t, :] = table[ids[t], :].
  virtual void embedding_forward(const std::int32_t* ids, const void* table, const void* pos,
                                 void* y, int tokens, int seq, int hidden) = 0;
  /// @brief dtable[ids[t], :] += dy[t, :]; dpos[t % seq, :] += dy[t, :] unless dpos is null.
  virtual void embedding_backward(const std::int32_t* ids, const void* dy, void* dtable,
                                  void* dpos, int tokens, int seq, int hidden) = 0;
  /// @brief Per row: logits <- softmax(logits) in place, loss[r] = -log p[label].
  virtual void cross_entropy_forward(void* logits, const std::int32_t* labels, float* loss,
                                     int rows, int vocab) = 0;
  /// @brief In place: probs <- (probs - onehot(label)) * scale.
  virtual void cross_entropy_backward(void* probs, const std::int32_t* labels, int rows,
                                      int vocab, float scale) = 0;

  // ---- Llama block (issue 13 item 2): RMSNorm, rotary positions, SwiGLU. Grouped-query
  // attention needs no kernel of its own: gemm_batched over the key/value heads, one call
  // per query head of a group (layer_llama.cpp).

  /// @brief y = x / rms(x) * gamma per row, rms = sqrt(mean(x^2) + 1e-5) (Llama-2's
  /// eps); saves 1/rms (fp32) per row.
  virtual void rmsnorm_forward(const void* x, const void* gamma, void* y, float* rstd, int rows,
                               int cols) = 0;
  /// @brief dx (+)= rstd * (g - xhat * mean(g * xhat)) with g = dy * gamma, xhat = x * rstd;
  /// `accumulate` adds into dx.
  virtual void rmsnorm_backward_input(const void* dy, const void* x, const void* gamma,
                                      const float* rstd, void* dx, int rows, int cols,
                                      bool accumulate) = 0;
  /// @brief dgamma += sum_rows dy * x * rstd.
  virtual void rmsnorm_backward_weight(const void* dy, const void* x, const float* rstd,
                                       void* dgamma, int rows, int cols) = 0;
  /// @brief Rotary position embedding in place, rotate-half convention (HF Llama,
  /// Megatron): `rows` rows of `row_stride` elements, row r at position r % seq; its first
  /// `heads` x `head_dim` elements are `heads` heads, each pair (i, i + head_dim/2) turned
  /// by angle pos * theta^(-2i/head_dim): x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin.
  /// Angles in fp32 (inv_freq = theta^(-2i/d), then pos * inv_freq), as HF computes them.
  virtual void rotary_forward(void* x, std::int64_t rows, int seq, int heads, int head_dim,
                              int row_stride, float theta) = 0;
  /// @brief The gradient of rotary_forward in place: the inverse rotation (angle negated).
  virtual void rotary_backward(void* dx, std::int64_t rows, int seq, int heads, int head_dim,
                               int row_stride, float theta) = 0;
  /// @brief y[r, c] = silu(gu[r, c]) * gu[r, cols + c]: `gu` is the fused gate|up
  /// projection output [rows, 2 cols] (Megatron's linear_fc1 with gated_linear_unit).
  virtual void swiglu_forward(const void* gu, void* y, int rows, int cols) = 0;
  /// @brief dgu = [dy * u * silu'(g) | dy * silu(g)] over the same [rows, 2 cols] layout.
  virtual void swiglu_backward(const void* dy, const void* gu, void* dgu, int rows, int cols) = 0;
};

/// @brief A caching allocator over a backend that accounts the bytes in use, the way
/// framework allocators do: activation memory is measured from its counters. Safe to
/// share between threads (the replay's transfers allocate on the receiving device).
class Allocator {
 public:
  explicit Allocator(Backend& backend) : backend_(backend) {}
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;
  void* allocate(std::size_t bytes);
  void release(void* p, std::size_t bytes);
  [[nodiscard]] std::int64_t in_use() const {
    const std::lock_guard lock(mutex_);
    return in_use_;
  }
  [[nodiscard]] std::int64_t peak() const {
    const std::lock_guard lock(mutex_);
    return peak_;
  }
  void reset_peak() {
    const std::lock_guard lock(mutex_);
    peak_ = in_use_;
  }
  Backend& backend() { return backend_; }

 private:
  Backend& backend_;
  mutable std::mutex mutex_;
  std::multimap<std::size_t, void*> cache_;
  std::int64_t in_use_{0};
  std::int64_t peak_{0};
};

/// @brief A buffer from an Allocator, returned on destruction.
class Tensor {
 public:
  Tensor() = default;
  Tensor(Allocator& a, std::int64_t elements, int element_bytes);
  ~Tensor() { reset(); }
  Tensor(Tensor&& o) noexcept { *this = std::move(o); }
  Tensor& operator=(Tensor&& o) noexcept;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  void reset();
  [[nodiscard]] void* data() const { return ptr_; }
  /// @brief Pointer to element `offset`.
  [[nodiscard]] void* at(std::int64_t offset) const {
    return static_cast<char*>(ptr_) + offset * element_bytes_;
  }
  [[nodiscard]] std::int64_t elements() const { return elements_; }
  [[nodiscard]] std::size_t bytes() const { return static_cast<std::size_t>(elements_ * element_bytes_); }
  template <class T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  Allocator* alloc_{nullptr};
  void* ptr_{nullptr};
  std::int64_t elements_{0};
  int element_bytes_{0};
};

/// @brief The counter-based uniform in [0,1) both backends use (splitmix64 finaliser).
inline float hash_uniform(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ULL + i + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

/// @brief The CPU backend (fp32 storage; CBLAS GEMM when built with OpenBLAS).
std::unique_ptr<Backend> make_cpu_backend(Dtype dtype);
/// @brief Threads each CBLAS call of the CPU backend may use (OpenBLAS's own setting, for
/// the whole process): the replay runs one device per thread with 1.
void set_cpu_blas_threads(int threads);
/// @brief Makes a backend for a storage dtype.
using BackendFactory = std::unique_ptr<Backend> (*)(Dtype);
/// @brief Adds a backend to the table (the CUDA one registers itself when built).
void register_backend(const std::string& name, BackendFactory factory);
/// @brief Names of the backends compiled in ("cpu", and "cuda" when built with nvcc).
std::vector<std::string> backend_names();
/// @brief The storage dtype a backend uses when the user names none: fp32 for the CPU
/// backend (the only one it stores), bf16 for a GPU backend (what users train with).
Dtype default_dtype(const std::string& backend_name);
/// @brief Creates a backend by name; throws NoDeviceError when it has no device,
/// std::invalid_argument for an unknown name or unsupported dtype.
std::unique_ptr<Backend> make_backend(const std::string& name, Dtype dtype);

}  // namespace ppsim::cal
