#pragma once
/// @file model.h
/// @brief Shapes of the measured layers and their closed-form counts: parameters,
/// FLOPs, and saved activation bytes (Korthikanti et al. 2022 and the harness's exact
/// layout).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ppsim::cal {

/// @brief Storage type of activations, weights and gradients (math is always fp32).
enum class Dtype { fp32, fp16, bf16 };
/// @brief Bytes per element.
int dtype_bytes(Dtype d);
/// @brief "fp32", "fp16", "bf16".
std::string dtype_name(Dtype d);
/// @brief Parses "fp32"/"float32", "fp16"/"float16", "bf16"/"bfloat16"; throws otherwise.
Dtype parse_dtype(const std::string& s);

/// @brief The layers we measure.
enum class LayerKind { block, embedding, head };
std::string layer_kind_name(LayerKind k);
LayerKind parse_layer_kind(const std::string& s);

/// @brief One measured shape: a GPT-style block (pre-LN, fused QKV, causal softmax
/// attention, output projection, MLP h->ffn->h with GeLU, dropout 0.1), or the
/// embedding (token + learned position), or the head (final LN, logits, cross-entropy).
struct LayerShape {
  LayerKind kind{LayerKind::block};
  std::int64_t hidden{0};
  std::int64_t heads{0};
  std::int64_t seq{0};
  std::int64_t micro_batch{1};
  std::int64_t ffn_hidden{0};  ///< 0 means 4 * hidden
  std::int64_t vocab{0};       ///< embedding and head only
  Dtype dtype{Dtype::bf16};

  [[nodiscard]] std::int64_t ffn() const { return ffn_hidden > 0 ? ffn_hidden : 4 * hidden; }
  [[nodiscard]] std::int64_t tokens() const { return seq * micro_batch; }
  /// @brief A stable key naming the shape without the micro-batch size.
  [[nodiscard]] std::string family_key() const;
  /// @brief family_key plus the micro-batch.
  [[nodiscard]] std::string key() const;
  /// @brief Throws std::invalid_argument naming the field when the shape is unusable.
  void validate() const;
};

/// @brief Forward, backward-input and backward-weight FLOPs (multiply-add = 2).
struct Flops {
  double forward{0};
  double backward_input{0};
  double backward_weight{0};
};
Flops layer_flops(const LayerShape& s);
/// @brief Weights (and biases, layer-norm scales) times the element size.
std::int64_t parameter_bytes(const LayerShape& s);
/// @brief Bytes the layer sends to the next one (its output activation).
std::int64_t output_bytes(const LayerShape& s);

/// @brief Korthikanti et al. (2022), Sec. 4.1, generalised to element size e:
/// sbh(16e + 2) + a s^2 b (2e + 1). For e = 2 this is sbh(34 + 5as/h). The 1-byte
/// dropout masks do not scale with e; every other saved tensor does. Block only.
std::int64_t korthikanti_activation_bytes(const LayerShape& s);
/// @brief The a s^2 b (2e + 1) part of it (attention scores, softmax, dropout mask and
/// output) that selective recomputation drops and redoes in backward. Block only.
std::int64_t korthikanti_attention_bytes(const LayerShape& s);
/// @brief What the harness saves for backward by construction: the formula plus the
/// fp32 layer-norm statistics (mean and 1/std per token for each of the two layer
/// norms: 16 s b bytes) that the formula leaves out. For embedding/head, its own layout.
std::int64_t expected_activation_bytes(const LayerShape& s);

/// @brief A model preset from configs/models/*.json.
/// @brief Bounds on a transformer's shape (model presets, ppsim's "costs" configs,
/// ppsim-calibrate's --model): with all of them at their largest, the attention scores
/// of one layer (heads x seq^2 x micro-batch x 5 bytes) are 5 x 2^60 bytes, inside int64.
inline constexpr std::int64_t kMaxModelLayers = 10'000'000;
inline constexpr std::int64_t kMaxHidden = 1 << 17;      ///< 131,072
inline constexpr std::int64_t kMaxHeads = 1 << 10;       ///< 1,024
inline constexpr std::int64_t kMaxSeq = 1 << 20;         ///< 1,048,576 tokens
inline constexpr std::int64_t kMaxVocab = 1 << 22;       ///< 4,194,304
inline constexpr std::int64_t kMaxMicroBatch = 1 << 10;  ///< 1,024 samples

struct ModelPreset {
  std::string name;
  int layers{0};
  std::int64_t hidden{0};
  std::int64_t heads{0};
  std::int64_t ffn_hidden{0};
  std::int64_t vocab{0};
  std::int64_t seq{0};
};
/// @brief Reads a model JSON object (fields `layers`, `hidden`, `heads`, `seq_length`,
/// `vocab`, optional `ffn_hidden`); throws std::invalid_argument naming the path.
ModelPreset model_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace ppsim::cal
