// MPI start and end, communicator split, the ping-pong driver and the collective sweep
// shared by the host MPI and the NCCL transports.
#include "mpi_session.h"

#include <stdexcept>

#include "ppsim/calibrate/stats.h"

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

CollectiveRun sweep_collectives(const CollectiveOptions& o, const GroupLayout& layout, const std::string& transport,
                                const CollectiveTimer& timer, const std::function<void(const std::string&)>& progress) {
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  const int element = dtype_bytes(o.dtype);
  for (CollectiveOp op : o.ops)
    if (collective_bytes(op, o.min_bytes, layout.size, element) == 0)
      throw std::invalid_argument("--min-bytes " + format_size(o.min_bytes) + ": too small for " +
                                  collective_op_name(op) + " over " + std::to_string(layout.size) + " ranks of " +
                                  dtype_name(o.dtype));
  CollectiveRun run{transport, requested_algorithm(transport), layout, o.dtype, o.iters, o.warmup, {}};
  for (CollectiveOp op : o.ops) {
    std::int64_t previous = 0;
    for (std::int64_t size : collective_sizes(o.min_bytes, o.max_bytes)) {
      const std::int64_t bytes = collective_bytes(op, size, layout.size, element);
      if (bytes == previous) continue;
      previous = bytes;
      MPI_Barrier(MPI_COMM_WORLD);
      const double mine = median(timer(op, bytes));
      double slowest = 0;
      MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      run.points.push_back({op, bytes, slowest});
      if (world_rank == 0 && progress)
        progress(collective_op_name(op) + " " + format_size(bytes) + ": " + std::to_string(slowest) + " ms");
    }
  }
  return run;
}

}  // namespace ppsim::cal
