// GPT-style transformer block: pre-LN, fused QKV, causal softmax attention as two
// batched GEMMs per micro-batch sample, output projection, MLP h->ffn->h with GeLU,
// dropout 0.1 on attention probabilities and both residual branches. What forward
// keeps for backward is exactly the list in Korthikanti et al. (2022), Sec. 4.1.
// With shape.tp > 1 it is one GPU's Megatron shard (Shoeybi et al. 2019): QKV columns
// 3h/t (heads/t heads of the model's head dimension h/heads), context T x h/t, the
// projection h/t -> h, fc1 h -> ffn/t, fc2 ffn/t -> h; layer norms, the row-parallel
// biases, dropouts and the residual stream stay whole. The all-reduces that follow the
// projection and fc2 (and the backward ones after QKV and fc1) are not here: they are
// communication, costed apart; this layer is the shard's compute and saved bytes.
// With shape.kernels == fused it runs the backend's FusedOps (fused.h) instead: flash
// attention (O and the fp32 log-sum-exp saved, no s x s tensor), fc1 with the bias-GeLU
// epilogue (the pre-activation saved; fc2's input is recomputed from it for fc2's weight
// gradient), and bias-dropout-add after the projection and fc2 (no masks saved). Same
// seeds and mask indices as the plain path: the same step, to rounding.
#include <cmath>
#include <stdexcept>

#include "ppsim/calibrate/layers.h"

namespace ppsim::cal {
namespace {

constexpr float kDropout = 0.1f;

class BlockLayer final : public Layer {
 public:
  BlockLayer(Allocator& a, const LayerShape& s, std::uint64_t seed)
      : a_(a), b_(a.backend()), s_(s), e_(dtype_bytes(a.backend().dtype())),
        h_(s.hidden), w_(s.attention_width()), f_(s.local_ffn()), heads_(s.local_heads()),
        d_(s.hidden / s.heads), T_(s.tokens()), seed_(seed) {
    if (s.kernels == Kernels::fused) {
      fused_ = b_.fused();
      if (!fused_) throw std::invalid_argument("the " + b_.name() + " backend has no fused kernels (--kernels fused)");
    }
    auto param = [&](Tensor& w, Tensor& g, std::int64_t n, float scale, float fill) {
      make_parameter(a_, w, g, n, scale > 0 ? seed_++ : 0, scale, fill);  // layer norms: gamma 1, beta 0
    };
    const float ws = 1.0f / std::sqrt(static_cast<float>(h_));
    param(qkv_w_, dqkv_w_, 3 * w_ * h_, ws, 0);
    param(qkv_b_, dqkv_b_, 3 * w_, 0.02f, 0);
    param(proj_w_, dproj_w_, h_ * w_, ws, 0);
    param(proj_b_, dproj_b_, h_, 0.02f, 0);
    param(fc1_w_, dfc1_w_, f_ * h_, ws, 0);
    param(fc1_b_, dfc1_b_, f_, 0.02f, 0);
    param(fc2_w_, dfc2_w_, h_ * f_, 1.0f / std::sqrt(static_cast<float>(f_)), 0);
    param(fc2_b_, dfc2_b_, h_, 0.02f, 0);
    param(ln1_g_, dln1_g_, h_, 0, 1.0f);
    param(ln1_b_, dln1_b_, h_, 0, 0.0f);
    param(ln2_g_, dln2_g_, h_, 0, 1.0f);
    param(ln2_b_, dln2_b_, h_, 0, 0.0f);
  }

  [[nodiscard]] const LayerShape& shape() const override { return s_; }

  Tensor make_input(std::uint64_t seed) override { return residual_stream(a_, s_, seed); }
  Tensor make_output_grad(std::uint64_t seed) override { return residual_stream(a_, s_, seed); }
  [[nodiscard]] std::int64_t retained_input_bytes() const override { return residual_stream_bytes(b_, s_); }

  Tensor forward(const Tensor& x) override {
    const int T = static_cast<int>(T_), h = static_cast<int>(h_), f = static_cast<int>(f_);
    const int w = static_cast<int>(w_);
    x_ = &x;
    ln1_ = Tensor(a_, T_ * h_, e_);
    mean1_ = Tensor(a_, T_, 4);
    rstd1_ = Tensor(a_, T_, 4);
    b_.layernorm_forward(x.data(), ln1_g_.data(), ln1_b_.data(), ln1_.data(), mean1_.as<float>(),
                         rstd1_.as<float>(), T, h);
    qkv_ = Tensor(a_, T_ * 3 * w_, e_);
    linear_forward(ln1_, qkv_w_, qkv_b_, qkv_, T, 3 * w, h);
    if (fused_) return forward_fused(x);
    ctx_ = Tensor(a_, T_ * w_, e_);
    attn_ = plain_attention_forward(a_, attention_geometry(), qkv_.data(), ctx_.data());
    h1_ = Tensor(a_, T_ * h_, e_);
    mask_o_ = Tensor(a_, T_ * h_, 1);
    {
      Tensor proj(a_, T_ * h_, e_);
      linear_forward(ctx_, proj_w_, proj_b_, proj, T, h, w);
      b_.dropout_forward(proj.data(), proj.data(), mask_o_.as<std::uint8_t>(), T_ * h_, kDropout, seed_ + 102);
      b_.residual_add(x.data(), proj.data(), h1_.data(), T_ * h_);
    }
    ln2_ = Tensor(a_, T_ * h_, e_);
    mean2_ = Tensor(a_, T_, 4);
    rstd2_ = Tensor(a_, T_, 4);
    b_.layernorm_forward(h1_.data(), ln2_g_.data(), ln2_b_.data(), ln2_.data(), mean2_.as<float>(),
                         rstd2_.as<float>(), T, h);
    f1_ = Tensor(a_, T_ * f_, e_);
    linear_forward(ln2_, fc1_w_, fc1_b_, f1_, T, f, h);
    g_ = Tensor(a_, T_ * f_, e_);
    b_.gelu_forward(f1_.data(), g_.data(), T_ * f_);
    Tensor y(a_, T_ * h_, e_);
    mask2_ = Tensor(a_, T_ * h_, 1);
    {
      Tensor f2(a_, T_ * h_, e_);
      linear_forward(g_, fc2_w_, fc2_b_, f2, T, h, f);
      b_.dropout_forward(f2.data(), f2.data(), mask2_.as<std::uint8_t>(), T_ * h_, kDropout, seed_ + 103);
      b_.residual_add(h1_.data(), f2.data(), y.data(), T_ * h_);
    }
    return y;
  }

  Tensor backward_input(const Tensor& dy) override {
    const int T = static_cast<int>(T_), h = static_cast<int>(h_), f = static_cast<int>(f_);
    const int w = static_cast<int>(w_);
    if (fused_) return backward_input_fused(dy);
    // MLP branch.
    dF2_ = Tensor(a_, T_ * h_, e_);
    b_.dropout_backward(dy.data(), mask2_.as<std::uint8_t>(), dF2_.data(), T_ * h_, kDropout);
    mask2_.reset();
    dF1_ = Tensor(a_, T_ * f_, e_);
    {
      Tensor dG(a_, T_ * f_, e_);
      b_.gemm(false, false, T, f, h, 1.0f, dF2_.data(), h, fc2_w_.data(), f, 0.0f, dG.data(), f);
      b_.gelu_backward(dG.data(), f1_.data(), dF1_.data(), T_ * f_);
    }
    f1_.reset();
    Tensor dH1 = mlp_input_backward(dy);
    // Attention branch.
    dProj_ = Tensor(a_, T_ * h_, e_);
    b_.dropout_backward(dH1.data(), mask_o_.as<std::uint8_t>(), dProj_.data(), T_ * h_, kDropout);
    mask_o_.reset();
    dQKV_ = Tensor(a_, T_ * 3 * w_, e_);
    {
      Tensor dCtx(a_, T_ * w_, e_);
      b_.gemm(false, false, T, w, h, 1.0f, dProj_.data(), h, proj_w_.data(), w, 0.0f, dCtx.data(), w);
      plain_attention_backward(a_, attention_geometry(), attn_, qkv_.data(), dCtx.data(), dQKV_.data());
    }
    qkv_.reset();
    dLN1_ = Tensor(a_, T_ * h_, e_);
    b_.gemm(false, false, T, h, 3 * w, 1.0f, dQKV_.data(), 3 * w, qkv_w_.data(), h, 0.0f, dLN1_.data(), h);
    b_.layernorm_backward_input(dLN1_.data(), x_->data(), ln1_g_.data(), mean1_.as<float>(),
                                rstd1_.as<float>(), dH1.data(), T, h, true);
    return dH1;  // dx = dH1 + LN1 backward (the residual path carries dH1 through)
  }

  void backward_weight() override {
    const int T = static_cast<int>(T_), h = static_cast<int>(h_), f = static_cast<int>(f_);
    const int w = static_cast<int>(w_);
    linear_weight_grad(dQKV_, ln1_, dqkv_w_, dqkv_b_, T, 3 * w, h);
    linear_weight_grad(dProj_, ctx_, dproj_w_, dproj_b_, T, h, w);
    if (fused_) {  // fc1's bias gradient came from the dGeLU epilogue; fc2's input is recomputed
      b_.gemm(true, false, f, h, T, 1.0f, dF1_.data(), f, ln2_.data(), h, 1.0f, dfc1_w_.data(), h);
      g_ = Tensor(a_, T_ * f_, e_);
      b_.gelu_forward(f1_.data(), g_.data(), T_ * f_);
      f1_.reset();
    } else {
      linear_weight_grad(dF1_, ln2_, dfc1_w_, dfc1_b_, T, f, h);
    }
    linear_weight_grad(dF2_, g_, dfc2_w_, dfc2_b_, T, h, f);
    b_.layernorm_backward_weight(dLN1_.data(), x_->data(), mean1_.as<float>(), rstd1_.as<float>(),
                                 dln1_g_.data(), dln1_b_.data(), T, h);
    b_.layernorm_backward_weight(dLN2_.data(), h1_.data(), mean2_.as<float>(), rstd2_.as<float>(),
                                 dln2_g_.data(), dln2_b_.data(), T, h);
    for (Tensor* t : {&dQKV_, &dProj_, &dF1_, &dF2_, &dLN1_, &dLN2_, &ln1_, &ctx_, &ln2_, &g_,
                      &h1_, &mean1_, &rstd1_, &mean2_, &rstd2_})
      t->reset();
    x_ = nullptr;
  }

  std::vector<std::pair<std::string, std::vector<float>>> gradients() override {
    return {{"d_qkv_weight", to_host(b_, dqkv_w_)}, {"d_qkv_bias", to_host(b_, dqkv_b_)},
            {"d_proj_weight", to_host(b_, dproj_w_)}, {"d_proj_bias", to_host(b_, dproj_b_)},
            {"d_fc1_weight", to_host(b_, dfc1_w_)}, {"d_fc1_bias", to_host(b_, dfc1_b_)},
            {"d_fc2_weight", to_host(b_, dfc2_w_)}, {"d_fc2_bias", to_host(b_, dfc2_b_)},
            {"d_ln1_gamma", to_host(b_, dln1_g_)}, {"d_ln1_beta", to_host(b_, dln1_b_)},
            {"d_ln2_gamma", to_host(b_, dln2_g_)}, {"d_ln2_beta", to_host(b_, dln2_b_)}};
  }

  /// fc1's input gradient (from dF1_), through layer norm 2, plus the residual: dH1.
  Tensor mlp_input_backward(const Tensor& dy) {
    const int T = static_cast<int>(T_), h = static_cast<int>(h_), f = static_cast<int>(f_);
    dLN2_ = Tensor(a_, T_ * h_, e_);
    b_.gemm(false, false, T, h, f, 1.0f, dF1_.data(), f, fc1_w_.data(), h, 0.0f, dLN2_.data(), h);
    Tensor dH1(a_, T_ * h_, e_);
    b_.copy_bytes(dy.data(), dH1.data(), dH1.bytes());
    b_.layernorm_backward_input(dLN2_.data(), h1_.data(), ln2_g_.data(), mean2_.as<float>(),
                                rstd2_.as<float>(), dH1.data(), T, h, true);
    return dH1;
  }

 private:
  [[nodiscard]] AttentionGeometry attention_geometry() const {
    return {static_cast<int>(s_.micro_batch), static_cast<int>(s_.seq), static_cast<int>(heads_),
            static_cast<int>(d_), 1.0f / std::sqrt(static_cast<float>(d_)), kDropout, seed_ + 101};
  }
  /// Runs after layer norm 1 and the QKV GEMM (qkv_ holds Q, K, V).
  Tensor forward_fused(const Tensor& x) {
    const int T = static_cast<int>(T_), h = static_cast<int>(h_), f = static_cast<int>(f_);
    const int w = static_cast<int>(w_);
    ctx_ = Tensor(a_, T_ * w_, e_);
    lse_ = Tensor(a_, s_.micro_batch * heads_ * s_.seq, 4);
    const AttentionGeometry g = attention_geometry();
    fused_->attention_forward(qkv_.data(), ctx_.data(), lse_.as<float>(), g.batch, g.seq, g.heads, g.heads,
                              g.head_dim, g.scale, g.dropout_p, g.seed);
    h1_ = Tensor(a_, T_ * h_, e_);
    {
      Tensor proj(a_, T_ * h_, e_);
      b_.gemm(false, true, T, h, w, 1.0f, ctx_.data(), w, proj_w_.data(), w, 0.0f, proj.data(), h);
      fused_->bias_dropout_add_forward(proj.data(), proj_b_.data(), x.data(), h1_.data(), T, h, kDropout, seed_ + 102);
    }
    ln2_ = Tensor(a_, T_ * h_, e_);
    mean2_ = Tensor(a_, T_, 4);
    rstd2_ = Tensor(a_, T_, 4);
    b_.layernorm_forward(h1_.data(), ln2_g_.data(), ln2_b_.data(), ln2_.data(), mean2_.as<float>(),
                         rstd2_.as<float>(), T, h);
    f1_ = Tensor(a_, T_ * f_, e_);  // the pre-activation: all the MLP keeps
    Tensor y(a_, T_ * h_, e_);
    {
      Tensor g(a_, T_ * f_, e_), f2(a_, T_ * h_, e_);
      fused_->linear_bias_gelu_forward(ln2_.data(), fc1_w_.data(), fc1_b_.data(), f1_.data(), g.data(), T, f, h);
      b_.gemm(false, true, T, h, f, 1.0f, g.data(), f, fc2_w_.data(), f, 0.0f, f2.data(), h);
      fused_->bias_dropout_add_forward(f2.data(), fc2_b_.data(), h1_.data(), y.data(), T, h, kDropout, seed_ + 103);
    }
    return y;
  }

  Tensor backward_input_fused(const Tensor& dy) {
    const int T = static_cast<int>(T_), h = static_cast<int>(h_), f = static_cast<int>(f_);
    const int w = static_cast<int>(w_);
    dF2_ = Tensor(a_, T_ * h_, e_);
    fused_->bias_dropout_add_backward(dy.data(), dF2_.data(), T, h, kDropout, seed_ + 103);
    dF1_ = Tensor(a_, T_ * f_, e_);
    fused_->linear_dgelu_backward(dF2_.data(), fc2_w_.data(), f1_.data(), dF1_.data(), dfc1_b_.data(), T, f, h);
    Tensor dH1 = mlp_input_backward(dy);
    dProj_ = Tensor(a_, T_ * h_, e_);
    fused_->bias_dropout_add_backward(dH1.data(), dProj_.data(), T, h, kDropout, seed_ + 102);
    dQKV_ = Tensor(a_, T_ * 3 * w_, e_);
    {
      Tensor dCtx(a_, T_ * w_, e_);
      b_.gemm(false, false, T, w, h, 1.0f, dProj_.data(), h, proj_w_.data(), w, 0.0f, dCtx.data(), w);
      const AttentionGeometry g = attention_geometry();
      fused_->attention_backward(qkv_.data(), ctx_.data(), dCtx.data(), lse_.as<float>(), dQKV_.data(), g.batch,
                                 g.seq, g.heads, g.heads, g.head_dim, g.scale, g.dropout_p, g.seed);
    }
    lse_.reset();
    qkv_.reset();
    dLN1_ = Tensor(a_, T_ * h_, e_);
    b_.gemm(false, false, T, h, 3 * w, 1.0f, dQKV_.data(), 3 * w, qkv_w_.data(), h, 0.0f, dLN1_.data(), h);
    b_.layernorm_backward_input(dLN1_.data(), x_->data(), ln1_g_.data(), mean1_.as<float>(),
                                rstd1_.as<float>(), dH1.data(), T, h, true);
    return dH1;
  }

  void linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, int rows,
                      int out, int in) {
    ppsim::cal::linear_forward(b_, x, w, y, rows, out, in);
    b_.bias_add(y.data(), bias.data(), rows, out);
  }
  void linear_weight_grad(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db, int rows,
                          int out, int in) {
    ppsim::cal::linear_weight_grad(b_, dy, x, dw, rows, out, in);
    b_.bias_backward(dy.data(), db.data(), rows, out);
  }

  Allocator& a_;
  Backend& b_;
  LayerShape s_;
  int e_;
  std::int64_t h_, w_, f_, heads_, d_, T_;  // w_, f_, heads_: this GPU's shard (h/t, ffn/t, heads/t)
  std::uint64_t seed_;
  FusedOps* fused_{nullptr};  // set when shape.kernels == fused
  Tensor qkv_w_, qkv_b_, proj_w_, proj_b_, fc1_w_, fc1_b_, fc2_w_, fc2_b_, ln1_g_, ln1_b_, ln2_g_, ln2_b_;
  Tensor dqkv_w_, dqkv_b_, dproj_w_, dproj_b_, dfc1_w_, dfc1_b_, dfc2_w_, dfc2_b_, dln1_g_, dln1_b_,
      dln2_g_, dln2_b_;
  const Tensor* x_{nullptr};
  PlainAttentionSaved attn_;  // plain: P, dropout(P) and its mask
  Tensor ln1_, mean1_, rstd1_, qkv_, ctx_, mask_o_, h1_, ln2_, mean2_, rstd2_, f1_,
      g_, mask2_, lse_;
  Tensor dQKV_, dProj_, dF1_, dF2_, dLN1_, dLN2_;
};

}  // namespace

namespace {
const void* at(const void* p, std::int64_t elements, int e) { return static_cast<const char*>(p) + elements * e; }
void* at(void* p, std::int64_t elements, int e) { return static_cast<char*>(p) + elements * e; }
}  // namespace

// Scores -> probabilities P (saved) -> dropout Pd (saved, with its mask) -> ctx = Pd V,
// two batched GEMMs per sample over its heads.
PlainAttentionSaved plain_attention_forward(Allocator& a, const AttentionGeometry& g, const void* qkv, void* ctx) {
  Backend& b = a.backend();
  const int e = dtype_bytes(b.dtype()), s = g.seq, d = g.head_dim, w = g.heads * g.head_dim;
  const std::int64_t ss = static_cast<std::int64_t>(s) * s, attn = static_cast<std::int64_t>(g.batch) * g.heads * ss;
  PlainAttentionSaved t{Tensor(a, attn, e), {}, {}};
  for (int bi = 0; bi < g.batch; ++bi) {
    const std::int64_t row = static_cast<std::int64_t>(bi) * s;
    b.gemm_batched(false, true, s, s, d, g.scale, at(qkv, row * 3 * w, e), 3 * w, d, at(qkv, row * 3 * w + w, e),
                   3 * w, d, 0.0f, t.P.at(bi * g.heads * ss), s, ss, g.heads);
  }
  b.softmax_causal_forward(t.P.data(), attn / s, s);
  t.Pd = Tensor(a, attn, e);
  t.mask = Tensor(a, attn, 1);
  b.dropout_forward(t.P.data(), t.Pd.data(), t.mask.as<std::uint8_t>(), attn, g.dropout_p, g.seed);
  for (int bi = 0; bi < g.batch; ++bi) {
    const std::int64_t row = static_cast<std::int64_t>(bi) * s;
    b.gemm_batched(false, false, s, d, s, 1.0f, t.Pd.at(bi * g.heads * ss), s, ss,
                   at(qkv, row * 3 * w + 2 * w, e), 3 * w, d, 0.0f, at(ctx, row * w, e), w, d, g.heads);
  }
  return t;
}

// dPd = dctx V^T, dV = Pd^T dctx; dP = dropout'(dPd); dS = softmax'(dP) * scale;
// dQ = dS K, dK = dS^T Q. Frees the saved tensors as soon as they are used.
void plain_attention_backward(Allocator& a, const AttentionGeometry& g, PlainAttentionSaved& t, const void* qkv,
                              const void* dctx, void* dqkv) {
  Backend& b = a.backend();
  const int e = dtype_bytes(b.dtype()), s = g.seq, d = g.head_dim, w = g.heads * g.head_dim;
  const std::int64_t ss = static_cast<std::int64_t>(s) * s, attn = static_cast<std::int64_t>(g.batch) * g.heads * ss;
  Tensor dP(a, attn, e);
  for (int bi = 0; bi < g.batch; ++bi) {
    const std::int64_t row = static_cast<std::int64_t>(bi) * s;
    b.gemm_batched(false, true, s, s, d, 1.0f, at(dctx, row * w, e), w, d, at(qkv, row * 3 * w + 2 * w, e), 3 * w, d,
                   0.0f, dP.at(bi * g.heads * ss), s, ss, g.heads);
    b.gemm_batched(true, false, s, d, s, 1.0f, t.Pd.at(bi * g.heads * ss), s, ss, at(dctx, row * w, e), w, d, 0.0f,
                   at(dqkv, row * 3 * w + 2 * w, e), 3 * w, d, g.heads);
  }
  t.Pd.reset();
  b.dropout_backward(dP.data(), t.mask.as<std::uint8_t>(), dP.data(), attn, g.dropout_p);
  t.mask.reset();
  b.softmax_backward(t.P.data(), dP.data(), attn / s, s, g.scale);
  t.P.reset();
  for (int bi = 0; bi < g.batch; ++bi) {
    const std::int64_t row = static_cast<std::int64_t>(bi) * s;
    b.gemm_batched(false, false, s, d, s, 1.0f, dP.at(bi * g.heads * ss), s, ss, at(qkv, row * 3 * w + w, e), 3 * w,
                   d, 0.0f, at(dqkv, row * 3 * w, e), 3 * w, d, g.heads);
    b.gemm_batched(true, false, s, d, s, 1.0f, dP.at(bi * g.heads * ss), s, ss, at(qkv, row * 3 * w, e), 3 * w, d,
                   0.0f, at(dqkv, row * 3 * w + w, e), 3 * w, d, g.heads);
  }
}

std::unique_ptr<Layer> make_block_layer(Allocator& a, const LayerShape& s, std::uint64_t seed) {
  return std::make_unique<BlockLayer>(a, s, seed);
}

}  // namespace ppsim::cal
