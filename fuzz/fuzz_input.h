#pragma once
// Shared by the fuzz targets: the readers take a file path (that is how ppsim reads its
// inputs, depth and size checks included), so each input is written to a private file
// first. A reader may refuse an input only with its documented error type; any other
// exception breaks the contract "one error line, exit 2" and aborts, so libFuzzer (or
// the replay driver) reports it.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

namespace ppsim_fuzz {

/// A file in /tmp private to this process, holding `size` bytes of `data`.
inline const std::string& input_file(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/ppsim-fuzz-" + std::to_string(::getpid()) + ".json";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) std::abort();
  return path;
}

/// Runs `read`; returns normally when it succeeds or throws one of `Allowed...`.
template <typename... Allowed, typename Read>
void expect_only(Read&& read) {
  try {
    read();
  } catch (const std::exception& e) {
    const bool allowed = ((dynamic_cast<const Allowed*>(&e) != nullptr) || ...);
    if (allowed) return;
    std::fprintf(stderr, "ppsim fuzz: undocumented exception: %s\n", e.what());
    std::abort();
  }
}

}  // namespace ppsim_fuzz
