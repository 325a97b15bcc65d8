// ppsim-calibrate: measures per-layer costs and links and writes a profile for ppsim.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "ppsim/calibrate/backend.h"
#include "ppsim/calibrate/checks.h"
#include "ppsim/calibrate/collectives.h"
#include "ppsim/calibrate/costs.h"
#include "ppsim/calibrate/measure.h"
#include "ppsim/calibrate/p2p.h"
#include "ppsim/calibrate/profile.h"
#include "ppsim/calibrate/stats.h"
#include "ppsim/calibrate/trace_import.h"
#include "ppsim/input/json_file.h"

#ifdef PPSIM_HAVE_REPLAY
#include "ppsim/replay/command.h"
#endif
#ifdef PPSIM_HAVE_REPLAY_CUDA
namespace ppsim::replay {
void register_cuda_replay();
}
#endif

#ifdef PPSIM_HAVE_CUDA_EMU
namespace ppsim::cal {
void register_cuda_emu_backend();
}
#endif

#ifdef PPSIM_HAVE_CUDA
namespace ppsim::cal {
void register_cuda_backend();
nlohmann::json measure_cuda_p2p(const P2POptions& o, const std::function<void(const std::string&)>& progress);
}  // namespace ppsim::cal
#endif

namespace {

using namespace ppsim::cal;

struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void progress(const std::string& line) { std::cerr << "[ppsim-calibrate] " << line << std::endl; }

std::vector<std::int64_t> parse_list(const std::string& s, const char* what) {
  std::vector<std::int64_t> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      const long long x = std::stoll(item);
      if (x <= 0) throw std::invalid_argument("");
      v.push_back(x);
    } catch (...) {
      throw BadInput(std::string(what) + ": '" + item + "' is not a positive integer");
    }
  }
  if (v.empty()) throw BadInput(std::string(what) + ": empty list");
  return v;
}

struct ShapeArgs {
  std::string model_file;
  std::int64_t hidden{0}, heads{0}, seq{0}, vocab{0}, ffn{0};
  std::string dtype;  // empty: the backend's default (default_dtype)
  BlockArch arch{BlockArch::gpt};  // from the preset
  std::int64_t kv_heads{0};
  std::string kernels = "plain";  // --kernels (layers, chain)

  void add(CLI::App* app) {
    app->add_option("--model", model_file, "model preset JSON (configs/models/*.json)");
    app->add_option("--hidden", hidden, "hidden size (overrides the preset)");
    app->add_option("--heads", heads, "attention heads (overrides the preset)");
    app->add_option("--seq", seq, "sequence length (overrides the preset)");
    app->add_option("--vocab", vocab, "vocabulary size (overrides the preset; 0: no embedding/head)");
    app->add_option("--ffn-hidden", ffn, "MLP hidden size (default 4*hidden)");
    app->add_option("--dtype", dtype, "fp32, fp16 or bf16 (default: the backend's, cpu fp32, cuda bf16)");
  }
  void add_kernels(CLI::App* app) {
    app->add_option("--kernels", kernels,
                    "block kernels: plain (one kernel per op) or fused (flash attention, bias-GeLU and "
                    "bias-dropout-add fusions; llama: flash attention with grouped-query heads; keys end "
                    "in \" fused\")")
        ->check(CLI::IsMember({"plain", "fused"}))
        ->capture_default_str();
  }
  LayerShape block(const std::string& backend_name) {
    if (!model_file.empty()) {
      nlohmann::json j;
      try {
        j = ppsim::read_json_input(model_file);
      } catch (const ppsim::InputFileError& e) {
        throw BadInput(e.what());
      }
      try {
        const ModelPreset m = model_from_json(j.contains("model") ? j.at("model") : j, model_file + ": model");
        if (hidden == 0) hidden = m.hidden;
        if (heads == 0) heads = m.heads;
        if (seq == 0) seq = m.seq;
        if (vocab == 0) vocab = m.vocab;
        if (ffn == 0) ffn = m.ffn_hidden;
        arch = m.arch;
        kv_heads = m.kv_heads;
      } catch (const std::invalid_argument& e) {
        throw BadInput(e.what());
      }
    }
    LayerShape s;
    s.kind = LayerKind::block;
    s.hidden = hidden;
    s.heads = heads;
    s.seq = seq;
    s.ffn_hidden = ffn;
    s.arch = arch;
    s.kv_heads = kv_heads;
    s.kernels = parse_kernels(kernels);  // CLI11 has checked the name
    try {
      s.dtype = dtype.empty() ? default_dtype(backend_name) : parse_dtype(dtype);
      s.validate();
    } catch (const std::invalid_argument& e) {
      throw BadInput(std::string("shape: ") + e.what() + " (give --model or --hidden/--heads/--seq)");
    }
    return s;
  }
};

/// One GPU's tensor-parallel shard of `block` at degree `tp`; BadInput naming the flag
/// when the model's heads, hidden, ffn (or vocabulary, when the ends are measured) do
/// not divide evenly.
LayerShape shard_of(LayerShape block, std::int64_t tp, std::int64_t vocab) {
  block.tp = tp;
  try {
    block.validate();
  } catch (const std::invalid_argument& e) {
    throw BadInput("--tp " + std::to_string(tp) + ": " + e.what());
  }
  if (vocab > 0 && vocab % tp != 0)
    throw BadInput("--tp " + std::to_string(tp) + ": vocab (" + std::to_string(vocab) +
                   ") must be a multiple of the tensor-parallel degree " + std::to_string(tp) +
                   " (or measure --blocks-only)");
  return block;
}

void add_method(CLI::App* app, Method& m) {
  app->add_option("--warmup", m.warmup, "untimed iterations first (>= 10 recommended)")->capture_default_str();
  app->add_option("--min-iters", m.min_iterations, "fewest timed iterations")->capture_default_str();
  app->add_option("--max-iters", m.max_iterations, "most timed iterations")->capture_default_str();
  app->add_option("--target-ms", m.target_ms, "time target that picks the iteration count")->capture_default_str();
  app->add_option("--rotate", m.rotate, "rotating input buffers")->capture_default_str();
}

nlohmann::json read_existing(const std::string& path) {
  if (!std::filesystem::exists(path)) return nullptr;
  return load_profile(path);
}

/// The backend a measurement runs on. cuda-emu runs the CUDA kernels on a CPU emulator
/// for `check`: its times are no device's, so it never writes a profile or a timing.
std::unique_ptr<Backend> make_measuring_backend(const std::string& name, Dtype dtype) {
  if (name == "cuda-emu")
    throw BadInput("--backend cuda-emu runs the CUDA kernels on a CPU emulator for `check` only; its times are no "
                   "device's: measure with --backend cuda or cpu");
  return make_backend(name, dtype);
}

int cmd_layers(const std::string& backend_name, ShapeArgs& sa, const std::string& mbs_text,
               const std::string& tps_text, const std::string& out, bool resume, bool no_ends,
               const Method& method) {
  LayerShape block = sa.block(backend_name);
  const auto mbs = parse_list(mbs_text, "--micro-batches");
  std::vector<LayerShape> shards;  // every degree checked before anything is measured or written
  for (std::int64_t tp : parse_list(tps_text, "--tp"))
    shards.push_back(shard_of(block, tp, no_ends ? 0 : sa.vocab));
  auto backend = make_measuring_backend(backend_name, block.dtype);
  nlohmann::json profile = resume ? read_existing(out) : nullptr;
  if (profile.is_null()) {
    profile = new_profile(*backend, method);
  } else if (profile.at("backend") != backend->name() || profile.at("dtype") != dtype_name(block.dtype)) {
    throw BadInput(out + ": --resume with a profile of another backend/dtype");
  }
  std::vector<LayerShape> todo;
  for (const LayerShape& shard : shards) {
    for (std::int64_t mb : mbs) {
      for (LayerKind k : {LayerKind::embedding, LayerKind::block, LayerKind::head}) {
        if (k != LayerKind::block && (no_ends || sa.vocab <= 0)) continue;
        LayerShape s = shard;
        s.kind = k;
        s.micro_batch = mb;
        s.vocab = k == LayerKind::block ? 0 : sa.vocab;
        todo.push_back(s);
      }
    }
  }
  int done = 0;
  for (const auto& s : todo) {
    ++done;
    if (resume && has_layer(profile, s.key())) {
      progress("[" + std::to_string(done) + "/" + std::to_string(todo.size()) + "] " + s.key() + ": already measured, skipped (--resume)");
      continue;
    }
    progress("[" + std::to_string(done) + "/" + std::to_string(todo.size()) + "] " + s.key() + " ...");
    const LayerMeasurement m = measure_layer(*backend, s, method);
    upsert_layer(profile, measurement_to_json(m));
    write_json_atomic(out, profile);  // after every layer: an interrupted run loses one layer at most
    char line[256];
    std::snprintf(line, sizeof line, "    F %.4f ms  B %.4f ms  W %.4f ms  activations %lld B (expected %lld)",
                  m.forward.median, m.backward_input.median, m.backward_weight.median,
                  static_cast<long long>(m.activation_bytes), static_cast<long long>(m.expected_activation_bytes));
    progress(line);
  }
  write_json_atomic(out, profile);
  progress("wrote " + out);
  return 0;
}

int cmd_p2p(const std::string& backend_name, const std::string& transport, [[maybe_unused]] int peer,
            const std::string& out, const std::string& min_size, const std::string& max_size, const Method& method) {
  P2POptions o;
  o.method = method;
  try {
    o.min_bytes = parse_size(min_size);
    o.max_bytes = parse_size(max_size);
    p2p_sizes(o);
  } catch (const std::exception& e) {
    throw BadInput(e.what());
  }
  std::vector<nlohmann::json> links;
  std::unique_ptr<Backend> backend;
  if (transport == "mpi") {
#ifdef PPSIM_HAVE_MPI
    int rank = 0;
    nlohmann::json link = measure_mpi_sendrecv(o, progress, &rank);
    if (rank != 0) return 0;
    links.push_back(link);
    backend = make_cpu_backend(default_dtype("cpu"));
#else
    throw BadInput("p2p --transport mpi: this build has no MPI");
#endif
  } else if (transport == "nccl") {
#if defined(PPSIM_HAVE_NCCL) && defined(PPSIM_HAVE_MPI)
    int rank = 0;
    nlohmann::json link = measure_nccl_sendrecv(o, peer, progress, &rank);
    if (rank != 0) return 0;
    links.push_back(link);
    backend = make_backend("cuda", default_dtype("cuda"));
#else
    throw BadInput("p2p --transport nccl: this build has no NCCL send/recv (needs CUDA, NCCL and MPI at build time)");
#endif
  } else if (transport != "default") {
    throw BadInput("--transport: unknown '" + transport + "' (default, mpi, nccl)");
  } else if (backend_name == "cpu") {
    backend = make_cpu_backend(default_dtype("cpu"));
    links.push_back(measure_thread_memcpy(o, progress));
  } else if (backend_name == "cuda") {
#ifdef PPSIM_HAVE_CUDA
    backend = make_backend("cuda", default_dtype("cuda"));
    for (auto& l : measure_cuda_p2p(o, progress)) links.push_back(l);
#else
    throw BadInput("--backend cuda: this build has no CUDA backend");
#endif
  } else {
    throw BadInput("unknown backend '" + backend_name + "'");
  }
  nlohmann::json profile = read_existing(out);
  if (profile.is_null()) profile = new_profile(*backend, method);
  for (const auto& l : links) {
    upsert_link(profile, l);
    const auto& fit = l.at("fit");
    progress(l.at("kind").get<std::string>() + ": latency " + std::to_string(fit.at("latency_us").get<double>()) +
             " us, bandwidth " + std::to_string(fit.at("bandwidth_GBps").get<double>()) + " GB/s");
  }
  write_json_atomic(out, profile);
  progress("wrote " + out);
  return 0;
}

struct CollectiveArgs {
  std::string transport = "mpi", ops = "all_reduce,all_gather,reduce_scatter", dtype = "fp32";
  std::string min_bytes = "4KiB", max_bytes = "1GiB", out = "collectives.json", profile;
  CollectiveOptions options;
};

std::int64_t size_flag(const char* flag, const std::string& text) {
  try {
    return parse_size(text);
  } catch (const std::exception&) {  // std::stod's own message names no flag
    throw BadInput(std::string(flag) + " '" + text + "': not a positive size (e.g. 4096, 4KiB, 1MiB, 1GiB)");
  }
}

int cmd_collectives(CollectiveArgs& a) {
  CollectiveOptions& o = a.options;
  o.min_bytes = size_flag("--min-bytes", a.min_bytes);
  o.max_bytes = size_flag("--max-bytes", a.max_bytes);
  try {
    o.ops = parse_collective_ops(a.ops);
    o.dtype = parse_dtype(a.dtype);
    o.validate();
  } catch (const std::exception& e) {
    throw BadInput(e.what());
  }
  // A profile to extend is read (and refused) before anything is measured.
  nlohmann::json profile = a.profile.empty() ? nullptr : read_existing(a.profile);
  int rank = 0;
  CollectiveRun run;
  if (a.transport == "mpi") {
#ifdef PPSIM_HAVE_MPI
    run = measure_mpi_collectives(o, progress, &rank);
#else
    throw BadInput("collectives --transport mpi: this build has no MPI");
#endif
  } else if (a.transport == "nccl") {
#ifdef PPSIM_HAVE_NCCL
    run = measure_nccl_collectives(o, progress, &rank);
#else
    throw BadInput("collectives --transport nccl: this build has no NCCL (needs CUDA and NCCL at build time)");
#endif
  } else {
    throw BadInput("--transport: unknown '" + a.transport + "' (mpi, nccl)");
  }
  if (rank != 0) return 0;
  std::fputs(collectives_table(run).c_str(), stdout);
  write_json_atomic(a.out, collectives_json(run));
  progress("wrote " + a.out);
  if (!a.profile.empty()) {  // the ring links, named by kind from a config
    if (profile.is_null()) {
      const std::string backend = a.transport == "nccl" ? "cuda" : "cpu";
      profile = new_profile(*make_backend(backend, default_dtype(backend)), Method{});
    }
    for (const auto& curve : ring_link_curves(run)) {
      upsert_link(profile, curve);
      progress("ring link " + curve.at("kind").get<std::string>());
    }
    write_json_atomic(a.profile, profile);
    progress("wrote " + a.profile);
  }
  return 0;
}

int cmd_check(const std::string& backend_name, const std::string& dtype, const std::string& out) {
  auto backend = make_backend(backend_name, dtype.empty() ? default_dtype(backend_name) : parse_dtype(dtype));
  LayerShape s;
  s.hidden = 128;
  s.heads = 4;
  s.seq = 64;
  s.micro_batch = 2;
  s.dtype = backend->dtype();
  const auto results = check_against_cpu(*backend, s, 512);
  nlohmann::json j = nlohmann::json::array();
  bool ok = true;
  std::printf("%-40s %12s %10s %s\n", "check (vs cpu fp32)", "rel_error", "tolerance", "result");
  for (const auto& r : results) {
    std::printf("%-40s %12.3e %10.1e %s\n", r.name.c_str(), r.relative_error, r.tolerance,
                r.passed ? "ok" : "FAIL");
    ok = ok && r.passed;
    j.push_back({{"name", r.name}, {"relative_error", r.relative_error}, {"tolerance", r.tolerance},
                 {"exact", r.exact}, {"passed", r.passed}});
  }
  if (!out.empty()) write_json_atomic(out, {{"backend", backend_name}, {"dtype", dtype_name(backend->dtype())}, {"checks", j}});
  std::printf("%s: %zu checks, %s\n", backend_name.c_str(), results.size(), ok ? "all passed" : "FAILURES");
  return ok ? 0 : 1;
}

int cmd_chain(const std::string& backend_name, ShapeArgs& sa, std::int64_t mb, std::int64_t tp, int layers,
              const std::string& profile_path, const std::string& out, const Method& method) {
  LayerShape block = shard_of(sa.block(backend_name), tp, 0);
  block.micro_batch = mb;
  auto backend = make_measuring_backend(backend_name, block.dtype);
  std::int64_t peak = 0;
  progress("chain of " + std::to_string(layers) + " x " + block.key() + " ...");
  const Summary s = measure_chain(*backend, block, layers, method, &peak);
  nlohmann::json j = {{"layers", layers}, {"shape", block.key()}, {"measured_ms", summary_to_json(s)},
                      {"peak_allocated_bytes", peak}};
  std::printf("chain %d x [%s]: measured %.4f ms (p95 %.4f, stddev %.4f, n=%d)\n", layers, block.key().c_str(),
              s.median, s.p95, s.stddev, s.iterations);
  if (!profile_path.empty()) {
    const auto profile = load_profile(profile_path);
    TransformerSpec spec{layers, block.hidden, block.heads, block.seq, mb, block.ffn_hidden, 0, block.dtype};
    spec.tp = tp;
    spec.arch = block.arch;  // the chained blocks' own family: a Llama chain is predicted from Llama blocks
    spec.kv_heads = block.kv_heads;
    spec.kernels = block.kernels;
    double predicted = 0;
    for (const auto& c : costs_from_profile(profile, spec, profile_path)) predicted += c.forward_ms + c.backward_ms;
    const double err = (predicted - s.median) / s.median * 100.0;
    j["predicted_ms"] = predicted;
    j["error_percent"] = err;
    std::printf("predicted from %s: %.4f ms, error %+.2f%%\n", profile_path.c_str(), predicted, err);
  }
  if (!out.empty()) write_json_atomic(out, j);
  return 0;
}

int cmd_gemm(const std::string& backend_name, ShapeArgs& sa, std::int64_t mb, std::int64_t tp, int square,
             const std::string& out, const Method& method) {
  LayerShape block = shard_of(sa.block(backend_name), tp, 0);
  block.micro_batch = mb;
  auto backend = make_measuring_backend(backend_name, block.dtype);
  const auto j = measure_gemms(*backend, block, square, method);
  for (const auto& g : j)
    std::printf("gemm %-14s M=%6d N=%6d K=%6d  %.4f ms  %.1f TFLOP/s\n", g.at("name").get<std::string>().c_str(),
                g.at("M").get<int>(), g.at("N").get<int>(), g.at("K").get<int>(), g.at("ms").at("median").get<double>(),
                g.at("tflops").get<double>());
  if (!out.empty()) write_json_atomic(out, {{"backend", backend_name}, {"device", backend->device_info().name},
                                            {"dtype", dtype_name(block.dtype)}, {"tensor_parallel", tp},
                                            {"gemms", j}});
  return 0;
}

int cmd_import(const std::string& trace_path, ShapeArgs& sa, std::int64_t mb, std::int64_t tp, int skip,
               const std::string& out) {
  LayerShape block = shard_of(sa.block("cuda"), tp, sa.vocab);  // a trace is a GPU's: dtype defaults to bf16
  block.vocab = sa.vocab;
  if (skip < 0) throw BadInput("--skip: must be >= 0");
  nlohmann::json trace;
  try {
    trace = ppsim::read_json_input(trace_path);
  } catch (const ppsim::InputFileError& e) {
    throw BadInput(e.what());
  }
  const TraceRegions regions = read_torch_trace(trace, trace_path);
  const nlohmann::json profile = profile_from_trace(regions, block, mb, skip, trace_path);
  for (const auto& l : profile.at("layers"))
    progress(l.at("key").get<std::string>() + ": F " + std::to_string(l.at("forward_ms").at("median").get<double>()) +
             " ms, B " + std::to_string(l.at("backward_input_ms").at("median").get<double>()) + " ms, W " +
             std::to_string(l.at("backward_weight_ms").at("median").get<double>()) + " ms (" +
             std::to_string(l.at("forward_ms").at("iterations").get<int>()) + " instances, GPU time from " +
             regions.gpu_source + ")");
  write_json_atomic(out, profile);
  progress("wrote " + out);
  return 0;
}

int cmd_validate(const std::string& path) {
  const nlohmann::json p = load_profile(path);
  std::printf("%s: valid %s\n", path.c_str(), kProfileSchema);
  // Each link curve: the worst point of its fits, recomputed from the points (the
  // piecewise fit is what the simulator uses; the one line is kept for reference).
  for (const auto& l : p.value("links", nlohmann::json::array())) {
    std::vector<double> xs, ts;
    for (const auto& pt : l.at("points")) {
      xs.push_back(pt.at("bytes").get<double>());
      ts.push_back(pt.at("median_ms").get<double>());
    }
    const auto& fit = l.at("fit");
    const std::vector<ppsim::LinkSegment> line{{0, fit.at("latency_us").get<double>(), fit.at("bandwidth_GBps").get<double>()}};
    const auto [line_err, line_at] = link_curve_error(line, xs, ts);
    std::printf("  link %s: %zu points, one line worst %.1f%% at %s", l.at("kind").get<std::string>().c_str(), xs.size(),
                100 * line_err, format_size(line_at).c_str());
    if (fit.contains("segments")) {
      const auto segs = link_segments_from_json(fit.at("segments"), "fit.segments");
      const auto [err, at] = link_curve_error(segs, xs, ts);
      std::printf(", %zu segments worst %.1f%% at %s", segs.size(), 100 * err, format_size(at).c_str());
    } else if (xs.size() >= 2) {  // a profile from before the piecewise fit: what it would give
      const LinkCurveFit refit = fit_link_segments(xs, ts);
      std::printf(", no segments (refit from the points: %zu segments, worst %.1f%% at %s; measure again to use them)",
                  refit.segments.size(), 100 * refit.worst_error, format_size(refit.worst_bytes).c_str());
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef PPSIM_HAVE_CUDA
  register_cuda_backend();
#endif
#ifdef PPSIM_HAVE_CUDA_EMU
  register_cuda_emu_backend();
#endif
#ifdef PPSIM_HAVE_REPLAY_CUDA
  ppsim::replay::register_cuda_replay();
#endif
  CLI::App app{"ppsim-calibrate: measure per-layer costs, activation memory and links; write a profile for ppsim"};
  app.set_version_flag("--version", std::string("ppsim-calibrate ") + PPSIM_VERSION);
  app.require_subcommand(1);
  std::string backend_name = "cpu";
  std::string known;
  for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
  Method method;

  auto* layers = app.add_subcommand("layers", "measure embedding, transformer block and head (F, B-input, W, bytes)");
  ShapeArgs la;
  std::string mbs = "1", tps = "1", out = "profile.json";
  bool resume = false, no_ends = false;
  layers->add_option("--backend", backend_name, "backend: " + known)->capture_default_str();
  la.add(layers);
  la.add_kernels(layers);
  layers->add_option("--micro-batches", mbs, "comma-separated micro-batch sizes")->capture_default_str();
  layers->add_option("--tp", tps, "comma-separated tensor-parallel degrees: each measures one GPU's shard")
      ->capture_default_str();
  layers->add_option("-o,--output", out, "profile JSON (written atomically after each layer)")->capture_default_str();
  layers->add_flag("--resume", resume, "keep what the output profile already holds and measure the rest");
  layers->add_flag("--blocks-only", no_ends, "skip embedding and head");
  add_method(layers, method);

  auto* p2p = app.add_subcommand("p2p", "measure links: thread memcpy (cpu), MPI send/recv, CUDA peer and local copies");
  std::string transport = "default", min_size = "4KiB", max_size = "1GiB", p2p_out = "profile.json";
  p2p->add_option("--backend", backend_name, "backend: " + known)->capture_default_str();
  int p2p_peer = 1;
  p2p->add_option("--transport", transport,
                  "default (the backend's), mpi (under mpirun -np 2) or nccl (under mpirun, one rank per GPU)")
      ->capture_default_str();
  p2p->add_option("--peer", p2p_peer, "nccl: the world rank rank 0 ping-pongs with (e.g. 8: the first GPU of node 2)")
      ->capture_default_str();
  p2p->add_option("--min-size", min_size, "smallest transfer (e.g. 4KiB)")->capture_default_str();
  p2p->add_option("--max-size", max_size, "largest transfer (e.g. 1GiB)")->capture_default_str();
  p2p->add_option("-o,--output", p2p_out, "profile JSON to add the link curves to")->capture_default_str();
  add_method(p2p, method);

  auto* collectives = app.add_subcommand(
      "collectives", "all-reduce, all-gather, reduce-scatter, broadcast over a size sweep (under mpirun), as nccl-tests");
  CollectiveArgs coll;
  collectives->add_option("--transport", coll.transport, "mpi (host memory) or nccl (one rank per GPU)")
      ->capture_default_str();
  collectives->add_option("--ops", coll.ops, "comma-separated: all_reduce, all_gather, reduce_scatter, broadcast")
      ->capture_default_str();
  collectives->add_option("--min-bytes", coll.min_bytes, "smallest size (e.g. 4KiB); sizes double")->capture_default_str();
  collectives->add_option("--max-bytes", coll.max_bytes, "largest size (e.g. 1GiB)")->capture_default_str();
  collectives->add_option("--dtype", coll.dtype, "fp32, fp16 or bf16 (mpi: fp32 only)")->capture_default_str();
  collectives->add_option("--iters", coll.options.iters, "timed iterations per op and size")->capture_default_str();
  collectives->add_option("--warmup", coll.options.warmup, "untimed iterations first")->capture_default_str();
  collectives->add_option("--group-size", coll.options.group_size, "ranks per communicator (0: all ranks)")
      ->capture_default_str();
  collectives->add_option("--group-stride", coll.options.group_stride,
                          "distance between a communicator's ranks (8 with --group-size 2 on 2 x 8 GPUs: {0,8}, {1,9}, ...)")
      ->capture_default_str();
  collectives->add_option("-o,--output", coll.out, "results JSON (ppsim.collectives/1)")->capture_default_str();
  collectives->add_option("--profile", coll.profile,
                          "also add each op's equivalent ring link to this profile (kind nccl_all_reduce_ring_n8, ...)");

  auto* check = app.add_subcommand("check", "compare every kernel and layer of a backend with the cpu backend");
  std::string check_dtype, check_out;
  check->add_option("--backend", backend_name, "backend: " + known)->capture_default_str();
  check->add_option("--dtype", check_dtype, "fp32, fp16 or bf16 (default: the backend's, cpu fp32, cuda bf16)");
  check->add_option("-o,--output", check_out, "results JSON");

  auto* chain = app.add_subcommand("chain", "time N identical blocks forward then backward as one region; compare with a profile");
  ShapeArgs ca;
  std::int64_t chain_mb = 1, chain_tp = 1;
  int chain_layers = 4;
  std::string chain_profile, chain_out;
  chain->add_option("--backend", backend_name, "backend: " + known)->capture_default_str();
  ca.add(chain);
  ca.add_kernels(chain);
  chain->add_option("--micro-batch", chain_mb, "micro-batch size")->capture_default_str();
  chain->add_option("--tp", chain_tp, "tensor-parallel degree: chain one GPU's shards")->capture_default_str();
  chain->add_option("--layers", chain_layers, "blocks in the chain")->capture_default_str();
  chain->add_option("--profile", chain_profile, "profile to predict the chain time from");
  chain->add_option("-o,--output", chain_out, "result JSON");
  add_method(chain, method);

  auto* gemm = app.add_subcommand("gemm", "TFLOP/s of the block's GEMMs and of a square GEMM");
  ShapeArgs ga;
  std::int64_t gemm_mb = 1, gemm_tp = 1;
  int square = 8192;
  std::string gemm_out;
  gemm->add_option("--backend", backend_name, "backend: " + known)->capture_default_str();
  ga.add(gemm);
  gemm->add_option("--micro-batch", gemm_mb, "micro-batch size")->capture_default_str();
  gemm->add_option("--tp", gemm_tp, "tensor-parallel degree: the shard's GEMM shapes")->capture_default_str();
  gemm->add_option("--square", square, "also time an N x N x N GEMM (0: skip)")->capture_default_str();
  gemm->add_option("-o,--output", gemm_out, "result JSON");
  add_method(gemm, method);

  auto* import = app.add_subcommand("import", "a torch.profiler Chrome trace with ppsim/LAYER/PHASE regions -> profile");
  ShapeArgs ia;
  std::int64_t import_mb = 1, import_tp = 1;
  int import_skip = 0;
  std::string import_trace, import_out = "profile.json";
  import->add_option("trace", import_trace, "trace JSON (torch.profiler export_chrome_trace)")->required();
  ia.add(import);
  import->add_option("--micro-batch", import_mb, "micro-batch size the trace ran")->capture_default_str();
  import->add_option("--tp", import_tp, "tensor-parallel degree the trace's GPU ran (its shard)")->capture_default_str();
  import->add_option("--skip", import_skip, "instances of each region to drop first (warm-up)")->capture_default_str();
  import->add_option("-o,--output", import_out, "profile JSON to write")->capture_default_str();

  auto* validate = app.add_subcommand("validate", "check a profile against the schema");
  std::string validate_path;
  validate->add_option("profile", validate_path, "profile JSON")->required();

#ifdef PPSIM_HAVE_REPLAY
  ppsim::replay::CommandArgs replay_args;
  auto* replay = ppsim::replay::add_replay_command(app, replay_args);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // A usage error is bad input like any other: one line, exit 2.
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::cerr << "ppsim-calibrate: error: " << what << "\n";
    return 2;
  }
  try {
    if (*layers) return cmd_layers(backend_name, la, mbs, tps, out, resume, no_ends, method);
    if (*p2p) return cmd_p2p(backend_name, transport, p2p_peer, p2p_out, min_size, max_size, method);
    if (*collectives) return cmd_collectives(coll);
    if (*check) return cmd_check(backend_name, check_dtype, check_out);
    if (*chain) return cmd_chain(backend_name, ca, chain_mb, chain_tp, chain_layers, chain_profile, chain_out, method);
    if (*gemm) return cmd_gemm(backend_name, ga, gemm_mb, gemm_tp, square, gemm_out, method);
    if (*import) return cmd_import(import_trace, ia, import_mb, import_tp, import_skip, import_out);
    if (*validate) return cmd_validate(validate_path);
#ifdef PPSIM_HAVE_REPLAY
    if (*replay) return ppsim::replay::run_replay_command(replay_args);
#endif
  } catch (const NoDeviceError& e) {
    std::cerr << "ppsim-calibrate: error: " << e.what() << std::endl;
    return 2;
  } catch (const BadInput& e) {
    std::cerr << "ppsim-calibrate: error: " << e.what() << std::endl;
    return 2;
  } catch (const ProfileError& e) {
    std::cerr << "ppsim-calibrate: error: " << e.what() << std::endl;
    return 2;
  } catch (const MissingShapeError& e) {  // chain --profile without the chained shape
    std::cerr << "ppsim-calibrate: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "ppsim-calibrate: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ppsim-calibrate: internal error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
