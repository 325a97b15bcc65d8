#include "green.h"

#include <stdexcept>
#include <string>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/model.h"
#include "ppsim/calibrate/sm_partition.h"

namespace ppsim::cal {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
void check(CUresult r, const char* what) {
  if (r != CUDA_SUCCESS) throw std::runtime_error(std::string(what) + ": CUresult " + std::to_string(static_cast<int>(r)));
}

/// A driver API entry point through the runtime (no link against libcuda, so the binary
/// still starts on a machine without a driver, like the rest of ppsim-calibrate).
template <class F>
F driver(const char* name) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult q{};
  check(cudaGetDriverEntryPointByVersion(name, &fn, 12040, cudaEnableDefault, &q), name);
  if (fn == nullptr || q != cudaDriverEntryPointSuccess)
    throw cal::NoDeviceError(std::string("the CUDA driver has no ") + name + " (green contexts need CUDA 12.4 or later)");
  return reinterpret_cast<F>(fn);
}
#define PPSIM_DRIVER(fn) driver<decltype(&fn)>(#fn)

}  // namespace

std::vector<SmPartition> make_sm_partitions(int count) {
  check(cudaSetDevice(0), "cudaSetDevice");
  check(cudaFree(nullptr), "cudaFree(0)");  // the runtime initialises the driver and GPU 0's context
  CUdevice dev{};
  check(PPSIM_DRIVER(cuDeviceGet)(&dev, 0), "cuDeviceGet");
  CUdevResource sms{};
  check(PPSIM_DRIVER(cuDeviceGetDevResource)(dev, &sms, CU_DEV_RESOURCE_TYPE_SM), "cuDeviceGetDevResource");
  int cc_major = 0;
  check(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, 0), "cudaDeviceGetAttribute");
  const SmSplitRules rules = sm_split_rules(sms.sm.minSmPartitionSize, sms.sm.smCoscheduledAlignment, cc_major);
  const unsigned per = sm_partition_size(sms.sm.smCount, static_cast<unsigned>(count), rules);
  if (per == 0)
    throw NoDeviceError("GPU 0 has " + std::to_string(sms.sm.smCount) + " SMs: " + std::to_string(count) +
                        " partitions of at least " + std::to_string(rules.min_size) + " SMs in multiples of " +
                        std::to_string(rules.alignment) + " do not fit");
  std::vector<CUdevResource> groups(static_cast<std::size_t>(count));
  unsigned n = static_cast<unsigned>(count);
  CUdevResource rest{};
  check(PPSIM_DRIVER(cuDevSmResourceSplitByCount)(groups.data(), &n, &sms, &rest, 0, per), "cuDevSmResourceSplitByCount");
  if (n < static_cast<unsigned>(count))
    throw NoDeviceError("GPU 0 (" + std::to_string(sms.sm.smCount) + " SMs) splits into " + std::to_string(n) +
                        " groups of " + std::to_string(per) + " SMs, " + std::to_string(count) + " needed");
  std::vector<SmPartition> out(static_cast<std::size_t>(count));
  for (std::size_t d = 0; d < out.size(); ++d) {
    CUdevResourceDesc desc{};
    check(PPSIM_DRIVER(cuDevResourceGenerateDesc)(&desc, &groups[d], 1), "cuDevResourceGenerateDesc");
    check(PPSIM_DRIVER(cuGreenCtxCreate)(&out[d].context, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM), "cuGreenCtxCreate");
    CUstream s{};
    check(PPSIM_DRIVER(cuGreenCtxStreamCreate)(&s, out[d].context, CU_STREAM_NON_BLOCKING, 0), "cuGreenCtxStreamCreate");
    out[d].stream = s;
    out[d].sms = groups[d].sm.smCount;
  }
  return out;
}

void bind_sm_partition(const SmPartition& p) {
  CUcontext ctx{};
  check(PPSIM_DRIVER(cuCtxFromGreenCtx)(&ctx, p.context), "cuCtxFromGreenCtx");
  check(PPSIM_DRIVER(cuCtxSetCurrent)(ctx), "cuCtxSetCurrent");
}

int sm_partitions_from_env() { return env_int("PPSIM_CUDA_SM_PARTITIONS", 1, 64, 0); }

}  // namespace ppsim::cal
