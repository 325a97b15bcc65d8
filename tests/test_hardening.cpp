// Issue 16, the input side: every bad input of every category (nesting, long strings,
// numbers out of range, a number for a string, non-regular files, usage errors, shapes
// over the memory budget) exits 2 with exactly one line `ppsim: error: FILE: PATH:
// problem` (or `ppsim-calibrate: error: ...`), prints nothing on stdout and writes no
// output file. Each category is a table; the final report's table counts its rows.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <chrono>
#include <functional>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"

using namespace ppsim_test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json good_config() {
  return json::parse(R"({
    "model": { "layers": [ { "repeat": 8, "forward_ms": 1.0, "backward_ms": 2.0,
                              "activation_bytes": 1048576, "parameter_bytes": 1048576,
                              "output_bytes": 1024 } ] },
    "cluster": { "devices": 4, "link": { "latency_us": 5, "bandwidth_GBps": 10 } },
    "pipeline": { "schedule": "1f1b", "stages": 4, "microbatches": 8, "chunks": 1 }
  })");
}

json with(const std::function<void(json&)>& edit) {
  json c = good_config();
  edit(c);
  return c;
}

/// `levels` nested arrays around 0.
std::string nested(int levels) { return std::string(levels, '[') + "0" + std::string(levels, ']'); }

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

/// One bad input: the files to write (name -> content), the arguments (DIR stands for the
/// scratch folder), and what the single error line must contain.
struct Case {
  std::string name;
  std::vector<std::pair<std::string, std::string>> files;
  std::string args;
  std::vector<std::string> expect;
};

std::string expand(std::string s, const fs::path& dir) {
  for (std::size_t at; (at = s.find("DIR")) != std::string::npos;) s.replace(at, 3, dir.string());
  return s;
}

/// Runs every case: exit 2, one line with the prefix and each expected part, nothing on
/// stdout, no output file (out.json, the only output the cases ask for) and no temporary.
void check_cases(const std::string& tag, const std::vector<Case>& cases, const std::string& prefix = "ppsim: error: ") {
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const fs::path dir = scratch_dir("hardening_" + tag);
    for (const auto& [name, text] : c.files) write_file(dir / name, expand(text, dir));
    const std::string args = expand(c.args, dir);
    CliResult r;
    if (prefix.starts_with("ppsim-calibrate")) {
#ifdef PPSIM_CALIBRATE_BIN
      const std::string cmd = std::string(PPSIM_CALIBRATE_BIN) + " " + args + " >" + (dir / "o.txt").string() + " 2>" +
                              (dir / "e.txt").string() + " </dev/null";
      const int status = std::system(cmd.c_str());
      r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      r.out = slurp(dir / "o.txt");
      r.err = slurp(dir / "e.txt");
      fs::remove(dir / "o.txt");
      fs::remove(dir / "e.txt");
#else
      continue;
#endif
    } else {
      r = run_ppsim(args, dir);
    }
    CAPTURE(r.err);
    CHECK(r.code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.starts_with(prefix));
    for (const std::string& part : c.expect) CHECK(r.err.find(expand(part, dir)) != std::string::npos);
    CHECK(r.out.empty());
    CHECK_FALSE(fs::exists(dir / "out.json"));
    for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().string().find(".tmp.") == std::string::npos);
    fs::remove_all(dir);
  }
}

}  // namespace

TEST_CASE("JSON nesting is bounded in every reader: 10^5 levels is an error, not a stack overflow",
          "[hardening][input]") {
  const std::string deep = nested(100000);
  const std::string base = good_config().dump();
  std::vector<Case> cases = {
      {"config", {{"c.json", "{\"description\": " + deep + "}"}}, "run DIR/c.json --report DIR/out.json",
       {"DIR/c.json: JSON nested deeper than 64 levels"}},
      {"config, 65 levels", {{"c.json", "{\"description\": " + nested(64) + "}"}}, "run DIR/c.json --report DIR/out.json",
       {"DIR/c.json: JSON nested deeper than 64 levels"}},
      {"sweep", {{"s.json", "{\"base\": " + base + ", \"grid\": {\"stages\": " + deep + "}}"}},
       "sweep DIR/s.json --csv DIR/out.json -q", {"DIR/s.json: JSON nested deeper than 64 levels"}},
      {"sweep's base file", {{"b.json", deep}, {"s.json", R"({"base": "b.json", "grid": {"stages": [4]}})"}},
       "sweep DIR/s.json --csv DIR/out.json -q", {"DIR/b.json: JSON nested deeper than 64 levels"}},
      {"user schedule", {{"c.json", base}, {"u.json", deep}}, "run DIR/c.json --schedule-file DIR/u.json --report DIR/out.json",
       {"DIR/u.json: JSON nested deeper than 64 levels"}},
      {"model preset",
       {{"p.json", deep},
        {"c.json", R"({"model": {"preset": "DIR/p.json", "sequence_length": 128}, "costs": {"device": ")" +
                       std::string(PPSIM_SOURCE_DIR) + R"(/configs/devices/h100-sxm.json"},
                     "cluster": {"devices": 1}, "pipeline": {"stages": 1, "microbatches": 1}})"}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: model.preset: DIR/p.json: JSON nested deeper than 64"}},
      {"link profile",
       {{"p.json", deep},
        {"c.json", with([](json& c) {
           c["cluster"]["gpus_per_node"] = 4;
           c["cluster"]["intra_link"] = {{"profile", "DIR/p.json"}, {"kind", "peer"}};
         }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: cluster.intra_link.profile: DIR/p.json: JSON nested deeper"}},
  };
  check_cases("depth", cases);
  check_cases("depth_cal", {{"profile", {{"p.json", deep}}, "validate DIR/p.json", {"DIR/p.json: JSON nested deeper"}}},
              "ppsim-calibrate: error: ");
}

TEST_CASE("strings are bounded, and a number where a string belongs names its JSON path", "[hardening][input]") {
  const std::string long_text(70000, 'x');
  std::vector<Case> cases = {
      {"long description", {{"c.json", with([&](json& c) { c["description"] = long_text; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: a JSON string is longer than 65536 bytes"}},
      {"long key", {{"c.json", "{\"" + long_text + "\": 1}"}}, "run DIR/c.json --report DIR/out.json",
       {"a JSON string is longer than 65536 bytes"}},
      {"description a number", {{"c.json", with([](json& c) { c["description"] = 5; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: description: must be a string (got 5)"}},
      {"model.name a number", {{"c.json", with([](json& c) { c["model"]["name"] = 5; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: model.name: must be a string (got 5)"}},
      {"sweep description a number",
       {{"s.json", json{{"base", good_config()}, {"grid", {{"stages", {4}}}}, {"description", 5}}.dump()}},
       "sweep DIR/s.json --csv DIR/out.json -q", {"DIR/s.json: description: must be a string"}},
      {"user schedule name a number",
       {{"c.json", good_config().dump()},
        {"u.json", R"({"name": 5, "devices": 1, "microbatches": 1, "ops": [["F0", "B0"]]})"}},
       "run DIR/c.json --schedule-file DIR/u.json --report DIR/out.json", {"DIR/u.json: name: must be a string"}},
      {"profile link kind a number",
       {{"p.json", R"({"links": [{"kind": 5, "fit": {"latency_us": 1, "bandwidth_GBps": 1}}]})"},
        {"c.json", with([](json& c) {
           c["cluster"]["gpus_per_node"] = 4;
           c["cluster"]["intra_link"] = {{"profile", "DIR/p.json"}};
         }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"DIR/p.json: links[0].kind: must be a string (got 5)"}},
      {"transformer name a number",
       {{"c.json", R"({"model": {"name": 5, "num_layers": 2, "hidden": 64, "heads": 4, "sequence_length": 16},
                       "costs": {"device": ")" + std::string(PPSIM_SOURCE_DIR) + R"(/configs/devices/h100-sxm.json"},
                       "cluster": {"devices": 1}, "pipeline": {"stages": 1, "microbatches": 1}})"}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: model.name: must be a string"}},
  };
  check_cases("strings", cases);
}

TEST_CASE("numbers stay in ranges that keep times and bytes inside int64", "[hardening][input]") {
  const std::string device = std::string(PPSIM_SOURCE_DIR) + "/configs/devices/h100-sxm.json";
  auto transformer = [&](const std::string& key, const std::string& value) {
    return R"({"model": {"num_layers": 2, "hidden": 64, "heads": 4, "sequence_length": 16, ")" + key + "\": " + value +
           R"(}, "costs": {"device": ")" + device +
           R"("}, "cluster": {"devices": 1}, "pipeline": {"stages": 1, "microbatches": 1}})";
  };
  std::vector<Case> cases = {
      {"huge forward", {{"c.json", with([](json& c) { c["model"]["layers"][0]["forward_ms"] = 1e300; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"model.layers[0].forward_ms: must be at most 1000000"}},
      {"huge backward", {{"c.json", with([](json& c) { c["model"]["layers"][0]["backward_ms"] = 1e19; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"model.layers[0].backward_ms: must be at most 1000000"}},
      {"huge latency", {{"c.json", with([](json& c) { c["cluster"]["link"]["latency_us"] = 1e300; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"cluster.link.latency_us: must be at most 1000000"}},
      {"tiny bandwidth", {{"c.json", with([](json& c) { c["cluster"]["link"]["bandwidth_GBps"] = 1e-300; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"cluster.link.bandwidth_GBps: must be at least 0.001 GB/s"}},
      {"huge memory limit", {{"c.json", with([](json& c) { c["memory"] = {{"limit_GiB", 1e300}}; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"memory.limit_GiB: must be at most 1048576"}},
      {"layer count 4294967300", {{"c.json", with([](json& c) { c["model"]["layers"][0]["repeat"] = 4294967300LL; }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"model.layers[0].repeat: must be at most 10000000"}},
      {"run time over int64 ns",
       {{"c.json", with([](json& c) {
           c["model"]["layers"][0]["forward_ms"] = 1e6;
           c["pipeline"]["microbatches"] = 1000000;
         }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: model.layers: times too large for this shape"}},
      {"bytes over 2^62",
       {{"c.json", with([](json& c) {
           c["model"]["layers"][0]["activation_bytes"] = std::int64_t{1} << 50;
           c["model"]["layers"][0]["repeat"] = 4000;
           c["pipeline"]["microbatches"] = 1000;
         }).dump()}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: model.layers: byte counts too large"}},
      {"transformer num_layers 4294967300", {{"c.json", transformer("num_layers", "4294967300")}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: model.num_layers: must be at most 10000000"}},
      {"transformer hidden 2^40", {{"c.json", transformer("hidden", "1099511627776")}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: model.hidden: must be at most 131072"}},
      {"transformer seq 2^40", {{"c.json", transformer("sequence_length", "1099511627776")}},
       "run DIR/c.json --report DIR/out.json", {"DIR/c.json: model.sequence_length: must be at most 1048576"}},
      {"sweep partition 4294967295",
       {{"s.json", json{{"base", good_config()}, {"grid", {{"partition", {{4294967295LL, 1, 1, 1}}}}}}.dump()}},
       "sweep DIR/s.json --csv DIR/out.json -q", {"DIR/s.json: grid.partition[0][0]: must be a layer count in 1..10000000"}},
      {"sweep partition -1", {{"s.json", json{{"base", good_config()}, {"grid", {{"partition", {{2, 2, -1, 4}}}}}}.dump()}},
       "sweep DIR/s.json --csv DIR/out.json -q", {"DIR/s.json: grid.partition[0][2]: must be a layer count"}},
      {"sweep stages 2^64-1", {{"s.json", R"({"base": )" + good_config().dump() + R"(, "grid": {"stages": [18446744073709551615]}})"}},
       "sweep DIR/s.json --csv DIR/out.json -q", {"DIR/s.json: grid.stages[0]: must be a positive integer"}},
  };
  check_cases("numbers", cases);
  check_cases("numbers_cal",
              {{"profile 1e999", {{"p.json", R"({"schema": 1e999})"}}, "validate DIR/p.json", {"DIR/p.json: numbers must be finite"}},
               {"model preset layers 4294967300",
                {{"m.json", R"({"layers": 4294967300, "hidden": 64, "heads": 4, "seq_length": 16, "vocab": 0})"}},
                "layers --model DIR/m.json -o DIR/out.json", {"DIR/m.json: model.layers: must be an integer in 1..10000000"}}},
              "ppsim-calibrate: error: ");
}

TEST_CASE("only regular files are read: a directory, a FIFO or /dev/zero is refused at once", "[hardening][input]") {
  const fs::path dir = scratch_dir("hardening_files");
  fs::create_directories(dir / "a_dir");
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  write_file(dir / "c.json", good_config().dump());
  struct FileCase {
    std::string args;
    std::string expect;
  };
  const std::string d = dir.string();
  const std::vector<FileCase> cases = {
      {"run " + d + "/a_dir", d + "/a_dir: is a directory, not a regular file"},
      {"run " + d + "/fifo", d + "/fifo: is a FIFO, not a regular file"},
      {"run /dev/zero", "/dev/zero: is a character device, not a regular file"},
      {"sweep " + d + "/fifo --csv " + d + "/out.json", d + "/fifo: is a FIFO"},
      {"sweep /dev/zero --csv " + d + "/out.json", "/dev/zero: is a character device"},
      {"compare " + d + "/fifo", d + "/fifo: is a FIFO"},
      {"run " + d + "/c.json --schedule-file " + d + "/fifo --report " + d + "/out.json", d + "/fifo: is a FIFO"},
      {"run " + d + "/c.json --schedule-file /dev/zero --report " + d + "/out.json", "/dev/zero: is a character device"},
  };
  for (const FileCase& c : cases) {
    CAPTURE(c.args);
    const auto start = std::chrono::steady_clock::now();
    const CliResult r = run_ppsim(c.args, dir);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));  // never blocks on the FIFO
    CHECK(r.code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.starts_with("ppsim: error: "));
    CHECK(r.err.find(c.expect) != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "out.json"));
  }
#ifdef PPSIM_CALIBRATE_BIN
  for (const std::string target : {d + "/a_dir", d + "/fifo", std::string("/dev/zero")}) {
    const std::string cmd = std::string(PPSIM_CALIBRATE_BIN) + " validate " + target + " 2>" + d + "/e.txt >/dev/null";
    const int status = std::system(cmd.c_str());
    CHECK(WEXITSTATUS(status) == 2);
    const std::string err = slurp(dir / "e.txt");
    CHECK(count_lines(err) == 1);
    CHECK(err.starts_with("ppsim-calibrate: error: " + target + ": is a "));
  }
#endif
  fs::remove_all(dir);
}

TEST_CASE("usage errors are one line with the program's prefix, exit 2", "[hardening][cli]") {
  const fs::path dir = scratch_dir("hardening_usage");
  write_file(dir / "c.json", good_config().dump());
  const std::string c = (dir / "c.json").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"run " + c + " --no-such-flag", "--no-such-flag"},
      {"run", "config is required"},
      {"run " + c + " --stages -3", "--stages"},
      {"run " + c + " --stages abc", "--stages"},
      {"frobnicate", "A subcommand is required"},
      {"", "A subcommand is required"},
      {"run " + c + " --schedule 1f1b --schedule-file " + c, "excludes"},
      {"run " + c + " --max-memory lots", "--max-memory: 'lots' is not a memory size"},
  };
  for (const auto& [args, expect] : cases) {
    CAPTURE(args);
    const CliResult r = run_ppsim(args, dir);
    CAPTURE(r.err);
    CHECK(r.code == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.starts_with("ppsim: error: "));
    CHECK(r.err.find(expect) != std::string::npos);
    CHECK(r.out.empty());
  }
  CHECK(run_ppsim("--help", dir).code == 0);
#ifdef PPSIM_CALIBRATE_BIN
  for (const std::string args : {"validate", "layers --no-such-flag", "bogus"}) {
    CAPTURE(args);
    const std::string cmd = std::string(PPSIM_CALIBRATE_BIN) + " " + args + " 2>" + (dir / "e.txt").string() + " >/dev/null";
    const int status = std::system(cmd.c_str());
    CHECK(WEXITSTATUS(status) == 2);
    const std::string err = slurp(dir / "e.txt");
    CHECK(count_lines(err) == 1);
    CHECK(err.starts_with("ppsim-calibrate: error: "));
  }
#endif
  fs::remove_all(dir);
}

TEST_CASE("shapes over the memory budget are refused before any work, with the estimate and the option",
          "[hardening][budget]") {
  // The issue's cases: p=32 m=10^6 report only (at most 9.6e7 ops at 130 B/op and 64 MiB:
  // 11.7 GiB);
  // GPipe p=16384 m=2000; a sweep of 10^7 points. --max-memory 4G makes the outcome
  // independent of the machine.
  auto shape = [](const std::string& schedule, int p, int m) {
    return with([&](json& c) {
      c["pipeline"] = {{"schedule", schedule}, {"stages", p}, {"microbatches", m}};
      c["cluster"]["devices"] = p;
      c["model"]["layers"][0]["repeat"] = p;
    });
  };
  json big_grid = {{"base", good_config()},
                   {"grid", {{"microbatches", json::array()}, {"micro_batch_size", json::array()}}}};
  for (int i = 1; i <= 3162; ++i) big_grid["grid"]["microbatches"].push_back(i);
  for (int i = 1; i <= 3162; ++i) big_grid["grid"]["micro_batch_size"].push_back(i);
  std::vector<Case> cases = {
      {"p=32 m=10^6 report only", {{"c.json", shape("1f1b", 32, 1000000).dump()}},
       "run DIR/c.json --report DIR/out.json --max-memory 4G",
       {"DIR/c.json: needs about 11.7 GiB of memory, over the budget of 4.0 GiB", "--max-memory SIZE"}},
      {"GPipe p=16384 m=2000", {{"c.json", shape("gpipe", 16384, 2000).dump()}},
       "run DIR/c.json --report DIR/out.json --max-memory 4G", {"DIR/c.json: needs about", "--max-memory"}},
      // Report only, 24 x 10^6 ops need about 3 GiB; the streamed timeline and trace and
      // the memory samples they need add about 120 B per op.
      {"timeline and trace raise it", {{"c.json", shape("1f1b", 8, 1000000).dump()}},
       "run DIR/c.json --timeline DIR/out.json --trace DIR/t.json --max-memory 5G",
       {"DIR/c.json: needs about 5.7 GiB of memory, over the budget of 5.0 GiB"}},
      // --vega streams too (40 B per op): with the trace, the same 5.7 GiB.
      {"vega and trace raise it", {{"c.json", shape("1f1b", 8, 1000000).dump()}},
       "run DIR/c.json --vega DIR/out.json --trace DIR/t.json --max-memory 5G",
       {"DIR/c.json: needs about 5.7 GiB of memory, over the budget of 5.0 GiB"}},
      // A rendered figure does not stream: Node holds the whole spec and its scene graph,
      // 43,000 B per op; 2.4e5 ops x (130 + 35 + 43,000) B + 64 MiB = 9.7 GiB.
      {"a rendered figure", {{"c.json", shape("1f1b", 8, 10000).dump()}},
       "run DIR/c.json --svg DIR/out.svg --max-memory 4G",
       {"DIR/c.json: needs about 9.7 GiB of memory, over the budget of 4.0 GiB"}},
      {"compare", {{"c.json", shape("1f1b", 32, 1000000).dump()}}, "compare DIR/c.json --max-memory 4G",
       {"DIR/c.json: needs about", "--max-memory"}},
      {"a 10^7-point sweep", {{"s.json", big_grid.dump()}}, "sweep DIR/s.json --csv DIR/out.json -q -j 1 --max-memory 4G",
       // 9,998,244 points x 2,200 B (a streamed sweep keeps only each point's summary) +
       // 64 MiB + one run: 20.6 GiB (167.7 GiB when every row was held).
       {"DIR/s.json: needs about 20.6 GiB", "--max-memory"}},
  };
  check_cases("budget", cases);
  // The same p=32 run under the budget: a small m runs.
  const fs::path dir = scratch_dir("hardening_budget_ok");
  write_file(dir / "c.json", shape("1f1b", 32, 64).dump());
  CHECK(run_ppsim("run " + (dir / "c.json").string() + " --max-memory 4G", dir).code == 0);
  fs::remove_all(dir);
}

// ---- The balanced partitioner's cost -------------------------------------------------

#include "ppsim/model/partition.h"

TEST_CASE("balanced_partition without a cap is the dynamic programme's answer, boundaries and all",
          "[hardening][partition]") {
  // The capped path is the exact dynamic programme; a cap every split meets makes it
  // answer the uncapped question, so the two must agree exactly (ties included).
  const ppsim::StageMemoryFn nothing = [](int, int, int) -> std::int64_t { return 0; };
  std::uint64_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::int64_t>(seed >> 33);
  };
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 1 + static_cast<int>(next() % 40);
    const int stages = 1 + static_cast<int>(next() % n);
    std::vector<std::int64_t> cost(static_cast<std::size_t>(n));
    // Few distinct values make ties common, where the lexicographic rule decides.
    for (auto& c : cost) c = trial % 2 ? next() % 4 : next() % 1000;
    CAPTURE(trial, n, stages, cost);
    CHECK(ppsim::balanced_partition(cost, stages) == ppsim::balanced_partition(cost, stages, nothing, 1));
  }
  // By hand: {4, 1, 1, 1, 1, 4} into 3: bottleneck 4; the earliest boundaries {1, 4, 1}.
  CHECK(ppsim::balanced_partition({4, 1, 1, 1, 1, 4}, 3) == std::vector<int>{1, 4, 1});
  CHECK(ppsim::balanced_partition({0, 0, 0}, 2) == std::vector<int>{1, 2});
}

TEST_CASE("the balanced partition of 10^6 layers into 1000 stages finishes fast", "[hardening][partition]") {
  // Layer i costs 1 + (i mod 2): each pair costs 3, 10^6 layers cost 1.5 x 10^6, and 1000
  // stages of 1000 layers (500 pairs) each cost exactly 1500, the least bottleneck.
  std::vector<std::int64_t> cost(1'000'000);
  for (std::size_t i = 0; i < cost.size(); ++i) cost[i] = 1 + static_cast<std::int64_t>(i % 2);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int> counts = ppsim::balanced_partition(cost, 1000);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  REQUIRE(counts.size() == 1000);
  CHECK(ppsim::slowest_stage_cost(cost, counts) == 1500);
  // The earliest boundaries: the first stage ends at the first layer that leaves the
  // rest splittable within 1500 per stage, which is 1000 layers in.
  CHECK(counts.front() == 1000);
}

TEST_CASE("under a memory cap, the greedy partition finds the dynamic programme's bottleneck", "[hardening][partition]") {
  // Memory that grows with a stage's layers at both ends (bytes per layer, plus a
  // per-stage term): the greedy is exact there, so its bottleneck is the DP's, and its
  // split fits the cap.
  std::uint64_t seed = 777;
  auto next = [&seed] {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::int64_t>(seed >> 33);
  };
  int compared = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 1 + static_cast<int>(next() % 30);
    const int stages = 1 + static_cast<int>(next() % n);
    std::vector<std::int64_t> cost(static_cast<std::size_t>(n)), bytes(static_cast<std::size_t>(n));
    for (auto& c : cost) c = next() % 100;
    for (auto& b : bytes) b = 1 + next() % 10;
    const ppsim::StageMemoryFn memory = [&](int stage, int first, int last) {
      std::int64_t sum = stages - stage;  // earlier stages hold more in flight
      for (int i = first; i < last; ++i) sum += bytes[static_cast<std::size_t>(i)];
      return sum;
    };
    const std::int64_t cap = 10 + next() % 60;
    CAPTURE(trial, n, stages, cost, bytes, cap);
    const std::vector<int> exact = ppsim::balanced_partition(cost, stages, memory, cap);
    const std::vector<int> greedy = ppsim::greedy_capped_partition(cost, stages, memory, cap);
    REQUIRE(exact.empty() == greedy.empty());
    if (exact.empty()) continue;
    ++compared;
    CHECK(ppsim::slowest_stage_cost(cost, greedy) == ppsim::slowest_stage_cost(cost, exact));
    int first = 0;
    for (int k = 0; k < stages; ++k) {
      CHECK(memory(k, first, first + greedy[static_cast<std::size_t>(k)]) <= cap);
      first += greedy[static_cast<std::size_t>(k)];
    }
    CHECK(first == n);
  }
  CHECK(compared > 100);
  // By hand: costs {5, 1, 1, 1, 1, 5} into 2 stages with a cap of 4 layers a stage (1 B
  // each): the split by time alone {3, 3} fits, bottleneck 7; a cap of 3 leaves {3, 3}.
  const ppsim::StageMemoryFn per_layer = [](int, int first, int last) -> std::int64_t { return last - first; };
  CHECK(ppsim::greedy_capped_partition({5, 1, 1, 1, 1, 5}, 2, per_layer, 3) == std::vector<int>{3, 3});
  CHECK(ppsim::greedy_capped_partition({5, 1, 1, 1, 1, 5}, 2, per_layer, 2).empty());
}

TEST_CASE("the balanced partition of 10^6 layers into 1000 stages under a memory cap finishes fast",
          "[hardening][partition]") {
  // Layer i costs 1 + (i mod 2) and holds 1 byte; a cap of 1000 bytes a stage forces
  // exactly 1000 layers per stage, which is also the least bottleneck, 1500. The dynamic
  // programme would take 10^15 steps; balanced_partition takes the greedy path.
  std::vector<std::int64_t> cost(1'000'000);
  for (std::size_t i = 0; i < cost.size(); ++i) cost[i] = 1 + static_cast<std::int64_t>(i % 2);
  const ppsim::StageMemoryFn memory = [](int, int first, int last) -> std::int64_t { return last - first; };
  CHECK(ppsim::capped_partition_steps(1'000'000, 1000) > ppsim::kExactCappedPartitionSteps);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int> counts = ppsim::balanced_partition(cost, 1000, memory, 1000);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  REQUIRE(counts.size() == 1000);
  CHECK(ppsim::slowest_stage_cost(cost, counts) == 1500);
  CHECK(std::all_of(counts.begin(), counts.end(), [](int c) { return c == 1000; }));
  // A cap of 999 bytes cannot hold 10^6 layers in 1000 stages: no split.
  CHECK(ppsim::balanced_partition(cost, 1000, memory, 999).empty());
}
