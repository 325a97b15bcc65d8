// Outputs as one transaction (docs/cli.md "Output files"): all requested files appear, or
// none; one path given twice, or an existing path that is not a regular file, is refused
// before any work; a failed publication puts back what it replaced.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_helpers.h"
#include "ppsim/views/files.h"

namespace fs = std::filesystem;
using ppsim_test::run_ppsim;
using ppsim_test::scratch_dir;
using ppsim_test::slurp;
using ppsim_test::write_file;

namespace {

const std::string kConfig = std::string(PPSIM_SOURCE_DIR) + "/configs/default.json";

// Every name left in `dir`, sorted.
std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir)) names.push_back(e.path().lexically_relative(dir).string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("an output that cannot be written leaves none of the others", "[outputs]") {
  const auto dir = scratch_dir("outputs_partial");
  fs::create_directory(dir / "D");
  struct Case {
    std::string args;
    std::string error;
  };
  const std::string r = (dir / "r.json").string(), d = (dir / "D").string();
  const std::vector<Case> cases = {
      {"--report " + r + " --timeline " + d, d + ": exists and is a folder"},
      {"--report " + r + " --trace " + d, d + ": exists and is a folder"},
      {"--report " + r + " --vega " + d, d + ": exists and is a folder"},
      {"--report " + r + " --svg " + d, d + ": exists and is a folder"},
      {"--report " + (dir / "new/sub/r.json").string() + " --timeline " + d, d + ": exists and is a folder"},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    const auto res = run_ppsim("run " + kConfig + " " + c.args, dir);
    CHECK(res.code == 2);
    CHECK(res.err == "ppsim: error: " + c.error + "; an output must be a new path or a regular file\n");
    CHECK(res.out.empty());
    CHECK(names_in(dir) == std::vector<std::string>{"D"});
  }
  // The same through the sweep command: its JSON path is a folder.
  const fs::path sweep = dir / "D" / "sweep.json";
  write_file(sweep, R"({"base": ")" + kConfig + R"(", "grid": {"microbatches": [8, 16]}})");
  const auto res = run_ppsim("sweep " + sweep.string() + " -q --csv " + r + " --json " + d, dir);
  CHECK(res.code == 2);
  CHECK(res.err == "ppsim: error: " + d + ": exists and is a folder; an output must be a new path or a regular file\n");
  CHECK(names_in(dir) == std::vector<std::string>{"D", "D/sweep.json"});
  const auto same = run_ppsim("sweep " + sweep.string() + " -q --csv " + r + " --json " + r, dir);
  CHECK(same.code == 2);
  CHECK(same.err == "ppsim: error: " + r + ": given to two outputs (--csv and --json)\n");
  const auto ok = run_ppsim("sweep " + sweep.string() + " -q --csv " + r + " --json " + (dir / "s.json").string(), dir);
  CHECK(ok.code == 0);
  CHECK(names_in(dir) == std::vector<std::string>{"D", "D/sweep.json", "r.json", "s.json"});
  fs::remove_all(dir);
}

TEST_CASE("one path given to two outputs is refused before the run", "[outputs]") {
  const auto dir = scratch_dir("outputs_same");
  fs::create_directory(dir / "sub");
  write_file(dir / "old.json", "old\n");
  fs::create_symlink(dir / "old.json", dir / "link.json");
  const std::string a = (dir / "a.json").string();
  struct Case {
    std::string args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"--report " + a + " --timeline " + a, a + ": given to two outputs (--report and --timeline)"},
      // --vega is declared before --trace, so the trace's path is the second one.
      {"--trace " + a + " --vega " + (dir / "sub/../a.json").string(), a + ": given to two outputs (--vega and --trace)"},
      {"--report " + (dir / "old.json").string() + " --png " + (dir / "link.json").string(),
       (dir / "link.json").string() + ": given to two outputs (--report and --png)"},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    const auto res = run_ppsim("run " + kConfig + " " + c.args, dir);
    CHECK(res.code == 2);
    CHECK(res.err == "ppsim: error: " + c.error + "\n");
    CHECK(names_in(dir) == std::vector<std::string>{"link.json", "old.json", "sub"});
    CHECK(slurp(dir / "old.json") == "old\n");
  }
  fs::remove_all(dir);
}

TEST_CASE("an existing output that is not a regular file is refused and left as it was", "[outputs]") {
  const auto dir = scratch_dir("outputs_nonregular");
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  struct Case {
    std::string path;
    std::string kind;
  };
  const std::vector<Case> cases = {
      {"/dev/null", "a character device"}, {(dir / "fifo").string(), "a FIFO"}, {dir.string(), "a folder"}};
  for (const auto& c : cases) {
    INFO(c.path);
    const auto res = run_ppsim("run " + kConfig + " --report " + c.path, dir);
    CHECK(res.code == 2);
    CHECK(res.err == "ppsim: error: " + c.path + ": exists and is " + c.kind +
                         "; an output must be a new path or a regular file\n");
  }
  CHECK(fs::is_character_file("/dev/null"));
  CHECK(fs::is_fifo(dir / "fifo"));
  CHECK(names_in(dir) == std::vector<std::string>{"fifo"});
  // A path ending in a separator names no file.
  const auto res = run_ppsim("run " + kConfig + " --report " + (dir / "new").string() + "/", dir);
  CHECK(res.code == 2);
  CHECK(res.err == "ppsim: error: " + (dir / "new").string() + "/: names a folder, not a file (--report)\n");
  fs::remove_all(dir);
}

TEST_CASE("OutputSet: a rename that fails puts back every output already published", "[outputs]") {
  const auto dir = scratch_dir("outputs_rollback");
  const fs::path kept = dir / "kept.json", fresh = dir / "fresh.json", late = dir / "late.json";
  write_file(kept, "before\n");
  {
    ppsim::OutputSet outputs;
    outputs.add(kept.string(), "--a");
    outputs.add(fresh.string(), "--b");
    outputs.add((dir / "new/folder/late.json").string(), "--c");
    outputs.add(late.string(), "--d");
    outputs.write(kept.string(), "after\n");
    outputs.write(fresh.string(), "fresh\n");
    outputs.write((dir / "new/folder/late.json").string(), "late\n");
    outputs.write(late.string(), "late\n");
    // The last target turns into a folder after it was checked: its rename fails.
    fs::create_directory(late);
    CHECK_THROWS_AS(outputs.commit(), ppsim::OutputError);
  }
  CHECK(slurp(kept) == "before\n");
  CHECK(names_in(dir) == std::vector<std::string>{"kept.json", "late.json"});
  CHECK(fs::is_directory(late));
  fs::remove_all(dir);
}

TEST_CASE("OutputSet: an output not committed leaves no temporary and no folder", "[outputs]") {
  const auto dir = scratch_dir("outputs_abandon");
  {
    ppsim::OutputSet outputs;
    outputs.add((dir / "a/b/out.json").string(), "--x");
    CHECK_THROWS_AS(outputs.write((dir / "a/b/out.json").string(),
                                  [](std::ostream& out) {
                                    out << "half";
                                    throw ppsim::OutputError("stopped while writing");
                                  }),
                    ppsim::OutputError);
    CHECK(fs::exists(dir / "a/b"));
  }
  CHECK(names_in(dir).empty());
  {
    ppsim::OutputSet outputs;
    outputs.add((dir / "a/b/out.json").string(), "--x");
    outputs.write((dir / "a/b/out.json").string(), "whole\n");
    outputs.commit();
  }
  CHECK(slurp(dir / "a/b/out.json") == "whole\n");
  CHECK(names_in(dir) == std::vector<std::string>{"a", "a/b", "a/b/out.json"});
  fs::remove_all(dir);
}
