// The CPU executor: one thread per device, dependencies through one mutex and condition
// variable, copies as memcpy, steady_clock marks.
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "ppsim/replay/executor.h"

namespace ppsim::replay {
namespace {

using Clock = std::chrono::steady_clock;

class CpuExecutor final : public Executor {
 public:
  explicit CpuExecutor(int devices) : marks_(static_cast<std::size_t>(devices)) {
    cal::set_cpu_blas_threads(1);
    for (int d = 0; d < devices; ++d) {
      backends_.push_back(cal::make_cpu_backend(cal::Dtype::fp32));
      allocators_.push_back(std::make_unique<cal::Allocator>(*backends_.back()));
    }
  }
  [[nodiscard]] int devices() const override { return static_cast<int>(backends_.size()); }
  cal::Backend& backend(int d) override { return *backends_.at(static_cast<std::size_t>(d)); }
  cal::Allocator& allocator(int d) override { return *allocators_.at(static_cast<std::size_t>(d)); }

  void reset(std::size_t nodes) override {
    const std::lock_guard lock(mutex_);
    done_.assign(nodes, 0);
    failed_ = false;
    for (auto& m : marks_) m.clear();
  }
  void wait_for(int, std::uint32_t node) override {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return done_.at(node) != 0 || failed_; });
    if (done_[node] == 0) throw Aborted();
  }
  void complete(int, std::uint32_t node) override {
    {
      const std::lock_guard lock(mutex_);
      done_.at(node) = 1;
    }
    cv_.notify_all();
  }
  std::size_t mark(int d) override {
    auto& m = marks_.at(static_cast<std::size_t>(d));  // only device d's thread appends here
    m.push_back(Clock::now());
    return m.size() - 1;
  }
  void copy(int, int, const void* from, void* to, std::size_t bytes) override { std::memcpy(to, from, bytes); }

  void run(const std::function<void(int)>& body) override {
    run_device_threads(devices(), body, [&] {
      {
        const std::lock_guard lock(mutex_);
        failed_ = true;
      }
      cv_.notify_all();
    });
  }

  std::vector<std::vector<TimeNs>> mark_times() override {
    Clock::time_point origin = Clock::time_point::max();
    for (const auto& m : marks_)
      for (const auto& t : m) origin = std::min(origin, t);
    std::vector<std::vector<TimeNs>> out(marks_.size());
    for (std::size_t d = 0; d < marks_.size(); ++d)
      for (const auto& t : marks_[d])
        out[d].push_back(TimeNs{std::chrono::duration_cast<std::chrono::nanoseconds>(t - origin).count()});
    return out;
  }

 private:
  std::vector<std::unique_ptr<cal::Backend>> backends_;
  std::vector<std::unique_ptr<cal::Allocator>> allocators_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<char> done_;
  bool failed_{false};
  std::vector<std::vector<Clock::time_point>> marks_;
};

}  // namespace

std::unique_ptr<Executor> make_cpu_executor(int devices) { return std::make_unique<CpuExecutor>(devices); }

namespace {
CudaExecutorFactory& cuda_factory() {
  static CudaExecutorFactory factory = nullptr;
  return factory;
}
}  // namespace

void set_cuda_executor_factory(CudaExecutorFactory factory) { cuda_factory() = factory; }

std::unique_ptr<Executor> make_cuda_executor(int devices, bool partitions, cal::Dtype dtype) {
  if (!cuda_factory()) throw cal::NoDeviceError("replay --backend cuda: this build has no CUDA backend");
  return cuda_factory()(devices, partitions, dtype);
}

void run_device_threads(int devices, const std::function<void(int)>& body, const std::function<void()>& on_failure) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(devices));
  std::vector<std::thread> threads;
  for (int d = 0; d < devices; ++d)
    threads.emplace_back([&, d] {
      try {
        body(d);
      } catch (...) {
        errors[static_cast<std::size_t>(d)] = std::current_exception();
        on_failure();
      }
    });
  for (auto& t : threads) t.join();
  // The first real failure, not the Aborted it caused in the other devices.
  std::exception_ptr first;
  for (const auto& e : errors) {
    if (!e) continue;
    try {
      std::rethrow_exception(e);
    } catch (const Aborted&) {
      if (!first) first = e;
    } catch (...) {
      std::rethrow_exception(e);
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace ppsim::replay
