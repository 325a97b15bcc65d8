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
  if (shape.arch == BlockArch::llama)  // issue 13 item 2: the formulas are in model.cpp, the layer is not
    throw std::invalid_argument(
        "the harness measures GPT-style layers only: a Llama block (RMSNorm, SwiGLU, rotary, GQA) is not "
        "implemented yet; cost Llama models with the roofline (\"costs\": {\"device\": ...})");
  if (alloc.backend().dtype() != shape.dtype)
    throw std::invalid_argument("layer dtype " + dtype_name(shape.dtype) + " differs from the " +
                                alloc.backend().name() + " backend's " +
                                dtype_name(alloc.backend().dtype()));
  for (const auto& k : layer_kinds())
    if (k.kind == shape.kind) return k.make(alloc, shape, seed);
  throw std::invalid_argument("no layer registered for " + layer_kind_name(shape.kind));
}

std::vector<float> to_host(Backend& b, const Tensor& t) {
  std::vector<float> v(static_cast<std::size_t>(t.elements()));
  if (!v.empty()) b.download(t.data(), v.data(), t.elements());
  return v;
}

}  // namespace ppsim::cal
