// memcpy between two threads: the CPU stand-in for a device-to-device link.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "ppsim/calibrate/p2p.h"

namespace ppsim::cal {

nlohmann::json measure_thread_memcpy(const P2POptions& o,
                                     const std::function<void(const std::string&)>& progress) {
  const std::size_t max = static_cast<std::size_t>(o.max_bytes);
  std::vector<char> src(max, 1), dst(max, 0);
  std::atomic<std::int64_t> request{0};  // bytes to copy; -1 stops the receiver
  std::atomic<int> generation{0}, done{0};
  std::thread receiver([&] {
    int seen = 0;
    for (;;) {
      while (generation.load(std::memory_order_acquire) == seen) std::this_thread::yield();
      seen = generation.load(std::memory_order_acquire);
      const std::int64_t n = request.load();
      if (n < 0) return;
      std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(n));
      done.store(seen, std::memory_order_release);
    }
  });
  int gen = 0;
  auto transfer = [&](std::int64_t bytes) {
    const auto t0 = std::chrono::steady_clock::now();
    request.store(bytes);
    generation.store(++gen, std::memory_order_release);
    while (done.load(std::memory_order_acquire) != gen) std::this_thread::yield();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  nlohmann::json link;
  try {
    link = measure_link_curve("thread_memcpy", 0, 1, o, transfer, progress);
  } catch (...) {
    request.store(-1);
    generation.store(++gen, std::memory_order_release);
    receiver.join();
    throw;
  }
  request.store(-1);
  generation.store(++gen, std::memory_order_release);
  receiver.join();
  return link;
}

}  // namespace ppsim::cal
