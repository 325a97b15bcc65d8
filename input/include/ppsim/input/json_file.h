#pragma once
/// @file json_file.h
/// @brief The one reader of input files: every JSON document ppsim and ppsim-calibrate
/// read goes through read_json_input, so every reader has the same limits (docs/formats.md,
/// "Input limits").
#include <cstddef>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace ppsim {

/// @brief Largest input file read, in bytes (256 MiB).
inline constexpr std::size_t kMaxInputFileBytes = std::size_t{256} << 20;
/// @brief Deepest nesting of arrays and objects in a JSON input (the top level is 1).
inline constexpr int kMaxJsonDepth = 64;
/// @brief Longest JSON string (value or key) in an input, in bytes.
inline constexpr std::size_t kMaxJsonStringBytes = 65'536;

/// @brief An input file that cannot be read or parsed; what() is "FILE: problem".
class InputFileError : public std::runtime_error {
 public:
  InputFileError(std::string file, std::string problem)
      : std::runtime_error(file + ": " + problem), file_(std::move(file)), problem_(std::move(problem)) {}
  const std::string& file() const { return file_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string file_;
  std::string problem_;
};

/// @brief Checks, without opening it, that `path` is a regular file ppsim may read: a
/// directory, FIFO, socket or device (/dev/zero) is refused at once rather than read
/// (which could block forever or never end). Throws InputFileError.
void check_input_file(const std::string& path);

/// @brief The bytes of the regular file `path`, at most kMaxInputFileBytes. Opened
/// non-blocking after check_input_file, and checked again on the open descriptor.
std::string read_input_file(const std::string& path);

/// @brief Parses `text` (from `file`, for messages) with the limits above: nesting
/// deeper than kMaxJsonDepth or a string longer than kMaxJsonStringBytes is refused
/// while parsing, before it is built; numbers that overflow a double (1e999) are
/// refused as not finite. Throws InputFileError.
nlohmann::json parse_json_input(const std::string& text, const std::string& file);

/// @brief read_input_file then parse_json_input.
nlohmann::json read_json_input(const std::string& path);

}  // namespace ppsim
