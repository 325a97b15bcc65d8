#pragma once
/// @file files.h
/// @brief Outputs are one transaction: all files are written, or none.
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ppsim {

/// @brief Thrown when an output file cannot be written.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief Writes every (path, content) pair to a temporary name, then renames them all;
/// on any failure removes the temporaries and throws OutputError. Creates parent folders.
void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace ppsim
