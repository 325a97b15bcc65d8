/// @file files.cpp
/// @brief All-or-nothing output: every file written to a temporary name, then renamed.
#include "ppsim/views/files.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace ppsim {

void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files) {
  namespace fs = std::filesystem;
  std::vector<std::string> temps;
  auto cleanup = [&] {
    for (const auto& t : temps) std::remove(t.c_str());
  };
  for (const auto& [path, content] : files) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    std::error_code ec;
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      cleanup();
      throw OutputError(path + ": cannot write (" + (ec ? ec.message() : std::string("cannot create file")) + ")");
    }
    temps.push_back(tmp);
    out << content;
    out.close();
    if (!out) {
      cleanup();
      throw OutputError(path + ": write failed");
    }
  }
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (std::rename(temps[i].c_str(), files[i].first.c_str()) != 0) {
      cleanup();
      throw OutputError(files[i].first + ": cannot rename temporary file into place");
    }
  }
}

}  // namespace ppsim
