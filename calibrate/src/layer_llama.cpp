// Llama block (Touvron et al. 2023; Hugging Face's LlamaDecoderLayer, Megatron-core with
// RMSNorm, rope, swiglu, no bias, num_query_groups): pre-RMSNorm, one fused Q|K|V
// projection h -> (h + 2kv)/t, rotary positions on Q and K (rotate-half, theta 10000),
// causal softmax attention as batched GEMMs with grouped-query heads (query head i reads
// key/value head i / (heads/kv_heads)), output projection h/t -> h, residual, RMSNorm,
// fused gate|up projection h -> 2 ffn/t, SwiGLU silu(gate) * up, down ffn/t -> h,
// residual. No biases, no dropout.
// What forward keeps for backward is the list in model.cpp's Llama formula, exactly:
// the input x and RMSNorm1's output (the QKV GEMM's input), Q and K after rotary and V,
// the softmax output (PV and both backward products read it), the output projection's
// input, the residual h1 and RMSNorm2's output, the gate|up output (SwiGLU's backward
// reads both halves) and the down projection's input; plus 1/rms per token and norm
// (fp32). Megatron saves the same with its fused SwiGLU and rope kernels.
// With shape.kernels == fused the attention core is the backend's flash attention
// (FusedOps, fused.h, with grouped-query heads; Megatron-core's flash attention): it saves
// the fp32 log-sum-exp per query row instead of the s x s softmax output and keeps O (the
// output projection's input, saved anyway); backward recomputes the probabilities tile
// by tile. RMSNorm, rotary and SwiGLU already are one kernel each in both paths (what
// Megatron's fused RMSNorm, rope and SwiGLU do), so the rest of the block is the same.
// With shape.tp > 1 it is one GPU's Megatron shard: heads/t query heads, kv_heads/t
// key/value heads (Megatron needs kv_heads divisible by t), ffn/t gate and up columns;
// the norms and the residual stream stay whole.
#include <cmath>
#include <stdexcept>

#include "ppsim/calibrate/fused.h"
#include "ppsim/calibrate/layers.h"

namespace ppsim::cal {
namespace {

constexpr float kRopeTheta = 10000.0f;  // Llama 1 and 2

class LlamaLayer final : public Layer {
 public:
  LlamaLayer(Allocator& a, const LayerShape& s, std::uint64_t seed)
      : a_(a), b_(a.backend()), s_(s), e_(dtype_bytes(a.backend().dtype())), h_(s.hidden),
        w_(s.attention_width()), kv_(s.kv_width()), f_(s.local_ffn()), heads_(s.local_heads()),
        d_(s.hidden / s.heads), kv_heads_(s.kv_width() / (s.hidden / s.heads)),
        ld_(w_ + 2 * kv_), T_(s.tokens()) {
    if (s.kernels == Kernels::fused) {
      fused_ = b_.fused();
      if (!fused_) throw std::invalid_argument("the " + b_.name() + " backend has no fused kernels (--kernels fused)");
    }
    const float ws = 1.0f / std::sqrt(static_cast<float>(h_));
    make_parameter(a_, qkv_w_, dqkv_w_, ld_ * h_, seed + 1, ws, 0);
    make_parameter(a_, o_w_, do_w_, h_ * w_, seed + 2, ws, 0);
    make_parameter(a_, gu_w_, dgu_w_, 2 * f_ * h_, seed + 3, ws, 0);
    make_parameter(a_, down_w_, ddown_w_, h_ * f_, seed + 4, 1.0f / std::sqrt(static_cast<float>(f_)), 0);
    make_parameter(a_, norm1_, dnorm1_, h_, 0, 0, 1.0f);  // RMSNorm scales start at 1
    make_parameter(a_, norm2_, dnorm2_, h_, 0, 0, 1.0f);
  }

  [[nodiscard]] const LayerShape& shape() const override { return s_; }

  Tensor make_input(std::uint64_t seed) override { return residual_stream(a_, s_, seed); }
  Tensor make_output_grad(std::uint64_t seed) override { return residual_stream(a_, s_, seed); }
  [[nodiscard]] std::int64_t retained_input_bytes() const override { return residual_stream_bytes(b_, s_); }

  Tensor forward(const Tensor& x) override {
    const int T = I(T_), h = I(h_), w = I(w_), f = I(f_), ld = I(ld_);
    x_ = &x;
    n1_ = Tensor(a_, T_ * h_, e_);
    rstd1_ = Tensor(a_, T_, 4);
    b_.rmsnorm_forward(x.data(), norm1_.data(), n1_.data(), rstd1_.as<float>(), T, h);
    qkv_ = Tensor(a_, T_ * ld_, e_);
    linear_forward(b_, n1_, qkv_w_, qkv_, T, ld, h);
    // Q's heads then K's are adjacent columns of each row: one call turns both.
    b_.rotary_forward(qkv_.data(), T_, I(s_.seq), I(heads_ + kv_heads_), I(d_), ld, kRopeTheta);
    ctx_ = Tensor(a_, T_ * w_, e_);
    attention_forward();
    h1_ = Tensor(a_, T_ * h_, e_);
    {
      Tensor o(a_, T_ * h_, e_);
      linear_forward(b_, ctx_, o_w_, o, T, h, w);
      b_.residual_add(x.data(), o.data(), h1_.data(), T_ * h_);
    }
    n2_ = Tensor(a_, T_ * h_, e_);
    rstd2_ = Tensor(a_, T_, 4);
    b_.rmsnorm_forward(h1_.data(), norm2_.data(), n2_.data(), rstd2_.as<float>(), T, h);
    gu_ = Tensor(a_, T_ * 2 * f_, e_);
    linear_forward(b_, n2_, gu_w_, gu_, T, 2 * f, h);
    act_ = Tensor(a_, T_ * f_, e_);
    b_.swiglu_forward(gu_.data(), act_.data(), T, f);
    Tensor y(a_, T_ * h_, e_);
    {
      Tensor down(a_, T_ * h_, e_);
      linear_forward(b_, act_, down_w_, down, T, h, f);
      b_.residual_add(h1_.data(), down.data(), y.data(), T_ * h_);
    }
    return y;
  }

  Tensor backward_input(const Tensor& dy) override {
    const int T = I(T_), h = I(h_), w = I(w_), f = I(f_), ld = I(ld_);
    // MLP branch. The down projection's weight gradient needs dy after the caller has
    // dropped it (split backward): keep a copy.
    dDown_ = Tensor(a_, T_ * h_, e_);
    b_.copy_bytes(dy.data(), dDown_.data(), dDown_.bytes());
    dGU_ = Tensor(a_, T_ * 2 * f_, e_);
    {
      Tensor dAct(a_, T_ * f_, e_);
      linear_backward_input(b_, dy, down_w_, dAct, T, h, f);
      b_.swiglu_backward(dAct.data(), gu_.data(), dGU_.data(), T, f);
    }
    gu_.reset();
    dN2_ = Tensor(a_, T_ * h_, e_);
    linear_backward_input(b_, dGU_, gu_w_, dN2_, T, 2 * f, h);
    dH1_ = Tensor(a_, T_ * h_, e_);  // also the output projection's output gradient (for W)
    b_.copy_bytes(dy.data(), dH1_.data(), dH1_.bytes());
    b_.rmsnorm_backward_input(dN2_.data(), h1_.data(), norm2_.data(), rstd2_.as<float>(), dH1_.data(), T, h, true);
    // Attention branch.
    dQKV_ = Tensor(a_, T_ * ld_, e_);
    {
      Tensor dCtx(a_, T_ * w_, e_);
      linear_backward_input(b_, dH1_, o_w_, dCtx, T, h, w);
      attention_backward(dCtx);
    }
    qkv_.reset();
    lse_.reset();
    b_.rotary_backward(dQKV_.data(), T_, I(s_.seq), I(heads_ + kv_heads_), I(d_), ld, kRopeTheta);
    dN1_ = Tensor(a_, T_ * h_, e_);
    linear_backward_input(b_, dQKV_, qkv_w_, dN1_, T, ld, h);
    Tensor dx(a_, T_ * h_, e_);  // the residual carries dH1 through
    b_.copy_bytes(dH1_.data(), dx.data(), dx.bytes());
    b_.rmsnorm_backward_input(dN1_.data(), x_->data(), norm1_.data(), rstd1_.as<float>(), dx.data(), T, h, true);
    return dx;
  }

  void backward_weight() override {
    const int T = I(T_), h = I(h_), w = I(w_), f = I(f_), ld = I(ld_);
    linear_weight_grad(b_, dQKV_, n1_, dqkv_w_, T, ld, h);
    linear_weight_grad(b_, dH1_, ctx_, do_w_, T, h, w);
    linear_weight_grad(b_, dGU_, n2_, dgu_w_, T, 2 * f, h);
    linear_weight_grad(b_, dDown_, act_, ddown_w_, T, h, f);
    b_.rmsnorm_backward_weight(dN1_.data(), x_->data(), rstd1_.as<float>(), dnorm1_.data(), T, h);
    b_.rmsnorm_backward_weight(dN2_.data(), h1_.data(), rstd2_.as<float>(), dnorm2_.data(), T, h);
    for (Tensor* t : {&dQKV_, &dH1_, &dGU_, &dDown_, &dN1_, &dN2_, &n1_, &rstd1_, &ctx_, &h1_, &n2_, &rstd2_, &act_})
      t->reset();
    x_ = nullptr;
  }

  std::vector<std::pair<std::string, std::vector<float>>> gradients() override {
    return {{"d_qkv_weight", to_host(b_, dqkv_w_)},     {"d_o_weight", to_host(b_, do_w_)},
            {"d_gate_up_weight", to_host(b_, dgu_w_)},  {"d_down_weight", to_host(b_, ddown_w_)},
            {"d_norm1_gamma", to_host(b_, dnorm1_)},    {"d_norm2_gamma", to_host(b_, dnorm2_)}};
  }
  std::vector<std::pair<std::string, const Tensor*>> parameters() override {
    return {{"qkv_weight", &qkv_w_}, {"o_weight", &o_w_},         {"gate_up_weight", &gu_w_},
            {"down_weight", &down_w_}, {"norm1_gamma", &norm1_}, {"norm2_gamma", &norm2_}};
  }

 private:
  static int I(std::int64_t v) { return static_cast<int>(v); }

  /// Grouped-query attention as batched GEMMs: for each sample and each query head j of
  /// a group, one call batched over the key/value heads k, query head k*g + j against
  /// key/value head k (g = heads / kv_heads; g = 1 is plain multi-head attention).
  struct Heads {
    int s, d, g, kvh, ld, w;
    std::int64_t ss;
  };
  [[nodiscard]] Heads heads() const {
    return {I(s_.seq), I(d_), I(heads_ / kv_heads_), I(kv_heads_), I(ld_), I(w_), s_.seq * s_.seq};
  }
  /// Offsets (elements) of sample bi's query head j, its keys, values and probabilities.
  [[nodiscard]] std::int64_t q_at(const Heads& a, int bi, int j) const { return static_cast<std::int64_t>(bi) * a.s * a.ld + j * a.d; }
  [[nodiscard]] std::int64_t k_at(const Heads& a, int bi) const { return static_cast<std::int64_t>(bi) * a.s * a.ld + a.w; }
  [[nodiscard]] std::int64_t v_at(const Heads& a, int bi) const { return k_at(a, bi) + I(kv_); }
  [[nodiscard]] std::int64_t p_at(const Heads& a, int bi, int j) const { return (static_cast<std::int64_t>(bi) * heads_ + j) * a.ss; }
  [[nodiscard]] std::int64_t c_at(const Heads& a, int bi, int j) const { return static_cast<std::int64_t>(bi) * a.s * a.w + j * a.d; }

  /// Flash attention (fused): O into ctx_, the fp32 log-sum-exp into lse_. No dropout.
  void attention_forward() {
    const Heads a = heads();
    const float scale = 1.0f / std::sqrt(static_cast<float>(a.d));
    if (fused_) {
      lse_ = Tensor(a_, s_.micro_batch * heads_ * s_.seq, 4);
      fused_->attention_forward(qkv_.data(), ctx_.data(), lse_.as<float>(), I(s_.micro_batch), a.s, I(heads_), a.kvh,
                                a.d, scale, 0.0f, 0);
      return;
    }
    P_ = Tensor(a_, s_.micro_batch * heads_ * s_.seq * s_.seq, e_);
    for (int bi = 0; bi < I(s_.micro_batch); ++bi)
      for (int j = 0; j < a.g; ++j)  // S = Q K^T / sqrt(d)
        b_.gemm_batched(false, true, a.s, a.s, a.d, scale, qkv_.at(q_at(a, bi, j)), a.ld, a.g * a.d,
                        qkv_.at(k_at(a, bi)), a.ld, a.d, 0.0f, P_.at(p_at(a, bi, j)), a.s, a.g * a.ss, a.kvh);
    b_.softmax_causal_forward(P_.data(), P_.elements() / a.s, a.s);
    for (int bi = 0; bi < I(s_.micro_batch); ++bi)
      for (int j = 0; j < a.g; ++j)  // context = P V
        b_.gemm_batched(false, false, a.s, a.d, a.s, 1.0f, P_.at(p_at(a, bi, j)), a.s, a.g * a.ss,
                        qkv_.at(v_at(a, bi)), a.ld, a.d, 0.0f, ctx_.at(c_at(a, bi, j)), a.w, a.g * a.d, a.kvh);
  }

  /// dQKV from the context gradient; a key/value head sums the gradients of its g query
  /// heads (beta = 1 after the first).
  void attention_backward(const Tensor& dCtx) {
    const Heads a = heads();
    if (fused_) {
      fused_->attention_backward(qkv_.data(), ctx_.data(), dCtx.data(), lse_.as<float>(), dQKV_.data(),
                                 I(s_.micro_batch), a.s, I(heads_), a.kvh, a.d,
                                 1.0f / std::sqrt(static_cast<float>(a.d)), 0.0f, 0);
      return;
    }
    Tensor dP(a_, P_.elements(), e_);
    for (int bi = 0; bi < I(s_.micro_batch); ++bi)
      for (int j = 0; j < a.g; ++j) {
        const float beta = j == 0 ? 0.0f : 1.0f;
        b_.gemm_batched(false, true, a.s, a.s, a.d, 1.0f, dCtx.at(c_at(a, bi, j)), a.w, a.g * a.d,
                        qkv_.at(v_at(a, bi)), a.ld, a.d, 0.0f, dP.at(p_at(a, bi, j)), a.s, a.g * a.ss, a.kvh);
        b_.gemm_batched(true, false, a.s, a.d, a.s, 1.0f, P_.at(p_at(a, bi, j)), a.s, a.g * a.ss,
                        dCtx.at(c_at(a, bi, j)), a.w, a.g * a.d, beta, dQKV_.at(v_at(a, bi)), a.ld, a.d, a.kvh);
      }
    b_.softmax_backward(P_.data(), dP.data(), P_.elements() / a.s, a.s, 1.0f / std::sqrt(static_cast<float>(a.d)));
    P_.reset();
    for (int bi = 0; bi < I(s_.micro_batch); ++bi)
      for (int j = 0; j < a.g; ++j) {
        const float beta = j == 0 ? 0.0f : 1.0f;
        b_.gemm_batched(false, false, a.s, a.d, a.s, 1.0f, dP.at(p_at(a, bi, j)), a.s, a.g * a.ss,
                        qkv_.at(k_at(a, bi)), a.ld, a.d, 0.0f, dQKV_.at(q_at(a, bi, j)), a.ld, a.g * a.d, a.kvh);
        b_.gemm_batched(true, false, a.s, a.d, a.s, 1.0f, dP.at(p_at(a, bi, j)), a.s, a.g * a.ss,
                        qkv_.at(q_at(a, bi, j)), a.ld, a.g * a.d, beta, dQKV_.at(k_at(a, bi)), a.ld, a.d, a.kvh);
      }
  }

  Allocator& a_;
  Backend& b_;
  LayerShape s_;
  int e_;
  // This GPU's shard: w_ = h/t query width, kv_ = kv_heads/t x d key (and value) width,
  // f_ = ffn/t, heads_ and kv_heads_ = its query and key/value heads, ld_ = w + 2kv.
  std::int64_t h_, w_, kv_, f_, heads_, d_, kv_heads_, ld_, T_;
  FusedOps* fused_{nullptr};  // set when shape.kernels == fused
  Tensor qkv_w_, o_w_, gu_w_, down_w_, norm1_, norm2_;
  Tensor dqkv_w_, do_w_, dgu_w_, ddown_w_, dnorm1_, dnorm2_;
  const Tensor* x_{nullptr};
  Tensor n1_, rstd1_, qkv_, P_, ctx_, h1_, n2_, rstd2_, gu_, act_;
  Tensor lse_;  // fused: the flash attention's log-sum-exp (fp32), instead of P_
  Tensor dQKV_, dH1_, dGU_, dDown_, dN1_, dN2_;
};

}  // namespace

std::unique_ptr<Layer> make_llama_block_layer(Allocator& a, const LayerShape& s, std::uint64_t seed) {
  return std::make_unique<LlamaLayer>(a, s, seed);
}

}  // namespace ppsim::cal
