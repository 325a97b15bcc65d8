#pragma once
/// @file engine.h
/// @brief The discrete-event engine: runs a Schedule over stage costs and a link model.
/// It knows nothing about any particular schedule.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ppsim/engine/event_queue.h"
#include "ppsim/schedules/communication.h"
#include "ppsim/schedules/schedule.h"
#include "ppsim/engine/units.h"
#include "ppsim/engine/link_curve.h"

namespace ppsim {

struct OpGraph;

/// @brief Costs of one model stage (the same for every pipe that runs it).
struct StageCost {
  TimeNs forward;           ///< F time
  TimeNs backward;          ///< full backward time (input + weight gradient)
  TimeNs weight_grad;       ///< the weight-gradient part of `backward` (W when split)
  Bytes activation;         ///< activations stashed per micro-batch from F start to B end
  Bytes weight_activation;  ///< part of `activation` held until W's end when split
  Bytes output;             ///< bytes F sends to the next stage (B sends as many back)
  Bytes parameters;         ///< weight bytes of one version of this stage
  Bytes static_extra;       ///< gradients + optimizer state held for the whole run
  TimeNs forward_comm;      ///< part of `forward` spent in blocking collectives (tensor parallel, ZeRO-3)
  TimeNs backward_comm;     ///< part of `backward` (its input-gradient part) spent in them
  TimeNs recompute;         ///< part of `backward` spent recomputing forward work
};

/// @brief Where and when a transfer runs.
struct TransferSlot {
  TimeNs start;
  TimeNs end;
};

/// @brief Model of the links between devices. A transfer occupies its link, so
/// back-to-back transfers queue. Requests arrive in non-decreasing `ready` order.
class LinkModel {
 public:
  virtual ~LinkModel() = default;
  /// @brief Reserves the link(s) from `src` to `dst` for `bytes`, no earlier than `ready`.
  virtual TransferSlot reserve(int src, int dst, Bytes bytes, TimeNs ready) = 0;
  /// @brief Forgets all reservations (called at the start of each simulation).
  virtual void reset() = 0;
  /// @brief True when every transfer takes zero time (then no transfer events are made).
  [[nodiscard]] virtual bool is_free() const { return false; }
};

/// @brief Every directed device pair has its own link: time = latency + bytes / bandwidth
/// (or a measured curve's segment for that size).
class UniformLinkModel final : public LinkModel {
 public:
  /// @param latency per-transfer latency
  /// @param bandwidth_GBps 10^9 bytes per second; 0 with zero latency means free links
  UniformLinkModel(int devices, TimeNs latency, double bandwidth_GBps);
  /// @brief A measured curve's segments (link_curve.h) decide every transfer's time.
  UniformLinkModel(int devices, std::vector<LinkSegment> segments);
  TransferSlot reserve(int src, int dst, Bytes bytes, TimeNs ready) override;
  void reset() override;
  [[nodiscard]] bool is_free() const override;
  /// @brief Duration of a transfer of `bytes` on an idle link.
  [[nodiscard]] TimeNs duration(Bytes bytes) const;

 private:
  int devices_;
  TimeNs latency_;
  double bandwidth_GBps_;
  std::vector<LinkSegment> segments_;  // non-empty: they replace latency and bandwidth
  std::vector<TimeNs> link_free_;  // [src * devices + dst]
};

/// @brief One executed op.
struct OpRecord {
  Op op;
  int device{0};
  TimeNs start;
  TimeNs end;
  TimeNs collective;  ///< part of [start, end) in blocking collectives (StageCost::forward_comm / backward_comm)
  /// 0: an op on its own; 1: the forward of an overlapped pair run as one unit
  /// (Schedule::overlap_pairs, SimOptions::overlap); 2: that pair's backward. The pair
  /// spans [first.start, second.end); the forward's record holds its share of it
  /// (pair_forward_share), the backward's the rest.
  std::int8_t pair{0};
};

/// @brief Duration of an overlapped forward-backward pair run as one unit:
/// max(F, B) + (1 - overlap) * min(F, B), rounded to the nanosecond; overlap 0 gives
/// F + B exactly, overlap 1 gives max(F, B). `overlap` is in [0, 1].
TimeNs overlapped_pair_duration(TimeNs forward, TimeNs backward, double overlap);

/// @brief The forward's share of a pair of duration `pair`: pair * F / (F + B), rounded
/// down (F itself when the pair takes F + B, so overlap 0 draws as the two ops in turn).
TimeNs pair_forward_share(TimeNs forward, TimeNs backward, TimeNs pair);

/// @brief One executed transfer: output of `producer` carried to `consumer`
/// (indices into SimResult::ops).
struct TransferRecord {
  int src{0};
  int dst{0};
  int producer{0};
  int consumer{0};
  Bytes bytes;
  TimeNs start;
  TimeNs end;
};
// With overlapped pairs run as units a transfer leaves at the end of its producer's pair
// (OpGraph::releases) and its consumer's pair waits for it (OpGraph::needs).

/// @brief One gradient all-reduce between the replicas of a stage (Schedule::gradient_syncs).
struct CollectiveRecord {
  int stage{0};
  std::vector<int> devices;
  Bytes bytes;   ///< gradient bytes reduced (the stage's parameter bytes)
  TimeNs start;  ///< when the last replica finished its last op on the stage
  TimeNs end;
};

/// @brief Memory in use on a device from time `t` on.
struct MemorySample {
  int device{0};
  TimeNs t;
  Bytes bytes;
};

/// @brief Per-device summary.
struct DeviceSummary {
  TimeNs compute_busy;       ///< all compute over the run
  /// Compute inside [window_start, window_end]; for asynchronous schedules, the compute
  /// of the ops of the measured iterations [measure_from, iterations).
  TimeNs window_busy;
  Bytes weights;             ///< parameters held, times weight versions
  int weight_versions{1};    ///< max versions over the stages the device holds
  Bytes static_extra;        ///< gradients and optimizer state
  Bytes peak_activation;
  Bytes peak_memory;         ///< weights + static_extra + peak activations
  TimeNs peak_time;          ///< when peak_memory is first reached
  int peak_inflight{0};      ///< most micro-batches stashed at once
  TimeNs comm_blocked;       ///< blocked in communication over the run (BlockedRecord)
};

struct SimOptions {
  bool record_timeline{true};  ///< keep memory samples (op and transfer records are always kept)
  EventQueueKind queue{EventQueueKind::BinaryHeap};  ///< same results on each; a matter of speed
  /// The schedule's communication steps (lower_communication); null or without steps:
  /// ideal communication, today's op graph.
  const CommProgram* comm{nullptr};
  /// Overlap of the schedule's forward-backward pairs (Schedule::overlap_pairs), in
  /// [0, 1]: when set, each pair runs as one unit of overlapped_pair_duration that starts
  /// once both ops' inputs are at hand and releases both outputs at its end (DeepSeek's
  /// dualpipe.py); unset, the pair's ops run one after the other as any two ops.
  std::optional<double> overlap{};
};

/// @brief A span of time a device spends blocked in communication: inside a blocking
/// call (Megatron), or a compute waiting for the receive of its input (torch).
struct BlockedRecord {
  int device{0};
  TimeNs start;
  TimeNs end;
};

/// @brief Everything the outputs are views of.
struct SimResult {
  int devices{0};
  std::vector<OpRecord> ops;             ///< device 0's ops in order, then device 1's, ...
  std::vector<int> device_first_op;      ///< index of each device's first op; size devices+1
  std::vector<TransferRecord> transfers; ///< in the order they were started
  std::vector<CollectiveRecord> collectives;  ///< gradient all-reduces, in start order
  std::vector<BlockedRecord> blocked;    ///< per device, time-ordered; empty for ideal communication
  /// The op graph the run followed (nodes in `ops` order, then one per gradient sync):
  /// the critical path is its longest path.
  std::shared_ptr<const OpGraph> graph;
  std::vector<MemorySample> memory;      ///< per device, time-ordered (when recorded)
  std::vector<DeviceSummary> per_device;
  TimeNs first_start;
  TimeNs last_end;
  /// Iteration time: makespan for flush schedules; steady-state time per iteration
  /// over [window_start, window_end] for asynchronous ones.
  TimeNs iteration_time;
  TimeNs window_start;
  TimeNs window_end;
  int window_iterations{1};
};

/// @brief Thrown when the event queue empties with ops left. The op graph's cycle check
/// (ScheduleError) runs first, so this means an engine bug.
class DeadlockError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief Runs the schedule. `costs` has one entry per model stage (schedule.num_stages).
/// Validates the schedule first and checks its op graph for a cycle of waits, both as
/// ScheduleError, before any event runs.
SimResult simulate(const Schedule& schedule, const std::vector<StageCost>& costs,
                   LinkModel& links, const SimOptions& options = {});

}  // namespace ppsim
