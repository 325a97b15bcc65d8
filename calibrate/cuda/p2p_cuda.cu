// CUDA links: device-local copy on each GPU and cudaMemcpyPeerAsync for every ordered
// pair (peer access enabled where the pair supports it), timed with CUDA events.
#include <cuda_runtime.h>

#include <vector>

#include "cuda_check.h"
#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/p2p.h"

namespace ppsim::cal {

nlohmann::json measure_cuda_p2p(const P2POptions& o, const std::function<void(const std::string&)>& progress) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw NoDeviceError(std::string("p2p --backend cuda needs an NVIDIA GPU and driver: cudaGetDeviceCount: ") +
                        (e != cudaSuccess ? cudaGetErrorName(e) : "0 devices"));
  }
  const std::size_t max = static_cast<std::size_t>(o.max_bytes);
  nlohmann::json links = nlohmann::json::array();
  auto timed_copy = [&](int dev, void* dst, int dst_dev, const void* src, int src_dev) {
    CUDA_CHECK(cudaSetDevice(dev));
    cudaStream_t s;
    cudaEvent_t a, b;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    auto transfer = [&](std::int64_t bytes) {
      CUDA_CHECK(cudaEventRecord(a, s));
      if (dst_dev == src_dev)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToDevice, s));
      else
        CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_dev, src, src_dev, static_cast<std::size_t>(bytes), s));
      CUDA_CHECK(cudaEventRecord(b, s));
      CUDA_CHECK(cudaEventSynchronize(b));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
      return static_cast<double>(ms);
    };
    const std::string kind = dst_dev == src_dev ? "device_local" : "peer";
    nlohmann::json link = measure_link_curve(kind, src_dev, dst_dev, o, transfer, progress);
    link["note"] = "GB/s counts bytes copied once (not read + written)";
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaStreamDestroy(s);
    return link;
  };
  std::vector<void*> bufs(static_cast<std::size_t>(count) * 2, nullptr);
  for (int d = 0; d < count; ++d) {
    CUDA_CHECK(cudaSetDevice(d));
    CUDA_CHECK(cudaMalloc(&bufs[2 * d], max));
    CUDA_CHECK(cudaMalloc(&bufs[2 * d + 1], max));
    CUDA_CHECK(cudaMemset(bufs[2 * d], 1, max));
  }
  for (int d = 0; d < count; ++d) links.push_back(timed_copy(d, bufs[2 * d + 1], d, bufs[2 * d], d));
  for (int src = 0; src < count; ++src)
    for (int dst = 0; dst < count; ++dst) {
      if (src == dst) continue;
      int can = 0;
      CUDA_CHECK(cudaDeviceCanAccessPeer(&can, dst, src));
      if (can) {
        CUDA_CHECK(cudaSetDevice(dst));
        const cudaError_t pe = cudaDeviceEnablePeerAccess(src, 0);
        if (pe != cudaSuccess && pe != cudaErrorPeerAccessAlreadyEnabled) CUDA_CHECK(pe);
        cudaGetLastError();
      }
      nlohmann::json l = timed_copy(src, bufs[2 * dst + 1], dst, bufs[2 * src], src);
      l["peer_access"] = can != 0;
      links.push_back(l);
    }
  for (int d = 0; d < count; ++d) {
    CUDA_CHECK(cudaSetDevice(d));
    cudaFree(bufs[2 * d]);
    cudaFree(bufs[2 * d + 1]);
  }
  return links;
}

}  // namespace ppsim::cal
