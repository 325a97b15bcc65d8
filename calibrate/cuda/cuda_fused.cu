// The CUDA backend's fused ops (fused.h): kernels_fused.cuh's KernelFusedOps (attention,
// bias-dropout-add; shared with the CPU emulator) plus the cuBLASLt linear ops.
//
// Linear + bias + GeLU: one cuBLASLt matmul with CUBLASLT_EPILOGUE_GELU_AUX_BIAS (the
// auxiliary output is the pre-activation); its backward one matmul with
// CUBLASLT_EPILOGUE_DGELU_BGRAD. Where cuBLASLt offers no algorithm for a shape or dtype
// (or the auxiliary leading dimension is not a multiple of 8) the backend's GEMM and its
// bias/GeLU kernels run instead, and a line on stderr says so once.
#include <cublasLt.h>

#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>

#include "cuda_check.h"
#include "cuda_chunk.h"
#include "cuda_fused.h"
#include "device_scratch.h"
#include "kernels_fused.cuh"

namespace ppsim::cal {
namespace {

inline void lt_check(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw CublasError(s, std::string(file) + ":" + std::to_string(line) + ": " + expr + ": status " +
                             std::to_string(static_cast<int>(s)));
}
#define LT_CHECK(expr) lt_check((expr), #expr, __FILE__, __LINE__)

template <class T> cudaDataType_t lt_type();
template <> cudaDataType_t lt_type<float>() { return CUDA_R_32F; }
template <> cudaDataType_t lt_type<__half>() { return CUDA_R_16F; }
template <> cudaDataType_t lt_type<__nv_bfloat16>() { return CUDA_R_16BF; }

/// One cuBLASLt matmul with an epilogue, its descriptors and the heuristic's algorithm,
/// made once per (epilogue, m, n, k) and reused; `ok` false when cuBLASLt has none.
struct LtPlan {
  cublasLtMatmulDesc_t desc{};
  cublasLtMatrixLayout_t a{}, b{}, d{};
  cublasLtMatmulAlgo_t algo{};
  bool ok{false};
};

template <class T>
class CudaFusedOps final : public kern::KernelFusedOps<T> {
  using Base = kern::KernelFusedOps<T>;
  using Slot = typename Base::Slot;
  using Base::b_;
  using Base::stream_;

 public:
  CudaFusedOps(cudaStream_t stream, Backend& backend, Dtype dtype)
      : Base(stream, backend, make_cuda_chunk_kernels(dtype, stream)) {
    LT_CHECK(cublasLtCreate(&lt_));
    CUDA_CHECK(cudaMalloc(&lt_ws_, kLtWorkspace));
  }
  ~CudaFusedOps() override {
    for (auto& [key, plan] : plans_) {
      if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
      for (auto* l : {plan.a, plan.b, plan.d})
        if (l) cublasLtMatrixLayoutDestroy(l);
    }
    cudaFree(lt_ws_);
    cublasLtDestroy(lt_);
  }
  CudaFusedOps(const CudaFusedOps&) = delete;
  CudaFusedOps& operator=(const CudaFusedOps&) = delete;

  // Row-major D[rows, out] = x W^T is column-major D^T[out, rows] = W^T(op T on the
  // column-major [in, out] view of W) x^T: m = out, n = rows, k = in; the bias runs
  // along m, as cuBLASLt's epilogue wants.
  void linear_bias_gelu_forward(const void* x, const void* weight, const void* bias, void* pre, void* y, int rows,
                                int out, int in) override {
    LtPlan& plan = plan_for(CUBLASLT_EPILOGUE_GELU_AUX_BIAS, CUBLAS_OP_T, out, rows, in, in, in);
    if (!plan.ok) return Base::linear_bias_gelu_forward(x, weight, bias, pre, y, rows, out, in);
    set_pointers(plan, bias, pre);
    run(plan, weight, x, y);
  }

  // Row-major dpre[rows, out] = dy[rows, n] W[n, out] is column-major dpre^T[out, rows]
  // = W^T([out, n] view, op N) dy^T([n, rows] view): m = out, n = rows, k = n. The
  // epilogue multiplies by GeLU'(pre) and writes the bias gradient (sum over rows) into
  // a scratch vector that is then added into dbias (the layer accumulates).
  void linear_dgelu_backward(const void* dy, const void* weight, const void* pre, void* dpre, void* dbias, int rows,
                             int out, int n) override {
    LtPlan& plan = plan_for(CUBLASLT_EPILOGUE_DGELU_BGRAD, CUBLAS_OP_N, out, rows, n, out, n);
    if (!plan.ok) return Base::linear_dgelu_backward(dy, weight, pre, dpre, dbias, rows, out, n);
    T* db = Base::template buffer<T>(Slot::bias, static_cast<std::size_t>(out));
    set_pointers(plan, db, pre);
    run(plan, weight, dy, dpre);
    kern::k_add_into<T><<<kern::grid_of(out, 256), 256, 0, stream_>>>(static_cast<T*>(dbias), db, out);
    CUDA_CHECK_LAUNCH();
  }

 private:
  static constexpr std::size_t kLtWorkspace = 32u << 20;
  /// The scratch buffers (kernels_fused.cuh), device memory grown on demand.
  void* scratch(Slot slot, std::size_t bytes) override {
    return scratch_[static_cast<int>(slot)].get(bytes, stream_);
  }
  /// Column-major D[m, n] = op_a(A) B with A [k, m] (op T, lda = k) or [m, k] (op N,
  /// lda = m), B [k, n] (ldb = k), fp32 compute, the given epilogue.
  LtPlan& plan_for(cublasLtEpilogue_t epi, cublasOperation_t op_a, int m, int n, int k, int lda, int ldb) {
    const auto key = std::make_tuple(static_cast<int>(epi), m, n, k);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    LtPlan& plan = plans_[key];
    const cudaDataType_t t = lt_type<T>();
    LT_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t op_b = CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    const std::int64_t aux_ld = m;
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld));
    LT_CHECK(cublasLtMatrixLayoutCreate(&plan.a, t, op_a == CUBLAS_OP_T ? k : m, op_a == CUBLAS_OP_T ? m : k, lda));
    LT_CHECK(cublasLtMatrixLayoutCreate(&plan.b, t, k, n, ldb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&plan.d, t, m, n, m));
    if (m % 8 != 0) return report_fallback(plan, epi, m, n, k, "the GeLU input's leading dimension is not a multiple of 8");
    cublasLtMatmulPreference_t pref{};
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const std::size_t ws = kLtWorkspace;
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(lt_, plan.desc, plan.a, plan.b, plan.d, plan.d, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) return report_fallback(plan, epi, m, n, k, "no cuBLASLt algorithm");
    plan.algo = result.algo;
    plan.ok = true;
    return plan;
  }
  static LtPlan& report_fallback(LtPlan& plan, cublasLtEpilogue_t epi, int m, int n, int k, const char* why) {
    std::fprintf(stderr, "[ppsim-calibrate] fused linear (epilogue %d, m=%d n=%d k=%d): %s; GEMM + plain kernels\n",
                 static_cast<int>(epi), m, n, k, why);
    return plan;
  }
  void set_pointers(LtPlan& plan, const void* bias, const void* aux) {
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux));
  }
  void run(LtPlan& plan, const void* A, const void* B, void* D) {
    const float one = 1.0f, zero = 0.0f;
    LT_CHECK(cublasLtMatmul(lt_, plan.desc, &one, A, plan.a, B, plan.b, &zero, D, plan.d, D, plan.d, &plan.algo,
                            lt_ws_, kLtWorkspace, stream_));
  }

  cublasLtHandle_t lt_{};
  void* lt_ws_{nullptr};
  std::map<std::tuple<int, int, int, int>, LtPlan> plans_;
  DeviceScratch scratch_[3];  // by Slot: stats, bias, work
};

}  // namespace

std::unique_ptr<FusedOps> make_cuda_fused_ops(Dtype dtype, cudaStream_t stream, Backend& backend) {
  switch (dtype) {
    case Dtype::fp32: return std::make_unique<CudaFusedOps<float>>(stream, backend, dtype);
    case Dtype::fp16: return std::make_unique<CudaFusedOps<__half>>(stream, backend, dtype);
    case Dtype::bf16: return std::make_unique<CudaFusedOps<__nv_bfloat16>>(stream, backend, dtype);
  }
  throw std::invalid_argument("unknown dtype");
}

}  // namespace ppsim::cal
