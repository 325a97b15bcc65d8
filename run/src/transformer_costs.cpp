// Transformer models costed from a ppsim-calibrate profile or a device roofline.
// Config form (all under "model" except "costs"):
//   "model": { "preset": "configs/models/gpt3-1.3b.json" | "num_layers", "hidden",
//              "heads", "ffn_hidden", "vocab"; "sequence_length", "micro_batch_size",
//              "dtype": "bf16" },
//   "costs": { "profile": "configs/profiles/h200.json", "link": "peer" }
//         or { "device": "configs/devices/h100-sxm.json" }
// Each names a file (a path, or a bare name under configs/models|profiles|devices/) found
// by find_data_file (ppsim/data_files.h).
#include "transformer_costs.h"
#include "ppsim/run/transformer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "ppsim/run/json_reader.h"
#include "ppsim/run/data_files.h"

#ifdef PPSIM_HAVE_PROFILES
#include "ppsim/calibrate/costs.h"
#include "ppsim/calibrate/profile.h"
#endif

namespace ppsim::detail {

using nlohmann::json;

#ifdef PPSIM_HAVE_PROFILES
namespace {

// A preset, profile or device file the config names: a path or a bare name under
// configs/KIND/ (find_data_file); a file not found is a config error saying where it looked.
std::string resolve(const JsonReader& r, const json& obj, const char* key, const std::string& obj_path,
                    const std::string& kind) {
  const std::string name = r.string(obj, key, obj_path, std::nullopt);
  const DataFileLookup lookup = find_data_file(name, kind, r.file());
  if (lookup.found.empty())
    r.fail(obj_path + "." + key, "no file '" + name + "' (looked for " + lookup.tried_list() + ")");
  return lookup.found.string();
}

/// Megatron-LM's tensor-parallel collectives of one layer, each on b s h elements
/// (Shoeybi et al. 2019, Fig. 3; Korthikanti et al. 2022, Fig. 5 with sequence parallelism):
///   block: two all-reduces in F (after the attention projection and after fc2) and two
///     in B (the conjugates before QKV and fc1); with SP each becomes an all-gather and a
///     reduce-scatter pair (g and g-bar);
///   embedding (vocabulary-parallel): an all-reduce in F; with SP a reduce-scatter in F and
///     its conjugate all-gather in B;
///   head: the copy to the tensor-parallel region is an all-reduce in B; with SP an
///     all-gather in F and a reduce-scatter in B. The cross-entropy's reductions over b s
///     values are left out (b s elements against b s h).
json tensor_parallel_collectives(const std::string& layer, const cal::TransformerSpec& t) {
  const std::int64_t bytes = t.seq * t.micro_batch * t.hidden * cal::dtype_bytes(t.dtype);
  const bool sp = t.sequence_parallel;
  json f = json::object(), b = json::object();
  if (layer == "block") {
    if (sp) f = b = {{"all_gather", 2}, {"reduce_scatter", 2}};
    else f = b = {{"all_reduce", 2}};
  } else if (layer == "embedding") {
    if (sp) f = {{"reduce_scatter", 1}}, b = {{"all_gather", 1}};
    else f = {{"all_reduce", 1}};
  } else if (layer == "head") {
    if (sp) f = {{"all_gather", 1}}, b = {{"reduce_scatter", 1}};
    else b = {{"all_reduce", 1}};
  }
  return {{"bytes", bytes}, {"forward", f}, {"backward", b}};
}

json read_json(const JsonReader& r, const std::string& path, const std::string& json_path) {
  try {
    return read_json_file(path);
  } catch (const ConfigError& e) {
    r.fail(json_path, e.what());  // names the referencing config and key, then the file's problem
  }
}

}  // namespace

// The transformer's shape (model keys over its preset, the tensor-parallel shard): the
// one reading of it, for the costs below and for transformer_spec (ppsim/run/transformer.h).
cal::TransformerSpec parse_transformer_spec(const JsonReader& r, const json& doc, const json& model) {
  cal::TransformerSpec t;
  json shape = json::object();
  if (model.contains("preset")) {
    const std::string preset = resolve(r, model, "preset", "model", "models");
    shape = read_json(r, preset, "model.preset");
    if (shape.contains("model")) shape = shape.at("model");
    if (shape.contains("layers")) shape["num_layers"] = shape.at("layers");
    if (shape.contains("seq_length")) shape["sequence_length"] = shape.at("seq_length");
  }
  // Shape bounds (calibrate/model.h): every byte count and FLOP figure the formulas
  // derive from them stays inside int64.
  auto pick = [&](const char* key, std::optional<std::int64_t> fallback, std::int64_t min, std::int64_t max) {
    if (model.contains(key)) return r.integer(model, key, "model", fallback, min, max);
    if (shape.contains(key)) return r.integer(shape, key, "model.preset", fallback, min, max);
    if (!fallback) r.fail(std::string("model.") + key, "missing (required for a transformer costed from \"costs\")");
    return *fallback;
  };
  (void)r.string(model, "name", "model", "");
  (void)r.string(doc, "description", "", "");
  t.layers = static_cast<int>(pick("num_layers", std::nullopt, 1, std::min(kMaxLayers, cal::kMaxModelLayers)));
  t.hidden = pick("hidden", std::nullopt, 1, cal::kMaxHidden);
  t.heads = pick("heads", std::nullopt, 1, cal::kMaxHeads);
  t.ffn_hidden = pick("ffn_hidden", 4 * t.hidden, 1, 4 * cal::kMaxHidden);
  t.vocab = pick("vocab", 0, 0, cal::kMaxVocab);
  t.seq = pick("sequence_length", std::nullopt, 1, cal::kMaxSeq);
  t.micro_batch = pick("micro_batch_size", 1, 1, cal::kMaxMicroBatch);
  {  // the block's architecture: model.block over the preset's `block` (default gpt)
    const bool own = model.contains("block");
    const std::string arch = own ? r.string(model, "block", "model", "gpt")
                                 : (shape.contains("block") ? r.string(shape, "block", "model.preset", "gpt") : "gpt");
    try {
      t.arch = cal::parse_block_arch(arch);
    } catch (const std::invalid_argument& e) {
      r.fail(own ? "model.block" : "model.preset.block", e.what());
    }
  }
  if (model.contains("kernels")) {  // which kernels the block runs: plain (default) or fused
    try {
      t.kernels = cal::parse_kernels(r.string(model, "kernels", "model", "plain"));
    } catch (const std::invalid_argument& e) {
      r.fail("model.kernels", e.what());
    }
  }
  if (t.arch == cal::BlockArch::llama) t.kv_heads = pick("kv_heads", t.heads, 1, cal::kMaxHeads);
  else if (model.contains("kv_heads")) r.fail("model.kv_heads", "only for a \"llama\" block (grouped-query attention)");
  if (t.kv_heads > 0 && t.heads % t.kv_heads != 0) r.fail("model.kv_heads", "heads must be a multiple of kv_heads");
  try {
    t.dtype = cal::parse_dtype(r.string(model, "dtype", "model", "bf16"));
  } catch (const std::invalid_argument& e) {
    r.fail("model.dtype", e.what());
  }
  if (t.hidden % t.heads != 0) r.fail("model.heads", "hidden must be a multiple of heads");
  if (doc.contains("parallel") && doc.at("parallel").is_object()) {  // parse_parallel checks the section
    const json& par = doc.at("parallel");
    if (par.contains("tensor_parallel")) t.tp = r.integer(par, "tensor_parallel", "parallel", 1, 1, 1024);
    if (par.contains("sequence_parallel") && par.at("sequence_parallel").is_boolean())
      t.sequence_parallel = par.at("sequence_parallel").get<bool>() && t.tp > 1;
  }
  try {
    cal::shape_of(cal::LayerKind::block, t).validate();  // heads, ffn, hidden (and seq with SP) divide by t
  } catch (const std::invalid_argument& e) {
    r.fail("parallel.tensor_parallel", e.what());
  }

  return t;
}

json expand_transformer_costs(const json& doc, const std::string& file) {
  if (!doc.is_object() || !doc.contains("costs")) return doc;
  JsonReader r(file);
  const json& costs = r.object(doc, "costs", "");
  r.check_keys(costs, "costs", {"profile", "device", "link"});
  const json& model = r.object(doc, "model", "");
  r.check_keys(model, "model", {"name", "preset", "num_layers", "hidden", "heads", "ffn_hidden", "vocab",
                                "sequence_length", "micro_batch_size", "dtype", "block", "kv_heads", "kernels"});
  if (model.contains("layers")) r.fail("model.layers", "cannot be given together with costs (layers come from costs)");

  const cal::TransformerSpec t = parse_transformer_spec(r, doc, model);
  std::vector<cal::LayerCosts> layers;
  std::string label;
  json out = doc;
  if (costs.contains("profile") == costs.contains("device"))
    r.fail("costs", "give exactly one of \"profile\" (measured) or \"device\" (roofline estimate)");
  if (costs.contains("profile")) {
    const std::string path = resolve(r, costs, "profile", "costs", "profiles");
    json profile;
    try {
      profile = cal::load_profile(path);
      layers = cal::costs_from_profile(profile, t, path);
    } catch (const std::exception& e) {  // ProfileError / MissingShapeError: already name file and path
      r.fail("costs.profile", e.what());
    }
    label = "measured profile " + path + " (" + profile.at("device").at("name").get<std::string>() + ")";
    if (costs.contains("link")) {
      const std::string kind = r.string(costs, "link", "costs", std::nullopt);
      bool found = false;
      for (const auto& l : profile.value("links", json::array()))
        if (l.at("kind") == kind) {
          out["cluster"]["link"] = {{"latency_us", l.at("fit").at("latency_us")},
                                    {"bandwidth_GBps", l.at("fit").at("bandwidth_GBps")}};
          if (l.at("fit").contains("segments")) out["cluster"]["link"]["segments"] = l.at("fit").at("segments");
          found = true;
          break;
        }
      if (!found) r.fail("costs.link", "profile " + path + " has no link curve of kind '" + kind + "'");
    }
  } else {
    const std::string path = resolve(r, costs, "device", "costs", "devices");
    try {
      const cal::DeviceSpec dev = cal::device_from_json(read_json(r, path, "costs.device"), path);
      layers = cal::costs_from_roofline(dev, t);
      label = "roofline ESTIMATE from " + path + " (" + dev.name + "), not measured";
      if (!out["cluster"].contains("device_peak_tflops"))
        out["cluster"]["device_peak_tflops"] = dev.peak_tflops.at(cal::dtype_name(t.dtype));
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      r.fail("costs.device", e.what());
    }
    if (costs.contains("link")) r.fail("costs.link", "only with a profile");
  }
  const bool estimate = costs.contains("device");
  json groups = json::array();
  for (const auto& l : layers) {
    json g = {{"name", estimate ? l.name + " (estimate)" : l.name},
              {"repeat", 1},
              {"forward_ms", l.forward_ms},
              {"backward_ms", l.backward_ms},
              {"weight_grad_ms", l.weight_grad_ms},
              {"activation_bytes", l.activation_bytes},
              {"parameter_bytes", l.parameter_bytes},
              {"output_bytes", l.output_bytes},
              {"flops", l.flops}};
    if (l.name == "block") {
      // Selective recompute (Korthikanti et al. 2022) drops the attention scores,
      // softmax and dropout, a s^2 b (2e + 1) / t bytes, and redoes the attention core's
      // QK^T and PV in backward: that share of the block's forward FLOPs.
      const cal::LayerShape block = cal::shape_of(cal::LayerKind::block, t);
      g["selective_recompute_bytes"] = std::min<std::int64_t>(l.activation_bytes, cal::korthikanti_attention_bytes(block));
      g["selective_recompute_ms"] = l.forward_ms * cal::attention_core_flops(block) / cal::layer_flops(block).forward;
    }
    if (t.tp > 1) g["tensor_parallel_comm"] = tensor_parallel_collectives(l.name, t);
    if (!groups.empty() && groups.back()["name"] == g["name"] && groups.back()["forward_ms"] == g["forward_ms"]) {
      groups.back()["repeat"] = groups.back()["repeat"].get<int>() + 1;  // keep the expanded form small
    } else {
      groups.push_back(g);
    }
  }
  json m = {{"layers", groups}, {"micro_batch_size", t.micro_batch}, {"sequence_length", t.seq}};
  m["name"] = model.value("name", std::string("transformer")) + " [costs: " + label + "]";
  out["model"] = m;
  out.erase("costs");
  out["description"] = doc.value("description", std::string()) + (doc.contains("description") ? " " : "") +
                       "[costs: " + label + "]";
  return out;
}

#else

json expand_transformer_costs(const json& doc, const std::string& file) {
  if (doc.is_object() && doc.contains("costs"))
    JsonReader(file).fail("costs", "this build of ppsim has no profile support (calibrate/ not built)");
  return doc;
}

#endif

}  // namespace ppsim::detail

#ifdef PPSIM_HAVE_PROFILES
namespace ppsim {

std::optional<cal::TransformerSpec> transformer_spec(const Config& config) {
  if (config.costed.is_null()) return std::nullopt;
  const detail::JsonReader r(config.file);
  return detail::parse_transformer_spec(r, config.costed, r.object(config.costed, "model", ""));
}

}  // namespace ppsim
#endif
