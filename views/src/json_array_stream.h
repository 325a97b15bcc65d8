#pragma once
/// @file json_array_stream.h
/// @brief A JSON array written element by element, byte for byte as nlohmann's compact
/// dump() of the whole array would be, so a view streams instead of holding every event.
#include <ostream>

#include <nlohmann/json.hpp>

namespace ppsim {

class JsonArrayStream {
 public:
  explicit JsonArrayStream(std::ostream& out) : out_(out) { out_ << '['; }
  JsonArrayStream(const JsonArrayStream&) = delete;
  JsonArrayStream& operator=(const JsonArrayStream&) = delete;
  /// @brief Appends one element.
  void push_back(const nlohmann::json& element) {
    if (!first_) out_ << ',';
    first_ = false;
    out_ << element.dump();
  }
  /// @brief Writes the closing bracket.
  void close() { out_ << ']'; }

 private:
  std::ostream& out_;
  bool first_{true};
};

/// @brief Writes `"key":` as nlohmann's dump() writes an object key.
inline void write_json_key(std::ostream& out, const char* key) { out << nlohmann::json(key).dump() << ':'; }

}  // namespace ppsim
