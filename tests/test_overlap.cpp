// Overlapped forward-backward pairs (Schedule::overlap_pairs, SimOptions::overlap): a
// pair runs as one unit of max(F, B) + (1 - overlap) * min(F, B), starts once both its
// inputs are at hand and releases both outputs at its end. Timelines by hand, to the ns.
#include <catch2/catch.hpp>

#include "ppsim/engine/engine.h"
#include "ppsim/metrics/metrics.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/views/timeline.h"

using namespace ppsim;

namespace {

// p = 2: stage 0 F 2 ms, B 4 ms; stage 1 F 3 ms, B 5 ms; every transfer 1 ms.
std::vector<StageCost> uneven_two() {
  std::vector<StageCost> c(2);
  c[0].forward = TimeNs::from_ms(2);
  c[0].backward = TimeNs::from_ms(4);
  c[1].forward = TimeNs::from_ms(3);
  c[1].backward = TimeNs::from_ms(5);
  for (auto& s : c) s.output = Bytes{1000};
  return c;
}

SimResult run(const Schedule& s, std::optional<double> overlap, double link_ms = 1.0) {
  UniformLinkModel links(s.devices, TimeNs::from_ms(link_ms), 0.0);
  SimOptions o;
  o.overlap = overlap;
  return simulate(s, uneven_two(), links, o);
}

/// "F0 0-2000000" for each op of a device, in ns.
std::vector<std::string> spans(const SimResult& r, int d) {
  std::vector<std::string> out;
  for (int i = r.device_first_op[d]; i < r.device_first_op[d + 1]; ++i) {
    const auto& o = r.ops[static_cast<std::size_t>(i)];
    out.push_back(op_token(o.op) + " " + std::to_string(o.start.ns) + "-" + std::to_string(o.end.ns));
  }
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("the pair's duration: max + (1 - overlap) min; F's share of it", "[overlap]") {
  const TimeNs f = TimeNs::from_ms(2), b = TimeNs::from_ms(4);
  CHECK(overlapped_pair_duration(f, b, 0.0) == f + b);  // both in sequence
  CHECK(overlapped_pair_duration(f, b, 1.0) == b);      // max(F, B)
  CHECK(overlapped_pair_duration(b, f, 1.0) == b);
  CHECK(overlapped_pair_duration(f, b, 0.5).ns == 5'000'000);
  CHECK(overlapped_pair_duration(TimeNs{3}, TimeNs{5}, 0.5).ns == 7);  // 5 + 1.5 rounds to 7
  CHECK(pair_forward_share(f, b, f + b) == f);
  CHECK(pair_forward_share(f, b, TimeNs{5'000'000}).ns == 1'666'666);  // 5 ms * 2/6, rounded down
  CHECK(pair_forward_share(TimeNs{}, TimeNs{}, TimeNs{}).ns == 0);
}

TEST_CASE("1f1b-overlap: 2(p-d)-1 warm-up forwards, then F&B pairs", "[overlap][schedules]") {
  const Schedule s = make_schedule("1f1b-overlap", {2, 4, 1, 0});
  auto tokens = [&](int d) {
    std::string t;
    for (const Op& op : s.device_ops[d]) t += op_token(op) + " ";
    return t;
  };
  CHECK(tokens(0) == "F0 F1 F2 F3 B0 B1 B2 B3 ");
  CHECK(tokens(1) == "F0 F1 B0 F2 B1 F3 B2 B3 ");
  CHECK(s.overlap_pairs == std::vector<std::vector<std::int32_t>>{{3}, {1, 3, 5}});
  CHECK(make_schedule("combined-1f1b", {2, 4, 1, 0}).name == "1f1b-overlap");
}

// 1f1b-overlap, p = 2, m = 4. d0: F0 F1 F2 [F3 B0] B1 B2 B3; d1: F0 [F1 B0] [F2 B1] [F3 B2] B3.
// overlap 0.5: stage 0's pair takes 4 + 0.5*2 = 5 ms (F's share 5*2/6 = 1.666666 ms),
// stage 1's 5 + 0.5*3 = 6.5 ms (F's share 6.5*3/8 = 2.4375 ms).
//   d0 F0 0-2, F1 2-4, F2 4-6; -> d1 over 2-3, 4-5, 6-7.
//   d1 F0 3-6; pair (F1 in at 5, B0's input its own F0) 6-12.5; B0 -> d0 12.5-13.5;
//   pair (F2 in at 7, B1's input its F1, out at the pair's end 12.5) 12.5-19; B1 -> d0 19-20.
//   d0 pair (F3, B0 in at 13.5) 13.5-18.5; F3's activations leave at the pair's end:
//   -> d1 18.5-19.5. d1 pair (F3, B2) 19.5-26; B2 -> d0 26-27; d1 B3 26-31 -> d0 31-32.
//   d0 B1 20-24, B2 27-31, B3 32-36: 36 ms.
// overlap 0: the pairs take F + B with F first (6 and 8 ms): d1 pairs 6-14, 14-22;
//   d0 pair 15-21; F3 -> d1 21-22; d1 pair 22-30, B3 30-35; d0 B1 23-27, B2 31-35,
//   B3 36-40: 40 ms.
// No overlap set: plain ops in the same order (F3 runs 6-8 and leaves at its own end).
TEST_CASE("1f1b-overlap p=2 m=4: pairs as units, by hand to the nanosecond", "[overlap][timeline]") {
  const Schedule s = make_schedule("1f1b-overlap", {2, 4, 1, 0});
  const SimResult half = run(s, 0.5);
  CHECK(spans(half, 0) == V{"F0 0-2000000", "F1 2000000-4000000", "F2 4000000-6000000", "F3 13500000-15166666",
                            "B0 15166666-18500000", "B1 20000000-24000000", "B2 27000000-31000000",
                            "B3 32000000-36000000"});
  CHECK(spans(half, 1) == V{"F0 3000000-6000000", "F1 6000000-8437500", "B0 8437500-12500000",
                            "F2 12500000-14937500", "B1 14937500-19000000", "F3 19500000-21937500",
                            "B2 21937500-26000000", "B3 26000000-31000000"});
  CHECK(half.iteration_time == TimeNs::from_ms(36));
  CHECK(half.ops[3].pair == 1);
  CHECK(half.ops[4].pair == 2);
  CHECK(half.ops[0].pair == 0);
  // The pair's time counts once: d0 computes 2 + 2 + 2 + 5 + 4 + 4 + 4 = 23 ms.
  CHECK(half.per_device[0].compute_busy == TimeNs::from_ms(23));

  const SimResult zero = run(s, 0.0);
  CHECK(spans(zero, 0) == V{"F0 0-2000000", "F1 2000000-4000000", "F2 4000000-6000000", "F3 15000000-17000000",
                            "B0 17000000-21000000", "B1 23000000-27000000", "B2 31000000-35000000",
                            "B3 36000000-40000000"});
  CHECK(spans(zero, 1) == V{"F0 3000000-6000000", "F1 6000000-9000000", "B0 9000000-14000000",
                            "F2 14000000-17000000", "B1 17000000-22000000", "F3 22000000-25000000",
                            "B2 25000000-30000000", "B3 30000000-35000000"});
  CHECK(zero.iteration_time == TimeNs::from_ms(40));

  const SimResult plain = run(s, std::nullopt);
  CHECK(spans(plain, 0) == V{"F0 0-2000000", "F1 2000000-4000000", "F2 4000000-6000000", "F3 6000000-8000000",
                             "B0 15000000-19000000", "B1 23000000-27000000", "B2 31000000-35000000",
                             "B3 36000000-40000000"});
  CHECK(plain.iteration_time == TimeNs::from_ms(40));
  CHECK(plain.ops[3].pair == 0);
}

TEST_CASE("overlap 0 runs each pair as its F and B in sequence; overlap 1 as max(F, B)", "[overlap]") {
  for (const char* name : {"dualpipe", "dualpipev", "1f1b-overlap"}) {
    for (const int p : {2, 4}) {
      const Schedule s = make_schedule(name, {p, 4 * p, std::string(name) == "dualpipev" ? 2 : 1, 0});
      INFO(name << " p=" << p);
      std::vector<StageCost> costs(static_cast<std::size_t>(s.num_stages), uneven_two()[1]);
      costs[0].weight_grad = TimeNs::from_ms(2);
      for (auto& c : costs) c.weight_grad = TimeNs::from_ms(2);
      for (const double overlap : {0.0, 1.0}) {
        UniformLinkModel links(s.devices, TimeNs::from_ms(0.3), 0.0);
        SimOptions o;
        o.overlap = overlap;
        const SimResult r = simulate(s, costs, links, o);
        TimeNs busy{};
        int pairs = 0;
        for (std::size_t i = 0; i < r.ops.size(); ++i) {
          const OpRecord& rec = r.ops[i];
          busy += rec.end - rec.start;
          if (rec.pair != 1) continue;
          ++pairs;
          const OpRecord& b = r.ops[i + 1];
          REQUIRE(b.pair == 2);
          CHECK(b.start == rec.end);  // one unit: the backward half follows at once
          // F 3 ms, B 5 - 2 = 3 ms (split) or 5 ms: the unit is F + B, or max(F, B).
          const TimeNs f = TimeNs::from_ms(3), bd = s.split_backward ? TimeNs::from_ms(3) : TimeNs::from_ms(5);
          CHECK(b.end - rec.start == (overlap == 0.0 ? f + bd : std::max(f, bd)));
          if (overlap == 0.0) CHECK(rec.end - rec.start == f);
        }
        CHECK(pairs > 0);
        TimeNs summed{};
        for (const auto& d : r.per_device) summed += d.compute_busy;
        CHECK(summed == busy);
      }
    }
  }
}

TEST_CASE("views name both halves of a pair by the pair's label", "[overlap][views]") {
  const Schedule s = make_schedule("1f1b-overlap", {2, 4, 1, 0});
  const SimResult r = run(s, 0.5);
  const nlohmann::json tl = make_timeline(s, r);
  int labelled = 0;
  for (const auto& e : tl["events"])
    if (e.contains("pair")) {
      ++labelled;
      if (e["device"] == 0) CHECK(e["pair"] == "F3+B0");
    }
  CHECK(labelled == 8);  // four pairs, two halves each
  CHECK(pair_kind_name() == std::string("F&B"));
  CHECK(pair_label(s.device_ops[1][1], s.device_ops[1][2], false, false) == "F1+B0");
}
