// ppsim-calibrate import: PyTorch profiler traces to a profile (trace_import.h).
#include "ppsim/calibrate/trace_import.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <tuple>

#include "ppsim/calibrate/measure.h"
#include "ppsim/calibrate/profile.h"
#include "ppsim/calibrate/stats.h"

namespace ppsim::cal {

namespace {

using nlohmann::json;

/// One complete ("ph": "X") event of the trace.
struct Event {
  std::size_t index;  // in traceEvents, for messages
  std::string cat, name;
  json pid, tid;
  double ts{0}, dur{0};  // microseconds
  std::int64_t correlation{-1};
};

[[noreturn]] void fail(const std::string& file, const std::string& path, const std::string& problem) {
  throw std::invalid_argument(file + ": " + path + ": " + problem);
}

std::vector<Event> complete_events(const json& trace, const std::string& file) {
  const json* events = &trace;
  if (trace.is_object()) {
    if (!trace.contains("traceEvents")) fail(file, "traceEvents", "missing: not a Chrome trace (torch.profiler export_chrome_trace)");
    events = &trace.at("traceEvents");
  }
  if (!events->is_array()) fail(file, "traceEvents", "must be an array of events");
  std::vector<Event> out;
  for (std::size_t i = 0; i < events->size(); ++i) {
    const json& e = (*events)[i];
    const std::string path = "traceEvents[" + std::to_string(i) + "]";
    if (!e.is_object()) fail(file, path, "must be an object");
    if (e.value("ph", json()) != "X") continue;  // only complete events carry a duration
    Event ev{i, "", "", e.value("pid", json()), e.value("tid", json())};
    for (const char* key : {"cat", "name"})
      if (e.contains(key) && !e.at(key).is_string()) fail(file, path + "." + key, "must be a string");
    ev.cat = e.value("cat", "");
    ev.name = e.value("name", "");
    for (const char* key : {"ts", "dur"}) {
      if (!e.contains(key) || !e.at(key).is_number()) fail(file, path + "." + key, "missing or not a number");
      const double v = e.at(key).get<double>();
      if (!std::isfinite(v) || v < 0 || v > 1e15) fail(file, path + "." + key, "must be a finite number in [0, 1e15] us");
      (key[0] == 't' ? ev.ts : ev.dur) = v;
    }
    if (e.contains("args") && e.at("args").is_object() && e.at("args").contains("correlation")) {
      const json& c = e.at("args").at("correlation");
      if (!c.is_number_integer()) fail(file, path + ".args.correlation", "must be an integer");
      ev.correlation = c.get<std::int64_t>();
    }
    out.push_back(std::move(ev));
  }
  return out;
}

bool is_gpu_work(const std::string& cat) { return cat == "kernel" || cat == "gpu_memcpy" || cat == "gpu_memset"; }
bool is_launch(const std::string& cat) { return cat == "cuda_runtime" || cat == "cuda_driver"; }

/// "ppsim/LAYER/PHASE" -> (LAYER, PHASE); other names -> nullopt; a malformed ppsim
/// name is an error.
std::optional<std::pair<std::string, std::string>> region_of(const Event& e, const std::string& file) {
  if (e.name.rfind("ppsim/", 0) != 0) return std::nullopt;
  const std::string rest = e.name.substr(6);
  const auto slash = rest.find('/');
  const std::string layer = rest.substr(0, slash);
  const std::string phase = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if ((layer != "block" && layer != "embedding" && layer != "head") || (phase != "F" && phase != "B" && phase != "W"))
    fail(file, "traceEvents[" + std::to_string(e.index) + "].name",
         "'" + e.name + "' is not ppsim/LAYER/PHASE with LAYER block, embedding or head and PHASE F, B or W");
  return std::make_pair(layer, phase);
}

/// Regions on one thread must not overlap or nest: each time belongs to one phase.
void check_no_overlap(std::vector<const Event*> regions, const std::string& file) {
  std::stable_sort(regions.begin(), regions.end(), [](const Event* a, const Event* b) {
    return std::tie(a->pid, a->tid, a->ts) < std::tie(b->pid, b->tid, b->ts);
  });
  for (std::size_t k = 1; k < regions.size(); ++k) {
    const Event& a = *regions[k - 1];
    const Event& b = *regions[k];
    if (a.pid == b.pid && a.tid == b.tid && b.ts < a.ts + a.dur)
      fail(file, "traceEvents[" + std::to_string(b.index) + "]",
           "region '" + b.name + "' at " + std::to_string(b.ts) + " us overlaps '" + a.name + "' (traceEvents[" +
               std::to_string(a.index) + "], " + std::to_string(a.ts) + "-" + std::to_string(a.ts + a.dur) +
               " us) on one thread: ppsim regions must not nest or overlap");
  }
}

/// The GPU span of the work launched inside CPU region `r` (same process and thread).
double kernel_span_ms(const Event& r, const std::vector<Event>& events,
                      const std::map<std::int64_t, std::pair<double, double>>& gpu_by_correlation,
                      const std::string& file) {
  double first = std::numeric_limits<double>::infinity(), last = -first;
  for (const Event& e : events) {
    if (!is_launch(e.cat) || e.pid != r.pid || e.tid != r.tid || e.ts < r.ts || e.ts > r.ts + r.dur) continue;
    const auto it = gpu_by_correlation.find(e.correlation);
    if (it == gpu_by_correlation.end()) continue;
    first = std::min(first, it->second.first);
    last = std::max(last, it->second.second);
  }
  if (!(last >= first))
    fail(file, "traceEvents[" + std::to_string(r.index) + "]",
         "region '" + r.name + "' launched no GPU work (a CPU-only region, or the trace lacks its kernels)");
  return (last - first) / 1e3;
}

}  // namespace

TraceRegions read_torch_trace(const json& trace, const std::string& file) {
  const std::vector<Event> events = complete_events(trace, file);
  TraceRegions out;
  std::vector<const Event*> cpu_regions, gpu_regions;
  std::map<std::int64_t, std::pair<double, double>> gpu_by_correlation;  // first start, last end
  bool any_gpu = false;
  for (const Event& e : events) {
    if (is_gpu_work(e.cat)) {
      any_gpu = true;
      if (e.correlation >= 0) {
        auto [it, fresh] = gpu_by_correlation.try_emplace(e.correlation, e.ts, e.ts + e.dur);
        if (!fresh) it->second = {std::min(it->second.first, e.ts), std::max(it->second.second, e.ts + e.dur)};
      }
    }
    if (e.cat == "gpu_user_annotation") any_gpu = true;
    if (!region_of(e, file)) continue;
    (e.cat == "gpu_user_annotation" ? gpu_regions : cpu_regions).push_back(&e);
  }
  if (cpu_regions.empty() && gpu_regions.empty())
    fail(file, "traceEvents", "no ppsim/LAYER/PHASE regions (wrap each phase in record_function(\"ppsim/block/F\"), ...)");
  if (!any_gpu)
    fail(file, "traceEvents",
         "no GPU activity (no kernel or gpu_user_annotation events): record with "
         "torch.profiler.profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])");
  check_no_overlap(cpu_regions, file);
  const bool annotated = !gpu_regions.empty();
  out.gpu_source = annotated ? "gpu_user_annotation" : "kernels";
  std::vector<const Event*> timed = annotated ? gpu_regions : cpu_regions;
  std::stable_sort(timed.begin(), timed.end(), [](const Event* a, const Event* b) { return a->ts < b->ts; });
  for (const Event* r : timed)
    out.gpu_ms[*region_of(*r, file)].push_back(annotated ? r->dur / 1e3 : kernel_span_ms(*r, events, gpu_by_correlation, file));
  if (trace.is_object() && trace.contains("deviceProperties") && trace.at("deviceProperties").is_array() &&
      !trace.at("deviceProperties").empty() && trace.at("deviceProperties")[0].is_object()) {
    const json& d = trace.at("deviceProperties")[0];
    if (d.contains("name") && d.at("name").is_string()) out.device = d.at("name").get<std::string>();
    if (d.contains("totalGlobalMem") && d.at("totalGlobalMem").is_number_integer())
      out.device_memory = d.at("totalGlobalMem").get<std::int64_t>();
    if (d.contains("computeMajor") && d.contains("computeMinor") && d.at("computeMajor").is_number_integer() &&
        d.at("computeMinor").is_number_integer())
      out.compute_capability = std::to_string(d.at("computeMajor").get<int>()) + "." + std::to_string(d.at("computeMinor").get<int>());
  }
  return out;
}

json profile_from_trace(const TraceRegions& regions, const LayerShape& block, std::int64_t micro_batch, int skip,
                        const std::string& file) {
  auto samples = [&](const std::string& layer, const std::string& phase) -> std::vector<double> {
    const auto it = regions.gpu_ms.find({layer, phase});
    if (it == regions.gpu_ms.end()) return {};
    if (static_cast<int>(it->second.size()) <= skip)
      throw std::invalid_argument(file + ": ppsim/" + layer + "/" + phase + ": " + std::to_string(it->second.size()) +
                                  " instances, none left after --skip " + std::to_string(skip));
    return {it->second.begin() + skip, it->second.end()};
  };
  for (const char* phase : {"F", "B"})
    if (samples("block", phase).empty())
      throw std::invalid_argument(file + ": no ppsim/block/" + std::string(phase) + " region: the block's F and B are needed");
  DeviceInfo dev;
  dev.name = regions.device.empty() ? "unknown (trace has no deviceProperties)" : regions.device;
  dev.memory_bytes = regions.device_memory;
  dev.compute_capability = regions.compute_capability;
  dev.clock = "torch.profiler (CUPTI) GPU timestamps";
  json profile = new_profile("torch-trace", block.dtype, dev,
                             {{"source", file}, {"regions", regions.gpu_source}, {"skipped_instances", skip},
                              {"statistic", "median"}, {"spread", "p95 and sample stddev"}, {"clock", dev.clock}});
  for (const char* layer : {"embedding", "block", "head"}) {
    const std::vector<double> f = samples(layer, "F"), b = samples(layer, "B"), w = samples(layer, "W");
    if (f.empty() && b.empty() && w.empty()) continue;
    if (f.empty() || b.empty())
      throw std::invalid_argument(file + ": ppsim/" + layer + ": needs F and B regions, has " +
                                  (f.empty() ? "" : "F ") + (b.empty() ? "" : "B ") + (w.empty() ? "" : "W ") + "only");
    LayerMeasurement m;
    m.shape = block;
    m.shape.kind = layer == std::string("block") ? LayerKind::block : layer == std::string("embedding") ? LayerKind::embedding : LayerKind::head;
    m.shape.micro_batch = micro_batch;
    if (m.shape.kind == LayerKind::block) m.shape.vocab = 0;
    else if (m.shape.vocab <= 0)
      throw std::invalid_argument(file + ": ppsim/" + layer + " regions need the vocabulary (--vocab or --model)");
    m.forward = summarize(f);
    m.backward_input = summarize(b);
    m.backward_weight = w.empty() ? summarize({0.0}) : summarize(w);
    m.flops = layer_flops(m.shape);
    m.expected_activation_bytes = expected_activation_bytes(m.shape);
    if (m.shape.kind == LayerKind::block) m.korthikanti_bytes = korthikanti_activation_bytes(m.shape);
    // Not measured by an allocator here: the formula PyTorch's block follows (Korthikanti's).
    m.activation_bytes = m.shape.kind == LayerKind::block ? m.korthikanti_bytes : m.expected_activation_bytes;
    m.output_bytes = output_bytes(m.shape);
    m.parameter_bytes = parameter_bytes(m.shape);
    json j = measurement_to_json(m);
    j["note"] = std::string("imported from a torch.profiler trace; bytes from the formulas") +
                (w.empty() ? "; no W regions: backward_input_ms is the whole backward, backward_weight_ms 0" : "");
    upsert_layer(profile, j);
  }
  validate_profile(profile, file);
  return profile;
}

}  // namespace ppsim::cal
