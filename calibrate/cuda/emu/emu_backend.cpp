// The "cuda-emu" backend: the CUDA backend's own kernels (kernels_backend.cuh,
// kernels_fused.cuh, kernels_chunk.cuh), with the same launch shapes, run on the CPU by
// the emulator (cuda_emu.h). GEMMs, which the GPU leaves to cuBLAS, run on the CPU
// backend in fp32 and are rounded to the storage dtype, as cuBLAS's fp32 accumulation
// is; the fused linear ops take the unfused path (cuBLASLt has no emulation). So
// `ppsim-calibrate check --backend cuda-emu` compares every one of our CUDA kernels
// with the CPU reference, in CI, without a GPU. It is slow (one fiber per CUDA thread)
// and times nothing a GPU does: for checking, never for profiles.
#define PPSIM_CUDA_EMU 1

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "../kernels_backend.cuh"
#include "../kernels_chunk.cuh"
#include "../kernels_fused.cuh"

namespace ppsim::cal {
namespace {

using namespace kern_emu;

template <class T>
class EmuFusedOps final : public KernelFusedOps<T> {
  using Base = KernelFusedOps<T>;
  using Slot = typename Base::Slot;

 public:
  explicit EmuFusedOps(Backend& backend) : Base(nullptr, backend, std::make_unique<KernelChunkKernels<T>>(nullptr)) {}

 private:
  void* scratch(Slot slot, std::size_t bytes) override {
    auto& v = scratch_[static_cast<int>(slot)];  // operator new's alignment (16) suffices
    if (v.size() < bytes) v.resize(bytes, 0xFF);  // new bytes NaN, as raw_alloc's
    return v.data();
  }
  std::vector<unsigned char> scratch_[3];  // by Slot
};

template <class T>
class EmuBackend final : public KernelBackend<T> {
 public:
  explicit EmuBackend(Dtype dtype) : dtype_(dtype), cpu_(make_cpu_backend(Dtype::fp32)) {}

  [[nodiscard]] std::string name() const override { return "cuda-emu"; }
  [[nodiscard]] Dtype dtype() const override { return dtype_; }
  [[nodiscard]] DeviceInfo device_info() const override {
    DeviceInfo d;
    d.name = "CUDA kernels on the CPU emulator (checking only)";
    d.clock = "std::chrono::steady_clock";
    d.blas = "CPU backend GEMM, rounded to the storage dtype";
    return d;
  }
  FusedOps* fused() override {
    if (!fused_) fused_ = std::make_unique<EmuFusedOps<T>>(*this);
    return fused_.get();
  }
  // Exactly `bytes` (256-aligned, as cudaMalloc's), so AddressSanitizer sees a kernel
  // that reads or writes one element past its buffer; filled with NaN bytes, as a GPU's
  // fresh memory holds garbage, so code that reads what nobody wrote shows.
  void* raw_alloc(std::size_t bytes) override {
    void* p = ::operator new(bytes, std::align_val_t{256});
    std::memset(p, 0xFF, bytes);
    return p;
  }
  void raw_free(void* p) override { ::operator delete(p, std::align_val_t{256}); }
  void synchronize() override {}
  std::unique_ptr<Timer> make_timer() override { return make_steady_timer(); }

  void upload(const float* host, void* dst, std::int64_t n) override {
    T* d = static_cast<T*>(dst);
    for (std::int64_t i = 0; i < n; ++i) d[i] = host_from_f<T>(host[i]);
  }
  void download(const void* src, float* host, std::int64_t n) override {
    const T* s = static_cast<const T*>(src);
    for (std::int64_t i = 0; i < n; ++i) host[i] = host_to_f(s[i]);
  }
  void upload_bytes(const void* host, void* dst, std::size_t bytes) override { std::memmove(dst, host, bytes); }
  void download_bytes(const void* src, void* host, std::size_t bytes) override { std::memmove(host, src, bytes); }
  void copy_bytes(const void* src, void* dst, std::size_t bytes) override { std::memmove(dst, src, bytes); }
  void fill_zero_bytes(void* dst, std::size_t bytes) override { std::memset(dst, 0, bytes); }

  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int lda, const void* B, int ldb,
            float beta, void* C, int ldc) override {
    gemm_batched(ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
  }
  void gemm_batched(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int lda, std::int64_t sa,
                    const void* B, int ldb, std::int64_t sb, float beta, void* C, int ldc, std::int64_t sc,
                    int batch) override {
    if constexpr (std::is_same_v<T, float>) {
      cpu_->gemm_batched(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
    } else {  // fp32 copies of the operands, fp32 GEMM, C rounded back: cuBLAS's fp32 accumulation
      const std::int64_t na = ta ? extent(K, M, lda) : extent(M, K, lda);
      const std::int64_t nb = tb ? extent(N, K, ldb) : extent(K, N, ldb);
      const std::int64_t nc = extent(M, N, ldc);
      std::vector<float> a(static_cast<std::size_t>(na)), b(static_cast<std::size_t>(nb)), c(static_cast<std::size_t>(nc));
      for (int i = 0; i < batch; ++i) {
        download(static_cast<const T*>(A) + i * sa, a.data(), na);
        download(static_cast<const T*>(B) + i * sb, b.data(), nb);
        T* ci = static_cast<T*>(C) + i * sc;
        download(ci, c.data(), nc);
        cpu_->gemm(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
        for (int r = 0; r < M; ++r)  // only the [M, N] block: the padding between rows is left alone
          for (int col = 0; col < N; ++col)
            ci[static_cast<std::int64_t>(r) * ldc + col] = host_from_f<T>(c[static_cast<std::size_t>(r) * ldc + col]);
      }
    }
  }

 private:
  /// Elements a row-major [rows, cols] operand with leading dimension ld spans (its last
  /// row only to its end: an operand may be a view that ends there).
  static std::int64_t extent(int rows, int cols, int ld) { return static_cast<std::int64_t>(rows - 1) * ld + cols; }
  float* zeroed_workspace(std::size_t floats) override {
    ws_.assign(floats, 0.0f);
    return ws_.data();
  }

  Dtype dtype_;
  std::unique_ptr<Backend> cpu_;
  std::vector<float> ws_;
  std::unique_ptr<FusedOps> fused_;
};

std::unique_ptr<Backend> make_emu(Dtype d) {
  switch (d) {
    case Dtype::fp32: return std::make_unique<EmuBackend<float>>(d);
    case Dtype::fp16: return std::make_unique<EmuBackend<__half>>(d);
    case Dtype::bf16: return std::make_unique<EmuBackend<__nv_bfloat16>>(d);
  }
  throw std::invalid_argument("unknown dtype");
}

}  // namespace

void register_cuda_emu_backend() { register_backend("cuda-emu", &make_emu); }

}  // namespace ppsim::cal
