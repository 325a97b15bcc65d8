#include "ppsim/calibrate/model.h"

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace ppsim::cal {

int dtype_bytes(Dtype d) { return d == Dtype::fp32 ? 4 : 2; }

int env_int(const char* name, int lo, int hi, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || errno != 0 || n < lo || n > hi)
    throw std::invalid_argument(std::string(name) + "=" + v + ": not an integer from " + std::to_string(lo) + " to " +
                                std::to_string(hi));
  return static_cast<int>(n);
}

std::string env_choice(const char* name, const std::vector<std::string>& allowed) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return allowed.at(0);
  for (const std::string& a : allowed)
    if (a == v) return a;
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw std::invalid_argument(std::string(name) + "=" + v + ": expected one of " + list);
}

std::string dtype_name(Dtype d) {
  switch (d) {
    case Dtype::fp32: return "fp32";
    case Dtype::fp16: return "fp16";
    case Dtype::bf16: return "bf16";
  }
  return "?";
}

Dtype parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "float32") return Dtype::fp32;
  if (s == "fp16" || s == "float16") return Dtype::fp16;
  if (s == "bf16" || s == "bfloat16") return Dtype::bf16;
  throw std::invalid_argument("unknown dtype '" + s + "' (expected fp32, fp16 or bf16)");
}

std::string layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::block: return "transformer_block";
    case LayerKind::embedding: return "embedding";
    case LayerKind::head: return "head";
  }
  return "?";
}

LayerKind parse_layer_kind(const std::string& s) {
  if (s == "transformer_block" || s == "block") return LayerKind::block;
  if (s == "embedding") return LayerKind::embedding;
  if (s == "head") return LayerKind::head;
  throw std::invalid_argument("unknown layer kind '" + s + "'");
}

std::string block_arch_name(BlockArch a) { return a == BlockArch::llama ? "llama" : "gpt"; }

BlockArch parse_block_arch(const std::string& s) {
  if (s == "gpt") return BlockArch::gpt;
  if (s == "llama") return BlockArch::llama;
  throw std::invalid_argument("unknown block '" + s + "' (expected gpt or llama)");
}

std::string kernels_name(Kernels k) { return k == Kernels::fused ? "fused" : "plain"; }

Kernels parse_kernels(const std::string& s) {
  if (s == "plain") return Kernels::plain;
  if (s == "fused") return Kernels::fused;
  throw std::invalid_argument("unknown kernels '" + s + "' (expected plain or fused)");
}

std::string LayerShape::family_key() const {
  std::string k = layer_kind_name(kind) + " h=" + std::to_string(hidden) +
                  " s=" + std::to_string(seq) + " " + dtype_name(dtype);
  if (kind == LayerKind::block)
    k += " a=" + std::to_string(heads) + " ffn=" + std::to_string(ffn());
  else
    k += " v=" + std::to_string(vocab);
  if (arch == BlockArch::llama)  // gpt keeps the keys of older profiles
    k += " llama" + (kind == LayerKind::block ? " kv=" + std::to_string(kv_heads > 0 ? kv_heads : heads) : "");
  if (tp > 1) k += " t=" + std::to_string(tp);  // tp = 1 keeps the keys of older profiles
  if (kind == LayerKind::block && kernels == Kernels::fused) k += " fused";  // plain keeps the old keys
  return k;
}

std::string LayerShape::key() const { return family_key() + " b=" + std::to_string(micro_batch); }

void LayerShape::validate() const {
  auto pos = [](std::int64_t v, const char* name) {
    if (v <= 0) throw std::invalid_argument(std::string(name) + " must be positive");
  };
  pos(hidden, "hidden");
  pos(seq, "seq_length");
  pos(micro_batch, "micro_batch");
  pos(tp, "tensor_parallel");
  auto divides = [&](std::int64_t v, const char* name) {
    if (v % tp != 0)
      throw std::invalid_argument(std::string(name) + " (" + std::to_string(v) + ") must be a multiple of the tensor-parallel degree " +
                                  std::to_string(tp));
  };
  divides(hidden, "hidden");
  if (sequence_parallel) divides(seq, "seq_length");  // Megatron splits the sequence evenly
  if (kind == LayerKind::block) {
    pos(heads, "heads");
    if (hidden % heads != 0) throw std::invalid_argument("hidden must be a multiple of heads");
    if (ffn_hidden < 0) throw std::invalid_argument("ffn_hidden must not be negative");
    divides(heads, "heads");
    divides(ffn(), "ffn_hidden");
    if (arch == BlockArch::llama && kv_heads > 0) {
      if (heads % kv_heads != 0) throw std::invalid_argument("heads must be a multiple of kv_heads");
      divides(kv_heads, "kv_heads");  // Megatron-LM: query groups divide by the degree
    }
  } else {
    pos(vocab, "vocab");
  }
}

double attention_core_flops(const LayerShape& s) {
  if (s.kind != LayerKind::block) return 0;
  const double sq = static_cast<double>(s.seq), b = static_cast<double>(s.micro_batch);
  return 2 * 2 * b * sq * sq * static_cast<double>(s.attention_width());  // QK^T and PV
}

Flops layer_flops(const LayerShape& s) {
  const double T = static_cast<double>(s.tokens());
  const double h = static_cast<double>(s.hidden);
  const double w = static_cast<double>(s.attention_width());
  const double f = static_cast<double>(s.local_ffn());
  const double V = static_cast<double>(s.local_vocab());
  Flops r;
  switch (s.kind) {
    case LayerKind::block: {  // QKV (h -> 3h/t), projection (h/t -> h), fc1 (h -> f/t), fc2 (f/t -> h);
                              // llama: Q (h -> h/t), K and V (h -> kv/t each), gate, up and down
      const double kv = static_cast<double>(s.kv_width());
      const double linear = s.arch == BlockArch::llama
                                ? 2 * T * h * (w + 2 * kv) + 2 * T * w * h + 3 * 2 * T * h * f
                                : 2 * T * h * (3 * w) + 2 * T * w * h + 2 * 2 * T * h * f;
      const double attention = attention_core_flops(s);
      r.forward = linear + attention;
      r.backward_input = linear + 2 * attention;  // dgrad GEMMs; dP, dV, dQ, dK
      r.backward_weight = linear;
      break;
    }
    case LayerKind::embedding:
      break;  // gathers and scatters only
    case LayerKind::head:
      r.forward = 2 * T * h * V;
      r.backward_input = 2 * T * h * V;
      r.backward_weight = 2 * T * h * V;
      break;
  }
  return r;
}

std::int64_t parameter_bytes(const LayerShape& s) {
  const std::int64_t h = s.hidden, w = s.attention_width(), f = s.local_ffn(), e = dtype_bytes(s.dtype);
  switch (s.kind) {
    case LayerKind::block:  // QKV and fc1 split by columns (with their biases), proj and fc2 by rows
                            // (their biases whole), two layer norms whole; llama: Q, K, V, O,
                            // gate, up, down, no biases, two RMSNorm scales whole
      if (s.arch == BlockArch::llama) return e * ((w + 2 * s.kv_width()) * h + w * h + 3 * h * f + 2 * h);
      return e * (3 * w * h + 3 * w + w * h + h + h * f + f + f * h + h + 4 * h);
    case LayerKind::embedding:  // vocabulary-parallel token table, whole position table (llama:
                                // rotary positions, no table)
      return e * (s.local_vocab() * h + (s.arch == BlockArch::llama ? 0 : s.seq * h));
    case LayerKind::head:  // final layer norm (llama: RMSNorm, a scale only) + output matrix
                           // (untied copy, as on the last stage)
      return e * ((s.arch == BlockArch::llama ? 1 : 2) * h + s.local_vocab() * h);
  }
  return 0;
}

std::int64_t output_bytes(const LayerShape& s) {
  if (s.kind == LayerKind::head) return 0;
  const std::int64_t bytes = s.tokens() * s.hidden * dtype_bytes(s.dtype);
  return s.sequence_parallel ? bytes / s.tp : bytes;  // sequence parallel: each GPU sends its s/t rows
}

namespace {

/// Width per token of the tensors a GPU keeps whole unless sequence parallel (layer-norm
/// inputs, residuals): hidden, or hidden / t when the sequence is split.
std::int64_t unsplit_width(const LayerShape& s) { return s.sequence_parallel ? s.attention_width() : s.hidden; }

// The GPT block with fused kernels (fused.h). Whole unless sequence parallel: both
// layer-norm inputs, the QKV and fc1 inputs (4e sbh); no residual dropout masks
// (bias-dropout-add regenerates them from the hash). Split: Q, K, V and the attention
// output O, the projection's input (4e sbh/t); the GeLU input only (e sb ffn/t: the
// bias-GeLU GEMM saves its pre-activation, fc2's input is recomputed from it). The
// attention core keeps the fp32 log-sum-exp instead of anything s^2.
std::int64_t fused_gpt_activation_bytes(const LayerShape& s) {
  const std::int64_t e = dtype_bytes(s.dtype), sb = s.seq * s.micro_batch;
  const std::int64_t whole = 4 * e * sb * unsplit_width(s);
  const std::int64_t split = 4 * e * sb * s.attention_width() + e * sb * s.local_ffn();
  return whole + split + korthikanti_attention_bytes(s);
}

// The Llama block (layer_llama.cpp), plain or fused. Whole unless sequence parallel: both
// RMSNorm inputs and outputs (the QKV and the MLP inputs), 4e sbh. Split: Q (after
// rotary), K, V, the output projection's input (e sb (2h + 2kv) / t), the gate and up
// outputs and the down projection's input (3e sb ffn / t); no dropout masks. The
// attention core (korthikanti_attention_bytes): plain, the softmax output e a s^2 b / t
// (PV and both backward products read it); fused, the flash attention's fp32
// log-sum-exp, 4 a s b / t, and nothing s^2 (O is the output projection's input, already
// counted; RMSNorm, rotary and SwiGLU are one kernel each either way). Fused, e = 2,
// kv = h, t = 1 (Llama-2 7B): sbh(8 + 8) + 6 sb ffn + 4asb = sbh(16 + 6 ffn/h) + 4asb.
std::int64_t llama_activation_bytes(const LayerShape& s) {
  const std::int64_t e = dtype_bytes(s.dtype), sb = s.seq * s.micro_batch;
  const std::int64_t whole = 4 * e * sb * unsplit_width(s);
  const std::int64_t split = e * sb * (2 * s.attention_width() + 2 * s.kv_width()) + 3 * e * sb * s.local_ffn();
  return whole + split + korthikanti_attention_bytes(s);
}

}  // namespace

std::int64_t korthikanti_activation_bytes(const LayerShape& s) {
  if (s.kind != LayerKind::block) return 0;
  const std::int64_t e = dtype_bytes(s.dtype), sb = s.seq * s.micro_batch;
  if (s.arch == BlockArch::llama) return llama_activation_bytes(s);
  if (s.kernels == Kernels::fused) return fused_gpt_activation_bytes(s);
  // Split by tensor parallelism: Q, K, V and the projection input (4e sbh) and the MLP's
  // GeLU input and output (2e sb ffn, the paper's 16 sbh at ffn = 4h).
  const std::int64_t split = 4 * e * sb * s.attention_width() + 2 * e * sb * s.local_ffn();
  // Whole on every GPU unless sequence parallel: layer-norm inputs, QKV and fc1 inputs,
  // the two residual dropout masks.
  const std::int64_t whole = (4 * e + 2) * sb * unsplit_width(s);
  return whole + split + korthikanti_attention_bytes(s);
}

std::int64_t korthikanti_attention_bytes(const LayerShape& s) {
  if (s.kind != LayerKind::block) return 0;
  // Fused (flash attention, GPT and Llama): the fp32 log-sum-exp per query row, nothing s^2.
  if (s.kernels == Kernels::fused) return 4 * s.local_heads() * s.seq * s.micro_batch;
  // GPT: softmax output (e), dropout mask (1) and dropout output (e) per score; llama has
  // no attention dropout: the softmax output alone, which PV reads too.
  const std::int64_t per_score = s.arch == BlockArch::llama ? dtype_bytes(s.dtype) : 2 * dtype_bytes(s.dtype) + 1;
  return s.local_heads() * s.seq * s.seq * s.micro_batch * per_score;
}

std::int64_t expected_activation_bytes(const LayerShape& s) {
  const std::int64_t T = s.tokens(), h = s.hidden, e = dtype_bytes(s.dtype);
  const std::int64_t Tl = s.sequence_parallel ? T / s.tp : T;  // tokens of the whole-width tensors
  // Llama (layer_llama.cpp measures exactly this): the formula plus the fp32 statistics
  // an RMSNorm keeps (1/rms per token, 4 bytes; a layer norm keeps mean and 1/std, 8).
  const bool llama = s.arch == BlockArch::llama;
  switch (s.kind) {
    case LayerKind::block:
      return korthikanti_activation_bytes(s) + (llama ? 8 : 16) * Tl;
    case LayerKind::embedding:  // token ids (int32) and the dropout mask (llama: no dropout)
      return 4 * T + (llama ? 0 : Tl * h);
    case LayerKind::head:  // input, layer-norm output, probabilities over the vocabulary
                           // shard (cross-entropy overwrites the logits), layer-norm stats (fp32)
      return e * (2 * Tl * h + T * s.local_vocab()) + (llama ? 4 : 8) * Tl;
  }
  return 0;
}

ModelPreset model_from_json(const nlohmann::json& j, const std::string& where) {
  ModelPreset m;
  if (!j.is_object()) throw std::invalid_argument(where + ": must be an object");
  auto need = [&](const char* key, std::int64_t max) -> std::int64_t {
    if (!j.contains(key)) throw std::invalid_argument(where + "." + key + ": missing");
    const auto& v = j.at(key);
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) ||
        v.get<std::int64_t>() <= 0 || v.get<std::int64_t>() > max)
      throw std::invalid_argument(where + "." + key + ": must be an integer in 1.." + std::to_string(max));
    return v.get<std::int64_t>();
  };
  if (j.contains("name") && !j.at("name").is_string()) throw std::invalid_argument(where + ".name: must be a string");
  m.name = j.value("name", std::string{});
  m.layers = static_cast<int>(need("layers", kMaxModelLayers));
  m.hidden = need("hidden", kMaxHidden);
  m.heads = need("heads", kMaxHeads);
  m.seq = need("seq_length", kMaxSeq);
  m.vocab = need("vocab", kMaxVocab);
  m.ffn_hidden = j.contains("ffn_hidden") ? need("ffn_hidden", 4 * kMaxHidden) : 4 * m.hidden;
  if (m.hidden % m.heads != 0)
    throw std::invalid_argument(where + ".heads: hidden must be a multiple of heads");
  if (j.contains("block")) {
    if (!j.at("block").is_string()) throw std::invalid_argument(where + ".block: must be \"gpt\" or \"llama\"");
    try {
      m.arch = parse_block_arch(j.at("block").get<std::string>());
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + ".block: " + e.what());
    }
  }
  if (m.arch == BlockArch::llama && j.contains("kv_heads")) {
    m.kv_heads = need("kv_heads", kMaxHeads);
    if (m.heads % m.kv_heads != 0) throw std::invalid_argument(where + ".kv_heads: heads must be a multiple of kv_heads");
  }
  return m;
}

}  // namespace ppsim::cal
