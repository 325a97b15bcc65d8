#pragma once
/// @file collectives.h
/// @brief Collective measurements (`ppsim-calibrate collectives`): all-reduce,
/// all-gather, reduce-scatter and broadcast over a size sweep, timed as nccl-tests does
/// (time per op = median over the timed iterations after warm-up, max over ranks;
/// algbw = bytes / time; busbw = algbw x bus_bandwidth_factor). Each transport (MPI on
/// host memory, NCCL on GPUs) is its own file; all fill one CollectiveRun, which the JSON
/// and the table only format.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/model.h"

namespace ppsim::cal {

/// @brief The measured collectives.
enum class CollectiveOp { all_reduce, all_gather, reduce_scatter, broadcast };

/// @brief "all_reduce", "all_gather", "reduce_scatter", "broadcast" (the --ops spelling).
std::string collective_op_name(CollectiveOp op);
/// @brief The --ops spelling (also "all-reduce", "allreduce"); throws std::invalid_argument.
CollectiveOp parse_collective_op(const std::string& name);
/// @brief A comma-separated list of ops, each once; throws std::invalid_argument.
std::vector<CollectiveOp> parse_collective_ops(const std::string& csv);

/// @brief nccl-tests' bus-bandwidth factor over `ranks` GPUs: 2(n-1)/n for all-reduce,
/// (n-1)/n for all-gather and reduce-scatter, 1 for broadcast. busbw = algbw x factor is
/// the bandwidth each ring link carries, comparable with a link's peak. The simulator's
/// ring_collective_time (model/topology.h) moves factor x bytes over a link; a test pins
/// the two together.
double bus_bandwidth_factor(CollectiveOp op, int ranks);

/// @brief The `bytes` a measurement really moves: rounded down so each of `ranks` holds
/// whole elements of `element_bytes` (the all-gather's output and the reduce-scatter's
/// input are `ranks` equal parts; all-reduce and broadcast whole elements). 0 when
/// `bytes` is too small.
std::int64_t collective_bytes(CollectiveOp op, std::int64_t bytes, int ranks, int element_bytes);

/// @brief What `ppsim-calibrate collectives` measures and how.
struct CollectiveOptions {
  std::int64_t min_bytes{4 << 10};
  std::int64_t max_bytes{std::int64_t{1} << 30};
  std::vector<CollectiveOp> ops{CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter};
  Dtype dtype{Dtype::fp32};
  int iters{20};   ///< timed iterations per op and size
  int warmup{5};   ///< untimed iterations first
  int group_size{0};    ///< ranks per communicator; 0: all ranks in one
  int group_stride{1};  ///< distance between consecutive ranks of a communicator
  /// @brief Throws std::invalid_argument naming the flag (sizes, iterations, groups).
  void validate() const;
};

/// @brief min, 2 min, 4 min, ... below max, then max (nccl-tests' -f 2 sweep).
std::vector<std::int64_t> collective_sizes(std::int64_t min_bytes, std::int64_t max_bytes);

/// @brief How the world's ranks form communicators: `size` ranks each, `stride` apart.
/// Communicator c holds ranks base + i x stride (i < size), base = (c / stride) x size x
/// stride + c mod stride. size 8, stride 1 on 16 ranks: {0..7}, {8..15} (the GPUs of each
/// node); size 2, stride 8: {0, 8}, {1, 9}, ... (one GPU per node, across nodes).
struct GroupLayout {
  int world{1};
  int size{1};
  int stride{1};
  /// @brief Checks world is a multiple of size x stride; throws std::invalid_argument.
  static GroupLayout of(int world, int size, int stride);
  [[nodiscard]] int count() const { return world / size; }
  [[nodiscard]] int group_of(int rank) const;  ///< communicator index of a world rank
  [[nodiscard]] int rank_in_group(int rank) const;
};

/// @brief One op at one size: the slowest rank's median time.
struct CollectivePoint {
  CollectiveOp op{CollectiveOp::all_reduce};
  std::int64_t bytes{0};
  double time_ms{0};
};

/// @brief A whole measurement: every op x size and how it was made.
struct CollectiveRun {
  std::string transport;  ///< "mpi" or "nccl"
  std::string algorithm;  ///< requested_algorithm()
  GroupLayout groups;
  Dtype dtype{Dtype::fp32};
  int iters{0};
  int warmup{0};
  std::vector<CollectivePoint> points;
};

/// @brief What the library was asked to use: for nccl "NCCL_ALGO=...,NCCL_PROTO=..."
/// from the environment (the set ones), else "auto"; for mpi "auto".
std::string requested_algorithm(const std::string& transport);

/// @brief algbw in GB/s (10^9 B/s): bytes / time.
double algorithm_bandwidth_GBps(std::int64_t bytes, double time_ms);

/// @brief The `ppsim.collectives/1` JSON (docs/formats.md): per op and size bytes,
/// time_ms, algbw_GBps, busbw_GBps, ranks, transport, algorithm; and per ring op
/// (all-reduce, all-gather, reduce-scatter) the equivalent ring link (ring_link_fit).
nlohmann::json collectives_json(const CollectiveRun& run);

/// @brief nccl-tests-like table: one line per op and size.
std::string collectives_table(const CollectiveRun& run);

/// @brief The link on which the simulator's ring_collective_time reproduces an op's
/// points: a ring over n ranks runs factor x n steps of bytes / n each, so the points
/// (bytes / n, time / steps) are one link's curve; fitted by fit_link_segments into the
/// `cluster.intra_link` / `inter_link` form {latency_us, bandwidth_GBps, segments}.
/// Null for broadcast, fewer than 2 ranks or fewer than 2 sizes.
nlohmann::json ring_link_fit(const CollectiveRun& run, CollectiveOp op);

/// @brief The profile kind of an op's ring link: "<transport>_<op>_ring_n<ranks>", with
/// "_stride<s>" when the communicator's ranks are s apart (nccl_all_reduce_ring_n8,
/// nccl_all_reduce_ring_n2_stride8).
std::string ring_link_kind(const CollectiveRun& run, CollectiveOp op);

/// @brief Each ring op's ring link as a profile link curve (`ppsim.profile/1` links[]:
/// kind ring_link_kind, points of one ring step, fit ring_link_fit), so a config names
/// it as {"profile": PATH, "kind": KIND}.
nlohmann::json ring_link_curves(const CollectiveRun& run);

/// @brief One rank's timer for a transport: runs `op` on `bytes` warmup times, then
/// returns the ms of each of `iters` timed runs.
using CollectiveTimer = std::function<std::vector<double>(CollectiveOp op, std::int64_t bytes)>;

/// @brief How the ranks of a sweep agree: this rank's world index, a barrier before
/// each size, and the slowest rank's median from this rank's. The default is a world of
/// one rank (no MPI); mpi_world_sync() (mpi_session.h) is MPI_COMM_WORLD's.
struct RankSync {
  int rank{0};
  std::function<void()> barrier = [] {};
  std::function<double(double)> slowest = [](double mine) { return mine; };
};

/// @brief Runs every op x size on each rank's group with `timer`, takes each rank's
/// median and the slowest over all world ranks (`sync`). Sizes that round
/// (collective_bytes) to the previous size's bytes are measured once.
CollectiveRun sweep_collectives(const CollectiveOptions& o, const GroupLayout& layout, const std::string& transport,
                                const CollectiveTimer& timer, const RankSync& sync,
                                const std::function<void(const std::string&)>& progress);

/// @brief MPI_Allreduce / MPI_Allgather / MPI_Reduce_scatter_block / MPI_Bcast on host
/// memory (built with MPI). Initialises and finalises MPI; only rank 0 (*rank) holds
/// the complete result.
CollectiveRun measure_mpi_collectives(const CollectiveOptions& o,
                                      const std::function<void(const std::string&)>& progress, int* rank);

/// @brief The same through NCCL on GPUs, one rank per GPU, device = local rank (built
/// only with NCCL and CUDA). Throws NoDeviceError without a GPU, before MPI starts.
/// Built without MPI, it is one process on GPU 0 with a one-rank communicator: what a
/// single-GPU machine can exercise (group size and stride must then be 1).
CollectiveRun measure_nccl_collectives(const CollectiveOptions& o,
                                       const std::function<void(const std::string&)>& progress, int* rank);

}  // namespace ppsim::cal
