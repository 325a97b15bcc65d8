// The communication lowering (communication.h): where each framework posts its sends and
// receives, as steps in each device's program. No time here; the engine turns the steps
// into waits.
#include "ppsim/schedules/communication.h"

#include <algorithm>
#include <unordered_map>

namespace ppsim {

const char* comm_semantics_name(CommSemantics semantics) {
  switch (semantics) {
    case CommSemantics::Ideal: return "ideal";
    case CommSemantics::Torch: return "torch";
    case CommSemantics::Megatron: return "megatron";
  }
  return "?";
}

std::optional<CommSemantics> parse_comm_semantics(std::string_view name) {
  for (const CommSemantics s : {CommSemantics::Ideal, CommSemantics::Torch, CommSemantics::Megatron})
    if (name == comm_semantics_name(s)) return s;
  return std::nullopt;
}

std::string known_comm_semantics() { return "ideal, torch, megatron"; }

namespace {

/// Every op of a schedule by (kind, micro-batch, stage, pipe), as its index in device order.
class OpIndex {
 public:
  explicit OpIndex(const Schedule& s) : s_(s) {
    first_.assign(static_cast<std::size_t>(s.devices) + 1, 0);
    for (int d = 0; d < s.devices; ++d) {
      first_[d + 1] = first_[d] + static_cast<int>(s.device_ops[d].size());
      for (std::size_t i = 0; i < s.device_ops[d].size(); ++i) {
        const Op& op = s.device_ops[d][i];
        index_[key(op.kind, op.microbatch, op.stage, op.pipe)] = first_[d] + static_cast<int>(i);
        device_.push_back(d);
      }
    }
  }
  /// -1 when the schedule has no such op.
  [[nodiscard]] int find(OpKind kind, int mb, int stage, int pipe) const {
    if (stage < 0 || stage >= s_.num_stages) return -1;
    const auto it = index_.find(key(kind, mb, stage, pipe));
    return it == index_.end() ? -1 : it->second;
  }
  [[nodiscard]] int first(int device) const { return first_[device]; }
  [[nodiscard]] int device_of(int op) const { return device_[static_cast<std::size_t>(op)]; }
  [[nodiscard]] const Op& op(int index) const {
    const int d = device_of(index);
    return s_.device_ops[d][static_cast<std::size_t>(index - first_[d])];
  }
  [[nodiscard]] int size() const { return first_.back(); }

 private:
  static std::uint64_t key(OpKind kind, int mb, int stage, int pipe) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(mb)) << 32) |
           (static_cast<std::uint64_t>(static_cast<std::uint32_t>(stage)) << 4) |
           (static_cast<std::uint64_t>(pipe) << 2) | static_cast<std::uint64_t>(kind);
  }
  const Schedule& s_;
  std::vector<int> first_;
  std::vector<int> device_;
  std::unordered_map<std::uint64_t, int> index_;
};

/// The op that consumes op u's output on the data path (F: next stage's F; B: previous
/// stage's B), or -1.
int data_consumer(const OpIndex& ix, int u) {
  const Op& op = ix.op(u);
  if (op.kind == OpKind::Forward) return ix.find(OpKind::Forward, op.microbatch, op.stage + 1, op.pipe);
  if (op.kind == OpKind::Backward) return ix.find(OpKind::Backward, op.microbatch, op.stage - 1, op.pipe);
  return -1;
}

std::vector<CommTransfer> transfers_of(const OpIndex& ix) {
  std::vector<CommTransfer> out;
  for (int u = 0; u < ix.size(); ++u) {
    const int v = data_consumer(ix, u);
    if (v >= 0 && ix.device_of(v) != ix.device_of(u)) out.push_back({u, v, ix.device_of(u), ix.device_of(v)});
  }
  return out;
}

/// Per op: the transfer it sends (by producer) and the one it receives (by consumer), or -1.
struct TransferLookup {
  std::vector<int> sent, received;
  TransferLookup(int ops, const std::vector<CommTransfer>& transfers) : sent(ops, -1), received(ops, -1) {
    for (std::size_t t = 0; t < transfers.size(); ++t) {
      sent[static_cast<std::size_t>(transfers[t].producer)] = static_cast<int>(t);
      received[static_cast<std::size_t>(transfers[t].consumer)] = static_cast<int>(t);
    }
  }
};

/// Megatron-LM's interleaved schedule: each call after an op holds its send and the
/// receives of the device's next forward and next backward not yet posted
/// (send_forward_backward_recv_forward_backward posts both receives ahead).
void lower_megatron_interleaved(const Schedule& s, const OpIndex& ix, CommProgram& prog) {
  const TransferLookup look(ix.size(), prog.transfers);
  std::vector<std::uint8_t> posted(prog.transfers.size(), 0);
  int next_call = 0;
  for (int d = 0; d < s.devices; ++d) {
    auto& steps = prog.devices[d];
    const int n = static_cast<int>(s.device_ops[d].size());
    // next_f[i], next_b[i]: the first forward / backward at position >= i.
    std::vector<int> next_f(static_cast<std::size_t>(n) + 1, -1), next_b(next_f);
    for (int i = n - 1; i >= 0; --i) {
      next_f[i] = s.device_ops[d][i].kind == OpKind::Forward ? i : next_f[i + 1];
      next_b[i] = s.device_ops[d][i].kind == OpKind::Backward ? i : next_b[i + 1];
    }
    auto call = [&](int send, int from) {
      const std::size_t before = steps.size();
      if (send >= 0) steps.push_back({StepKind::Send, send, next_call});
      for (const int j : {next_f[from], next_b[from]}) {
        const int t = j >= 0 ? look.received[static_cast<std::size_t>(ix.first(d) + j)] : -1;
        if (t >= 0 && posted[static_cast<std::size_t>(t)] == 0) {
          posted[static_cast<std::size_t>(t)] = 1;
          steps.push_back({StepKind::Recv, t, next_call});
        }
      }
      if (steps.size() > before) ++next_call;
    };
    call(-1, 0);
    for (int i = 0; i < n; ++i) {
      steps.push_back({StepKind::Compute, i, -1});
      call(look.sent[static_cast<std::size_t>(ix.first(d) + i)], i + 1);
    }
  }
}

/// Megatron-LM: a blocking call after each op with its send and the next op's receive.
void lower_megatron(const Schedule& s, const OpIndex& ix, CommProgram& prog) {
  if (s.chunks > 1) {
    lower_megatron_interleaved(s, ix, prog);
    return;
  }
  const TransferLookup look(ix.size(), prog.transfers);
  int next_call = 0;
  auto call = [&](std::vector<CommStep>& steps, int send, int recv) {
    if (send < 0 && recv < 0) return;
    if (send >= 0) steps.push_back({StepKind::Send, send, next_call});
    if (recv >= 0) steps.push_back({StepKind::Recv, recv, next_call});
    ++next_call;
  };
  auto forward_data = [&](int t) { return ix.op(prog.transfers[static_cast<std::size_t>(t)].producer).kind == OpKind::Forward; };
  for (int d = 0; d < s.devices; ++d) {
    auto& steps = prog.devices[d];
    const int n = static_cast<int>(s.device_ops[d].size());
    // Megatron's 1F1B on rank d runs p-d-1 warm-up forwards; with no steady phase left
    // (m <= warm-up) the last warm-up send_forward and the first recv_backward stay apart.
    const bool steady = s.devices - d - 1 < s.microbatches;
    if (n > 0) call(steps, -1, look.received[static_cast<std::size_t>(ix.first(d))]);
    for (int i = 0; i < n; ++i) {
      steps.push_back({StepKind::Compute, i, -1});
      const int send = look.sent[static_cast<std::size_t>(ix.first(d) + i)];
      const int recv = i + 1 < n ? look.received[static_cast<std::size_t>(ix.first(d) + i + 1)] : -1;
      // Same direction (warm-up, cool-down of 1F1B): send_forward then recv_forward.
      if (s.chunks == 1 && send >= 0 && recv >= 0 && (forward_data(send) == forward_data(recv) || !steady)) {
        call(steps, send, -1);
        call(steps, -1, recv);
      } else {
        call(steps, send, recv);
      }
    }
  }
}

/// torch.distributed.pipelining's `_add_send_recv`: rounds over the ranks in order; a
/// rank places its next compute once its input is at hand (made on this rank, or its
/// receive already placed), then its send, and places the receive on the peer's list.
void lower_torch(const Schedule& s, const OpIndex& ix, CommProgram& prog) {
  const TransferLookup look(ix.size(), prog.transfers);
  std::vector<std::uint8_t> done(static_cast<std::size_t>(ix.size()), 0), posted(prog.transfers.size(), 0);
  std::vector<std::size_t> pos(static_cast<std::size_t>(s.devices), 0);
  int next_call = 0;
  for (std::size_t left = static_cast<std::size_t>(ix.size()); left > 0;) {
    bool progress = false;
    for (int d = 0; d < s.devices; ++d) {
      if (pos[d] == s.device_ops[d].size()) continue;
      const int u = ix.first(d) + static_cast<int>(pos[d]);
      const Op& op = ix.op(u);
      int input = -1;  // the op whose output this one needs from another stage
      if (op.kind == OpKind::Forward) input = ix.find(OpKind::Forward, op.microbatch, op.stage - 1, op.pipe);
      if (op.kind == OpKind::Backward) input = ix.find(OpKind::Backward, op.microbatch, op.stage + 1, op.pipe);
      const int t_in = look.received[static_cast<std::size_t>(u)];
      if (input >= 0 && !(t_in >= 0 ? posted[static_cast<std::size_t>(t_in)] != 0 : done[static_cast<std::size_t>(input)] != 0))
        continue;
      prog.devices[d].push_back({StepKind::Compute, static_cast<std::int32_t>(pos[d]), -1});
      done[static_cast<std::size_t>(u)] = 1;
      if (const int t = look.sent[static_cast<std::size_t>(u)]; t >= 0) {
        prog.devices[d].push_back({StepKind::Send, t, next_call++});
        prog.devices[prog.transfers[static_cast<std::size_t>(t)].dst].push_back({StepKind::Recv, t, next_call++});
        posted[static_cast<std::size_t>(t)] = 1;
      }
      ++pos[d];
      --left;
      progress = true;
    }
    if (!progress)
      throw ScheduleError("torch's _add_send_recv cannot place the receives: no device's next op has its input");
  }
}

}  // namespace

std::vector<CommTransfer> cross_device_transfers(const Schedule& schedule) { return transfers_of(OpIndex(schedule)); }

CommProgram lower_communication(const Schedule& schedule, CommSemantics semantics) {
  CommProgram prog;
  prog.semantics = semantics;
  if (semantics == CommSemantics::Ideal) return prog;
  const OpIndex ix(schedule);
  prog.transfers = transfers_of(ix);
  prog.devices.resize(static_cast<std::size_t>(schedule.devices));
  prog.blocking = semantics == CommSemantics::Megatron;
  if (semantics == CommSemantics::Megatron) lower_megatron(schedule, ix, prog);
  else lower_torch(schedule, ix, prog);
  return prog;
}

}  // namespace ppsim
