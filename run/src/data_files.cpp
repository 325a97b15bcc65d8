#include "ppsim/run/data_files.h"

#include <algorithm>
#include <cstdlib>
#include <system_error>

namespace ppsim {

namespace fs = std::filesystem;

namespace {

bool is_inside(const fs::path& file, const fs::path& dir) {
  const auto [d, f] = std::mismatch(dir.begin(), dir.end(), file.begin(), file.end());
  return d == dir.end();
}

fs::path running_executable() {
  std::error_code ec;
  const fs::path exe = fs::canonical("/proc/self/exe", ec);
  return ec ? fs::path() : exe;
}

}  // namespace

std::string DataFileLookup::tried_list() const {
  std::string out;
  for (const fs::path& p : tried) out += (out.empty() ? "" : ", ") + p.string();
  return out;
}

std::vector<fs::path> data_roots() {
  std::vector<fs::path> roots;
  if (const char* env = std::getenv("PPSIM_DATA_DIR"); env != nullptr && *env != '\0') roots.emplace_back(env);
  const fs::path exe = running_executable();
  if (!exe.empty()) roots.push_back((exe.parent_path() / PPSIM_INSTALL_DATA_FROM_BIN).lexically_normal());
#if defined(PPSIM_BUILD_TREE) && defined(PPSIM_SOURCE_TREE)
  std::error_code ec;
  const fs::path build = fs::canonical(PPSIM_BUILD_TREE, ec);
  if (!ec && !exe.empty() && is_inside(exe, build)) roots.emplace_back(PPSIM_SOURCE_TREE);
#endif
  return roots;
}

DataFileLookup find_data_file(const std::string& name, const std::string& kind, const std::string& config_file) {
  DataFileLookup out;
  const bool is_path = name.find('/') != std::string::npos || name.ends_with(".json");
  const fs::path file = is_path ? fs::path(name) : fs::path(name + ".json");
  const fs::path in_root = is_path ? file : fs::path("configs") / kind / file;
  if (file.is_absolute()) {
    out.tried.push_back(file);
  } else {
    if (!config_file.empty()) {
      const fs::path dir = fs::path(config_file).parent_path();
      if (is_path) out.tried.insert(out.tried.end(), {dir / file, fs::current_path() / file});
      else
        out.tried.insert(out.tried.end(),
                         {dir / file, dir / kind / file, dir / ".." / kind / file, dir / ".." / "configs" / kind / file});
    }
    for (const fs::path& root : data_roots()) out.tried.push_back(root / in_root);
  }
  std::vector<fs::path> unique;
  for (const fs::path& p : out.tried)
    if (std::find(unique.begin(), unique.end(), p.lexically_normal()) == unique.end()) unique.push_back(p.lexically_normal());
  out.tried = std::move(unique);
  for (const fs::path& p : out.tried) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) {
      out.found = p;
      break;
    }
  }
  return out;
}

}  // namespace ppsim
