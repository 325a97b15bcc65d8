#pragma once
/// @file units.h
/// @brief Strong integer types for simulated time (nanoseconds) and memory (bytes).
#include <cmath>
#include <compare>
#include <cstdint>
#include <limits>
#include <stdexcept>

namespace ppsim {

/// @brief Simulated time in integer nanoseconds. Never a bare double: ties must break
/// identically on every machine.
struct TimeNs {
  std::int64_t ns{0};
  constexpr auto operator<=>(const TimeNs&) const = default;
  constexpr TimeNs operator+(TimeNs o) const { return {ns + o.ns}; }
  constexpr TimeNs operator-(TimeNs o) const { return {ns - o.ns}; }
  constexpr TimeNs& operator+=(TimeNs o) { ns += o.ns; return *this; }
  constexpr TimeNs& operator-=(TimeNs o) { ns -= o.ns; return *this; }
  /// @brief Milliseconds as a double, for reports only.
  [[nodiscard]] constexpr double ms() const { return static_cast<double>(ns) / 1e6; }
  /// @brief Rounds milliseconds to the nearest nanosecond. Caller validates finiteness.
  static TimeNs from_ms(double ms) { return {static_cast<std::int64_t>(std::llround(ms * 1e6))}; }
  static constexpr TimeNs max() { return {std::numeric_limits<std::int64_t>::max()}; }
};

/// @brief Memory in bytes.
struct Bytes {
  std::int64_t value{0};
  constexpr auto operator<=>(const Bytes&) const = default;
  constexpr Bytes operator+(Bytes o) const { return {value + o.value}; }
  constexpr Bytes operator-(Bytes o) const { return {value - o.value}; }
  constexpr Bytes operator*(std::int64_t k) const { return {value * k}; }
  constexpr Bytes& operator+=(Bytes o) { value += o.value; return *this; }
  constexpr Bytes& operator-=(Bytes o) { value -= o.value; return *this; }
};

}  // namespace ppsim
