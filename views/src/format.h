#pragma once
// Internal to views/: number formatting shared by the table and the sweep summary.
#include <string>

namespace ppsim::views {

/// @brief Bytes in binary units with two decimals ("11.25 GiB", "512 B", "-1.50 MiB").
std::string human_bytes(double bytes);

}  // namespace ppsim::views
