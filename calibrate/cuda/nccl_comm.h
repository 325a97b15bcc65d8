#pragma once
// NCCL (private to calibrate/cuda): NCCL_CHECK, the GPU check made before MPI starts,
// this rank's device (its local rank), and an NCCL communicator over an MPI one (the
// unique id broadcast over MPI) or, without MPI, over this process alone. Built with NCCL
// and CUDA; the MPI communicator with MPI only.
#include <cuda_runtime.h>
#ifdef PPSIM_HAVE_MPI
#include <mpi.h>
#endif
#include <nccl.h>

#include <stdexcept>
#include <string>

#include "ppsim/calibrate/model.h"

namespace ppsim::cal {

/// @brief A failed NCCL call.
class NcclError : public std::runtime_error {
 public:
  NcclError(ncclResult_t code, const std::string& what) : std::runtime_error(what), code(code) {}
  ncclResult_t code;
};

inline void nccl_check(ncclResult_t r, const char* expr, const char* file, int line) {
  if (r != ncclSuccess)
    throw NcclError(r, std::string(file) + ":" + std::to_string(line) + ": " + expr + ": " + ncclGetErrorString(r));
}

/// @brief Throws NoDeviceError naming `what` when no GPU or driver answers.
void require_gpu(const std::string& what);

/// @brief Selects GPU `local_rank` (one rank per GPU); throws std::invalid_argument when
/// the node has fewer GPUs than ranks.
void select_local_device(int local_rank);

/// @brief ncclDataType_t of a dtype.
ncclDataType_t nccl_dtype(Dtype d);

/// @brief An NCCL communicator with its stream.
class NcclComm {
 public:
#ifdef PPSIM_HAVE_MPI
  /// @brief Over every rank of `comm` (ncclCommInitRank; rank 0 of `comm` makes the
  /// unique id and broadcasts it).
  explicit NcclComm(MPI_Comm comm);
#endif
  /// @brief Over this process alone: a one-rank communicator on the current GPU.
  NcclComm();
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  [[nodiscard]] ncclComm_t comm() const { return comm_; }
  [[nodiscard]] cudaStream_t stream() const { return stream_; }
  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }

 private:
  void init(const ncclUniqueId& id);  ///< ncclCommInitRank(size_, rank_) and the stream
  ncclComm_t comm_{nullptr};
  cudaStream_t stream_{nullptr};
  int rank_{0}, size_{1};
};

/// @brief Device buffer freed on scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  [[nodiscard]] void* get() const { return ptr_; }

 private:
  void* ptr_{nullptr};
};

}  // namespace ppsim::cal

#define NCCL_CHECK(expr) ::ppsim::cal::nccl_check((expr), #expr, __FILE__, __LINE__)
