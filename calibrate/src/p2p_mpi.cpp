// MPI send/recv between two ranks (ping-pong; one transfer = half the round trip).
// Built only when CMake finds MPI; run under `mpirun -np 2`.
#include <mpi.h>

#include <stdexcept>
#include <vector>

#include "ppsim/calibrate/p2p.h"

namespace ppsim::cal {

nlohmann::json measure_mpi_sendrecv(const P2POptions& o,
                                    const std::function<void(const std::string&)>& progress,
                                    int* rank_out) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  *rank_out = rank;
  if (size != 2) {
    MPI_Finalize();
    throw std::invalid_argument("p2p --transport mpi needs exactly 2 ranks (mpirun -np 2), got " +
                                std::to_string(size));
  }
  std::vector<char> buf(static_cast<std::size_t>(o.max_bytes), static_cast<char>(rank));
  auto pingpong = [&](std::int64_t bytes) {
    const int n = static_cast<int>(bytes);
    const double t0 = MPI_Wtime();
    if (rank == 0) {
      MPI_Send(buf.data(), n, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
      MPI_Recv(buf.data(), n, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(buf.data(), n, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), n, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
    }
    return (MPI_Wtime() - t0) * 1e3 / 2.0;
  };
  // Rank 0 drives: before each ping-pong it tells rank 1 the size (-1: stop).
  nlohmann::json link;
  if (rank == 0) {
    auto transfer = [&](std::int64_t bytes) {
      long long cmd[1] = {bytes};
      MPI_Send(cmd, 1, MPI_LONG_LONG, 1, 1, MPI_COMM_WORLD);
      return pingpong(bytes);
    };
    link = measure_link_curve("mpi_sendrecv", 0, 1, o, transfer, progress);
    long long stop[1] = {-1};
    MPI_Send(stop, 1, MPI_LONG_LONG, 1, 1, MPI_COMM_WORLD);
  } else {
    for (;;) {
      long long cmd[1];
      MPI_Recv(cmd, 1, MPI_LONG_LONG, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (cmd[0] < 0) break;
      pingpong(cmd[0]);
    }
  }
  MPI_Finalize();
  return link;
}

}  // namespace ppsim::cal
