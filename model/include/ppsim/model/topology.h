#pragma once
/// @file topology.h
/// @brief Cluster topology: nodes x GPUs per node, intra-node (NVLink) and inter-node
/// (InfiniBand / RoCE) links, stage-to-GPU placement, NIC contention, and the
/// data-parallel gradient all-reduce.
///
/// The link model, precisely (TopologyLinkModel):
/// - GPUs are numbered node-major: GPU g is on node g / gpus_per_node, local index
///   g % gpus_per_node, and uses NIC (local index % nics_per_node) of its node.
/// - Placement of pipeline device d of replica r (only replica 0 is simulated; the
///   others are assumed to run identically in lock step):
///   "pipeline" (default): GPU r*p + d, consecutive stages on consecutive GPUs;
///   "data" (Megatron-LM rank order with tp = 1): GPU d*dp + r, the data-parallel
///   replicas of a stage side by side.
/// - A transfer of B bytes between two GPUs of one node uses the directed pair's own
///   link (NVSwitch gives every pair full bandwidth): it starts at max(ready, the time
///   the pair's link is free), holds the link for B / intra.bandwidth, and arrives
///   intra.latency after that.
/// - A transfer between nodes holds the sending GPU's NIC egress port and the receiving
///   GPU's NIC ingress port: it starts at max(ready, egress free, ingress free), holds
///   both for k * B / inter.bandwidth, and arrives inter.latency after that. k >= 1 is
///   the number of pipeline replicas whose copy of this transfer uses the same egress
///   (or ingress, whichever is larger) NIC port: they run in lock step, so they share it
///   fairly and all finish together. Requests are served first come, first served.
/// - Latency does not hold a link (it is propagation and software overhead); the
///   bandwidth term does.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>


#include "ppsim/engine/engine.h"
#include "ppsim/engine/link_curve.h"

namespace ppsim {


/// @brief Latency and bandwidth of one kind of link: one line, or a measured curve's
/// segments (ppsim-calibrate p2p's piecewise fit), which then decide every time.
struct NetLink {
  double latency_us{0};
  double bandwidth_GBps{0};  ///< 10^9 bytes per second; 0 = unlimited
  std::vector<LinkSegment> segments{};  ///< sorted by from_bytes; empty: the one line above
  /// @brief Time the bandwidth term of `amount` bytes holds the link when the messages
  /// are `message` bytes each (the size picks the segment; amount = k * message when k
  /// lock-step copies share the link).
  [[nodiscard]] TimeNs serialization(Bytes amount, Bytes message) const;
  [[nodiscard]] TimeNs serialization(Bytes bytes) const { return serialization(bytes, bytes); }
  /// @brief The latency term of a `message`-byte transfer (never negative: a segment
  /// with a negative intercept folds it into its serialization).
  [[nodiscard]] TimeNs latency(Bytes message) const;
  /// @brief latency + serialization of one `bytes`-byte message: the curve itself.
  [[nodiscard]] TimeNs transfer_time(Bytes bytes) const { return latency(bytes) + serialization(bytes); }
};

/// @brief Where a stage's GPUs are.
enum class Placement { PipelineInner, DataInner };

/// @brief The config's cluster topology (all optional; nodes == 0 means no topology:
/// every pair uses `cluster.link`).
struct ClusterSpec {
  int nodes{0};
  int gpus_per_node{0};
  int nics_per_node{1};
  NetLink intra;
  NetLink inter;
  Placement placement{Placement::PipelineInner};
  std::int64_t gpu_memory_bytes{0};  ///< from a preset or cluster.gpu_memory_GiB; 0 = unknown
  std::string preset;                ///< name or path of the preset it came from
  [[nodiscard]] bool given() const { return nodes > 0; }
};

/// @brief The config's `parallel` section.
struct ParallelSpec {
  int data_parallel{0};             ///< 0: cluster.devices / (stages x tensor_parallel)
  int tensor_parallel{1};           ///< t: GPUs of one tensor-parallel group (within a node)
  bool sequence_parallel{false};    ///< Megatron sequence parallelism with t > 1
  bool overlap_grad_reduce{false};  ///< start each layer's all-reduce as soon as its gradient is ready
};

/// @brief Maps pipeline devices of replica 0 to GPUs and serves transfers (see file comment).
class TopologyLinkModel final : public LinkModel {
 public:
  /// @param stages p, devices per pipeline
  /// @param replicas data-parallel degree
  /// @param tensor_parallel t: each pipeline device is a tensor-parallel group of t
  /// consecutive GPUs (Megatron-LM's rank order: tensor, then data, then pipeline); the
  /// group's t ranks send their copies of a transfer in lock step, each on its own NIC
  TopologyLinkModel(const ClusterSpec& cluster, int stages, int replicas, int tensor_parallel = 1);
  TransferSlot reserve(int src, int dst, Bytes bytes, TimeNs ready) override;
  void reset() override;
  [[nodiscard]] bool is_free() const override { return false; }
  /// @brief GPU of tensor-parallel rank `rank` of pipeline device `device` in replica `replica`.
  [[nodiscard]] int gpu(int device, int replica = 0, int rank = 0) const;
  [[nodiscard]] int node_of(int gpu) const { return gpu / cluster_.gpus_per_node; }
  /// @brief Global NIC id (node * nics_per_node + nic) a GPU uses.
  [[nodiscard]] int nic_of(int gpu) const;
  /// @brief How many replicas' copies of a src->dst transfer share replica 0's NIC port.
  [[nodiscard]] int sharing(int src, int dst) const;

 private:
  ClusterSpec cluster_;
  int stages_;
  int replicas_;
  int tp_;
  std::vector<TimeNs> pair_free_;     // [src * stages + dst], intra-node
  std::vector<TimeNs> egress_free_;   // per NIC
  std::vector<TimeNs> ingress_free_;  // per NIC
  std::vector<int> sharing_;          // [src * stages + dst]
};

/// @brief Ring all-reduce time: 2(n-1)/n * bytes / bandwidth + 2(n-1) * latency.
TimeNs ring_allreduce_time(Bytes bytes, int n, const NetLink& link);

/// @brief The collectives a layer runs inside its ops.
enum class Collective { AllReduce, AllGather, ReduceScatter };
std::string collective_name(Collective k);

/// @brief Ring time of one collective of `bytes` (the whole tensor: the all-reduce's
/// buffer, the all-gather's output, the reduce-scatter's input) over n GPUs: the bus
/// bandwidth factor nccl-tests reports (2(n-1)/n for all-reduce, (n-1)/n for all-gather
/// and reduce-scatter) times bytes / link bandwidth, plus one link latency per ring
/// step (2(n-1) resp. n-1). An all-gather and a reduce-scatter cost one all-reduce.
TimeNs ring_collective_time(Collective kind, Bytes bytes, int n, const NetLink& link);

/// @brief One bucket of gradients: ready at `ready`, `bytes` to reduce; `time` is filled
/// by device_all_reduce.
struct GradientBucket {
  TimeNs ready;
  Bytes bytes;
  TimeNs time;
};

/// @brief The buckets of one stage a device holds, reduced over `ring` GPUs on `link`.
struct StageGradients {
  int ring{1};
  NetLink link;
  std::vector<GradientBucket> buckets;  ///< in the order backward produces them
};

/// @brief One device's all-reduce.
struct DeviceAllReduce {
  TimeNs allreduce;  ///< total time reducing
  TimeNs finish;     ///< when its last all-reduce ends
  Bytes bytes;       ///< gradient bytes reduced
};

/// @brief Without overlap: each stage's gradients reduce as one ring all-reduce, one stage
/// after another, from `last_op_end`. With overlap: each bucket reduces on its own, in
/// order of readiness, one after another, no earlier than its `ready` (and `run_start`).
DeviceAllReduce device_all_reduce(const std::vector<StageGradients>& stages, TimeNs last_op_end, TimeNs run_start,
                                  bool overlap);

}  // namespace ppsim
