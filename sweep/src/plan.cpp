// ppsim plan: the training-shape question as a sweep with GPUs and global batch fixed.
#include "ppsim/sweep/plan.h"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "ppsim/run/cluster.h"
#include "ppsim/schedules/registry.h"

namespace ppsim {

using nlohmann::json;

namespace {

std::vector<int> default_tensor(const Config& base, int gpus) {
  // Explicit layers are one GPU's costs and cannot be costed at another shard: keep
  // their degree (a transformer costed from "costs" is costed at each t).
  if (base.costed.is_null()) return {std::max(1, base.parallel.tensor_parallel)};
  std::vector<int> out;
  for (int t : {1, 2, 4, 8}) {
    if (gpus % t != 0) continue;
    if (base.cluster.given() && base.cluster.gpus_per_node % t != 0) continue;  // TP stays in a node
    out.push_back(t);
  }
  return out;
}

std::vector<int> default_pipeline(const Config& base, int gpus) {
  std::vector<int> out;
  for (int p = 1; p <= gpus && p <= static_cast<int>(base.layers.size()); ++p)
    if (gpus % p == 0) out.push_back(p);
  return out;
}

PlanOptions with_defaults(const Config& base, PlanOptions o) {
  if (o.tensor.empty()) o.tensor = default_tensor(base, o.gpus);
  if (o.pipeline.empty()) o.pipeline = default_pipeline(base, o.gpus);
  if (o.micro_batch.empty()) o.micro_batch = {1, 2, 4};
  if (o.schedules.empty()) o.schedules = {"1f1b", "interleaved", "zb-h1"};
  if (o.chunks.empty()) o.chunks = {2};
  if (o.recompute.empty()) o.recompute = {"none", "selective", "full"};
  if (o.zero.empty()) o.zero = {0, 1};
  if (o.sequence_parallel.empty()) o.sequence_parallel = {false, true};
  return o;
}

double num(const json& r, const char* key) { return r.contains(key) && r[key].is_number() ? r[key].get<double>() : 0.0; }

}  // namespace

SweepSpec plan_sweep(const Config& base, const PlanOptions& options) {
  if (options.gpus < 1) throw ConfigError("ppsim plan", "", "needs --gpus N (the GPUs of the job)");
  if (options.global_batch < 1) throw ConfigError("ppsim plan", "", "needs --global-batch B (samples per iteration)");
  if (!base.memory.given)
    throw ConfigError(base.file, "memory", "missing: a plan needs the memory model (optimizer, precision) to know what fits");
  const PlanOptions o = with_defaults(base, options);
  SweepSpec spec;
  spec.file = base.file;
  spec.base = base;
  spec.gpus = o.gpus;
  spec.global_batch = o.global_batch;
  for (const std::string& name : o.schedules)
    if (find_schedule(name) == nullptr)
      throw ConfigError("ppsim plan", "--schedules", "unknown schedule '" + name + "' (known: " + known_schedule_names() + ")");
  for (int t : o.tensor)
    for (bool sp : o.sequence_parallel) {
      if (sp && t == 1) continue;
      for (int p : o.pipeline)
        for (int b : o.micro_batch)
          for (const std::string& s : o.schedules) {
            const ScheduleInfo* info = find_schedule(s);
            std::vector<int> chunks = info->chunks > 1 ? o.chunks : std::vector<int>{1};
            for (int v : chunks)
              for (const std::string& rc : o.recompute)
                for (const json& z : o.zero) {
                  json point = {{"schedule", s},         {"tensor_parallel", t}, {"sequence_parallel", sp},
                                {"stages", p},           {"chunks", v},          {"micro_batch_size", b},
                                {"recompute", rc},       {"zero", z},            {"partition", "balanced"}};
                  json constrained = point;
                  if (apply_sweep_constraints(spec, constrained)) continue;  // cannot use the GPUs / batch
                  spec.points.push_back(std::move(point));
                }
          }
    }
  for (const char* axis : {"schedule", "tensor_parallel", "sequence_parallel", "stages", "chunks", "micro_batch_size",
                           "recompute", "zero"})
    spec.axes.push_back(SweepAxis{axis, {}});
  cost_shards(spec);
  return spec;
}

std::vector<const SweepRow*> rank_plan(const std::vector<SweepRow>& rows) {
  std::vector<const SweepRow*> ok;
  for (const auto& r : rows)
    if (r.status == "ok") ok.push_back(&r);
  std::stable_sort(ok.begin(), ok.end(), [](const SweepRow* a, const SweepRow* b) {
    const double ta = a->report["iteration_time_ms"].get<double>(), tb = b->report["iteration_time_ms"].get<double>();
    if (ta != tb) return ta < tb;
    return a->report["peak_memory_bytes"].get<double>() < b->report["peak_memory_bytes"].get<double>();
  });
  return ok;
}

const std::vector<PlanColumn>& plan_columns() {
  static const std::vector<PlanColumn> columns = {
      {"t", [](const json& r) { return r["tensor_parallel"]; }},
      {"p", [](const json& r) { return r["stages"]; }},
      {"d", [](const json& r) { return r["data_parallel_degree"]; }},
      {"v", [](const json& r) { return r["chunks"]; }},
      {"b", [](const json& r) { return r["micro_batch_size"]; }},
      {"m", [](const json& r) { return r["microbatches"]; }},
      {"schedule", [](const json& r) { return r["schedule"]; }},
      {"sp", [](const json& r) { return r["sequence_parallel"]; }},
      {"recompute", [](const json& r) { return r["memory"]["recompute"]; }},
      {"zero", [](const json& r) { return r["memory"]["zero"]; }},
      {"iteration_ms", [](const json& r) { return r["iteration_time_ms"]; }},
      {"tokens_per_s", [](const json& r) { return json(num(r, "tokens_per_s")); }},
      {"mfu", [](const json& r) { return json(num(r, "mfu")); }},
      {"tflops_per_gpu", [](const json& r) { return json(num(r, "tflops_per_gpu")); }},
      {"peak_GiB", [](const json& r) { return json(num(r, "peak_memory_bytes") / (1 << 30)); }},
      {"headroom_GiB",
       [](const json& r) { return json((r["memory"]["limit_bytes"].get<double>() - num(r, "peak_memory_bytes")) / (1 << 30)); }},
      {"bubble_rate", [](const json& r) { return r["bubble_rate"]; }},
      {"exposed_dp_ms", [](const json& r) { return json(r.contains("data_parallel") ? num(r["data_parallel"], "exposed_ms") : 0.0); }},
      {"collective_ms", [](const json& r) { return r["collective_ms"]; }},
      {"recompute_ms", [](const json& r) { return r["recompute_ms"]; }},
  };
  return columns;
}

namespace {

std::string cell(const json& v) {
  std::ostringstream o;
  if (v.is_number_float()) o << std::fixed << std::setprecision(std::abs(v.get<double>()) >= 100 ? 1 : 3) << v.get<double>();
  else if (v.is_string()) o << v.get<std::string>();
  else if (v.is_boolean()) o << (v.get<bool>() ? "yes" : "no");
  else o << v.dump();
  return o.str();
}

std::string shape_of_row(const json& r) {
  std::ostringstream o;
  o << "t=" << r["tensor_parallel"].get<int>() << (r["sequence_parallel"].get<bool>() ? "+SP" : "") << " p="
    << r["stages"].get<int>() << " d=" << r["data_parallel_degree"].get<int>() << " v=" << r["chunks"].get<int>()
    << " b=" << r["micro_batch_size"].get<int>() << " m=" << r["microbatches"].get<int>() << " "
    << r["schedule"].get<std::string>() << ", recompute " << r["memory"]["recompute"].get<std::string>() << ", ZeRO "
    << r["memory"]["zero"].get<std::string>();
  return o.str();
}

/// Where an iteration's time goes: bubble, exposed all-reduce, collectives, recompute.
std::string breakdown(const json& r) {
  const double T = r["iteration_time_ms"].get<double>();
  const double dp = r.contains("data_parallel") ? num(r["data_parallel"], "exposed_ms") : 0.0;
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << "bubble " << 100 * num(r, "bubble_rate") << "%, exposed data-parallel all-reduce "
    << dp << " ms (" << 100 * dp / T << "%), collectives " << num(r, "collective_ms") << " ms ("
    << 100 * num(r, "collective_ms") / T << "%), recompute " << num(r, "recompute_ms") << " ms ("
    << 100 * num(r, "recompute_ms") / T << "%)";
  return o.str();
}

}  // namespace

std::string format_plan(const PlanOptions& options, const std::vector<SweepRow>& rows, int top) {
  const auto ranked = rank_plan(rows);
  std::size_t oom = 0, na = 0, err = 0;
  for (const auto& r : rows) {
    oom += r.status == "oom";
    na += r.status == "not_applicable";
    err += r.status == "error";
  }
  std::ostringstream o;
  o << options.gpus << " GPUs, global batch " << options.global_batch << ": " << rows.size() << " configurations, "
    << ranked.size() << " fit, " << oom << " out of memory, " << na << " not applicable";
  if (err > 0) o << ", " << err << " failed";
  o << "\n";
  if (ranked.empty()) return o.str() + "nothing fits: try more GPUs, ZeRO (--zero 0,1,2,3), full recompute or a smaller micro-batch\n";
  const auto& cols = plan_columns();
  std::vector<std::vector<std::string>> table(1);
  for (const auto& c : cols) table[0].push_back(c.name);
  for (std::size_t i = 0; i < ranked.size() && i < static_cast<std::size_t>(std::max(1, top)); ++i) {
    table.emplace_back();
    for (const auto& c : cols) table.back().push_back(cell(c.value(ranked[i]->report)));
  }
  std::vector<std::size_t> width(cols.size(), 0);
  for (const auto& row : table)
    for (std::size_t k = 0; k < row.size(); ++k) width[k] = std::max(width[k], row[k].size());
  for (const auto& row : table) {
    for (std::size_t k = 0; k < row.size(); ++k) o << (k ? "  " : "") << std::setw(static_cast<int>(width[k])) << row[k];
    o << "\n";
  }
  const json& best = ranked[0]->report;
  o << "\nbest: " << shape_of_row(best) << ": " << std::fixed << std::setprecision(1)
    << best["iteration_time_ms"].get<double>() << " ms per iteration, " << std::setprecision(3) << num(best, "mfu")
    << " MFU, " << std::setprecision(1) << (best["memory"]["limit_bytes"].get<double>() - num(best, "peak_memory_bytes")) / (1 << 30)
    << " GiB to spare\n  where its time goes: " << breakdown(best) << "\n";
  if (ranked.size() > 1) {
    const json& next = ranked[1]->report;
    o << "runner-up: " << shape_of_row(next) << ": " << std::setprecision(1) << std::fixed
      << 100 * (next["iteration_time_ms"].get<double>() / best["iteration_time_ms"].get<double>() - 1) << "% slower\n"
      << "  where its time goes: " << breakdown(next) << "\n";
  }
  return o.str();
}

std::string plan_csv(const std::vector<SweepRow>& rows) {
  std::ostringstream o;
  const auto& cols = plan_columns();
  o << "rank";
  for (const auto& c : cols) o << "," << c.name;
  o << "\n";
  int rank = 0;
  for (const SweepRow* r : rank_plan(rows)) {
    o << ++rank;
    for (const auto& c : cols) {
      const json v = c.value(r->report);
      o << "," << (v.is_string() ? v.get<std::string>() : v.dump());
    }
    o << "\n";
  }
  return o.str();
}

json plan_json(const PlanOptions& options, const std::vector<SweepRow>& rows) {
  json ranked = json::array();
  for (const SweepRow* r : rank_plan(rows)) {
    json row = json::object();
    for (const auto& c : plan_columns()) row[c.name] = c.value(r->report);
    ranked.push_back(std::move(row));
  }
  json skipped = json::array();
  for (const auto& r : rows)
    if (r.status != "ok") skipped.push_back({{"overrides", r.overrides}, {"status", r.status}, {"reason", r.reason}});
  return {{"format", "ppsim.plan/1"}, {"gpus", options.gpus}, {"global_batch", options.global_batch},
          {"ranked", ranked},        {"not_chosen", skipped}};
}

}  // namespace ppsim
