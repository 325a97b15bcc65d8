// The CUDA kernels at the head sizes real models use, on the emulator (cuda-emu) against
// the CPU backend. `check` uses heads of 16 and 32, one lane chunk of the flash kernels;
// GPT-3 13B and Llama-2 7B have 128 (four chunks per lane), and 80 is not a multiple of
// 32. The whole check, blocks included, also runs at a 128-wide head.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/checks.h"

namespace ppsim::cal {
void register_cuda_emu_backend();
}

namespace {

using namespace ppsim::cal;

std::vector<float> randoms(std::size_t n, unsigned seed, float scale) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = (2.0f * hash_uniform(seed, i) - 1.0f) * scale;
  return v;
}

struct Attn {
  std::vector<float> out, lse, dqkv;
};

/// Fused attention forward and backward on `b` (inputs uploaded in its dtype).
Attn run_attention(Backend& b, int batch, int seq, int heads, int kv, int d, float p) {
  const std::int64_t rows = static_cast<std::int64_t>(batch) * seq, w = heads * d, ld = w + 2LL * kv * d;
  const auto qkv_h = randoms(static_cast<std::size_t>(rows * ld), 11, 1.5f);
  const auto dout_h = randoms(static_cast<std::size_t>(rows * w), 12, 1.0f);
  Allocator a(b);
  const int e = dtype_bytes(b.dtype());
  Tensor qkv(a, rows * ld, e), out(a, rows * w, e), dout(a, rows * w, e), dqkv(a, rows * ld, e);
  Tensor lse(a, static_cast<std::int64_t>(batch) * heads * seq, 4);
  b.upload(qkv_h.data(), qkv.data(), rows * ld);
  b.upload(dout_h.data(), dout.data(), rows * w);
  b.fill_zero_bytes(dqkv.data(), dqkv.bytes());
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  b.fused()->attention_forward(qkv.data(), out.data(), lse.as<float>(), batch, seq, heads, kv, d, scale, p, 5);
  b.fused()->attention_backward(qkv.data(), out.data(), dout.data(), lse.as<float>(), dqkv.data(), batch, seq, heads,
                                kv, d, scale, p, 5);
  Attn r{std::vector<float>(static_cast<std::size_t>(rows * w)), std::vector<float>(static_cast<std::size_t>(lse.elements())),
         std::vector<float>(static_cast<std::size_t>(rows * ld))};
  b.download(out.data(), r.out.data(), rows * w);
  b.download_bytes(lse.data(), r.lse.data(), lse.bytes());
  b.download(dqkv.data(), r.dqkv.data(), rows * ld);
  b.synchronize();
  return r;
}

void compare_attention(const char* mode, Dtype dtype, int d, int heads, int kv, float p) {
  if (mode) setenv("PPSIM_FUSED_ATTENTION", mode, 1);
  auto emu = make_backend("cuda-emu", dtype);
  emu->fused();  // made now, while the variable says which attention
  unsetenv("PPSIM_FUSED_ATTENTION");
  auto cpu = make_backend("cpu", Dtype::fp32);
  const int batch = 2, seq = 70;  // three key tiles of 32, the last partial
  const Attn t = run_attention(*emu, batch, seq, heads, kv, d, p);
  const Attn r = run_attention(*cpu, batch, seq, heads, kv, d, p);
  const double tol = kernel_tolerance(dtype), grad_tol = layer_tolerance(dtype);
  INFO("attention " << (mode ? mode : "chunked") << " " << dtype_name(dtype) << " d=" << d << " heads=" << heads
                    << " kv=" << kv << " p=" << p);
  CHECK(relative_l2_error(t.out, r.out) <= tol);
  CHECK(relative_l2_error(t.lse, r.lse) <= lse_tolerance(dtype));
  CHECK(relative_l2_error(t.dqkv, r.dqkv) <= grad_tol);
}

}  // namespace

TEST_CASE("cuda-emu: fused attention at real head sizes equals the CPU's") {
  register_cuda_emu_backend();
  for (const char* mode : {"flash", "chunked"})
    for (int d : {128, 80}) {
      compare_attention(mode, Dtype::fp32, d, 4, 4, 0.1f);  // GPT: kv = heads, dropout
      compare_attention(mode, Dtype::fp32, d, 4, 2, 0.0f);  // Llama: grouped-query heads
    }
  compare_attention("flash", Dtype::bf16, 128, 4, 1, 0.0f);
  compare_attention("chunked", Dtype::bf16, 128, 4, 1, 0.0f);
}

TEST_CASE("cuda-emu: every check at a 128-wide head (GPT and Llama blocks, plain and fused)") {
  register_cuda_emu_backend();
  auto emu = make_backend("cuda-emu", Dtype::fp32);
  LayerShape s;
  s.hidden = 256;
  s.heads = 2;  // head 128
  s.seq = 40;
  s.micro_batch = 1;
  s.dtype = Dtype::fp32;
  const auto results = check_against_cpu(*emu, s, 300);
  REQUIRE(results.size() > 100);
  for (const auto& r : results) {
    INFO(r.name << ": " << r.relative_error << " against " << r.tolerance);
    CHECK(r.passed);
  }
}
