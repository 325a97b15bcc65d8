#include "format.h"

#include <iomanip>
#include <sstream>

namespace ppsim::views {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  const bool negative = b < 0;
  if (negative) b = -b;
  while (b >= 1024.0 && u < 5) {
    b /= 1024.0;
    ++u;
  }
  std::ostringstream o;
  o << (negative ? "-" : "") << std::fixed << std::setprecision(u == 0 ? 0 : 2) << b << ' ' << units[u];
  return o.str();
}


}  // namespace ppsim::views
