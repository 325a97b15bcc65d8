// Chunked attention (calibrate/include/ppsim/calibrate/chunked_attention.h), the CUDA fused
// attention's algorithm, run here over the CPU backend: it equals the plain attention
// kernels for any chunk size (one row, ragged last chunks, the whole sequence), with and
// without dropout; grouped-query attention equals multi-head attention over K and V heads
// repeated per group; the chunk size rule is pinned by hand.
#include <catch2/catch.hpp>

#include "calibrate_fixtures.h"

#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/checks.h"
#include "ppsim/calibrate/chunked_attention.h"
#include "ppsim/calibrate/layers.h"
#include "ppsim/calibrate/measure.h"

using namespace ppsim::cal;

namespace {

struct Outputs {
  std::vector<float> out, lse, dqkv;
};

Outputs run_chunked(Backend& b, Allocator& al, const AttentionShape& a, int rows, const Tensor& qkv,
                    const Tensor& dout) {
  auto k = make_cpu_chunk_kernels();
  const std::int64_t tokens = std::int64_t{a.batch} * a.seq;
  Tensor out(al, tokens * a.width(), 4), lse(al, std::int64_t{a.batch} * a.heads * a.seq, 4);
  Tensor dqkv(al, tokens * a.ld(), 4), D(al, std::int64_t{a.batch} * a.heads * a.seq, 4);
  Tensor work(al, static_cast<std::int64_t>(chunk_workspace_elements(a, rows, true)), 4);
  chunked_attention_forward(b, *k, a, rows, qkv.data(), out.data(), lse.as<float>(), work.data());
  chunked_attention_backward(b, *k, a, rows, qkv.data(), out.data(), dout.data(), lse.as<float>(), dqkv.data(),
                             work.data(), D.as<float>());
  return {to_host(b, out), to_host(b, lse), to_host(b, dqkv)};
}

}  // namespace

TEST_CASE("chunked attention on the cpu equals the plain attention kernels", "[calibrate][fused][chunked]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  Allocator al(*cpu);
  const int seq = GENERATE(1, 17, 64, 100);
  const int rows = GENERATE(1, 7, 16, 1000);  // 1000: one chunk of the whole sequence
  const float p = GENERATE(0.0f, 0.1f);
  const AttentionShape a{2, seq, 3, 3, 8, 1.0f / std::sqrt(8.0f), p, 41};
  const AttentionGeometry g{a.batch, a.seq, a.heads, a.head_dim, a.scale, a.dropout_p, a.seed};
  const int r = std::min(rows, seq);
  INFO("seq " << seq << " rows " << r << " dropout " << p);
  const std::int64_t tokens = std::int64_t{a.batch} * seq;
  Tensor qkv(al, tokens * a.ld(), 4), dout(al, tokens * a.width(), 4);
  cpu->fill_uniform(qkv.data(), qkv.elements(), 7, 2.0f);
  cpu->fill_uniform(dout.data(), dout.elements(), 8, 1.0f);
  const Outputs c = run_chunked(*cpu, al, a, r, qkv, dout);

  Tensor o_plain(al, tokens * a.width(), 4), dq_plain(al, tokens * a.ld(), 4);
  PlainAttentionSaved saved = plain_attention_forward(al, g, qkv.data(), o_plain.data());
  plain_attention_backward(al, g, saved, qkv.data(), dout.data(), dq_plain.data());
  CHECK(relative_l2_error(c.out, to_host(*cpu, o_plain)) <= 1e-5);
  CHECK(relative_l2_error(c.dqkv, to_host(*cpu, dq_plain)) <= 1e-5);
  // Query 0 sees key 0 only: lse = scale q0.k0.
  const float* x = qkv.as<float>();
  double qk = 0;
  for (int i = 0; i < a.head_dim; ++i) qk += static_cast<double>(x[i]) * x[a.width() + i];
  CHECK(c.lse[0] == Approx(a.scale * qk).epsilon(1e-5));
}

TEST_CASE("chunked grouped-query attention equals multi-head attention over repeated K and V heads",
          "[calibrate][fused][chunked]") {
  auto cpu = make_cpu_backend(Dtype::fp32);
  Allocator al(*cpu);
  const int kv_heads = GENERATE(1, 2);  // groups of 4 and 2 query heads
  const float p = GENERATE(0.0f, 0.1f);
  const AttentionShape gqa{2, 37, 4, kv_heads, 8, 0.35f, p, 5};
  AttentionShape mha = gqa;
  mha.kv_heads = gqa.heads;
  const int d = gqa.head_dim, group = gqa.group();
  const std::int64_t tokens = std::int64_t{gqa.batch} * gqa.seq;
  Tensor qkv(al, tokens * gqa.ld(), 4), wide(al, tokens * mha.ld(), 4), dout(al, tokens * gqa.width(), 4);
  cpu->fill_uniform(qkv.data(), qkv.elements(), 3, 2.0f);
  cpu->fill_uniform(dout.data(), dout.elements(), 4, 1.0f);
  const float* x = qkv.as<float>();
  float* y = wide.as<float>();
  for (std::int64_t t = 0; t < tokens; ++t)  // Q as is; K and V head j = kv head j / group
    for (int j = 0; j < gqa.heads; ++j)
      for (int c = 0; c < d; ++c) {
        const int g = j / group;
        y[t * mha.ld() + j * d + c] = x[t * gqa.ld() + j * d + c];
        y[t * mha.ld() + (mha.heads + j) * d + c] = x[t * gqa.ld() + (gqa.heads + g) * d + c];
        y[t * mha.ld() + (2 * mha.heads + j) * d + c] = x[t * gqa.ld() + (gqa.heads + gqa.kv_heads + g) * d + c];
      }
  const Outputs a = run_chunked(*cpu, al, gqa, 8, qkv, dout);
  const Outputs b = run_chunked(*cpu, al, mha, 8, wide, dout);
  CHECK(relative_l2_error(a.out, b.out) <= 1e-6);
  CHECK(relative_l2_error(a.lse, b.lse) <= 1e-6);
  // dQ is the same; a kv head's dK and dV are the sums over its group's heads.
  std::vector<float> folded(a.dqkv.size(), 0.0f);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (int j = 0; j < gqa.heads; ++j)
      for (int c = 0; c < d; ++c) {
        const int g = j / group;
        folded[t * gqa.ld() + j * d + c] = b.dqkv[t * mha.ld() + j * d + c];
        folded[t * gqa.ld() + (gqa.heads + g) * d + c] += b.dqkv[t * mha.ld() + (mha.heads + j) * d + c];
        folded[t * gqa.ld() + (gqa.heads + gqa.kv_heads + g) * d + c] +=
            b.dqkv[t * mha.ld() + (2 * mha.heads + j) * d + c];
      }
  CHECK(relative_l2_error(a.dqkv, folded) <= 1e-5);
}

TEST_CASE("chunk size and workspace, by hand", "[calibrate][chunked]") {
  // 2^25 elements per [heads, rows, seq] buffer, rows a multiple of 64 when at least 64.
  CHECK(default_chunk_rows({1, 2048, 16, 16, 128}) == 1024);  // 2^25 / (16 x 2048) = 1024
  CHECK(default_chunk_rows({1, 2048, 40, 40, 128}) == 384);   // 409.6 -> 409 -> 384
  CHECK(default_chunk_rows({1, 4096, 32, 32, 128}) == 256);   // 256
  CHECK(default_chunk_rows({1, 100, 4, 4, 8}) == 100);        // the whole sequence
  CHECK(default_chunk_rows({1, 1 << 20, 64, 64, 128}) == 1);  // 2^25 / 2^26 -> at least one row
  const AttentionShape a{2, 2048, 40, 8, 128};
  CHECK(chunk_workspace_elements(a, 384, false) == 40ull * 384 * 2048);
  CHECK(chunk_workspace_elements(a, 384, true) == 3ull * 40 * 384 * 2048);
  CHECK(a.ld() == (40 + 16) * 128);
  CHECK(a.group() == 5);
  CHECK_THROWS_AS((AttentionShape{1, 16, 6, 4, 8}.validate()), std::invalid_argument);  // 4 does not divide 6
  CHECK_NOTHROW((AttentionShape{1, 16, 6, 3, 8}.validate()));
}

TEST_CASE("PPSIM_ATTENTION_CHUNK_ROWS sets the chunk size, bounded by the sequence", "[calibrate][chunked]") {
  const AttentionShape a{1, 100, 4, 4, 8};
  ::unsetenv("PPSIM_ATTENTION_CHUNK_ROWS");
  CHECK(chunk_rows(a) == 100);
  ::setenv("PPSIM_ATTENTION_CHUNK_ROWS", "7", 1);
  CHECK(chunk_rows(a) == 7);
  ::setenv("PPSIM_ATTENTION_CHUNK_ROWS", "1000", 1);
  CHECK(chunk_rows(a) == 100);
  for (const char* bad : {"0", "-3", "7x", "many"}) {
    ::setenv("PPSIM_ATTENTION_CHUNK_ROWS", bad, 1);
    CHECK_THROWS_AS(chunk_rows(a), std::invalid_argument);
  }
  ::unsetenv("PPSIM_ATTENTION_CHUNK_ROWS");
}
