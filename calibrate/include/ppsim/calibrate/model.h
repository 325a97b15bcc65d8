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

/// @brief An integer setting from the environment: `fallback` when `name` is unset or
/// empty, else its value, which must be a whole decimal integer in [lo, hi]; throws
/// std::invalid_argument naming the variable otherwise.
int env_int(const char* name, int lo, int hi, int fallback);
/// @brief A choice from the environment: `allowed[0]` when `name` is unset or empty, else
/// its value, which must be one of `allowed`; throws std::invalid_argument otherwise.
std::string env_choice(const char* name, const std::vector<std::string>& allowed);

/// @brief The layers we measure.
enum class LayerKind { block, embedding, head };
std::string layer_kind_name(LayerKind k);
LayerKind parse_layer_kind(const std::string& s);

/// @brief The block's architecture: `gpt` (GPT-2/3, Megatron-LM's default) or `llama`
/// (Llama 2/3: RMSNorm, rotary positions, SwiGLU MLP with three ffn x h matrices,
/// grouped-query attention with `kv_heads` key/value heads, no biases, no dropout).
enum class BlockArch { gpt, llama };
std::string block_arch_name(BlockArch a);
/// @brief "gpt" or "llama"; throws std::invalid_argument otherwise.
BlockArch parse_block_arch(const std::string& s);

/// @brief Which kernels the block runs: `plain` (one kernel per op: softmax attention
/// that materialises the s x s probabilities, separate bias, GeLU, dropout and residual
/// kernels) or `fused` (FusedOps, fused.h: flash attention, bias-GeLU GEMM epilogue,
/// bias-dropout-add; the Llama block: flash attention with grouped-query heads), as
/// Megatron-LM trains. They save different activations. Both block architectures have both.
enum class Kernels { plain, fused };
/// @brief "plain" or "fused".
std::string kernels_name(Kernels k);
/// @brief "plain" or "fused"; throws std::invalid_argument otherwise.
Kernels parse_kernels(const std::string& s);

/// @brief One measured shape: a GPT-style block (pre-LN, fused QKV, causal softmax
/// attention, output projection, MLP h->ffn->h with GeLU, dropout 0.1), or the
/// embedding (token + learned position), or the head (final LN, logits, cross-entropy).
///
/// Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): `hidden`, `heads`,
/// `ffn_hidden` and `vocab` are the MODEL's sizes and `tp` the degree; the shape is the
/// one GPU's shard: heads/tp attention heads (QKV columns 3h/tp, projection rows h/tp),
/// ffn/tp MLP columns, vocab/tp embedding and logit rows. Layer norms, biases of the
/// row-parallel projections and the residual stream stay whole on every GPU.
/// `sequence_parallel` (Korthikanti et al. 2022) splits the layer norms, dropouts and
/// the residual stream along the sequence too: their activations and the tensor a
/// stage sends to the next are 1/tp as large.
struct LayerShape {
  LayerKind kind{LayerKind::block};
  std::int64_t hidden{0};
  std::int64_t heads{0};
  std::int64_t seq{0};
  std::int64_t micro_batch{1};
  std::int64_t ffn_hidden{0};  ///< 0 means 4 * hidden
  std::int64_t vocab{0};       ///< embedding and head only
  Dtype dtype{Dtype::bf16};
  std::int64_t tp{1};              ///< tensor-parallel degree: the shape is one GPU's shard
  bool sequence_parallel{false};   ///< Megatron sequence parallelism (needs tp > 1 to matter)
  BlockArch arch{BlockArch::gpt};  ///< the layers' architecture (block, embedding and head)
  std::int64_t kv_heads{0};        ///< llama: key/value heads (GQA); 0 means heads
  Kernels kernels{Kernels::plain};  ///< block only: plain or fused kernels (keys say " fused")

  [[nodiscard]] std::int64_t ffn() const { return ffn_hidden > 0 ? ffn_hidden : 4 * hidden; }
  /// @brief This GPU's share: heads / tp, ffn / tp, vocab / tp (rounded up), h / tp.
  [[nodiscard]] std::int64_t local_heads() const { return heads / tp; }
  [[nodiscard]] std::int64_t local_ffn() const { return ffn() / tp; }
  [[nodiscard]] std::int64_t local_vocab() const { return (vocab + tp - 1) / tp; }
  [[nodiscard]] std::int64_t attention_width() const { return hidden / tp; }
  /// @brief Width of this GPU's keys (and values): kv_heads / tp heads of hidden / heads.
  [[nodiscard]] std::int64_t kv_width() const {
    const std::int64_t kv = arch == BlockArch::llama && kv_heads > 0 ? kv_heads : heads;
    return heads > 0 ? kv * (hidden / heads) / tp : 0;
  }
  [[nodiscard]] std::int64_t tokens() const { return seq * micro_batch; }
  /// @brief A stable key naming the shape without the micro-batch size.
  [[nodiscard]] std::string family_key() const;
  /// @brief family_key plus the micro-batch.
  [[nodiscard]] std::string key() const;
  /// @brief Throws std::invalid_argument naming the field when the shape is unusable.
  void validate() const;
};

/// @brief Forward, backward-input and backward-weight FLOPs (multiply-add = 2) of one
/// GPU's shard.
struct Flops {
  double forward{0};
  double backward_input{0};
  double backward_weight{0};
};
Flops layer_flops(const LayerShape& s);
/// @brief Forward FLOPs of the attention core (QK^T and PV) of one GPU's shard: what
/// selective recomputation redoes in backward. Block only (0 otherwise).
double attention_core_flops(const LayerShape& s);
/// @brief Weights (and biases, layer-norm scales) times the element size.
std::int64_t parameter_bytes(const LayerShape& s);
/// @brief Bytes the layer sends to the next one (its output activation).
std::int64_t output_bytes(const LayerShape& s);

/// @brief Korthikanti et al. (2022), Sec. 4.1 and 4.2, generalised to element size e,
/// per GPU: sbh(4e + 2 + 12e/t) + a s^2 b (2e + 1)/t without sequence parallelism,
/// sbh(16e + 2)/t + a s^2 b (2e + 1)/t with it. For e = 2 these are the paper's
/// sbh(10 + 24/t + 5as/(ht)) and sbh(34/t + 5as/(ht)); t = 1 gives sbh(34 + 5as/h).
/// The 4e + 2 part that tensor parallelism alone does not split: both layer-norm
/// inputs (2e), the QKV and fc1 inputs (2e) and the two 1-byte residual dropout masks.
/// The 1-byte dropout masks do not scale with e; every other saved tensor does. The
/// MLP's 8e share scales with ffn/(4h) so non-4h MLPs stay exact. Block only.
///
/// With `kernels == fused` (GPT) the same count for the fused layout: no s^2 terms
/// (flash attention keeps the fp32 log-sum-exp, 4 a s b / t bytes, instead of the
/// softmax output, dropout mask and dropout output), the GeLU input only (the output is
/// recomputed for fc2's weight gradient) and no residual dropout masks (regenerated from
/// the hash): 4e sbh + 4e sbh/t + e sb ffn/t + 4 a s b / t (4e sbh/t with sequence
/// parallelism for the first term). For e = 2, ffn = 4h: sbh(8 + 16/t) + 4asb/t, and
/// 24 sbh/t + 4asb/t with sequence parallelism (calibrate/README.md).
///
/// A Llama block (model.cpp's llama_activation_bytes): 4e sbh + e sb (2h + 2kv)/t +
/// 3e sb ffn/t plus its attention core, e a s^2 b / t plain (the softmax output; no
/// dropout) or 4 a s b / t fused (flash attention's log-sum-exp); 4e sbh/t for the first
/// term with sequence parallelism.
std::int64_t korthikanti_activation_bytes(const LayerShape& s);
/// @brief The a s^2 b (2e + 1) / t part of it (attention scores, softmax, dropout mask
/// and output) that selective recomputation drops and redoes in backward. Block only.
/// Llama plain: the softmax output alone, e a s^2 b / t. Fused kernels (GPT and Llama):
/// the flash-attention log-sum-exp, 4 a s b / t bytes.
std::int64_t korthikanti_attention_bytes(const LayerShape& s);
/// @brief What the harness saves for backward by construction: the formula plus the
/// fp32 layer-norm statistics (mean and 1/std per token for each of the two layer
/// norms: 16 s b bytes, / t with sequence parallelism) that the formula leaves out; a
/// Llama block keeps 1/rms alone, 8 s b bytes for its two RMSNorms.
/// For embedding/head, its own layout (the head's logits over vocab/t).
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
  BlockArch arch{BlockArch::gpt};  ///< `block` ("gpt" or "llama", default gpt)
  std::int64_t kv_heads{0};        ///< `kv_heads` (llama; 0: heads)
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
