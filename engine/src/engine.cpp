// The discrete-event engine. Each device runs its op list in order on one compute lane;
// an op starts when it is at the head of its list, the device is idle and every input
// has arrived. Events are keyed by (time, seq) with seq strictly increasing, so ties
// resolve identically on every run.
#include "ppsim/engine/engine.h"

#include <algorithm>
#include <cassert>
#include <queue>
#include <string>

#include "ppsim/schedules/registry.h"

namespace ppsim {

// ---------------------------------------------------------------- links
UniformLinkModel::UniformLinkModel(int devices, TimeNs latency, double bandwidth_GBps)
    : devices_(devices), latency_(latency), bandwidth_GBps_(bandwidth_GBps),
      link_free_(static_cast<std::size_t>(devices) * devices) {}

TimeNs UniformLinkModel::duration(Bytes bytes) const {
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

bool UniformLinkModel::is_free() const { return latency_.ns == 0 && bandwidth_GBps_ <= 0.0; }

// ---------------------------------------------------------------- engine
namespace {

// 16 bytes: one unsigned 128-bit key, time in the high word, then seq (36 bits) | target op
// (27 bits) | arrival flag (1 bit). Ordering by the key is ordering by (time, seq) since seq
// is unique; one wide compare keeps the heap's sift loops free of data-dependent branches.
struct Event {
  unsigned __int128 key;
  [[nodiscard]] std::int64_t time() const { return static_cast<std::int64_t>(key >> 64); }
  [[nodiscard]] std::int32_t target() const { return static_cast<std::int32_t>((static_cast<std::uint64_t>(key) >> 1) & ((1u << 27) - 1)); }
  [[nodiscard]] bool arrival() const { return (static_cast<std::uint64_t>(key) & 1u) != 0; }  // an input of target arrived
};
struct EventAfter {
  bool operator()(const Event& a, const Event& b) const { return a.key > b.key; }
};
static_assert(sizeof(Event) == 16);
constexpr std::int64_t kMaxEngineOps = std::int64_t{1} << 27;

/// What the event loop reads and writes per op, in one 32-byte record so that delivering
/// an input touches one cache line (separate arrays cost a miss each at large p).
struct OpState {
  std::int64_t input_time{0};  // latest input arrival (ns)
  std::int32_t waiting{0};     // inputs not yet arrived
  std::int32_t device{0};
  std::int32_t next[2]{-1, -1};  // consumers: F -> {F of next stage, B of this stage}; B -> {B of previous stage, W}
  std::int32_t last_input{-1};
  std::int32_t last_transfer{-1};
};
static_assert(sizeof(OpState) == 32);

class Engine {
 public:
  Engine(const Schedule& s, const std::vector<StageCost>& costs, LinkModel& links, const SimOptions& opt)
      : s_(s), costs_(costs), links_(links), opt_(opt) {}

  SimResult run();

 private:
  [[nodiscard]] std::size_t key(OpKind kind, int mb, int stage, int pipe) const {
    return ((static_cast<std::size_t>(pipe) * s_.num_stages + stage) * mbs_ + mb) * 3 + static_cast<int>(kind);
  }
  [[nodiscard]] int find(OpKind kind, int mb, int stage, int pipe) const {
    if (stage < 0 || stage >= s_.num_stages) return -1;
    return key_to_op_[key(kind, mb, stage, pipe)];
  }
  [[nodiscard]] TimeNs duration(const Op& op) const;
  void push(TimeNs t, int target, bool arrival) {
    const std::uint64_t low = (seq_++ << 28) | (static_cast<std::uint64_t>(target) << 1) | (arrival ? 1u : 0u);
    queue_.push({(static_cast<unsigned __int128>(static_cast<std::uint64_t>(t.ns)) << 64) | low});
  }
  void try_start(int device, TimeNs now);
  void finish(int index, TimeNs now);
  void deliver(int producer, int consumer, Bytes bytes, TimeNs now);
  void adjust_memory(int device, Bytes delta, TimeNs now);
  void note_input(OpState& consumer, int producer, int transfer, TimeNs arrival) {
    if (arrival.ns >= consumer.input_time) {
      consumer.input_time = arrival.ns;
      consumer.last_input = producer;
      consumer.last_transfer = transfer;
    }
  }
  [[noreturn]] void report_deadlock() const;
  void run_gradient_syncs();

  const Schedule& s_;
  const std::vector<StageCost>& costs_;
  LinkModel& links_;
  const SimOptions& opt_;
  std::size_t mbs_{0};
  SimResult r_;
  std::vector<int> key_to_op_;
  std::vector<OpState> state_;     // per op, in SimResult::ops order
  std::vector<int> head_;          // next op index per device
  std::vector<std::uint8_t> busy_;
  std::vector<Bytes> activation_;  // current stashed activation bytes per device
  std::vector<int> inflight_;      // micro-batches stashed per device
  std::vector<int> slot_inflight_; // per (pipe, stage): micro-batches stashed
  std::vector<int> slot_peak_;
  std::priority_queue<Event, std::vector<Event>, EventAfter> queue_;
  std::uint64_t seq_{0};
  TimeNs now_{};
  std::size_t finished_{0};
};

TimeNs Engine::duration(const Op& op) const {
  const StageCost& c = costs_[op.stage];
  switch (op.kind) {
    case OpKind::Forward: return c.forward;
    case OpKind::Backward: return s_.split_backward ? c.backward - c.weight_grad : c.backward;
    case OpKind::Weight: return c.weight_grad;
  }
  return {};
}

void Engine::adjust_memory(int device, Bytes delta, TimeNs now) {
  Bytes& cur = activation_[device];
  cur += delta;
  DeviceSummary& sum = r_.per_device[device];
  if (cur > sum.peak_activation) {
    sum.peak_activation = cur;
    sum.peak_time = now;
  }
  if (opt_.record_timeline) {
    // Several changes at one instant collapse into one sample.
    auto& mem = r_.memory;
    if (!mem.empty() && mem.back().device == device && mem.back().t == now) mem.back().bytes = cur;
    else mem.push_back({device, now, cur});
  }
}

void Engine::try_start(int device, TimeNs now) {
  if (busy_[device]) return;
  const int index = head_[device];
  if (index >= r_.device_first_op[device + 1] || state_[index].waiting > 0) return;
  OpRecord& rec = r_.ops[index];
  busy_[device] = 1;
  rec.start = now;
  rec.end = now + duration(rec.op);
  if (rec.op.kind == OpKind::Forward) {
    const std::size_t slot = static_cast<std::size_t>(rec.op.pipe) * s_.num_stages + rec.op.stage;
    slot_peak_[slot] = std::max(slot_peak_[slot], ++slot_inflight_[slot]);
    auto& sum = r_.per_device[device];
    sum.peak_inflight = std::max(sum.peak_inflight, ++inflight_[device]);
    adjust_memory(device, costs_[rec.op.stage].activation, now);
  }
  push(rec.end, index, false);
}

void Engine::deliver(int producer, int consumer, Bytes bytes, TimeNs now) {
  if (consumer < 0) return;
  OpState& target = state_[consumer];
  const int src = state_[producer].device;
  const int dst = target.device;
  if (src == dst || links_.is_free()) {
    note_input(target, producer, -1, now);
    if (--target.waiting == 0) try_start(dst, now);
    return;
  }
  const TransferSlot slot = links_.reserve(src, dst, bytes, now);
  note_input(target, producer, static_cast<int>(r_.transfers.size()), slot.end);
  r_.transfers.push_back({src, dst, producer, consumer, bytes, slot.start, slot.end});
  push(slot.end, consumer, true);
}

void Engine::finish(int index, TimeNs now) {
  OpRecord& rec = r_.ops[index];
  const Op& op = rec.op;
  const int device = rec.device;
  ++finished_;
  busy_[device] = 0;
  ++head_[device];
  const StageCost& cost = costs_[op.stage];
  const std::size_t slot = static_cast<std::size_t>(op.pipe) * s_.num_stages + op.stage;
  const OpState& st = state_[index];
  switch (op.kind) {
    case OpKind::Forward:
      deliver(index, st.next[0], cost.output, now);
      deliver(index, st.next[1], Bytes{}, now);
      break;
    case OpKind::Backward:
      --slot_inflight_[slot];
      --inflight_[device];
      adjust_memory(device, Bytes{} - (s_.split_backward ? cost.activation - cost.weight_activation : cost.activation), now);
      if (op.stage > 0) deliver(index, st.next[0], costs_[op.stage - 1].output, now);
      deliver(index, st.next[1], Bytes{}, now);
      break;
    case OpKind::Weight:
      adjust_memory(device, Bytes{} - cost.weight_activation, now);
      break;
  }
  try_start(device, now);
}

void Engine::report_deadlock() const {
  std::string msg = "deadlock: the schedule stops with ops left;";
  for (int d = 0; d < s_.devices; ++d) {
    const int index = head_[d];
    if (index >= r_.device_first_op[d + 1]) continue;
    const Op& op = r_.ops[index].op;
    msg += " device " + std::to_string(d) + " waits at " + op_token(op) + " (stage " + std::to_string(op.stage) + ") for";
    auto need = [&](OpKind k, int stage) {
      const int dep = find(k, op.microbatch, stage, op.pipe);
      if (dep >= 0 && dep >= head_[r_.ops[dep].device]) {  // ops finish in list order
        msg += " " + op_token(r_.ops[dep].op) + " stage " + std::to_string(stage) + " on device " +
               std::to_string(r_.ops[dep].device);
      }
    };
    switch (op.kind) {
      case OpKind::Forward: need(OpKind::Forward, op.stage - 1); break;
      case OpKind::Backward: need(OpKind::Forward, op.stage); need(OpKind::Backward, op.stage + 1); break;
      case OpKind::Weight: need(OpKind::Backward, op.stage); break;
    }
    msg += ";";
  }
  msg.pop_back();
  throw DeadlockError(msg);
}

// Ring all-reduce of each stage's gradients among its replicas, started when the last
// replica has run its last op on the stage: 2(n-1) steps in which every member sends
// bytes/n to the next, each step on the link model, so free links cost nothing and a
// uniform link costs 2(n-1)/n * bytes / bandwidth + 2(n-1) latencies. They run after the
// compute they wait for and before the iteration ends.
void Engine::run_gradient_syncs() {
  struct Ready {
    TimeNs at;
    std::size_t index;
  };
  std::vector<Ready> ready;
  for (std::size_t g = 0; g < s_.gradient_syncs.size(); ++g) {
    const GradientSync& sync = s_.gradient_syncs[g];
    TimeNs at{};
    for (int d : sync.devices)
      for (int i = r_.device_first_op[d]; i < r_.device_first_op[d + 1]; ++i)
        if (r_.ops[i].op.stage == sync.stage) at = std::max(at, r_.ops[i].end);
    ready.push_back({at, g});
  }
  std::stable_sort(ready.begin(), ready.end(), [](const Ready& a, const Ready& b) { return a.at < b.at; });
  for (const Ready& entry : ready) {
    const GradientSync& sync = s_.gradient_syncs[entry.index];
    const int members = static_cast<int>(sync.devices.size());
    const Bytes bytes = costs_[sync.stage].parameters;
    TimeNs t = entry.at;
    if (members > 1 && !links_.is_free()) {
      const Bytes piece{(bytes.value + members - 1) / members};
      for (int step = 0; step < 2 * (members - 1); ++step) {
        TimeNs step_end = t;
        for (int i = 0; i < members; ++i)
          step_end = std::max(step_end, links_.reserve(sync.devices[i], sync.devices[(i + 1) % members], piece, t).end);
        t = step_end;
      }
    }
    r_.collectives.push_back({sync.stage, sync.devices, bytes, entry.at, t});
    r_.last_end = std::max(r_.last_end, t);
  }
}

SimResult Engine::run() {
  validate_schedule(s_);
  if (static_cast<int>(costs_.size()) != s_.num_stages)
    throw ScheduleError("costs given for " + std::to_string(costs_.size()) + " stages, schedule has " +
                        std::to_string(s_.num_stages));
  const int n = s_.devices;
  r_.devices = n;
  r_.per_device.assign(n, DeviceSummary{});
  r_.device_first_op.assign(n + 1, 0);
  int max_mb = 0;
  for (int d = 0; d < n; ++d) {
    r_.device_first_op[d + 1] = r_.device_first_op[d] + static_cast<int>(s_.device_ops[d].size());
    for (const Op& op : s_.device_ops[d]) max_mb = std::max(max_mb, op.microbatch);
  }
  mbs_ = static_cast<std::size_t>(max_mb) + 1;
  const std::size_t total = static_cast<std::size_t>(r_.device_first_op[n]);
  if (static_cast<std::int64_t>(total) >= kMaxEngineOps)
    throw ScheduleError("schedule has " + std::to_string(total) + " ops; the engine handles fewer than " +
                        std::to_string(kMaxEngineOps));
  r_.ops.resize(total);
  key_to_op_.assign(static_cast<std::size_t>(s_.pipes) * s_.num_stages * mbs_ * 3, -1);
  state_.assign(total, OpState{});
  for (int d = 0; d < n; ++d)
    for (std::size_t i = 0; i < s_.device_ops[d].size(); ++i) {
      const int index = r_.device_first_op[d] + static_cast<int>(i);
      const Op& op = s_.device_ops[d][i];
      r_.ops[index] = OpRecord{op, d, {}, {}};
      state_[index].device = d;
      key_to_op_[key(op.kind, op.microbatch, op.stage, op.pipe)] = index;
    }
  for (std::size_t i = 0; i < total; ++i) {
    const Op& op = r_.ops[i].op;
    OpState& st = state_[i];
    switch (op.kind) {
      case OpKind::Forward:
        st.waiting = op.stage > 0 ? 1 : 0;
        st.next[0] = find(OpKind::Forward, op.microbatch, op.stage + 1, op.pipe);
        st.next[1] = find(OpKind::Backward, op.microbatch, op.stage, op.pipe);
        break;
      case OpKind::Backward:
        st.waiting = 1 + (op.stage < s_.num_stages - 1 ? 1 : 0);
        st.next[0] = find(OpKind::Backward, op.microbatch, op.stage - 1, op.pipe);
        st.next[1] = s_.split_backward ? find(OpKind::Weight, op.microbatch, op.stage, op.pipe) : -1;
        break;
      case OpKind::Weight: st.waiting = 1; break;
    }
  }
  head_.assign(n, 0);
  for (int d = 0; d < n; ++d) head_[d] = r_.device_first_op[d];
  busy_.assign(n, 0);
  activation_.assign(n, Bytes{});
  inflight_.assign(n, 0);
  slot_inflight_.assign(static_cast<std::size_t>(s_.pipes) * s_.num_stages, 0);
  slot_peak_ = slot_inflight_;
  if (opt_.record_timeline) r_.memory.reserve(total + n);
  r_.transfers.reserve(links_.is_free() ? 0 : total);
  links_.reset();

  for (int d = 0; d < n; ++d) try_start(d, TimeNs{});
  while (!queue_.empty()) {
    const Event ev = queue_.top();
    queue_.pop();
    assert(ev.time() >= now_.ns && "time went backwards");
    now_ = TimeNs{ev.time()};
    const int target = ev.target();
    if (ev.arrival()) {
      if (--state_[target].waiting == 0) try_start(state_[target].device, now_);
    } else {
      finish(target, now_);
    }
  }
  if (finished_ != total) report_deadlock();
  r_.last_input.resize(total);
  r_.last_input_transfer.resize(total);
  for (std::size_t i = 0; i < total; ++i) {
    r_.last_input[i] = state_[i].last_input;
    r_.last_input_transfer[i] = state_[i].last_transfer;
  }

  // Summaries.
  r_.first_start = TimeNs::max();
  for (const auto& rec : r_.ops) {
    r_.first_start = std::min(r_.first_start, rec.start);
    r_.last_end = std::max(r_.last_end, rec.end);
  }
  if (total == 0) r_.first_start = TimeNs{};
  run_gradient_syncs();
  const bool steady_state =
      !(s_.synchronous || s_.iterations <= 1 || s_.measure_from < 1 || s_.measure_from >= s_.iterations);
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

  for (int d = 0; d < n; ++d) {
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
  if (opt_.record_timeline) {
    // Samples so far hold activations only; add each device's constant part and an
    // opening sample at the start of the run.
    // Group by device (a counting pass keeps each device's samples in time order).
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
  return std::move(r_);
}

}  // namespace

SimResult simulate(const Schedule& schedule, const std::vector<StageCost>& costs, LinkModel& links,
                   const SimOptions& options) {
  Engine engine(schedule, costs, links, options);
  return engine.run();
}

}  // namespace ppsim
