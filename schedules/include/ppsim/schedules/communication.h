#pragma once
/// @file communication.h
/// @brief Communication as a framework runs it: a lowering pass that adds send and
/// receive actions to each device's op list (single or batched in one call), with no
/// notion of time. The engine turns the actions into waits in the op graph.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief How point-to-point transfers behave (docs/concepts.md, "Communication semantics").
/// - Ideal: a transfer starts when its producer ends; nothing blocks (the paper formulas).
/// - Torch: torch.distributed.pipelining: `_add_send_recv`'s action order; sends and
///   receives are posted without blocking compute, each device pair's actions run in order
///   on their own NCCL stream, a transfer starts when both sides reached it (rendezvous),
///   and a compute waits for the receive of its input.
/// - Megatron: Megatron-LM's `_communicate`: blocking (batched) calls between compute
///   ops; a transfer starts when both calls are posted and each call returns when all of
///   its transfers ended.
enum class CommSemantics : std::uint8_t { Ideal = 0, Torch = 1, Megatron = 2 };

/// @brief "ideal", "torch" or "megatron".
const char* comm_semantics_name(CommSemantics semantics);

/// @brief Parses a name; nullopt when unknown.
std::optional<CommSemantics> parse_comm_semantics(std::string_view name);

/// @brief The names, comma-separated, for error messages.
std::string known_comm_semantics();

/// @brief One point-to-point transfer: the output of op `producer` carried to op
/// `consumer` (op indices in device order: device 0's list, then device 1's, ...).
struct CommTransfer {
  std::int32_t producer{0};
  std::int32_t consumer{0};
  std::int32_t src{0};  ///< device of the producer
  std::int32_t dst{0};  ///< device of the consumer
};

/// @brief What a device does next: a compute op, or its side of a transfer.
enum class StepKind : std::uint8_t { Compute = 0, Send = 1, Recv = 2 };

/// @brief One step of a device's program. `index` is the op's position in the device's
/// list (Compute) or a transfer id (Send, Recv). Consecutive Send/Recv steps with the same
/// `call` form one batched call (Megatron's `batch_isend_irecv`); torch posts one action
/// per call.
struct CommStep {
  StepKind kind{StepKind::Compute};
  std::int32_t index{0};
  std::int32_t call{-1};
  bool operator==(const CommStep&) const = default;
};

/// @brief A schedule with its communication: per device, the steps in program order.
struct CommProgram {
  CommSemantics semantics{CommSemantics::Ideal};
  /// Megatron: a call blocks its device until all its transfers ended. Torch: nothing
  /// blocks; each device pair's transfers run in the order both sides posted them.
  bool blocking{false};
  std::vector<CommTransfer> transfers;
  std::vector<std::vector<CommStep>> devices;
};

/// @brief The cross-device data transfers of a schedule, in device order of their
/// producers (F sends its output to the next stage's F, B its input gradient to the
/// previous stage's B); consumers on the producer's own device need no transfer.
std::vector<CommTransfer> cross_device_transfers(const Schedule& schedule);

/// @brief Lowers a schedule: Ideal gives an empty program (no steps); Torch follows
/// torch.distributed.pipelining's `_add_send_recv` (each compute is followed by its send,
/// the receive is placed in the receiver's list at the same moment of a round-robin over
/// the ranks); Megatron places a blocking call after each compute op holding its sends
/// and the next op's receives, combined when they go in opposite directions (steady-state
/// `send_forward_recv_backward`) and as two calls when they go the same way (warm-up
/// `send_forward` then `recv_forward`) or when device d has no steady phase (m <= p-d-1
/// warm-up forwards); when devices hold several chunks (interleaved) each call holds the
/// op's send and the receives of the device's next forward and next backward not yet
/// posted (`send_forward_backward_recv_forward_backward`). Throws ScheduleError when torch's
/// round-robin cannot place the schedule's receives.
CommProgram lower_communication(const Schedule& schedule, CommSemantics semantics);

}  // namespace ppsim
