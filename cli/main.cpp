// ppsim: the command-line front end. Every error is one line on stderr; exit status 0 on
// success, 2 on bad input, 1 on an internal error.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>

#include "ppsim/run/budget.h"
#include "ppsim/run/config.h"
#include "ppsim/engine/engine.h"
#include "ppsim/metrics/metrics.h"
#include "ppsim/run/overrides.h"
#include "ppsim/run/stages.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/views/files.h"
#include "ppsim/views/report.h"
#include "ppsim/views/timeline.h"
#include "ppsim/sweep/sweep.h"
#include "ppsim/schedules/schedule_formats.h"
#include "ppsim/schedules/user_schedule.h"
#include "plan_cmd.h"
#include "sweep_cmd.h"
#include "ppsim/views/trace.h"
#include "ppsim/views/html.h"
#include "ppsim/views/vega.h"

namespace {

using namespace ppsim;
using nlohmann::json;

/// Command-line overrides of the config (0 or "" = keep the config's value).
struct Overrides {
  std::string schedule;
  int stages{0};
  int microbatches{0};
  int chunks{0};
  int data_parallel{0};
  int micro_batch_size{0};
  int tensor_parallel{0};
  bool sequence_parallel{false};
  bool no_sequence_parallel{false};
  std::string zero;
  std::string recompute;
  std::string schedule_file;
  std::string communication;
  std::optional<double> overlap;

  [[nodiscard]] ConfigOverrides config() const {
    ConfigOverrides o;
    auto set = [](int v, std::optional<int>& field) {
      if (v > 0) field = v;
    };
    if (!schedule.empty()) o.schedule = schedule;
    set(stages, o.stages);
    set(microbatches, o.microbatches);
    set(chunks, o.chunks);
    set(data_parallel, o.data_parallel);
    set(micro_batch_size, o.micro_batch_size);
    set(tensor_parallel, o.tensor_parallel);
    if (sequence_parallel) o.sequence_parallel = true;
    if (no_sequence_parallel) o.sequence_parallel = false;
    if (!zero.empty()) o.zero = zero == "distributed" ? -1 : std::stoi(zero);
    if (!recompute.empty()) o.recompute = parse_recompute(recompute);
    o.schedule_file = schedule_file;
    if (!communication.empty()) o.communication = parse_comm_semantics(communication);
    o.overlap = overlap;
    return o;
  }
};

void add_override_options(CLI::App* cmd, Overrides& o, bool with_schedule) {
  if (with_schedule) {
    auto* name = cmd->add_option("--schedule", o.schedule, "Schedule name (overrides pipeline.schedule)");
    cmd->add_option("--schedule-file", o.schedule_file, "User schedule JSON (per-device token lists); fixes p, m, v")
        ->check(CLI::ExistingFile)
        ->excludes(name);
  }
  cmd->add_option("--stages", o.stages,
                  "Pipeline stages p (overrides pipeline.stages); the devices stay, so data parallel = devices / p "
                  "unless a data-parallel degree is given")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--microbatches", o.microbatches, "Micro-batches m (overrides pipeline.microbatches)")->check(CLI::PositiveNumber);
  cmd->add_option("--chunks", o.chunks, "Chunks per device v (overrides pipeline.chunks)")->check(CLI::PositiveNumber);
  cmd->add_option("--comm", o.communication,
                  "Communication semantics: ideal, torch or megatron (overrides pipeline.communication)")
      ->check(CLI::IsMember({"ideal", "torch", "megatron"}));
  cmd->add_option("--overlap", o.overlap,
                  "Run the schedule's overlapped F&B pairs as units with this overlap in [0, 1] (overrides pipeline.overlap)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--data-parallel", o.data_parallel,
                  "Data-parallel degree (overrides parallel.data_parallel); devices = stages x degree")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch-size", o.micro_batch_size,
                  "Samples per micro-batch b (overrides model.micro_batch_size): a profile- or roofline-costed model "
                  "is re-costed, explicit layer costs scale linearly")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tensor-parallel", o.tensor_parallel,
                  "Tensor-parallel degree t (overrides parallel.tensor_parallel); devices = t x stages x data parallel")
      ->check(CLI::PositiveNumber);
  auto* sp = cmd->add_flag("--sequence-parallel", o.sequence_parallel, "Megatron sequence parallelism (needs t > 1)");
  cmd->add_flag("--no-sequence-parallel", o.no_sequence_parallel, "No sequence parallelism (overrides the config's)")
      ->excludes(sp);
  cmd->add_option("--zero", o.zero, "ZeRO stage 0, 1, 2, 3 or 'distributed' (overrides memory.zero)")
      ->check(CLI::IsMember({"0", "1", "2", "3", "distributed"}));
  cmd->add_option("--recompute", o.recompute, "none, selective or full (overrides memory.recompute)")
      ->check(CLI::IsMember({"none", "selective", "full"}));
}

/// A user schedule that deadlocks (a cycle of waits) is bad input (exit 2) naming its file;
/// a built-in one is our bug (exit 1).
SimResult simulate_checked(const Run& run, LinkModel& links, const SimOptions& options) {
  try {
    return simulate_run(run, links, options);
  } catch (const DeadlockError& e) {
    if (run.config.pipeline.schedule_file.empty()) throw;
    throw ScheduleError(run.config.pipeline.schedule_file + ": " + e.what());
  } catch (const ScheduleError& e) {
    if (run.config.pipeline.schedule_file.empty()) throw;
    throw ScheduleError(run.config.pipeline.schedule_file + ": " + e.what());
  }
}

void add_max_memory_option(CLI::App* cmd, std::string& max_memory) {
  cmd->add_option("--max-memory", max_memory,
                  "Refuse to start when the estimated peak memory exceeds SIZE (e.g. 16G; default: half the "
                  "machine's memory)");
}

struct RunArgs {
  std::string config;
  Overrides overrides;
  std::string max_memory;
  bool json_out{false};
  std::string report, timeline;
  std::string vega, trace, svg, png, pdf, html;
  bool unit_time{false};
  // Figure options (--width, --one-based, --no-memory, --title).
  std::string width{"column"};
  bool one_based{false}, no_memory{false};
  std::string title;
};

/// The figure options the flags give, for the printed figures or the --html page.
VegaOptions figure_options(const RunArgs& a, bool interactive) {
  VegaOptions options;
  options.unit_time = a.unit_time;
  options.one_based = a.one_based;
  options.show_memory = !a.no_memory;
  options.title = a.title;
  options.interactive = interactive;
  if (interactive) {
    options.width_px = 900;  // a browser window, not a paper column
    options.row_px = 22;
    options.memory_row_px = 40;
    return options;
  }
  const auto width = print_width_in(a.width);
  if (!width)
    throw ConfigError("--width", "", "'" + a.width + "' is not column, page or a length such as 5in, 12cm, 90mm, 240pt "
                      "(1.5 to 40 in)");
  options.width_in = *width;
  return options;
}

int cmd_run(const RunArgs& a) {
  const VegaOptions print_options = figure_options(a, false);  // a bad --width fails before the run
  // Every output is checked before the run (one path twice, a path that is not a regular
  // file) and published together at the end: all of them, or none.
  OutputSet outputs;
  const std::pair<const std::string*, const char*> declared[] = {
      {&a.report, "--report"}, {&a.timeline, "--timeline"}, {&a.vega, "--vega"}, {&a.trace, "--trace"},
      {&a.svg, "--svg"},       {&a.png, "--png"},           {&a.pdf, "--pdf"},
      {&a.html, "--html"}};
  for (const auto& [path, flag] : declared) outputs.add(*path, flag);
  const Config config = load_config_with_overrides(a.config, a.overrides.config());
  // Memory samples feed the timeline, trace and chart, and the exact OOM instant; a run
  // that shows none of them skips them (about 24 bytes per op).
  const bool figures = !a.vega.empty() || !a.svg.empty() || !a.png.empty() || !a.pdf.empty() || !a.html.empty();
  const bool samples = figures || !a.timeline.empty() || !a.trace.empty() || memory_limit_bytes(config) > 0;
  check_memory_budget(a.config,
                      kBaseBytes + estimated_run_bytes(config.pipeline,
                                                       RunOutputs{samples, !a.timeline.empty(), !a.vega.empty() || !a.html.empty(),
                                                                  !a.trace.empty(), !a.svg.empty() || !a.png.empty() || !a.pdf.empty()}),
                      memory_budget(a.max_memory));
  Run run = prepare_run(config);
  if (a.unit_time) run = unit_time_run(std::move(run));
  auto links = make_links(run.config, run.schedule.devices);
  const SimResult result = simulate_checked(run, *links, SimOptions{samples});
  const Metrics metrics = compute_metrics(run, result);
  const json report = report_json(run, metrics);
  if (!a.report.empty()) outputs.write(a.report, report.dump(2) + "\n");
  // The timeline and the trace stream to their files, event by event.
  if (!a.timeline.empty())
    outputs.write(a.timeline, [&](std::ostream& out) {
      write_timeline(out, run.schedule, result);
      out << "\n";
    });
  if (!a.trace.empty())
    outputs.write(a.trace, [&](std::ostream& out) {
      write_chrome_trace(out, run.schedule, result, metrics);
      out << "\n";
    });
  if (figures) {
    // The Gantt spec streams too: into --vega, the page and the renderer's input.
    const SpecWriter print_spec = [&](std::ostream& out) { write_vega_spec(out, run.schedule, result, metrics, print_options); };
    if (!a.vega.empty())
      outputs.write(a.vega, [&](std::ostream& out) {
        print_spec(out);
        out << "\n";
      });
    if (!a.html.empty()) {
      const VegaOptions page_options = figure_options(a, true);
      outputs.write(a.html, [&](std::ostream& out) {
        write_gantt_html(out, [&](std::ostream& spec) { write_vega_spec(spec, run.schedule, result, metrics, page_options); },
                         vega_title(run.schedule, page_options), format_report_table(report));
      });
    }
    // Rendered figures join the other outputs: all are written, or none.
    for (const auto& [path, bytes] : render_vega_files(print_spec, RenderTargets{a.svg, a.png, a.pdf})) outputs.write(path, bytes);
  }
  outputs.commit();
  if (a.json_out) std::cout << report.dump(2) << "\n";
  else std::cout << format_report_table(report);
  return 0;
}

struct CompareArgs {
  std::string config;
  Overrides overrides;
  std::string max_memory;
  std::string schedules;
  bool json_out{false};
  bool csv_out{false};
};

/// The schedules --schedules names (aliases resolve, repeats drop), else every one.
std::vector<std::string> compare_schedules(const std::string& list) {
  std::vector<std::string> names;
  if (list.empty()) {
    for (const auto& info : all_schedules()) names.push_back(info.name);
    return names;
  }
  std::stringstream ss(list);
  for (std::string n; std::getline(ss, n, ',');) {
    const ScheduleInfo* info = find_schedule(n);
    if (info == nullptr)
      throw ConfigError("--schedules", "", "unknown schedule '" + n + "' (known: " + known_schedule_names() + ")");
    if (std::find(names.begin(), names.end(), info->name) == names.end()) names.push_back(info->name);
  }
  return names;
}

/// One result of `compare --json` from a sweep row that ran (ok or OOM).
json compare_result(const SweepRow& row) {
  const json& rep = row.report;
  int versions = 0;
  for (const auto& d : rep["per_device"]) versions = std::max(versions, d["weight_versions"].get<int>());
  json r = {{"schedule", row.overrides["schedule"]},
            {"chunks", rep["chunks"]},
            {"iteration_time_ms", rep["iteration_time_ms"]},
            {"bubble_rate", rep["bubble_rate"]},
            {"peak_memory_bytes", rep["peak_memory_bytes"]},
            {"weight_versions", versions},
            {"synchronous", rep["synchronous"]},
            {"samples_per_s", rep["samples_per_s"]},
            {"measured_window", rep["measured_window"]}};
  // Rates as the report gives them (Metrics); tokens/s and MFU only where it has them.
  if (rep.contains("tokens_per_s")) r["tokens_per_s"] = rep["tokens_per_s"];
  if (rep.contains("mfu")) r["mfu"] = rep["mfu"];
  if (rep.contains("note")) r["note"] = rep["note"];
  // With a memory limit: fits, or OOM with the excess (the report's oom object).
  if (rep.contains("fits")) r["fits"] = rep["fits"];
  if (rep.contains("oom")) r["oom"] = rep["oom"];
  return r;
}

/// `compare --csv`: one row per result in the table's order; an empty cell where the
/// report has no such number (tokens/s and MFU need a transformer model, fits a limit).
void print_compare_csv(const json& results) {
  const std::vector<std::string> columns = {"schedule", "chunks", "iteration_time_ms", "bubble_rate",
                                            "peak_memory_bytes", "weight_versions", "synchronous",
                                            "samples_per_s", "tokens_per_s", "mfu", "fits"};
  std::string out;
  for (std::size_t i = 0; i < columns.size(); ++i) out += (i ? "," : "") + columns[i];
  out += "\n";
  for (const auto& r : results) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const json& v = r.contains(columns[i]) ? r[columns[i]] : json();
      out += (i ? "," : "") + csv_field(v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump());
    }
    out += "\n";
  }
  std::cout << out;
}

void print_compare_table(const Config& base, const json& results, const json& skipped) {
  std::cout << base.file << ": stages " << base.pipeline.stages << ", micro-batches " << base.pipeline.microbatches
            << ", devices " << base.devices;
  if (base.pipeline.communication != CommSemantics::Ideal)
    std::cout << ", communication " << comm_semantics_name(base.pipeline.communication);
  std::cout << "; sorted by iteration time\n";
  std::cout << std::left << std::setw(13) << "schedule" << std::right << std::setw(7) << "chunks" << std::setw(14)
            << "iteration_ms" << std::setw(9) << "bubble" << std::setw(14) << "peak_mem_GiB" << std::setw(10)
            << "versions" << std::setw(6) << "sync" << std::setw(6) << "fits" << "\n";
  for (const auto& r : results) {
    const bool sync = r["synchronous"].get<bool>();
    std::cout << std::left << std::setw(13) << r["schedule"].get<std::string>() << std::right << std::setw(7)
              << r["chunks"].get<int>() << std::fixed << std::setprecision(3) << std::setw(14)
              << r["iteration_time_ms"].get<double>() << std::setprecision(4) << std::setw(9)
              << r["bubble_rate"].get<double>() << std::setprecision(3) << std::setw(14)
              << static_cast<double>(r["peak_memory_bytes"].get<std::int64_t>()) / (1024.0 * 1024.0 * 1024.0)
              << std::setw(10) << r["weight_versions"].get<int>() << std::setw(6) << (sync ? "yes" : "no")
              << std::setw(6) << (!r.contains("fits") ? "-" : r["fits"].get<bool>() ? "yes" : "OOM")
              << (sync ? "" : "  (steady state per iteration)") << "\n";
  }
  if (!skipped.empty()) std::cout << "\nnot applicable:\n";
  for (const auto& s : skipped)
    std::cout << "  " << std::left << std::setw(12) << s["schedule"].get<std::string>() << s["reason"].get<std::string>()
              << "\n";
}

/// A sweep over the schedule axis (compare_sweep), printed sorted by iteration time.
int cmd_compare(const CompareArgs& a) {
  const Config base = load_config_with_overrides(a.config, a.overrides.config());
  SweepOptions options;
  options.per_device = true;  // weight versions
  json results = json::array(), skipped = json::array();
  const SweepSpec spec = compare_sweep(base, compare_schedules(a.schedules));
  check_memory_budget(a.config, estimated_sweep_bytes(spec, options), memory_budget(a.max_memory));
  for (const SweepRow& row : run_sweep(spec, options)) {
    if (row.status == "error") throw std::runtime_error(row.reason);
    if (row.report.is_null()) skipped.push_back({{"schedule", row.overrides["schedule"]}, {"reason", row.reason}});
    else results.push_back(compare_result(row));
  }
  // Ties keep registry order.
  std::stable_sort(results.begin(), results.end(), [](const json& x, const json& y) {
    return x["iteration_time_ms"].get<double>() < y["iteration_time_ms"].get<double>();
  });
  if (a.csv_out) {
    print_compare_csv(results);
    return 0;
  }
  if (a.json_out) {
    json out{{"config", base.file},
             {"stages", base.pipeline.stages},
             {"microbatches", base.pipeline.microbatches},
             {"devices", base.devices},
             {"results", results},
             {"not_applicable", skipped}};
    if (base.pipeline.communication != CommSemantics::Ideal)
      out["communication"] = comm_semantics_name(base.pipeline.communication);
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  print_compare_table(base, results, skipped);
  return 0;
}

struct ScheduleArgs {
  std::string schedule;
  int stages{0}, microbatches{0}, chunks{1};
  bool list{false};
  std::string format{"text"};
  std::string communication{"ideal"};
};

/// One device's program as text: compute tokens as the user-schedule reader reads them,
/// sends and receives as SEND_F3>d1, RECV_B3<d1, a batched call in brackets.
std::string program_line(const Schedule& s, const CommProgram& prog, int d) {
  std::string line;
  std::int32_t open_call = -1;
  for (const CommStep& st : prog.devices[d]) {
    const bool comm = st.kind != StepKind::Compute;
    const bool new_call = comm && st.call != open_call;
    if (open_call >= 0 && (!comm || new_call)) line += "]";
    line += new_call ? " [" : " ";
    open_call = comm ? st.call : -1;
    if (!comm) {
      line += user_token(s, d, s.device_ops[d][static_cast<std::size_t>(st.index)]);
      continue;
    }
    line += comm_token(s, prog, st);
  }
  if (open_call >= 0) line += "]";
  return line;
}

int cmd_schedule(const ScheduleArgs& a) {
  if (a.list) {
    for (const auto& info : all_schedules()) {
      std::cout << std::left << std::setw(12) << info.name;
      std::string aliases;
      for (const auto& al : info.aliases) aliases += (aliases.empty() ? "" : ", ") + al;
      std::cout << std::setw(28) << (aliases.empty() ? "" : "[" + aliases + "]") << info.description << "\n";
    }
    return 0;
  }
  if (a.schedule.empty() || a.stages <= 0 || a.microbatches <= 0)
    throw ConfigError("ppsim schedule", "", "needs --schedule, --stages and --microbatches (or --list)");
  if (static_cast<std::int64_t>(a.stages) * a.chunks * a.microbatches * 3 > kMaxOps)
    throw ConfigError("ppsim schedule", "", "shape too large (over " + std::to_string(kMaxOps) + " ops)");
  const Schedule s = make_schedule(a.schedule, ScheduleParams{a.stages, a.microbatches, a.chunks, 0});
  const CommProgram prog = lower_communication(s, *parse_comm_semantics(a.communication));
  if (a.format == "json") {
    std::cout << schedule_to_json(s, &prog).dump(1) << "\n";
    return 0;
  }
  if (a.format == "torch-csv") {
    std::cout << schedule_to_torch_csv(s, &prog);
    return 0;
  }
  for (int d = 0; d < s.devices; ++d) {
    std::cout << "device " << d << ":";
    if (prog.devices.empty())
      for (const Op& op : s.device_ops[d]) std::cout << ' ' << user_token(s, d, op);
    else
      std::cout << program_line(s, prog, d);
    std::cout << "\n";
  }
  return 0;
}

/// A simulation touches ~100 bytes of fresh memory per op, and at 4 KiB pages the kernel's
/// page faults took half of a 2^20-op run (BENCHMARKS.md). glibc backs large allocations
/// with transparent huge pages when asked through GLIBC_TUNABLES, which it reads only at
/// start, so ppsim re-executes itself once with the tunable added. PPSIM_NO_HUGEPAGES=1,
/// a tunable already set, or a failed exec leave the process as it is.
void reexec_with_huge_pages(char** argv) {
  constexpr const char* kTunable = "glibc.malloc.hugetlb=1";
  if (std::getenv("PPSIM_NO_HUGEPAGES") != nullptr) return;
  const char* current = std::getenv("GLIBC_TUNABLES");
  const std::string have = current ? current : "";
  if (have.find("glibc.malloc.hugetlb") != std::string::npos) return;
  const std::string want = have.empty() ? kTunable : have + ":" + kTunable;
  if (::setenv("GLIBC_TUNABLES", want.c_str(), 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // exec failed (no /proc, say): carry on with ordinary pages, and do not pass the
  // tunable on to programs ppsim starts.
  if (current) ::setenv("GLIBC_TUNABLES", have.c_str(), 1);
  else ::unsetenv("GLIBC_TUNABLES");
}

}  // namespace

int main(int argc, char** argv) {
  reexec_with_huge_pages(argv);
  install_output_signal_handlers();
  CLI::App app{"ppsim: discrete-event simulator of pipeline-parallel training schedules"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ppsim ") + PPSIM_VERSION);

  RunArgs run_args;
  auto* run = app.add_subcommand("run", "Simulate one config; print a table or the report JSON");
  run->add_option("config", run_args.config, "Config JSON file")->required();
  add_override_options(run, run_args.overrides, true);
  run->add_flag("--json", run_args.json_out, "Print the report JSON instead of the table");
  run->add_option("--report", run_args.report, "Write the report JSON to FILE");
  run->add_option("--timeline", run_args.timeline, "Write the timeline JSON to FILE");
  run->add_option("--vega", run_args.vega, "Write the Vega-Lite Gantt spec (data inline) to FILE");
  run->add_option("--trace", run_args.trace, "Write a Chrome-trace/Perfetto JSON to FILE");
  run->add_option("--svg", run_args.svg, "Render the Gantt chart to an SVG FILE (needs tools/setup.sh)");
  run->add_option("--png", run_args.png, "Render the Gantt chart to a PNG FILE (needs tools/setup.sh)");
  run->add_option("--pdf", run_args.pdf, "Render the Gantt chart to a PDF FILE (needs tools/setup.sh)");
  add_max_memory_option(run, run_args.max_memory);
  run->add_flag("--unit-time", run_args.unit_time,
                "Textbook timing as the papers draw it: a stage's F one slot, backward two (split: B one, W one), "
                "a chunk op 1/v of that, free links; the table counts slots");
  run->add_option("--html", run_args.html,
                  "Write an interactive timeline page to FILE (one self-contained HTML file; needs tools/setup.sh)");
  run->add_option("--width", run_args.width,
                  "Printed width of --svg/--png/--pdf: column (3.33 in, default), page (7 in) or a length "
                  "(5in, 12cm, 90mm, 240pt); text stays at least 7 pt");
  run->add_flag("--one-based", run_args.one_based, "Number devices, stages, chunks and micro-batches from 1 in figures");
  run->add_flag("--no-memory", run_args.no_memory, "Leave the memory panel out of figures");
  run->add_option("--title", run_args.title, "Title of the figures instead of \"schedule: p=.., m=.., v=..\"");

  CompareArgs cmp_args;
  auto* compare = app.add_subcommand("compare", "Run every applicable schedule on one config, sorted by iteration time");
  compare->add_option("config", cmp_args.config, "Config JSON file")->required();
  add_override_options(compare, cmp_args.overrides, false);
  compare->add_option("--schedules", cmp_args.schedules, "Comma-separated schedules to compare (default: all)");
  auto* compare_json = compare->add_flag("--json", cmp_args.json_out, "Print JSON instead of the table");
  compare->add_flag("--csv", cmp_args.csv_out,
                    "Print CSV instead of the table (samples/s, tokens/s and MFU as the reports give them)")
      ->excludes(compare_json);
  add_max_memory_option(compare, cmp_args.max_memory);

  ppsim::cli::SweepArgs sweep_args;
  auto* sweep = ppsim::cli::add_sweep_command(app, sweep_args);

  ppsim::cli::PlanArgs plan_args;
  auto* plan = ppsim::cli::add_plan_command(app, plan_args);

  ScheduleArgs sch_args;
  auto* sched = app.add_subcommand("schedule", "Print each device's op order");
  sched->add_option("--schedule", sch_args.schedule, "Schedule name");
  sched->add_option("--stages", sch_args.stages, "Pipeline stages p")->check(CLI::PositiveNumber);
  sched->add_option("--microbatches", sch_args.microbatches, "Micro-batches m")->check(CLI::PositiveNumber);
  sched->add_option("--chunks", sch_args.chunks, "Chunks per device v")->check(CLI::PositiveNumber);
  sched->add_flag("--list", sch_args.list, "List the known schedules");
  sched->add_option("--format", sch_args.format,
                    "text (default), json (a user schedule --schedule-file reads back) or torch-csv (PyTorch's "
                    "schedule CSV; with --comm, its compute+comms form)")
      ->check(CLI::IsMember({"text", "json", "torch-csv"}));
  sched->add_option("--comm", sch_args.communication, "Show the sends and receives of: ideal (none), torch or megatron")
      ->check(CLI::IsMember({"ideal", "torch", "megatron"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // A usage error is bad input like any other: one line, exit 2.
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::cerr << "ppsim: error: " << what << "\n";
    return 2;
  }
  try {
    if (*run) return cmd_run(run_args);
    if (*compare) return cmd_compare(cmp_args);
    if (*sched) return cmd_schedule(sch_args);
    if (*sweep) return ppsim::cli::cmd_sweep(sweep_args);
    if (*plan) return ppsim::cli::cmd_plan(plan_args);
  } catch (const ConfigError& e) {
    std::cerr << "ppsim: error: " << e.what() << "\n";
    return 2;
  } catch (const ScheduleError& e) {
    std::cerr << "ppsim: error: " << e.what() << "\n";
    return 2;
  } catch (const OutputError& e) {
    std::cerr << "ppsim: error: " << e.what() << "\n";
    return 2;
  } catch (const DeadlockError& e) {
    std::cerr << "ppsim: internal error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ppsim: internal error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
