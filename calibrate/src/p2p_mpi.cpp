// MPI send/recv between two ranks (ping-pong; one transfer = half the round trip).
// Built only when CMake finds MPI; run under `mpirun -np 2`.
#include <mpi.h>

#include <stdexcept>
#include <vector>

#include "mpi_session.h"
#include "ppsim/calibrate/p2p.h"

namespace ppsim::cal {

nlohmann::json measure_mpi_sendrecv(const P2POptions& o,
                                    const std::function<void(const std::string&)>& progress,
                                    int* rank_out) {
  MpiSession mpi;
  const int rank = mpi.rank();
  *rank_out = rank;
  if (mpi.size() != 2)
    throw std::invalid_argument("p2p --transport mpi needs exactly 2 ranks (mpirun -np 2), got " +
                                std::to_string(mpi.size()));
  std::vector<char> buf(static_cast<std::size_t>(o.max_bytes), static_cast<char>(rank));
  const int other = 1 - rank;
  auto pingpong = [&](std::int64_t bytes) {
    const int n = static_cast<int>(bytes);
    const double t0 = MPI_Wtime();
    if (rank == 0) {
      MPI_Send(buf.data(), n, MPI_BYTE, other, 0, MPI_COMM_WORLD);
      MPI_Recv(buf.data(), n, MPI_BYTE, other, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(buf.data(), n, MPI_BYTE, other, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), n, MPI_BYTE, other, 0, MPI_COMM_WORLD);
    }
    return (MPI_Wtime() - t0) * 1e3 / 2.0;
  };
  return drive_pingpong(MPI_COMM_WORLD, "mpi_sendrecv", 0, 1, o, pingpong, progress);
}

}  // namespace ppsim::cal
