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

std::vector<float> host(Backend& b, const Tensor& t) { return to_host(b, t); }

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
  f->attention_forward(qkv.data(), o_fused.data(), lse.as<float>(), g.batch, g.seq, g.heads, g.head_dim, g.scale,
                       g.dropout_p, g.seed);
  f->attention_backward(qkv.data(), o_fused.data(), dout.data(), lse.as<float>(), dq_fused.data(), g.batch, g.seq,
                        g.heads, g.head_dim, g.scale, g.dropout_p, g.seed);
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
  INFO(fused->shape().key());
  Tensor x = plain->make_input(5), dy = plain->make_output_grad(6);
  Tensor yp = plain->forward(x), yf = fused->forward(x);
  CHECK(relative_l2_error(host(*cpu, yf), host(*cpu, yp)) <= 1e-5);
  Tensor dxp = plain->backward_input(dy), dxf = fused->backward_input(dy);
  CHECK(relative_l2_error(host(*cpu, dxf), host(*cpu, dxp)) <= 1e-5);
  plain->backward_weight();
  fused->backward_weight();
  const auto gp = plain->gradients(), gf = fused->gradients();
  REQUIRE(gp.size() == gf.size());
  for (std::size_t i = 0; i < gp.size(); ++i) {
    INFO(gp[i].first);
    CHECK(gf[i].first == gp[i].first);
    CHECK(relative_l2_error(gf[i].second, gp[i].second) <= 1e-5);
  }
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
