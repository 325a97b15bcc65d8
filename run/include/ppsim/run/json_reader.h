#pragma once
// Internal: typed access to JSON with path tracking, for one-line errors that name the
// file and the JSON path. Unknown keys are errors so that a typo never passes silently.
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "ppsim/run/config.h"

namespace ppsim::detail {

class JsonReader {
 public:
  explicit JsonReader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& problem) const {
    throw ConfigError(file_, path, problem);
  }
  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  static std::string brief(const nlohmann::json& v) {
    std::string s = v.dump();
    return s.size() > 40 ? s.substr(0, 37) + "..." : s;
  }

  const nlohmann::json& object(const nlohmann::json& parent, const std::string& key, const std::string& path) const {
    const std::string p = join(path, key);
    if (!parent.contains(key)) fail(p, "missing (required object)");
    const auto& v = parent.at(key);
    if (!v.is_object()) fail(p, "must be an object (got " + brief(v) + ")");
    return v;
  }

  void check_keys(const nlohmann::json& obj, const std::string& path, std::initializer_list<const char*> allowed) const {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      bool ok = false;
      for (const char* a : allowed) ok = ok || it.key() == a;
      if (!ok) {
        std::string list;
        for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        fail(join(path, it.key()), "unknown key (allowed here: " + list + ")");
      }
    }
  }

  /// Finite number >= min (strictly > min when `strict`) and <= max.
  double number(const nlohmann::json& obj, const std::string& key, const std::string& path,
                std::optional<double> fallback, double min = 0.0, bool strict = false,
                double max = std::numeric_limits<double>::max()) const {
    const std::string p = join(path, key);
    if (!obj.contains(key)) {
      if (!fallback) fail(p, "missing (required number)");
      return *fallback;
    }
    const auto& v = obj.at(key);
    if (!v.is_number()) fail(p, "must be a number (got " + brief(v) + ")");
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(p, "must be finite");
    if (strict ? !(x > min) : !(x >= min))
      fail(p, std::string("must be ") + (strict ? "> " : ">= ") + trim(min) + " (got " + brief(v) + ")");
    if (x > max) fail(p, "must be at most " + trim(max) + " (got " + brief(v) + ")");
    return x;
  }

  /// A layer's time in ms, in [0, kMaxLayerMs] (config.h: keeps every derived time in int64 ns).
  double time_ms(const nlohmann::json& obj, const std::string& key, const std::string& path,
                 std::optional<double> fallback) const {
    return number(obj, key, path, fallback, 0.0, false, kMaxLayerMs);
  }
  /// A link latency in us, in [0, kMaxLatencyUs].
  double latency_us(const nlohmann::json& obj, const std::string& key, const std::string& path,
                    std::optional<double> fallback) const {
    return number(obj, key, path, fallback, 0.0, false, kMaxLatencyUs);
  }
  /// A link bandwidth in GB/s: 0 (free, only where `zero_is_free`) or in
  /// [kMinBandwidthGBps, kMaxBandwidthGBps].
  double bandwidth_GBps(const nlohmann::json& obj, const std::string& key, const std::string& path,
                        std::optional<double> fallback, bool zero_is_free) const {
    const double x = number(obj, key, path, fallback, 0.0, !zero_is_free, kMaxBandwidthGBps);
    if (x > 0 && x < kMinBandwidthGBps)
      fail(join(path, key), "must be at least " + trim(kMinBandwidthGBps) + " GB/s (got " + trim(x) + ")");
    return x;
  }
  /// A memory size in GiB, in (0, kMaxGiB].
  double gib(const nlohmann::json& obj, const std::string& key, const std::string& path) const {
    return number(obj, key, path, 0.0, 0.0, true, kMaxGiB);
  }

  /// Integer in [min, max].
  std::int64_t integer(const nlohmann::json& obj, const std::string& key, const std::string& path,
                       std::optional<std::int64_t> fallback, std::int64_t min, std::int64_t max) const {
    const std::string p = join(path, key);
    if (!obj.contains(key)) {
      if (!fallback) fail(p, "missing (required integer)");
      return *fallback;
    }
    const auto& v = obj.at(key);
    if (!v.is_number_integer()) {
      if (v.is_number_float()) {
        const double x = v.get<double>();
        if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 9e15) return check_range(p, static_cast<std::int64_t>(x), min, max);
      }
      fail(p, "must be an integer (got " + brief(v) + ")");
    }
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max))
      fail(p, "must be at most " + std::to_string(max) + " (got " + brief(v) + ")");
    return check_range(p, v.get<std::int64_t>(), min, max);
  }

  std::string string(const nlohmann::json& obj, const std::string& key, const std::string& path,
                     std::optional<std::string> fallback) const {
    const std::string p = join(path, key);
    if (!obj.contains(key)) {
      if (!fallback) fail(p, "missing (required string)");
      return *fallback;
    }
    const auto& v = obj.at(key);
    if (!v.is_string()) fail(p, "must be a string (got " + brief(v) + ")");
    return v.get<std::string>();
  }

  const std::string& file() const { return file_; }

 private:
  static std::string trim(double x) {
    std::string s = std::to_string(x);
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  std::int64_t check_range(const std::string& p, std::int64_t x, std::int64_t min, std::int64_t max) const {
    if (x < min) fail(p, "must be at least " + std::to_string(min) + " (got " + std::to_string(x) + ")");
    if (x > max) fail(p, "must be at most " + std::to_string(max) + " (got " + std::to_string(x) + ")");
    return x;
  }
  std::string file_;
};

}  // namespace ppsim::detail
