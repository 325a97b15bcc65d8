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
#include <cmath>

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

  Tensor make_input(std::uint64_t seed) override {
    Tensor t(a_, T_ * h_, e_);
    b_.fill_uniform(t.data(), T_ * h_, seed, 1.0f);
    return t;
  }
  Tensor make_output_grad(std::uint64_t seed) override { return make_input(seed); }
  [[nodiscard]] std::int64_t retained_input_bytes() const override { return T_ * h_ * e_; }

  Tensor forward(const Tensor& x) override {
    const int T = static_cast<int>(T_), h = static_cast<int>(h_), f = static_cast<int>(f_);
    const int w = static_cast<int>(w_), heads = static_cast<int>(heads_), d = static_cast<int>(d_);
    const int s = static_cast<int>(s_.seq), nb = static_cast<int>(s_.micro_batch);
    const std::int64_t ss = static_cast<std::int64_t>(s) * s;
    const std::int64_t attn = static_cast<std::int64_t>(nb) * heads * ss;
    x_ = &x;
    ln1_ = Tensor(a_, T_ * h_, e_);
    mean1_ = Tensor(a_, T_, 4);
    rstd1_ = Tensor(a_, T_, 4);
    b_.layernorm_forward(x.data(), ln1_g_.data(), ln1_b_.data(), ln1_.data(), mean1_.as<float>(),
                         rstd1_.as<float>(), T, h);
    qkv_ = Tensor(a_, T_ * 3 * w_, e_);
    linear_forward(ln1_, qkv_w_, qkv_b_, qkv_, T, 3 * w, h);
    // Scores -> probabilities P (saved) -> dropout Pd (saved, with its mask).
    P_ = Tensor(a_, attn, e_);
    for (int bi = 0; bi < nb; ++bi)
      b_.gemm_batched(false, true, s, s, d, 1.0f / std::sqrt(static_cast<float>(d)),
                      qkv_.at(static_cast<std::int64_t>(bi) * s * 3 * w), 3 * w, d,
                      qkv_.at(static_cast<std::int64_t>(bi) * s * 3 * w + w), 3 * w, d, 0.0f,
                      P_.at(bi * heads * ss), s, ss, heads);
    b_.softmax_causal_forward(P_.data(), attn / s, s);
    Pd_ = Tensor(a_, attn, e_);
    mask_attn_ = Tensor(a_, attn, 1);
    b_.dropout_forward(P_.data(), Pd_.data(), mask_attn_.as<std::uint8_t>(), attn, kDropout, seed_ + 101);
    ctx_ = Tensor(a_, T_ * w_, e_);
    for (int bi = 0; bi < nb; ++bi)
      b_.gemm_batched(false, false, s, d, s, 1.0f, Pd_.at(bi * heads * ss), s, ss,
                      qkv_.at(static_cast<std::int64_t>(bi) * s * 3 * w + 2 * w), 3 * w, d, 0.0f,
                      ctx_.at(static_cast<std::int64_t>(bi) * s * w), w, d, heads);
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
    const int w = static_cast<int>(w_), heads = static_cast<int>(heads_), d = static_cast<int>(d_);
    const int s = static_cast<int>(s_.seq), nb = static_cast<int>(s_.micro_batch);
    const std::int64_t ss = static_cast<std::int64_t>(s) * s;
    const std::int64_t attn = static_cast<std::int64_t>(nb) * heads * ss;
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
    dLN2_ = Tensor(a_, T_ * h_, e_);
    b_.gemm(false, false, T, h, f, 1.0f, dF1_.data(), f, fc1_w_.data(), h, 0.0f, dLN2_.data(), h);
    Tensor dH1(a_, T_ * h_, e_);
    b_.copy_bytes(dy.data(), dH1.data(), dH1.bytes());
    b_.layernorm_backward_input(dLN2_.data(), h1_.data(), ln2_g_.data(), mean2_.as<float>(),
                                rstd2_.as<float>(), dH1.data(), T, h, true);
    // Attention branch.
    dProj_ = Tensor(a_, T_ * h_, e_);
    b_.dropout_backward(dH1.data(), mask_o_.as<std::uint8_t>(), dProj_.data(), T_ * h_, kDropout);
    mask_o_.reset();
    dQKV_ = Tensor(a_, T_ * 3 * w_, e_);
    {
      Tensor dCtx(a_, T_ * w_, e_);
      b_.gemm(false, false, T, w, h, 1.0f, dProj_.data(), h, proj_w_.data(), w, 0.0f, dCtx.data(), w);
      Tensor dP(a_, attn, e_);
      for (int bi = 0; bi < nb; ++bi) {
        const std::int64_t row = static_cast<std::int64_t>(bi) * s;
        b_.gemm_batched(false, true, s, s, d, 1.0f, dCtx.at(row * w), w, d,
                        qkv_.at(row * 3 * w + 2 * w), 3 * w, d, 0.0f, dP.at(bi * heads * ss), s,
                        ss, heads);
        b_.gemm_batched(true, false, s, d, s, 1.0f, Pd_.at(bi * heads * ss), s, ss,
                        dCtx.at(row * w), w, d, 0.0f, dQKV_.at(row * 3 * w + 2 * w), 3 * w, d,
                        heads);
      }
      Pd_.reset();
      b_.dropout_backward(dP.data(), mask_attn_.as<std::uint8_t>(), dP.data(), attn, kDropout);
      mask_attn_.reset();
      b_.softmax_backward(P_.data(), dP.data(), attn / s, s, 1.0f / std::sqrt(static_cast<float>(d)));
      P_.reset();
      for (int bi = 0; bi < nb; ++bi) {
        const std::int64_t row = static_cast<std::int64_t>(bi) * s;
        b_.gemm_batched(false, false, s, d, s, 1.0f, dP.at(bi * heads * ss), s, ss,
                        qkv_.at(row * 3 * w + w), 3 * w, d, 0.0f, dQKV_.at(row * 3 * w), 3 * w, d,
                        heads);
        b_.gemm_batched(true, false, s, d, s, 1.0f, dP.at(bi * heads * ss), s, ss,
                        qkv_.at(row * 3 * w), 3 * w, d, 0.0f, dQKV_.at(row * 3 * w + w), 3 * w, d,
                        heads);
      }
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
    linear_weight_grad(dF1_, ln2_, dfc1_w_, dfc1_b_, T, f, h);
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

 private:
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
  Tensor qkv_w_, qkv_b_, proj_w_, proj_b_, fc1_w_, fc1_b_, fc2_w_, fc2_b_, ln1_g_, ln1_b_, ln2_g_, ln2_b_;
  Tensor dqkv_w_, dqkv_b_, dproj_w_, dproj_b_, dfc1_w_, dfc1_b_, dfc2_w_, dfc2_b_, dln1_g_, dln1_b_,
      dln2_g_, dln2_b_;
  const Tensor* x_{nullptr};
  Tensor ln1_, mean1_, rstd1_, qkv_, P_, Pd_, mask_attn_, ctx_, mask_o_, h1_, ln2_, mean2_, rstd2_, f1_,
      g_, mask2_;
  Tensor dQKV_, dProj_, dF1_, dF2_, dLN1_, dLN2_;
};

}  // namespace

std::unique_ptr<Layer> make_block_layer(Allocator& a, const LayerShape& s, std::uint64_t seed) {
  return std::make_unique<BlockLayer>(a, s, seed);
}

}  // namespace ppsim::cal
