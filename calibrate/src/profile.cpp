#include "ppsim/calibrate/profile.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "ppsim/input/json_file.h"

namespace ppsim::cal {
namespace {

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Checker {
  std::string file;
  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw ProfileError(file + ": " + path + ": " + what);
  }
  const nlohmann::json& field(const nlohmann::json& obj, const std::string& path,
                              const std::string& key) const {
    if (!obj.is_object()) fail(path, "must be an object");
    if (!obj.contains(key)) fail(path.empty() ? key : path + "." + key, "missing");
    return obj.at(key);
  }
  double number(const nlohmann::json& obj, const std::string& path, const std::string& key) const {
    const auto& v = field(obj, path, key);
    const std::string p = path.empty() ? key : path + "." + key;
    if (!v.is_number()) fail(p, "must be a number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(p, "must be finite");
    if (d < 0) fail(p, "must not be negative (got " + std::to_string(d) + ")");
    return d;
  }
  std::string string(const nlohmann::json& obj, const std::string& path, const std::string& key) const {
    const auto& v = field(obj, path, key);
    if (!v.is_string()) fail(path.empty() ? key : path + "." + key, "must be a string");
    return v.get<std::string>();
  }
  void summary(const nlohmann::json& obj, const std::string& path, const std::string& key) const {
    const auto& s = field(obj, path, key);
    const std::string p = path + "." + key;
    for (const char* k : {"median", "p95", "stddev"}) number(s, p, k);
  }
};

}  // namespace

nlohmann::json method_to_json(const Method& m, const std::string& clock) {
  return {{"warmup", m.warmup},         {"min_iterations", m.min_iterations},
          {"max_iterations", m.max_iterations}, {"target_ms", m.target_ms},
          {"rotating_buffers", m.rotate}, {"statistic", "median"},
          {"spread", "p95 and sample stddev"}, {"clock", clock}};
}

nlohmann::json new_profile(const Backend& backend, const Method& method) {
  const DeviceInfo d = backend.device_info();
  return new_profile(backend.name(), backend.dtype(), d, method_to_json(method, d.clock));
}

nlohmann::json new_profile(const std::string& backend, Dtype dtype, const DeviceInfo& d, const nlohmann::json& method) {
  return {{"schema", kProfileSchema},
          {"tool", {{"name", "ppsim-calibrate"}, {"version", PPSIM_VERSION}}},
          {"created", utc_now()},
          {"backend", backend},
          {"dtype", dtype_name(dtype)},
          {"device", {{"name", d.name}, {"memory_bytes", d.memory_bytes}, {"count", d.count},
                      {"driver", d.driver}, {"runtime", d.runtime}, {"blas", d.blas},
                      {"compute_capability", d.compute_capability}}},
          {"method", method},
          {"layers", nlohmann::json::array()},
          {"links", nlohmann::json::array()}};
}

void upsert_layer(nlohmann::json& profile, const nlohmann::json& layer) {
  auto& layers = profile["layers"];
  for (auto& l : layers)
    if (l.value("key", "") == layer.at("key").get<std::string>()) {
      l = layer;
      return;
    }
  layers.push_back(layer);
}

void upsert_link(nlohmann::json& profile, const nlohmann::json& link) {
  auto& links = profile["links"];
  for (auto& l : links)
    if (l.value("kind", "") == link.value("kind", "") && l.value("src", -1) == link.value("src", -1) &&
        l.value("dst", -1) == link.value("dst", -1)) {
      l = link;
      return;
    }
  links.push_back(link);
}

bool has_layer(const nlohmann::json& profile, const std::string& key) {
  if (!profile.contains("layers")) return false;
  for (const auto& l : profile.at("layers"))
    if (l.value("key", "") == key) return true;
  return false;
}

void write_json_atomic(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error(path + ": cannot open " + tmp + " for writing");
    out << j.dump(2) << '\n';
    out.flush();
    if (!out) throw std::runtime_error(path + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw std::runtime_error(path + ": rename failed: " + ec.message());
  }
}

void validate_profile(const nlohmann::json& p, const std::string& file) {
  const Checker c{file};
  if (!p.is_object()) c.fail("$", "a profile must be a JSON object");
  const std::string schema = c.string(p, "", "schema");
  if (schema != kProfileSchema)
    c.fail("schema", "unsupported '" + schema + "' (this build reads " + kProfileSchema + ")");
  c.string(p, "", "backend");
  c.string(p, "", "dtype");
  c.string(c.field(p, "", "device"), "device", "name");
  c.field(p, "", "method");
  const auto& layers = c.field(p, "", "layers");
  if (!layers.is_array()) c.fail("layers", "must be an array");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    const std::string path = "layers[" + std::to_string(i) + "]";
    c.string(l, path, "key");
    const std::string kind = c.string(l, path, "kind");
    try {
      parse_layer_kind(kind);
    } catch (const std::invalid_argument& e) {
      c.fail(path + ".kind", e.what());
    }
    const auto& shape = c.field(l, path, "shape");
    for (const char* k : {"hidden", "seq_length", "micro_batch"}) c.number(shape, path + ".shape", k);
    if (kind == "transformer_block") {
      c.number(shape, path + ".shape", "heads");
      c.number(shape, path + ".shape", "ffn_hidden");
    } else {
      c.number(shape, path + ".shape", "vocab");
    }
    c.string(shape, path + ".shape", "dtype");
    if (shape.contains("tensor_parallel")) {  // absent: 1, the whole layer
      const auto& t = shape.at("tensor_parallel");
      if (!t.is_number_integer() || t.get<std::int64_t>() < 1)
        c.fail(path + ".shape.tensor_parallel", "must be a positive integer");
    }
    for (const char* k : {"forward_ms", "backward_input_ms", "backward_weight_ms"}) c.summary(l, path, k);
    for (const char* k : {"activation_bytes", "output_bytes", "parameter_bytes"}) c.number(l, path, k);
  }
  if (p.contains("links")) {
    const auto& links = p.at("links");
    if (!links.is_array()) c.fail("links", "must be an array");
    for (std::size_t i = 0; i < links.size(); ++i) {
      const std::string path = "links[" + std::to_string(i) + "]";
      c.string(links[i], path, "kind");
      const auto& fit = c.field(links[i], path, "fit");
      c.number(fit, path + ".fit", "latency_us");
      c.number(fit, path + ".fit", "bandwidth_GBps");
      if (fit.contains("segments")) {
        try {
          link_segments_from_json(fit.at("segments"), path + ".fit.segments");
        } catch (const std::invalid_argument& e) {
          throw ProfileError(file + ": " + e.what());
        }
      }
      const auto& pts = c.field(links[i], path, "points");
      if (!pts.is_array()) c.fail(path + ".points", "must be an array");
      for (std::size_t k = 0; k < pts.size(); ++k) {
        const std::string pp = path + ".points[" + std::to_string(k) + "]";
        c.number(pts[k], pp, "bytes");
        c.number(pts[k], pp, "median_ms");
      }
    }
  }
}

std::vector<LinkSegment> link_segments_from_json(const nlohmann::json& segments, const std::string& path) {
  if (!segments.is_array() || segments.empty()) throw std::invalid_argument(path + ": must be a non-empty array");
  if (segments.size() > 4096) throw std::invalid_argument(path + ": more than 4096 segments");
  std::vector<LinkSegment> out;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string sp = path + "[" + std::to_string(i) + "]";
    const auto& s = segments[i];
    if (!s.is_object()) throw std::invalid_argument(sp + ": must be an object");
    auto number = [&](const char* key, double lo, double hi) {
      if (!s.contains(key) || !s.at(key).is_number())
        throw std::invalid_argument(sp + "." + key + ": missing or not a number");
      const double v = s.at(key).get<double>();
      if (!std::isfinite(v) || v < lo || v > hi)
        throw std::invalid_argument(sp + "." + key + ": must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      return v;
    };
    LinkSegment seg;
    seg.from_bytes = static_cast<std::int64_t>(number("from_bytes", 0, 1e15));
    seg.latency_us = number("latency_us", -1e6, 1e6);
    seg.bandwidth_GBps = number("bandwidth_GBps", 0, 1e6);
    if (seg.bandwidth_GBps > 0 && seg.bandwidth_GBps < 1e-3)
      throw std::invalid_argument(sp + ".bandwidth_GBps: must be 0 (a flat range) or at least 0.001 GB/s");
    if (!out.empty() && seg.from_bytes <= out.back().from_bytes)
      throw std::invalid_argument(sp + ".from_bytes: must be larger than the previous segment's");
    if (link_curve_ms({seg}, std::max<std::int64_t>(seg.from_bytes, 1)) <= 0)
      throw std::invalid_argument(sp + ": the time at from_bytes must be positive");
    out.push_back(seg);
  }
  return out;
}

nlohmann::json load_profile(const std::string& path) {
  nlohmann::json j;
  try {
    j = read_json_input(path);
  } catch (const InputFileError& e) {
    throw ProfileError(e.what());
  }
  validate_profile(j, path);
  return j;
}

}  // namespace ppsim::cal
