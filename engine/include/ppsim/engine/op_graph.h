#pragma once
/// @file op_graph.h
/// @brief The op graph of a schedule: every op and every dependency (data edges, device
/// order, split backward, gradient syncs) as one Boost.Graph CSR graph, built once by
/// build_op_graph. The engine's readiness counts, the cycle check and the critical path
/// all read it.
#include <cstdint>
#include <limits>
#include <vector>

#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/range/iterator_range.hpp>

#include "ppsim/schedules/communication.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief Compressed sparse rows with 32-bit vertex and edge indices: 4 bytes a node
/// and 4 bytes an edge, so 10^8 ops (about 3 * 10^8 edges) fit in a few GiB.
using OpGraphCsr = boost::compressed_sparse_row_graph<boost::directedS, boost::no_property, boost::no_property,
                                                      boost::no_property, std::uint32_t, std::uint32_t>;

/// @brief Node `i < num_ops` is op i in device order (device 0's list, then device 1's,
/// ...: the order of SimResult::ops); node `num_ops + g` is Schedule::gradient_syncs[g].
/// An edge u -> v says v waits for u. Out-edges of an op come in a fixed order: its data
/// consumers (F: the next stage's F, then its own B; B: the previous stage's B, then its
/// W), then the next op on its device (unless already a data consumer: one edge per
/// pair), then the gradient syncs it is last for.
/// A graph built with communication (build_comm_graph) has, after the syncs, one node per
/// transfer of the program (`num_ops + num_syncs + t`): it runs on its link, waits for its
/// producer and for what the framework makes it wait for, and its consumer waits for it.
struct OpGraph {
  OpGraphCsr csr;
  std::uint32_t num_ops{0};
  std::uint32_t num_syncs{0};
  std::vector<int> device_first_op;  ///< index of each device's first op; size devices + 1
  std::vector<CommTransfer> transfers;  ///< the transfer nodes (empty without communication steps)
  /// Per op when overlapped pairs run as units (else empty): 0 alone, 1 a pair's forward,
  /// 2 its backward. Edges into a pair's backward from other ops go to its forward (the
  /// pair starts with both inputs at hand), edges out of its forward to other ops leave
  /// from its backward (both outputs leave at the pair's end).
  std::vector<std::uint8_t> pair_role;
  [[nodiscard]] int role(std::uint32_t op) const { return pair_role.empty() ? 0 : pair_role[op]; }
  /// The node whose end releases op u's output, and the one whose start needs op v's input.
  [[nodiscard]] std::uint32_t releases(std::uint32_t u) const { return role(u) == 1 ? u + 1 : u; }
  [[nodiscard]] std::uint32_t needs(std::uint32_t v) const { return role(v) == 2 ? v - 1 : v; }
  [[nodiscard]] std::uint32_t num_nodes() const { return static_cast<std::uint32_t>(boost::num_vertices(csr)); }
  [[nodiscard]] bool is_op(std::uint32_t node) const { return node < num_ops; }
  [[nodiscard]] bool is_sync(std::uint32_t node) const { return node >= num_ops && node < num_ops + num_syncs; }
  [[nodiscard]] bool is_transfer(std::uint32_t node) const { return node >= num_ops + num_syncs; }
};

/// @brief Builds the op graph of a schedule that passed validate_schedule. The one
/// place the dependency rule (which op waits for which) is written. When `in_degrees`
/// is given it receives in_degrees(graph), counted while the edges are laid down.
/// `overlapped`: run Schedule::overlap_pairs as units (OpGraph::pair_role).
OpGraph build_op_graph(const Schedule& schedule, std::vector<std::uint32_t>* in_degrees = nullptr,
                       bool overlapped = false);

/// @brief The op graph of a schedule run with explicit communication: the same-device
/// edges of build_op_graph and its gradient syncs; each cross-device data edge becomes
/// producer -> transfer -> consumer; then the program's waits: blocking (Megatron) makes
/// every node of a step wait for every node of the step before it on the device (a call's
/// nodes are its transfers, so a transfer waits for both sides to post and both sides'
/// next steps wait for it); non-blocking (torch) makes each transfer wait for the one
/// before it that the same two devices exchange, in each side's order (one ordered NCCL
/// stream per device pair).
OpGraph build_comm_graph(const Schedule& schedule, const CommProgram& program,
                         std::vector<std::uint32_t>* in_degrees = nullptr, bool overlapped = false);

/// @brief Number of edges into each node (what each node waits for).
std::vector<std::uint32_t> in_degrees(const OpGraph& graph);

/// @brief Nodes in a topological order (Kahn's algorithm, first in first out); shorter
/// than num_nodes() when the graph has a cycle.
std::vector<std::uint32_t> topological_order(const OpGraph& graph);

/// @brief One cycle of waits, each node waiting for the next and the last for the first,
/// starting at its smallest node; empty when the graph is acyclic. `waiting` is
/// in_degrees(graph) (a caller that has them passes a copy).
std::vector<std::uint32_t> find_cycle(const OpGraph& graph, std::vector<std::uint32_t> waiting);
inline std::vector<std::uint32_t> find_cycle(const OpGraph& graph) { return find_cycle(graph, in_degrees(graph)); }

/// @brief Throws ScheduleError naming a cycle of waits device by device ("cycle of
/// waits: device 0 F1 (stage 0) waits for device 1 B1 (stage 1), which waits for ...").
/// `in` is in_degrees(graph).
void check_acyclic(const Schedule& schedule, const OpGraph& graph, const std::vector<std::uint32_t>& in);

/// @brief Longest path to every node: `end[v] = node_weight(v) + max(0, max over edges
/// u -> v of end[u] + edge_weight(u, v))`. `pred[v]` is the u that set the max (-1 for
/// none); among equal candidates `prefer(u_new, u_old, v)` says whether u_new replaces
/// u_old. Requires an acyclic graph.
struct LongestPath {
  std::vector<std::int64_t> end;
  std::vector<std::int32_t> pred;
};
template <class NodeWeight, class EdgeWeight, class Prefer>
LongestPath longest_path(const OpGraph& graph, NodeWeight node_weight, EdgeWeight edge_weight, Prefer prefer) {
  const std::uint32_t n = graph.num_nodes();
  LongestPath lp{std::vector<std::int64_t>(n, 0), std::vector<std::int32_t>(n, -1)};
  std::vector<std::int64_t> ready(n, 0);  // latest constraint into each node so far
  for (const std::uint32_t u : topological_order(graph)) {
    lp.end[u] = ready[u] + node_weight(u);
    for (const auto e : boost::make_iterator_range(boost::out_edges(u, graph.csr))) {
      const std::uint32_t v = static_cast<std::uint32_t>(boost::target(e, graph.csr));
      const std::int64_t at = lp.end[u] + edge_weight(u, v);
      const std::int32_t old = lp.pred[v];
      if (at > ready[v] || (old < 0 && at == ready[v]) || (at == ready[v] && prefer(u, static_cast<std::uint32_t>(old), v))) {
        ready[v] = at;
        lp.pred[v] = static_cast<std::int32_t>(u);
      }
    }
  }
  return lp;
}

}  // namespace ppsim
