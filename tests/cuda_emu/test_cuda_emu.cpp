// The CUDA emulator itself (calibrate/cuda/emu): indices, barriers, shuffles, shared
// memory and the errors it must report rather than hang on or hide. The kernels it runs
// for real are checked against the CPU backend by `check --backend cuda-emu`
// (tests/cuda_emu.cmake).
#include <catch2/catch.hpp>

#define PPSIM_CUDA_EMU 1
#include "device_math.cuh"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <set>
#include <stdexcept>
#include <vector>

namespace {

using ppsim::cal::kern_emu::block_sum;

__global__ void k_ids(int* out, int* dims) {
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned per = blockDim.x * blockDim.y * blockDim.z;
  out[b * per + t] += static_cast<int>(b * per + t) + 1;
  if (b == 0 && t == 0) {
    dims[0] = static_cast<int>(blockDim.x * 100 + blockDim.y * 10 + blockDim.z);
    dims[1] = static_cast<int>(gridDim.x * 100 + gridDim.y * 10 + gridDim.z);
  }
}

__global__ void k_block_sums(const float* x, float* sums, int n) {
  float v = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[blockIdx.x * n + i];
  v = block_sum(v);
  if (threadIdx.x == 0) sums[blockIdx.x] = v;
}

__global__ void k_neighbour(float* out, bool sync) {
  PPSIM_DYNAMIC_SHARED(float, sm);
  sm[threadIdx.x] = static_cast<float>(threadIdx.x);
  if (sync) __syncthreads();
  out[threadIdx.x] = sm[(threadIdx.x + 1) % blockDim.x];
}

__global__ void k_shuffles(int* xor_out, int* bcast_out) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  xor_out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, lane * 10, 5);
  bcast_out[threadIdx.x] = __shfl_sync(0xffffffffu, lane + 100 * static_cast<int>(threadIdx.x / 32), 7);
}

__global__ void k_shuffle_2d(int* out) {
  const int t = static_cast<int>(threadIdx.x + blockDim.x * threadIdx.y);
  out[t] = __shfl_xor_sync(0xffffffffu, t, 16);  // lanes are linear ids: t ^ 16 in the same warp
}

__global__ void k_divergent_barrier(float* out) {
  float v = 1.0f;
  if (threadIdx.x == 0) __syncthreads();  // the bug: not every thread gets here
  v = block_sum(v);
  out[threadIdx.x] = v;
}

__global__ void k_shuffle_after_return(float* out) {
  if (threadIdx.x % 32 >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void k_early_return_then_barrier(int* out, int live) {
  if (static_cast<int>(threadIdx.x) >= live) return;
  __syncthreads();
  atomicAdd(reinterpret_cast<float*>(out), 1.0f);
  __syncthreads();
  if (threadIdx.x == 0) out[1] = live;
}

__global__ void k_nothing(int*) {}

}  // namespace

TEST_CASE("cuda emulator: every thread of every block runs once with its indices") {
  std::vector<int> out(2 * 3 * 4 * 8 * 4 * 2, 0), dims(2, 0);
  PPSIM_LAUNCH(k_ids, dim3(2, 3, 4), dim3(8, 4, 2), 0, nullptr)(out.data(), dims.data());
  for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(out[i] == static_cast<int>(i) + 1);
  CHECK(dims[0] == 842);
  CHECK(dims[1] == 234);
}

TEST_CASE("cuda emulator: block_sum over warps and __syncthreads") {
  const int blocks = 3, n = 1000;
  std::vector<float> x(blocks * n), sums(blocks, -1.0f);
  for (int i = 0; i < blocks * n; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i % 97);
  for (int threads : {32, 64, 256, 1024}) {
    PPSIM_LAUNCH(k_block_sums, blocks, threads, 0, nullptr)(x.data(), sums.data(), n);
    for (int b = 0; b < blocks; ++b) {
      float expect = 0;
      for (int i = 0; i < n; ++i) expect += x[static_cast<std::size_t>(b * n + i)];
      CHECK(sums[static_cast<std::size_t>(b)] == expect);  // small integers: exact in fp32
    }
  }
}

TEST_CASE("cuda emulator: shuffles exchange lanes within a warp") {
  std::vector<int> x(64), bc(64);
  PPSIM_LAUNCH(k_shuffles, 1, 64, 0, nullptr)(x.data(), bc.data());
  for (int t = 0; t < 64; ++t) {
    CHECK(x[static_cast<std::size_t>(t)] == ((t & 31) ^ 5) * 10);
    CHECK(bc[static_cast<std::size_t>(t)] == 7 + 100 * (t / 32));
  }
}

TEST_CASE("cuda emulator: lanes of a 2-D block are linear thread indices mod 32") {
  std::vector<int> out(64);
  PPSIM_LAUNCH(k_shuffle_2d, 1, dim3(8, 8), 0, nullptr)(out.data());
  for (int t = 0; t < 64; ++t) CHECK(out[static_cast<std::size_t>(t)] == (t ^ 16));
}

TEST_CASE("cuda emulator: a missing __syncthreads shows as a wrong result") {
  std::vector<float> out(64);
  PPSIM_LAUNCH(k_neighbour, 1, 64, 64 * sizeof(float), nullptr)(out.data(), true);
  for (int t = 0; t < 64; ++t) CHECK(out[static_cast<std::size_t>(t)] == static_cast<float>((t + 1) % 64));
  // Without the barrier thread 0 reads thread 1's slot before thread 1 ran: dynamic
  // shared memory starts as NaN, so the race is a NaN, not a lucky right answer.
  PPSIM_LAUNCH(k_neighbour, 1, 64, 64 * sizeof(float), nullptr)(out.data(), false);
  CHECK(std::isnan(out[0]));
  CHECK_FALSE(std::isnan(out[63]));  // thread 0 wrote its slot before thread 63 ran
  // Last to first (PPSIM_CUDA_EMU_ORDER=reverse) the same race hits another thread: the
  // second order catches a race the first happens to survive.
  setenv("PPSIM_CUDA_EMU_ORDER", "reverse", 1);
  PPSIM_LAUNCH(k_neighbour, 1, 64, 64 * sizeof(float), nullptr)(out.data(), false);
  unsetenv("PPSIM_CUDA_EMU_ORDER");
  CHECK(std::isnan(out[63]));
  CHECK_FALSE(std::isnan(out[0]));
}

TEST_CASE("cuda emulator: a barrier not every thread reaches is reported, not hung on") {
  std::vector<float> out(128);
  REQUIRE_THROWS_WITH(PPSIM_LAUNCH(k_divergent_barrier, 2, 128, 0, nullptr)(out.data()),
                      Catch::Contains("k_divergent_barrier") && Catch::Contains("block (0,0,0)") &&
                          Catch::Contains("deadlock"));
  // The emulator is usable again after the error.
  std::vector<int> ids(32, 0), dims(2);
  PPSIM_LAUNCH(k_ids, 1, 32, 0, nullptr)(ids.data(), dims.data());
  CHECK(ids[31] == 32);
}

TEST_CASE("cuda emulator: a whole-warp shuffle after lanes returned is an error") {
  std::vector<float> out(32);
  REQUIRE_THROWS_WITH(PPSIM_LAUNCH(k_shuffle_after_return, 1, 32, 0, nullptr)(out.data()),
                      Catch::Contains("whole-warp shuffle"));
  // So is one in a partial warp (48 threads: the second warp has 16 lanes).
  std::vector<int> x(48), bc(48);
  REQUIRE_THROWS_WITH(PPSIM_LAUNCH(k_shuffles, 1, 48, 0, nullptr)(x.data(), bc.data()),
                      Catch::Contains("16 lanes"));
}

TEST_CASE("cuda emulator: threads that returned leave the block's barriers") {
  std::vector<int> out(2, 0);
  PPSIM_LAUNCH(k_early_return_then_barrier, 1, 256, 0, nullptr)(out.data(), 100);
  float added;
  std::memcpy(&added, out.data(), sizeof added);
  CHECK(added == 100.0f);
  CHECK(out[1] == 100);
}

TEST_CASE("cuda emulator: launches beyond CUDA's limits are refused") {
  int x = 0;
  CHECK_THROWS_WITH(PPSIM_LAUNCH(k_nothing, 1, 2048, 0, nullptr)(&x), Catch::Contains("1..1024"));
  CHECK_THROWS_WITH(PPSIM_LAUNCH(k_nothing, dim3(1, 70000), 32, 0, nullptr)(&x), Catch::Contains("65535"));
  CHECK_THROWS_WITH(PPSIM_LAUNCH(k_nothing, 1, 32, 300 * 1024, nullptr)(&x), Catch::Contains("shared memory"));
  CHECK_THROWS_WITH(PPSIM_LAUNCH(k_nothing, 0, 32, 0, nullptr)(&x), Catch::Contains("grid"));
}
