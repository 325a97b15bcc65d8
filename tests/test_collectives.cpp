// ppsim-calibrate collectives: nccl-tests' bus-bandwidth factors, sizes, communicator
// layout, the result JSON and table, and the ring link the simulator reads back.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>

#include "ppsim/calibrate/collectives.h"
#include "ppsim/calibrate/p2p.h"
#include "ppsim/calibrate/profile.h"
#include "ppsim/model/topology.h"

using namespace ppsim::cal;

namespace {

CollectiveRun two_points_at_four_ranks() {
  CollectiveRun run;
  run.transport = "mpi";
  run.algorithm = "auto";
  run.groups = GroupLayout::of(8, 4, 2);
  run.iters = 5;
  run.warmup = 2;
  run.points = {{CollectiveOp::all_reduce, 4'000'000, 1.0}, {CollectiveOp::all_gather, 4'000'000, 2.0}};
  return run;
}

}  // namespace

TEST_CASE("bus bandwidth factors are nccl-tests'", "[collectives]") {
  CHECK(bus_bandwidth_factor(CollectiveOp::all_reduce, 8) == 1.75);  // 2 x 7 / 8
  CHECK(bus_bandwidth_factor(CollectiveOp::all_reduce, 2) == 1.0);
  CHECK(bus_bandwidth_factor(CollectiveOp::all_reduce, 1) == 0.0);
  CHECK(bus_bandwidth_factor(CollectiveOp::all_gather, 8) == 0.875);  // 7 / 8
  CHECK(bus_bandwidth_factor(CollectiveOp::reduce_scatter, 4) == 0.75);
  CHECK(bus_bandwidth_factor(CollectiveOp::reduce_scatter, 2) == 0.5);
  CHECK(bus_bandwidth_factor(CollectiveOp::broadcast, 16) == 1.0);
  CHECK_THROWS_AS(bus_bandwidth_factor(CollectiveOp::all_reduce, 0), std::invalid_argument);
}

TEST_CASE("the simulator's ring collective moves factor x bytes over the link", "[collectives]") {
  // 1 GiB over 8 GPUs at 100 GB/s, no latency: 1.75 x 2^30 / 100 ns = 18790481.92 ns.
  const ppsim::NetLink link{0.0, 100.0, {}};
  const ppsim::Bytes gib{std::int64_t{1} << 30};
  CHECK(ppsim::ring_collective_time(ppsim::Collective::AllReduce, gib, 8, link).ns == 18790482);
  CHECK(ppsim::ring_collective_time(ppsim::Collective::AllReduce, gib, 8, link).ns ==
        std::llround(bus_bandwidth_factor(CollectiveOp::all_reduce, 8) * static_cast<double>(gib.value) / 100.0));
  CHECK(ppsim::ring_collective_time(ppsim::Collective::AllGather, gib, 8, link).ns ==
        std::llround(bus_bandwidth_factor(CollectiveOp::all_gather, 8) * static_cast<double>(gib.value) / 100.0));
  CHECK(ppsim::ring_collective_time(ppsim::Collective::ReduceScatter, gib, 4, link).ns ==
        std::llround(bus_bandwidth_factor(CollectiveOp::reduce_scatter, 4) * static_cast<double>(gib.value) / 100.0));
}

TEST_CASE("collective sizes double from min and end at max", "[collectives]") {
  CHECK(collective_sizes(4096, 65536) == std::vector<std::int64_t>{4096, 8192, 16384, 32768, 65536});
  CHECK(collective_sizes(4096, 10000) == std::vector<std::int64_t>{4096, 8192, 10000});
  CHECK(collective_sizes(4096, 4096) == std::vector<std::int64_t>{4096});
  CHECK_THROWS_AS(collective_sizes(0, 4096), std::invalid_argument);
  CHECK_THROWS_AS(collective_sizes(8192, 4096), std::invalid_argument);
}

TEST_CASE("collective bytes are whole elements per rank", "[collectives]") {
  CHECK(collective_bytes(CollectiveOp::all_gather, 4096, 3, 4) == 4092);  // 3 x 341 fp32
  CHECK(collective_bytes(CollectiveOp::reduce_scatter, 4096, 3, 2) == 4092);  // 3 x 682 bf16
  CHECK(collective_bytes(CollectiveOp::all_reduce, 4098, 3, 4) == 4096);
  CHECK(collective_bytes(CollectiveOp::broadcast, 4096, 8, 4) == 4096);
  CHECK(collective_bytes(CollectiveOp::reduce_scatter, 8, 4, 4) == 0);
}

TEST_CASE("collective ops parse in both spellings, once each", "[collectives]") {
  CHECK(parse_collective_ops("all-reduce,allgather,reduce_scatter,broadcast") ==
        std::vector<CollectiveOp>{CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter,
                                  CollectiveOp::broadcast});
  CHECK_THROWS_WITH(parse_collective_ops("all_reduce,alltoall"), Catch::Contains("unknown op 'alltoall'"));
  CHECK_THROWS_WITH(parse_collective_ops("all_reduce,allreduce"), Catch::Contains("given twice"));
  CHECK_THROWS_WITH(parse_collective_ops(""), Catch::Contains("empty"));
}

TEST_CASE("communicators: size ranks, stride apart", "[collectives]") {
  const GroupLayout node = GroupLayout::of(16, 8, 1);  // the GPUs of each of two nodes
  CHECK(node.count() == 2);
  CHECK(node.group_of(7) == 0);
  CHECK(node.group_of(9) == 1);
  CHECK(node.rank_in_group(9) == 1);
  const GroupLayout across = GroupLayout::of(16, 2, 8);  // {0, 8}, {1, 9}, ..., {7, 15}
  CHECK(across.count() == 8);
  CHECK(across.group_of(0) == 0);
  CHECK(across.group_of(8) == 0);
  CHECK(across.rank_in_group(8) == 1);
  CHECK(across.group_of(9) == 1);
  CHECK(across.group_of(15) == 7);
  const GroupLayout pairs = GroupLayout::of(8, 2, 2);  // {0, 2}, {1, 3}, {4, 6}, {5, 7}
  CHECK(pairs.group_of(5) == 3);
  CHECK(pairs.group_of(7) == 3);
  CHECK(pairs.rank_in_group(7) == 1);
  CHECK(GroupLayout::of(16, 0, 1).size == 16);  // 0: everyone
  CHECK_THROWS_WITH(GroupLayout::of(16, 3, 1), Catch::Contains("must divide the 16 ranks"));
  CHECK_THROWS_WITH(GroupLayout::of(16, 2, 16), Catch::Contains("must divide the 16 ranks"));
}

TEST_CASE("collectives JSON: algbw = bytes / time, busbw = algbw x factor", "[collectives]") {
  const nlohmann::json j = collectives_json(two_points_at_four_ranks());
  CHECK(j.at("schema") == "ppsim.collectives/1");
  CHECK(j.at("world_ranks") == 8);
  CHECK(j.at("ranks") == 4);
  CHECK(j.at("groups") == nlohmann::json{{"count", 2}, {"size", 4}, {"stride", 2}});
  const auto& r = j.at("results");
  REQUIRE(r.size() == 2);
  CHECK(r[0].at("op") == "all_reduce");
  CHECK(r[0].at("bytes") == 4'000'000);
  CHECK(r[0].at("time_ms") == 1.0);
  CHECK(r[0].at("algbw_GBps") == 4.0);  // 4e6 B in 1 ms
  CHECK(r[0].at("busbw_GBps") == 6.0);  // x 2 x 3 / 4
  CHECK(r[0].at("ranks") == 4);
  CHECK(r[0].at("transport") == "mpi");
  CHECK(r[0].at("algorithm") == "auto");
  CHECK(r[1].at("op") == "all_gather");
  CHECK(r[1].at("algbw_GBps") == 2.0);
  CHECK(r[1].at("busbw_GBps") == 1.5);  // x 3 / 4
  CHECK(j.at("ring_links").empty());    // one size per op: nothing to fit
  const std::string table = collectives_table(two_points_at_four_ranks());
  CHECK(table.find("all_reduce             4000000      1000.00        4.000        6.000") != std::string::npos);
  CHECK(table.find("all_gather             4000000      2000.00        2.000        1.500") != std::string::npos);
}

TEST_CASE("the algorithm asked of NCCL comes from NCCL_ALGO and NCCL_PROTO", "[collectives]") {
  const char* algo = std::getenv("NCCL_ALGO");
  const char* proto = std::getenv("NCCL_PROTO");
  const std::string saved_algo = algo ? algo : "", saved_proto = proto ? proto : "";
  unsetenv("NCCL_ALGO");
  unsetenv("NCCL_PROTO");
  CHECK(requested_algorithm("nccl") == "auto");
  setenv("NCCL_ALGO", "Ring", 1);
  CHECK(requested_algorithm("nccl") == "NCCL_ALGO=Ring");
  CHECK(requested_algorithm("mpi") == "auto");
  setenv("NCCL_PROTO", "Simple", 1);
  CHECK(requested_algorithm("nccl") == "NCCL_ALGO=Ring,NCCL_PROTO=Simple");
  unsetenv("NCCL_ALGO");
  unsetenv("NCCL_PROTO");
  if (algo) setenv("NCCL_ALGO", saved_algo.c_str(), 1);
  if (proto) setenv("NCCL_PROTO", saved_proto.c_str(), 1);
}

TEST_CASE("the ring link of a measured all-reduce gives its times back through ring_collective_time",
          "[collectives]") {
  // Measurements made by an 8-GPU ring over a 5 us, 100 GB/s link: 14 steps of bytes / 8.
  CollectiveRun run;
  run.groups = GroupLayout::of(8, 8, 1);
  for (std::int64_t b = 64 << 10; b <= (std::int64_t{256} << 20); b *= 2)
    run.points.push_back({CollectiveOp::all_reduce, b, 14 * (5e-3 + static_cast<double>(b) / 8 / 100e6)});
  const nlohmann::json fit = ring_link_fit(run, CollectiveOp::all_reduce);
  REQUIRE(!fit.is_null());
  CHECK(fit.at("ring_steps") == 14);
  CHECK(fit.at("latency_us").get<double>() == Approx(5.0).epsilon(1e-9));
  CHECK(fit.at("bandwidth_GBps").get<double>() == Approx(100.0).epsilon(1e-9));
  ppsim::NetLink link{fit.at("latency_us").get<double>(), fit.at("bandwidth_GBps").get<double>(), {}};
  for (const auto& s : fit.at("segments"))
    link.segments.push_back({s.at("from_bytes").get<std::int64_t>(), s.at("latency_us").get<double>(),
                             s.at("bandwidth_GBps").get<double>()});
  for (const CollectivePoint& p : run.points) {
    const auto ns = ppsim::ring_collective_time(ppsim::Collective::AllReduce, ppsim::Bytes{p.bytes}, 8, link).ns;
    CHECK(static_cast<double>(ns) * 1e-6 == Approx(p.time_ms).margin(14e-6));  // whole ns per ring step
  }
  CHECK(ring_link_fit(run, CollectiveOp::broadcast).is_null());
}

TEST_CASE("ring links go into a profile as link curves named by op, ranks and stride", "[collectives]") {
  CollectiveRun run;
  run.transport = "nccl";
  run.groups = GroupLayout::of(16, 2, 8);  // {0, 8}, ...: across two nodes
  for (std::int64_t b : {4096, 8192, 16384})
    for (CollectiveOp op : {CollectiveOp::all_reduce, CollectiveOp::broadcast})
      run.points.push_back({op, b, 0.01 + static_cast<double>(b) * 1e-8});
  CHECK(ring_link_kind(run, CollectiveOp::all_reduce) == "nccl_all_reduce_ring_n2_stride8");
  const nlohmann::json curves = ring_link_curves(run);
  REQUIRE(curves.size() == 1);  // broadcast is no ring
  CHECK(curves[0].at("kind") == "nccl_all_reduce_ring_n2_stride8");
  CHECK(curves[0].at("dst") == 8);
  const auto& points = curves[0].at("points");
  REQUIRE(points.size() == 3);
  CHECK(points[0].at("bytes") == 2048);  // 4 KiB over 2 ranks: 2 steps of 2 KiB
  CHECK(points[0].at("median_ms").get<double>() == Approx((0.01 + 4096e-8) / 2));
  nlohmann::json profile = new_profile("cpu", Dtype::fp32, DeviceInfo{}, nlohmann::json::object());
  upsert_link(profile, curves[0]);
  CHECK_NOTHROW(validate_profile(profile, "collectives.json"));
  run.groups = GroupLayout::of(8, 8, 1);
  CHECK(ring_link_kind(run, CollectiveOp::reduce_scatter) == "nccl_reduce_scatter_ring_n8");
}

TEST_CASE("a fit the profile reader would refuse keeps only its one line", "[collectives]") {
  // A reduce-scatter's ring steps measured under ASan on a loaded machine: a 16 ms jump
  // over 16 KiB fits a segment under 0.001 GB/s, which ppsim refuses to read.
  const std::vector<double> xs{2048, 4096, 8192, 16384, 32768, 65536, 131072};
  const std::vector<double> ts{0.056518, 0.133422, 0.227641, 0.359852, 16.816495, 16.016679, 16.060310};
  const nlohmann::json fit = link_fit_json(xs, ts);
  CHECK(!fit.contains("segments"));
  CHECK(fit.at("segments_refused").get<std::string>().find("at least 0.001 GB/s") != std::string::npos);
  CHECK(fit.at("bandwidth_GBps").get<double>() > 0);
  nlohmann::json profile = new_profile("cpu", Dtype::fp32, DeviceInfo{}, nlohmann::json::object());
  nlohmann::json points = nlohmann::json::array();
  for (std::size_t i = 0; i < xs.size(); ++i) points.push_back({{"bytes", xs[i]}, {"median_ms", ts[i]}});
  upsert_link(profile, {{"kind", "noisy"}, {"src", 0}, {"dst", 1}, {"points", points}, {"fit", fit}});
  CHECK_NOTHROW(validate_profile(profile, "noisy.json"));
}
