#include "ppsim/calibrate/measure.h"

#include <algorithm>
#include <cmath>

#include "ppsim/calibrate/layers.h"

namespace ppsim::cal {

int iterations_for_target(double per_iteration_ms, const Method& m) {
  if (!(per_iteration_ms > 0)) return m.max_iterations;
  const double n = std::ceil(m.target_ms / per_iteration_ms);
  return static_cast<int>(std::clamp(n, static_cast<double>(m.min_iterations),
                                     static_cast<double>(m.max_iterations)));
}

LayerMeasurement measure_layer(Backend& backend, const LayerShape& shape, const Method& method) {
  Allocator alloc(backend);
  auto layer = make_layer(alloc, shape, 1234);
  const int rotate = std::max(1, method.rotate);
  std::vector<Tensor> inputs, grads;
  for (int i = 0; i < rotate; ++i) {
    inputs.push_back(layer->make_input(100 + static_cast<std::uint64_t>(i)));
    grads.push_back(layer->make_output_grad(200 + static_cast<std::uint64_t>(i)));
  }
  auto tf = backend.make_timer(), tb = backend.make_timer(), tw = backend.make_timer();
  LayerMeasurement m;
  m.shape = shape;
  std::vector<double> fs, bs, ws;
  auto step = [&](int i, bool record) {
    const Tensor& x = inputs[static_cast<std::size_t>(i % rotate)];
    const Tensor& dy = grads[static_cast<std::size_t>(i % rotate)];
    const std::int64_t base = alloc.in_use();
    tf->start();
    Tensor y = layer->forward(x);
    tf->stop();
    m.activation_bytes = alloc.in_use() - base - static_cast<std::int64_t>(y.bytes()) +
                         layer->retained_input_bytes();
    y.reset();
    tb->start();
    Tensor dx = layer->backward_input(dy);
    tb->stop();
    m.weight_grad_bytes = alloc.in_use() - base - static_cast<std::int64_t>(dx.bytes()) +
                          layer->retained_input_bytes();
    tw->start();
    layer->backward_weight();
    tw->stop();
    const double f = tf->elapsed_ms(), b = tb->elapsed_ms(), w = tw->elapsed_ms();
    if (record) {
      fs.push_back(f);
      bs.push_back(b);
      ws.push_back(w);
    }
    return f + b + w;
  };
  double warm_total = 0;
  for (int i = 0; i < method.warmup; ++i) warm_total += step(i, false);
  const double per_iter = method.warmup > 0 ? warm_total / method.warmup : step(0, false);
  const int n = iterations_for_target(per_iter, method);
  for (int i = 0; i < n; ++i) step(i, true);
  backend.synchronize();
  m.forward = summarize(fs);
  m.backward_input = summarize(bs);
  m.backward_weight = summarize(ws);
  m.expected_activation_bytes = expected_activation_bytes(shape);
  m.korthikanti_bytes = korthikanti_activation_bytes(shape);
  m.output_bytes = output_bytes(shape);
  m.parameter_bytes = parameter_bytes(shape);
  m.flops = layer_flops(shape);
  return m;
}

nlohmann::json summary_to_json(const Summary& s) {
  return {{"median", s.median}, {"p95", s.p95}, {"stddev", s.stddev}, {"min", s.min},
          {"iterations", s.iterations}};
}

nlohmann::json measurement_to_json(const LayerMeasurement& m) {
  nlohmann::json shape = {{"hidden", m.shape.hidden},
                          {"seq_length", m.shape.seq},
                          {"micro_batch", m.shape.micro_batch},
                          {"dtype", dtype_name(m.shape.dtype)}};
  if (m.shape.kind == LayerKind::block) {
    shape["heads"] = m.shape.heads;
    shape["ffn_hidden"] = m.shape.ffn();
  } else {
    shape["vocab"] = m.shape.vocab;
  }
  if (m.shape.tp > 1) shape["tensor_parallel"] = m.shape.tp;  // absent: 1 (profiles before issue 11)
  if (m.shape.arch == BlockArch::llama) {  // absent: a GPT layer (profiles before issue 13)
    shape["block"] = "llama";
    if (m.shape.kind == LayerKind::block) shape["kv_heads"] = m.shape.kv_heads > 0 ? m.shape.kv_heads : m.shape.heads;
  }
  if (m.shape.kind == LayerKind::block && m.shape.kernels == Kernels::fused) shape["kernels"] = "fused";  // absent: plain
  nlohmann::json j = {
      {"key", m.shape.key()},
      {"kind", layer_kind_name(m.shape.kind)},
      {"shape", shape},
      {"forward_ms", summary_to_json(m.forward)},
      {"backward_input_ms", summary_to_json(m.backward_input)},
      {"backward_weight_ms", summary_to_json(m.backward_weight)},
      {"activation_bytes", m.activation_bytes},
      {"weight_grad_activation_bytes", m.weight_grad_bytes},
      {"expected_activation_bytes", m.expected_activation_bytes},
      {"output_bytes", m.output_bytes},
      {"parameter_bytes", m.parameter_bytes},
      {"flops", {{"forward", m.flops.forward},
                 {"backward_input", m.flops.backward_input},
                 {"backward_weight", m.flops.backward_weight}}},
  };
  if (m.shape.kind == LayerKind::block) j["korthikanti_activation_bytes"] = m.korthikanti_bytes;
  auto tflops = [](double flops, double ms) { return ms > 0 ? flops / (ms * 1e-3) / 1e12 : 0.0; };
  j["achieved_tflops"] = {{"forward", tflops(m.flops.forward, m.forward.median)},
                          {"backward_input", tflops(m.flops.backward_input, m.backward_input.median)},
                          {"backward_weight", tflops(m.flops.backward_weight, m.backward_weight.median)}};
  return j;
}

}  // namespace ppsim::cal
