// Engine throughput: compute ops simulated per second with timeline recording on.
// Run: build/bench/ppsim_bench [--cold] [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <malloc.h>

#include "ppsim/engine/engine.h"
#include "ppsim/schedules/registry.h"

namespace {

using namespace ppsim;

std::vector<StageCost> costs_for(const Schedule& s) {
  StageCost c;
  c.forward = TimeNs::from_ms(1.0);
  c.backward = TimeNs::from_ms(2.0);
  c.weight_grad = TimeNs::from_ms(1.0);
  c.activation = Bytes{1 << 20};
  c.weight_activation = Bytes{1 << 19};
  c.output = Bytes{1 << 22};
  c.parameters = Bytes{1 << 24};
  return std::vector<StageCost>(static_cast<std::size_t>(s.num_stages), c);
}

/// Simulates `name` with p stages, m micro-batches, v chunks; links of 5 us + 50 GB/s.
void simulate_schedule(benchmark::State& state, const std::string& name, int p, int m, int v,
                       EventQueueKind queue = SimOptions{}.queue) {
  Schedule s;
  try {
    s = make_schedule(name, {p, m, v, 0});
  } catch (const ScheduleError& e) {
    state.SkipWithError(e.what());
    return;
  }
  const auto costs = costs_for(s);
  UniformLinkModel links(s.devices, TimeNs{5'000}, 50.0);
  std::size_t ops = 0;
  for (const auto& d : s.device_ops) ops += d.size();
  for (auto _ : state) {
    SimResult r = simulate(s, costs, links, SimOptions{true, queue});
    benchmark::DoNotOptimize(r.iteration_time);
  }
  state.counters["ops"] = static_cast<double>(ops);
  state.counters["ops_per_s"] = benchmark::Counter(static_cast<double>(ops) * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate);
}

void BM_1f1b_p64_m1024(benchmark::State& state) { simulate_schedule(state, "1f1b", 64, 1024, 1); }
BENCHMARK(BM_1f1b_p64_m1024)->Unit(benchmark::kMillisecond);

// The same on each event queue (SimOptions::queue; the default is the binary heap).
void BM_1f1b_p64_m1024_binary_heap(benchmark::State& state) {
  simulate_schedule(state, "1f1b", 64, 1024, 1, EventQueueKind::BinaryHeap);
}
BENCHMARK(BM_1f1b_p64_m1024_binary_heap)->Unit(benchmark::kMillisecond);
void BM_1f1b_p64_m1024_quaternary_heap(benchmark::State& state) {
  simulate_schedule(state, "1f1b", 64, 1024, 1, EventQueueKind::QuaternaryHeap);
}
BENCHMARK(BM_1f1b_p64_m1024_quaternary_heap)->Unit(benchmark::kMillisecond);

/// Every registered schedule at p=64, m=1024 (interleaved at v=4, other chunked schedules
/// at their registry chunks).
void register_all() {
  for (const auto& info : all_schedules()) {
    const int v = info.name == "interleaved" ? 4 : info.chunks;
    benchmark::RegisterBenchmark(("BM_all/" + info.name + "/p64_m1024_v" + std::to_string(v)).c_str(),
                                 [name = info.name, v](benchmark::State& st) { simulate_schedule(st, name, 64, 1024, v); })
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Keep freed blocks in the heap between iterations, as a sweep worker does, so the
  // numbers are the engine's and not the kernel's page-fault cost for fresh mmaps.
  // `--cold` measures with glibc's defaults instead.
  bool cold = false;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--cold") {
      cold = true;
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      break;
    }
  if (!cold) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
