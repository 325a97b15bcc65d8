#pragma once
/// @file schedule.h
/// @brief A pipeline schedule as data: per-device ordered op lists. Knows nothing of time.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ppsim {

/// @brief Op kinds. `Backward` is the full backward unless the schedule splits backward,
/// in which case it is the input-gradient part and `Weight` is the weight-gradient part.
enum class OpKind : std::uint8_t { Forward = 0, Backward = 1, Weight = 2 };

/// @brief Token letter for an op kind: F, B or W.
char op_letter(OpKind kind);

/// @brief One unit of work on one device.
/// `stage` is the model stage index within its pipe (0 .. num_stages-1, in data-flow order);
/// `chunk` is which of the device's v model chunks it belongs to; `pipe` tells the
/// directions of bidirectional schedules apart. `microbatch` is global: asynchronous
/// schedules lay several iterations out, micro-batch `i` belonging to iteration `i / m`.
struct Op {
  OpKind kind{OpKind::Forward};
  std::int32_t microbatch{0};
  std::int32_t stage{0};
  std::int16_t chunk{0};
  std::int8_t pipe{0};
  bool operator==(const Op&) const = default;
};

/// @brief How many copies of each stage's weights a device keeps.
enum class WeightPolicy : std::uint8_t {
  Single,        ///< one version (flush schedules)
  StashInFlight, ///< PipeDream weight stashing: one version per micro-batch in flight
  DoubleBuffer,  ///< PipeDream-2BW: two versions
};

/// @brief The weight-version rule, the one place it is written: copies of a stage's
/// weights a device keeps when at most `inflight` micro-batches of it are stashed at once.
/// Single: 1; DoubleBuffer (2BW): 2; StashInFlight (PipeDream): one per micro-batch in
/// flight, at least 1.
int weight_versions(WeightPolicy policy, int inflight);

/// @brief Devices that each hold a replica of one model stage and all-reduce its weight
/// gradients once they have all run their last op on it (bidirectional schedules).
struct GradientSync {
  int stage{0};              ///< model stage index
  std::vector<int> devices;  ///< the devices holding a replica of it
};

/// @brief A complete schedule: what every device runs, in order.
struct Schedule {
  std::string name;            ///< canonical registry name
  int devices{0};              ///< devices in the pipeline (p)
  int num_stages{0};           ///< model stages per pipe (p * v for interleaved)
  int pipes{1};                ///< 2 for bidirectional schedules
  int chunks{1};               ///< v: model chunks per device and pipe
  int microbatches{0};         ///< m per iteration
  int iterations{1};           ///< iterations laid out (asynchronous schedules use > 1)
  bool split_backward{false};  ///< B is input-gradient only and W ops exist
  bool synchronous{true};      ///< flushes at the end of each iteration
  WeightPolicy weights{WeightPolicy::Single};
  /// For asynchronous schedules: iterations [measure_from, iterations) form the
  /// steady-state window in which time per iteration is measured. Micro-batches from
  /// iterations*microbatches on are a cool-down tail that keeps the pipeline full while
  /// the last measured iteration runs; they belong to no iteration.
  int measure_from{0};
  std::vector<std::vector<Op>> device_ops;  ///< [device] -> ops in execution order
  /// Gradient all-reduces between stage replicas at the end of the iteration; the engine
  /// costs them with the link model (parameter bytes of the stage, ring all-reduce).
  std::vector<GradientSync> gradient_syncs;
  /// Overlapped forward-backward pairs (DualPipe, DualPipeV, 1f1b-overlap): per device,
  /// the positions i at which op i (a forward) and op i+1 (a backward) form one pair.
  /// A run with `pipeline.overlap` set runs each pair as one unit (overlapped_pair_duration,
  /// engine.h); without it they run as two ops, the forward then the backward.
  std::vector<std::vector<std::int32_t>> overlap_pairs;
  std::string note;  ///< human note (e.g. where we follow a reference over a paper)
};

/// @brief Per device, per op position: 1 where an overlapped F&B pair starts
/// (Schedule::overlap_pairs), else 0. All zeros for a schedule without pairs.
std::vector<std::vector<std::uint8_t>> overlap_pair_starts(const Schedule& schedule);

/// @brief Most micro-batches each model stage stashes at once, from the op order alone
/// (a device runs its list in order, so this does not depend on timing).
std::vector<int> stage_inflight_peaks(const Schedule& schedule);

/// @brief Requested pipeline shape.
struct ScheduleParams {
  int stages{1};        ///< p, devices in the pipeline
  int microbatches{1};  ///< m
  int chunks{1};        ///< v
  int iterations{0};    ///< asynchronous schedules: iterations to simulate (0 = choose)
};

/// @brief Thrown when a schedule does not support a shape; `what()` says why.
class ScheduleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief Token for an op as printed by `ppsim schedule`: F3, B3, W3, F3c1, F3p1.
std::string op_token(const Op& op);

/// @brief "F", "B" or "W".
const char* op_kind_name(OpKind kind);

/// @brief Like op_token, but shows the chunk and pipe suffixes whenever the schedule has
/// several (F3c0 beside F3c1), for figures and traces.
std::string op_label(const Op& op, bool show_chunk, bool show_pipe);

/// @brief The note of a schedule with overlap pairs that runs them as two ops in turn
/// (no pipeline.overlap); note_with_overlap rewrites it for a run with the overlap.
inline constexpr const char* kPairsInTurnNote = "overlapped F&B pairs run forward then backward on the compute lane";

/// @brief `note` with kPairsInTurnNote replaced by what a run with overlap `overlap` does.
std::string note_with_overlap(const std::string& note, double overlap);

/// @brief Label of an overlapped pair as figures and traces show it: the forward's and
/// the backward's op_label joined by '+' ("F3+B1", "F3c0+B1c1").
std::string pair_label(const Op& forward, const Op& backward, bool show_chunk, bool show_pipe);

/// @brief Kind name of an overlapped pair: "F&B".
const char* pair_kind_name();

/// @brief Checks structural soundness: each (micro-batch, stage, pipe) has exactly one F
/// and one B (and one W iff split), each (stage, pipe) lives on one device, indices in
/// range, every overlap pair a forward followed by a backward on its device, pairs
/// disjoint. Throws ScheduleError naming the first problem.
void validate_schedule(const Schedule& schedule);

}  // namespace ppsim
