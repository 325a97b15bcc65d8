#pragma once
/// @file trace.h
/// @brief Chrome Trace Event / Perfetto JSON of a simulated run: a view over SimResult.
#include <ostream>

#include <nlohmann/json.hpp>

#include "ppsim/engine/engine.h"
#include "ppsim/metrics/metrics.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief Process id of a device in the trace (device + 1: some importers treat pid 0
/// as the idle process).
int trace_pid(int device);

/// @brief Thread ids of a device's lanes in the trace.
inline constexpr int kTraceComputeTid = 1;
inline constexpr int kTraceSendTid = 2;
inline constexpr int kTraceRecvTid = 3;
/// Gradient syncs of the pipeline and the device's data-parallel all-reduce.
inline constexpr int kTraceCollectiveTid = 4;

/// @brief Thread id of the extra lane `lane` (1, 2, ...) of send or recv, used when a
/// device has transfers that overlap in time (slices on one thread must nest).
int extra_lane_tid(int base_tid, int lane);

/// @brief Builds `{"traceEvents": [...], "displayTimeUnit": "ms"}`: each device a process
/// with named compute/send/recv threads (`ph:"M"`; overlapping transfers spill onto
/// extra "send 2"/"recv 2" threads), each op a complete event (`ph:"X"`,
/// `ts`/`dur` in microseconds, micro-batch/stage/chunk/pipe in `args`), each transfer a
/// send and a recv slice joined by one flow (`s` on the send, `t` on the recv, `f` on
/// the consuming op, id = transfer index), and a `memory` counter (`ph:"C"`,
/// `args.bytes`) per device with one value per memory sample. Pure: no I/O.
/// `otherData.iteration_time_ms` is the Metrics' iteration time (metrics.h).
nlohmann::json chrome_trace(const Schedule& schedule, const SimResult& result, const Metrics& metrics);
/// @brief Writes the same document, compact as `chrome_trace(...).dump()`, event by
/// event: a few hundred bytes of memory per op (the transfer lanes), not the whole trace.
void write_chrome_trace(std::ostream& out, const Schedule& schedule, const SimResult& result, const Metrics& metrics);
/// @brief The same with pipeline_metrics(result).
nlohmann::json chrome_trace(const Schedule& schedule, const SimResult& result);

}  // namespace ppsim
