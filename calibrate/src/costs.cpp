#include "ppsim/calibrate/costs.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ppsim::cal {

LayerShape shape_of(LayerKind kind, const TransformerSpec& m) {
  LayerShape s;
  s.kind = kind;
  s.hidden = m.hidden;
  s.heads = m.heads;
  s.seq = m.seq;
  s.micro_batch = m.micro_batch;
  s.ffn_hidden = m.ffn_hidden > 0 ? m.ffn_hidden : 4 * m.hidden;
  s.vocab = kind == LayerKind::block ? 0 : m.vocab;
  s.dtype = m.dtype;
  s.tp = m.tp;
  s.sequence_parallel = m.sequence_parallel;
  s.arch = m.arch;
  s.kv_heads = m.kv_heads;
  s.kernels = m.kernels;
  return s;
}

namespace {

bool same_family(const nlohmann::json& l, const LayerShape& s) {
  if (l.at("kind").get<std::string>() != layer_kind_name(s.kind)) return false;
  const auto& sh = l.at("shape");
  if (sh.at("hidden").get<std::int64_t>() != s.hidden || sh.at("seq_length").get<std::int64_t>() != s.seq ||
      sh.at("dtype").get<std::string>() != dtype_name(s.dtype) || sh.value("tensor_parallel", std::int64_t{1}) != s.tp ||
      sh.value("block", std::string("gpt")) != block_arch_name(s.arch))  // absent: a GPT layer
    return false;
  if (s.kind == LayerKind::block)
    return sh.value("kernels", std::string("plain")) == kernels_name(s.kernels) &&  // absent: plain
           sh.at("heads").get<std::int64_t>() == s.heads && sh.at("ffn_hidden").get<std::int64_t>() == s.ffn() &&
           (s.arch != BlockArch::llama || sh.value("kv_heads", s.heads) == (s.kv_heads > 0 ? s.kv_heads : s.heads));
  return sh.at("vocab").get<std::int64_t>() == s.vocab;
}

LayerCosts costs_of(const nlohmann::json& l) {
  LayerCosts c;
  const double b_in = l.at("backward_input_ms").at("median").get<double>();
  c.forward_ms = l.at("forward_ms").at("median").get<double>();
  c.weight_grad_ms = l.at("backward_weight_ms").at("median").get<double>();
  c.backward_ms = b_in + c.weight_grad_ms;
  c.activation_bytes = l.at("activation_bytes").get<std::int64_t>();
  c.output_bytes = l.at("output_bytes").get<std::int64_t>();
  c.parameter_bytes = l.at("parameter_bytes").get<std::int64_t>();
  if (l.contains("flops")) {
    const auto& f = l.at("flops");
    c.flops = f.value("forward", 0.0) + f.value("backward_input", 0.0) + f.value("backward_weight", 0.0);
  }
  return c;
}

LayerCosts lookup(const nlohmann::json& profile, const LayerShape& s, const std::string& label) {
  std::vector<std::pair<std::int64_t, const nlohmann::json*>> found;
  for (const auto& l : profile.at("layers"))
    if (same_family(l, s)) found.emplace_back(l.at("shape").at("micro_batch").get<std::int64_t>(), &l);
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  if (found.empty()) {
    std::ostringstream msg;
    msg << label << ": no measurement for " << s.family_key() << "; the profile has:";
    for (const auto& l : profile.at("layers")) msg << " [" << l.at("key").get<std::string>() << "]";
    throw MissingShapeError(msg.str());
  }
  LayerCosts c;
  for (std::size_t i = 0; i < found.size(); ++i) {
    if (found[i].first == s.micro_batch) {
      c = costs_of(*found[i].second);
      break;
    }
    if (i + 1 < found.size() && found[i].first < s.micro_batch && s.micro_batch < found[i + 1].first) {
      const LayerCosts lo = costs_of(*found[i].second), hi = costs_of(*found[i + 1].second);
      const double t = static_cast<double>(s.micro_batch - found[i].first) /
                       static_cast<double>(found[i + 1].first - found[i].first);
      auto lerp = [t](double a, double b) { return a + (b - a) * t; };
      auto lerpi = [&](std::int64_t a, std::int64_t b) {
        return static_cast<std::int64_t>(std::llround(lerp(static_cast<double>(a), static_cast<double>(b))));
      };
      c.forward_ms = lerp(lo.forward_ms, hi.forward_ms);
      c.backward_ms = lerp(lo.backward_ms, hi.backward_ms);
      c.weight_grad_ms = lerp(lo.weight_grad_ms, hi.weight_grad_ms);
      c.activation_bytes = lerpi(lo.activation_bytes, hi.activation_bytes);
      c.output_bytes = lerpi(lo.output_bytes, hi.output_bytes);
      c.parameter_bytes = lo.parameter_bytes;
      c.flops = lerp(lo.flops, hi.flops);
      break;
    }
    if (i + 1 == found.size()) {
      std::ostringstream msg;
      msg << label << ": micro-batch " << s.micro_batch << " of " << s.family_key()
          << " is outside the measured range [" << found.front().first << ", " << found.back().first
          << "]: calibrate that size";
      throw MissingShapeError(msg.str());
    }
  }
  c.name = s.kind == LayerKind::block ? "block" : layer_kind_name(s.kind);
  c.source = label;
  if (s.sequence_parallel) {
    // The harness measures the tensor-parallel shard without sequence parallelism (its
    // compute is the same but for the elementwise ops on s/t rows); what sequence
    // parallelism changes is the saved and sent bytes, which are exact by formula (the
    // harness saves expected_activation_bytes by construction, checked by `check`).
    c.activation_bytes = expected_activation_bytes(s);
    c.output_bytes = output_bytes(s);
  }
  return c;
}

}  // namespace

std::vector<LayerCosts> costs_from_profile(const nlohmann::json& profile, const TransformerSpec& m,
                                           const std::string& label) {
  if (m.layers <= 0) throw std::invalid_argument("model.num_layers must be positive");
  std::vector<LayerCosts> out;
  if (m.vocab > 0) out.push_back(lookup(profile, shape_of(LayerKind::embedding, m), label));
  const LayerCosts block = lookup(profile, shape_of(LayerKind::block, m), label);
  for (int i = 0; i < m.layers; ++i) out.push_back(block);
  if (m.vocab > 0) out.push_back(lookup(profile, shape_of(LayerKind::head, m), label));
  return out;
}

DeviceSpec device_from_json(const nlohmann::json& j, const std::string& where) {
  DeviceSpec d;
  auto num = [&](const nlohmann::json& o, const std::string& path, const char* key) {
    if (!o.contains(key)) throw std::invalid_argument(where + ": " + path + key + ": missing");
    const auto& v = o.at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0)
      throw std::invalid_argument(where + ": " + path + key + ": must be a positive number");
    return v.get<double>();
  };
  if (!j.is_object()) throw std::invalid_argument(where + ": a device spec must be a JSON object");
  if (j.contains("name") && !j.at("name").is_string()) throw std::invalid_argument(where + ": name: must be a string");
  d.name = j.value("name", std::string{"device"});
  if (!j.contains("peak_dense_tflops") || !j.at("peak_dense_tflops").is_object())
    throw std::invalid_argument(where + ": peak_dense_tflops: missing or not an object");
  for (const auto& [k, v] : j.at("peak_dense_tflops").items())
    d.peak_tflops[k] = num(j.at("peak_dense_tflops"), "peak_dense_tflops.", k.c_str());
  d.memory_GBps = num(j, "", "memory_bandwidth_GBps");
  d.memory_bytes = num(j, "", "memory_bytes");
  d.nvlink_GBps = j.contains("nvlink_GBps") ? num(j, "", "nvlink_GBps") : 0.0;
  d.network_GBps = j.contains("network_GBps") ? num(j, "", "network_GBps") : 0.0;
  d.gemm_efficiency = j.contains("gemm_efficiency") ? num(j, "", "gemm_efficiency") : 1.0;
  if (d.gemm_efficiency > 1.0) throw std::invalid_argument(where + ": gemm_efficiency: must be in (0, 1]");
  return d;
}

std::vector<LayerCosts> costs_from_roofline(const DeviceSpec& dev, const TransformerSpec& m) {
  const std::string dt = dtype_name(m.dtype);
  auto it = dev.peak_tflops.find(dt);
  if (it == dev.peak_tflops.end())
    throw std::invalid_argument(dev.name + ": no peak_dense_tflops." + dt + " for the model's dtype");
  const double peak = it->second * 1e12 * dev.gemm_efficiency;
  const double bw = dev.memory_GBps * 1e9;
  auto one = [&](LayerKind kind) {
    const LayerShape s = shape_of(kind, m);
    const Flops f = layer_flops(s);
    const double bytes = static_cast<double>(parameter_bytes(s) + expected_activation_bytes(s) +
                                             output_bytes(s));
    auto t = [&](double flops) { return std::max(flops / peak, bytes / bw) * 1e3; };
    LayerCosts c;
    c.name = kind == LayerKind::block ? "block" : layer_kind_name(kind);
    c.forward_ms = t(f.forward);
    c.weight_grad_ms = t(f.backward_weight);
    c.backward_ms = t(f.backward_input) + c.weight_grad_ms;
    c.activation_bytes = expected_activation_bytes(s);
    c.output_bytes = output_bytes(s);
    c.parameter_bytes = parameter_bytes(s);
    c.flops = f.forward + f.backward_input + f.backward_weight;
    c.source = "roofline estimate: " + dev.name;
    return c;
  };
  std::vector<LayerCosts> out;
  if (m.vocab > 0) out.push_back(one(LayerKind::embedding));
  for (int i = 0; i < m.layers; ++i) out.push_back(one(LayerKind::block));
  if (m.vocab > 0) out.push_back(one(LayerKind::head));
  return out;
}

double link_time_ms(const nlohmann::json& profile, const std::string& kind, std::int64_t bytes) {
  for (const auto& l : profile.value("links", nlohmann::json::array()))
    if (l.at("kind").get<std::string>() == kind) {
      const auto& fit = l.at("fit");
      const double bw = fit.at("bandwidth_GBps").get<double>();
      return fit.at("latency_us").get<double>() * 1e-3 +
             (bw > 0 ? static_cast<double>(bytes) / (bw * 1e9) * 1e3 : 0.0);
    }
  throw MissingShapeError("profile has no link curve of kind '" + kind + "'");
}

}  // namespace ppsim::cal
