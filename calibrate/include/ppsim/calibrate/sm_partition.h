#pragma once
/// @file sm_partition.h
/// @brief How many SMs each of p equal SM partitions of a GPU gets (green contexts,
/// cuDevSmResourceSplitByCount), kept free of CUDA types so it is tested without a GPU.
#include <string>

namespace ppsim::cal {

/// @brief SM-count rules of cuDevSmResourceSplitByCount: a group has at least `min_size`
/// SMs and a multiple of `alignment` (the driver's minSmPartitionSize and
/// smCoscheduledAlignment; CUDA's guideline where the driver leaves them 0: 8 and 8 on
/// compute capability 9.0+, 4 and 2 on 8.x, 2 and 2 before).
struct SmSplitRules {
  unsigned min_size{0};
  unsigned alignment{0};
};

/// @brief The rules for a device: the driver's fields where it filled them, else the
/// guideline for `cc_major`.
inline SmSplitRules sm_split_rules(unsigned min_size, unsigned alignment, int cc_major) {
  const unsigned g_min = cc_major >= 9 ? 8u : cc_major == 8 ? 4u : 2u;
  const unsigned g_align = cc_major >= 9 ? 8u : 2u;
  return {min_size > 0 ? min_size : g_min, alignment > 0 ? alignment : g_align};
}

/// @brief SMs per partition for `count` equal partitions of `sm_count` SMs: the largest
/// multiple of the alignment within sm_count / count (the driver rounds a minCount up to
/// the alignment, so asking for sm_count / count itself can give fewer groups: 132 SMs in
/// 4 asks 33, rounds to 40 and makes 3). 0 when even the minimum does not fit `count`
/// times.
inline unsigned sm_partition_size(unsigned sm_count, unsigned count, SmSplitRules r) {
  if (count == 0 || r.alignment == 0) return 0;
  const unsigned per = sm_count / count / r.alignment * r.alignment;
  return per >= r.min_size ? per : 0;
}

}  // namespace ppsim::cal
