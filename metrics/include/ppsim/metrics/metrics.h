#pragma once
/// @file metrics.h
/// @brief Every number a view shows, computed once from a run and its result.
///
/// The report JSON, the table, the timeline, the Vega-Lite chart, the Chrome trace and
/// the sweep rows format a `Metrics` and never recompute one of its numbers. Definitions
/// (docs/metrics.md):
/// - window W: [window_start, window_end] of the result (the whole run for flush
///   schedules; the steady-state iterations for asynchronous ones), over I iterations;
/// - exposed data-parallel all-reduce X per iteration (0 without data parallelism or when
///   it hides behind backward); pipeline time P = SimResult::iteration_time;
///   iteration time T = P + X;
/// - device d busy in the window: B_d (SimResult::per_device[d].window_busy);
///   grown window G = |W| + X * I;
///   bubble_rate_d = 1 - B_d / G, bubble_overhead_d = (G - B_d) / B_d,
///   blocked_d = time device d is blocked in communication inside W (SimResult::blocked;
///   zero under ideal communication), blocked_ms_d = blocked_d / I,
///   idle_ms_d = (|W| - B_d - blocked_d) / I + X; overall bubble rate and overhead are the means over
///   devices;
/// - samples/s = m * micro_batch_size * replicas / T; tokens/s = samples/s * sequence;
///   MFU = flops per micro-batch * t * m * replicas / T / (peak * devices), layer flops
///   being one tensor-parallel shard's (t = 1 without tensor parallelism); TFLOP/s per
///   GPU is the same achieved rate over the devices.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ppsim/engine/engine.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

struct Run;

/// @brief One device's figures.
struct DeviceMetrics {
  int device{0};
  TimeNs compute;          ///< all compute over the run
  TimeNs window_busy;      ///< compute inside the measured window
  double idle_ms{0};       ///< per iteration, exposed all-reduce included; blocked time excluded
  double blocked_ms{0};    ///< per iteration: blocked in communication inside the window (SimResult::blocked)
  double bubble_rate{0};
  double bubble_overhead{0};
  Bytes peak_memory;
  Bytes peak_activation;
  int peak_inflight{0};
  Bytes weights;
  Bytes static_bytes;
  int weight_versions{1};
  TimeNs peak_time;
  double send_ms{0};
  double recv_ms{0};
  double collective_ms{0};  ///< per iteration: its ops' blocking collectives (tensor parallel, ZeRO-3)
  double recompute_ms{0};   ///< per iteration: its backward ops' recomputed forward work
  bool has_allreduce{false};  ///< the data-parallel fields below were computed
  TimeNs allreduce;           ///< its data-parallel all-reduce, in all
  TimeNs allreduce_end;       ///< when its last all-reduce ends
};

/// @brief One model stage's figures.
struct StageMetrics {
  int stage{0};
  int first_layer{0};
  int last_layer{0};  ///< one past the last
  StageCost cost;
  int peak_inflight{0};  ///< most micro-batches it stashes at once (from the op order)
  Bytes peak_memory;     ///< weights x versions + static + activations x in flight
};

/// @brief The critical path: from the last op back to the start, following at each op
/// whichever constraint set its start.
struct CriticalPath {
  TimeNs compute;
  TimeNs communication;
  TimeNs link_wait;
  std::size_t ops{0};
  std::size_t transfers{0};
  std::vector<std::string> steps;  ///< newest last, at most the last 256
  bool steps_truncated{false};
  [[nodiscard]] TimeNs length() const { return compute + communication + link_wait; }
};

/// @brief Where a run first runs out of memory.
struct OomMetrics {
  int device{0};
  TimeNs time;
  Bytes peak;
  Bytes limit;
};

/// @brief The data-parallel gradient all-reduce of one iteration.
struct DataParallelMetrics {
  int degree{1};
  int ring_size{1};
  bool overlap{false};
  std::string link;
  Bytes gradient_bytes;  ///< the largest over devices
  TimeNs allreduce;      ///< the longest over devices
  TimeNs exposed;        ///< added to the iteration time
};

/// @brief Everything the views show.
struct Metrics {
  TimeNs pipeline_time;   ///< the engine's iteration time
  TimeNs exposed_allreduce;
  TimeNs iteration_time;  ///< pipeline_time + exposed_allreduce
  double bubble_rate{0};
  double bubble_overhead{0};
  Bytes peak_memory;
  double communication_ms{0};  ///< all transfer time, summed over senders
  std::size_t transfers{0};
  TimeNs window_start;
  TimeNs window_end;
  int window_iterations{1};
  std::vector<DeviceMetrics> per_device;
  CriticalPath critical_path;
  // Filled by compute_metrics (they need the run's config), empty from pipeline_metrics.
  int pipeline_replicas{1};
  double samples_per_s{0};
  std::optional<double> tokens_per_s;
  std::optional<double> mfu;
  std::optional<double> tflops_per_gpu;
  double collective_ms{0};  ///< the most any device spends in blocking collectives per iteration
  double recompute_ms{0};   ///< the most any device spends recomputing per iteration  ///< model FLOPs (no recompute) per GPU per second / 1e12
  std::vector<StageMetrics> per_stage;
  std::vector<int> layers_per_stage;
  std::optional<OomMetrics> oom;
  Bytes memory_limit;
  std::optional<DataParallelMetrics> data_parallel;
  bool replicas_placed_alike{true};
};

/// @brief The figures that need only the result: iteration time, bubbles,
/// idle, memory, communication, critical path. `exposed` is a per-iteration time added to
/// the iteration (the data-parallel all-reduce that does not hide behind the pipeline).
Metrics pipeline_metrics(const SimResult& result, TimeNs exposed = {});

/// @brief All figures of a prepared run: pipeline_metrics with the exposed data-parallel
/// all-reduce, plus throughput, MFU, per-stage figures, partition, memory limit and OOM,
/// data parallelism and placement.
Metrics compute_metrics(const Run& run, const SimResult& result);

/// @brief The critical path of a result (at most `max_steps` steps listed, newest last),
/// read off the op graph the run followed; empty for a result without one (made by hand).
CriticalPath critical_path_of(const SimResult& result, std::size_t max_steps = 256);

}  // namespace ppsim
