// The CUDA executor of the replay (calibrate/README.md, "Replay"): a device is a GPU
// (one per stage, transfers as peer copies) or an SM partition of GPU 0 made with green
// contexts (cuDevSmResourceSplitByCount, cuGreenCtxCreate, cuGreenCtxStreamCreate;
// transfers as device-local copies). Each device has one stream; each op-graph node an
// event, made in its device's context: complete = cudaEventRecord on the node's device's
// stream, wait_for = a host wait until that record is issued, then cudaStreamWaitEvent;
// marks are timing events.
// NOT RUN YET: written and compiled without a GPU (issue 14); tools/gpu_replay.sh is the
// first run.
#include <cuda.h>
#include <cuda_runtime.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "green.h"
#include "ppsim/replay/executor.h"

namespace ppsim::cal {
std::unique_ptr<Backend> make_cuda_backend_on(Dtype d, int device, void* stream);
}

namespace ppsim::replay {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}



class CudaExecutor final : public Executor {
 public:
  CudaExecutor(int devices, bool partitions, cal::Dtype dtype) : partitions_(partitions) {
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus == 0) throw cal::NoDeviceError("replay --backend cuda: no GPU");
    if (!partitions && gpus < devices)
      throw cal::NoDeviceError("replay --devices gpus: " + std::to_string(devices) + " stages need as many GPUs, " +
                               std::to_string(gpus) + " visible (use --devices partitions)");
    streams_.resize(static_cast<std::size_t>(devices));
    if (partitions) make_partitions(devices);
    else make_gpu_streams(devices);
    for (int d = 0; d < devices; ++d) {
      bind(d);
      backends_.push_back(cal::make_cuda_backend_on(dtype, gpu(d), streams_[static_cast<std::size_t>(d)]));
      own_.push_back(std::make_unique<cal::Allocator>(*backends_.back()));
      receive_.push_back(std::make_unique<cal::Allocator>(*backends_.back()));
    }
    marks_.resize(static_cast<std::size_t>(devices));
    used_.assign(static_cast<std::size_t>(devices), 0);
    starts_.resize(static_cast<std::size_t>(devices));
    host_starts_.resize(static_cast<std::size_t>(devices));
    for (int d = 0; d < devices; ++d) {
      bind(d);
      check(cudaEventCreate(&starts_[static_cast<std::size_t>(d)]), "cudaEventCreate");
    }
    unbind();
  }
  ~CudaExecutor() override {
    for (auto& n : node_events_)
      if (n != nullptr) cudaEventDestroy(n);
    for (auto& e : starts_) cudaEventDestroy(e);
    for (auto& dev : marks_)
      for (auto& e : dev) cudaEventDestroy(e);
    receive_.clear();
    own_.clear();
    backends_.clear();
    for (std::size_t d = 0; d < streams_.size(); ++d)
      if (!partitions_) cudaStreamDestroy(streams_[d]);
  }

  [[nodiscard]] int devices() const override { return static_cast<int>(streams_.size()); }
  cal::Backend& backend(int d) override { return *backends_.at(static_cast<std::size_t>(d)); }
  cal::Allocator& allocator(int d) override { return *own_.at(static_cast<std::size_t>(d)); }
  cal::Allocator& receive_allocator(int d) override { return *receive_.at(static_cast<std::size_t>(d)); }

  // A node's event is made by the device that records it, in that device's context: an
  // event must be recorded on a stream of its own context, and each SM partition is a
  // context of its own (a green context). Waits may cross contexts.
  void reset(std::size_t nodes) override {
    const std::lock_guard lock(mutex_);
    if (node_events_.size() < nodes) {
      node_events_.resize(nodes, nullptr);
      node_event_device_.resize(nodes, -1);
    }
    issued_.assign(nodes, 0);
    failed_ = false;
    used_.assign(streams_.size(), 0);
  }
  void wait_for(int d, std::uint32_t node) override {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return issued_.at(node) != 0 || failed_; });
      if (issued_[node] == 0) throw Aborted();
    }
    check(cudaStreamWaitEvent(stream(d), node_events_[node], 0), "cudaStreamWaitEvent");
  }
  void complete(int d, std::uint32_t node) override {
    cudaEvent_t& e = node_events_.at(node);  // only device d's thread touches it before issued_[node] is set
    if (e == nullptr || node_event_device_[node] != d) {  // first use, or a replay that put the node elsewhere
      if (e != nullptr) check(cudaEventDestroy(e), "cudaEventDestroy");
      check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
      node_event_device_[node] = d;
    }
    check(cudaEventRecord(e, stream(d)), "cudaEventRecord");
    {
      const std::lock_guard lock(mutex_);
      issued_[node] = 1;
    }
    cv_.notify_all();
  }
  void wait_done(int, std::uint32_t node) override { check(cudaEventSynchronize(node_events_.at(node)), "cudaEventSynchronize"); }
  std::size_t mark(int d) override {
    auto& events = marks_[static_cast<std::size_t>(d)];
    std::size_t& used = used_[static_cast<std::size_t>(d)];
    if (used == events.size()) {
      cudaEvent_t e{};
      check(cudaEventCreate(&e), "cudaEventCreate");
      events.push_back(e);
    }
    check(cudaEventRecord(events[used], stream(d)), "cudaEventRecord");
    return used++;
  }
  void copy(int src, int dst, const void* from, void* to, std::size_t bytes) override {
    if (partitions_ || gpu(src) == gpu(dst))
      check(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, stream(src)), "cudaMemcpyAsync");
    else
      check(cudaMemcpyPeerAsync(to, gpu(dst), from, gpu(src), bytes, stream(src)), "cudaMemcpyPeerAsync");
  }
  void run(const std::function<void(int)>& body) override;
  std::vector<std::vector<TimeNs>> mark_times() override;

 private:
  [[nodiscard]] int gpu(int d) const { return partitions_ ? 0 : d; }
  cudaStream_t stream(int d) { return streams_.at(static_cast<std::size_t>(d)); }
  /// The calling thread issues to device d: its GPU, and its green context when partitioned.
  void bind(int d) {
    check(cudaSetDevice(gpu(d)), "cudaSetDevice");
    if (partitions_) cal::bind_sm_partition(partitions_list_[static_cast<std::size_t>(d)]);
  }
  /// Back to GPU 0's primary context: a green context may be current to one thread at a
  /// time, and each belongs to its device's thread while a replay runs.
  void unbind() {
    if (partitions_) check(cudaSetDevice(0), "cudaSetDevice");
  }
  void make_gpu_streams(int devices);
  void make_partitions(int devices);

  bool partitions_;
  std::vector<cudaStream_t> streams_;
  std::vector<cal::SmPartition> partitions_list_;
  std::vector<std::unique_ptr<cal::Backend>> backends_;
  std::vector<std::unique_ptr<cal::Allocator>> own_, receive_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<char> issued_;
  bool failed_{false};
  std::vector<cudaEvent_t> node_events_;  ///< per op-graph node, made by its device (null until first recorded)
  std::vector<int> node_event_device_;     ///< which device's context made each
  std::vector<std::vector<cudaEvent_t>> marks_;  ///< per device, reused run after run
  std::vector<std::size_t> used_;                ///< marks recorded in this run
  std::vector<cudaEvent_t> starts_;              ///< per device: recorded on its idle stream before the run
  std::vector<std::chrono::steady_clock::time_point> host_starts_;  ///< when each start event completed
};

void CudaExecutor::make_gpu_streams(int devices) {
  for (int d = 0; d < devices; ++d) {
    check(cudaSetDevice(d), "cudaSetDevice");
    for (int e = 0; e < devices; ++e) {
      int can = 0;
      if (e != d && cudaDeviceCanAccessPeer(&can, d, e) == cudaSuccess && can) {
        const cudaError_t r = cudaDeviceEnablePeerAccess(e, 0);
        if (r != cudaSuccess && r != cudaErrorPeerAccessAlreadyEnabled) check(r, "cudaDeviceEnablePeerAccess");
        cudaGetLastError();
      }
    }
    check(cudaStreamCreateWithFlags(&streams_[static_cast<std::size_t>(d)], cudaStreamNonBlocking), "cudaStreamCreate");
  }
}

// p equal SM groups of GPU 0, one green context and one stream each (green.h).
void CudaExecutor::make_partitions(int devices) {
  partitions_list_ = cal::make_sm_partitions(devices);
  for (int d = 0; d < devices; ++d) streams_[static_cast<std::size_t>(d)] = partitions_list_[static_cast<std::size_t>(d)].stream;
}

void CudaExecutor::run(const std::function<void(int)>& body) {
  run_device_threads(
      devices(),
      [&](int d) {
        bind(d);
        const auto dd = static_cast<std::size_t>(d);
        check(cudaEventRecord(starts_[dd], stream(d)), "cudaEventRecord");
        check(cudaEventSynchronize(starts_[dd]), "cudaEventSynchronize");
        host_starts_[dd] = std::chrono::steady_clock::now();
        body(d);
        check(cudaStreamSynchronize(stream(d)), "cudaStreamSynchronize");
      },
      [&] {
        {
          const std::lock_guard lock(mutex_);
          failed_ = true;
        }
        cv_.notify_all();
      });
}

// Each device's marks against its start event (one GPU clock per device), placed on the
// host clock where that event completed: devices on different GPUs, whose events
// cudaEventElapsedTime cannot compare, share one axis to within the host's wake-up after
// cudaEventSynchronize (microseconds).
std::vector<std::vector<TimeNs>> CudaExecutor::mark_times() {
  std::vector<std::vector<TimeNs>> out(marks_.size());
  auto origin = std::chrono::steady_clock::time_point::max();
  for (const auto& t : host_starts_) origin = std::min(origin, t);
  for (std::size_t d = 0; d < marks_.size(); ++d) {
    const std::int64_t base = std::chrono::duration_cast<std::chrono::nanoseconds>(host_starts_[d] - origin).count();
    bind(static_cast<int>(d));
    for (std::size_t i = 0; i < used_[d]; ++i) {
      float ms = 0;
      check(cudaEventElapsedTime(&ms, starts_[d], marks_[d][i]), "cudaEventElapsedTime");
      out[d].push_back(TimeNs{base + static_cast<std::int64_t>(static_cast<double>(ms) * 1e6)});
    }
  }
  unbind();
  return out;
}

}  // namespace

void register_cuda_replay() {
  set_cuda_executor_factory([](int devices, bool partitions, cal::Dtype dtype) -> std::unique_ptr<Executor> {
    return std::make_unique<CudaExecutor>(devices, partitions, dtype);
  });
}

}  // namespace ppsim::replay
