// NCCL send/recv ping-pong between world rank 0 and a peer (one rank per GPU, under
// mpirun), timed with CUDA events; one transfer = half the round trip, as for MPI.
#include <string>

#include "../src/mpi_session.h"
#include "cuda_check.h"
#include "nccl_comm.h"
#include "ppsim/calibrate/p2p.h"

namespace ppsim::cal {

namespace {

// The ping-pong over the pair's NCCL communicator: pair rank 0 sends then receives,
// the other receives then sends; returns half the round trip (ms) on pair rank 0.
// "nccl_intra_node" when both ranks run on one host (MPI_Get_processor_name), else
// "nccl_inter_node": the kind a config names (cluster.intra_link / inter_link).
std::string pair_kind(MPI_Comm pair) {
  char mine[MPI_MAX_PROCESSOR_NAME] = {}, theirs[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0, rank = 0;
  MPI_Get_processor_name(mine, &len);
  MPI_Comm_rank(pair, &rank);
  MPI_Sendrecv(mine, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 1 - rank, 2, theirs, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 1 - rank,
               2, pair, MPI_STATUS_IGNORE);
  return std::string(mine) == std::string(theirs) ? "nccl_intra_node" : "nccl_inter_node";
}

nlohmann::json pingpong_over(MPI_Comm pair, int peer, const P2POptions& o,
                             const std::function<void(const std::string&)>& progress) {
  const std::string kind = pair_kind(pair);
  NcclComm nccl(pair);
  DeviceBuffer send(static_cast<std::size_t>(o.max_bytes)), recv(static_cast<std::size_t>(o.max_bytes));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  const int other = 1 - nccl.rank();
  auto pingpong = [&](std::int64_t bytes) {
    const auto n = static_cast<std::size_t>(bytes);
    CUDA_CHECK(cudaEventRecord(start, nccl.stream()));
    if (nccl.rank() == 0) {
      NCCL_CHECK(ncclSend(send.get(), n, ncclInt8, other, nccl.comm(), nccl.stream()));
      NCCL_CHECK(ncclRecv(recv.get(), n, ncclInt8, other, nccl.comm(), nccl.stream()));
    } else {
      NCCL_CHECK(ncclRecv(recv.get(), n, ncclInt8, other, nccl.comm(), nccl.stream()));
      NCCL_CHECK(ncclSend(send.get(), n, ncclInt8, other, nccl.comm(), nccl.stream()));
    }
    CUDA_CHECK(cudaEventRecord(stop, nccl.stream()));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return static_cast<double>(ms) / 2.0;
  };
  nlohmann::json link;
  try {
    link = drive_pingpong(pair, kind, 0, peer, o, pingpong, progress);
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return link;
}

}  // namespace

nlohmann::json measure_nccl_sendrecv(const P2POptions& o, int peer,
                                     const std::function<void(const std::string&)>& progress, int* rank_out) {
  require_gpu("p2p --transport nccl");
  MpiSession mpi;
  *rank_out = mpi.rank();
  if (mpi.size() < 2 || peer < 1 || peer >= mpi.size())
    throw std::invalid_argument("p2p --transport nccl: --peer " + std::to_string(peer) + " needs 1 <= peer < ranks (" +
                                std::to_string(mpi.size()) + "; run under mpirun, one rank per GPU)");
  select_local_device(mpi.local_rank());
  const bool in_pair = mpi.rank() == 0 || mpi.rank() == peer;
  MPI_Comm pair;
  MPI_Comm_split(MPI_COMM_WORLD, in_pair ? 0 : MPI_UNDEFINED, mpi.rank() == 0 ? 0 : 1, &pair);
  if (!in_pair) return nullptr;
  nlohmann::json link;
  try {
    link = pingpong_over(pair, peer, o, progress);
  } catch (...) {
    MPI_Comm_free(&pair);
    throw;
  }
  MPI_Comm_free(&pair);
  if (mpi.rank() == 0) {
    link["peer_rank"] = peer;
    link["note"] = "NCCL ncclSend/ncclRecv ping-pong, CUDA events; one transfer = half the round trip";
  }
  return link;
}

}  // namespace ppsim::cal
