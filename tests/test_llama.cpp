// The Llama block's formulas (issue 13 item 2): parameters against the released models'
// counts, FLOPs and activation bytes by hand, and how configs and profiles carry the block.
// The measured Llama layer (test_llama_layer.cpp) is checked against these.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/costs.h"
#include "ppsim/calibrate/layers.h"
#include "ppsim/calibrate/model.h"

using namespace ppsim::cal;

namespace {

LayerShape llama(std::int64_t h, std::int64_t heads, std::int64_t kv, std::int64_t ffn, std::int64_t vocab) {
  LayerShape s;
  s.arch = BlockArch::llama;
  s.hidden = h;
  s.heads = heads;
  s.kv_heads = kv;
  s.ffn_hidden = ffn;
  s.vocab = vocab;
  s.seq = 4096;
  s.dtype = Dtype::bf16;
  return s;
}

std::int64_t model_parameters(LayerShape s, int layers) {
  std::int64_t bytes = 0;
  for (LayerKind k : {LayerKind::embedding, LayerKind::block, LayerKind::head}) {
    s.kind = k;
    bytes += parameter_bytes(s) * (k == LayerKind::block ? layers : 1);
  }
  return bytes / dtype_bytes(s.dtype);
}

}  // namespace

TEST_CASE("Llama parameters equal the released checkpoints' counts", "[llama]") {
  // Hugging Face's model cards / num_parameters() of meta-llama/Llama-2-7b-hf and -70b-hf:
  // 6,738,415,616 and 68,976,648,192 (untied embedding and output matrices, RMSNorm scales).
  CHECK(model_parameters(llama(4096, 32, 32, 11008, 32000), 32) == 6'738'415'616);
  CHECK(model_parameters(llama(8192, 64, 8, 28672, 32000), 80) == 68'976'648'192);
  // The same sizes as a GPT block would count 4h^2 + 2h ffn + biases and a position table.
  LayerShape gpt = llama(4096, 32, 32, 11008, 32000);
  gpt.arch = BlockArch::gpt;
  CHECK(model_parameters(gpt, 32) != 6'738'415'616);
}

TEST_CASE("Llama FLOPs and activation bytes by hand", "[llama]") {
  LayerShape s = llama(64, 4, 2, 96, 0);
  s.seq = 8;
  s.kind = LayerKind::block;
  // T = 8 tokens, w = 64, kv width = 2 heads x 16 = 32, ffn 96:
  // Q, K, V: 2*8*64*(64 + 2*32) = 131,072; O: 2*8*64*64 = 65,536; gate, up, down:
  // 3*2*8*64*96 = 294,912; attention core 2*2*1*8*8*64 = 16,384.
  const Flops f = layer_flops(s);
  CHECK(f.forward == 491520.0 + 16384.0);
  CHECK(f.backward_input == 491520.0 + 2 * 16384.0);
  CHECK(f.backward_weight == 491520.0);
  // e = 2, sb = 8: whole 4*2*8*64 = 4,096; split 2*8*(2*64 + 2*32) + 3*2*8*96 = 3,072 +
  // 4,608; scores 4*8*8*1*2 = 512 (softmax output only: no attention dropout).
  CHECK(korthikanti_attention_bytes(s) == 512);
  CHECK(korthikanti_activation_bytes(s) == 4096 + 7680 + 512);
  CHECK(expected_activation_bytes(s) == 12288 + 8 * 8);  // + RMSNorm's 1/rms, fp32, two norms
  s.tp = 2;  // heads 2, kv 1 head (16 wide), ffn 48; the whole part stays
  CHECK(s.kv_width() == 16);
  CHECK(korthikanti_activation_bytes(s) == 4096 + (2 * 8 * (64 + 32) + 3 * 2 * 8 * 48) + 2 * 8 * 8 * 2);
  s.sequence_parallel = true;  // the whole part splits too
  CHECK(korthikanti_activation_bytes(s) == 2048 + 3840 + 256);
  CHECK(s.family_key() == "transformer_block h=64 s=8 bf16 a=4 ffn=96 llama kv=2 t=2");
  s.tp = 4;  // 2 key/value heads do not split 4 ways
  CHECK_THROWS_WITH(s.validate(), "kv_heads (2) must be a multiple of the tensor-parallel degree 4");
}

TEST_CASE("Llama presets load as Llama blocks; a GPT-measured profile does not cost them", "[llama]") {
  const auto preset = nlohmann::json::parse(R"({"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "seq_length": 8,
                                               "vocab": 100, "ffn_hidden": 96, "block": "llama"})");
  const ModelPreset m = model_from_json(preset, "p");
  CHECK(m.arch == BlockArch::llama);
  CHECK(m.kv_heads == 2);
  auto bad = preset;
  bad["block"] = "mamba";
  CHECK_THROWS_WITH(model_from_json(bad, "p"), "p.block: unknown block 'mamba' (expected gpt or llama)");
  bad = preset;
  bad["kv_heads"] = 3;
  CHECK_THROWS_WITH(model_from_json(bad, "p"), "p.kv_heads: heads must be a multiple of kv_heads");

  // A profile whose block was measured as GPT (no "block" in its shape) is another shape.
  TransformerSpec t;
  t.layers = 2;
  t.hidden = 64;
  t.heads = 4;
  t.seq = 8;
  t.ffn_hidden = 96;
  t.arch = BlockArch::llama;
  t.kv_heads = 2;
  LayerShape gpt_block = shape_of(LayerKind::block, t);
  gpt_block.arch = BlockArch::gpt;
  nlohmann::json profile = {{"layers", nlohmann::json::array({{{"key", gpt_block.key()}, {"kind", "transformer_block"},
      {"shape", {{"hidden", 64}, {"heads", 4}, {"ffn_hidden", 96}, {"seq_length", 8}, {"micro_batch", 1}, {"dtype", "bf16"}}},
      {"forward_ms", {{"median", 1.0}}}, {"backward_input_ms", {{"median", 1.0}}}, {"backward_weight_ms", {{"median", 1.0}}},
      {"activation_bytes", 1}, {"output_bytes", 1}, {"parameter_bytes", 1}}})}};
  CHECK_THROWS_AS(costs_from_profile(profile, t), MissingShapeError);
  t.arch = BlockArch::gpt;
  t.kv_heads = 0;
  CHECK(costs_from_profile(profile, t).size() == 2);
}
