// Partitioning layers into contiguous stages. balanced_partition is exact min-max: without
// a memory cap, a binary search over the bottleneck with a greedy feasibility test on
// prefix sums (O(stages log(layers) log(total cost))); with a cap, the dynamic program of
// GPipe's and PipeDream's partitioners, solved over suffixes. Both then take the
// lexicographically smallest optimal boundaries (a deterministic answer among ties). device_balanced_partition balances devices that
// run several stages: a branch-and-bound search described in partition.h.
#include "ppsim/model/partition.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <unordered_set>
#include <utility>

#include "ppsim/model/memory.h"
#include "ppsim/model/topology.h"

namespace ppsim {

std::string PartitionSpec::name() const {
  switch (kind) {
    case Kind::Default:
    case Kind::Uniform: return "uniform";
    case Kind::Balanced: return "balanced";
    case Kind::Explicit: return "explicit";
  }
  return "uniform";
}

std::vector<int> uniform_partition(int layers, int stages) {
  if (stages < 1 || layers < stages)
    throw std::invalid_argument(std::to_string(layers) + " layers cannot fill " + std::to_string(stages) + " stages");
  const int q = layers / stages;
  const int r = layers % stages;
  std::vector<int> counts(static_cast<std::size_t>(stages), q);
  const int from = (stages - r) / 2;
  for (int k = 0; k < r; ++k) ++counts[static_cast<std::size_t>(from + k)];
  return counts;
}

std::int64_t slowest_stage_cost(const std::vector<std::int64_t>& layer_cost, const std::vector<int>& counts) {
  std::int64_t worst = 0;
  std::size_t i = 0;
  for (int c : counts) {
    std::int64_t sum = 0;
    for (int k = 0; k < c; ++k) sum += layer_cost.at(i++);
    worst = std::max(worst, sum);
  }
  return worst;
}

namespace {

/// The last j with prefix[j] - prefix[i] <= bound: stage [i, j) is the longest from i.
int farthest_end(const std::vector<std::int64_t>& prefix, int i, std::int64_t bound) {
  return static_cast<int>(std::upper_bound(prefix.begin() + i, prefix.end(), prefix[i] + bound) - prefix.begin()) - 1;
}

/// Whether `stages` stages of cost <= bound cover all layers: greedy, each stage as long
/// as the bound allows (a prefix the greedy cannot pass, no split can). With bound at
/// least the costliest layer, fewer stages can be split into exactly `stages`.
bool bound_feasible(const std::vector<std::int64_t>& prefix, int stages, std::int64_t bound) {
  const int n = static_cast<int>(prefix.size()) - 1;
  int i = 0;
  for (int k = 0; k < stages && i < n; ++k) i = farthest_end(prefix, i, bound);
  return i == n;
}

/// The exact dynamic program, for a memory cap (a stage's memory depends on its index
/// and its first layer's input, so a greedy test of a bound does not hold).
std::vector<int> capped_balanced_partition(const std::vector<std::int64_t>& layer_cost, int stages,
                                           const StageMemoryFn& memory, std::int64_t cap) {
  const int n = static_cast<int>(layer_cost.size());
  constexpr std::int64_t kInf = std::numeric_limits<std::int64_t>::max();
  std::vector<std::int64_t> prefix(static_cast<std::size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + layer_cost[i];
  auto fits = [&](int stage, int first, int last) { return memory(stage, first, last) <= cap; };
  // best[k][i]: smallest bottleneck for layers [i, n) in the last k stages (stage
  // indices stages-k .. stages-1); kInf when impossible.
  const auto width = static_cast<std::size_t>(n) + 1;
  std::vector<std::int64_t> best(static_cast<std::size_t>(stages + 1) * width, kInf);
  auto at = [&](int k, int i) -> std::int64_t& { return best[static_cast<std::size_t>(k) * width + i]; };
  for (int i = 0; i < n; ++i)
    if (fits(stages - 1, i, n)) at(1, i) = prefix[n] - prefix[i];
  for (int k = 2; k <= stages; ++k) {
    const int stage = stages - k;
    for (int i = 0; i + k <= n; ++i) {
      std::int64_t b = kInf;
      for (int j = i + 1; j + (k - 1) <= n; ++j) {
        const std::int64_t rest = at(k - 1, j);
        if (rest == kInf) continue;
        const std::int64_t here = prefix[j] - prefix[i];
        if (std::max(here, rest) >= b) {
          if (here >= b) break;  // later ends only make this stage slower
          continue;
        }
        if (!fits(stage, i, j)) continue;
        b = std::max(here, rest);
      }
      at(k, i) = b;
    }
  }
  const std::int64_t target = at(stages, 0);
  if (target == kInf) return {};
  std::vector<int> counts;
  int i = 0;
  for (int k = stages; k >= 2; --k) {
    const int stage = stages - k;
    int chosen = -1;
    for (int j = i + 1; j + (k - 1) <= n; ++j) {
      const std::int64_t rest = at(k - 1, j);
      if (rest == kInf || prefix[j] - prefix[i] > target) continue;
      if (std::max(prefix[j] - prefix[i], rest) <= target && fits(stage, i, j)) {
        chosen = j;
        break;
      }
    }
    counts.push_back(chosen - i);
    i = chosen;
  }
  counts.push_back(n - i);
  return counts;
}

/// Greedy under a memory cap and a bound: each stage, in order, ends as far as its cost
/// (<= bound) and its memory (<= cap; a stage's memory grows with its last layer, so a
/// binary search finds the farthest end) allow, leaving one layer for each stage after
/// it; the last stage takes the rest. The split, or empty when the greedy finds none.
std::vector<int> capped_greedy_split(const std::vector<std::int64_t>& prefix, int stages, const StageMemoryFn& memory,
                                     std::int64_t cap, std::int64_t bound) {
  const int n = static_cast<int>(prefix.size()) - 1;
  std::vector<int> counts;
  int i = 0;
  for (int k = 0; k + 1 < stages; ++k) {
    const int last = std::min(farthest_end(prefix, i, bound), n - (stages - 1 - k));
    if (last <= i || memory(k, i, i + 1) > cap) return {};
    int lo = i + 1, hi = last;  // memory(k, i, lo) fits; find the largest end that does
    while (lo < hi) {
      const int mid = lo + (hi - lo + 1) / 2;
      if (memory(k, i, mid) <= cap) lo = mid;
      else hi = mid - 1;
    }
    counts.push_back(lo - i);
    i = lo;
  }
  if (prefix[n] - prefix[i] > bound || memory(stages - 1, i, n) > cap) return {};
  counts.push_back(n - i);
  return counts;
}

}  // namespace

std::vector<int> greedy_capped_partition(const std::vector<std::int64_t>& layer_cost, int stages,
                                         const StageMemoryFn& memory, std::int64_t cap) {
  const int n = static_cast<int>(layer_cost.size());
  if (stages < 1 || stages > n)
    throw std::invalid_argument("cannot split " + std::to_string(n) + " layers into " + std::to_string(stages) + " stages");
  std::vector<std::int64_t> prefix(static_cast<std::size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + layer_cost[i];
  std::int64_t lo = *std::max_element(layer_cost.begin(), layer_cost.end()), hi = prefix[n];
  if (capped_greedy_split(prefix, stages, memory, cap, hi).empty()) return {};
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (!capped_greedy_split(prefix, stages, memory, cap, mid).empty()) hi = mid;
    else lo = mid + 1;
  }
  return capped_greedy_split(prefix, stages, memory, cap, lo);
}

std::vector<int> balanced_partition(const std::vector<std::int64_t>& layer_cost, int stages,
                                    const StageMemoryFn& memory, std::int64_t cap) {
  const int n = static_cast<int>(layer_cost.size());
  if (stages < 1 || stages > n)
    throw std::invalid_argument("cannot split " + std::to_string(n) + " layers into " + std::to_string(stages) + " stages");
  if (memory && cap > 0)
    return capped_partition_steps(n, stages) > kExactCappedPartitionSteps
               ? greedy_capped_partition(layer_cost, stages, memory, cap)
               : capped_balanced_partition(layer_cost, stages, memory, cap);
  std::vector<std::int64_t> prefix(static_cast<std::size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + layer_cost[i];
  // The least bottleneck: binary search over bounds with the greedy test.
  std::int64_t lo = *std::max_element(layer_cost.begin(), layer_cost.end()), hi = prefix[n];
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (bound_feasible(prefix, stages, mid)) hi = mid;
    else lo = mid + 1;
  }
  const std::int64_t target = lo;
  // first_start[k]: the first layer from which k stages within the target cover the rest
  // (greedy from the end); layers [i, n) split into k stages iff first_start[k] <= i <= n - k.
  std::vector<int> first_start(static_cast<std::size_t>(stages), n);
  for (int k = 1; k < stages; ++k) {
    const int end = first_start[k - 1];
    first_start[k] = static_cast<int>(std::lower_bound(prefix.begin(), prefix.begin() + end, prefix[end] - target) -
                                      prefix.begin());
  }
  // Lexicographically smallest boundaries: each stage ends as early as the rest allows.
  std::vector<int> counts;
  int i = 0;
  for (int k = stages; k >= 2; --k) {
    const int j = std::max(i + 1, first_start[k - 1]);
    counts.push_back(j - i);
    i = j;
  }
  counts.push_back(n - i);
  return counts;
}

double capped_partition_steps(int layers, int stages) {
  return static_cast<double>(stages) * static_cast<double>(layers) * static_cast<double>(layers);
}

StagePlacement placement_of(const Schedule& s) {
  StagePlacement placement(s.device_ops.size());
  const std::size_t slots = static_cast<std::size_t>(s.pipes) * s.num_stages;
  for (std::size_t d = 0; d < s.device_ops.size(); ++d) {
    std::vector<int> index(slots, -1), inflight(slots, 0);
    auto& held = placement[d];
    for (const Op& op : s.device_ops[d]) {
      const std::size_t slot = static_cast<std::size_t>(op.pipe) * s.num_stages + op.stage;
      if (op.kind == OpKind::Backward) --inflight[slot];
      if (op.kind != OpKind::Forward) continue;
      if (index[slot] < 0) {
        index[slot] = static_cast<int>(held.size());
        held.push_back({op.stage, op.pipe, 0, 0});
      }
      StageHolding& h = held[static_cast<std::size_t>(index[slot])];
      ++h.microbatches;
      h.peak_inflight = std::max(h.peak_inflight, ++inflight[slot]);
    }
  }
  return placement;
}

std::int64_t busiest_device_load(const std::vector<std::int64_t>& layer_cost, const StagePlacement& placement,
                                 const std::vector<int>& counts) {
  std::vector<std::int64_t> stage_cost;
  std::size_t i = 0;
  for (int c : counts) {
    std::int64_t sum = 0;
    for (int k = 0; k < c; ++k) sum += layer_cost.at(i++);
    stage_cost.push_back(sum);
  }
  std::int64_t worst = 0;
  for (const auto& held : placement) {
    std::int64_t load = 0;
    for (const StageHolding& h : held) load += h.microbatches * stage_cost.at(static_cast<std::size_t>(h.stage));
    worst = std::max(worst, load);
  }
  return worst;
}

namespace {

constexpr std::int64_t kNoBound = std::numeric_limits<std::int64_t>::max();

// Nodes a search may visit: the branch and bound on the busiest load, each try of a
// slowest-stage bound, and the final lexicographic search. Small models finish well
// within them (exact); a 40-layer, 16-stage one takes about 2 ms in all.
constexpr std::int64_t kLoadBudget = 2'000;
constexpr std::int64_t kStageBudget = 500;
constexpr std::int64_t kFinalBudget = 2'000;
// Sizes up to which the local search and the branch and bound run (searchable).
constexpr int kSearchLayers = 10'000;
constexpr int kSearchStages = 256;

/// One device running one stage, as the search sees it.
struct Holder {
  int device{0};
  std::int64_t weight{0};  ///< micro-batches over the gcd of all of them
  const StageHolding* holding{nullptr};
};

struct KeyHash {
  std::size_t operator()(const std::vector<std::int64_t>& key) const {
    std::uint64_t h = 1469598103934665603ULL;
    for (std::int64_t v : key) h = (h ^ static_cast<std::uint64_t>(v)) * 1099511628211ULL;
    return static_cast<std::size_t>(h);
  }
};

/// What a search minimises.
enum class Objective { Busiest, Slowest };

/// The branch-and-bound search of device_balanced_partition (see partition.h).
class DeviceSearch {
 public:
  DeviceSearch(const std::vector<std::int64_t>& cost, int stages, const StagePlacement& placement,
               const HoldingMemoryFn& memory, std::int64_t cap);

  /// The lexicographically first split with the least `objective` among those with
  /// device loads <= bound and stage costs <= stage_bound (each device's memory within
  /// the cap), or `incumbent` when none beats it; exhausted() when the budget ran out.
  std::vector<int> minimise(Objective objective, std::int64_t bound, std::int64_t stage_bound,
                            std::vector<int> incumbent, bool largest_first, std::int64_t budget);
  [[nodiscard]] bool exhausted() const { return exhausted_; }
  [[nodiscard]] std::int64_t nodes() const { return nodes_; }
  /// The busiest device's load in search units (weights over their gcd).
  [[nodiscard]] std::int64_t load_of(const std::vector<int>& counts) const;
  [[nodiscard]] std::int64_t slowest_of(const std::vector<int>& counts) const;
  [[nodiscard]] std::int64_t stage_cost(int first, int last) const { return prefix_[last] - prefix_[first]; }
  /// Greedy split for a target load: each stage takes the most layers that keep its
  /// cost <= stage_cap and its devices within an even share of the room they have left
  /// for the stages they still run.
  [[nodiscard]] std::vector<int> spread(std::int64_t target, std::int64_t stage_cap) const;
  /// A lower bound on the least busiest load, in search units.
  [[nodiscard]] std::int64_t lower_bound() const;

 private:
  void dfs(int k, int i, std::int64_t slowest);
  void found();
  [[nodiscard]] bool capacity_ok(int k, int i) const;
  [[nodiscard]] std::vector<std::int64_t> key(int k, int i) const;

  int n_, stages_, devices_;
  std::vector<std::int64_t> prefix_;
  std::vector<std::vector<Holder>> holders_;   // [stage]
  std::vector<std::vector<int>> active_;       // [stage] -> devices running a stage >= it
  std::vector<std::int64_t> min_weight_from_;  // [stage] -> least total weight of stages >= it
  const HoldingMemoryFn& memory_;
  std::int64_t cap_;
  Objective objective_{Objective::Busiest};
  bool largest_first_{false};
  std::int64_t bound_{kNoBound}, stage_bound_{kNoBound};
  std::vector<std::int64_t> load_, used_;
  std::vector<int> ends_, best_;
  std::vector<std::unordered_set<std::vector<std::int64_t>, KeyHash>> failed_;
  std::int64_t nodes_{0}, budget_{0};
  bool exhausted_{false};
};

DeviceSearch::DeviceSearch(const std::vector<std::int64_t>& cost, int stages, const StagePlacement& placement,
                           const HoldingMemoryFn& memory, std::int64_t cap)
    : n_(static_cast<int>(cost.size())), stages_(stages), devices_(static_cast<int>(placement.size())),
      prefix_(cost.size() + 1, 0), holders_(static_cast<std::size_t>(stages)),
      active_(static_cast<std::size_t>(stages)), min_weight_from_(static_cast<std::size_t>(stages) + 1, kNoBound),
      memory_(memory), cap_(memory && cap > 0 ? cap : kNoBound) {
  for (int i = 0; i < n_; ++i) prefix_[i + 1] = prefix_[i] + cost[i];
  std::int64_t g = 0;
  for (const auto& held : placement)
    for (const StageHolding& h : held) g = std::gcd(g, std::int64_t{h.microbatches});
  std::vector<int> last_stage(placement.size(), -1);
  for (int d = 0; d < devices_; ++d)
    for (const StageHolding& h : placement[d]) {
      if (h.stage < 0 || h.stage >= stages)
        throw std::invalid_argument("placement names stage " + std::to_string(h.stage) + " of " + std::to_string(stages));
      holders_[h.stage].push_back({d, g > 0 ? h.microbatches / g : 0, &h});
      last_stage[d] = std::max(last_stage[d], h.stage);
    }
  for (int k = stages - 1; k >= 0; --k) {
    std::int64_t weight = 0;
    for (const Holder& h : holders_[k]) weight += h.weight;
    min_weight_from_[k] = std::min(min_weight_from_[k + 1], weight);
    for (int d = 0; d < devices_; ++d)
      if (last_stage[d] >= k) active_[k].push_back(d);
  }
}

std::int64_t DeviceSearch::load_of(const std::vector<int>& counts) const {
  std::vector<std::int64_t> load(static_cast<std::size_t>(devices_), 0);
  int first = 0;
  for (int k = 0; k < stages_; ++k) {
    const int last = first + counts[k];
    for (const Holder& h : holders_[k]) load[h.device] += h.weight * (prefix_[last] - prefix_[first]);
    first = last;
  }
  return devices_ > 0 ? *std::max_element(load.begin(), load.end()) : 0;
}

std::int64_t DeviceSearch::slowest_of(const std::vector<int>& counts) const {
  std::int64_t worst = 0;
  int first = 0;
  for (int c : counts) {
    worst = std::max(worst, prefix_[first + c] - prefix_[first]);
    first += c;
  }
  return worst;
}

std::vector<int> DeviceSearch::spread(std::int64_t target, std::int64_t stage_cap) const {
  std::vector<std::int64_t> room(static_cast<std::size_t>(devices_), target);
  std::vector<int> left(static_cast<std::size_t>(devices_), 0);
  for (const auto& holders : holders_)
    for (const Holder& h : holders) ++left[h.device];
  std::vector<int> counts;
  int i = 0;
  for (int k = 0; k < stages_; ++k) {
    std::int64_t allowed = stage_cap;
    for (const Holder& h : holders_[k])
      if (h.weight > 0) allowed = std::min(allowed, room[h.device] / left[h.device] / h.weight);
    int j = i + 1;
    while (j + (stages_ - k - 1) < n_ && prefix_[j + 1] - prefix_[i] <= allowed) ++j;
    if (k == stages_ - 1) j = n_;
    for (const Holder& h : holders_[k]) {
      room[h.device] -= h.weight * (prefix_[j] - prefix_[i]);
      --left[h.device];
    }
    counts.push_back(j - i);
    i = j;
  }
  return counts;
}

std::int64_t DeviceSearch::lower_bound() const {
  const std::int64_t work = min_weight_from_[0] * prefix_[n_];
  const auto devices = static_cast<std::int64_t>(active_[0].size());
  return devices > 0 ? (work + devices - 1) / devices : 0;
}

std::vector<int> DeviceSearch::minimise(Objective objective, std::int64_t bound, std::int64_t stage_bound,
                                        std::vector<int> incumbent, bool largest_first, std::int64_t budget) {
  objective_ = objective;
  largest_first_ = largest_first;
  bound_ = bound;
  stage_bound_ = stage_bound;
  load_.assign(static_cast<std::size_t>(devices_), 0);
  used_.assign(static_cast<std::size_t>(devices_), 0);
  ends_.assign(static_cast<std::size_t>(stages_), 0);
  failed_.assign(static_cast<std::size_t>(stages_), {});
  best_ = std::move(incumbent);
  budget_ = nodes_ + budget;
  exhausted_ = false;
  dfs(0, 0, 0);
  return best_;
}

void DeviceSearch::found() {
  best_.clear();
  int first = 0;
  for (int end : ends_) {
    best_.push_back(end - first);
    first = end;
  }
  // From here on only strictly better splits count.
  if (objective_ == Objective::Busiest) bound_ = load_of(best_) - 1;
  else stage_bound_ = slowest_of(best_) - 1;
}

bool DeviceSearch::capacity_ok(int k, int i) const {
  const std::int64_t rest = prefix_[n_] - prefix_[i];
  if (stage_bound_ != kNoBound && rest > stage_bound_ * (stages_ - k)) return false;
  if (bound_ == kNoBound) return true;
  // Every remaining layer adds its cost times at least min_weight_from_[k] to the devices
  // still to get a stage; they have bound - load left each.
  std::int64_t room = 0;
  for (int d : active_[k]) room += bound_ - load_[d];
  const std::int64_t w = min_weight_from_[k];
  return room >= 0 && (w == 0 || rest <= room / w);
}

std::vector<std::int64_t> DeviceSearch::key(int k, int i) const {
  std::vector<std::int64_t> key{i};
  for (int d : active_[k]) {
    if (bound_ != kNoBound) key.push_back(load_[d]);
    if (cap_ != kNoBound) key.push_back(used_[d]);
  }
  return key;
}

// A node that fails (no completion within the bounds) is memoised: the bounds only
// tighten during a search, so it stays failed. Loads and stage costs only grow with j,
// so once a bound is passed no later j can do better.
void DeviceSearch::dfs(int k, int i, std::int64_t slowest) {
  // Bounds tightened by a split found elsewhere may already rule out the stages placed
  // on the way here: then give up without memoising (the node may be fine on another
  // path). Otherwise whether it completes depends only on its key.
  if (slowest > stage_bound_ ||
      !std::all_of(load_.begin(), load_.end(), [&](std::int64_t l) { return l <= bound_; }))
    return;
  if (k == stages_) {
    if (i == n_) found();
    return;
  }
  if (++nodes_ > budget_) exhausted_ = true;
  if (exhausted_ || !capacity_ok(k, i)) return;
  auto memo = key(k, i);
  auto& failed = failed_[static_cast<std::size_t>(k)];
  if (failed.count(memo) != 0) return;
  const std::int64_t before = objective_ == Objective::Busiest ? bound_ : stage_bound_;
  const auto& holders = holders_[static_cast<std::size_t>(k)];
  // The stage's last layer: at most `last`, where its cost and its holders' loads stay
  // within the bounds (both grow with it), leaving a layer for each later stage.
  int last = i;
  for (int j = i + 1; j + (stages_ - k - 1) <= n_; ++j) {
    const std::int64_t c = prefix_[j] - prefix_[i];
    bool over = c > stage_bound_;
    for (const Holder& h : holders) over = over || load_[h.device] + h.weight * c > bound_;
    if (over) break;
    last = j;
  }
  std::vector<std::int64_t> bytes(holders.size(), 0);
  for (int step = 0; step < last - i && !exhausted_; ++step) {
    const int j = largest_first_ ? last - step : i + 1 + step;
    const std::int64_t c = prefix_[j] - prefix_[i];
    bool fits = true;
    for (std::size_t x = 0; x < holders.size(); ++x) {
      load_[holders[x].device] += holders[x].weight * c;
      bytes[x] = cap_ == kNoBound ? 0 : memory_(*holders[x].holding, i, j);
      used_[holders[x].device] += bytes[x];
      fits = fits && used_[holders[x].device] <= cap_;
    }
    bool within = true;  // a split found below may have tightened the bounds
    for (const Holder& h : holders) within = within && load_[h.device] <= bound_ && c <= stage_bound_;
    if (fits && within) {
      ends_[static_cast<std::size_t>(k)] = j;
      dfs(k + 1, j, std::max(slowest, c));
    }
    for (std::size_t x = 0; x < holders.size(); ++x) {
      load_[holders[x].device] -= holders[x].weight * c;
      used_[holders[x].device] -= bytes[x];
    }
  }
  // Memoised only when nothing was found below: then no completion meets the bounds,
  // which only tighten.
  const std::int64_t after = objective_ == Objective::Busiest ? bound_ : stage_bound_;
  if (!exhausted_ && after == before) failed.insert(std::move(memo));
}

/// True when every device runs one stage, every stage runs on one device, and all run
/// equally many micro-batches: then device load is stage cost.
bool one_stage_per_device(const StagePlacement& placement, int stages) {
  if (static_cast<int>(placement.size()) != stages) return false;
  std::vector<int> seen(static_cast<std::size_t>(stages), 0);
  for (const auto& held : placement) {
    if (held.size() != 1 || held[0].microbatches != placement[0][0].microbatches) return false;
    if (held[0].stage < 0 || held[0].stage >= stages || seen[held[0].stage]++ > 0) return false;
  }
  return true;
}

/// Seed: the slowest stage minimised under cap / (most holdings on one device), a
/// stage's memory being its largest holding's (balanced by time alone without a cap).
/// For interleaved and the V-shaped schedules this is the split the partitioner made
/// before it balanced devices.
std::vector<int> stage_balanced_seed(const std::vector<std::int64_t>& cost, int stages,
                                     const StagePlacement& placement, const HoldingMemoryFn& memory,
                                     std::int64_t cap) {
  if (!memory || cap <= 0) return balanced_partition(cost, stages);
  std::vector<std::vector<const StageHolding*>> of(static_cast<std::size_t>(stages));
  std::size_t most = 1;
  for (const auto& held : placement) {
    most = std::max(most, held.size());
    for (const StageHolding& h : held) of[h.stage].push_back(&h);
  }
  auto stage_memory = [&](int stage, int first, int last) {
    std::int64_t worst = 0;
    for (const StageHolding* h : of[stage]) worst = std::max(worst, memory(*h, first, last));
    return worst;
  };
  return balanced_partition(cost, stages, stage_memory, cap / static_cast<std::int64_t>(most));
}

/// Whether every device's memory under `counts` is within the cap.
bool fits_cap(const std::vector<int>& counts, const StagePlacement& placement, const HoldingMemoryFn& memory,
              std::int64_t cap) {
  if (!memory || cap <= 0) return true;
  std::vector<int> first(counts.size() + 1, 0);
  for (std::size_t k = 0; k < counts.size(); ++k) first[k + 1] = first[k] + counts[k];
  for (const auto& held : placement) {
    std::int64_t used = 0;
    for (const StageHolding& h : held) used += memory(h, first[h.stage], first[h.stage + 1]);
    if (used > cap) return false;
  }
  return true;
}

/// Local search from `counts`: shifts every boundary of a run of consecutive ones by one
/// layer while that lowers (busiest load, slowest stage) and fits the cap. Moving a run
/// passes a layer from one stage along to a far one (from the last stage back to the
/// first pass's last, say), which no single boundary move can do.
std::vector<int> improve(const DeviceSearch& search, const StagePlacement& placement, const HoldingMemoryFn& memory,
                         std::int64_t cap, std::vector<int> counts) {
  if (counts.size() < 2) return counts;
  auto value = [&](const std::vector<int>& c) { return std::pair(search.load_of(c), search.slowest_of(c)); };
  auto current = value(counts);
  for (int round = 0; round < 1000; ++round) {
    bool better = false;
    // Boundary b sits between stages b and b+1; shifting boundaries a..b by delta
    // changes only stages a and b+1.
    for (std::size_t a = 0; a + 1 < counts.size() && !better; ++a)
      for (std::size_t b = a; b + 1 < counts.size() && !better; ++b)
        for (int delta : {-1, 1}) {
          if (counts[a] + delta < 1 || counts[b + 1] - delta < 1) continue;
          counts[a] += delta;
          counts[b + 1] -= delta;
          const auto v = value(counts);
          if (v < current && fits_cap(counts, placement, memory, cap)) {
            current = v;
            better = true;
            break;
          }
          counts[a] -= delta;
          counts[b + 1] += delta;
        }
    if (!better) break;
  }
  return counts;
}

DeviceSplit finish(const std::vector<std::int64_t>& cost, const StagePlacement& placement, std::vector<int> counts) {
  DeviceSplit split;
  if (counts.empty()) return split;
  split.busiest = busiest_device_load(cost, placement, counts);
  split.slowest_stage = slowest_stage_cost(cost, counts);
  split.counts = std::move(counts);
  return split;
}

/// The best seed that fits the cap by (busiest, slowest): the stage-balanced and the
/// uniform split, and the spread greedy split for the least target load, then the
/// least stage cap, that it meets (binary searches). Empty when none fits.
std::vector<int> seed_split(const DeviceSearch& search, const std::vector<std::int64_t>& cost, int stages,
                            const StagePlacement& placement, const HoldingMemoryFn& memory, std::int64_t cap) {
  std::vector<int> best;
  auto consider = [&](std::vector<int> seed) {
    if (seed.empty() || !fits_cap(seed, placement, memory, cap)) return false;
    if (best.empty() || std::pair(search.load_of(seed), search.slowest_of(seed)) <
                            std::pair(search.load_of(best), search.slowest_of(best)))
      best = std::move(seed);
    return true;
  };
  consider(stage_balanced_seed(cost, stages, placement, memory, cap));
  consider(uniform_partition(static_cast<int>(cost.size()), stages));
  auto least = [&](std::int64_t lo, std::int64_t hi, auto split_for, auto value_of) {
    while (hi - lo > 1) {
      const std::int64_t mid = lo + (hi - lo) / 2;
      std::vector<int> greedy = split_for(mid);
      const std::int64_t value = value_of(greedy);
      if (value <= mid && consider(greedy)) hi = value;
      else lo = mid;
    }
  };
  least(search.lower_bound() - 1, best.empty() ? kNoBound / 2 : search.load_of(best),
        [&](std::int64_t b) { return search.spread(b, kNoBound); },
        [&](const std::vector<int>& c) { return search.load_of(c); });
  if (best.empty()) return best;
  const std::int64_t load = search.load_of(best);
  least(0, search.slowest_of(best), [&](std::int64_t t) {
    std::vector<int> greedy = search.spread(load, t);
    return search.load_of(greedy) <= load ? greedy : std::vector<int>{};
  }, [&](const std::vector<int>& c) { return c.empty() ? kNoBound : search.slowest_of(c); });
  return best;
}

/// At best's busiest load, the least slowest stage: binary search over the stage costs
/// there are, each bound tried by a lexicographic search; then the lexicographically
/// first split with that load and slowest stage. Clears `exact` when a budget ran out.
std::vector<int> least_slowest(DeviceSearch& search, int n, std::vector<int> best, bool& exact) {
  const std::int64_t load = search.load_of(best);
  std::vector<std::int64_t> costs;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j <= n; ++j)
      if (const std::int64_t c = search.stage_cost(i, j); c < search.slowest_of(best)) costs.push_back(c);
  std::sort(costs.begin(), costs.end());
  costs.erase(std::unique(costs.begin(), costs.end()), costs.end());
  std::size_t lo = 0, hi = costs.size();  // the answer is costs[lo..hi) or best's
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    std::vector<int> found = search.minimise(Objective::Slowest, load, costs[mid], {}, false, kStageBudget);
    exact = exact && !search.exhausted();
    if (found.empty()) {
      lo = mid + 1;
      continue;
    }
    best = std::move(found);
    hi = static_cast<std::size_t>(std::lower_bound(costs.begin(), costs.end(), search.slowest_of(best)) - costs.begin());
  }
  best = search.minimise(Objective::Slowest, load, search.slowest_of(best), best, false, kFinalBudget);
  exact = exact && !search.exhausted();
  return best;
}

/// Whether the local search and the branch and bound may run: their steps grow with
/// layers^2 (least_slowest lists every stage cost) and stages^3 (each local-search round
/// tries every run of boundaries), so beyond these sizes only the seeds, each
/// near-linear, are taken (`exact` false).
bool searchable(int layers, int stages) { return layers <= kSearchLayers && stages <= kSearchStages; }

}  // namespace

DeviceSplit device_balanced_partition(const std::vector<std::int64_t>& cost, int stages,
                                      const StagePlacement& placement, const HoldingMemoryFn& memory,
                                      std::int64_t cap) {
  const int n = static_cast<int>(cost.size());
  if (stages < 1 || stages > n)
    throw std::invalid_argument("cannot split " + std::to_string(n) + " layers into " + std::to_string(stages) + " stages");
  if (one_stage_per_device(placement, stages)) {
    StageMemoryFn stage_memory;
    if (memory) {
      std::vector<const StageHolding*> of(static_cast<std::size_t>(stages));
      for (const auto& held : placement) of[held[0].stage] = &held[0];
      stage_memory = [&memory, of](int stage, int first, int last) { return memory(*of[stage], first, last); };
    }
    return finish(cost, placement, balanced_partition(cost, stages, stage_memory, cap));
  }
  DeviceSearch search(cost, stages, placement, memory, cap);
  std::vector<int> seeded = seed_split(search, cost, stages, placement, memory, cap);
  if (!searchable(n, stages)) {  // the seeds alone: near-linear in layers x stages
    DeviceSplit split = finish(cost, placement, std::move(seeded));
    split.exact = false;
    return split;
  }
  std::vector<int> best = improve(search, placement, memory, cap, std::move(seeded));
  // Branch and bound, largest stages first (good splits come early): a busiest load
  // below the best seed's (any split that fits when no seed does).
  best = search.minimise(Objective::Busiest, best.empty() ? kNoBound : search.load_of(best) - 1, kNoBound, best, true,
                         kLoadBudget);
  bool exact = !search.exhausted();
  if (!best.empty()) best = least_slowest(search, n, std::move(best), exact);
  DeviceSplit split = finish(cost, placement, std::move(best));
  split.exact = exact;
  split.nodes = search.nodes();
  return split;
}

}  // namespace ppsim
