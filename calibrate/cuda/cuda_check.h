#pragma once
/// @file cuda_check.h
/// @brief CUDA_CHECK / CUBLAS_CHECK: record file, line and the library's error string
/// and throw a typed exception (library code never calls exit()).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ppsim::cal {

/// @brief A failed CUDA runtime call.
class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& what) : std::runtime_error(what), code(code) {}
  cudaError_t code;
};
/// @brief A failed cuBLAS call.
class CublasError : public std::runtime_error {
 public:
  CublasError(cublasStatus_t code, const std::string& what) : std::runtime_error(what), code(code) {}
  cublasStatus_t code;
};

inline void cuda_check(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess)
    throw CudaError(e, std::string(file) + ":" + std::to_string(line) + ": " + expr + ": " +
                           cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}
inline void cublas_check(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw CublasError(s, std::string(file) + ":" + std::to_string(line) + ": " + expr + ": " +
                             cublasGetStatusName(s) + " (" + cublasGetStatusString(s) + ")");
}

}  // namespace ppsim::cal

#define CUDA_CHECK(expr) ::ppsim::cal::cuda_check((expr), #expr, __FILE__, __LINE__)
#define CUBLAS_CHECK(expr) ::ppsim::cal::cublas_check((expr), #expr, __FILE__, __LINE__)
/// After a kernel launch: launch-configuration errors surface here.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
