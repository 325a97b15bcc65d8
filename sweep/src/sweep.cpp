// ppsim sweep: grid over a base config, one std::thread per core pulling point numbers
// from an atomic counter; rows are stored by point so the output order never depends on
// scheduling.
#include "ppsim/sweep/sweep.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "ppsim/run/cluster.h"
#include "ppsim/run/budget.h"
#include "ppsim/run/json_reader.h"
#include "ppsim/run/overrides.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/views/files.h"
#include "ppsim/views/report.h"
#include "ppsim/run/stages.h"

namespace ppsim {

using detail::JsonReader;
using nlohmann::json;

namespace {
constexpr std::size_t kMaxPoints = 10'000'000;
}

const std::vector<std::string>& sweep_axis_names() {
  static const std::vector<std::string> names = {
      "schedule",  "tensor_parallel", "sequence_parallel", "stages", "microbatches", "chunks", "micro_batch_size",
      "partition", "recompute",       "zero",              "data_parallel", "communication", "overlap"};
  return names;
}

std::string canonical_axis_name(const std::string& name) {
  if (name == "tensor") return "tensor_parallel";
  if (name == "pipeline") return "stages";
  if (name == "data") return "data_parallel";
  const auto& names = sweep_axis_names();
  return std::find(names.begin(), names.end(), name) != names.end() ? name : std::string();
}

std::optional<std::string> apply_sweep_constraints(const SweepSpec& spec, json& o) {
  const Config& base = spec.base;
  const std::int64_t t = o.value("tensor_parallel", std::max(1, base.parallel.tensor_parallel));
  const std::int64_t p = o.value("stages", base.pipeline.stages);
  if (spec.gpus > 0) {
    if (o.contains("data_parallel")) {
      const std::int64_t d = o["data_parallel"].get<int>();
      if (t * p * d != spec.gpus)
        return "tensor " + std::to_string(t) + " x pipeline " + std::to_string(p) + " x data " + std::to_string(d) +
               " is not the " + std::to_string(spec.gpus) + " GPUs held fixed";
    } else {
      if (spec.gpus % (t * p) != 0)
        return std::to_string(spec.gpus) + " GPUs do not divide into tensor " + std::to_string(t) + " x pipeline " +
               std::to_string(p);
      o["data_parallel"] = spec.gpus / (t * p);
    }
  }
  if (spec.global_batch > 0) {
    const std::int64_t b = o.value("micro_batch_size", base.micro_batch_size);
    const std::int64_t d = o.contains("data_parallel") ? o["data_parallel"].get<std::int64_t>()
                                                       : data_parallel_degree(base);
    if (spec.global_batch % (b * d) != 0)
      return "global batch " + std::to_string(spec.global_batch) + " is not a multiple of micro-batch size " +
             std::to_string(b) + " x data-parallel degree " + std::to_string(d);
    o["microbatches"] = spec.global_batch / (b * d);
  }
  return std::nullopt;
}

std::size_t SweepSpec::size() const {
  if (!points.empty()) return points.size();
  std::size_t n = 1;
  for (const auto& a : axes) n *= a.values.size();
  return n;
}

json SweepSpec::overrides(std::size_t index) const {
  if (!points.empty()) return points[index];
  json o = json::object();
  for (std::size_t k = axes.size(); k-- > 0;) {
    const auto& a = axes[k];
    o[a.name] = a.values[index % a.values.size()];
    index /= a.values.size();
  }
  return o;
}

namespace {

/// Checks one override value's type; `path` names it in the sweep file.
void check_value(const JsonReader& r, const std::string& name, const json& v, const std::string& path) {
  auto positive_int = [&] {
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > (1 << 24)) ||
        v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > (1 << 24))
      r.fail(path, "must be a positive integer (got " + JsonReader::brief(v) + ")");
  };
  if (name == "schedule") {
    if (!v.is_string()) r.fail(path, "must be a schedule name (got " + JsonReader::brief(v) + ")");
    if (find_schedule(v.get<std::string>()) == nullptr)
      r.fail(path, "unknown schedule '" + v.get<std::string>() + "' (known: " + known_schedule_names() + ")");
  } else if (name == "sequence_parallel") {
    if (!v.is_boolean()) r.fail(path, "must be true or false (got " + JsonReader::brief(v) + ")");
  } else if (name == "zero") {
    const bool stage = v.is_number_integer() && v.get<std::int64_t>() >= 0 && v.get<std::int64_t>() <= 3;
    if (!stage && v != "distributed") r.fail(path, "must be 0, 1, 2, 3 or \"distributed\" (got " + JsonReader::brief(v) + ")");
  } else if (name == "communication") {
    if (!v.is_string() || !parse_comm_semantics(v.get<std::string>()))
      r.fail(path, "must be one of " + known_comm_semantics() + " (got " + JsonReader::brief(v) + ")");
  } else if (name == "overlap") {  // pipeline.overlap, the same range
    if (!v.is_number() || v.get<double>() < 0.0 || v.get<double>() > 1.0)
      r.fail(path, "must be a number in 0..1 (got " + JsonReader::brief(v) + ")");
  } else if (name == "recompute") {
    if (!v.is_string() || !parse_recompute(v.get<std::string>()))
      r.fail(path, "must be \"none\", \"selective\" or \"full\" (got " + JsonReader::brief(v) + ")");
  } else if (name == "partition") {
    const bool word = v.is_string() && (v == "uniform" || v == "balanced");
    const bool list = v.is_array() && !v.empty();
    if (!word && !list)
      r.fail(path, "must be \"uniform\", \"balanced\" or a list of layer counts (got " + JsonReader::brief(v) + ")");
    // The same bounds as a config's pipeline.partition list (1..kMaxLayers each).
    if (list && v.size() > static_cast<std::size_t>(kMaxStages * kMaxChunks))
      r.fail(path, "lists " + std::to_string(v.size()) + " stages, over the limit of " + std::to_string(kMaxStages * kMaxChunks));
    for (std::size_t i = 0; list && i < v.size(); ++i)
      if (!v[i].is_number_integer() || v[i].get<std::int64_t>() < 1 || v[i].get<std::int64_t>() > kMaxLayers)
        r.fail(path + "[" + std::to_string(i) + "]",
               "must be a layer count in 1.." + std::to_string(kMaxLayers) + " (got " + JsonReader::brief(v[i]) + ")");
  } else {
    positive_int();
  }
}

}  // namespace

namespace {

/// The values an axis takes, or the base's one value when it is not an axis.
std::vector<json> axis_values(const SweepSpec& spec, const std::string& name, const json& fallback) {
  for (const auto& a : spec.axes)
    if (a.name == name) return a.values;
  return {fallback};
}

void add_shard(SweepSpec& spec, const ShardShape& shape) {
  if (shape == shard_shape(spec.base) || spec.base_by_shard.count(shape) || spec.shard_error.count(shape)) return;
  try {
    if (auto c = recost_shard(spec.base, shape)) spec.base_by_shard.emplace(shape, std::move(*c));
  } catch (const ConfigError& e) {
    spec.shard_error.emplace(shape, e.what());
  }
}

}  // namespace

ShardShape point_shard_shape(const SweepSpec& spec, const json& o) {
  ShardShape shape = shard_shape(spec.base);
  shape.micro_batch_size = o.value("micro_batch_size", shape.micro_batch_size);
  shape.tensor_parallel = o.value("tensor_parallel", shape.tensor_parallel);
  shape.sequence_parallel = o.value("sequence_parallel", shape.sequence_parallel) && shape.tensor_parallel > 1;
  return shape;
}

void cost_shards(SweepSpec& spec) {
  if (spec.base.costed.is_null()) return;
  if (!spec.points.empty()) {
    for (const json& p : spec.points) add_shard(spec, point_shard_shape(spec, p));
    return;
  }
  const ShardShape own = shard_shape(spec.base);
  for (const json& b : axis_values(spec, "micro_batch_size", own.micro_batch_size))
    for (const json& t : axis_values(spec, "tensor_parallel", own.tensor_parallel))
      for (const json& sp : axis_values(spec, "sequence_parallel", own.sequence_parallel))
        add_shard(spec, ShardShape{b.get<int>(), t.get<int>(), sp.get<bool>() && t.get<int>() > 1});
}

SweepSpec parse_sweep(const json& doc, const std::string& file) {
  namespace fs = std::filesystem;
  JsonReader r(file);
  if (!doc.is_object()) r.fail("", "a sweep must be a JSON object");
  r.check_keys(doc, "", {"description", "base", "grid", "output", "top", "gpus", "global_batch"});
  (void)r.string(doc, "description", "", "");
  SweepSpec spec;
  spec.file = file;
  if (!doc.contains("base")) r.fail("base", "missing (a config path relative to this file, or an inline config)");
  const json& base = doc.at("base");
  json base_doc;
  std::string base_file;
  if (base.is_string()) {
    fs::path p = base.get<std::string>();
    if (p.is_relative()) p = fs::path(file).parent_path() / p;
    base_file = p.lexically_normal().string();
    base_doc = read_json_file(base_file);
    spec.base = parse_config(base_doc, base_file);
  } else if (base.is_object()) {
    base_file = file + " (base)";
    spec.base = parse_config(base, base_file);
    base_doc = base;
  } else {
    r.fail("base", "must be a config path or an inline config object");
  }
  const json& grid = r.object(doc, "grid", "");
  for (auto it = grid.begin(); it != grid.end(); ++it) {
    const std::string path = "grid." + it.key();
    const auto& names = sweep_axis_names();
    const std::string name = canonical_axis_name(it.key());
    if (name.empty()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      r.fail(path, "unknown axis (allowed: " + list + "; tensor, pipeline and data for short)");
    }
    for (const auto& a : spec.axes)
      if (a.name == name) r.fail(path, "the same axis as grid." + name + " (give one of them)");
    const json& values = it.value();
    if (!values.is_array() || values.empty()) r.fail(path, "must be a non-empty list of values");
    SweepAxis axis{name, {}};
    for (std::size_t i = 0; i < values.size(); ++i) {
      check_value(r, name, values[i], path + "[" + std::to_string(i) + "]");
      // A fraction is a double whatever the file wrote (0 and 0.0 print alike in the CSV).
      axis.values.push_back(name == "overlap" ? json(values[i].get<double>()) : values[i]);
    }
    spec.axes.push_back(std::move(axis));
  }
  spec.gpus = static_cast<int>(r.integer(doc, "gpus", "", 0, 1, 1 << 24));
  spec.global_batch = r.integer(doc, "global_batch", "", 0, 1, std::int64_t{1} << 40);
  for (const auto& a : spec.axes)
    if (a.name == "microbatches" && spec.global_batch > 0)
      r.fail("grid.microbatches", "cannot be an axis with global_batch fixed (m = global_batch / (b x d))");
  // Fixed axis order (the order of sweep_axis_names) whatever the file's key order.
  std::stable_sort(spec.axes.begin(), spec.axes.end(), [](const SweepAxis& a, const SweepAxis& b) {
    const auto& n = sweep_axis_names();
    return std::find(n.begin(), n.end(), a.name) < std::find(n.begin(), n.end(), b.name);
  });
  cost_shards(spec);
  double points = 1;
  for (const auto& a : spec.axes) points *= static_cast<double>(a.values.size());
  if (points > static_cast<double>(kMaxPoints))
    r.fail("grid", "has " + std::to_string(static_cast<long long>(points)) + " points, over the limit of " +
                       std::to_string(kMaxPoints));
  if (doc.contains("output")) {
    const json& out = r.object(doc, "output", "");
    r.check_keys(out, "output", {"csv", "json", "vega"});
    spec.csv_path = r.string(out, "csv", "output", "");
    spec.json_path = r.string(out, "json", "output", "");
    spec.vega_path = r.string(out, "vega", "output", "");
  }
  spec.top = static_cast<int>(r.integer(doc, "top", "", 10, 0, 100000));
  return spec;
}

SweepSpec load_sweep(const std::string& path) {
  return parse_sweep(read_json_file(path), path);
}

SweepSpec compare_sweep(const Config& base, const std::vector<std::string>& schedules) {
  SweepSpec spec;
  spec.file = base.file;
  spec.base = base;
  SweepAxis axis{"schedule", {}};
  for (const std::string& name : schedules) {
    axis.values.emplace_back(name);
    spec.points.push_back(json{{"schedule", name}, {"chunks", compare_chunks(name, base)}});
  }
  spec.axes.push_back(std::move(axis));
  return spec;
}

int compare_chunks(const std::string& schedule, const Config& base) {
  const ScheduleInfo* info = find_schedule(schedule);
  if (info == nullptr || info->chunks <= 1) return 1;
  return base.pipeline.chunks > 1 ? base.pipeline.chunks : info->chunks;
}

namespace {

SweepRow run_point(const SweepSpec& spec, std::size_t point, const SweepOptions& opt) {
  SweepRow row;
  row.point = point;
  row.overrides = spec.overrides(point);
  try {
    const Config* base = &spec.base;
    json overrides = row.overrides;
    if (auto why = apply_sweep_constraints(spec, overrides)) {
      row.status = "not_applicable";
      row.reason = *why;
      return row;
    }
    const ShardShape shape = point_shard_shape(spec, overrides);
    if (auto err = spec.shard_error.find(shape); err != spec.shard_error.end()) {
      row.status = "not_applicable";
      row.reason = err->second;
      return row;
    }
    if (auto it = spec.base_by_shard.find(shape); it != spec.base_by_shard.end()) {
      base = &it->second;  // already costed at this shape
      overrides.erase("micro_batch_size");
    }
    Config c = apply_overrides(*base, overrides_from_json(overrides));
    const Run run = prepare_run(c);
    auto links = make_links(c, run.schedule.devices);
    // Memory samples give the exact OOM instant; skip them when no limit applies.
    const SimResult result = simulate_run(run, *links, SimOptions{memory_limit_bytes(c) > 0});
    json rep = make_report(run, result);
    if (!opt.per_device) {  // keep rows small: the critical path's totals, not its steps
      rep.erase("per_device");
      rep.erase("per_stage");
      rep["critical_path"].erase("steps");
    }
    row.status = rep.value("fits", true) ? "ok" : "oom";
    if (row.status == "oom") {
      const json& x = rep["oom"];
      row.reason = "device " + std::to_string(x["device"].get<int>()) + " exceeds the limit by " +
                   std::to_string(x["excess_bytes"].get<std::int64_t>()) + " bytes at " +
                   std::to_string(x["time_ms"].get<double>()) + " ms";
    }
    row.report = std::move(rep);
  } catch (const ConfigError& e) {
    row.status = "not_applicable";
    row.reason = e.what();
  } catch (const ScheduleError& e) {
    row.status = "not_applicable";
    row.reason = e.what();
  } catch (const std::exception& e) {
    row.status = "error";
    row.reason = e.what();
  }
  return row;
}

}  // namespace

int sweep_jobs(const SweepOptions& opt, std::size_t points) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, std::min<int>(opt.jobs > 0 ? opt.jobs : hw, static_cast<int>(std::max<std::size_t>(1, points))));
}

std::int64_t estimated_sweep_bytes(const SweepSpec& spec, const SweepOptions& opt) {
  // The largest shape any point can take, axis by axis, for each schedule it names.
  PipelineSpec largest = spec.base.pipeline;
  std::vector<std::string> schedules{largest.schedule};
  auto widest = [](int& field, const json& v) {
    if (v.is_number_integer()) field = std::max<int>(field, static_cast<int>(std::min<std::int64_t>(v.get<std::int64_t>(), 1 << 24)));
  };
  auto take = [&](const std::string& name, const json& v) {
    if (name == "stages") widest(largest.stages, v);
    if (name == "microbatches") widest(largest.microbatches, v);
    if (name == "chunks") widest(largest.chunks, v);
    if (name == "schedule" && v.is_string()) schedules.push_back(v.get<std::string>());
  };
  for (const auto& a : spec.axes)
    for (const json& v : a.values) take(a.name, v);
  for (const json& point : spec.points)
    for (auto it = point.begin(); it != point.end(); ++it) take(it.key(), it.value());
  std::int64_t per_run = 0;
  for (const std::string& name : schedules) {
    largest.schedule = name;
    per_run = std::max(per_run, estimated_run_bytes(largest, RunOutputs{memory_limit_bytes(spec.base) > 0}));
  }
  const std::size_t points = (spec.size() + static_cast<std::size_t>(opt.shard_count) - 1 - static_cast<std::size_t>(opt.shard_index)) /
                             static_cast<std::size_t>(opt.shard_count);
  return kBaseBytes + sweep_jobs(opt, points) * per_run + static_cast<std::int64_t>(points) * kSweepBytesPerPoint;
}

namespace {

// Prints progress every few seconds (a quarter second on a terminal) until `done` reaches `total`.
void report_progress(std::ostream& progress, const std::atomic<std::size_t>& done, std::size_t total,
                     std::chrono::steady_clock::time_point t0) {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  auto last = t0;
  while (done.load() < total) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(tty ? 250 : 5000) && done.load() < total) continue;
    last = now;
    const double secs = std::chrono::duration<double>(now - t0).count();
    const std::size_t d = done.load();
    progress << (tty ? "\r" : "") << "sweep: " << d << "/" << total << " points (" << std::fixed
             << std::setprecision(1) << (total == 0 ? 100.0 : 100.0 * d / total) << "%), " << std::setprecision(0)
             << (secs > 0 ? d / secs : 0.0) << " points/s" << (tty ? "" : "\n") << std::flush;
  }
}

// Rows finished out of order wait here until every earlier one has been handed on.
struct RowQueue {
  std::mutex mutex;
  std::map<std::size_t, SweepRow> waiting;
  std::size_t next{0};
  std::exception_ptr failed;
};

}  // namespace

void run_sweep(const SweepSpec& spec, const SweepOptions& opt, const std::function<void(SweepRow&&)>& on_row) {
  std::vector<std::size_t> points;
  for (std::size_t i = static_cast<std::size_t>(opt.shard_index); i < spec.size(); i += static_cast<std::size_t>(opt.shard_count))
    points.push_back(i);
  std::atomic<std::size_t> next{0}, done{0};
  RowQueue queue;
  const int jobs = sweep_jobs(opt, points.size());
  auto worker = [&] {
    for (std::size_t k; (k = next.fetch_add(1)) < points.size();) {
      SweepRow row = run_point(spec, points[k], opt);
      const std::lock_guard<std::mutex> lock(queue.mutex);
      queue.waiting.emplace(k, std::move(row));
      try {
        for (auto it = queue.waiting.begin(); !queue.failed && it != queue.waiting.end() && it->first == queue.next;
             it = queue.waiting.erase(it), ++queue.next)
          on_row(std::move(it->second));
      } catch (...) {
        queue.failed = std::current_exception();
        next.store(points.size());  // no new points; the others finish theirs
        done.store(points.size());
      }
      done.fetch_add(1);
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);
  if (opt.progress != nullptr) report_progress(*opt.progress, done, points.size(), t0);
  for (auto& t : threads) t.join();
  if (queue.failed) std::rethrow_exception(queue.failed);
  if (opt.progress != nullptr) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *opt.progress << (::isatty(STDERR_FILENO) ? "\r" : "") << "sweep: " << points.size() << " points in "
                  << std::fixed << std::setprecision(2) << secs << " s (" << std::setprecision(0)
                  << (secs > 0 ? points.size() / secs : 0.0) << " points/s) on " << jobs << " threads\n";
  }
}

std::vector<SweepRow> run_sweep(const SweepSpec& spec, const SweepOptions& opt) {
  std::vector<SweepRow> rows;
  run_sweep(spec, opt, [&](SweepRow&& row) { rows.push_back(std::move(row)); });
  return rows;
}

namespace {

/// Flattens scalars (and lists of numbers) of a report into dotted columns; lists of
/// objects or strings, and empty lists, stay in the JSON output only.
void flatten(const json& v, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  if (v.is_array()) {
    if (v.empty()) return;
    std::string joined;
    for (const auto& x : v) {
      if (!x.is_number()) return;  // lists of objects or strings stay in the JSON output
      joined += (joined.empty() ? "" : " ") + x.dump();
    }
    out.emplace_back(prefix, joined);
    return;
  }
  if (v.is_null()) out.emplace_back(prefix, "");
  else if (v.is_string()) out.emplace_back(prefix, v.get<std::string>());
  else out.emplace_back(prefix, v.dump());
}

std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : " ") + x.dump();
    return s;
  }
  return v.dump();
}

}  // namespace

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

SweepCsv::SweepCsv(const SweepSpec& spec) {
  auto column = [&](const std::string& name) {
    if (index_.emplace(name, columns_.size()).second) columns_.push_back(name);
  };
  for (const char* name : {"point", "status", "reason"}) column(name);
  for (const auto& a : spec.axes) column(a.name);
  // compare's explicit points name their axes (schedule, chunks): both are report fields.
  for (const std::string& field : report_scalar_fields()) column(field);
}

std::string SweepCsv::header() const {
  std::string out;
  for (std::size_t i = 0; i < columns_.size(); ++i) out += (i ? "," : "") + csv_field(columns_[i]);
  return out + "\n";
}

std::string SweepCsv::line(const SweepRow& row) const {
  std::vector<std::string> fields(columns_.size());
  auto set = [&](const std::string& name, std::string value) {
    const auto it = index_.find(name);
    if (it == index_.end()) throw std::logic_error("sweep CSV: no column for report field " + name);
    fields[it->second] = std::move(value);
  };
  set("point", std::to_string(row.point));
  set("status", row.status);
  set("reason", row.reason);
  std::vector<std::pair<std::string, std::string>> flat;
  if (!row.report.is_null()) flatten(row.report, "", flat);
  for (auto it = row.overrides.begin(); it != row.overrides.end(); ++it) {
    // The report's own value (canonical schedule name, ...) wins over the override.
    const bool reported = std::any_of(flat.begin(), flat.end(), [&](const auto& f) { return f.first == it.key(); });
    if (!reported) set(it.key(), value_text(it.value()));
  }
  for (auto& [k, v] : flat) set(k, std::move(v));
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) out += (i ? "," : "") + csv_field(fields[i]);
  return out + "\n";
}

std::string sweep_csv(const SweepSpec& spec, const std::vector<SweepRow>& rows) {
  const SweepCsv csv(spec);
  std::string out = csv.header();
  for (const SweepRow& row : rows) out += csv.line(row);
  return out;
}

namespace {

json row_json(const SweepRow& row) {
  json r = {{"point", row.point}, {"status", row.status}, {"overrides", row.overrides}};
  if (!row.reason.empty()) r["reason"] = row.reason;
  if (!row.report.is_null()) r["report"] = row.report;
  return r;
}

struct Counts {
  std::size_t ok{0}, oom{0}, na{0}, err{0};
  void add(const SweepRow& row) {
    ok += row.status == "ok";
    oom += row.status == "oom";
    na += row.status == "not_applicable";
    err += row.status == "error";
  }
};

json sweep_document(const SweepSpec& spec, const SweepOptions& opt, const Counts& n, json rows) {
  json grid = json::object();
  for (const auto& a : spec.axes) grid[a.name] = a.values;
  return json{{"schema", "ppsim.sweep/1"},
              {"sweep", spec.file},
              {"base", spec.base.file},
              {"grid", grid},
              {"points", spec.size()},
              {"shard", std::to_string(opt.shard_index) + "/" + std::to_string(opt.shard_count)},
              {"counts", {{"ok", n.ok}, {"oom", n.oom}, {"not_applicable", n.na}, {"error", n.err}}},
              {"rows", std::move(rows)}};
}

// `v` pretty-printed (indent 1) as it appears `depth` levels deep in a document.
std::string dump_at(const json& v, int depth) {
  std::string text = v.dump(1);
  const std::string indent(static_cast<std::size_t>(depth), ' ');
  for (std::size_t at = 0; (at = text.find('\n', at)) != std::string::npos; at += 1 + indent.size())
    text.insert(at + 1, indent);
  return text;
}

}  // namespace

json sweep_json(const SweepSpec& spec, const std::vector<SweepRow>& rows, const SweepOptions& opt) {
  json out = json::array();
  Counts n;
  for (const auto& row : rows) {
    out.push_back(row_json(row));
    n.add(row);
  }
  return sweep_document(spec, opt, n, std::move(out));
}

SweepJsonWriter::SweepJsonWriter(const SweepSpec& spec, const SweepOptions& options)
    : spec_(spec), options_(options), spool_(std::tmpfile()) {
  if (spool_ == nullptr) throw OutputError("cannot create a temporary file for the sweep's JSON rows");
}

SweepJsonWriter::~SweepJsonWriter() { std::fclose(spool_); }

void SweepJsonWriter::add(const SweepRow& row) {
  // Each row as it sits in "rows": two levels deep, after ",\n" from the one before.
  const std::string text = (rows_ == 0 ? "  " : ",\n  ") + dump_at(row_json(row), 2);
  if (std::fwrite(text.data(), 1, text.size(), spool_) != text.size())
    throw OutputError("cannot write the sweep's JSON rows to a temporary file");
  ++rows_;
  ok_ += row.status == "ok";
  oom_ += row.status == "oom";
  na_ += row.status == "not_applicable";
  err_ += row.status == "error";
}

// The document as `std::setw(1) << sweep_json(...)` writes it, the rows copied back from
// the spool in their place.
void SweepJsonWriter::finish(std::ostream& out) {
  const json frame = sweep_document(spec_, options_, Counts{ok_, oom_, na_, err_}, nullptr);
  if (std::fflush(spool_) != 0 || std::fseek(spool_, 0, SEEK_SET) != 0)
    throw OutputError("cannot read back the sweep's JSON rows");
  out << "{\n";
  bool first = true;
  for (const auto& member : frame.items()) {
    out << (first ? " " : ",\n ") << json(member.key()).dump() << ": ";
    first = false;
    if (member.key() != "rows") {
      out << dump_at(member.value(), 1);
    } else if (rows_ == 0) {
      out << "[]";
    } else {
      out << "[\n";
      char buf[1 << 16];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, spool_)) > 0;) out.write(buf, static_cast<std::streamsize>(n));
      if (std::ferror(spool_)) throw OutputError("cannot read back the sweep's JSON rows");
      out << "\n ]";
    }
  }
  out << "\n}";
}

SweepRow summary_row(SweepRow&& row) {
  row.overrides = nullptr;
  row.reason.clear();
  row.reason.shrink_to_fit();
  if (row.report.is_null()) return std::move(row);
  const json& r = row.report;
  json kept = json::object();
  for (const char* key : {"schedule", "stages", "microbatches", "chunks", "micro_batch_size", "bubble_rate",
                          "iteration_time_ms", "samples_per_s", "peak_memory_bytes"})
    kept[key] = r[key];
  if (r.contains("data_parallel")) kept["data_parallel"]["degree"] = r["data_parallel"]["degree"];
  if (r.contains("memory")) kept["memory"]["recompute"] = r["memory"]["recompute"];
  if (r.contains("partition")) kept["partition"]["kind"] = r["partition"]["kind"];
  row.report = std::move(kept);
  return std::move(row);
}

namespace {

// The Pareto front of throughput against memory among the points that fit: a point is on
// it when no other fitting point has at least its samples/s with at most its peak memory,
// one of them strictly.
std::vector<bool> pareto_front(const std::vector<SweepRow>& rows) {
  std::vector<bool> front(rows.size(), false);
  auto fits = [&](std::size_t i) { return rows[i].status == "ok" && !rows[i].report.is_null(); };
  auto value = [&](std::size_t i, const char* key) { return rows[i].report[key].get<double>(); };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!fits(i)) continue;
    bool dominated = false;
    for (std::size_t j = 0; j < rows.size() && !dominated; ++j) {
      if (j == i || !fits(j)) continue;
      const double ti = value(i, "samples_per_s"), tj = value(j, "samples_per_s");
      const double mi = value(i, "peak_memory_bytes"), mj = value(j, "peak_memory_bytes");
      dominated = tj >= ti && mj <= mi && (tj > ti || mj < mi);
    }
    front[i] = !dominated;
  }
  return front;
}

}  // namespace

json sweep_vega(const SweepSpec& spec, const std::vector<SweepRow>& rows) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  const std::vector<bool> front = pareto_front(rows);
  json data = json::array();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const SweepRow& row = rows[i];
    if (row.report.is_null()) continue;
    const json& r = row.report;
    data.push_back({{"point", row.point},
                    {"pareto", static_cast<bool>(front[i])},
                    {"status", row.status},
                    {"schedule", r["schedule"]},
                    {"stages", r["stages"]},
                    {"microbatches", r["microbatches"]},
                    {"chunks", r["chunks"]},
                    {"micro_batch_size", r["micro_batch_size"]},
                    {"data_parallel", r.contains("data_parallel") ? r["data_parallel"]["degree"] : json(1)},
                    {"recompute", r.contains("memory") ? r["memory"]["recompute"] : json("none")},
                    {"bubble_rate", r["bubble_rate"]},
                    {"iteration_time_ms", r["iteration_time_ms"]},
                    {"samples_per_s", r["samples_per_s"]},
                    {"peak_memory_GiB", r["peak_memory_bytes"].get<double>() / kGiB}});
  }
  const json tooltip = json::array({{{"field", "schedule"}, {"type", "nominal"}},
                                    {{"field", "stages"}, {"type", "quantitative"}},
                                    {{"field", "microbatches"}, {"type", "quantitative"}},
                                    {{"field", "chunks"}, {"type", "quantitative"}},
                                    {{"field", "micro_batch_size"}, {"type", "quantitative"}},
                                    {{"field", "data_parallel"}, {"type", "quantitative"}},
                                    {{"field", "recompute"}, {"type", "nominal"}},
                                    {{"field", "samples_per_s"}, {"type", "quantitative"}, {"format", ".2f"}},
                                    {{"field", "peak_memory_GiB"}, {"type", "quantitative"}, {"format", ".2f"}},
                                    {{"field", "status"}, {"type", "nominal"}}});
  json bubble = {
      {"title", "Bubble rate against micro-batches (mean over the other axes)"},
      {"width", 360},
      {"height", 260},
      {"mark", {{"type", "line"}, {"point", true}}},
      {"encoding",
       {{"x", {{"field", "microbatches"}, {"type", "quantitative"}, {"scale", {{"type", "log"}, {"base", 2}}},
               {"title", "micro-batches m"}}},
        {"y", {{"aggregate", "mean"}, {"field", "bubble_rate"}, {"type", "quantitative"}, {"title", "bubble rate"}}},
        {"color", {{"field", "schedule"}, {"type", "nominal"}}}}}};
  // Only the points that fit: out-of-memory ones would stretch the memory axis until
  // every point that fits sat at its left edge. The Pareto front is a line through its
  // points, which are drawn larger and outlined.
  const json fits_only = json::array({{{"filter", "datum.status == 'ok'"}}});
  const json x = {{"field", "peak_memory_GiB"}, {"type", "quantitative"}, {"title", "peak memory per GPU (GiB)"}};
  const json y = {{"field", "samples_per_s"}, {"type", "quantitative"}, {"title", "throughput (samples/s)"}};
  json layers = json::array();
  layers.push_back({{"transform", json::array({{{"filter", "datum.status == 'ok' && datum.pareto"}}})},
                    {"mark", {{"type", "line"}, {"color", "#1a1a1a"}, {"strokeWidth", 1}, {"strokeDash", {3, 2}}}},
                    {"encoding", {{"x", x}, {"y", y}, {"order", {{"field", "peak_memory_GiB"}}}}}});
  layers.push_back({{"transform", fits_only},
                    {"mark", {{"type", "point"}, {"filled", true}}},
                    {"encoding",
                     {{"x", x}, {"y", y},
                      {"color", {{"field", "schedule"}, {"type", "nominal"}}},
                      {"size", {{"field", "pareto"}, {"type", "nominal"}, {"title", "Pareto front"},
                                {"scale", {{"domain", {false, true}}, {"range", {30, 110}}}}}},
                      {"stroke", {{"value", "#1a1a1a"}}},
                      {"strokeWidth", {{"condition", {{"test", "datum.pareto"}, {"value", 1.2}}}, {"value", 0}}},
                      {"tooltip", tooltip}}}});
  const std::int64_t limit = memory_limit_bytes(spec.base);
  if (limit > 0)
    layers.push_back({{"data", {{"values", json::array({{{"limit", static_cast<double>(limit) / kGiB}}})}}},
                      {"mark", {{"type", "rule"}, {"strokeDash", {4, 4}}, {"color", "firebrick"}}},
                      {"encoding", {{"x", {{"field", "limit"}, {"type", "quantitative"}}}}}});
  json throughput = {{"title", "Throughput against peak memory (points that fit; Pareto front joined)"}, {"width", 360}, {"height", 260}, {"layer", layers}};
  return json{{"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
              {"description", "ppsim sweep " + spec.file},
              {"datasets", {{"sweep", data}}},
              {"data", {{"name", "sweep"}}},
              {"hconcat", json::array({bubble, throughput})}};
}

std::string format_best_points(const std::vector<SweepRow>& rows, int top) {
  std::vector<const SweepRow*> ok;
  for (const auto& r : rows)
    if (r.status == "ok") ok.push_back(&r);
  std::stable_sort(ok.begin(), ok.end(), [](const SweepRow* a, const SweepRow* b) {
    return a->report["samples_per_s"].get<double>() > b->report["samples_per_s"].get<double>();
  });
  std::ostringstream o;
  std::size_t oom = 0, na = 0, err = 0;
  for (const auto& r : rows) {
    oom += r.status == "oom";
    na += r.status == "not_applicable";
    err += r.status == "error";
  }
  o << rows.size() << " points: " << ok.size() << " fit, " << oom << " out of memory, " << na << " not applicable";
  if (err > 0) o << ", " << err << " failed";
  o << "\n";
  if (ok.empty() || top <= 0) return o.str();
  o << "best " << std::min<std::size_t>(ok.size(), static_cast<std::size_t>(top)) << " by throughput among those that fit:\n";
  o << std::left << std::setw(6) << "point" << std::setw(14) << "schedule" << std::right << std::setw(4) << "p"
    << std::setw(6) << "m" << std::setw(4) << "v" << std::setw(4) << "b" << std::setw(5) << "dp" << std::setw(11)
    << "recompute" << std::setw(10) << "partition" << std::setw(14) << "iteration_ms" << std::setw(10) << "bubble"
    << std::setw(13) << "samples/s" << std::setw(12) << "peak_GiB" << "\n";
  o << std::fixed;
  for (std::size_t i = 0; i < ok.size() && i < static_cast<std::size_t>(top); ++i) {
    const json& r = ok[i]->report;
    o << std::left << std::setw(6) << ok[i]->point << std::setw(14) << r["schedule"].get<std::string>() << std::right
      << std::setw(4) << r["stages"].get<int>() << std::setw(6) << r["microbatches"].get<int>() << std::setw(4)
      << r["chunks"].get<int>() << std::setw(4) << r["micro_batch_size"].get<int>() << std::setw(5)
      << (r.contains("data_parallel") ? r["data_parallel"]["degree"].get<int>() : 1) << std::setw(11)
      << (r.contains("memory") ? r["memory"]["recompute"].get<std::string>() : std::string("none")) << std::setw(10)
      << (r.contains("partition") ? r["partition"]["kind"].get<std::string>() : std::string("uniform"))
      << std::setprecision(3) << std::setw(14) << r["iteration_time_ms"].get<double>() << std::setprecision(4)
      << std::setw(10) << r["bubble_rate"].get<double>() << std::setprecision(2) << std::setw(13)
      << r["samples_per_s"].get<double>() << std::setw(12)
      << r["peak_memory_bytes"].get<double>() / (1024.0 * 1024.0 * 1024.0) << "\n";
  }
  return o.str();
}

void parse_shard(const std::string& text, int& index, int& count) {
  const auto slash = text.find('/');
  auto bad = [&] { throw ConfigError("--shard", "", "must be i/n with 0 <= i < n (got '" + text + "')"); };
  if (slash == std::string::npos) bad();
  try {
    std::size_t used = 0;
    index = std::stoi(text.substr(0, slash), &used);
    if (used != slash) bad();
    const std::string n = text.substr(slash + 1);
    count = std::stoi(n, &used);
    if (used != n.size()) bad();
  } catch (const std::logic_error&) {
    bad();
  }
  if (count < 1 || index < 0 || index >= count) bad();
}

}  // namespace ppsim
