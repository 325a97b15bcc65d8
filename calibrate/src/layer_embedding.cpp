// Token + learned position embedding with dropout (GPT-2/3 style). Backward-input is
// the dropout gradient (no gradient flows into token ids); backward-weight scatters it
// into the two tables. With shape.tp > 1 the token table is one GPU's vocabulary-parallel
// shard of vocab/t rows (Megatron's VocabParallelEmbedding) and the ids fall in it; the
// position table and the output stay whole (the all-reduce that sums the shards' outputs
// is communication, costed apart). A Llama model's embedding (shape.arch llama) is the
// token table alone: rotary positions live in the blocks, and Llama has no dropout.
#include "ppsim/calibrate/layers.h"

namespace ppsim::cal {
namespace {

constexpr float kDropout = 0.1f;

class EmbeddingLayer final : public Layer {
 public:
  EmbeddingLayer(Allocator& a, const LayerShape& s, std::uint64_t seed)
      : a_(a), b_(a.backend()), s_(s), e_(dtype_bytes(a.backend().dtype())), T_(s.tokens()),
        seed_(seed), gpt_(s.arch != BlockArch::llama) {
    make_parameter(a_, table_, dtable_, s.local_vocab() * s.hidden, seed_ + 1, 0.02f, 0);
    if (gpt_) make_parameter(a_, pos_, dpos_, s.seq * s.hidden, seed_ + 2, 0.02f, 0);
  }
  [[nodiscard]] const LayerShape& shape() const override { return s_; }

  Tensor make_input(std::uint64_t seed) override {
    const std::int64_t rows = s_.local_vocab();
    std::vector<std::int32_t> ids(static_cast<std::size_t>(T_));
    for (std::int64_t t = 0; t < T_; ++t)
      ids[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(
          hash_uniform(seed, static_cast<std::uint64_t>(t)) * static_cast<float>(rows)) %
          static_cast<std::int32_t>(rows);
    Tensor t(a_, T_, 4);
    b_.upload_bytes(ids.data(), t.data(), t.bytes());
    return t;
  }
  Tensor make_output_grad(std::uint64_t seed) override {
    Tensor t(a_, T_ * s_.hidden, e_);
    b_.fill_uniform(t.data(), t.elements(), seed, 1.0f);
    return t;
  }
  [[nodiscard]] std::int64_t retained_input_bytes() const override { return 4 * T_; }

  Tensor forward(const Tensor& ids) override {
    ids_ = &ids;
    const int h = static_cast<int>(s_.hidden);
    Tensor y(a_, T_ * s_.hidden, e_);
    b_.embedding_forward(ids.as<std::int32_t>(), table_.data(), pos_.data(), y.data(),
                         static_cast<int>(T_), static_cast<int>(s_.seq), h);
    if (!gpt_) return y;
    mask_ = Tensor(a_, T_ * s_.hidden, 1);
    b_.dropout_forward(y.data(), y.data(), mask_.as<std::uint8_t>(), y.elements(), kDropout, seed_ + 7);
    return y;
  }
  Tensor backward_input(const Tensor& dy) override {
    demb_ = Tensor(a_, T_ * s_.hidden, e_);
    if (gpt_) {
      b_.dropout_backward(dy.data(), mask_.as<std::uint8_t>(), demb_.data(), demb_.elements(), kDropout);
      mask_.reset();
    } else {  // kept for W: the caller may drop dy first (split backward)
      b_.copy_bytes(dy.data(), demb_.data(), demb_.bytes());
    }
    return {};
  }
  void backward_weight() override {
    b_.embedding_backward(ids_->as<std::int32_t>(), demb_.data(), dtable_.data(), dpos_.data(),
                          static_cast<int>(T_), static_cast<int>(s_.seq), static_cast<int>(s_.hidden));
    demb_.reset();
    ids_ = nullptr;
  }
  std::vector<std::pair<std::string, std::vector<float>>> gradients() override {
    if (!gpt_) return {{"d_token_table", to_host(b_, dtable_)}};
    return {{"d_token_table", to_host(b_, dtable_)}, {"d_position_table", to_host(b_, dpos_)}};
  }

 private:
  Allocator& a_;
  Backend& b_;
  LayerShape s_;
  int e_;
  std::int64_t T_;
  std::uint64_t seed_;
  bool gpt_;  ///< learned positions and dropout (GPT); a Llama embedding has neither
  Tensor table_, pos_, dtable_, dpos_, mask_, demb_;
  const Tensor* ids_{nullptr};
};

}  // namespace

std::unique_ptr<Layer> make_embedding_layer(Allocator& a, const LayerShape& s, std::uint64_t seed) {
  return std::make_unique<EmbeddingLayer>(a, s, seed);
}

}  // namespace ppsim::cal
