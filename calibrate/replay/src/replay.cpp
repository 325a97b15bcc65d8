// The replay: each device runs its op list with the harness's layers; what an op waits
// for is the op graph's in-edges, enforced through the executor; the kept iteration
// becomes a SimResult. calibrate/README.md, "Replay".
#include "ppsim/replay/replay.h"

#include <algorithm>
#include <map>

#include "ppsim/calibrate/layers.h"
#include "ppsim/engine/op_graph.h"
#include "ppsim/run/stages.h"
#include "ppsim/run/transformer.h"

namespace ppsim::replay {
namespace {

using cal::Tensor;

/// What the replay needs of a run, made once.
struct Plan {
  const Schedule& s;
  std::shared_ptr<const OpGraph> graph;
  std::vector<std::vector<std::uint32_t>> preds;  ///< per op node: the nodes it waits for
  std::vector<int> device_of;                     ///< per op node
  std::vector<std::vector<cal::LayerShape>> stage_shapes;  ///< per model stage, its layers
  std::vector<int> slots;                         ///< per model stage: layer copies (layer_copies)
};

/// Copies of a stage's layers the replay needs: the most micro-batches whose layer state
/// is alive at once in op order, from F to B, or to W when the backward is split (a copy
/// keeps the weight-gradient inputs until W). stage_inflight_peaks counts to B only.
std::vector<int> layer_copies(const Schedule& s) {
  std::vector<int> peak(static_cast<std::size_t>(s.num_stages), 0);
  const OpKind last = s.split_backward ? OpKind::Weight : OpKind::Backward;
  for (const auto& ops : s.device_ops) {
    std::vector<int> cur(static_cast<std::size_t>(s.pipes) * s.num_stages, 0);
    for (const Op& op : ops) {
      int& n = cur[static_cast<std::size_t>(op.pipe) * s.num_stages + op.stage];
      if (op.kind == OpKind::Forward) peak[op.stage] = std::max(peak[op.stage], ++n);
      if (op.kind == last) --n;
    }
  }
  return peak;
}

/// The output of `u` is the input of `w`: F hands its activations to the next stage's F,
/// B its input gradient to the previous stage's B (the engine's sent_bytes rule).
bool carries_data(const Op& u, const Op& w) {
  if (u.microbatch != w.microbatch || u.pipe != w.pipe || u.kind != w.kind) return false;
  if (u.kind == OpKind::Forward) return w.stage == u.stage + 1;
  return u.kind == OpKind::Backward && w.stage == u.stage - 1;
}

void check_replayable(const Run& run, const cal::TransformerSpec& t) {
  const Schedule& s = run.schedule;
  auto no = [](const std::string& why) { throw ReplayError(why); };
  if (t.tp > 1) no("parallel.tensor_parallel: the replay runs whole layers (t = 1), not tensor-parallel shards");
  if (run.config.memory.recompute != Recompute::None) no("memory.recompute: the replay does not recompute");
  if (!s.gradient_syncs.empty()) no("schedule " + s.name + ": gradient syncs between stage replicas are not replayed");
  if (!run.comm.devices.empty()) no("pipeline.communication: the replay runs ideal communication only");
  if (!s.synchronous) no("schedule " + s.name + ": asynchronous schedules are not replayed (flush schedules only)");
  if (run.unit_time) no("--unit-time: the replay measures real costs");
}

std::vector<std::vector<cal::LayerShape>> stage_shapes(const Run& run, const cal::TransformerSpec& t) {
  const int n = static_cast<int>(run.config.layers.size());
  if (n != t.layers + (t.vocab > 0 ? 2 : 0))
    throw ReplayError("model: " + std::to_string(n) + " layers do not match the transformer's " + std::to_string(t.layers));
  std::vector<std::vector<cal::LayerShape>> out;
  for (const auto& [first, last] : layer_ranges(run.layers_per_stage)) {
    auto& shapes = out.emplace_back();
    for (int i = first; i < last; ++i) {
      const cal::LayerKind kind = t.vocab > 0 && i == 0       ? cal::LayerKind::embedding
                                  : t.vocab > 0 && i == n - 1 ? cal::LayerKind::head
                                                              : cal::LayerKind::block;
      shapes.push_back(cal::shape_of(kind, t));
    }
  }
  return out;
}

Plan make_plan(const Run& run, Executor& ex) {
  const auto t = transformer_spec(run.config);
  if (!t)
    throw ReplayError("model: the replay runs the harness's layers at the config's shape; give a transformer "
                      "costed from \"costs\" (a profile or a device), not explicit model.layers");
  check_replayable(run, *t);
  if (t->dtype != ex.backend(0).dtype())
    throw ReplayError("model.dtype: " + cal::dtype_name(t->dtype) + " on a " + ex.backend(0).name() +
                      " replay, which stores " + cal::dtype_name(ex.backend(0).dtype()));
  Plan p{run.schedule, std::make_shared<const OpGraph>(build_op_graph(run.schedule)), {}, {}, {}, {}};
  const OpGraph& g = *p.graph;
  p.preds.resize(g.num_ops);
  for (std::uint32_t u = 0; u < g.num_nodes(); ++u)
    for (const auto e : boost::make_iterator_range(boost::out_edges(u, g.csr))) {
      const auto v = static_cast<std::uint32_t>(boost::target(e, g.csr));
      if (v < g.num_ops) p.preds[v].push_back(u);
    }
  for (int d = 0; d < p.s.devices; ++d)
    for (int i = g.device_first_op[d]; i < g.device_first_op[d + 1]; ++i) p.device_of.push_back(d);
  p.stage_shapes = stage_shapes(run, *t);
  p.slots = layer_copies(run.schedule);
  return p;
}

/// The layers of one model stage, `slots` copies (one per micro-batch it stashes at once:
/// a layer object holds one micro-batch's saved tensors).
struct StageLayers {
  std::vector<std::vector<std::unique_ptr<cal::Layer>>> copies;
  std::vector<int> free;
};

/// A micro-batch stashed on a stage: its layer copy and each layer's input (kept, since
/// a layer reads its input again in backward).
struct InFlight {
  int copy{0};
  std::vector<Tensor> inputs;
};

/// Per op, what a device did: marks of its start and end.
struct OpMarks {
  std::size_t start{0}, end{0};
};
struct TransferMarks {
  int src, dst, producer, consumer;
  std::int64_t bytes;
  std::size_t start, end;
};
struct MemoryMark {
  std::size_t mark;
  std::int64_t bytes;
};

/// One iteration's shared state: data in flight to each op, and what each device recorded.
struct Iteration {
  std::vector<Tensor> inbox;  ///< per op node: its data input (written before the producer completes)
  std::vector<OpMarks> ops;
  std::vector<int> executed;
  std::vector<std::vector<TransferMarks>> transfers;  ///< per sending device
  std::vector<std::vector<MemoryMark>> memory;        ///< per device
  std::vector<int> peak_inflight;
};

}  // namespace

namespace {

/// Bytes a device's allocators hold (in use, or their high-water marks: with a separate
/// receive allocator the sum of the two marks, an upper bound).
std::int64_t device_bytes(Executor& ex, int d, bool peak) {
  cal::Allocator& own = ex.allocator(d);
  cal::Allocator& recv = ex.receive_allocator(d);
  auto of = [&](cal::Allocator& a) { return peak ? a.peak() : a.in_use(); };
  return of(own) + (&recv == &own ? 0 : of(recv));
}

/// One device's program over the executor: its layers (made once) and, per iteration,
/// its ops in order.
class Device {
 public:
  Device(const Plan& plan, Executor& ex, int d) : p_(plan), ex_(ex), d_(d) {
    const OpGraph& g = *p_.graph;
    for (int i = g.device_first_op[d]; i < g.device_first_op[d + 1]; ++i) {
      const Op& op = op_at(static_cast<std::uint32_t>(i));
      const std::size_t slot = slot_of(op);
      if (stages_.count(slot)) continue;
      StageLayers& sl = stages_[slot];
      for (int c = 0; c < std::max(1, p_.slots[op.stage]); ++c) {
        auto& copy = sl.copies.emplace_back();
        std::uint64_t seed = 7919u * static_cast<std::uint64_t>(slot + 1);  // one stage's copies alike
        for (const auto& shape : p_.stage_shapes[op.stage]) copy.push_back(cal::make_layer(ex_.allocator(d), shape, seed++));
        sl.free.push_back(c);
      }
    }
  }

  /// The first stage's F makes its input (token ids, or activations when the model has no
  /// embedding) and the last stage's B its output gradient, as the data loader and the
  /// loss would: just before the op, outside its timed span.
  Tensor make_data(const Op& op) {
    auto& layers = stages_.at(slot_of(op)).copies.front();
    const auto seed = static_cast<std::uint64_t>(op.microbatch) * 2 + 1000;
    if (op.kind == OpKind::Forward && op.stage == 0) return layers.front()->make_input(seed);
    if (op.kind == OpKind::Backward && op.stage == p_.s.num_stages - 1) return layers.back()->make_output_grad(seed + 1);
    return {};
  }

  void run(Iteration& it) {
    const OpGraph& g = *p_.graph;
    for (int i = g.device_first_op[d_]; i < g.device_first_op[d_ + 1]; ++i) run_op(it, static_cast<std::uint32_t>(i));
    if (g.device_first_op[d_ + 1] > g.device_first_op[d_]) retire(static_cast<std::uint32_t>(g.device_first_op[d_ + 1] - 1));
    if (!held_.empty()) throw std::logic_error("replay: micro-batches left stashed at the end of the iteration");
  }

 private:
  [[nodiscard]] const Op& op_at(std::uint32_t v) const {
    const int d = p_.device_of[v];
    return p_.s.device_ops[d][v - static_cast<std::uint32_t>(p_.graph->device_first_op[d])];
  }
  [[nodiscard]] std::size_t slot_of(const Op& op) const {
    return static_cast<std::size_t>(op.pipe) * p_.s.num_stages + op.stage;
  }
  [[nodiscard]] std::size_t key_of(const Op& op) const {
    return slot_of(op) * static_cast<std::size_t>(p_.s.microbatches * p_.s.iterations + 1) + op.microbatch;
  }

  void run_op(Iteration& it, std::uint32_t v) {
    for (const std::uint32_t u : p_.preds[v]) ex_.wait_for(d_, u);  // every in-edge of the op graph
    const Op& op = op_at(v);
    Tensor in = it.inbox[v].data() ? std::move(it.inbox[v]) : make_data(op);
    it.ops[v].start = ex_.mark(d_);
    Tensor out = op.kind == OpKind::Forward ? forward(op, std::move(in))
                 : op.kind == OpKind::Backward ? backward(op, in)
                                               : (weight(op), Tensor{});
    retiring_.push_back(std::move(in));
    if (shared_receive()) retiring_.clear();
    it.ops[v].end = ex_.mark(d_);
    ++it.executed[v];
    it.peak_inflight[d_] = std::max(it.peak_inflight[d_], static_cast<int>(held_.size()));
    send(it, v, op, std::move(out));
    // After the send: what the device holds between ops (its stash, inputs that arrived).
    it.memory[d_].push_back({it.ops[v].end, in_use()});
    ex_.complete(d_, v);
    if (v > static_cast<std::uint32_t>(p_.graph->device_first_op[d_])) retire(v - 1);
    pending_ = std::move(retiring_);
    retiring_.clear();
  }

  /// Received tensors go back once the ops that read them have run. Where they share
  /// the device's allocator (the CPU) that is at once; otherwise the previous op's go
  /// after wait_done on it (one op of slack keeps a GPU stream fed).
  [[nodiscard]] bool shared_receive() { return &ex_.receive_allocator(d_) == &ex_.allocator(d_); }
  void retire(std::uint32_t done) {
    ex_.wait_done(d_, done);
    pending_.clear();
  }

  [[nodiscard]] std::int64_t in_use() { return device_bytes(ex_, d_, false); }

  Tensor forward(const Op& op, Tensor in) {
    StageLayers& sl = stages_.at(slot_of(op));
    if (sl.free.empty()) throw std::logic_error("replay: more micro-batches in flight than layer_copies counted");
    InFlight& f = held_[key_of(op)];
    f.copy = sl.free.back();
    sl.free.pop_back();
    auto& layers = sl.copies[static_cast<std::size_t>(f.copy)];
    f.inputs.reserve(layers.size());  // layers keep a pointer to their input: no reallocation
    f.inputs.push_back(std::move(in));
    Tensor out;
    for (std::size_t k = 0; k < layers.size(); ++k) {
      Tensor y = layers[k]->forward(f.inputs.back());
      if (k + 1 < layers.size()) f.inputs.push_back(std::move(y));
      else out = std::move(y);
    }
    return out;
  }

  Tensor backward(const Op& op, const Tensor& grad) {
    StageLayers& sl = stages_.at(slot_of(op));
    auto& layers = sl.copies[static_cast<std::size_t>(held_.at(key_of(op)).copy)];
    Tensor dy;
    for (std::size_t k = layers.size(); k-- > 0;) {
      Tensor dx = layers[k]->backward_input(k + 1 == layers.size() ? grad : dy);
      if (!p_.s.split_backward) layers[k]->backward_weight();
      dy = std::move(dx);
    }
    if (!p_.s.split_backward) release(op);
    return dy;
  }

  void weight(const Op& op) {
    StageLayers& sl = stages_.at(slot_of(op));
    auto& layers = sl.copies[static_cast<std::size_t>(held_.at(key_of(op)).copy)];
    for (std::size_t k = layers.size(); k-- > 0;) layers[k]->backward_weight();
    release(op);
  }

  void release(const Op& op) {
    auto it = held_.find(key_of(op));
    stages_.at(slot_of(op)).free.push_back(it->second.copy);
    for (Tensor& t : it->second.inputs) retiring_.push_back(std::move(t));  // the first came by transfer
    held_.erase(it);
    if (shared_receive()) retiring_.clear();
  }

  /// The output goes to the op that consumes it: moved on this device, copied (a
  /// transfer, timed) into the receiving device's memory otherwise.
  void send(Iteration& it, std::uint32_t v, const Op& op, Tensor out) {
    const OpGraph& g = *p_.graph;
    for (const auto e : boost::make_iterator_range(boost::out_edges(v, g.csr))) {
      const auto w = static_cast<std::uint32_t>(boost::target(e, g.csr));
      if (w >= g.num_ops || !carries_data(op, op_at(w)) || out.elements() == 0) continue;
      const int dst = p_.device_of[w];
      if (dst == d_) {
        it.inbox[w] = std::move(out);
        return;
      }
      const std::size_t start = ex_.mark(d_);
      Tensor copy(ex_.receive_allocator(dst), out.elements(), static_cast<int>(out.bytes() / static_cast<std::size_t>(out.elements())));
      ex_.copy(d_, dst, out.data(), copy.data(), out.bytes());
      const std::size_t end = ex_.mark(d_);
      it.transfers[d_].push_back({d_, dst, static_cast<int>(v), static_cast<int>(w),
                                  static_cast<std::int64_t>(out.bytes()), start, end});
      it.inbox[w] = std::move(copy);
      return;
    }
  }

  const Plan& p_;
  Executor& ex_;
  int d_;
  std::map<std::size_t, StageLayers> stages_;
  std::map<std::size_t, InFlight> held_;
  std::vector<Tensor> retiring_;  ///< received tensors the current op is done with
  std::vector<Tensor> pending_;   ///< the previous op's, freed after wait_done on it
};

}  // namespace

namespace {

/// The kept iteration as a SimResult: a flush schedule's window is the whole run.
SimResult measured_result(const Plan& p, const Iteration& it, const std::vector<std::vector<TimeNs>>& t,
                          const std::vector<DeviceMemory>& mem, const std::vector<std::int64_t>& baseline) {
  const OpGraph& g = *p.graph;
  SimResult r;
  r.devices = p.s.devices;
  r.graph = p.graph;
  r.device_first_op = g.device_first_op;
  r.per_device.assign(static_cast<std::size_t>(r.devices), DeviceSummary{});
  TimeNs origin = TimeNs::max();
  for (std::uint32_t v = 0; v < g.num_ops; ++v) origin = std::min(origin, t[p.device_of[v]][it.ops[v].start]);
  auto at = [&](int d, std::size_t mark) { return std::max(TimeNs{}, t[d][mark] - origin); };
  for (int d = 0; d < r.devices; ++d) {
    DeviceSummary& sum = r.per_device[d];
    for (int i = g.device_first_op[d]; i < g.device_first_op[d + 1]; ++i) {
      const OpRecord rec{p.s.device_ops[d][i - g.device_first_op[d]], d, at(d, it.ops[i].start), at(d, it.ops[i].end), {}};
      r.ops.push_back(rec);
      sum.compute_busy += rec.end - rec.start;
      r.last_end = std::max(r.last_end, rec.end);
    }
    sum.window_busy = sum.compute_busy;
    sum.weights = Bytes{baseline[d]};
    sum.peak_activation = Bytes{mem[d].peak};
    sum.peak_memory = Bytes{baseline[d] + mem[d].peak};
    sum.peak_inflight = it.peak_inflight[d];
    r.memory.push_back({d, TimeNs{}, Bytes{baseline[d]}});
    for (const MemoryMark& m : it.memory[d]) r.memory.push_back({d, at(d, m.mark), Bytes{m.bytes}});
    for (const TransferMarks& x : it.transfers[d])
      r.transfers.push_back({x.src, x.dst, x.producer, x.consumer, Bytes{x.bytes}, at(d, x.start), at(d, x.end)});
  }
  std::stable_sort(r.transfers.begin(), r.transfers.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
  r.window_end = r.last_end;
  r.iteration_time = r.last_end;
  return r;
}

struct Measured {
  SimResult result;
  std::vector<DeviceMemory> memory;
  std::vector<int> executed;
};

Measured run_iteration(const Plan& p, Executor& ex, std::vector<Device>& devices) {
  const OpGraph& g = *p.graph;
  Iteration it;
  it.inbox.resize(g.num_ops);
  it.ops.resize(g.num_ops);
  it.executed.assign(g.num_ops, 0);
  it.transfers.resize(devices.size());
  it.memory.resize(devices.size());
  it.peak_inflight.assign(devices.size(), 0);
  ex.reset(g.num_nodes());
  std::vector<std::int64_t> baseline;
  for (int d = 0; d < ex.devices(); ++d) {
    ex.allocator(d).reset_peak();
    ex.receive_allocator(d).reset_peak();
    baseline.push_back(device_bytes(ex, d, false));
  }
  ex.run([&](int d) { devices[static_cast<std::size_t>(d)].run(it); });
  std::vector<DeviceMemory> mem;
  for (int d = 0; d < ex.devices(); ++d) {
    DeviceMemory m{baseline[d], device_bytes(ex, d, true) - baseline[d], 0};
    for (const MemoryMark& s : it.memory[d]) m.peak_between_ops = std::max(m.peak_between_ops, s.bytes - baseline[d]);
    mem.push_back(m);
  }
  Measured out{measured_result(p, it, ex.mark_times(), mem, baseline), mem, it.executed};
  return out;
}

}  // namespace

Replay replay_run(const Run& run, Executor& ex, const ReplayOptions& options) {
  if (ex.devices() != run.schedule.devices)
    throw ReplayError("the executor has " + std::to_string(ex.devices()) + " devices, the schedule " +
                      std::to_string(run.schedule.devices));
  if (options.warmup < 0 || options.iterations < 1) throw ReplayError("--warmup must be >= 0 and --iterations >= 1");
  const Plan plan = make_plan(run, ex);
  std::vector<Device> devices;
  devices.reserve(static_cast<std::size_t>(ex.devices()));
  for (int d = 0; d < ex.devices(); ++d) devices.emplace_back(plan, ex, d);
  for (int i = 0; i < options.warmup; ++i) run_iteration(plan, ex, devices);
  std::vector<Measured> kept;
  Replay out;
  for (int i = 0; i < options.iterations; ++i) {
    kept.push_back(run_iteration(plan, ex, devices));
    out.iteration_ms.push_back(kept.back().result.iteration_time.ms());
  }
  std::vector<std::size_t> order(kept.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return kept[a].result.iteration_time < kept[b].result.iteration_time;
  });
  Measured& median = kept[order[(order.size() - 1) / 2]];  // the lower median: an iteration that ran
  out.measured = std::move(median.result);
  out.memory = std::move(median.memory);
  out.executed = std::move(median.executed);
  out.slots = plan.slots;
  return out;
}

}  // namespace ppsim::replay
