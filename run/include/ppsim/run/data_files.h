#pragma once
// Run-time lookup of ppsim's data files: cluster / model presets, device specs,
// profiles, the renderer (tools/render.mjs and its node_modules). One rule, used by every
// reader, so an installed ppsim works away from its source tree.
#include <filesystem>
#include <string>
#include <vector>

namespace ppsim {

/// @brief The result of one lookup: the file found (empty when none) and every
/// candidate tried, in order.
struct DataFileLookup {
  std::filesystem::path found;
  std::vector<std::filesystem::path> tried;
  /// @brief The candidates as one line, "A, B, C", for error messages.
  std::string tried_list() const;
};

/// @brief The data roots, each laid out like the source tree (ROOT/configs/...,
/// ROOT/tools/render.mjs, ROOT/node_modules), in lookup order:
///   1. $PPSIM_DATA_DIR when set and not empty;
///   2. the installed data folder found from the running executable
///      (/proc/self/exe, then ../share/ppsim, as GNUInstallDirs lays it out);
///   3. the source tree this binary was built from, only while the executable lies in
///      that build's folder (running from the build tree, never once installed).
std::vector<std::filesystem::path> data_roots();

/// @brief Finds a data file that `config_file` names.
/// `name` is a path when it contains '/' or ends in ".json", else a bare preset name
/// that stands for `configs/KIND/NAME.json`. Candidates, in order:
///   - an absolute path: itself only;
///   - next to the config (when `config_file` is not empty): for a path, the config's
///     folder / name, then the working directory / name; for a bare name, NAME.json,
///     KIND/NAME.json, ../KIND/NAME.json and ../configs/KIND/NAME.json from the
///     config's folder;
///   - then ROOT/name (ROOT/configs/KIND/NAME.json for a bare name) for each of
///     `data_roots()`.
/// The first regular file wins.
DataFileLookup find_data_file(const std::string& name, const std::string& kind, const std::string& config_file);

}  // namespace ppsim
