// The op graph: built in one pass from an edge generator straight into Boost's CSR
// arrays (edges come out sorted by source, so no edge list is ever materialised).
#include "ppsim/engine/op_graph.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

namespace ppsim {

namespace {

/// The dependency rule: for each op, the nodes that wait for it, in OpGraph's order.
class DependencyRule {
 public:
  DependencyRule(const Schedule& s, bool overlapped) : s_(s), kinds_(s.split_backward ? 3 : 2) {
    int max_mb = 0;
    first_.assign(static_cast<std::size_t>(s.devices) + 1, 0);
    for (int d = 0; d < s.devices; ++d) {
      first_[d + 1] = first_[d] + static_cast<int>(s.device_ops[d].size());
      for (const Op& op : s.device_ops[d]) max_mb = std::max(max_mb, op.microbatch);
    }
    mbs_ = static_cast<std::size_t>(max_mb) + 1;
    key_to_op_.assign(static_cast<std::size_t>(s.pipes) * s.num_stages * mbs_ * kinds_, -1);
    for (int d = 0; d < s.devices; ++d)
      for (std::size_t i = 0; i < s.device_ops[d].size(); ++i) {
        const Op& op = s.device_ops[d][i];
        key_to_op_[key(op.kind, op.microbatch, op.stage, op.pipe)] = first_[d] + static_cast<std::int32_t>(i);
      }
    add_sync_edges();
    if (overlapped && !s.overlap_pairs.empty()) {
      role_.assign(first_.back(), 0);
      for (int d = 0; d < s.devices; ++d)
        for (const std::int32_t i : s.overlap_pairs[d]) {
          role_[static_cast<std::size_t>(first_[d] + i)] = 1;
          role_[static_cast<std::size_t>(first_[d] + i + 1)] = 2;
        }
    }
  }

  [[nodiscard]] std::uint32_t num_ops() const { return static_cast<std::uint32_t>(first_.back()); }
  [[nodiscard]] const Schedule& schedule() const { return s_; }
  [[nodiscard]] const std::vector<int>& device_first_op() const { return first_; }
  [[nodiscard]] const std::vector<std::pair<std::uint32_t, std::uint32_t>>& sync_edges() const { return sync_edges_; }
  [[nodiscard]] const std::vector<std::uint8_t>& pair_role() const { return role_; }
  /// At most this many out-edges per op besides its syncs.
  static constexpr int kMaxConsumers = 4;

  /// Writes the ops that wait for op `u`, the `i`th op of device `d` (its data consumers,
  /// then the device's next op), to `out`; returns how many. Gradient-sync edges come
  /// from sync_edges(). With overlapped pairs run as units, a pair's backward also sends
  /// its forward's output, and an edge into a pair's backward goes to its forward.
  int consumers(int d, std::size_t i, std::uint32_t u, std::uint32_t* out) const {
    const Op& op = s_.device_ops[d][i];
    const int r = role(u);
    int n = 0;
    auto add = [&](std::int32_t v) {
      if (v < 0) return;
      const auto w = static_cast<std::uint32_t>(role(static_cast<std::uint32_t>(v)) == 2 ? v - 1 : v);
      if (w != u && std::find(out, out + n, w) == out + n) out[n++] = w;
    };
    switch (op.kind) {
      case OpKind::Forward:  // activations to the next stage (at the pair's end); its own backward
        if (r != 1) add(find(OpKind::Forward, op.microbatch, op.stage + 1, op.pipe));
        add(find(OpKind::Backward, op.microbatch, op.stage, op.pipe));
        break;
      case OpKind::Backward:  // gradients to the previous stage; its weight gradient
        add(find(OpKind::Backward, op.microbatch, op.stage - 1, op.pipe));
        if (s_.split_backward) add(find(OpKind::Weight, op.microbatch, op.stage, op.pipe));
        if (r == 2) {
          const Op& f = s_.device_ops[d][i - 1];
          add(find(OpKind::Forward, f.microbatch, f.stage + 1, f.pipe));
        }
        break;
      case OpKind::Weight: break;
    }
    // Device order, unless a data edge already makes the next op wait for this one.
    if (i + 1 < s_.device_ops[d].size() && std::find(out, out + n, u + 1) == out + n) out[n++] = u + 1;
    return n;
  }

 private:
  [[nodiscard]] std::size_t key(OpKind kind, int mb, int stage, int pipe) const {
    return ((static_cast<std::size_t>(pipe) * s_.num_stages + stage) * mbs_ + mb) * kinds_ + static_cast<int>(kind);
  }
  [[nodiscard]] std::int32_t find(OpKind kind, int mb, int stage, int pipe) const {
    if (stage < 0 || stage >= s_.num_stages) return -1;
    return key_to_op_[key(kind, mb, stage, pipe)];
  }
  // A gradient sync waits for each member's last op on its stage (device order covers
  // the earlier ones).
  void add_sync_edges() {
    for (std::size_t g = 0; g < s_.gradient_syncs.size(); ++g) {
      const GradientSync& sync = s_.gradient_syncs[g];
      const auto node = static_cast<std::uint32_t>(num_ops() + g);
      for (int d : sync.devices)
        for (std::size_t i = s_.device_ops[d].size(); i-- > 0;)
          if (s_.device_ops[d][i].stage == sync.stage) {
            sync_edges_.emplace_back(static_cast<std::uint32_t>(first_[d]) + static_cast<std::uint32_t>(i), node);
            break;
          }
    }
    std::stable_sort(sync_edges_.begin(), sync_edges_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }

  const Schedule& s_;
  std::size_t kinds_;  // W slots only when backward is split
  std::size_t mbs_{1};
  std::vector<int> first_;
  std::vector<std::int32_t> key_to_op_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> sync_edges_;  // sorted by source
  std::vector<std::uint8_t> role_;  // OpGraph::pair_role
  [[nodiscard]] int role(std::uint32_t u) const { return role_.empty() ? 0 : role_[u]; }
};

/// Input iterator over every edge of the rule, sorted by source: what Boost's
/// `edges_are_sorted` CSR constructor reads in one pass.
class EdgeIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = std::pair<std::uint32_t, std::uint32_t>;
  using difference_type = std::ptrdiff_t;
  using pointer = const value_type*;
  using reference = const value_type&;

  /// The first edge (`end` false) or the end of the edges.
  EdgeIterator(const DependencyRule* rule, bool end, std::uint32_t* in_degree = nullptr)
      : rule_(rule), in_degree_(in_degree) {
    if (end) {
      u_ = rule->num_ops();
      d_ = static_cast<int>(rule->schedule().device_ops.size());
    }
    settle();
  }
  reference operator*() const { return edge_; }
  pointer operator->() const { return &edge_; }
  EdgeIterator& operator++() {
    ++pos_;
    settle();
    return *this;
  }
  bool operator==(const EdgeIterator& o) const { return u_ == o.u_ && pos_ == o.pos_; }
  bool operator!=(const EdgeIterator& o) const { return !(*this == o); }

 private:
  // Points edge_ at edge pos_ of op u_, moving on to later ops while u_ has no more.
  void settle() {
    const auto& syncs = rule_->sync_edges();
    const auto& lists = rule_->schedule().device_ops;
    while (u_ < rule_->num_ops()) {
      if (pos_ == 0) {
        while (i_ >= lists[d_].size()) {  // skip to the device that holds op u_
          ++d_;
          i_ = 0;
        }
        count_ = rule_->consumers(d_, i_, u_, targets_);
        while (sync_ < syncs.size() && syncs[sync_].first < u_) ++sync_;
      }
      if (pos_ < count_) {
        edge_ = {u_, targets_[pos_]};
        if (in_degree_ != nullptr) ++in_degree_[edge_.second];
        return;
      }
      const std::size_t k = sync_ + static_cast<std::size_t>(pos_ - count_);
      if (k < syncs.size() && syncs[k].first == u_) {
        edge_ = syncs[k];
        if (in_degree_ != nullptr) ++in_degree_[edge_.second];
        return;
      }
      ++u_;
      ++i_;
      pos_ = 0;
    }
    pos_ = 0;
  }

  const DependencyRule* rule_;
  std::uint32_t* in_degree_;  // counts each edge as it is read, when given
  std::uint32_t u_{0};
  int d_{0};            // device of op u_
  std::size_t i_{0};    // its index in the device's list
  int pos_{0};
  int count_{0};
  std::size_t sync_{0};
  std::uint32_t targets_[DependencyRule::kMaxConsumers]{};
  value_type edge_{};
};

std::string describe(const Schedule& s, const OpGraph& g, std::uint32_t node);

/// The program's waits between steps (communication.h): edges into `edges`.
void add_program_edges(const OpGraph& g, const CommProgram& prog, std::vector<std::pair<std::uint32_t, std::uint32_t>>& edges) {
  const std::uint32_t base = g.num_ops + g.num_syncs;
  for (std::size_t d = 0; d < prog.devices.size(); ++d) {
    const auto& steps = prog.devices[d];
    const auto node = [&](const CommStep& st) {
      return st.kind == StepKind::Compute ? static_cast<std::uint32_t>(g.device_first_op[d] + st.index)
                                          : base + static_cast<std::uint32_t>(st.index);
    };
    if (prog.blocking) {
      // Units: a compute op, or all the transfers of one call. Each waits for the one before.
      std::size_t prev_begin = 0, prev_end = 0;
      for (std::size_t i = 0; i < steps.size();) {
        std::size_t j = i + 1;
        while (steps[i].kind != StepKind::Compute && j < steps.size() && steps[j].kind != StepKind::Compute &&
               steps[j].call == steps[i].call)
          ++j;
        for (std::size_t a = prev_begin; a < prev_end; ++a)
          for (std::size_t b = i; b < j; ++b) edges.emplace_back(node(steps[a]), node(steps[b]));
        prev_begin = i;
        prev_end = j;
        i = j;
      }
    } else {
      // One ordered stream per device pair: each transfer waits for the previous one
      // this device posted with the same peer. A send is enqueued behind the compute
      // step before it (the stream order a send issued after it has): its producer, or
      // for an overlapped pair's forward, the pair's backward (torch's OVERLAP_F_B).
      std::vector<std::int64_t> last(prog.devices.size(), -1);
      std::int64_t compute = -1;
      for (const CommStep& st : steps) {
        if (st.kind == StepKind::Compute) {
          compute = node(st);
          continue;
        }
        if (st.kind == StepKind::Send && compute >= 0) edges.emplace_back(static_cast<std::uint32_t>(compute), node(st));
        const CommTransfer& t = prog.transfers[static_cast<std::size_t>(st.index)];
        const std::size_t peer = static_cast<std::size_t>(st.kind == StepKind::Send ? t.dst : t.src);
        if (last[peer] >= 0) edges.emplace_back(static_cast<std::uint32_t>(last[peer]), node(st));
        last[peer] = node(st);
      }
    }
  }
}

std::string describe(const Schedule& s, const OpGraph& g, std::uint32_t node) {
  if (g.is_transfer(node)) {
    const CommTransfer& t = g.transfers[node - g.num_ops - g.num_syncs];
    return "the transfer device " + std::to_string(t.src) + " -> " + std::to_string(t.dst) + " after " +
           describe(s, g, static_cast<std::uint32_t>(t.producer));
  }
  const auto it = std::upper_bound(g.device_first_op.begin(), g.device_first_op.end(), static_cast<int>(node));
  const int device = static_cast<int>(it - g.device_first_op.begin()) - 1;
  const Op& op = s.device_ops[device][node - static_cast<std::uint32_t>(g.device_first_op[device])];
  return "device " + std::to_string(device) + " " + op_token(op) + " (stage " + std::to_string(op.stage) + ")";
}

}  // namespace

OpGraph build_op_graph(const Schedule& schedule, std::vector<std::uint32_t>* in_degrees, bool overlapped) {
  const DependencyRule rule(schedule, overlapped);
  const std::uint32_t nodes = rule.num_ops() + static_cast<std::uint32_t>(schedule.gradient_syncs.size());
  if (in_degrees != nullptr) in_degrees->assign(nodes, 0);
  // An op has at most three out-edges besides its syncs (four in an overlapped pair).
  // Reserving that bound allocates the edge array once; pages past the real edge count
  // are never touched.
  const std::size_t bound =
      (rule.pair_role().empty() ? 3 : 4) * std::size_t{rule.num_ops()} + rule.sync_edges().size();
  OpGraph g;
  // Boost reads each edge exactly once, so counting in the iterator counts each once.
  g.csr = OpGraphCsr(boost::edges_are_sorted,
                     EdgeIterator(&rule, false, in_degrees != nullptr ? in_degrees->data() : nullptr),
                     EdgeIterator(&rule, true), nodes, static_cast<std::uint32_t>(bound));
  g.num_ops = rule.num_ops();
  g.num_syncs = static_cast<std::uint32_t>(schedule.gradient_syncs.size());
  g.device_first_op = rule.device_first_op();
  g.pair_role = rule.pair_role();
  return g;
}

OpGraph build_comm_graph(const Schedule& schedule, const CommProgram& program, std::vector<std::uint32_t>* in_degrees,
                         bool overlapped) {
  const DependencyRule rule(schedule, overlapped);
  OpGraph g;
  g.pair_role = rule.pair_role();
  g.num_ops = rule.num_ops();
  g.num_syncs = static_cast<std::uint32_t>(schedule.gradient_syncs.size());
  g.device_first_op = rule.device_first_op();
  g.transfers = program.transfers;
  const std::uint32_t base = g.num_ops + g.num_syncs;
  const std::uint32_t nodes = base + static_cast<std::uint32_t>(program.transfers.size());
  std::vector<std::pair<std::uint32_t, std::uint32_t>> edges = rule.sync_edges();
  std::vector<int> device(g.num_ops);
  for (int d = 0; d < schedule.devices; ++d)
    for (int u = g.device_first_op[d]; u < g.device_first_op[d + 1]; ++u) device[static_cast<std::size_t>(u)] = d;
  std::uint32_t out[DependencyRule::kMaxConsumers];
  for (int d = 0; d < schedule.devices; ++d)
    for (std::size_t i = 0; i < schedule.device_ops[d].size(); ++i) {
      const auto u = static_cast<std::uint32_t>(g.device_first_op[d]) + static_cast<std::uint32_t>(i);
      const int n = rule.consumers(d, i, u, out);
      for (int k = 0; k < n; ++k)  // cross-device data edges go through their transfer
        if (device[out[k]] == d) edges.emplace_back(u, out[k]);
    }
  for (std::size_t t = 0; t < program.transfers.size(); ++t) {
    const auto x = base + static_cast<std::uint32_t>(t);
    edges.emplace_back(g.releases(static_cast<std::uint32_t>(program.transfers[t].producer)), x);
    edges.emplace_back(x, g.needs(static_cast<std::uint32_t>(program.transfers[t].consumer)));
  }
  add_program_edges(g, program, edges);
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  g.csr = OpGraphCsr(boost::edges_are_sorted, edges.begin(), edges.end(), nodes);
  if (in_degrees != nullptr) {
    in_degrees->assign(nodes, 0);
    for (const auto& e : edges) ++(*in_degrees)[e.second];
  }
  return g;
}

std::vector<std::uint32_t> in_degrees(const OpGraph& graph) {
  std::vector<std::uint32_t> in(graph.num_nodes(), 0);
  for (const auto e : boost::make_iterator_range(boost::edges(graph.csr))) ++in[boost::target(e, graph.csr)];
  return in;
}

std::vector<std::uint32_t> topological_order(const OpGraph& graph) {
  std::vector<std::uint32_t> waiting = in_degrees(graph);
  std::vector<std::uint32_t> order;
  order.reserve(waiting.size());
  for (std::uint32_t v = 0; v < waiting.size(); ++v)
    if (waiting[v] == 0) order.push_back(v);
  // `order` doubles as the queue: everything before `next` is done.
  for (std::size_t next = 0; next < order.size(); ++next)
    for (const auto e : boost::make_iterator_range(boost::out_edges(order[next], graph.csr))) {
      const auto v = static_cast<std::uint32_t>(boost::target(e, graph.csr));
      if (--waiting[v] == 0) order.push_back(v);
    }
  return order;
}

std::vector<std::uint32_t> find_cycle(const OpGraph& graph, std::vector<std::uint32_t> waiting) {
  const std::uint32_t n = graph.num_nodes();
  // Kahn's algorithm with a stack (it stays as small as the set of ready ops): what is
  // left waiting afterwards is the cycles and what waits on them.
  std::vector<std::uint32_t> ready;
  for (std::uint32_t v = 0; v < n; ++v)
    if (waiting[v] == 0) ready.push_back(v);
  while (!ready.empty()) {
    const std::uint32_t u = ready.back();
    ready.pop_back();
    for (const auto e : boost::make_iterator_range(boost::out_edges(u, graph.csr))) {
      const auto v = static_cast<std::uint32_t>(boost::target(e, graph.csr));
      if (--waiting[v] == 0) ready.push_back(v);
    }
  }
  if (std::all_of(waiting.begin(), waiting.end(), [](std::uint32_t w) { return w == 0; })) return {};
  std::vector<std::uint8_t> left(n, 0);
  for (std::uint32_t v = 0; v < n; ++v) left[v] = waiting[v] > 0 ? 1 : 0;
  // Nodes left each wait for at least one other node left; walking those waits must
  // come back to a node already seen.
  constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  std::vector<std::uint32_t> waits_for(n, kNone);
  for (const auto e : boost::make_iterator_range(boost::edges(graph.csr))) {
    const auto u = static_cast<std::uint32_t>(boost::source(e, graph.csr));
    const auto v = static_cast<std::uint32_t>(boost::target(e, graph.csr));
    if (left[u] && left[v] && waits_for[v] == kNone) waits_for[v] = u;
  }
  std::uint32_t x = static_cast<std::uint32_t>(std::find(left.begin(), left.end(), 1) - left.begin());
  std::vector<std::uint8_t> seen(n, 0);
  while (!seen[x]) {
    seen[x] = 1;
    x = waits_for[x];
  }
  std::vector<std::uint32_t> cycle{x};
  for (std::uint32_t y = waits_for[x]; y != x; y = waits_for[y]) cycle.push_back(y);
  std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
  return cycle;
}

void check_acyclic(const Schedule& schedule, const OpGraph& graph, const std::vector<std::uint32_t>& in) {
  const std::vector<std::uint32_t> cycle = find_cycle(graph, in);
  if (cycle.empty()) return;
  std::string msg = "cycle of waits: " + describe(schedule, graph, cycle[0]);
  for (std::size_t i = 1; i < cycle.size(); ++i)
    msg += (i == 1 ? " waits for " : ", which waits for ") + describe(schedule, graph, cycle[i]);
  msg += (cycle.size() == 1 ? " waits for " : ", which waits for ") + describe(schedule, graph, cycle[0]);
  throw ScheduleError(msg);
}

}  // namespace ppsim
