// User schedules from JSON token lists: parsing, errors with JSON paths, and that a
// hand-written 1F1B simulates exactly like the built-in one.
#include <catch2/catch.hpp>

#include "cli_helpers.h"
#include "ppsim/engine/engine.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/schedules/user_schedule.h"

using namespace ppsim;
using nlohmann::json;

TEST_CASE("a user schedule equal to 1f1b gives the same ops", "[user_schedule]") {
  const json doc = json::parse(R"({"name": "mine", "devices": 2, "microbatches": 3,
    "ops": [["F0","F1","B0","F2","B1","B2"], ["F0","B0","F1","B1","F2","B2"]]})");
  const Schedule user = parse_user_schedule(doc);
  const Schedule ref = make_schedule("1f1b", {2, 3, 1, 0});
  CHECK(user.name == "mine");
  CHECK(user.device_ops == ref.device_ops);
}

TEST_CASE("tokens with chunk, pipe and stage suffixes", "[user_schedule]") {
  const json doc = json::parse(R"({"devices": 2, "microbatches": 1, "chunks": 2,
    "ops": [["F0","F0c1","B0c1","B0"], ["F0","F0c1","B0c1","B0"]]})");
  const Schedule s = parse_user_schedule(doc);
  CHECK(s.num_stages == 4);
  CHECK(s.device_ops[1][1].stage == 3);  // chunk 1 of device 1: stage 1*2+1
  CHECK(s.device_ops[0][1].stage == 2);
  const json mirrored = json::parse(R"({"devices": 2, "microbatches": 1, "pipes": 2,
    "ops": [["F0","B0","F1p1s1","B1p1s1"], ["F0","B0","F1p1","B1p1"]]})");
  const Schedule b = parse_user_schedule(mirrored);
  CHECK(b.device_ops[1][2].stage == 0);  // pipe 1 mirrors: device 1 holds stage 0
  CHECK(b.device_ops[0][2].stage == 1);
}

TEST_CASE("user schedule errors name the JSON path", "[user_schedule]") {
  auto err = [](const std::string& text) {
    try {
      parse_user_schedule(json::parse(text));
    } catch (const ScheduleError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(err(R"({"devices": 2, "microbatches": 1, "ops": [["F0","B0"], ["F0","X0"]]})") ==
        "ops[1][1]: token 'X0' must start with F, B or W (or be a SEND_/RECV_ step)");
  CHECK(err(R"({"devices": 2, "microbatches": 1, "ops": [["F0","B0"]]})") ==
        "ops: has 1 device lists, devices is 2");
  CHECK(err(R"({"devices": 2, "microbatches": 1, "ops": [["F0","B0"], ["F0","Bx"]]})") ==
        "ops[1][1]: token 'Bx' needs a micro-batch number after the letter");
  CHECK(err(R"({"devices": 2, "microbatches": 1, "ops": [["F0","W0"], ["F0","B0"]]})") ==
        "ops[0][1]: token 'W0': W ops need \"split_backward\": true");
  CHECK(err(R"({"devices": 2, "microbatches": 1, "ops": [["F0"], ["F0","B0"]]})") ==
        "ops: schedule has no B0 for stage 0 pipe 0");
  CHECK(err(R"({"devices": 2, "microbatches": 1, "extra": 1, "ops": []})").rfind("extra: unknown key", 0) == 0);
  CHECK(err(R"({"microbatches": 1, "ops": []})") == "devices: missing (required integer)");
}

TEST_CASE("ppsim run --schedule-file: a deadlocking user schedule exits 2 naming the file", "[user_schedule][cli]") {
  using namespace ppsim_test;
  const auto dir = scratch_dir("user_sched");
  write_file(dir / "c.json", R"({"model": {"layers": [{"repeat": 4, "forward_ms": 1, "backward_ms": 2}]},
    "cluster": {"devices": 2}, "pipeline": {"stages": 2, "microbatches": 2}})");
  write_file(dir / "ok.json", R"({"devices": 2, "microbatches": 2, "ops": [["F0","F1","B0","B1"], ["F0","B0","F1","B1"]]})");
  write_file(dir / "dead.json", R"({"devices": 2, "microbatches": 1, "ops": [["F0","B0"], ["B0","F0"]]})");
  const auto ok = run_ppsim("run " + (dir / "c.json").string() + " --schedule-file " + (dir / "ok.json").string() + " --json", dir);
  REQUIRE(ok.code == 0);
  const json rep = json::parse(ok.out);
  CHECK(rep["iteration_time_ms"].get<double>() == Approx(3 * 6.0));  // (m+p-1)(f+b), f=2 b=4 per stage
  const auto dead = run_ppsim("run " + (dir / "c.json").string() + " --schedule-file " + (dir / "dead.json").string(), dir);
  CHECK(dead.code == 2);
  CHECK(dead.err.find("dead.json: cycle of waits: device 1 B0 (stage 1) waits for device 1 F0 (stage 1), which waits "
                      "for device 1 B0 (stage 1)\n") != std::string::npos);
  std::filesystem::remove_all(dir);
}
