#pragma once
/// @file p2p.h
/// @brief Link measurements: each transport in its own file, same output (a curve of
/// (bytes, median ms) points with spread, and the latency + bandwidth fit).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/measure.h"

namespace ppsim::cal {

struct P2POptions {
  std::int64_t min_bytes{4 << 10};
  std::int64_t max_bytes{std::int64_t{1} << 30};
  Method method;
};

/// @brief Sizes min, 4*min, ... up to max (powers of 4 from 4 KiB: 4 KiB, 16 KiB, ...),
/// always including max.
std::vector<std::int64_t> p2p_sizes(const P2POptions& o);

/// @brief Times `transfer(bytes)` (returns one transfer's ms) over the sizes and
/// builds the link JSON {kind, src, dst, points, fit}.
nlohmann::json measure_link_curve(const std::string& kind, int src, int dst, const P2POptions& o,
                                  const std::function<double(std::int64_t)>& transfer,
                                  const std::function<void(const std::string&)>& progress);

/// @brief The `fit` of a link curve's points (at least two, sorted, times positive): the
/// one line {latency_us, bandwidth_GBps} and the piecewise `segments` (fit_link_segments)
/// with `worst_error`, `worst_error_bytes`. Segments the profile reader would refuse (a
/// jump so steep its bandwidth falls under 0.001 GB/s, timer noise) are left out and
/// `segments_refused` says why, so every written profile validates.
nlohmann::json link_fit_json(const std::vector<double>& bytes, const std::vector<double>& ms);

/// @brief memcpy from a buffer one thread owns into one another thread owns, handed
/// over through atomics (includes the hand-off latency).
nlohmann::json measure_thread_memcpy(const P2POptions& o, const std::function<void(const std::string&)>& progress);

/// @brief MPI send/recv ping-pong between ranks 0 and 1 (only when built with MPI);
/// initialises and finalises MPI. Only rank 0's returned JSON is meaningful.
nlohmann::json measure_mpi_sendrecv(const P2POptions& o, const std::function<void(const std::string&)>& progress,
                                    int* rank);

/// @brief NCCL ncclSend/ncclRecv ping-pong between world rank 0 and `peer`, one rank
/// per GPU under mpirun (device = local rank), timed with CUDA events; the other ranks
/// only start and stop MPI (only with NCCL and CUDA). Throws NoDeviceError without a
/// GPU, before MPI starts. Only rank 0's returned JSON is meaningful.
nlohmann::json measure_nccl_sendrecv(const P2POptions& o, int peer,
                                     const std::function<void(const std::string&)>& progress, int* rank);

/// @brief Parses "4KiB", "1MiB", "1GiB", "4096".
std::int64_t parse_size(const std::string& s);
/// @brief "4 KiB", "1 GiB".
std::string format_size(std::int64_t bytes);

}  // namespace ppsim::cal
