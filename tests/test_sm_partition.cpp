// SMs per green-context partition (sm_partition.h): the replay's devices on one GPU.
#include <catch2/catch.hpp>

#include "ppsim/calibrate/sm_partition.h"

using ppsim::cal::sm_partition_size;
using ppsim::cal::sm_split_rules;

TEST_CASE("SM partitions: multiples of the driver's alignment within an equal share") {
  const auto hopper = sm_split_rules(0, 0, 9);  // H100 / H200: 132 SMs, groups of 8
  CHECK(hopper.min_size == 8);
  CHECK(hopper.alignment == 8);
  // 132 / 4 = 33 would round up to 40 in the driver and make 3 groups: ask 32.
  CHECK(sm_partition_size(132, 4, hopper) == 32);
  CHECK(sm_partition_size(132, 2, hopper) == 64);
  CHECK(sm_partition_size(132, 16, hopper) == 8);
  CHECK(sm_partition_size(132, 17, hopper) == 0);  // 7 SMs each: under the minimum
  CHECK(sm_partition_size(132, 0, hopper) == 0);
  const auto ampere = sm_split_rules(0, 0, 8);  // A100: 108 SMs, at least 4, multiples of 2
  CHECK(sm_partition_size(108, 4, ampere) == 26);
  CHECK(sm_partition_size(108, 27, ampere) == 4);
  CHECK(sm_partition_size(108, 28, ampere) == 0);
  // The driver's own fields win over the guideline.
  const auto driver = sm_split_rules(16, 4, 9);
  CHECK(sm_partition_size(132, 4, driver) == 32);
  CHECK(sm_partition_size(132, 9, driver) == 0);  // 14 (a multiple of 4: 12) under 16
}
