// Cluster topology: node placement, the NIC contention model, and the data-parallel
// gradient all-reduce, all against hand-computed times.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "ppsim/run/config.h"
#include "ppsim/views/report.h"
#include "ppsim/model/topology.h"
#include "ppsim/run/stages.h"

using namespace ppsim;
using nlohmann::json;

namespace {

// 1e6 bytes: 10 us on 100 GB/s NVLink, 40 us on 25 GB/s InfiniBand.
constexpr std::int64_t kMB = 1'000'000;
const json kIntra = {{"latency_us", 2.0}, {"bandwidth_GBps", 100.0}};
const json kInter = {{"latency_us", 5.0}, {"bandwidth_GBps", 25.0}};

json two_stage_doc(const json& cluster, int layers_per_stage = 1) {
  return json{{"model",
               {{"layers", json::array({{{"repeat", 2 * layers_per_stage},
                                         {"forward_ms", 1.0 / layers_per_stage},
                                         {"backward_ms", 2.0 / layers_per_stage},
                                         {"parameter_bytes", kMB / layers_per_stage},
                                         {"output_bytes", kMB}}})}}},
              {"cluster", cluster},
              {"pipeline", {{"schedule", "gpipe"}, {"stages", 2}, {"microbatches", 1}}}};
}

json run_report(const json& doc) {
  const Config c = parse_config(doc, "topo.json");
  const Run run = prepare_run(c);
  auto links = make_links(c, run.schedule.devices);
  return make_report(run, simulate(run.schedule, run.costs, *links));
}

ClusterSpec cluster(int nodes, int gpus, int nics, Placement placement = Placement::PipelineInner) {
  ClusterSpec c;
  c.nodes = nodes;
  c.gpus_per_node = gpus;
  c.nics_per_node = nics;
  c.intra = NetLink{2.0, 100.0};
  c.inter = NetLink{5.0, 25.0};
  c.placement = placement;
  return c;
}

}  // namespace

TEST_CASE("a pipeline crossing nodes is slower by exactly the extra link time", "[topology]") {
  // F 1 ms, B 2 ms per stage, one micro-batch: F0, send, F1, B1, send back, B0.
  // Inside a node each transfer takes 2 us + 1e6 B / 100 GB/s = 12 us; across nodes
  // 5 us + 1e6 B / 25 GB/s = 45 us. Two transfers: 2 * (45 - 12) = 66 us slower.
  const json one_node = run_report(two_stage_doc({{"nodes", 1}, {"gpus_per_node", 2}, {"intra_link", kIntra}, {"inter_link", kInter}}));
  const json two_nodes = run_report(two_stage_doc({{"nodes", 2}, {"gpus_per_node", 1}, {"intra_link", kIntra}, {"inter_link", kInter}}));
  CHECK(one_node["iteration_time_ms"].get<double>() == Approx(6.024).epsilon(1e-12));
  CHECK(two_nodes["iteration_time_ms"].get<double>() == Approx(6.090).epsilon(1e-12));
  CHECK(two_nodes["iteration_time_ms"].get<double>() - one_node["iteration_time_ms"].get<double>() ==
        Approx(0.066).epsilon(1e-9));
  CHECK(two_nodes["cluster"]["nodes"] == 2);
}

TEST_CASE("two transfers sharing a NIC queue for it; separate NICs do not", "[topology]") {
  // Pipeline devices 0,1 on node 0 and 2,3 on node 1.
  SECTION("one NIC per node: the second waits for the 40 us the first holds the port") {
    TopologyLinkModel links(cluster(2, 2, 1), 4, 1);
    const TransferSlot a = links.reserve(0, 2, Bytes{kMB}, TimeNs{0});
    const TransferSlot b = links.reserve(1, 3, Bytes{kMB}, TimeNs{0});
    CHECK(a.start.ns == 0);
    CHECK(a.end.ns == 45'000);
    CHECK(b.start.ns == 40'000);
    CHECK(b.end.ns == 85'000);
    // Same ingress port, later ready time: starts when the port frees.
    const TransferSlot c = links.reserve(0, 3, Bytes{kMB}, TimeNs{50'000});
    CHECK(c.start.ns == 80'000);
    CHECK(c.end.ns == 125'000);
    // Intra-node transfers do not touch the NIC.
    const TransferSlot d = links.reserve(0, 1, Bytes{kMB}, TimeNs{50'000});
    CHECK(d.start.ns == 50'000);
    CHECK(d.end.ns == 62'000);
    links.reset();
    CHECK(links.reserve(1, 3, Bytes{kMB}, TimeNs{0}).end.ns == 45'000);
  }
  SECTION("a NIC per GPU: both run at once") {
    TopologyLinkModel links(cluster(2, 2, 2), 4, 1);
    CHECK(links.reserve(0, 2, Bytes{kMB}, TimeNs{0}).end.ns == 45'000);
    CHECK(links.reserve(1, 3, Bytes{kMB}, TimeNs{0}).end.ns == 45'000);
  }
  SECTION("data-inner placement: the other replica's copy shares the NIC and halves the bandwidth") {
    // Stage 0 of replicas 0 and 1 on GPUs 0,1 (node 0), stage 1 on GPUs 2,3 (node 1).
    TopologyLinkModel shared(cluster(2, 2, 1, Placement::DataInner), 2, 2);
    CHECK(shared.gpu(1, 0) == 2);
    CHECK(shared.gpu(0, 1) == 1);
    CHECK(shared.sharing(0, 1) == 2);
    CHECK(shared.reserve(0, 1, Bytes{kMB}, TimeNs{0}).end.ns == 85'000);
    TopologyLinkModel own(cluster(2, 2, 2, Placement::DataInner), 2, 2);
    CHECK(own.sharing(0, 1) == 1);
    CHECK(own.reserve(0, 1, Bytes{kMB}, TimeNs{0}).end.ns == 45'000);
  }
}

TEST_CASE("ring all-reduce time", "[topology]") {
  const NetLink ib{5.0, 25.0};
  CHECK(ring_allreduce_time(Bytes{kMB}, 1, ib).ns == 0);
  // 2(n-1)/n * B / bw + 2(n-1) * latency
  CHECK(ring_allreduce_time(Bytes{kMB}, 2, ib).ns == 40'000 + 10'000);
  CHECK(ring_allreduce_time(Bytes{kMB}, 4, ib).ns == 60'000 + 30'000);
  CHECK(ring_allreduce_time(Bytes{8 * kMB}, 8, NetLink{0.0, 100.0}).ns == 140'000);
}

TEST_CASE("data-parallel all-reduce adds to the iteration time", "[topology]") {
  // Two replicas of a 2-stage pipeline on 2 nodes x 2 GPUs, stages on consecutive GPUs:
  // each stage's ring pairs GPU d on node 0 with GPU 2+d on node 1, and both GPUs of a
  // node reduce through its one NIC at once: 12.5 GB/s each. 1e6 B of gradients:
  // 2*(1/2)*1e6/12.5 = 80 us + 2*5 us = 90 us after the last op.
  json cl = {{"nodes", 2}, {"gpus_per_node", 2}, {"intra_link", kIntra}, {"inter_link", kInter}};
  json doc = two_stage_doc(cl);
  doc["parallel"] = {{"data_parallel", 2}};
  const json rep = run_report(doc);
  CHECK(rep["devices"] == 4);
  CHECK(rep["pipeline_replicas"] == 2);
  CHECK(rep["data_parallel"]["degree"] == 2);
  CHECK(rep["data_parallel"]["link"] == "inter");
  CHECK(rep["data_parallel"]["allreduce_ms"].get<double>() == Approx(0.090).epsilon(1e-12));
  CHECK(rep["data_parallel"]["exposed_ms"].get<double>() == Approx(0.090).epsilon(1e-12));
  CHECK(rep["pipeline_time_ms"].get<double>() == Approx(6.024).epsilon(1e-12));
  CHECK(rep["iteration_time_ms"].get<double>() == Approx(6.114).epsilon(1e-12));
  // 2 samples per iteration.
  CHECK(rep["samples_per_s"].get<double>() == Approx(2.0 / 6.114e-3).epsilon(1e-9));

  SECTION("a NIC per GPU: full 25 GB/s, 40 + 10 us") {
    doc["cluster"]["nics_per_node"] = 2;
    CHECK(run_report(doc)["data_parallel"]["exposed_ms"].get<double>() == Approx(0.050).epsilon(1e-12));
  }
  SECTION("replicas inside a node reduce over NVLink") {
    doc["cluster"]["placement"] = "data";
    // Stage d on GPUs 2d, 2d+1: 1e6/100 = 10 us + 2*2 us. The pipeline now crosses nodes.
    const json r = run_report(doc);
    CHECK(r["data_parallel"]["link"] == "intra");
    CHECK(r["data_parallel"]["exposed_ms"].get<double>() == Approx(0.014).epsilon(1e-12));
    // Each stage-crossing transfer shares the NIC with the other replica's: 5 + 80 us.
    CHECK(r["pipeline_time_ms"].get<double>() == Approx(6.170).epsilon(1e-12));
  }
  SECTION("overlap: each layer's bucket starts when backward has passed it") {
    // Two layers per stage (B 1 ms each, 5e5 B of gradients each). Device 0's last op,
    // B of stage 0, runs [4.024, 6.024]: buckets ready at 5.024 and 6.024, each
    // 2*(1/2)*5e5/12.5 = 40 us + 10 us = 50 us. The last ends at 6.074: 50 us exposed.
    json d2 = two_stage_doc(cl, 2);
    d2["parallel"] = {{"data_parallel", 2}, {"overlap_grad_reduce", true}};
    const json r = run_report(d2);
    CHECK(r["data_parallel"]["overlap"] == true);
    CHECK(r["data_parallel"]["allreduce_ms"].get<double>() == Approx(0.100).epsilon(1e-12));
    CHECK(r["data_parallel"]["exposed_ms"].get<double>() == Approx(0.050).epsilon(1e-12));
    d2["parallel"]["overlap_grad_reduce"] = false;
    // Without overlap: one 1e6 B all-reduce after the last op, 90 us.
    CHECK(run_report(d2)["data_parallel"]["exposed_ms"].get<double>() == Approx(0.090).epsilon(1e-12));
  }
}

TEST_CASE("cluster config: presets, defaults and errors", "[topology][config]") {
  SECTION("DGX-H100 preset, four nodes") {
    json doc = two_stage_doc({{"preset", "dgx-h100"}, {"nodes", 4}});
    const Config c = parse_config(doc, PPSIM_SOURCE_DIR "/configs/experiments/x.json");
    CHECK(c.cluster.nodes == 4);
    CHECK(c.cluster.gpus_per_node == 8);
    CHECK(c.devices == 32);
    CHECK(c.cluster.intra.bandwidth_GBps == 450.0);
    CHECK(c.cluster.inter.bandwidth_GBps == 50.0);
    CHECK(c.cluster.gpu_memory_bytes == std::int64_t{81559} << 20);  // 81559 MiB as nvidia-smi shows
    CHECK(memory_limit_bytes(c) == (std::int64_t{81559} << 20) - (std::int64_t{2} << 30));  // the card less the 2 GiB reserve
  CHECK(memory_reserve_bytes(c) == std::int64_t{2} << 30);
    CHECK(c.device_peak_tflops == 989.0);
  }
  SECTION("data_parallel sets the devices used; the cluster must hold them") {
    json doc = two_stage_doc({{"nodes", 2}, {"gpus_per_node", 2}});
    doc["parallel"] = {{"data_parallel", 1}};
    CHECK(parse_config(doc, "t.json").devices == 2);
    doc["parallel"]["data_parallel"] = 3;
    CHECK_THROWS_WITH(parse_config(doc, "t.json"),
                      "t.json: parallel.data_parallel: 2 stages x 3 replicas need 6 GPUs, the cluster has 4");
  }
  SECTION("errors name the path") {
    CHECK_THROWS_WITH(parse_config(two_stage_doc({{"nodes", 2}}), "t.json"),
                      "t.json: cluster.gpus_per_node: missing (required integer)");
    CHECK_THROWS_WITH(parse_config(two_stage_doc({{"devices", 2}, {"inter_link", kInter}}), "t.json"),
                      "t.json: cluster.inter_link: needs cluster.nodes and cluster.gpus_per_node");
    CHECK_THROWS_WITH(parse_config(two_stage_doc({{"nodes", 1}, {"gpus_per_node", 2}, {"placement", "random"}}), "t.json"),
                      Catch::StartsWith("t.json: cluster.placement: must be \"pipeline\""));
    CHECK_THROWS_WITH(parse_config(two_stage_doc({{"preset", "no-such-cluster"}}), "t.json"),
                      Catch::StartsWith("t.json: cluster.preset: no cluster preset 'no-such-cluster'"));
    CHECK_THROWS_WITH(parse_config(two_stage_doc({{"nodes", 1}, {"gpus_per_node", 2}, {"intra_link", {{"bandwidth_GBps", 0}}}}), "t.json"),
                      Catch::StartsWith("t.json: cluster.intra_link.bandwidth_GBps: must be > 0"));
    json doc = two_stage_doc({{"devices", 2}});
    doc["parallel"] = {{"data_parallel", 1}, {"overlap", true}};
    CHECK_THROWS_WITH(parse_config(doc, "t.json"), Catch::StartsWith("t.json: parallel.overlap: unknown key"));
  }
}

TEST_CASE("cluster links from a calibration profile's fitted P2P curves", "[topology][config]") {
  const auto dir = std::filesystem::temp_directory_path() / ("ppsim_topology_profile_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto profile = (dir / "p.json").string();
  {
    std::ofstream o(profile);
    o << json{{"links", json::array({{{"kind", "nvlink"}, {"fit", {{"latency_us", 3.0}, {"bandwidth_GBps", 200.0}}}},
                                     {{"kind", "ib"}, {"fit", {{"latency_us", 7.5}, {"bandwidth_GBps", 22.0}}}}})}}
             .dump();
  }
  json cl = {{"nodes", 2}, {"gpus_per_node", 1}, {"intra_link", {{"profile", profile}, {"kind", "nvlink"}}},
             {"inter_link", {{"profile", profile}, {"kind", "ib"}}}};
  const Config c = parse_config(two_stage_doc(cl), "t.json");
  CHECK(c.cluster.intra.latency_us == 3.0);
  CHECK(c.cluster.intra.bandwidth_GBps == 200.0);
  CHECK(c.cluster.inter.latency_us == 7.5);
  CHECK(c.cluster.inter.bandwidth_GBps == 22.0);
  cl["inter_link"] = {{"profile", profile}};
  CHECK_THROWS_WITH(parse_config(two_stage_doc(cl), "t.json"),
                    "t.json: cluster.inter_link.kind: missing: the profile has 2 link curves (\"nvlink\", \"ib\")");
  cl["inter_link"] = {{"profile", profile}, {"kind", "roce"}};
  CHECK_THROWS_WITH(parse_config(two_stage_doc(cl), "t.json"),
                    "t.json: cluster.inter_link.kind: no link curve 'roce' in '" + profile + "' (it has: \"nvlink\", \"ib\")");
  cl["inter_link"] = {{"profile", profile}, {"kind", "ib"}, {"latency_us", 1.0}};
  CHECK_THROWS_WITH(parse_config(two_stage_doc(cl), "t.json"),
                    "t.json: cluster.inter_link.latency_us: give the profile or latency_us/bandwidth_GBps, not both");
  std::filesystem::remove_all(dir);
}

TEST_CASE("the report says when pipeline replicas are placed differently", "[topology]") {
  // p = 2 on 3-GPU nodes with 3 replicas: replica 0 on GPUs 0,1 (one node), replica 1 on
  // GPUs 2,3 (two nodes).
  json doc = two_stage_doc({{"nodes", 2}, {"gpus_per_node", 3}});
  doc["parallel"] = {{"data_parallel", 3}};
  const json rep = run_report(doc);
  CHECK(rep["cluster"]["replicas_placed_alike"] == false);
  CHECK_THAT(format_report_table(rep), Catch::Contains("note: pipeline replicas cross nodes at different stages"));
  doc["cluster"]["gpus_per_node"] = 2;
  doc["parallel"]["data_parallel"] = 2;
  CHECK(run_report(doc)["cluster"]["replicas_placed_alike"] == true);
}

TEST_CASE("bidirectional schedules: copies sync in the engine, replicas here", "[topology]") {
  // Chimera keeps two copies of each stage in a pipeline; the engine reduces them
  // (gradient_syncs, part of the pipeline time). With one replica there is nothing
  // more to reduce; with two, each device reduces its two stages' 1e6 B over a ring
  // of 2: 2 x (2*(1/2)*1e6/25 = 40 us + 2*5 us) = 100 us after its last op.
  json doc = {{"model", {{"layers", json::array({{{"repeat", 4}, {"forward_ms", 1.0}, {"backward_ms", 2.0},
                                                   {"parameter_bytes", kMB}, {"output_bytes", kMB}}})}}},
              {"cluster", {{"devices", 4}, {"link", kInter}}},
              {"pipeline", {{"schedule", "chimera"}, {"stages", 4}, {"microbatches", 4}}}};
  const json one = run_report(doc);
  CHECK(one["data_parallel"]["ring_size"] == 1);
  CHECK(one["data_parallel"]["exposed_ms"].get<double>() == 0.0);
  doc["cluster"]["devices"] = 8;
  const json two = run_report(doc);
  CHECK(two["data_parallel"]["ring_size"] == 2);
  for (const auto& d : two["per_device"]) CHECK(d["allreduce_ms"].get<double>() == Approx(0.100).epsilon(1e-12));
  CHECK(two["data_parallel"]["allreduce_ms"].get<double>() == Approx(0.100).epsilon(1e-12));
}

TEST_CASE("a measured link curve's segments decide the transfer times (cluster.link and profile links)", "[topology][links]") {
  // Two 1 MB transfers (activation, gradient) around 6 ms of compute. The one line (10 us,
  // 50 GB/s) gives 10 + 20 = 30 us each; the curve's segment for 1 MB (from 0.5 MB:
  // -10 us + bytes / 20 GB/s) gives -10 + 50 = 40 us each.
  const json segments = json::parse(R"([{"from_bytes": 0, "latency_us": 10, "bandwidth_GBps": 50},
                                         {"from_bytes": 500000, "latency_us": -10, "bandwidth_GBps": 20}])");
  json line = {{"latency_us", 10}, {"bandwidth_GBps", 50}};
  CHECK(run_report(two_stage_doc({{"devices", 2}, {"link", line}}))["iteration_time_ms"].get<double>() ==
        Approx(6.060).epsilon(1e-12));
  json curve = line;
  curve["segments"] = segments;
  CHECK(run_report(two_stage_doc({{"devices", 2}, {"link", curve}}))["iteration_time_ms"].get<double>() ==
        Approx(6.080).epsilon(1e-12));
  // The same curve read from a profile's link fit, as an intra-node link.
  const auto dir = std::filesystem::temp_directory_path() / "ppsim_link_segments";
  std::filesystem::create_directories(dir);
  const std::string profile = (dir / "p.json").string();
  {
    json p = json::parse(R"({"links": [{"kind": "peer", "points": [], "fit": {"latency_us": 10, "bandwidth_GBps": 50}}]})");
    p["links"][0]["fit"]["segments"] = segments;
    std::ofstream(profile) << p.dump();
  }
  const json intra = {{"profile", profile}, {"kind", "peer"}};
  CHECK(run_report(two_stage_doc({{"nodes", 1}, {"gpus_per_node", 2}, {"intra_link", intra}}))["iteration_time_ms"]
            .get<double>() == Approx(6.080).epsilon(1e-12));
  curve["segments"][1]["from_bytes"] = 0;
  CHECK_THROWS_WITH(parse_config(two_stage_doc({{"devices", 2}, {"link", curve}}), "t.json"),
                    "t.json: cluster.link.segments: segments[1].from_bytes: must be larger than the previous segment's");
  std::filesystem::remove_all(dir);
}
