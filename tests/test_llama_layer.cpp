// The measured Llama block (calibrate/src/layer_llama.cpp) on the CPU backend: its saved
// bytes equal the formula exactly; its forward equals a plain double-precision Llama
// written here from the definitions; its input and weight gradients equal central finite
// differences of the forward; rotary by known values; grouped-query attention equals
// multi-head attention with each key/value head repeated (Hugging Face's repeat_kv).
#include <catch2/catch.hpp>

#include "calibrate_fixtures.h"

#include <cmath>
#include <vector>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/layers.h"
#include "ppsim/calibrate/measure.h"
#include "ppsim/calibrate/model.h"

using namespace ppsim::cal;

namespace {

LayerShape llama_block(std::int64_t h, std::int64_t heads, std::int64_t kv, std::int64_t ffn, std::int64_t seq,
                       std::int64_t mb, std::int64_t tp = 1) {
  LayerShape s;
  s.kind = LayerKind::block;
  s.arch = BlockArch::llama;
  s.hidden = h;
  s.heads = heads;
  s.kv_heads = kv;
  s.ffn_hidden = ffn;
  s.seq = seq;
  s.micro_batch = mb;
  s.tp = tp;
  s.dtype = Dtype::fp32;
  return s;
}

Method quick() { return testing::quick_method(2, 2); }

std::vector<double> host(Backend& b, const Tensor& t) {
  const auto v = to_host(b, t);
  return {v.begin(), v.end()};
}

/// The Llama block from its definitions, in double: x [T, h] -> y [T, h], with the
/// layer's own weight layout (Q|K|V rows, gate|up rows, W stored [out, in]).
struct Reference {
  LayerShape s;
  std::vector<double> qkv, o, gu, down, g1, g2;

  [[nodiscard]] std::vector<double> linear(const std::vector<double>& x, const std::vector<double>& w, int out,
                                           int in) const {
    const std::size_t rows = x.size() / static_cast<std::size_t>(in);
    std::vector<double> y(rows * static_cast<std::size_t>(out), 0.0);
    for (std::size_t r = 0; r < rows; ++r)
      for (int j = 0; j < out; ++j)
        for (int k = 0; k < in; ++k) y[r * out + j] += x[r * in + k] * w[static_cast<std::size_t>(j) * in + k];
    return y;
  }
  static std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& g, int h) {
    std::vector<double> y(x.size());
    for (std::size_t r = 0; r < x.size() / h; ++r) {
      double ss = 0;
      for (int c = 0; c < h; ++c) ss += x[r * h + c] * x[r * h + c];
      const double rs = 1.0 / std::sqrt(ss / h + 1e-5);
      for (int c = 0; c < h; ++c) y[r * h + c] = x[r * h + c] * rs * g[static_cast<std::size_t>(c)];
    }
    return y;
  }
  [[nodiscard]] std::vector<double> forward(const std::vector<double>& x) const {
    const int h = static_cast<int>(s.hidden), hq = static_cast<int>(s.local_heads()), d = static_cast<int>(s.hidden / s.heads);
    const int kvh = static_cast<int>(s.kv_width()) / d, w = hq * d, kv = kvh * d, ld = w + 2 * kv;
    const int f = static_cast<int>(s.local_ffn()), S = static_cast<int>(s.seq), T = static_cast<int>(s.tokens());
    auto n1 = rmsnorm(x, g1, h);
    auto qkv_out = linear(n1, qkv, ld, h);
    for (int t = 0; t < T; ++t)  // rotate-half: (i, i + d/2) by (t mod S) * 10000^(-2i/d)
      for (int head = 0; head < hq + kvh; ++head)
        for (int i = 0; i < d / 2; ++i) {
          const double a = (t % S) * std::pow(10000.0, -2.0 * i / d);
          double* p = &qkv_out[static_cast<std::size_t>(t) * ld + head * d];
          const double x1 = p[i], x2 = p[i + d / 2];
          p[i] = x1 * std::cos(a) - x2 * std::sin(a);
          p[i + d / 2] = x2 * std::cos(a) + x1 * std::sin(a);
        }
    std::vector<double> ctx(static_cast<std::size_t>(T) * w, 0.0);
    for (int b = 0; b < T / S; ++b)
      for (int head = 0; head < hq; ++head) {
        const int kvhead = head / (hq / kvh);
        for (int i = 0; i < S; ++i) {
          const double* q = &qkv_out[static_cast<std::size_t>(b * S + i) * ld + head * d];
          std::vector<double> p(static_cast<std::size_t>(i) + 1);
          double mx = -1e300, sum = 0;
          for (int j = 0; j <= i; ++j) {  // causal
            const double* k = &qkv_out[static_cast<std::size_t>(b * S + j) * ld + w + kvhead * d];
            double dot = 0;
            for (int c = 0; c < d; ++c) dot += q[c] * k[c];
            p[static_cast<std::size_t>(j)] = dot / std::sqrt(static_cast<double>(d));
            mx = std::max(mx, p[static_cast<std::size_t>(j)]);
          }
          for (auto& v : p) sum += (v = std::exp(v - mx));
          for (int j = 0; j <= i; ++j) {
            const double* v = &qkv_out[static_cast<std::size_t>(b * S + j) * ld + w + kv + kvhead * d];
            for (int c = 0; c < d; ++c) ctx[static_cast<std::size_t>(b * S + i) * w + head * d + c] += p[static_cast<std::size_t>(j)] / sum * v[c];
          }
        }
      }
    auto h1 = linear(ctx, o, h, w);
    for (std::size_t i = 0; i < h1.size(); ++i) h1[i] += x[i];
    auto gu_out = linear(rmsnorm(h1, g2, h), gu, 2 * f, h);
    std::vector<double> act(static_cast<std::size_t>(T) * f);
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < f; ++c) {
        const double g = gu_out[static_cast<std::size_t>(t) * 2 * f + c], u = gu_out[static_cast<std::size_t>(t) * 2 * f + f + c];
        act[static_cast<std::size_t>(t) * f + c] = g / (1 + std::exp(-g)) * u;  // silu(gate) * up
      }
    auto y = linear(act, down, h, f);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] += h1[i];
    return y;
  }
};

double loss_of(Backend& b, Layer& layer, const Tensor& x, const std::vector<float>& dy) {
  Tensor y = layer.forward(x);
  const auto hy = to_host(b, y);
  double l = 0;
  for (std::size_t i = 0; i < hy.size(); ++i) l += static_cast<double>(hy[i]) * dy[i];
  return l;
}

}  // namespace

TEST_CASE("Llama layers save exactly the formula's activation bytes", "[llama][calibrate]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  // Hand count, h = 32, 4 heads, 2 key/value heads (kv width 16), ffn 48, s = 16, b = 1,
  // e = 4: x, both RMSNorm outputs and h1 4e sbh = 8192; Q, K, V and the projection
  // input e sb (2h + 2kv) = 6144; gate, up and down's input 3e sb ffn = 9216; softmax
  // output e a s^2 b = 4096; 1/rms 2 x 4 x sb = 128.
  const LayerMeasurement hand = measure_layer(*cpu, llama_block(32, 4, 2, 48, 16, 1), quick());
  CHECK(hand.activation_bytes == 8192 + 6144 + 9216 + 4096 + 128);
  struct Case { std::int64_t kv, tp, mb; };
  for (const Case c : {Case{2, 1, 1}, Case{2, 1, 2}, Case{2, 2, 1}, Case{2, 2, 2}, Case{1, 1, 2}, Case{4, 1, 1},
                       Case{4, 4, 2}}) {
    for (LayerKind k : {LayerKind::block, LayerKind::embedding, LayerKind::head}) {
      LayerShape s = llama_block(32, 4, c.kv, 48, 16, c.mb, c.tp);
      s.kind = k;
      s.vocab = k == LayerKind::block ? 0 : 52;
      INFO(s.key());
      const LayerMeasurement m = measure_layer(*cpu, s, quick());
      CHECK(m.activation_bytes == expected_activation_bytes(s));
      if (k == LayerKind::block) CHECK(m.activation_bytes == korthikanti_activation_bytes(s) + 8 * s.tokens());
      Allocator a(*cpu);  // weights and their gradients (the head also its labels)
      auto layer = make_layer(a, s, 1);
      CHECK(a.in_use() == 2 * parameter_bytes(s) + (k == LayerKind::head ? 4 * s.tokens() : 0));
    }
  }
}

TEST_CASE("Llama block forward equals the definitions computed in double", "[llama][calibrate]") {
  const std::int64_t tp = GENERATE(1, 2);
  auto cpu = make_cpu_backend(Dtype::fp32);
  Allocator a(*cpu);
  const LayerShape s = llama_block(32, 4, 2, 40, 8, 2, tp);
  auto layer = make_layer(a, s, 11);
  const auto p = layer->parameters();
  REQUIRE(p.size() == 6);
  Reference ref{s, host(*cpu, *p[0].second), host(*cpu, *p[1].second), host(*cpu, *p[2].second),
                host(*cpu, *p[3].second), host(*cpu, *p[4].second), host(*cpu, *p[5].second)};
  for (auto* g : {&ref.g1, &ref.g2})  // scales other than 1, so the reference tests their use
    for (std::size_t i = 0; i < g->size(); ++i) (*g)[i] = 0.5 + 0.05 * static_cast<double>(i % 7);
  for (std::size_t i = 0; i < ref.g1.size(); ++i) {
    p[4].second->as<float>()[i] = static_cast<float>(ref.g1[i]);
    p[5].second->as<float>()[i] = static_cast<float>(ref.g2[i]);
  }
  Tensor x = layer->make_input(3);
  const auto want = ref.forward(host(*cpu, x));
  const auto got = to_host(*cpu, layer->forward(x));
  REQUIRE(got.size() == want.size());
  double err = 0, norm = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    err += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  INFO("relative L2 error " << std::sqrt(err / norm));
  CHECK(std::sqrt(err / norm) < 1e-6);
}

TEST_CASE("Llama block gradients equal central finite differences of its forward", "[llama][calibrate]") {
  const std::int64_t tp = GENERATE(1, 2);
  auto cpu = make_cpu_backend(Dtype::fp32);
  Allocator a(*cpu);
  // Two samples of 6 tokens, 4 query heads of 4 sharing 2 key/value heads (1 of 2 at t = 2).
  const LayerShape s = llama_block(16, 4, 2, 24, 6, 2, tp);
  INFO(s.key());
  auto layer = make_layer(a, s, 5);
  Tensor x = layer->make_input(1), dy = layer->make_output_grad(2);
  const auto hd = to_host(*cpu, dy);
  Tensor dx;
  {
    Tensor y = layer->forward(x);
    dx = layer->backward_input(dy);
    layer->backward_weight();
  }
  const auto gx = to_host(*cpu, dx);
  const auto grads = layer->gradients();
  const auto params = layer->parameters();
  REQUIRE(grads.size() == params.size());
  // L = sum(y * dy), so dL/dv = the analytic gradient; dropout-free, so F is deterministic.
  auto check = [&](float* v, std::size_t n, const std::vector<float>& g, const std::string& name) {
    for (std::size_t k = 0; k < 6; ++k) {
      const std::size_t i = (k * 7919 + 13) % n;
      const float keep = v[i], eps = 1e-2f;
      v[i] = keep + eps;
      const double lp = loss_of(*cpu, *layer, x, hd);
      v[i] = keep - eps;
      const double lm = loss_of(*cpu, *layer, x, hd);
      v[i] = keep;
      const double fd = (lp - lm) / (2 * static_cast<double>(eps));
      INFO(name << "[" << i << "] analytic " << g[i] << " numeric " << fd);
      CHECK(std::abs(fd - g[i]) <= 2e-3 + 2e-3 * std::abs(fd));
    }
  };
  check(x.as<float>(), gx.size(), gx, "input");
  for (std::size_t p = 0; p < params.size(); ++p)
    check(params[p].second->as<float>(), grads[p].second.size(), grads[p].second, grads[p].first);
}

TEST_CASE("rotary: position 0 is the identity, known angles, norm of each pair kept, backward inverts", "[llama][calibrate]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  // 3 positions, one head of d = 4 in rows of 6 (2 trailing columns untouched).
  std::vector<float> x{1, 2, 3, 4, 9, 9, 1, 0, 0, 0, 9, 9, 0, 1, 2, 3, 9, 9};
  const std::vector<float> before = x;
  cpu->rotary_forward(x.data(), 3, 3, 1, 4, 6, 10000.0f);
  for (int c = 0; c < 6; ++c) CHECK(x[static_cast<std::size_t>(c)] == before[static_cast<std::size_t>(c)]);
  // Position 1: pair (0, 2) turns by 1 rad, pair (1, 3) by 10000^(-1/2) = 0.01 rad.
  CHECK(x[6] == Approx(std::cos(1.0)).epsilon(1e-6));
  CHECK(x[8] == Approx(std::sin(1.0)).epsilon(1e-6));
  CHECK(x[7] == 0.0f);
  CHECK(x[9] == 0.0f);
  CHECK(x[10] == 9.0f);
  CHECK(x[11] == 9.0f);
  // Position 2: (x1, x2) = (0, 2) by 2 rad -> (-2 sin 2, 2 cos 2); (1, 3) by 0.02 rad.
  CHECK(x[12] == Approx(-2 * std::sin(2.0)).epsilon(1e-6));
  CHECK(x[14] == Approx(2 * std::cos(2.0)).epsilon(1e-6));
  CHECK(x[13] == Approx(std::cos(0.02) - 3 * std::sin(0.02)).epsilon(1e-6));
  CHECK(x[15] == Approx(3 * std::cos(0.02) + std::sin(0.02)).epsilon(1e-6));
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 2; ++i) {
      const std::size_t a = static_cast<std::size_t>(r * 6 + i), b = a + 2;
      CHECK(x[a] * x[a] + x[b] * x[b] == Approx(before[a] * before[a] + before[b] * before[b]).epsilon(1e-6));
    }
  cpu->rotary_backward(x.data(), 3, 3, 1, 4, 6, 10000.0f);  // the gradient of a rotation is its inverse
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(x[i] == Approx(before[i]).margin(1e-6));
}

TEST_CASE("grouped-query attention equals multi-head attention with repeated key/value heads", "[llama][calibrate]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  Allocator a(*cpu);
  const LayerShape gqa_shape = llama_block(32, 4, 2, 48, 8, 2);  // d = 8, g = 2
  const LayerShape mha_shape = llama_block(32, 4, 4, 48, 8, 2);  // kv_heads == heads: plain MHA
  auto gqa = make_layer(a, gqa_shape, 21);
  auto mha = make_layer(a, mha_shape, 22);
  const auto pg = gqa->parameters(), pm = mha->parameters();
  // Q|K|V rows: Q 32, then K and V, 2 heads of 8 each (GQA) or 4 (MHA: head i = GQA head i/2).
  const float* g = pg[0].second->as<float>();
  float* m = pm[0].second->as<float>();
  auto row_of_mha = [](int r) { return r < 32 ? r : 32 + ((r - 32) / 32) * 16 + ((r - 32) % 32) / 16 * 8 + (r - 32) % 8; };
  for (int r = 0; r < 96; ++r)
    for (int c = 0; c < 32; ++c) m[r * 32 + c] = g[row_of_mha(r) * 32 + c];
  for (std::size_t p = 1; p < pg.size(); ++p)
    std::copy_n(pg[p].second->as<float>(), pg[p].second->elements(), pm[p].second->as<float>());
  Tensor x = gqa->make_input(4), dy = gqa->make_output_grad(5);
  const auto yg = to_host(*cpu, gqa->forward(x)), ym = to_host(*cpu, mha->forward(x));
  for (std::size_t i = 0; i < yg.size(); ++i) REQUIRE(yg[i] == Approx(ym[i]).margin(1e-5));
  const auto dxg = to_host(*cpu, gqa->backward_input(dy)), dxm = to_host(*cpu, mha->backward_input(dy));
  for (std::size_t i = 0; i < dxg.size(); ++i) REQUIRE(dxg[i] == Approx(dxm[i]).margin(1e-5));
  gqa->backward_weight();
  mha->backward_weight();
  const auto gg = gqa->gradients(), gm = mha->gradients();
  // A shared key/value row's gradient is the sum over the query heads it serves.
  std::vector<float> summed(gg[0].second.size(), 0.0f);
  for (int r = 0; r < 96; ++r)
    for (int c = 0; c < 32; ++c) summed[static_cast<std::size_t>(row_of_mha(r) * 32 + c)] += gm[0].second[static_cast<std::size_t>(r * 32 + c)];
  for (std::size_t i = 0; i < summed.size(); ++i) REQUIRE(gg[0].second[i] == Approx(summed[i]).margin(1e-5));
  for (std::size_t p = 1; p < gg.size(); ++p) {
    INFO(gg[p].first);
    for (std::size_t i = 0; i < gg[p].second.size(); ++i) REQUIRE(gg[p].second[i] == Approx(gm[p].second[i]).margin(1e-5));
  }
}
