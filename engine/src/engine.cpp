// The discrete-event engine. It walks the op graph (op_graph.h) the way taskflow walks a
// task graph: each op counts the edges into it that are not yet satisfied (its data
// inputs and the previous op on its device); a finished op satisfies its out-edges, at
// once when local or when the transfer arrives, and an op whose count reaches zero
// starts. Events are keyed by (time, seq) with seq strictly increasing, so ties resolve
// identically on every run.
#include "ppsim/engine/engine.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "ppsim/engine/op_graph.h"

namespace ppsim {

// ---------------------------------------------------------------- links
UniformLinkModel::UniformLinkModel(int devices, TimeNs latency, double bandwidth_GBps)
    : devices_(devices), latency_(latency), bandwidth_GBps_(bandwidth_GBps),
      link_free_(static_cast<std::size_t>(devices) * devices) {}

UniformLinkModel::UniformLinkModel(int devices, std::vector<LinkSegment> segments)
    : devices_(devices), latency_(), bandwidth_GBps_(0.0), segments_(std::move(segments)),
      link_free_(static_cast<std::size_t>(devices) * devices) {}

TimeNs UniformLinkModel::duration(Bytes bytes) const {
  if (!segments_.empty()) {
    const LinkCurvePart p = link_curve_part(segments_, bytes.value);
    return TimeNs{static_cast<std::int64_t>(std::llround(p.latency_ns)) +
                  static_cast<std::int64_t>(std::llround(static_cast<double>(bytes.value) * p.per_byte_ns))};
  }
  if (bandwidth_GBps_ <= 0.0) return latency_;
  // bytes / (GB/s * 1e9) seconds = bytes / GB/s nanoseconds
  return latency_ + TimeNs{static_cast<std::int64_t>(std::llround(static_cast<double>(bytes.value) / bandwidth_GBps_))};
}

TransferSlot UniformLinkModel::reserve(int src, int dst, Bytes bytes, TimeNs ready) {
  TimeNs& free_at = link_free_[static_cast<std::size_t>(src) * devices_ + dst];
  const TimeNs start = std::max(ready, free_at);
  const TimeNs end = start + duration(bytes);
  free_at = end;
  return {start, end};
}

void UniformLinkModel::reset() { std::fill(link_free_.begin(), link_free_.end(), TimeNs{}); }

bool UniformLinkModel::is_free() const { return segments_.empty() && latency_.ns == 0 && bandwidth_GBps_ <= 0.0; }

// ---------------------------------------------------------------- overlapped pairs
TimeNs overlapped_pair_duration(TimeNs forward, TimeNs backward, double overlap) {
  const TimeNs longer = std::max(forward, backward);
  const TimeNs shorter = std::min(forward, backward);
  if (overlap <= 0.0) return longer + shorter;
  return longer + TimeNs{static_cast<std::int64_t>(std::llround((1.0 - std::min(overlap, 1.0)) * static_cast<double>(shorter.ns)))};
}

TimeNs pair_forward_share(TimeNs forward, TimeNs backward, TimeNs pair) {
  const std::int64_t sum = forward.ns + backward.ns;
  if (sum <= 0 || pair.ns == sum) return forward;
  return TimeNs{static_cast<std::int64_t>(static_cast<__int128>(pair.ns) * forward.ns / sum)};
}

// ---------------------------------------------------------------- engine
namespace {

constexpr std::int64_t kMaxEngineOps = std::int64_t{1} << Event::kTargetBits;
constexpr std::int32_t kSyncNode = -1;      // NodeState::device of a gradient sync
constexpr std::int32_t kTransferNode = -2;  // ... of a transfer (a graph with communication steps)

template <EventQueue Queue>
class Engine {
 public:
  Engine(const Schedule& s, const std::vector<StageCost>& costs, LinkModel& links, const SimOptions& opt,
         std::shared_ptr<const OpGraph> graph, const std::vector<std::uint32_t>& in_degrees)
      : s_(s), costs_(costs), links_(links), opt_(opt), graph_(std::move(graph)), g_(*graph_), in_(in_degrees) {}

  SimResult run() {
    setup();
    for (int d = 0; d < s_.devices; ++d) {
      const int first = r_.device_first_op[d];
      if (first < r_.device_first_op[d + 1] && node_[first].waiting == 0) start(static_cast<std::uint32_t>(first));
    }
    while (!queue_.empty()) {
      const Event ev = queue_.pop();
      assert(ev.time() >= now_ && "time went backwards");
      now_ = ev.time();
      if (ev.flag()) satisfy(ev.target());  // a transfer into it arrived
      else finish(ev.target());
    }
    if (finished_ != g_.num_ops) throw DeadlockError("engine stopped with ops left although the op graph is acyclic");
    summarize();
    return std::move(r_);
  }

 private:
  [[nodiscard]] TimeNs duration(const Op& op) const;
  [[nodiscard]] TimeNs op_duration(std::uint32_t index) const;
  [[nodiscard]] std::pair<std::uint32_t, std::uint32_t> data_edge(std::uint32_t u, std::uint32_t v) const;
  void push(TimeNs t, std::uint32_t target, bool arrival) { queue_.push(Event::make(t, seq_++, target, arrival)); }
  void setup();
  void start(std::uint32_t index);
  void finish(std::uint32_t index);
  void satisfy(std::uint32_t index) {
    if (--node_[index].waiting == 0) start(index);
  }
  void transfer(std::uint32_t producer, std::uint32_t consumer, int dst);
  [[nodiscard]] Bytes sent_bytes(const Op& op) const {
    return costs_[op.kind == OpKind::Forward ? op.stage : op.stage - 1].output;
  }
  void start_transfer(std::uint32_t node);
  void transfer_done(std::uint32_t node);
  void record_blocked();
  void record_blocked_calls(int device);
  void record_blocked_waits(int device);
  void adjust_memory(int device, Bytes delta);
  void summarize();
  void run_gradient_syncs();
  void measure_window(bool steady_state);
  void summarize_devices(bool steady_state);
  void finish_memory_timeline();

  const Schedule& s_;
  const std::vector<StageCost>& costs_;
  LinkModel& links_;
  const SimOptions& opt_;
  std::shared_ptr<const OpGraph> graph_;
  const OpGraph& g_;
  const std::vector<std::uint32_t>& in_;  // in-degree of each node
  bool free_links_{false};
  SimResult r_;
  // Per node, what delivering an input reads and writes, in 8 bytes: the edges into it not
  // yet satisfied and its device (-1 for a gradient sync).
  struct NodeState {
    std::uint32_t waiting;
    std::int32_t device;
  };
  std::vector<NodeState> node_;
  std::vector<TimeNs> sync_ready_;      // per gradient sync: when its last input finished
  std::vector<Bytes> activation_;       // current stashed activation bytes per device
  std::vector<int> inflight_;           // micro-batches stashed per device
  std::vector<int> slot_inflight_;      // per (pipe, stage): micro-batches stashed
  std::vector<int> slot_peak_;
  std::vector<std::size_t> transfer_record_;  // per transfer node: its index in r_.transfers
  Queue queue_;
  std::uint64_t seq_{0};
  TimeNs now_{};
  std::uint32_t finished_{0};
};

template <EventQueue Queue>
TimeNs Engine<Queue>::duration(const Op& op) const {
  const StageCost& c = costs_[op.stage];
  switch (op.kind) {
    case OpKind::Forward: return c.forward;
    case OpKind::Backward: return s_.split_backward ? c.backward - c.weight_grad : c.backward;
    case OpKind::Weight: return c.weight_grad;
  }
  return {};
}

// An op of an overlapped pair run as a unit takes its share of the pair's time.
template <EventQueue Queue>
TimeNs Engine<Queue>::op_duration(std::uint32_t index) const {
  const int role = g_.role(index);
  if (role == 0) return duration(r_.ops[index].op);
  const std::uint32_t f = role == 1 ? index : index - 1;
  const TimeNs fd = duration(r_.ops[f].op);
  const TimeNs bd = duration(r_.ops[f + 1].op);
  const TimeNs pair = overlapped_pair_duration(fd, bd, opt_.overlap.value_or(0.0));
  const TimeNs first = pair_forward_share(fd, bd, pair);
  return role == 1 ? first : pair - first;
}

// The ops edge u -> v carries data between: u and v, unless an overlapped pair stands in
// for one of them (its backward sends its forward's activations; its forward waits for
// its backward's input gradient).
template <EventQueue Queue>
std::pair<std::uint32_t, std::uint32_t> Engine<Queue>::data_edge(std::uint32_t u, std::uint32_t v) const {
  auto feeds = [&](std::uint32_t a, std::uint32_t b) {
    const Op& x = r_.ops[a].op;
    const Op& y = r_.ops[b].op;
    if (x.kind != y.kind || x.microbatch != y.microbatch || x.pipe != y.pipe) return false;
    return (x.kind == OpKind::Forward && y.stage == x.stage + 1) || (x.kind == OpKind::Backward && y.stage + 1 == x.stage);
  };
  for (const std::uint32_t p : {u, g_.role(u) == 2 ? u - 1 : u})
    for (const std::uint32_t c : {v, g_.role(v) == 1 ? v + 1 : v})
      if (feeds(p, c)) return {p, c};
  return {u, v};
}

template <EventQueue Queue>
void Engine<Queue>::setup() {
  const int n = s_.devices;
  const std::uint32_t total = g_.num_ops;
  r_.devices = n;
  r_.graph = graph_;
  r_.per_device.assign(n, DeviceSummary{});
  r_.device_first_op = g_.device_first_op;
  // Filled in one pass (no zeroing first): at a million ops, zeroing is a visible cost.
  r_.ops.reserve(total);
  node_.reserve(in_.size());
  for (int d = 0; d < n; ++d)
    for (const Op& op : s_.device_ops[d]) {
      r_.ops.push_back(OpRecord{op, d, {}, {}, {}, static_cast<std::int8_t>(g_.role(static_cast<std::uint32_t>(r_.ops.size())))});
      node_.push_back({in_[node_.size()], d});
    }
  for (std::size_t v = total; v < in_.size(); ++v)  // gradient syncs, then transfers
    node_.push_back({in_[v], v < total + g_.num_syncs ? kSyncNode : kTransferNode});
  transfer_record_.assign(g_.transfers.size(), 0);
  sync_ready_.assign(s_.gradient_syncs.size(), TimeNs{});
  activation_.assign(n, Bytes{});
  inflight_.assign(n, 0);
  slot_inflight_.assign(static_cast<std::size_t>(s_.pipes) * s_.num_stages, 0);
  slot_peak_ = slot_inflight_;
  if (opt_.record_timeline) r_.memory.reserve(total + n);
  free_links_ = links_.is_free();
  r_.transfers.reserve(free_links_ ? 0 : total);
  links_.reset();
}

template <EventQueue Queue>
void Engine<Queue>::adjust_memory(int device, Bytes delta) {
  Bytes& cur = activation_[device];
  cur += delta;
  DeviceSummary& sum = r_.per_device[device];
  if (cur > sum.peak_activation) {
    sum.peak_activation = cur;
    sum.peak_time = now_;
  }
  if (opt_.record_timeline) {
    // Several changes at one instant collapse into one sample.
    auto& mem = r_.memory;
    if (!mem.empty() && mem.back().device == device && mem.back().t == now_) mem.back().bytes = cur;
    else mem.push_back({device, now_, cur});
  }
}

template <EventQueue Queue>
void Engine<Queue>::start(std::uint32_t index) {
  OpRecord& rec = r_.ops[index];
  rec.start = now_;
  rec.end = now_ + op_duration(index);
  const StageCost& cost = costs_[rec.op.stage];
  rec.collective = rec.op.kind == OpKind::Forward ? cost.forward_comm
                   : rec.op.kind == OpKind::Backward ? cost.backward_comm : TimeNs{};
  if (rec.pair != 0) rec.collective = std::min(rec.collective, rec.end - rec.start);
  if (rec.op.kind == OpKind::Forward) {
    const std::size_t slot = static_cast<std::size_t>(rec.op.pipe) * s_.num_stages + rec.op.stage;
    slot_peak_[slot] = std::max(slot_peak_[slot], ++slot_inflight_[slot]);
    auto& sum = r_.per_device[rec.device];
    sum.peak_inflight = std::max(sum.peak_inflight, ++inflight_[rec.device]);
    adjust_memory(rec.device, costs_[rec.op.stage].activation);
  }
  push(rec.end, index, false);
}

// Only data edges cross devices: F sends its stage's output forward, B sends the gradient
// of the previous stage's output back.
template <EventQueue Queue>
void Engine<Queue>::transfer(std::uint32_t producer, std::uint32_t consumer, int dst) {
  const OpRecord& from = r_.ops[producer];
  const auto [p, c] = data_edge(producer, consumer);
  const Bytes bytes = sent_bytes(r_.ops[p].op);
  const TransferSlot slot = links_.reserve(from.device, dst, bytes, now_);
  r_.transfers.push_back({from.device, dst, static_cast<int>(p), static_cast<int>(c), bytes, slot.start, slot.end});
  push(slot.end, consumer, true);
}

// A transfer node (a graph with communication steps) starts once both sides posted it
// and what it waits for ended; it holds its link like any transfer.
template <EventQueue Queue>
void Engine<Queue>::start_transfer(std::uint32_t node) {
  const std::size_t t = node - g_.num_ops - g_.num_syncs;
  const CommTransfer& tr = g_.transfers[t];
  const Bytes bytes = sent_bytes(r_.ops[static_cast<std::size_t>(tr.producer)].op);
  const TransferSlot slot = links_.reserve(tr.src, tr.dst, bytes, now_);
  transfer_record_[t] = r_.transfers.size();
  r_.transfers.push_back({tr.src, tr.dst, tr.producer, tr.consumer, bytes, slot.start, slot.end});
  push(slot.end, node, false);
}

template <EventQueue Queue>
void Engine<Queue>::transfer_done(std::uint32_t node) {
  for (const auto e : boost::make_iterator_range(boost::out_edges(node, g_.csr))) {
    const auto v = static_cast<std::uint32_t>(boost::target(e, g_.csr));
    if (--node_[v].waiting != 0) continue;
    if (node_[v].device >= 0) start(v);
    else if (node_[v].device == kTransferNode) start_transfer(v);
  }
}

template <EventQueue Queue>
void Engine<Queue>::finish(std::uint32_t index) {
  if (index >= g_.num_ops) {
    transfer_done(index);
    return;
  }
  const OpRecord& rec = r_.ops[index];
  const Op& op = rec.op;
  const int device = rec.device;
  ++finished_;
  const StageCost& cost = costs_[op.stage];
  if (op.kind == OpKind::Backward) {
    --slot_inflight_[static_cast<std::size_t>(op.pipe) * s_.num_stages + op.stage];
    --inflight_[rec.device];
    adjust_memory(rec.device, Bytes{} - (s_.split_backward ? cost.activation - cost.weight_activation : cost.activation));
  } else if (op.kind == OpKind::Weight) {
    adjust_memory(rec.device, Bytes{} - cost.weight_activation);
  }
  for (const auto e : boost::make_iterator_range(boost::out_edges(index, g_.csr))) {
    const auto v = static_cast<std::uint32_t>(boost::target(e, g_.csr));
    NodeState& target = node_[v];
    if (target.device == device) {
      if (--target.waiting == 0) start(v);
    } else if (target.device == kTransferNode) {
      if (--target.waiting == 0) start_transfer(v);
    } else if (target.device < 0) {
      sync_ready_[v - g_.num_ops] = now_;  // edges come from each member's last op, in time order
    } else if (free_links_) {
      if (--target.waiting == 0) start(v);
    } else {
      transfer(index, v, target.device);
    }
  }
}

// Ring all-reduce of each stage's gradients among its replicas, started when the last
// replica has run its last op on the stage: 2(n-1) steps in which every member sends
// bytes/n to the next, each step on the link model, so free links cost nothing and a
// uniform link costs 2(n-1)/n * bytes / bandwidth + 2(n-1) latencies. They run after the
// compute they wait for and before the iteration ends.
template <EventQueue Queue>
void Engine<Queue>::run_gradient_syncs() {
  std::vector<std::size_t> order(s_.gradient_syncs.size());
  for (std::size_t g = 0; g < order.size(); ++g) order[g] = g;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return sync_ready_[a] < sync_ready_[b]; });
  for (const std::size_t g : order) {
    const GradientSync& sync = s_.gradient_syncs[g];
    const int members = static_cast<int>(sync.devices.size());
    const Bytes bytes = costs_[sync.stage].parameters;
    TimeNs t = sync_ready_[g];
    if (members > 1 && !free_links_) {
      const Bytes piece{(bytes.value + members - 1) / members};
      for (int step = 0; step < 2 * (members - 1); ++step) {
        TimeNs step_end = t;
        for (int i = 0; i < members; ++i)
          step_end = std::max(step_end, links_.reserve(sync.devices[i], sync.devices[(i + 1) % members], piece, t).end);
        t = step_end;
      }
    }
    r_.collectives.push_back({sync.stage, sync.devices, bytes, sync_ready_[g], t});
    r_.last_end = std::max(r_.last_end, t);
  }
}

template <EventQueue Queue>
void Engine<Queue>::summarize() {
  r_.first_start = r_.ops.empty() ? TimeNs{} : TimeNs::max();
  for (const auto& rec : r_.ops) {
    r_.first_start = std::min(r_.first_start, rec.start);
    r_.last_end = std::max(r_.last_end, rec.end);
  }
  run_gradient_syncs();
  const bool steady_state =
      !(s_.synchronous || s_.iterations <= 1 || s_.measure_from < 1 || s_.measure_from >= s_.iterations);
  measure_window(steady_state);
  summarize_devices(steady_state);
  if (opt_.comm != nullptr && !opt_.comm->devices.empty()) record_blocked();
  if (opt_.record_timeline) finish_memory_timeline();
}

template <EventQueue Queue>
void Engine<Queue>::record_blocked() {
  for (int d = 0; d < s_.devices; ++d) {
    if (opt_.comm->blocking) record_blocked_calls(d);
    else record_blocked_waits(d);
  }
  for (const BlockedRecord& b : r_.blocked) r_.per_device[b.device].comm_blocked += b.end - b.start;
}

// Blocking calls: a call is posted when the step before it ends (the run's start for a
// first step) and returns when its last transfer ends.
template <EventQueue Queue>
void Engine<Queue>::record_blocked_calls(int d) {
  const auto& steps = opt_.comm->devices[d];
  TimeNs prev_end = r_.first_start;
  for (std::size_t i = 0; i < steps.size();) {
    if (steps[i].kind == StepKind::Compute) {
      prev_end = r_.ops[static_cast<std::size_t>(r_.device_first_op[d] + steps[i].index)].end;
      ++i;
      continue;
    }
    TimeNs returned = prev_end;
    const std::int32_t call = steps[i].call;
    for (; i < steps.size() && steps[i].kind != StepKind::Compute && steps[i].call == call; ++i)
      returned = std::max(returned, r_.transfers[transfer_record_[static_cast<std::size_t>(steps[i].index)]].end);
    if (returned > prev_end) r_.blocked.push_back({d, prev_end, returned});
    prev_end = returned;
  }
}

// Non-blocking sends and receives: a compute that starts when the receive of its input
// ends, later than the op before it on its device, was blocked in that wait.
template <EventQueue Queue>
void Engine<Queue>::record_blocked_waits(int d) {
  std::vector<std::size_t> into(static_cast<std::size_t>(r_.device_first_op[d + 1] - r_.device_first_op[d]), SIZE_MAX);
  for (const CommStep& st : opt_.comm->devices[d])
    if (st.kind == StepKind::Recv) {
      const CommTransfer& t = g_.transfers[static_cast<std::size_t>(st.index)];
      std::size_t& slot = into[static_cast<std::size_t>(static_cast<int>(g_.needs(static_cast<std::uint32_t>(t.consumer))) - r_.device_first_op[d])];
      const std::size_t rec = transfer_record_[static_cast<std::size_t>(st.index)];
      if (slot == SIZE_MAX || r_.transfers[rec].end > r_.transfers[slot].end) slot = rec;  // a pair waits for the later input
    }
  TimeNs prev_end = r_.first_start;
  for (std::size_t i = 0; i < into.size(); ++i) {
    const OpRecord& rec = r_.ops[static_cast<std::size_t>(r_.device_first_op[d]) + i];
    if (into[i] != SIZE_MAX && rec.start > prev_end && r_.transfers[into[i]].end == rec.start)
      r_.blocked.push_back({d, prev_end, rec.start});
    prev_end = rec.end;
  }
}

template <EventQueue Queue>
void Engine<Queue>::measure_window(bool steady_state) {
  if (!steady_state) {
    r_.window_start = r_.first_start;
    r_.window_end = r_.last_end;
    r_.window_iterations = std::max(1, s_.synchronous ? 1 : s_.iterations);
  } else {
    std::vector<TimeNs> completion(static_cast<std::size_t>(s_.iterations), TimeNs{});
    for (const auto& rec : r_.ops) {
      const int it = rec.op.microbatch / s_.microbatches;
      if (it < s_.iterations) completion[it] = std::max(completion[it], rec.end);
    }
    r_.window_start = completion[s_.measure_from - 1];
    r_.window_end = completion[s_.iterations - 1];
    r_.window_iterations = s_.iterations - s_.measure_from;
  }
  r_.iteration_time = TimeNs{(r_.window_end - r_.window_start).ns / r_.window_iterations};
}

template <EventQueue Queue>
void Engine<Queue>::summarize_devices(bool steady_state) {
  for (int d = 0; d < s_.devices; ++d) {
    DeviceSummary& sum = r_.per_device[d];
    std::vector<std::size_t> held;
    for (int i = r_.device_first_op[d]; i < r_.device_first_op[d + 1]; ++i) {
      const OpRecord& rec = r_.ops[i];
      sum.compute_busy += rec.end - rec.start;
      if (steady_state) {
        // The measured iterations' work, wherever it ran: a device that runs ahead of
        // device 0 is not idle for the difference.
        const int it = rec.op.microbatch / s_.microbatches;
        if (it >= s_.measure_from && it < s_.iterations) sum.window_busy += rec.end - rec.start;
      } else {
        const TimeNs lo = std::max(rec.start, r_.window_start);
        const TimeNs hi = std::min(rec.end, r_.window_end);
        if (hi > lo) sum.window_busy += hi - lo;
      }
      const std::size_t slot = static_cast<std::size_t>(rec.op.pipe) * s_.num_stages + rec.op.stage;
      if (std::find(held.begin(), held.end(), slot) == held.end()) held.push_back(slot);
    }
    sum.weight_versions = 1;
    for (std::size_t slot : held) {
      const int versions = weight_versions(s_.weights, slot_peak_[slot]);
      sum.weight_versions = std::max(sum.weight_versions, versions);
      const StageCost& c = costs_[slot % s_.num_stages];
      sum.weights += c.parameters * versions;
      sum.static_extra += c.static_extra;
    }
    sum.peak_memory = sum.weights + sum.static_extra + sum.peak_activation;
  }
}

// Samples so far hold activations only; add each device's constant part and an opening
// sample at the start of the run, grouped by device (a counting pass keeps each device's
// samples in time order).
template <EventQueue Queue>
void Engine<Queue>::finish_memory_timeline() {
  const int n = s_.devices;
  std::vector<std::size_t> offset(static_cast<std::size_t>(n) + 1, 0);
  for (const auto& m : r_.memory) ++offset[m.device + 1];
  for (int d = 0; d < n; ++d) offset[d + 1] += offset[d] + 1;  // +1: the opening sample
  std::vector<MemorySample> mem(r_.memory.size() + n);
  std::vector<std::size_t> next(offset.begin(), offset.end() - 1);
  for (int d = 0; d < n; ++d) mem[next[d]++] = {d, r_.first_start, Bytes{}};
  for (const auto& m : r_.memory) mem[next[m.device]++] = m;
  for (auto& m : mem) m.bytes += r_.per_device[m.device].weights + r_.per_device[m.device].static_extra;
  r_.memory = std::move(mem);
}

}  // namespace

SimResult simulate(const Schedule& schedule, const std::vector<StageCost>& costs, LinkModel& links,
                   const SimOptions& options) {
  validate_schedule(schedule);
  if (static_cast<int>(costs.size()) != schedule.num_stages)
    throw ScheduleError("costs given for " + std::to_string(costs.size()) + " stages, schedule has " +
                        std::to_string(schedule.num_stages));
  std::size_t total = 0;
  for (const auto& ops : schedule.device_ops) total += ops.size();
  if (static_cast<std::int64_t>(total) >= kMaxEngineOps)
    throw ScheduleError("schedule has " + std::to_string(total) + " ops; the engine handles fewer than " +
                        std::to_string(kMaxEngineOps));
  std::vector<std::uint32_t> in;
  const bool with_comm = options.comm != nullptr && !options.comm->devices.empty();
  if (options.overlap && !(*options.overlap >= 0.0 && *options.overlap <= 1.0))
    throw ScheduleError("overlap must be in [0, 1] (got " + std::to_string(*options.overlap) + ")");
  const bool overlapped = options.overlap.has_value();
  auto graph = std::make_shared<const OpGraph>(with_comm ? build_comm_graph(schedule, *options.comm, &in, overlapped)
                                                         : build_op_graph(schedule, &in, overlapped));
  if (graph->num_nodes() >= kMaxEngineOps)
    throw ScheduleError("schedule has " + std::to_string(graph->num_nodes()) + " ops and transfers; the engine handles fewer than " +
                        std::to_string(kMaxEngineOps));
  check_acyclic(schedule, *graph, in);
  if (options.queue == EventQueueKind::QuaternaryHeap)
    return Engine<QuaternaryHeapQueue>(schedule, costs, links, options, std::move(graph), in).run();
  return Engine<BinaryHeapQueue>(schedule, costs, links, options, std::move(graph), in).run();
}

}  // namespace ppsim
