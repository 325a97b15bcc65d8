// MPI start and end, communicator split, the ping-pong driver and the ranks' agreement
// (RankSync) shared by the host MPI and the NCCL transports.
#include "mpi_session.h"

#include <stdexcept>


namespace ppsim::cal {

MpiSession::MpiSession() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

MPI_Comm split_group(const GroupLayout& layout, int world_rank) {
  MPI_Comm group;
  MPI_Comm_split(MPI_COMM_WORLD, layout.group_of(world_rank), layout.rank_in_group(world_rank), &group);
  return group;
}

nlohmann::json drive_pingpong(MPI_Comm pair, const std::string& kind, int src, int dst, const P2POptions& o,
                              const std::function<double(std::int64_t)>& pingpong,
                              const std::function<void(const std::string&)>& progress) {
  int rank = 0;
  MPI_Comm_rank(pair, &rank);
  if (rank == 0) {
    auto transfer = [&](std::int64_t bytes) {
      long long cmd[1] = {bytes};
      MPI_Send(cmd, 1, MPI_LONG_LONG, 1, 1, pair);
      return pingpong(bytes);
    };
    nlohmann::json link = measure_link_curve(kind, src, dst, o, transfer, progress);
    long long stop[1] = {-1};
    MPI_Send(stop, 1, MPI_LONG_LONG, 1, 1, pair);
    return link;
  }
  for (;;) {
    long long cmd[1];
    MPI_Recv(cmd, 1, MPI_LONG_LONG, 0, 1, pair, MPI_STATUS_IGNORE);
    if (cmd[0] < 0) break;
    pingpong(cmd[0]);
  }
  return nullptr;
}

RankSync mpi_world_sync() {
  RankSync sync;
  MPI_Comm_rank(MPI_COMM_WORLD, &sync.rank);
  sync.barrier = [] { MPI_Barrier(MPI_COMM_WORLD); };
  sync.slowest = [](double mine) {
    double slowest = 0;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return slowest;
  };
  return sync;
}

}  // namespace ppsim::cal
