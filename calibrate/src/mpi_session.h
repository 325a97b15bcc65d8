#pragma once
// What the MPI-launched measurements share (host MPI and NCCL transports): MPI start and
// end, the local rank, the communicator split, the ping-pong driver and the ranks'
// agreement for the collective sweep (collectives.cpp). Private to calibrate/ (needs <mpi.h>); built only with MPI.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/collectives.h"
#include "ppsim/calibrate/p2p.h"

namespace ppsim::cal {

/// @brief MPI_Init when not yet initialised; MPI_Finalize when it goes out of scope.
class MpiSession {
 public:
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  /// @brief This rank's index among the ranks of its node (MPI_COMM_TYPE_SHARED).
  [[nodiscard]] int local_rank() const { return local_rank_; }

 private:
  int rank_{0}, size_{1}, local_rank_{0};
};

/// @brief The communicator of this rank's group (`layout`); MPI_Comm_free'd by the caller.
MPI_Comm split_group(const GroupLayout& layout, int world_rank);

/// @brief Ping-pong over `pair` (2 ranks): pair rank 0 drives, telling the other the size
/// before each round (-1: stop), and times `pingpong(bytes)` (one transfer's ms) through
/// measure_link_curve. Only pair rank 0's JSON is meaningful.
nlohmann::json drive_pingpong(MPI_Comm pair, const std::string& kind, int src, int dst, const P2POptions& o,
                              const std::function<double(std::int64_t)>& pingpong,
                              const std::function<void(const std::string&)>& progress);

/// @brief MPI_COMM_WORLD as a RankSync: MPI_Barrier, and MPI_Allreduce(MPI_MAX).
RankSync mpi_world_sync();

}  // namespace ppsim::cal
