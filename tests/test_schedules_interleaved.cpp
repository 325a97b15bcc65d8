// Interleaved 1F1B: Megatron-LM's op order, its bubble (p-1)/(v*m+p-1), and the shapes it
// refuses.
#include <catch2/catch.hpp>

#include <deque>

#include "test_schedules_helpers.h"

using namespace ppsim;
using namespace ppsim_sched_test;

namespace {

// A transcription of Megatron-LM's older interleaved loop, which kept a FIFO of pending
// micro-batches per model chunk (input_tensors[chunk].append / pop(0)) instead of computing
// micro-batch ids: forward k runs chunk (k mod p*v)/p on its next unseen micro-batch, and
// backward k runs chunk v-1-(k mod p*v)/p on its oldest un-backpropagated one.
std::vector<Op> megatron_fifo_order(int p, int m, int v, int rank) {
  const int total = m * v;
  int warmup = (p - rank - 1) * 2 + (v - 1) * p;
  if (warmup > total) warmup = total;
  std::vector<int> next_forward(v, 0);
  std::vector<std::deque<int>> pending(v);
  std::vector<Op> ops;
  auto fwd = [&](int k) {
    const int chunk = (k % (p * v)) / p;
    const int mb = next_forward[chunk]++;
    pending[chunk].push_back(mb);
    ops.push_back(Op{OpKind::Forward, mb, chunk * p + rank, static_cast<std::int16_t>(chunk), 0});
  };
  auto bwd = [&](int k) {
    const int chunk = v - 1 - (k % (p * v)) / p;
    const int mb = pending[chunk].front();
    pending[chunk].pop_front();
    ops.push_back(Op{OpKind::Backward, mb, chunk * p + rank, static_cast<std::int16_t>(chunk), 0});
  };
  for (int k = 0; k < warmup; ++k) fwd(k);
  for (int k = 0; k < total - warmup; ++k) {
    fwd(k + warmup);
    bwd(k);
  }
  for (int k = total - warmup; k < total; ++k) bwd(k);
  return ops;
}

}  // namespace

TEST_CASE("interleaved p=2 m=4 v=2 op order, written out by hand from Megatron-LM's rules", "[schedules][interleaved]") {
  const Schedule s = make_schedule("interleaved", {2, 4, 2, 0});
  REQUIRE(s.num_stages == 4);
  // Device 0: warm-up 2*(2-0-1) + (2-1)*2 = 4 forwards; device 1: 2.
  CHECK(order(s, 0) == "F0 F1 F0c1 F1c1 F2 B0c1 F3 B1c1 F2c1 B0 F3c1 B1 B2c1 B3c1 B2 B3");
  CHECK(order(s, 1) == "F0 F1 F0c1 B0c1 F1c1 B1c1 F2 B0 F3 B1 F2c1 B2c1 F3c1 B3c1 B2 B3");
  // Chunk c of device d is model stage c*p + d.
  for (int d = 0; d < 2; ++d)
    for (const Op& op : s.device_ops[d]) CHECK(op.stage == op.chunk * 2 + d);
}

TEST_CASE("interleaved p=4 m=8 v=2: last device starts 1F1B after (v-1)*p forwards", "[schedules][interleaved]") {
  const Schedule s = make_schedule("interleaved", {4, 8, 2, 0});
  CHECK(order(s, 3) ==
        "F0 F1 F2 F3 F0c1 B0c1 F1c1 B1c1 F2c1 B2c1 F3c1 B3c1 F4 B0 F5 B1 F6 B2 F7 B3 F4c1 B4c1 F5c1 B5c1 F6c1 "
        "B6c1 F7c1 B7c1 B4 B5 B6 B7");
  CHECK(order(s, 0) ==
        "F0 F1 F2 F3 F0c1 F1c1 F2c1 F3c1 F4 F5 F6 B0c1 F7 B1c1 F4c1 B2c1 F5c1 B3c1 F6c1 B0 F7c1 B1 B2 B3 B4c1 "
        "B5c1 B6c1 B7c1 B4 B5 B6 B7");
}

TEST_CASE("interleaved op orders equal Megatron-LM's for many (p, m, v)", "[schedules][interleaved]") {
  for (int p : {1, 2, 3, 4, 8}) {
    for (int v : {2, 3, 4}) {
      for (int groups : {1, 2, 3, 5}) {
        const int m = groups * p;
        CAPTURE(p, m, v);
        const Schedule s = make_schedule("interleaved", {p, m, v, 0});
        REQUIRE(s.devices == p);
        REQUIRE(s.num_stages == p * v);
        REQUIRE(s.chunks == v);
        for (int d = 0; d < p; ++d) {
          CAPTURE(d);
          CHECK(s.device_ops[d] == megatron_fifo_order(p, m, v, d));
        }
        validate_schedule(s);
      }
    }
  }
}

TEST_CASE("interleaved bubble rate is (p-1)/(v*m+p-1) with equal stages and free links", "[schedules][interleaved][bubble]") {
  for (int p : {2, 3, 4, 8}) {
    for (int v : {2, 3, 4}) {
      for (int groups : {1, 2, 4}) {
        const int m = groups * p;
        CAPTURE(p, m, v);
        const Schedule s = make_schedule("interleaved", {p, m, v, 0});
        // Each chunk costs 1 ms forward and 2 ms backward.
        const SimResult r = simulate_free(s, uniform_costs(p * v, 1.0, 2.0));
        CHECK(r.iteration_time.ns == static_cast<std::int64_t>(v * m + p - 1) * 3'000'000);
        CHECK(mean_bubble(r) == Approx(static_cast<double>(p - 1) / (v * m + p - 1)).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("interleaved refuses shapes Megatron-LM refuses, saying why", "[schedules][interleaved]") {
  CHECK_THROWS_WITH(make_schedule("interleaved", {4, 6, 2, 0}),
                    Catch::Contains("multiple of stages") && Catch::Contains("m=6, p=4"));
  CHECK_THROWS_WITH(make_schedule("interleaved", {4, 8, 1, 0}), Catch::Contains("chunks >= 2"));
  CHECK(find_schedule("megatron-interleaved") == find_schedule("interleaved"));
}
