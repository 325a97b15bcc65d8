#pragma once
/// @file layers.h
/// @brief The measured layers, written once over the Backend interface. Each layer
/// kind lives in its own file (layer_block.cpp and layer_llama.cpp for the GPT and Llama
/// blocks, layer_embedding.cpp, layer_head.cpp) and is registered in the table returned
/// by layer_kinds().
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/model.h"

namespace ppsim::cal {

/// @brief One layer with its weights and gradients. forward() saves what backward
/// needs; backward_input() produces the input gradient and keeps what backward_weight()
/// needs; backward_weight() accumulates weight gradients and frees the saved tensors.
class Layer {
 public:
  virtual ~Layer() = default;
  [[nodiscard]] virtual const LayerShape& shape() const = 0;
  /// @brief An input as the previous layer would send it (token ids for the embedding).
  virtual Tensor make_input(std::uint64_t seed) = 0;
  /// @brief A gradient of the output as the next layer would send it (empty for the head).
  virtual Tensor make_output_grad(std::uint64_t seed) = 0;
  /// @brief Runs forward on `input` (kept by reference until backward_weight) and
  /// returns the output (the head returns its per-token loss).
  virtual Tensor forward(const Tensor& input) = 0;
  /// @brief Returns the input gradient (empty for the embedding).
  virtual Tensor backward_input(const Tensor& output_grad) = 0;
  virtual void backward_weight() = 0;
  /// @brief Bytes of the input kept for backward (allocated by the caller).
  [[nodiscard]] virtual std::int64_t retained_input_bytes() const = 0;
  /// @brief Named host copies of outputs and gradients after a step, for cross-backend checks.
  virtual std::vector<std::pair<std::string, std::vector<float>>> gradients() = 0;
  /// @brief The weights, named and ordered as gradients() names their gradients, for
  /// finite-difference tests; empty where a layer does not expose them.
  virtual std::vector<std::pair<std::string, const Tensor*>> parameters() { return {}; }
};

/// @brief One registered layer kind.
struct LayerKindEntry {
  LayerKind kind;
  std::unique_ptr<Layer> (*make)(Allocator&, const LayerShape&, std::uint64_t seed);
};
/// @brief The table of measured layer kinds.
const std::vector<LayerKindEntry>& layer_kinds();
/// @brief Makes a layer of `shape.kind` (a Llama block when shape.arch is llama) with
/// weights drawn from `seed`.
std::unique_ptr<Layer> make_layer(Allocator& alloc, const LayerShape& shape, std::uint64_t seed);

std::unique_ptr<Layer> make_block_layer(Allocator&, const LayerShape&, std::uint64_t seed);
std::unique_ptr<Layer> make_llama_block_layer(Allocator&, const LayerShape&, std::uint64_t seed);
std::unique_ptr<Layer> make_embedding_layer(Allocator&, const LayerShape&, std::uint64_t seed);
std::unique_ptr<Layer> make_head_layer(Allocator&, const LayerShape&, std::uint64_t seed);

/// @brief The attention core of one GPU's block: `batch` samples of `seq` tokens, `heads`
/// heads of `head_dim`, scores scaled by `scale`, dropout `dropout_p` with `seed`.
struct AttentionGeometry {
  int batch{1}, seq{0}, heads{0}, head_dim{0};
  float scale{1.0f}, dropout_p{0.0f};
  std::uint64_t seed{0};
};
/// @brief What plain attention keeps for backward: probabilities, dropout output, mask.
struct PlainAttentionSaved {
  Tensor P, Pd, mask;
};
/// @brief The plain (unfused) attention core: QK^T, causal softmax, dropout, PV as
/// separate kernels over `qkv` ([batch*seq, 3w]) into `ctx` ([batch*seq, w]). The block's
/// plain path and the check of the fused attention (FusedOps) both run it.
PlainAttentionSaved plain_attention_forward(Allocator& a, const AttentionGeometry& g, const void* qkv, void* ctx);
/// @brief Its backward: dQ, dK, dV into `dqkv` from `dctx`; releases `saved`.
void plain_attention_backward(Allocator& a, const AttentionGeometry& g, PlainAttentionSaved& saved, const void* qkv,
                              const void* dctx, void* dqkv);
/// @brief The residual stream the blocks and the head read (and the gradient a block gets
/// back): `tokens x hidden` storage elements, uniform in [-1, 1] from `seed`.
Tensor residual_stream(Allocator& a, const LayerShape& s, std::uint64_t seed);
/// @brief Its bytes on backend `b`: what a layer's caller keeps alive while the layer holds it.
std::int64_t residual_stream_bytes(const Backend& b, const LayerShape& s);
/// @brief A weight of `n` elements and its zeroed gradient: uniform in [-scale, scale]
/// from `seed`, or every element `fill` when scale is 0 (norm scales and shifts).
void make_parameter(Allocator& a, Tensor& weight, Tensor& grad, std::int64_t n, std::uint64_t seed,
                    float scale, float fill);
/// @brief y[rows, out] = x[rows, in] W^T, W stored [out, in] as torch.nn.Linear does.
void linear_forward(Backend& b, const Tensor& x, const Tensor& w, Tensor& y, int rows, int out, int in);
/// @brief dx[rows, in] = dy[rows, out] W.
void linear_backward_input(Backend& b, const Tensor& dy, const Tensor& w, Tensor& dx, int rows, int out, int in);
/// @brief dW[out, in] += dy^T x.
void linear_weight_grad(Backend& b, const Tensor& dy, const Tensor& x, Tensor& dw, int rows, int out, int in);

/// @brief Host copy of a storage-dtype tensor.
std::vector<float> to_host(Backend& b, const Tensor& t);

}  // namespace ppsim::cal
