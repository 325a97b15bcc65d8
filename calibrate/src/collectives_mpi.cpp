// Collectives through MPI on host memory (MPI_Allreduce, MPI_Allgather,
// MPI_Reduce_scatter_block, MPI_Bcast): the same sweep as NCCL's, runnable without a
// GPU, so CI exercises the whole path. Built only when CMake finds MPI.
#include <mpi.h>

#include <limits>
#include <stdexcept>
#include <vector>

#include "mpi_session.h"
#include "ppsim/calibrate/collectives.h"

namespace ppsim::cal {

namespace {

void run_mpi_op(CollectiveOp op, std::int64_t bytes, int ranks, std::vector<float>& send, std::vector<float>& recv,
                MPI_Comm comm) {
  const int count = static_cast<int>(bytes / static_cast<std::int64_t>(sizeof(float)));
  const int part = count / ranks;  // the all-gather's input, the reduce-scatter's output
  switch (op) {
    case CollectiveOp::all_reduce: MPI_Allreduce(send.data(), recv.data(), count, MPI_FLOAT, MPI_SUM, comm); break;
    case CollectiveOp::all_gather: MPI_Allgather(send.data(), part, MPI_FLOAT, recv.data(), part, MPI_FLOAT, comm); break;
    case CollectiveOp::reduce_scatter:
      MPI_Reduce_scatter_block(send.data(), recv.data(), part, MPI_FLOAT, MPI_SUM, comm);
      break;
    case CollectiveOp::broadcast: MPI_Bcast(send.data(), count, MPI_FLOAT, 0, comm); break;
  }
}

}  // namespace

CollectiveRun measure_mpi_collectives(const CollectiveOptions& o,
                                      const std::function<void(const std::string&)>& progress, int* rank) {
  o.validate();
  if (o.dtype != Dtype::fp32)
    throw std::invalid_argument("--dtype " + dtype_name(o.dtype) + ": the mpi transport reduces fp32 only");
  if (o.max_bytes / static_cast<std::int64_t>(sizeof(float)) > std::numeric_limits<int>::max())
    throw std::invalid_argument("--max-bytes " + format_size(o.max_bytes) + ": the mpi transport takes at most 8 GiB");
  MpiSession mpi;
  *rank = mpi.rank();
  const GroupLayout layout = GroupLayout::of(mpi.size(), o.group_size, o.group_stride);
  MPI_Comm group = split_group(layout, mpi.rank());
  const std::size_t elements = static_cast<std::size_t>(o.max_bytes) / sizeof(float);
  std::vector<float> send(elements, 1.0f), recv(elements, 0.0f);
  auto timer = [&](CollectiveOp op, std::int64_t bytes) {
    for (int i = 0; i < o.warmup; ++i) run_mpi_op(op, bytes, layout.size, send, recv, group);
    std::vector<double> ms;
    for (int i = 0; i < o.iters; ++i) {
      const double t0 = MPI_Wtime();
      run_mpi_op(op, bytes, layout.size, send, recv, group);
      ms.push_back((MPI_Wtime() - t0) * 1e3);
    }
    return ms;
  };
  CollectiveRun run;
  try {
    run = sweep_collectives(o, layout, "mpi", timer, mpi_world_sync(), progress);
  } catch (...) {
    MPI_Comm_free(&group);
    throw;
  }
  MPI_Comm_free(&group);
  return run;
}

}  // namespace ppsim::cal
