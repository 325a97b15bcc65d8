#pragma once
/// @file executor.h
/// @brief Where a replay runs: p devices, each with the harness's backend and an
/// accounting allocator, a way to order a device's work after a node of the op graph,
/// copies between devices, and a clock. The replay logic (replay.h) is written once over
/// this interface. The CPU executor runs one thread per device (single-threaded BLAS) and
/// waits on a condition variable; a CUDA executor maps the same calls onto one stream per
/// device (a GPU, or an SM partition of one through green contexts): wait_for is
/// cudaStreamWaitEvent on the node's event, complete is cudaEventRecord, mark is an
/// event recorded on the stream, copy is a peer or device-local cudaMemcpyAsync.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "ppsim/calibrate/backend.h"
#include "ppsim/engine/units.h"

namespace ppsim::replay {

/// @brief Thrown in the devices still waiting when another device failed.
struct Aborted : std::runtime_error {
  Aborted() : std::runtime_error("replay aborted: another device failed") {}
};

/// @brief Runs body(d) on one thread per device and joins them all. A body that throws
/// calls on_failure() from its thread (to wake the devices waiting on it, which then
/// throw Aborted); afterwards the first failure in device order that is not Aborted is
/// rethrown, else the first Aborted. Every executor's run() is this.
void run_device_threads(int devices, const std::function<void(int device)>& body,
                        const std::function<void()>& on_failure);

class Executor {
 public:
  virtual ~Executor() = default;
  [[nodiscard]] virtual int devices() const = 0;
  /// @brief The backend the layers of `device` run on.
  virtual cal::Backend& backend(int device) = 0;
  /// @brief The accounting allocator of `device`: its layers' tensors.
  virtual cal::Allocator& allocator(int device) = 0;
  /// @brief Where transfers into `device` land (allocated by the sending device's
  /// thread). The CPU: allocator(device). A GPU keeps them apart, so that a block its own
  /// stream may still use is never handed to another stream's copy; the replay frees a
  /// received tensor only after wait_done on the op that used it.
  virtual cal::Allocator& receive_allocator(int device) { return allocator(device); }
  /// @brief Starts a run over a graph of `nodes` nodes, none complete, no marks.
  virtual void reset(std::size_t nodes) = 0;
  /// @brief Work `device` issues after this call runs after `node` completed.
  virtual void wait_for(int device, std::uint32_t node) = 0;
  /// @brief `node` completes once the work `device` issued so far has run.
  virtual void complete(int device, std::uint32_t node) = 0;
  /// @brief Returns once the work of `node` (completed on `device`) has run (CPU: it has).
  virtual void wait_done(int /*device*/, std::uint32_t /*node*/) {}
  /// @brief A time mark after the work `device` issued so far; returns its index on the
  /// device (read back by mark_times after run).
  virtual std::size_t mark(int device) = 0;
  /// @brief Copies `bytes` from memory of `src` to memory of `dst`, issued by `src`.
  virtual void copy(int src, int dst, const void* from, void* to, std::size_t bytes) = 0;
  /// @brief Runs body(d) for every device at once; returns when all of them and all the
  /// work they issued have finished. Rethrows the first exception a body threw.
  virtual void run(const std::function<void(int device)>& body) = 0;
  /// @brief Per device, the time of each mark of the last run, from a common origin.
  virtual std::vector<std::vector<TimeNs>> mark_times() = 0;
};

/// @brief One thread per device on this CPU, each device its own CPU backend (fp32) and
/// allocator; sets OpenBLAS to one thread per call (set_cpu_blas_threads(1)).
std::unique_ptr<Executor> make_cpu_executor(int devices);

/// @brief `devices` GPUs, one per stage (`partitions` false), or GPU 0 split into
/// `devices` equal SM partitions through green contexts; layers in `dtype` on the CUDA
/// backend (calibrate/cuda/replay_cuda.cpp, registered by register_cuda_replay when
/// built with CUDA). Throws cal::NoDeviceError without it or without the GPUs. Written
/// without a GPU and not yet run (issue 14).
std::unique_ptr<Executor> make_cuda_executor(int devices, bool partitions, cal::Dtype dtype);
using CudaExecutorFactory = std::unique_ptr<Executor> (*)(int devices, bool partitions, cal::Dtype dtype);
void set_cuda_executor_factory(CudaExecutorFactory factory);

}  // namespace ppsim::replay
