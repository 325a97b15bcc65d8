// find_data_file: the one lookup order for presets, profiles, device specs and the
// renderer (ppsim/data_files.h), pinned candidate by candidate.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli_helpers.h"
#include "ppsim/run/data_files.h"

using namespace ppsim;
using ppsim_test::scratch_dir;
using ppsim_test::write_file;
namespace fs = std::filesystem;

namespace {

/// Sets PPSIM_DATA_DIR (or unsets it) for one test, restoring the old value after.
class DataDirEnv {
 public:
  explicit DataDirEnv(const std::optional<fs::path>& dir) {
    if (const char* old = std::getenv("PPSIM_DATA_DIR")) old_ = old;
    if (dir) ::setenv("PPSIM_DATA_DIR", dir->c_str(), 1);
    else ::unsetenv("PPSIM_DATA_DIR");
  }
  ~DataDirEnv() {
    if (old_) ::setenv("PPSIM_DATA_DIR", old_->c_str(), 1);
    else ::unsetenv("PPSIM_DATA_DIR");
  }

 private:
  std::optional<std::string> old_;
};

// This test binary runs from the build folder: bin/../share/ppsim next to it, then the
// source tree.
fs::path installed_root() { return (fs::canonical("/proc/self/exe").parent_path() / "../share/ppsim").lexically_normal(); }

}  // namespace

TEST_CASE("data roots: PPSIM_DATA_DIR, the installed share/ppsim, the source tree from the build folder", "[data_files]") {
  const DataDirEnv env(fs::path("/opt/data"));
  CHECK(data_roots() == std::vector<fs::path>{"/opt/data", installed_root(), PPSIM_SOURCE_DIR});
  const DataDirEnv unset(std::nullopt);
  CHECK(data_roots() == std::vector<fs::path>{installed_root(), PPSIM_SOURCE_DIR});
}

TEST_CASE("a bare preset name: next to the config, then configs/KIND/NAME.json in each data root", "[data_files]") {
  const fs::path d = scratch_dir("data_files_bare");
  const DataDirEnv env(d / "data");
  const DataFileLookup none = find_data_file("nope", "clusters", (d / "exp" / "c.json").string());
  CHECK(none.found.empty());
  CHECK(none.tried == std::vector<fs::path>{d / "exp/nope.json", d / "exp/clusters/nope.json", d / "clusters/nope.json",
                                             d / "configs/clusters/nope.json", d / "data/configs/clusters/nope.json",
                                             installed_root() / "configs/clusters/nope.json",
                                             fs::path(PPSIM_SOURCE_DIR) / "configs/clusters/nope.json"});
  CHECK(none.tried_list().starts_with((d / "exp/nope.json").string() + ", " + (d / "exp/clusters/nope.json").string() + ", "));

  // The shipped preset comes from the source tree (last) until PPSIM_DATA_DIR has one.
  CHECK(find_data_file("dgx-h100", "clusters", (d / "exp/c.json").string()).found ==
        fs::path(PPSIM_SOURCE_DIR) / "configs/clusters/dgx-h100.json");
  fs::create_directories(d / "data/configs/clusters");
  write_file(d / "data/configs/clusters/dgx-h100.json", "{}");
  CHECK(find_data_file("dgx-h100", "clusters", (d / "exp/c.json").string()).found ==
        d / "data/configs/clusters/dgx-h100.json");
  // ... and the config's own folder wins over every data root.
  fs::create_directories(d / "configs/clusters");
  write_file(d / "configs/clusters/dgx-h100.json", "{}");
  CHECK(find_data_file("dgx-h100", "clusters", (d / "exp/c.json").string()).found == d / "configs/clusters/dgx-h100.json");
  fs::remove_all(d);
}

TEST_CASE("a path: the config's folder, the working directory, then ROOT/PATH; an absolute path only itself", "[data_files]") {
  const fs::path d = scratch_dir("data_files_path");
  const DataDirEnv env(std::nullopt);
  const fs::path old_cwd = fs::current_path();
  fs::current_path(d);
  const DataFileLookup l = find_data_file("configs/models/gpt3-1.3b.json", "models", (d / "exp/c.json").string());
  fs::current_path(old_cwd);
  CHECK(l.tried == std::vector<fs::path>{d / "exp/configs/models/gpt3-1.3b.json", d / "configs/models/gpt3-1.3b.json",
                                          installed_root() / "configs/models/gpt3-1.3b.json",
                                          fs::path(PPSIM_SOURCE_DIR) / "configs/models/gpt3-1.3b.json"});
  // No config (the renderer): the data roots only.
  CHECK(find_data_file("tools/render.mjs", "", "").tried ==
        std::vector<fs::path>{installed_root() / "tools/render.mjs", fs::path(PPSIM_SOURCE_DIR) / "tools/render.mjs"});
  write_file(d / "m.json", "{}");
  CHECK(find_data_file("m.json", "models", (d / "c.json").string()).found == d / "m.json");
  const DataFileLookup abs = find_data_file((d / "absent.json").string(), "models", (d / "c.json").string());
  CHECK(abs.found.empty());
  CHECK(abs.tried == std::vector<fs::path>{d / "absent.json"});
  fs::remove_all(d);
}
