// The communication lowering (communication.h): where each framework posts its sends and
// receives, as steps in each device's program. No time here; the engine turns the steps
// into waits.
#include "ppsim/schedules/communication.h"

#include <algorithm>
#include <unordered_map>

#include "ppsim/schedules/registry.h"

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

/// One `_communicate` call of Megatron-LM's interleaved schedule on one rank: the tensors
/// it sends to the next and previous rank (transfer ids, -1 for none) and whether it
/// receives from the previous (recv_prev) and the next rank (recv_next).
struct MegatronCall {
  int send_next{-1}, send_prev{-1};
  bool recv_prev{false}, recv_next{false};
};

/// A rank's program: compute ops (>= 0, position in its list) and calls (-1 - call index).
struct MegatronRank {
  std::vector<int> items;
  std::vector<MegatronCall> calls;
  void compute(int i) { items.push_back(i); }
  void call(const MegatronCall& c) {
    items.push_back(-1 - static_cast<int>(calls.size()));
    calls.push_back(c);
  }
};

/// The calls forward_backward_pipelining_with_interleaving (megatron/core/pipeline_parallel/
/// schedules.py, overlap_p2p_comm off) makes on rank r: recv_forward first; after warm-up
/// forward k send_forward_recv_forward (the last one send_forward_backward_recv_forward_
/// backward); after each steady (forward, backward) one send_forward_backward_recv_forward_
/// backward; after cool-down backward k send_backward_recv_backward. Its recv_prev /
/// recv_next conditions are copied, including the first and last rank's look p-1 steps back.
MegatronRank megatron_interleaved_rank(const Schedule& s, const OpIndex& ix, const TransferLookup& look, int r) {
  const int p = s.devices, v = s.chunks;
  const auto& ops = s.device_ops[r];
  std::vector<int> fwd, bwd;  // positions of the k-th forward and backward
  for (int i = 0; i < static_cast<int>(ops.size()); ++i) (ops[i].kind == OpKind::Forward ? fwd : bwd).push_back(i);
  const int total = static_cast<int>(fwd.size());
  const int warmup = std::min(2 * (p - r - 1) + (v - 1) * p, total);
  const int remaining = total - warmup;
  auto chunk_id = [&](int k, bool forward) {
    const int in_group = ((k % (p * v)) + p * v) % (p * v);
    return forward ? in_group / p : v - 1 - in_group / p;
  };
  auto sent = [&](int pos) { return look.sent[static_cast<std::size_t>(ix.first(r) + pos)]; };
  auto has_input = [&](int pos) { return look.received[static_cast<std::size_t>(ix.first(r) + pos)] >= 0; };
  MegatronRank rank;
  if (total > 0) rank.call({-1, -1, has_input(fwd[0]), false});
  for (int k = 0; k < warmup; ++k) {
    rank.compute(fwd[k]);
    MegatronCall c{sent(fwd[k]), -1, !(r == 0 && chunk_id(k + 1, true) == 0) && k != total - 1, false};
    if (k == warmup - 1 && remaining > 0) c.recv_next = r != p - 1;
    rank.call(c);
  }
  for (int k = 0; k < remaining; ++k) {
    rank.compute(fwd[warmup + k]);
    rank.compute(bwd[k]);
    MegatronCall c{sent(fwd[warmup + k]), sent(bwd[k]), true, true};
    if (r == 0) c.recv_prev = chunk_id(warmup + k - (p - 1), true) != v - 1;
    if (r == p - 1) c.recv_next = chunk_id(k - (p - 1), false) != 0;
    if (k == remaining - 1) c.recv_prev = false;
    rank.call(c);
  }
  if (remaining == 0 && total > 0) rank.call({-1, -1, false, has_input(bwd[0])});
  for (int k = remaining; k < total; ++k) {
    rank.compute(bwd[k]);
    rank.call({-1, sent(bwd[k]), false, !(r == p - 1 && chunk_id(k + 1, false) == v - 1) && k != total - 1});
  }
  return rank;
}

/// Megatron-LM's interleaved schedule: its calls on every rank; NCCL pairs the i-th send
/// from rank a to its next rank with that rank's i-th recv_prev (and likewise backwards).
void lower_megatron_interleaved(const Schedule& s, const OpIndex& ix, CommProgram& prog) {
  const TransferLookup look(ix.size(), prog.transfers);
  const int p = s.devices;
  std::vector<MegatronRank> ranks;
  for (int r = 0; r < p; ++r) ranks.push_back(megatron_interleaved_rank(s, ix, look, r));
  // recv[r][c]: the transfers call c of rank r receives.
  std::vector<std::vector<std::vector<int>>> recv(static_cast<std::size_t>(p));
  for (int r = 0; r < p; ++r) recv[r].resize(ranks[r].calls.size());
  for (const bool to_next : {true, false})
    for (int a = 0; a < p; ++a) {
      const int b = to_next ? (a + 1) % p : (a + p - 1) % p;
      std::vector<int> sends;
      for (const MegatronCall& c : ranks[a].calls)
        if (const int t = to_next ? c.send_next : c.send_prev; t >= 0) sends.push_back(t);
      std::size_t next = 0;
      for (std::size_t c = 0; c < ranks[b].calls.size(); ++c)
        if (to_next ? ranks[b].calls[c].recv_prev : ranks[b].calls[c].recv_next) {
          if (next == sends.size()) throw ScheduleError("megatron's interleaved calls do not pair up: device " +
                                                        std::to_string(b) + " receives more than device " +
                                                        std::to_string(a) + " sends");
          recv[b][c].push_back(sends[next++]);
        }
      if (next != sends.size())
        throw ScheduleError("megatron's interleaved calls do not pair up: device " + std::to_string(a) + " sends " +
                            std::to_string(sends.size()) + " tensors to device " + std::to_string(b) +
                            ", which receives " + std::to_string(next));
    }
  int next_call = 0;
  for (int r = 0; r < p; ++r)
    for (const int item : ranks[r].items) {
      if (item >= 0) {
        prog.devices[r].push_back({StepKind::Compute, item, -1});
        continue;
      }
      const auto c = static_cast<std::size_t>(-1 - item);
      const MegatronCall& call = ranks[r].calls[c];
      const std::size_t before = prog.devices[r].size();
      for (const int t : {call.send_next, call.send_prev})
        if (t >= 0) prog.devices[r].push_back({StepKind::Send, t, next_call});
      for (const int t : recv[r][c]) prog.devices[r].push_back({StepKind::Recv, t, next_call});
      if (prog.devices[r].size() > before) ++next_call;
    }
}

/// Megatron-LM's calls exist for its two schedules: 1F1B's placement applies to any
/// one-direction, one-chunk order without overlapped pairs, the interleaved calls to
/// interleaved's own order. Throws ScheduleError for the rest, before any call is placed.
void check_megatron_applies(const Schedule& s) {
  std::string why;
  if (s.pipes > 1) why = "runs two directions";
  else if (!s.overlap_pairs.empty()) why = "runs overlapped F&B pairs";
  else if (s.chunks > 1) {
    bool same = false;
    try {
      same = make_schedule("interleaved", {s.devices, s.microbatches, s.chunks, 0}).device_ops == s.device_ops;
    } catch (const ScheduleError&) {
    }
    if (!same) why = "holds " + std::to_string(s.chunks) + " chunks per device in an order other than interleaved's";
  }
  if (!why.empty())
    throw ScheduleError("megatron semantics model Megatron-LM's 1f1b and interleaved schedules (and one-chunk orders "
                        "like them); " + s.name + " " + why + ": use torch or ideal");
}

/// Megatron-LM: a blocking call after each op with its send and the next op's receive.
void lower_megatron(const Schedule& s, const OpIndex& ix, CommProgram& prog) {
  check_megatron_applies(s);
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
/// An overlapped F&B pair (Schedule::overlap_pairs) is one OVERLAP_F_B action there: it
/// is placed once both its forward's and its backward's inputs are at hand, and both
/// sends follow the pair (the forward's, then the backward's).
void lower_torch(const Schedule& s, const OpIndex& ix, CommProgram& prog) {
  const TransferLookup look(ix.size(), prog.transfers);
  std::vector<std::uint8_t> done(static_cast<std::size_t>(ix.size()), 0), posted(prog.transfers.size(), 0);
  std::vector<std::size_t> pos(static_cast<std::size_t>(s.devices), 0);
  const std::vector<std::vector<std::uint8_t>> pair_start = overlap_pair_starts(s);
  int next_call = 0;
  auto ready = [&](int u) {
    const Op& op = ix.op(u);
    int input = -1;  // the op whose output this one needs from another stage
    if (op.kind == OpKind::Forward) input = ix.find(OpKind::Forward, op.microbatch, op.stage - 1, op.pipe);
    if (op.kind == OpKind::Backward) input = ix.find(OpKind::Backward, op.microbatch, op.stage + 1, op.pipe);
    const int t_in = look.received[static_cast<std::size_t>(u)];
    return input < 0 || (t_in >= 0 ? posted[static_cast<std::size_t>(t_in)] != 0 : done[static_cast<std::size_t>(input)] != 0);
  };
  for (std::size_t left = static_cast<std::size_t>(ix.size()); left > 0;) {
    bool progress = false;
    for (int d = 0; d < s.devices; ++d) {
      if (pos[d] == s.device_ops[d].size()) continue;
      const int u = ix.first(d) + static_cast<int>(pos[d]);
      const int width = pair_start[d][pos[d]] != 0 ? 2 : 1;  // an OVERLAP_F_B action: two ops
      if (!ready(u) || (width == 2 && !ready(u + 1))) continue;
      for (int k = 0; k < width; ++k) {
        prog.devices[d].push_back({StepKind::Compute, static_cast<std::int32_t>(pos[d]) + k, -1});
        done[static_cast<std::size_t>(u + k)] = 1;
      }
      for (int k = 0; k < width; ++k)
        if (const int t = look.sent[static_cast<std::size_t>(u + k)]; t >= 0) {
          prog.devices[d].push_back({StepKind::Send, t, next_call++});
          prog.devices[prog.transfers[static_cast<std::size_t>(t)].dst].push_back({StepKind::Recv, t, next_call++});
          posted[static_cast<std::size_t>(t)] = 1;
        }
      pos[d] += static_cast<std::size_t>(width);
      left -= static_cast<std::size_t>(width);
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
