// Fused kernels (calibrate/include/ppsim/calibrate/fused.h) on the CPU: flash attention
// equals the plain attention kernels, the fused block equals the plain block (same seeds,
// same dropout masks), and the fused block saves exactly what its formula says.
#include <catch2/catch.hpp>

#include "calibrate_fixtures.h"

#include <cmath>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/checks.h"
#include "ppsim/calibrate/costs.h"
#include "ppsim/calibrate/fused.h"
#include "ppsim/calibrate/layers.h"
#include "ppsim/calibrate/measure.h"
#include "ppsim/calibrate/model.h"
#include "ppsim/calibrate/profile.h"

using namespace ppsim::cal;

namespace {

LayerShape fused_block(std::int64_t seq, std::int64_t mb, std::int64_t tp, Kernels k) {
  LayerShape s;
  s.hidden = 32;
  s.heads = 4;
  s.seq = seq;
  s.micro_batch = mb;
  s.tp = tp;
  s.dtype = Dtype::fp32;
  s.kernels = k;
  return s;
}

Method quick() { return testing::quick_method(2, 1); }

/// A small Llama block: h = 64, 8 query heads of 8, `kv_heads` key/value heads, ffn 96.
LayerShape llama_block(std::int64_t seq, std::int64_t mb, std::int64_t tp, std::int64_t kv_heads, Kernels k) {
  LayerShape s = fused_block(seq, mb, tp, k);
  s.hidden = 64;
  s.heads = 8;
  s.ffn_hidden = 96;
  s.arch = BlockArch::llama;
  s.kv_heads = kv_heads;
  return s;
}

std::vector<float> host(Backend& b, const Tensor& t) { return to_host(b, t); }

/// The plain block's input, output gradient and output, kept for further checks.
struct PlainRun {
  Tensor x, dy, y;
};

/// Runs both blocks (same seeds) forward, backward-input and backward-weight on one input
/// and output gradient; outputs, input gradients and every weight gradient agree to 1e-5.
PlainRun check_fused_equals_plain(Backend& cpu, Layer& plain, Layer& fused) {
  INFO(fused.shape().key());
  Tensor x = plain.make_input(5), dy = plain.make_output_grad(6);
  Tensor yp = plain.forward(x), yf = fused.forward(x);
  CHECK(relative_l2_error(host(cpu, yf), host(cpu, yp)) <= 1e-5);
  Tensor dxp = plain.backward_input(dy), dxf = fused.backward_input(dy);
  CHECK(relative_l2_error(host(cpu, dxf), host(cpu, dxp)) <= 1e-5);
  plain.backward_weight();
  fused.backward_weight();
  const auto gp = plain.gradients(), gf = fused.gradients();
  REQUIRE(gp.size() == gf.size());
  for (std::size_t i = 0; i < gp.size(); ++i) {
    INFO(gp[i].first);
    CHECK(gf[i].first == gp[i].first);
    CHECK(relative_l2_error(gf[i].second, gp[i].second) <= 1e-5);
  }
  return {std::move(x), std::move(dy), std::move(yp)};
}

}  // namespace

TEST_CASE("flash attention on the cpu equals the plain attention kernels", "[calibrate][fused]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  FusedOps* f = cpu->fused();
  REQUIRE(f != nullptr);
  Allocator a(*cpu);
  // s = 1, 63, 64, 65, 100, 130: one key, tiles of 64 full and partial, several tiles.
  const int seq = GENERATE(1, 63, 64, 65, 100, 130);
  const float p = GENERATE(0.0f, 0.1f);
  const AttentionGeometry g{2, seq, 3, 8, 1.0f / std::sqrt(8.0f), p, 41};
  INFO("seq " << seq << " dropout " << p);
  const std::int64_t rows = static_cast<std::int64_t>(g.batch) * g.seq, w = g.heads * g.head_dim;
  Tensor qkv(a, rows * 3 * w, 4), dout(a, rows * w, 4);
  cpu->fill_uniform(qkv.data(), qkv.elements(), 7, 2.0f);
  cpu->fill_uniform(dout.data(), dout.elements(), 8, 1.0f);
  Tensor o_fused(a, rows * w, 4), o_plain(a, rows * w, 4), lse(a, g.batch * g.heads * g.seq, 4);
  Tensor dq_fused(a, rows * 3 * w, 4), dq_plain(a, rows * 3 * w, 4);
  f->attention_forward(qkv.data(), o_fused.data(), lse.as<float>(), g.batch, g.seq, g.heads, g.heads, g.head_dim,
                       g.scale, g.dropout_p, g.seed);
  f->attention_backward(qkv.data(), o_fused.data(), dout.data(), lse.as<float>(), dq_fused.data(), g.batch, g.seq,
                        g.heads, g.heads, g.head_dim, g.scale, g.dropout_p, g.seed);
  PlainAttentionSaved saved = plain_attention_forward(a, g, qkv.data(), o_plain.data());
  CHECK(saved.P.bytes() == static_cast<std::size_t>(g.batch * g.heads) * seq * seq * 4);  // what fused avoids
  plain_attention_backward(a, g, saved, qkv.data(), dout.data(), dq_plain.data());
  CHECK(relative_l2_error(host(*cpu, o_fused), host(*cpu, o_plain)) <= 1e-5);
  CHECK(relative_l2_error(host(*cpu, dq_fused), host(*cpu, dq_plain)) <= 1e-5);
  // Query 0 sees key 0 only: lse = scale q0.k0 and, kept, O = v0 / (1 - p).
  const float* x = qkv.as<float>();
  double qk = 0;
  for (int c = 0; c < g.head_dim; ++c) qk += static_cast<double>(x[c]) * x[w + c];
  CHECK(lse.as<float>()[0] == Approx(g.scale * qk).epsilon(1e-5));
  const float keep = hash_uniform(g.seed, 0) >= p ? 1.0f / (1.0f - p) : 0.0f;
  CHECK(o_fused.as<float>()[0] == Approx(x[2 * w] * keep).epsilon(1e-6));
}

TEST_CASE("fused block equals the plain block on the cpu: outputs, input and weight gradients", "[calibrate][fused]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  const std::int64_t seq = GENERATE(16, 100);  // 100: a partial key tile
  const std::int64_t tp = GENERATE(1, 2);
  Allocator a(*cpu);
  auto plain = make_layer(a, fused_block(seq, 2, tp, Kernels::plain), 99);
  auto fused = make_layer(a, fused_block(seq, 2, tp, Kernels::fused), 99);
  const PlainRun r = check_fused_equals_plain(*cpu, *plain, *fused);
  const Tensor& x = r.x;
  const Tensor& dy = r.dy;
  const Tensor& yp = r.y;
  // The outputs differ from a block with other dropout seeds: the masks do matter.
  auto other = make_layer(a, fused_block(seq, 2, tp, Kernels::fused), 98);
  Tensor yo = other->forward(x);
  CHECK(relative_l2_error(host(*cpu, yo), host(*cpu, yp)) > 1e-2);
  other->backward_input(dy);
  other->backward_weight();
}

TEST_CASE("fused activation bytes: the formula by hand, and the allocator measures exactly it", "[calibrate][fused]") {
  // s = 16, b = 1, h = 32, a = 4, ffn = 128, e = 4. Whole: LN inputs, QKV and fc1 inputs
  // 4e sbh = 8192 (no residual masks); Q, K, V, O 4e sbh/t = 8192; GeLU input e sb ffn/t
  // = 8192; log-sum-exp 4 a s b/t = 256; layer-norm statistics 16 sb = 256.
  const LayerShape t1 = fused_block(16, 1, 1, Kernels::fused);
  CHECK(korthikanti_attention_bytes(t1) == 256);
  CHECK(korthikanti_activation_bytes(t1) == 8192 + 8192 + 8192 + 256);
  CHECK(expected_activation_bytes(t1) == 8192 + 8192 + 8192 + 256 + 256);
  // t = 2: 8192 + 4096 + 4096 + 128, statistics whole (256).
  CHECK(expected_activation_bytes(fused_block(16, 1, 2, Kernels::fused)) == 8192 + 4096 + 4096 + 128 + 256);
  // A GPT-3 13B shard, bf16, t = 8: sbh(8 + 16/t) + 4asb/t; with sequence
  // parallelism 24 sbh/t + 4asb/t (plain: sbh(10 + 24/t + 5as/(ht)), 34 sbh/t + ...).
  LayerShape big;
  big.hidden = 5120;
  big.heads = 40;
  big.seq = 2048;
  big.tp = 8;
  big.kernels = Kernels::fused;
  const std::int64_t sbh = 2048LL * 5120;
  CHECK(korthikanti_activation_bytes(big) == 10 * sbh + 4 * 40 * 2048 / 8);
  big.sequence_parallel = true;
  CHECK(korthikanti_activation_bytes(big) == 3 * sbh + 4 * 40 * 2048 / 8);
  // Keys: fused blocks say so; plain keys are those of older profiles.
  CHECK(t1.key() == "transformer_block h=32 s=16 fp32 a=4 ffn=128 fused b=1");
  CHECK(fused_block(16, 1, 1, Kernels::plain).key() == "transformer_block h=32 s=16 fp32 a=4 ffn=128 b=1");
  auto cpu = make_cpu_backend(Dtype::fp32);
  for (std::int64_t tp : {1, 2})
    for (std::int64_t mb : {1, 2})
      for (std::int64_t seq : {16, 100}) {
        const LayerShape s = fused_block(seq, mb, tp, Kernels::fused);
        INFO(s.key());
        const LayerMeasurement m = measure_layer(*cpu, s, quick());
        CHECK(m.activation_bytes == expected_activation_bytes(s));
        CHECK(m.activation_bytes < measure_layer(*cpu, fused_block(seq, mb, tp, Kernels::plain), quick()).activation_bytes);
      }
}

TEST_CASE("a profile holding plain and fused blocks costs each model with its own kernels", "[calibrate][fused]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  nlohmann::json profile = new_profile(*cpu, quick());
  for (Kernels k : {Kernels::plain, Kernels::fused})
    upsert_layer(profile, measurement_to_json(measure_layer(*cpu, fused_block(16, 1, 1, k), quick())));
  REQUIRE(profile.at("layers").size() == 2);
  CHECK(profile.at("layers")[1].at("shape").at("kernels") == "fused");
  CHECK_FALSE(profile.at("layers")[0].at("shape").contains("kernels"));  // plain: as before
  TransformerSpec spec{2, 32, 4, 16, 1, 0, 0, Dtype::fp32};
  for (Kernels k : {Kernels::plain, Kernels::fused}) {
    spec.kernels = k;
    const auto costs = costs_from_profile(profile, spec);
    REQUIRE(costs.size() == 2);
    CHECK(costs[0].activation_bytes == expected_activation_bytes(fused_block(16, 1, 1, k)));
  }
}

// Plain grouped-query attention, written as what it means: every query head attends to a
// copy of its group's key/value head, so the reference is the plain (multi-head)
// attention kernels over a [T, 3w] QKV whose K and V heads are copies, and a key/value
// head's gradient is the sum of its copies' gradients.
TEST_CASE("flash attention with grouped-query heads equals plain attention over copied key/value heads",
          "[calibrate][fused][llama]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  FusedOps* f = cpu->fused();
  REQUIRE(f != nullptr);
  Allocator a(*cpu);
  const int seq = GENERATE(1, 63, 64, 65, 100, 130);
  const int heads = 8, d = 8, kv_heads = GENERATE(2, 8);  // heads / 4 and heads
  const int g = heads / kv_heads, batch = 2;
  INFO("seq " << seq << " kv_heads " << kv_heads);
  const std::int64_t rows = static_cast<std::int64_t>(batch) * seq, w = heads * d, kv = kv_heads * d,
                     ld = w + 2 * kv;
  Tensor qkv(a, rows * ld, 4), dout(a, rows * w, 4);
  cpu->fill_uniform(qkv.data(), qkv.elements(), 7, 2.0f);
  cpu->fill_uniform(dout.data(), dout.elements(), 8, 1.0f);
  // The multi-head copy: Q as is, K and V of query head j from key/value head j / g.
  Tensor mha(a, rows * 3 * w, 4);
  const float* x = qkv.as<float>();
  float* y = mha.as<float>();
  for (std::int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < heads; ++j)
      for (int c = 0; c < d; ++c) {
        y[r * 3 * w + j * d + c] = x[r * ld + j * d + c];
        y[r * 3 * w + w + j * d + c] = x[r * ld + w + (j / g) * d + c];
        y[r * 3 * w + 2 * w + j * d + c] = x[r * ld + w + kv + (j / g) * d + c];
      }
  const AttentionGeometry geo{batch, seq, heads, d, 1.0f / std::sqrt(8.0f), 0.0f, 0};
  Tensor o_fused(a, rows * w, 4), o_plain(a, rows * w, 4), lse(a, batch * heads * seq, 4);
  Tensor dq_fused(a, rows * ld, 4), dq_mha(a, rows * 3 * w, 4);
  f->attention_forward(qkv.data(), o_fused.data(), lse.as<float>(), batch, seq, heads, kv_heads, d, geo.scale, 0.0f, 0);
  f->attention_backward(qkv.data(), o_fused.data(), dout.data(), lse.as<float>(), dq_fused.data(), batch, seq, heads,
                        kv_heads, d, geo.scale, 0.0f, 0);
  PlainAttentionSaved saved = plain_attention_forward(a, geo, mha.data(), o_plain.data());
  plain_attention_backward(a, geo, saved, mha.data(), dout.data(), dq_mha.data());
  std::vector<float> dq_plain(static_cast<std::size_t>(rows * ld), 0.0f);
  const float* m = dq_mha.as<float>();
  for (std::int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < heads; ++j)
      for (int c = 0; c < d; ++c) {
        dq_plain[static_cast<std::size_t>(r * ld + j * d + c)] = m[r * 3 * w + j * d + c];
        dq_plain[static_cast<std::size_t>(r * ld + w + (j / g) * d + c)] += m[r * 3 * w + w + j * d + c];
        dq_plain[static_cast<std::size_t>(r * ld + w + kv + (j / g) * d + c)] += m[r * 3 * w + 2 * w + j * d + c];
      }
  CHECK(relative_l2_error(host(*cpu, o_fused), host(*cpu, o_plain)) <= 1e-5);
  CHECK(relative_l2_error(host(*cpu, dq_fused), dq_plain) <= 1e-5);
  // Query 0 of head j sees key 0 of its key/value head only: O = v0 of that head.
  for (int j = 0; j < heads; ++j) CHECK(o_fused.as<float>()[j * d] == x[w + kv + (j / g) * d]);
}

TEST_CASE("the fused Llama block equals the plain Llama block on the cpu: outputs, input and weight gradients",
          "[calibrate][fused][llama]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  const std::int64_t seq = GENERATE(16, 100);  // 100: a partial key tile
  const std::int64_t tp = GENERATE(1, 2);
  const std::int64_t kv_heads = GENERATE(2, 8);
  Allocator a(*cpu);
  auto plain = make_layer(a, llama_block(seq, 2, tp, kv_heads, Kernels::plain), 99);
  auto fused = make_layer(a, llama_block(seq, 2, tp, kv_heads, Kernels::fused), 99);
  check_fused_equals_plain(*cpu, *plain, *fused);
  CHECK(plain->gradients().size() == 6);
}

TEST_CASE("fused Llama activation bytes: the formula by hand, and the allocator measures exactly it",
          "[calibrate][fused][llama]") {
  // s = 16, b = 1, h = 64, 8 heads of 8, kv = 2 heads (width 16), ffn = 96, e = 4, t = 1.
  // Whole: both RMSNorm inputs and outputs 4e sbh = 16,384; Q, K, V, O e sb (2h + 2kv) =
  // 10,240; gate, up and the down input 3e sb ffn = 18,432; log-sum-exp 4 a s b = 512
  // (plain: the softmax output e a s^2 b = 8,192); 1/rms of the two RMSNorms 8 sb = 128.
  const LayerShape t1 = llama_block(16, 1, 1, 2, Kernels::fused);
  CHECK(korthikanti_attention_bytes(t1) == 512);
  CHECK(korthikanti_attention_bytes(llama_block(16, 1, 1, 2, Kernels::plain)) == 8192);
  CHECK(korthikanti_activation_bytes(t1) == 16384 + 10240 + 18432 + 512);
  CHECK(expected_activation_bytes(t1) == 16384 + 10240 + 18432 + 512 + 128);
  // t = 2: whole 16,384; e sb (2h + 2kv)/2 = 5,120; 3e sb ffn/2 = 9,216; 4 (a/2) s b = 256.
  CHECK(expected_activation_bytes(llama_block(16, 1, 2, 2, Kernels::fused)) == 16384 + 5120 + 9216 + 256 + 128);
  // Llama-2 7B, bf16, s = 4096, b = 1, t = 1 (h = 4096, 32 heads, kv = h, ffn = 11008):
  // 4e sbh = 134,217,728; e sb (2h + 2h) = 134,217,728; 3e sb ffn = 270,532,608;
  // 4 a s b = 524,288 (plain: e a s^2 b = 1,073,741,824).
  LayerShape l7 = t1;
  l7.hidden = 4096;
  l7.heads = 32;
  l7.kv_heads = 32;
  l7.ffn_hidden = 11008;
  l7.seq = 4096;
  l7.dtype = Dtype::bf16;
  CHECK(korthikanti_activation_bytes(l7) == 539'492'352);
  CHECK(expected_activation_bytes(l7) == 539'492'352 + 8 * 4096);
  l7.kernels = Kernels::plain;
  CHECK(korthikanti_activation_bytes(l7) == 539'492'352 - 524'288 + 1'073'741'824);
  CHECK(t1.key() == "transformer_block h=64 s=16 fp32 a=8 ffn=96 llama kv=2 fused b=1");
  auto cpu = make_cpu_backend(Dtype::fp32);
  for (std::int64_t tp : {1, 2})
    for (std::int64_t mb : {1, 2})
      for (std::int64_t seq : {16, 100}) {
        const LayerShape s = llama_block(seq, mb, tp, 2, Kernels::fused);
        INFO(s.key());
        const LayerMeasurement m = measure_layer(*cpu, s, quick());
        CHECK(m.activation_bytes == expected_activation_bytes(s));
        CHECK(m.activation_bytes <
              measure_layer(*cpu, llama_block(seq, mb, tp, 2, Kernels::plain), quick()).activation_bytes);
      }
}

TEST_CASE("a profile's fused Llama blocks cost fused Llama models, its plain ones plain models",
          "[calibrate][fused][llama]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  nlohmann::json profile = new_profile(*cpu, quick());
  for (Kernels k : {Kernels::plain, Kernels::fused})
    upsert_layer(profile, measurement_to_json(measure_layer(*cpu, llama_block(16, 1, 1, 2, k), quick())));
  REQUIRE(profile.at("layers").size() == 2);
  TransformerSpec spec{2, 64, 8, 16, 1, 96, 0, Dtype::fp32};
  spec.arch = BlockArch::llama;
  spec.kv_heads = 2;
  for (Kernels k : {Kernels::plain, Kernels::fused}) {
    spec.kernels = k;
    const auto costs = costs_from_profile(profile, spec);
    REQUIRE(costs.size() == 2);
    CHECK(costs[0].activation_bytes == expected_activation_bytes(llama_block(16, 1, 1, 2, k)));
  }
}
