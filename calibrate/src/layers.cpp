#include <stdexcept>

#include "ppsim/calibrate/layers.h"

namespace ppsim::cal {

const std::vector<LayerKindEntry>& layer_kinds() {
  static const std::vector<LayerKindEntry> table{
      {LayerKind::block, &make_block_layer},
      {LayerKind::embedding, &make_embedding_layer},
      {LayerKind::head, &make_head_layer},
  };
  return table;
}

std::unique_ptr<Layer> make_layer(Allocator& alloc, const LayerShape& shape, std::uint64_t seed) {
  shape.validate();
  if (shape.sequence_parallel)  // its compute is the TP shard's; its bytes are exact by formula
    throw std::invalid_argument("the harness measures tensor-parallel shards without sequence parallelism");
  if (alloc.backend().dtype() != shape.dtype)
    throw std::invalid_argument("layer dtype " + dtype_name(shape.dtype) + " differs from the " +
                                alloc.backend().name() + " backend's " +
                                dtype_name(alloc.backend().dtype()));
  if (shape.kind == LayerKind::block && shape.arch == BlockArch::llama) return make_llama_block_layer(alloc, shape, seed);
  for (const auto& k : layer_kinds())  // the embedding and head read shape.arch themselves
    if (k.kind == shape.kind) return k.make(alloc, shape, seed);
  throw std::invalid_argument("no layer registered for " + layer_kind_name(shape.kind));
}

Tensor residual_stream(Allocator& a, const LayerShape& s, std::uint64_t seed) {
  Tensor t(a, s.tokens() * s.hidden, dtype_bytes(a.backend().dtype()));
  a.backend().fill_uniform(t.data(), t.elements(), seed, 1.0f);
  return t;
}

std::int64_t residual_stream_bytes(const Backend& b, const LayerShape& s) {
  return s.tokens() * s.hidden * dtype_bytes(b.dtype());
}

void make_parameter(Allocator& a, Tensor& weight, Tensor& grad, std::int64_t n, std::uint64_t seed, float scale,
                    float fill) {
  Backend& b = a.backend();
  const int e = dtype_bytes(b.dtype());
  weight = Tensor(a, n, e);
  grad = Tensor(a, n, e);
  if (scale > 0) {
    b.fill_uniform(weight.data(), n, seed, scale);
  } else {
    std::vector<float> v(static_cast<std::size_t>(n), fill);
    b.upload(v.data(), weight.data(), n);
  }
  b.fill_zero_bytes(grad.data(), grad.bytes());
}

void linear_forward(Backend& b, const Tensor& x, const Tensor& w, Tensor& y, int rows, int out, int in) {
  b.gemm(false, true, rows, out, in, 1.0f, x.data(), in, w.data(), in, 0.0f, y.data(), out);
}

void linear_backward_input(Backend& b, const Tensor& dy, const Tensor& w, Tensor& dx, int rows, int out, int in) {
  b.gemm(false, false, rows, in, out, 1.0f, dy.data(), out, w.data(), in, 0.0f, dx.data(), in);
}

void linear_weight_grad(Backend& b, const Tensor& dy, const Tensor& x, Tensor& dw, int rows, int out, int in) {
  b.gemm(true, false, out, in, rows, 1.0f, dy.data(), out, x.data(), in, 1.0f, dw.data(), in);
}

std::vector<float> to_host(Backend& b, const Tensor& t) {
  std::vector<float> v(static_cast<std::size_t>(t.elements()));
  if (!v.empty()) b.download(t.data(), v.data(), t.elements());
  return v;
}

}  // namespace ppsim::cal
