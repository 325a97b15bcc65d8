// NCCL: the GPU check, device selection, communicators (over MPI, or one rank alone) and
// device buffers.
#include "nccl_comm.h"

#include "cuda_check.h"
#include "ppsim/calibrate/backend.h"

namespace ppsim::cal {

void require_gpu(const std::string& what) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw NoDeviceError(what + " needs an NVIDIA GPU and driver: cudaGetDeviceCount: " +
                        (e != cudaSuccess ? cudaGetErrorName(e) : "0 devices"));
  }
}

void select_local_device(int local_rank) {
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  if (local_rank >= count)
    throw std::invalid_argument("local rank " + std::to_string(local_rank) + " but this node has " +
                                std::to_string(count) + " GPUs: start one rank per GPU");
  CUDA_CHECK(cudaSetDevice(local_rank));
}

ncclDataType_t nccl_dtype(Dtype d) {
  switch (d) {
    case Dtype::fp32: return ncclFloat32;
    case Dtype::fp16: return ncclFloat16;
    case Dtype::bf16: return ncclBfloat16;
  }
  return ncclFloat32;
}

#ifdef PPSIM_HAVE_MPI
NcclComm::NcclComm(MPI_Comm comm) {
  MPI_Comm_rank(comm, &rank_);
  MPI_Comm_size(comm, &size_);
  ncclUniqueId id;
  if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comm);
  init(id);
}
#endif

NcclComm::NcclComm() {
  ncclUniqueId id;
  NCCL_CHECK(ncclGetUniqueId(&id));
  init(id);
}

void NcclComm::init(const ncclUniqueId& id) {
  NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
  const cudaError_t e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    ncclCommDestroy(comm_);
    CUDA_CHECK(e);
  }
}

NcclComm::~NcclComm() {
  cudaStreamSynchronize(stream_);
  ncclCommDestroy(comm_);
  cudaStreamDestroy(stream_);
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) {
  CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  const cudaError_t e = cudaMemset(ptr_, 0, bytes);
  if (e != cudaSuccess) {
    cudaFree(ptr_);
    CUDA_CHECK(e);
  }
}

DeviceBuffer::~DeviceBuffer() { cudaFree(ptr_); }

}  // namespace ppsim::cal
