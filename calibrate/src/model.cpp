#include "ppsim/calibrate/model.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace ppsim::cal {

int dtype_bytes(Dtype d) { return d == Dtype::fp32 ? 4 : 2; }

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

std::string LayerShape::family_key() const {
  std::string k = layer_kind_name(kind) + " h=" + std::to_string(hidden) +
                  " s=" + std::to_string(seq) + " " + dtype_name(dtype);
  if (kind == LayerKind::block)
    k += " a=" + std::to_string(heads) + " ffn=" + std::to_string(ffn());
  else
    k += " v=" + std::to_string(vocab);
  if (tp > 1) k += " t=" + std::to_string(tp);  // tp = 1 keeps the keys of older profiles
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
    case LayerKind::block: {  // QKV (h -> 3h/t), projection (h/t -> h), fc1 (h -> f/t), fc2 (f/t -> h)
      const double linear = 2 * T * h * (3 * w) + 2 * T * w * h + 2 * 2 * T * h * f;
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
                            // (their biases whole), two layer norms whole
      return e * (3 * w * h + 3 * w + w * h + h + h * f + f + f * h + h + 4 * h);
    case LayerKind::embedding:  // vocabulary-parallel token table, whole position table
      return e * (s.local_vocab() * h + s.seq * h);
    case LayerKind::head:  // final layer norm + output matrix (untied copy, as on the last stage)
      return e * (2 * h + s.local_vocab() * h);
  }
  return 0;
}

std::int64_t output_bytes(const LayerShape& s) {
  if (s.kind == LayerKind::head) return 0;
  const std::int64_t bytes = s.tokens() * s.hidden * dtype_bytes(s.dtype);
  return s.sequence_parallel ? bytes / s.tp : bytes;  // sequence parallel: each GPU sends its s/t rows
}

std::int64_t korthikanti_activation_bytes(const LayerShape& s) {
  if (s.kind != LayerKind::block) return 0;
  const std::int64_t e = dtype_bytes(s.dtype), sb = s.seq * s.micro_batch;
  // Split by tensor parallelism: Q, K, V and the projection input (4e sbh) and the MLP's
  // GeLU input and output (2e sb ffn, the paper's 16 sbh at ffn = 4h).
  const std::int64_t split = 4 * e * sb * s.attention_width() + 2 * e * sb * s.local_ffn();
  // Whole on every GPU unless sequence parallel: layer-norm inputs, QKV and fc1 inputs,
  // the two residual dropout masks.
  const std::int64_t whole = (4 * e + 2) * sb * (s.sequence_parallel ? s.attention_width() : s.hidden);
  return whole + split + korthikanti_attention_bytes(s);
}

std::int64_t korthikanti_attention_bytes(const LayerShape& s) {
  if (s.kind != LayerKind::block) return 0;
  return s.local_heads() * s.seq * s.seq * s.micro_batch * (2 * dtype_bytes(s.dtype) + 1);
}

std::int64_t expected_activation_bytes(const LayerShape& s) {
  const std::int64_t T = s.tokens(), h = s.hidden, e = dtype_bytes(s.dtype);
  const std::int64_t Tl = s.sequence_parallel ? T / s.tp : T;  // tokens of the whole-width tensors
  switch (s.kind) {
    case LayerKind::block:
      return korthikanti_activation_bytes(s) + 16 * Tl;
    case LayerKind::embedding:  // token ids (int32) and the dropout mask
      return 4 * T + Tl * h;
    case LayerKind::head:  // input, layer-norm output, probabilities over the vocabulary
                           // shard (cross-entropy overwrites the logits), layer-norm stats (fp32)
      return e * (2 * Tl * h + T * s.local_vocab()) + 8 * Tl;
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
  return m;
}

}  // namespace ppsim::cal
