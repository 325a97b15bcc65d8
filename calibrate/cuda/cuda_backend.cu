// The CUDA backend: cuBLAS GEMMs (fp32 accumulation) with the model's real shapes and
// our own kernels for layer norm, softmax, GeLU, bias, residual, dropout, embedding and
// cross-entropy, and the Llama block's RMSNorm, rotary and SwiGLU. Storage dtype is a
// template parameter (float, __half, __nv_bfloat16). The kernels and their launches are
// kernels_backend.cuh (KernelBackend), shared with the CPU emulator.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstring>
#include <memory>
#include <vector>

#include "cuda_check.h"
#include "cuda_fused.h"
#include "device_scratch.h"
#include "green.h"
#include "kernels_backend.cuh"
#include "ppsim/calibrate/backend.h"

namespace ppsim::cal {
namespace {

using kern::host_from_f;
using kern::host_to_f;

template <class T> cudaDataType_t cuda_type();
template <> cudaDataType_t cuda_type<float>() { return CUDA_R_32F; }
template <> cudaDataType_t cuda_type<__half>() { return CUDA_R_16F; }
template <> cudaDataType_t cuda_type<__nv_bfloat16>() { return CUDA_R_16BF; }

class EventTimer final : public Timer {
 public:
  explicit EventTimer(cudaStream_t s) : stream_(s) {
    CUDA_CHECK(cudaEventCreate(&a_));
    CUDA_CHECK(cudaEventCreate(&b_));
  }
  ~EventTimer() override {
    cudaEventDestroy(a_);
    cudaEventDestroy(b_);
  }
  void start() override { CUDA_CHECK(cudaEventRecord(a_, stream_)); }
  void stop() override { CUDA_CHECK(cudaEventRecord(b_, stream_)); }
  double elapsed_ms() override {
    CUDA_CHECK(cudaEventSynchronize(b_));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a_, b_));
    return ms;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t a_{}, b_{};
};

template <class T>
class CudaBackend final : public kern::KernelBackend<T> {
  using kern::KernelBackend<T>::stream_;

 public:
  /// On GPU `device` with its own stream, or on `stream` when one is given (the
  /// replay's stream of a GPU or of a green-context SM partition; not owned).
  explicit CudaBackend(Dtype dtype, int device = 0, cudaStream_t stream = nullptr)
      : dtype_(dtype), device_(device), owns_stream_(stream == nullptr) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      cudaGetLastError();
      throw NoDeviceError(std::string("the cuda backend needs an NVIDIA GPU and driver: cudaGetDeviceCount: ") +
                          (e != cudaSuccess ? cudaGetErrorName(e) : "0 devices") + " (" +
                          (e != cudaSuccess ? cudaGetErrorString(e) : "none visible") + ")");
    }
    // With a stream given the caller has made its GPU (or green context) current; setting
    // the device would switch a partition's thread back to the primary context.
    if (owns_stream_) CUDA_CHECK(cudaSetDevice(device));
    const int partitions = owns_stream_ ? sm_partitions_from_env() : 0;
    if (partitions > 0) {  // measure on the first of p SM partitions, as the replay's devices run
      partition_ = make_sm_partitions(partitions).front();
      bind_sm_partition(partition_);
      stream_ = partition_.stream;
      owns_stream_ = false;
    } else if (owns_stream_) {
      CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    } else {
      stream_ = stream;
    }
    CUBLAS_CHECK(cublasCreate(&blas_));
    CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    CUDA_CHECK(cudaMalloc(&blas_ws_, kBlasWorkspace));
    CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_, kBlasWorkspace));
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    fused_.reset();  // before the stream goes
    cudaFree(blas_ws_);
    cublasDestroy(blas_);
    if (owns_stream_) cudaStreamDestroy(stream_);
  }
  [[nodiscard]] std::string name() const override { return "cuda"; }
  [[nodiscard]] Dtype dtype() const override { return dtype_; }
  /// Made on first use: a plain run never creates the cuBLASLt handle and its workspace.
  FusedOps* fused() override {
    if (!fused_) fused_ = make_cuda_fused_ops(dtype_, stream_, *this);
    return fused_.get();
  }
  [[nodiscard]] DeviceInfo device_info() const override {
    DeviceInfo d;
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    d.name = p.name;
    if (partition_.sms > 0)  // a green-context partition: the profile says which share it measured
      d.name += " (SM partition: " + std::to_string(partition_.sms) + " of " + std::to_string(p.multiProcessorCount) + " SMs)";
    d.memory_bytes = static_cast<std::int64_t>(p.totalGlobalMem);
    CUDA_CHECK(cudaGetDeviceCount(&d.count));
    int drv = 0, rt = 0, bl = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    cublasGetVersion(blas_, &bl);
    d.driver = "CUDA driver API " + std::to_string(drv / 1000) + "." + std::to_string(drv % 1000 / 10);
    d.runtime = "CUDA runtime " + std::to_string(rt / 1000) + "." + std::to_string(rt % 1000 / 10);
    d.blas = "cuBLAS " + std::to_string(bl);
    d.compute_capability = std::to_string(p.major) + "." + std::to_string(p.minor);
    d.clock = "CUDA events";
    return d;
  }
  /// On this backend's GPU, whichever thread asks: the replay allocates a transfer's
  /// receive buffer from the sending device's thread. The current device is switched
  /// only when it differs (a thread with a green context current stays on it: all SM
  /// partitions are GPU 0).
  void* raw_alloc(std::size_t bytes) override {
    int current = 0;
    CUDA_CHECK(cudaGetDevice(&current));
    if (current != device_) CUDA_CHECK(cudaSetDevice(device_));
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (current != device_) CUDA_CHECK(cudaSetDevice(current));
    CUDA_CHECK(e);
    return p;
  }
  void raw_free(void* p) override { cudaFree(p); }
  void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  std::unique_ptr<Timer> make_timer() override { return std::make_unique<EventTimer>(stream_); }

  void upload(const float* host, void* dst, std::int64_t n) override {
    std::vector<T> tmp(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) tmp[static_cast<std::size_t>(i)] = host_from_f<T>(host[i]);
    upload_bytes(tmp.data(), dst, tmp.size() * sizeof(T));
  }
  void download(const void* src, float* host, std::int64_t n) override {
    std::vector<T> tmp(static_cast<std::size_t>(n));
    download_bytes(src, tmp.data(), tmp.size() * sizeof(T));
    for (std::int64_t i = 0; i < n; ++i) host[i] = host_to_f(tmp[static_cast<std::size_t>(i)]);
  }
  void upload_bytes(const void* host, void* dst, std::size_t bytes) override {
    CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream_));
    synchronize();
  }
  void download_bytes(const void* src, void* host, std::size_t bytes) override {
    CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  void copy_bytes(const void* src, void* dst, std::size_t bytes) override {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill_zero_bytes(void* dst, std::size_t bytes) override { CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_)); }

  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int lda, const void* B, int ldb,
            float beta, void* C, int ldc) override {
    CUBLAS_CHECK(cublasGemmEx(blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                              B, cuda_type<T>(), ldb, A, cuda_type<T>(), lda, &beta, C, cuda_type<T>(), ldc,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  void gemm_batched(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int lda, std::int64_t sa,
                    const void* B, int ldb, std::int64_t sb, float beta, void* C, int ldc, std::int64_t sc,
                    int batch) override {
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N,
                                            M, K, &alpha, B, cuda_type<T>(), ldb, sb, A, cuda_type<T>(), lda, sa,
                                            &beta, C, cuda_type<T>(), ldc, sc, batch, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT));
  }

  cudaStream_t stream() const { return stream_; }

 private:
  static constexpr std::size_t kBlasWorkspace = 32u << 20;
  /// The fp32 scratch buffer, grown on demand (first use is in warm-up).
  float* zeroed_workspace(std::size_t floats) override {
    void* ws = ws_.get(floats * sizeof(float), stream_);
    CUDA_CHECK(cudaMemsetAsync(ws, 0, floats * sizeof(float), stream_));
    return static_cast<float*>(ws);
  }

  Dtype dtype_;
  int device_{0};  ///< the GPU its memory and (when it owns one) its stream are on
  bool owns_stream_{true};
  SmPartition partition_{};  ///< PPSIM_CUDA_SM_PARTITIONS: the partition measured on (kept for the run)
  cublasHandle_t blas_{};
  void* blas_ws_{nullptr};
  DeviceScratch ws_;  ///< zeroed_workspace's
  std::unique_ptr<FusedOps> fused_;  ///< cuda_fused.cu: flash attention, cuBLASLt epilogues
};

std::unique_ptr<Backend> make_cuda(Dtype d) {
  switch (d) {
    case Dtype::fp32: return std::make_unique<CudaBackend<float>>(d);
    case Dtype::fp16: return std::make_unique<CudaBackend<__half>>(d);
    case Dtype::bf16: return std::make_unique<CudaBackend<__nv_bfloat16>>(d);
  }
  throw std::invalid_argument("unknown dtype");
}

}  // namespace

void register_cuda_backend() { register_backend("cuda", &make_cuda); }

std::unique_ptr<Backend> make_cuda_backend_on(Dtype d, int device, void* stream) {
  auto* s = static_cast<cudaStream_t>(stream);
  switch (d) {
    case Dtype::fp32: return std::make_unique<CudaBackend<float>>(d, device, s);
    case Dtype::fp16: return std::make_unique<CudaBackend<__half>>(d, device, s);
    case Dtype::bf16: return std::make_unique<CudaBackend<__nv_bfloat16>>(d, device, s);
  }
  throw std::invalid_argument("unknown dtype");
}

}  // namespace ppsim::cal
