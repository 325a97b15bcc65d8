// Collectives through NCCL (ncclAllReduce, ncclAllGather, ncclReduceScatter,
// ncclBroadcast), one rank per GPU under mpirun; each iteration timed with CUDA events
// on the communicator's stream, the sweep and the statistic shared with the MPI transport.
// Built without MPI: one process on GPU 0, a one-rank communicator.
#include <string>
#include <vector>

#ifdef PPSIM_HAVE_MPI
#include "../src/mpi_session.h"
#endif
#include "cuda_check.h"
#include "nccl_comm.h"
#include "ppsim/calibrate/collectives.h"

namespace ppsim::cal {

namespace {

void run_nccl_op(CollectiveOp op, std::int64_t bytes, Dtype dtype, const NcclComm& c, void* send, void* recv) {
  const std::size_t count = static_cast<std::size_t>(bytes) / static_cast<std::size_t>(dtype_bytes(dtype));
  const std::size_t part = count / static_cast<std::size_t>(c.size());
  const ncclDataType_t t = nccl_dtype(dtype);
  switch (op) {
    case CollectiveOp::all_reduce: NCCL_CHECK(ncclAllReduce(send, recv, count, t, ncclSum, c.comm(), c.stream())); break;
    case CollectiveOp::all_gather: NCCL_CHECK(ncclAllGather(send, recv, part, t, c.comm(), c.stream())); break;
    case CollectiveOp::reduce_scatter:
      NCCL_CHECK(ncclReduceScatter(send, recv, part, t, ncclSum, c.comm(), c.stream()));
      break;
    case CollectiveOp::broadcast: NCCL_CHECK(ncclBroadcast(send, recv, count, t, 0, c.comm(), c.stream())); break;
  }
}

// Events around every iteration, all enqueued back to back (as a training step issues
// them), read after one synchronisation.
std::vector<double> time_nccl_op(CollectiveOp op, std::int64_t bytes, const CollectiveOptions& o, const NcclComm& c,
                                 void* send, void* recv, std::vector<cudaEvent_t>& events) {
  for (int i = 0; i < o.warmup; ++i) run_nccl_op(op, bytes, o.dtype, c, send, recv);
  for (int i = 0; i < o.iters; ++i) {
    CUDA_CHECK(cudaEventRecord(events[2 * i], c.stream()));
    run_nccl_op(op, bytes, o.dtype, c, send, recv);
    CUDA_CHECK(cudaEventRecord(events[2 * i + 1], c.stream()));
  }
  CUDA_CHECK(cudaStreamSynchronize(c.stream()));
  std::vector<double> ms;
  for (int i = 0; i < o.iters; ++i) {
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, events[2 * i], events[2 * i + 1]));
    ms.push_back(t);
  }
  return ms;
}

CollectiveRun sweep_on(const NcclComm& nccl, const CollectiveOptions& o, const GroupLayout& layout,
                       const RankSync& sync, const std::function<void(const std::string&)>& progress) {
  DeviceBuffer send(static_cast<std::size_t>(o.max_bytes)), recv(static_cast<std::size_t>(o.max_bytes));
  std::vector<cudaEvent_t> events(2 * static_cast<std::size_t>(o.iters), nullptr);
  auto destroy = [&] {
    for (cudaEvent_t e : events)
      if (e != nullptr) cudaEventDestroy(e);
  };
  try {
    for (cudaEvent_t& e : events) CUDA_CHECK(cudaEventCreate(&e));
    auto timer = [&](CollectiveOp op, std::int64_t bytes) {
      return time_nccl_op(op, bytes, o, nccl, send.get(), recv.get(), events);
    };
    CollectiveRun run = sweep_collectives(o, layout, "nccl", timer, sync, progress);
    destroy();
    return run;
  } catch (...) {
    destroy();
    throw;
  }
}

}  // namespace

CollectiveRun measure_nccl_collectives(const CollectiveOptions& o,
                                       const std::function<void(const std::string&)>& progress, int* rank) {
  o.validate();
  require_gpu("collectives --transport nccl");
#ifdef PPSIM_HAVE_MPI
  MpiSession mpi;
  *rank = mpi.rank();
  const GroupLayout layout = GroupLayout::of(mpi.size(), o.group_size, o.group_stride);
  select_local_device(mpi.local_rank());
  MPI_Comm group = split_group(layout, mpi.rank());
  try {
    NcclComm nccl(group);
    CollectiveRun run = sweep_on(nccl, o, layout, mpi_world_sync(), progress);
    MPI_Comm_free(&group);
    return run;
  } catch (...) {
    MPI_Comm_free(&group);
    throw;
  }
#else
  *rank = 0;
  const GroupLayout layout = GroupLayout::of(1, o.group_size, o.group_stride);
  select_local_device(0);
  NcclComm nccl;
  return sweep_on(nccl, o, layout, RankSync{}, progress);
#endif
}

}  // namespace ppsim::cal
