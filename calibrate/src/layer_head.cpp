// Output head: final layer norm, logits = x W^T over the vocabulary, cross-entropy
// (softmax written over the logits in place, as Megatron's fused kernel does). With
// shape.tp > 1 it is one GPU's vocabulary-parallel shard: vocab/t logit rows and the
// softmax over them (the all-reduces of the row max and sum are communication, costed
// apart); the final layer norm stays whole. A Llama model's head (shape.arch llama)
// normalises with RMSNorm (a scale, no shift; 1/rms saved, no mean).
#include <cmath>

#include "ppsim/calibrate/layers.h"

namespace ppsim::cal {
namespace {

class HeadLayer final : public Layer {
 public:
  HeadLayer(Allocator& a, const LayerShape& s, std::uint64_t seed)
      : a_(a), b_(a.backend()), s_(s), e_(dtype_bytes(a.backend().dtype())), T_(s.tokens()),
        rms_(s.arch == BlockArch::llama) {
    const std::int64_t h = s.hidden;
    const std::int64_t rows = s.local_vocab();
    make_parameter(a_, w_, dw_, rows * h, seed + 1, 1.0f / std::sqrt(static_cast<float>(h)), 0);
    make_parameter(a_, gamma_, dgamma_, h, 0, 0, 1.0f);
    if (!rms_) make_parameter(a_, beta_, dbeta_, h, 0, 0, 0.0f);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(T_));
    for (std::int64_t t = 0; t < T_; ++t)
      labels[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(
          hash_uniform(seed + 2, static_cast<std::uint64_t>(t)) * static_cast<float>(rows)) %
          static_cast<std::int32_t>(rows);
    labels_ = Tensor(a_, T_, 4);
    b_.upload_bytes(labels.data(), labels_.data(), labels_.bytes());
  }
  [[nodiscard]] const LayerShape& shape() const override { return s_; }
  Tensor make_input(std::uint64_t seed) override { return residual_stream(a_, s_, seed); }
  Tensor make_output_grad(std::uint64_t) override { return {}; }
  [[nodiscard]] std::int64_t retained_input_bytes() const override { return residual_stream_bytes(b_, s_); }

  Tensor forward(const Tensor& x) override {
    const int T = static_cast<int>(T_), h = static_cast<int>(s_.hidden), V = static_cast<int>(s_.local_vocab());
    x_ = &x;
    ln_ = Tensor(a_, T_ * h, e_);
    rstd_ = Tensor(a_, T_, 4);
    if (rms_) {
      b_.rmsnorm_forward(x.data(), gamma_.data(), ln_.data(), rstd_.as<float>(), T, h);
    } else {
      mean_ = Tensor(a_, T_, 4);
      b_.layernorm_forward(x.data(), gamma_.data(), beta_.data(), ln_.data(), mean_.as<float>(),
                           rstd_.as<float>(), T, h);
    }
    probs_ = Tensor(a_, T_ * V, e_);
    b_.gemm(false, true, T, V, h, 1.0f, ln_.data(), h, w_.data(), h, 0.0f, probs_.data(), V);
    Tensor loss(a_, T_, 4);
    b_.cross_entropy_forward(probs_.data(), labels_.as<std::int32_t>(), loss.as<float>(), T, V);
    return loss;
  }
  Tensor backward_input(const Tensor&) override {
    const int T = static_cast<int>(T_), h = static_cast<int>(s_.hidden), V = static_cast<int>(s_.local_vocab());
    b_.cross_entropy_backward(probs_.data(), labels_.as<std::int32_t>(), T, V, 1.0f / static_cast<float>(T));
    dln_ = Tensor(a_, T_ * h, e_);
    b_.gemm(false, false, T, h, V, 1.0f, probs_.data(), V, w_.data(), h, 0.0f, dln_.data(), h);
    Tensor dx(a_, T_ * h, e_);
    if (rms_)
      b_.rmsnorm_backward_input(dln_.data(), x_->data(), gamma_.data(), rstd_.as<float>(), dx.data(), T, h, false);
    else
      b_.layernorm_backward_input(dln_.data(), x_->data(), gamma_.data(), mean_.as<float>(),
                                  rstd_.as<float>(), dx.data(), T, h, false);
    return dx;
  }
  void backward_weight() override {
    const int T = static_cast<int>(T_), h = static_cast<int>(s_.hidden), V = static_cast<int>(s_.local_vocab());
    b_.gemm(true, false, V, h, T, 1.0f, probs_.data(), V, ln_.data(), h, 1.0f, dw_.data(), h);
    if (rms_)
      b_.rmsnorm_backward_weight(dln_.data(), x_->data(), rstd_.as<float>(), dgamma_.data(), T, h);
    else
      b_.layernorm_backward_weight(dln_.data(), x_->data(), mean_.as<float>(), rstd_.as<float>(),
                                   dgamma_.data(), dbeta_.data(), T, h);
    for (Tensor* t : {&probs_, &ln_, &dln_, &mean_, &rstd_}) t->reset();
    x_ = nullptr;
  }
  std::vector<std::pair<std::string, std::vector<float>>> gradients() override {
    if (rms_) return {{"d_head_weight", to_host(b_, dw_)}, {"d_normf_gamma", to_host(b_, dgamma_)}};
    return {{"d_head_weight", to_host(b_, dw_)}, {"d_lnf_gamma", to_host(b_, dgamma_)},
            {"d_lnf_beta", to_host(b_, dbeta_)}};
  }

 private:
  Allocator& a_;
  Backend& b_;
  LayerShape s_;
  int e_;
  std::int64_t T_;
  bool rms_;  ///< Llama: RMSNorm (gamma only) instead of a layer norm
  Tensor w_, dw_, gamma_, beta_, dgamma_, dbeta_, labels_, ln_, mean_, rstd_, probs_, dln_;
  const Tensor* x_{nullptr};
};

}  // namespace

std::unique_ptr<Layer> make_head_layer(Allocator& a, const LayerShape& s, std::uint64_t seed) {
  return std::make_unique<HeadLayer>(a, s, seed);
}

}  // namespace ppsim::cal
