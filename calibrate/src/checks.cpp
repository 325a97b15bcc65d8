#include "ppsim/calibrate/checks.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "ppsim/calibrate/layers.h"

namespace ppsim::cal {
namespace {

std::vector<float> host_uniform(std::int64_t n, std::uint64_t seed, float scale) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = (2.0f * hash_uniform(seed, static_cast<std::uint64_t>(i)) - 1.0f) * scale;
  return v;
}

/// The same logical buffer on the tested backend and on the CPU reference.
struct Twin {
  Tensor t, r;
};

class Harness {
 public:
  Harness(Backend& test, Backend& ref) : test_(test), ref_(ref), at_(test), ar_(ref) {}
  Backend& test_;
  Backend& ref_;
  Allocator at_, ar_;
  std::vector<CheckResult> results;

  /// Random storage-dtype values; the reference gets the test backend's rounded copy.
  Twin rand(std::int64_t n, std::uint64_t seed, float scale = 1.0f) {
    Twin w{Tensor(at_, n, dtype_bytes(test_.dtype())), Tensor(ar_, n, 4)};
    auto h = host_uniform(n, seed, scale);
    test_.upload(h.data(), w.t.data(), n);
    test_.download(w.t.data(), h.data(), n);
    ref_.upload(h.data(), w.r.data(), n);
    return w;
  }
  Twin zeros(std::int64_t n) {
    Twin w{Tensor(at_, n, dtype_bytes(test_.dtype())), Tensor(ar_, n, 4)};
    test_.fill_zero_bytes(w.t.data(), w.t.bytes());
    ref_.fill_zero_bytes(w.r.data(), w.r.bytes());
    return w;
  }
  Twin raw(std::int64_t n, int elem_bytes, const void* host = nullptr) {
    Twin w{Tensor(at_, n, elem_bytes), Tensor(ar_, n, elem_bytes)};
    if (host) {
      test_.upload_bytes(host, w.t.data(), w.t.bytes());
      ref_.upload_bytes(host, w.r.data(), w.r.bytes());
    } else {
      test_.fill_zero_bytes(w.t.data(), w.t.bytes());
      ref_.fill_zero_bytes(w.r.data(), w.r.bytes());
    }
    return w;
  }
  void compare(const std::string& name, const Twin& w, double tol) {
    std::vector<float> a(static_cast<std::size_t>(w.t.elements())), b(a.size());
    test_.download(w.t.data(), a.data(), w.t.elements());
    ref_.download(w.r.data(), b.data(), w.r.elements());
    add(name, relative_l2_error(a, b), tol, false);
  }
  void compare_f32(const std::string& name, const Twin& w, double tol) {
    std::vector<float> a(static_cast<std::size_t>(w.t.elements())), b(a.size());
    test_.download_bytes(w.t.data(), a.data(), w.t.bytes());
    ref_.download_bytes(w.r.data(), b.data(), w.r.bytes());
    add(name, relative_l2_error(a, b), tol, false);
  }
  void compare_exact(const std::string& name, const Twin& w) {
    std::vector<char> a(w.t.bytes()), b(w.r.bytes());
    test_.download_bytes(w.t.data(), a.data(), a.size());
    ref_.download_bytes(w.r.data(), b.data(), b.size());
    std::size_t diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
    CheckResult c{name, static_cast<double>(diff) / static_cast<double>(std::max<std::size_t>(1, a.size())), 0, true, diff == 0};
    results.push_back(c);
  }
  void add(const std::string& name, double err, double tol, bool exact) {
    results.push_back({name, err, tol, exact, err <= tol});
  }
};

/// The Llama block's kernels: RMSNorm, rotary on a strided Q|K layout, SwiGLU, and the
/// embedding without a position table.
void check_llama_kernels(Harness& H, double tol) {
  Backend& T = H.test_;
  Backend& R = H.ref_;
  const int rows = 64, cols = 320;
  {
    Twin x = H.rand(rows * cols, 151, 2.0f), g = H.rand(cols, 152), y = H.zeros(rows * cols), rstd = H.raw(rows, 4);
    T.rmsnorm_forward(x.t.data(), g.t.data(), y.t.data(), rstd.t.as<float>(), rows, cols);
    R.rmsnorm_forward(x.r.data(), g.r.data(), y.r.data(), rstd.r.as<float>(), rows, cols);
    H.compare("rmsnorm_forward", y, tol);
    H.compare_f32("rmsnorm_forward_rstd", rstd, 1e-4);
    Twin dy = H.rand(rows * cols, 153), dx = H.rand(rows * cols, 154), dg = H.rand(cols, 155);
    T.rmsnorm_backward_input(dy.t.data(), x.t.data(), g.t.data(), rstd.t.as<float>(), dx.t.data(), rows, cols, true);
    R.rmsnorm_backward_input(dy.r.data(), x.r.data(), g.r.data(), rstd.r.as<float>(), dx.r.data(), rows, cols, true);
    H.compare("rmsnorm_backward_input", dx, tol);
    T.rmsnorm_backward_weight(dy.t.data(), x.t.data(), rstd.t.as<float>(), dg.t.data(), rows, cols);
    R.rmsnorm_backward_weight(dy.r.data(), x.r.data(), rstd.r.as<float>(), dg.r.data(), rows, cols);
    H.compare("rmsnorm_backward_weight", dg, tol);
  }
  {  // 3 query + 1 key heads of 32 in rows of 160 (the last 32 columns, V, untouched).
    const int tokens = 2 * 48, seq = 48, heads = 4, d = 32, stride = 160;
    Twin q = H.rand(static_cast<std::int64_t>(tokens) * stride, 156);
    T.rotary_forward(q.t.data(), tokens, seq, heads, d, stride, 10000.0f);
    R.rotary_forward(q.r.data(), tokens, seq, heads, d, stride, 10000.0f);
    H.compare("rotary_forward", q, tol);
    T.rotary_backward(q.t.data(), tokens, seq, heads, d, stride, 10000.0f);
    R.rotary_backward(q.r.data(), tokens, seq, heads, d, stride, 10000.0f);
    H.compare("rotary_backward", q, tol);
  }
  {
    const std::int64_t n = static_cast<std::int64_t>(rows) * cols;
    Twin gu = H.rand(2 * n, 157, 3.0f), y = H.zeros(n), dy = H.rand(n, 158), dgu = H.zeros(2 * n);
    T.swiglu_forward(gu.t.data(), y.t.data(), rows, cols);
    R.swiglu_forward(gu.r.data(), y.r.data(), rows, cols);
    H.compare("swiglu_forward", y, tol);
    T.swiglu_backward(dy.t.data(), gu.t.data(), dgu.t.data(), rows, cols);
    R.swiglu_backward(dy.r.data(), gu.r.data(), dgu.r.data(), rows, cols);
    H.compare("swiglu_backward", dgu, tol);
  }
  {
    const int tokens = 128, seq = 64, hidden = 96, V = 1000;
    std::vector<std::int32_t> ids(tokens);
    for (int t = 0; t < tokens; ++t) ids[static_cast<std::size_t>(t)] = (t * 37 + 11) % (t < 8 ? 3 : V);
    Twin id = H.raw(tokens, 4, ids.data());
    Twin table = H.rand(static_cast<std::int64_t>(V) * hidden, 159), y = H.zeros(tokens * hidden);
    T.embedding_forward(id.t.as<std::int32_t>(), table.t.data(), nullptr, y.t.data(), tokens, seq, hidden);
    R.embedding_forward(id.r.as<std::int32_t>(), table.r.data(), nullptr, y.r.data(), tokens, seq, hidden);
    H.compare("embedding_forward_no_positions", y, tol);
    Twin dtab = H.zeros(static_cast<std::int64_t>(V) * hidden);
    T.embedding_backward(id.t.as<std::int32_t>(), y.t.data(), dtab.t.data(), nullptr, tokens, seq, hidden);
    R.embedding_backward(id.r.as<std::int32_t>(), y.r.data(), dtab.r.data(), nullptr, tokens, seq, hidden);
    H.compare("embedding_backward_no_positions", dtab, tol);
  }
}

/// One layer on both backends, same weights and inputs: output (or loss), input
/// gradient and every weight gradient after forward + backward. Names carry "_t2" etc.
/// for a tensor-parallel shard.
void check_layer(Harness& H, const LayerShape& blk, LayerKind kind, std::int64_t vocab, double layer_tol,
                 Kernels test_kernels = Kernels::plain) {
  Backend& T = H.test_;
  Backend& R = H.ref_;
  LayerShape s = blk;
  s.kind = kind;
  s.vocab = kind == LayerKind::block ? 0 : vocab;
  LayerShape sr = s;
  s.dtype = T.dtype();
  s.kernels = test_kernels;  // the reference is always the plain CPU layer
  sr.dtype = Dtype::fp32;
  auto lt = make_layer(H.at_, s, 99);
  auto lr = make_layer(H.ar_, sr, 99);
  Tensor xt = lt->make_input(5), xr = lr->make_input(5);
  if (kind != LayerKind::embedding) {  // reference input = the test backend's rounded values
    auto hx = to_host(T, xt);
    R.upload(hx.data(), xr.data(), xr.elements());
  }
  Tensor dyt = lt->make_output_grad(6), dyr = lr->make_output_grad(6);
  if (dyt.data()) {
    auto hd = to_host(T, dyt);
    R.upload(hd.data(), dyr.data(), dyr.elements());
  }
  const std::string name = (s.arch == BlockArch::llama ? "llama_" : "") + layer_kind_name(kind) +
                           (s.tp > 1 ? "_t" + std::to_string(s.tp) : "") + (test_kernels == Kernels::fused ? "_fused" : "");
  Tensor yt = lt->forward(xt), yr = lr->forward(xr);
  if (kind == LayerKind::head) {
    Twin w{std::move(yt), std::move(yr)};
    H.compare_f32(name + "_loss", w, 1e-2);
  } else {
    Twin w{std::move(yt), std::move(yr)};
    H.compare(name + "_output", w, layer_tol);
  }
  Tensor dxt = lt->backward_input(dyt), dxr = lr->backward_input(dyr);
  if (dxt.data()) {
    Twin w{std::move(dxt), std::move(dxr)};
    H.compare(name + "_input_grad", w, layer_tol);
  }
  lt->backward_weight();
  lr->backward_weight();
  auto gt = lt->gradients(), gr = lr->gradients();
  for (std::size_t i = 0; i < gt.size(); ++i)
    H.add(name + "." + gt[i].first, relative_l2_error(gt[i].second, gr[i].second), layer_tol, false);
}

/// Grouped-query flash attention (the Llama block's: 4 query heads over 2 key/value
/// heads, [T, w + 2kv] QKV, no dropout) against the CPU's fused attention, which the tests
/// pin to the plain grouped-query attention: O, log-sum-exp, dQ/dK/dV.
void check_fused_gqa_attention(Harness& H, FusedOps& ft, double tol, double grad_tol) {
  const int batch = 2, seq = 100, heads = 4, kv_heads = 2, d = 16;
  const std::int64_t rows = static_cast<std::int64_t>(batch) * seq, w = heads * d, ld = w + 2 * kv_heads * d;
  Twin qkv = H.rand(rows * ld, 93, 2.0f), out = H.zeros(rows * w), dout = H.rand(rows * w, 94);
  Twin lse = H.raw(static_cast<std::int64_t>(batch) * heads * seq, 4), dqkv = H.zeros(rows * ld);
  FusedOps& fr = *H.ref_.fused();
  ft.attention_forward(qkv.t.data(), out.t.data(), lse.t.as<float>(), batch, seq, heads, kv_heads, d, 0.25f, 0.0f, 0);
  fr.attention_forward(qkv.r.data(), out.r.data(), lse.r.as<float>(), batch, seq, heads, kv_heads, d, 0.25f, 0.0f, 0);
  H.compare("fused_gqa_attention_forward", out, tol);
  H.compare_f32("fused_gqa_attention_forward_lse", lse, lse_tolerance(H.test_.dtype()));
  // Each backend's backward reads its own O and log-sum-exp.
  ft.attention_backward(qkv.t.data(), out.t.data(), dout.t.data(), lse.t.as<float>(), dqkv.t.data(), batch, seq,
                        heads, kv_heads, d, 0.25f, 0.0f, 0);
  fr.attention_backward(qkv.r.data(), out.r.data(), dout.r.data(), lse.r.as<float>(), dqkv.r.data(), batch, seq,
                        heads, kv_heads, d, 0.25f, 0.0f, 0);
  H.compare("fused_gqa_attention_backward", dqkv, grad_tol);
}

/// The fused attention (FusedOps) against the plain attention kernels on the CPU: O and
/// dQ/dK/dV, and the log-sum-exp against the CPU's fused one. s = 100 is not a multiple
/// of a key tile (64 on the CPU), so the last tile is partial.
void check_fused_attention(Harness& H, FusedOps& ft, double tol, double grad_tol) {
  const AttentionGeometry g{2, 100, 3, 16, 0.25f, 0.1f, 97};
  const std::int64_t rows = static_cast<std::int64_t>(g.batch) * g.seq, w = g.heads * g.head_dim;
  Twin qkv = H.rand(rows * 3 * w, 91, 2.0f), out = H.zeros(rows * w), dout = H.rand(rows * w, 92);
  Twin lse = H.raw(static_cast<std::int64_t>(g.batch) * g.heads * g.seq, 4), dqkv = H.zeros(rows * 3 * w);
  ft.attention_forward(qkv.t.data(), out.t.data(), lse.t.as<float>(), g.batch, g.seq, g.heads, g.heads, g.head_dim,
                       g.scale, g.dropout_p, g.seed);
  PlainAttentionSaved saved = plain_attention_forward(H.ar_, g, qkv.r.data(), out.r.data());
  H.compare("fused_attention_forward", out, tol);
  {
    Tensor o(H.ar_, rows * w, 4);
    H.ref_.fused()->attention_forward(qkv.r.data(), o.data(), lse.r.as<float>(), g.batch, g.seq, g.heads, g.heads,
                                      g.head_dim, g.scale, g.dropout_p, g.seed);
    H.compare_f32("fused_attention_forward_lse", lse, lse_tolerance(H.test_.dtype()));
  }
  ft.attention_backward(qkv.t.data(), out.t.data(), dout.t.data(), lse.t.as<float>(), dqkv.t.data(), g.batch, g.seq,
                        g.heads, g.heads, g.head_dim, g.scale, g.dropout_p, g.seed);
  plain_attention_backward(H.ar_, g, saved, qkv.r.data(), dout.r.data(), dqkv.r.data());
  H.compare("fused_attention_backward", dqkv, grad_tol);
}

/// The linear epilogues and bias-dropout-add against the plain kernels they fuse.
void check_fused_pointwise(Harness& H, FusedOps& ft, double tol) {
  Backend& R = H.ref_;
  const int rows = 64, in = 72, out = 96, n = 80;
  const std::int64_t ro = static_cast<std::int64_t>(rows) * out;
  {
    Twin x = H.rand(rows * in, 101), wt = H.rand(static_cast<std::int64_t>(out) * in, 102, 0.2f);
    Twin bias = H.rand(out, 103), pre = H.zeros(ro), y = H.zeros(ro);
    ft.linear_bias_gelu_forward(x.t.data(), wt.t.data(), bias.t.data(), pre.t.data(), y.t.data(), rows, out, in);
    R.gemm(false, true, rows, out, in, 1.0f, x.r.data(), in, wt.r.data(), in, 0.0f, pre.r.data(), out);
    R.bias_add(pre.r.data(), bias.r.data(), rows, out);
    R.gelu_forward(pre.r.data(), y.r.data(), ro);
    H.compare("fused_linear_bias_gelu_forward_pre", pre, tol);
    H.compare("fused_linear_bias_gelu_forward", y, tol);
    Twin dy = H.rand(static_cast<std::int64_t>(rows) * n, 104), w2 = H.rand(static_cast<std::int64_t>(n) * out, 105, 0.2f);
    Twin dpre = H.zeros(ro), dbias = H.rand(out, 106);
    ft.linear_dgelu_backward(dy.t.data(), w2.t.data(), pre.t.data(), dpre.t.data(), dbias.t.data(), rows, out, n);
    R.gemm(false, false, rows, out, n, 1.0f, dy.r.data(), n, w2.r.data(), out, 0.0f, dpre.r.data(), out);
    R.gelu_backward(dpre.r.data(), pre.r.data(), dpre.r.data(), ro);
    R.bias_backward(dpre.r.data(), dbias.r.data(), rows, out);
    H.compare("fused_linear_dgelu_backward", dpre, tol);
    H.compare("fused_linear_dgelu_backward_bias", dbias, tol);
  }
  {
    Twin x = H.rand(ro, 107), bias = H.rand(out, 108), res = H.rand(ro, 109), y = H.zeros(ro), mask = H.raw(ro, 1);
    ft.bias_dropout_add_forward(x.t.data(), bias.t.data(), res.t.data(), y.t.data(), rows, out, 0.1f, 110);
    R.bias_add(x.r.data(), bias.r.data(), rows, out);
    R.dropout_forward(x.r.data(), x.r.data(), mask.r.as<std::uint8_t>(), ro, 0.1f, 110);
    R.residual_add(res.r.data(), x.r.data(), y.r.data(), ro);
    H.compare("fused_bias_dropout_add_forward", y, tol);
    Twin dy = H.rand(ro, 111), dx = H.zeros(ro);
    ft.bias_dropout_add_backward(dy.t.data(), dx.t.data(), rows, out, 0.1f, 110);
    R.dropout_backward(dy.r.data(), mask.r.as<std::uint8_t>(), dx.r.data(), ro, 0.1f);
    H.compare("fused_bias_dropout_add_backward", dx, tol);
  }
}

}  // namespace

double relative_l2_error(const std::vector<float>& out, const std::vector<float>& ref) {
  if (out.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i]) || !std::isfinite(ref[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(out[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

double kernel_tolerance(Dtype d) {
  switch (d) {
    case Dtype::fp32: return 1e-5;
    case Dtype::fp16: return 2e-3;
    case Dtype::bf16: return 1e-2;
  }
  return 0;
}

double lse_tolerance(Dtype d) {
  switch (d) {
    case Dtype::fp32: return 1e-4;
    case Dtype::fp16: return std::ldexp(1.0, -11);
    case Dtype::bf16: return std::ldexp(1.0, -8);
  }
  return 1e-4;
}

double layer_tolerance(Dtype d) { return d == Dtype::fp32 ? 1e-4 : 5e-2; }

std::vector<CheckResult> check_against_cpu(Backend& test, const LayerShape& blk, std::int64_t vocab) {
  auto cpu = make_cpu_backend(Dtype::fp32);
  Harness H(test, *cpu);
  Backend& T = test;
  Backend& R = *cpu;
  const double tol = kernel_tolerance(test.dtype());
  const int M = 96, N = 80, K = 72;
  {  // GEMMs in the three orientations the layers use, plus batched.
    for (int v = 0; v < 3; ++v) {
      const bool ta = v == 2, tb = v == 1;
      Twin a = H.rand(M * K, 11 + v), b = H.rand(K * N, 21 + v), c = H.rand(M * N, 31 + v);
      const int lda = ta ? M : K, ldb = tb ? K : N;
      T.gemm(ta, tb, M, N, K, 0.5f, a.t.data(), lda, b.t.data(), ldb, 1.0f, c.t.data(), N);
      R.gemm(ta, tb, M, N, K, 0.5f, a.r.data(), lda, b.r.data(), ldb, 1.0f, c.r.data(), N);
      H.compare(std::string("gemm_") + (ta ? "T" : "N") + (tb ? "T" : "N"), c, tol);
    }
    Twin a = H.rand(3 * M * K, 41), b = H.rand(3 * K * N, 42), c = H.zeros(3 * M * N);
    T.gemm_batched(false, true, M, N, K, 1.0f, a.t.data(), K, M * K, b.t.data(), K, K * N, 0.0f, c.t.data(), N, M * N, 3);
    R.gemm_batched(false, true, M, N, K, 1.0f, a.r.data(), K, M * K, b.r.data(), K, K * N, 0.0f, c.r.data(), N, M * N, 3);
    H.compare("gemm_batched_NT", c, tol);
  }
  const int rows = 64, cols = 320;
  {  // Layer norm forward / backward.
    Twin x = H.rand(rows * cols, 51, 2.0f), g = H.rand(cols, 52), be = H.rand(cols, 53), y = H.zeros(rows * cols);
    Twin mean = H.raw(rows, 4), rstd = H.raw(rows, 4);
    T.layernorm_forward(x.t.data(), g.t.data(), be.t.data(), y.t.data(), mean.t.as<float>(), rstd.t.as<float>(), rows, cols);
    R.layernorm_forward(x.r.data(), g.r.data(), be.r.data(), y.r.data(), mean.r.as<float>(), rstd.r.as<float>(), rows, cols);
    H.compare("layernorm_forward", y, tol);
    H.compare_f32("layernorm_forward_mean", mean, 1e-4);
    H.compare_f32("layernorm_forward_rstd", rstd, 1e-4);
    Twin dy = H.rand(rows * cols, 54), dx = H.rand(rows * cols, 55), dg = H.rand(cols, 56), db = H.rand(cols, 57);
    T.layernorm_backward_input(dy.t.data(), x.t.data(), g.t.data(), mean.t.as<float>(), rstd.t.as<float>(), dx.t.data(), rows, cols, true);
    R.layernorm_backward_input(dy.r.data(), x.r.data(), g.r.data(), mean.r.as<float>(), rstd.r.as<float>(), dx.r.data(), rows, cols, true);
    H.compare("layernorm_backward_input", dx, tol);
    T.layernorm_backward_weight(dy.t.data(), x.t.data(), mean.t.as<float>(), rstd.t.as<float>(), dg.t.data(), db.t.data(), rows, cols);
    R.layernorm_backward_weight(dy.r.data(), x.r.data(), mean.r.as<float>(), rstd.r.as<float>(), dg.r.data(), db.r.data(), rows, cols);
    H.compare("layernorm_backward_weight_gamma", dg, tol);
    H.compare("layernorm_backward_weight_beta", db, tol);
  }
  {  // Bias, GeLU, residual, dropout.
    Twin y = H.rand(rows * cols, 61), bias = H.rand(cols, 62), dbias = H.rand(cols, 63);
    T.bias_add(y.t.data(), bias.t.data(), rows, cols);
    R.bias_add(y.r.data(), bias.r.data(), rows, cols);
    H.compare("bias_add", y, tol);
    T.bias_backward(y.t.data(), dbias.t.data(), rows, cols);
    R.bias_backward(y.r.data(), dbias.r.data(), rows, cols);
    H.compare("bias_backward", dbias, tol);
    const std::int64_t n = rows * cols;
    Twin x = H.rand(n, 64, 3.0f), g = H.zeros(n), dy = H.rand(n, 65), dx = H.zeros(n);
    T.gelu_forward(x.t.data(), g.t.data(), n);
    R.gelu_forward(x.r.data(), g.r.data(), n);
    H.compare("gelu_forward", g, tol);
    T.gelu_backward(dy.t.data(), x.t.data(), dx.t.data(), n);
    R.gelu_backward(dy.r.data(), x.r.data(), dx.r.data(), n);
    H.compare("gelu_backward", dx, tol);
    Twin sum = H.zeros(n);
    T.residual_add(x.t.data(), dy.t.data(), sum.t.data(), n);
    R.residual_add(x.r.data(), dy.r.data(), sum.r.data(), n);
    H.compare("residual_add", sum, tol);
    Twin d = H.zeros(n), mask = H.raw(n, 1), dd = H.zeros(n);
    T.dropout_forward(x.t.data(), d.t.data(), mask.t.as<std::uint8_t>(), n, 0.1f, 77);
    R.dropout_forward(x.r.data(), d.r.data(), mask.r.as<std::uint8_t>(), n, 0.1f, 77);
    H.compare_exact("dropout_forward_mask", mask);
    H.compare("dropout_forward", d, tol);
    T.dropout_backward(dy.t.data(), mask.t.as<std::uint8_t>(), dd.t.data(), n, 0.1f);
    R.dropout_backward(dy.r.data(), mask.r.as<std::uint8_t>(), dd.r.data(), n, 0.1f);
    H.compare("dropout_backward", dd, tol);
  }
  {  // Causal softmax and its backward (3 matrices of 96 x 96).
    const int s = 96, rowsS = 3 * s;
    Twin x = H.rand(static_cast<std::int64_t>(rowsS) * s, 71, 4.0f), dP = H.rand(static_cast<std::int64_t>(rowsS) * s, 72);
    T.softmax_causal_forward(x.t.data(), rowsS, s);
    R.softmax_causal_forward(x.r.data(), rowsS, s);
    H.compare("softmax_causal_forward", x, tol);
    T.softmax_backward(x.t.data(), dP.t.data(), rowsS, s, 0.125f);
    R.softmax_backward(x.r.data(), dP.r.data(), rowsS, s, 0.125f);
    H.compare("softmax_backward", dP, tol);
  }
  {  // Embedding and cross-entropy.
    const int tokens = 128, seq = 64, hidden = 96, V = 1000;
    std::vector<std::int32_t> ids(tokens);
    for (int t = 0; t < tokens; ++t) ids[static_cast<std::size_t>(t)] = (t * 37 + 11) % (t < 8 ? 3 : V);  // repeats: atomics
    Twin id = H.raw(tokens, 4, ids.data());
    Twin table = H.rand(static_cast<std::int64_t>(V) * hidden, 81), pos = H.rand(seq * hidden, 82), y = H.zeros(tokens * hidden);
    T.embedding_forward(id.t.as<std::int32_t>(), table.t.data(), pos.t.data(), y.t.data(), tokens, seq, hidden);
    R.embedding_forward(id.r.as<std::int32_t>(), table.r.data(), pos.r.data(), y.r.data(), tokens, seq, hidden);
    H.compare("embedding_forward", y, tol);
    Twin dtab = H.zeros(static_cast<std::int64_t>(V) * hidden), dpos = H.zeros(seq * hidden);
    T.embedding_backward(id.t.as<std::int32_t>(), y.t.data(), dtab.t.data(), dpos.t.data(), tokens, seq, hidden);
    R.embedding_backward(id.r.as<std::int32_t>(), y.r.data(), dtab.r.data(), dpos.r.data(), tokens, seq, hidden);
    H.compare("embedding_backward_table", dtab, tol);
    H.compare("embedding_backward_position", dpos, tol);
    Twin logits = H.rand(static_cast<std::int64_t>(tokens) * V, 83, 5.0f), loss = H.raw(tokens, 4);
    T.cross_entropy_forward(logits.t.data(), id.t.as<std::int32_t>(), loss.t.as<float>(), tokens, V);
    R.cross_entropy_forward(logits.r.data(), id.r.as<std::int32_t>(), loss.r.as<float>(), tokens, V);
    H.compare("cross_entropy_forward_probs", logits, tol);
    H.compare_f32("cross_entropy_forward_loss", loss, 1e-4);
    T.cross_entropy_backward(logits.t.data(), id.t.as<std::int32_t>(), tokens, V, 1.0f / tokens);
    R.cross_entropy_backward(logits.r.data(), id.r.as<std::int32_t>(), tokens, V, 1.0f / tokens);
    H.compare("cross_entropy_backward", logits, tol);
  }
  check_llama_kernels(H, tol);
  // Whole layers, and their tensor-parallel shards at t = 2 (the layer code is the same;
  // the shard's narrower GEMM and attention strides are what this exercises); then the
  // same sizes as a Llama model with grouped-query attention (half as many key/value
  // heads when heads are even).
  const double layer_tol = layer_tolerance(test.dtype());
  LayerShape llama = blk;
  llama.arch = BlockArch::llama;
  llama.kv_heads = blk.heads % 2 == 0 ? blk.heads / 2 : blk.heads;
  for (const LayerShape& arch : {blk, llama}) {
    for (std::int64_t tp : {1, 2}) {
      LayerShape shard = arch;
      shard.tp = tp;
      shard.vocab = vocab;
      try {
        shard.validate();
      } catch (const std::invalid_argument&) {
        continue;  // a small block whose heads do not split in two: only t = 1
      }
      for (LayerKind kind : {LayerKind::embedding, LayerKind::block, LayerKind::head})
        check_layer(H, shard, kind, vocab, layer_tol);
    }
  }
  // Fused kernels (fused.h) against the plain CPU kernels they replace, and the fused
  // blocks (GPT, and Llama with grouped-query heads) against the plain CPU blocks: the
  // same seeds and mask indices, so the same step.
  if (FusedOps* ft = test.fused()) {
    check_fused_attention(H, *ft, tol, layer_tol);
    check_fused_gqa_attention(H, *ft, tol, layer_tol);
    check_fused_pointwise(H, *ft, tol);
    for (const LayerShape& arch : {blk, llama})
      for (std::int64_t tp : {1, 2}) {
        LayerShape shard = arch;
        shard.tp = tp;
        try {
          shard.validate();
        } catch (const std::invalid_argument&) {
          continue;
        }
        check_layer(H, shard, LayerKind::block, 0, layer_tol, Kernels::fused);
      }
  }
  return H.results;
}

Summary measure_chain(Backend& backend, const LayerShape& block, int n, const Method& method,
                      std::int64_t* peak_bytes) {
  Allocator alloc(backend);
  std::vector<std::unique_ptr<Layer>> layers;
  for (int i = 0; i < n; ++i) layers.push_back(make_layer(alloc, block, 1000 + 17 * static_cast<std::uint64_t>(i)));
  const int rotate = std::max(1, method.rotate);
  std::vector<Tensor> inputs, grads;
  for (int i = 0; i < rotate; ++i) {
    inputs.push_back(layers[0]->make_input(300 + static_cast<std::uint64_t>(i)));
    grads.push_back(layers[0]->make_output_grad(400 + static_cast<std::uint64_t>(i)));
  }
  auto timer = backend.make_timer();
  alloc.reset_peak();
  auto step = [&](int it) {
    timer->start();
    std::vector<Tensor> acts;  // acts[i] = output of layer i (input of layer i+1)
    acts.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
      acts.push_back(layers[static_cast<std::size_t>(i)]->forward(i == 0 ? inputs[static_cast<std::size_t>(it % rotate)] : acts[static_cast<std::size_t>(i - 1)]));
    Tensor dy;
    for (int i = n - 1; i >= 0; --i) {
      Tensor dx = layers[static_cast<std::size_t>(i)]->backward_input(i == n - 1 ? grads[static_cast<std::size_t>(it % rotate)] : dy);
      layers[static_cast<std::size_t>(i)]->backward_weight();
      acts[static_cast<std::size_t>(i)].reset();
      dy = std::move(dx);
    }
    timer->stop();
    return timer->elapsed_ms();
  };
  double warm = 0;
  for (int i = 0; i < method.warmup; ++i) warm += step(i);
  const int iters = iterations_for_target(method.warmup > 0 ? warm / method.warmup : step(0), method);
  std::vector<double> samples;
  for (int i = 0; i < iters; ++i) samples.push_back(step(i));
  if (peak_bytes) *peak_bytes = alloc.peak();
  return summarize(samples);
}

nlohmann::json measure_gemms(Backend& backend, const LayerShape& blk, int square, const Method& method) {
  Allocator alloc(backend);
  const int e = dtype_bytes(backend.dtype());
  // The block's GEMMs at its shard's shapes (tp = 1: the whole layer).
  const int T = static_cast<int>(blk.tokens()), h = static_cast<int>(blk.hidden);
  const int w = static_cast<int>(blk.attention_width()), f = static_cast<int>(blk.local_ffn());
  struct Case { std::string name; int M, N, K; };
  std::vector<Case> cases{{"qkv_forward", T, 3 * w, h}, {"proj_forward", T, h, w},
                          {"fc1_forward", T, f, h},     {"fc2_forward", T, h, f}};
  if (blk.arch == BlockArch::llama)  // fused Q|K|V with grouped keys/values, fused gate|up
    cases = {{"qkv_forward", T, w + 2 * static_cast<int>(blk.kv_width()), h}, {"o_forward", T, h, w},
             {"gate_up_forward", T, 2 * f, h}, {"down_forward", T, h, f}};
  if (square > 0) cases.push_back({"square_" + std::to_string(square), square, square, square});
  nlohmann::json out = nlohmann::json::array();
  auto timer = backend.make_timer();
  for (const auto& c : cases) {
    const int rotate = std::max(1, method.rotate);
    std::vector<Tensor> as, bs;
    for (int i = 0; i < rotate; ++i) {
      as.emplace_back(alloc, static_cast<std::int64_t>(c.M) * c.K, e);
      bs.emplace_back(alloc, static_cast<std::int64_t>(c.N) * c.K, e);
      backend.fill_uniform(as.back().data(), as.back().elements(), 500 + static_cast<std::uint64_t>(i), 1.0f);
      backend.fill_uniform(bs.back().data(), bs.back().elements(), 600 + static_cast<std::uint64_t>(i), 1.0f);
    }
    Tensor C(alloc, static_cast<std::int64_t>(c.M) * c.N, e);
    auto once = [&](int i) {
      timer->start();
      backend.gemm(false, true, c.M, c.N, c.K, 1.0f, as[static_cast<std::size_t>(i % rotate)].data(), c.K,
                   bs[static_cast<std::size_t>(i % rotate)].data(), c.K, 0.0f, C.data(), c.N);
      timer->stop();
      return timer->elapsed_ms();
    };
    double warm = 0;
    for (int i = 0; i < method.warmup; ++i) warm += once(i);
    const int n = iterations_for_target(method.warmup > 0 ? warm / method.warmup : once(0), method);
    std::vector<double> samples;
    for (int i = 0; i < n; ++i) samples.push_back(once(i));
    const Summary s = summarize(samples);
    const double flops = 2.0 * c.M * static_cast<double>(c.N) * c.K;
    out.push_back({{"name", c.name}, {"M", c.M}, {"N", c.N}, {"K", c.K}, {"ms", summary_to_json(s)},
                   {"tflops", flops / (s.median * 1e-3) / 1e12}});
  }
  return out;
}

}  // namespace ppsim::cal
