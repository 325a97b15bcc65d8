/// @file trace.cpp
/// @brief Chrome Trace Event JSON (Perfetto, chrome://tracing): a pure view over SimResult.
#include "ppsim/views/trace.h"

#include <algorithm>
#include <sstream>
#include <map>
#include <vector>
#include <string>
#include <utility>

#include "json_array_stream.h"
#include "op_names.h"

namespace ppsim {
namespace {

using nlohmann::json;


// Microseconds, keeping nanosecond precision as a fraction.
double to_us(TimeNs t) { return static_cast<double>(t.ns) / 1e3; }

// Flow steps bind to the slice that encloses their timestamp; the midpoint of a slice
// is never on a boundary shared with a back-to-back neighbour.
double mid_us(TimeNs start, TimeNs end) {
  return static_cast<double>(start.ns) / 1e3 + static_cast<double>((end - start).ns) / 2e3;
}

json metadata(const char* name, int pid, int tid, const char* key, json value) {
  json e = {{"ph", "M"}, {"name", name}, {"pid", pid}, {"args", {{key, std::move(value)}}}};
  if (tid >= 0) e["tid"] = tid;
  return e;
}

void add_collective_slice(JsonArrayStream& events, int device, const std::string& name, TimeNs start, TimeNs end, json args) {
  events.push_back({{"ph", "X"}, {"name", name}, {"cat", "collective"}, {"pid", device + 1},
                    {"tid", kTraceCollectiveTid}, {"ts", to_us(start)}, {"dur", to_us(end - start)},
                    {"args", std::move(args)}});
}

// The pipeline's gradient syncs (bidirectional schedules) and each device's
// data-parallel all-reduce, drawn as its total time ending when the last one ends, on a
// "collective" thread of the devices that take part.
void add_collectives(JsonArrayStream& events, const SimResult& result, const Metrics& metrics) {
  std::vector<bool> named(static_cast<std::size_t>(result.devices), false);
  auto lane = [&](int d) {
    if (named[static_cast<std::size_t>(d)]) return;
    named[static_cast<std::size_t>(d)] = true;
    events.push_back(metadata("thread_name", d + 1, kTraceCollectiveTid, "name", "collective"));
    events.push_back(metadata("thread_sort_index", d + 1, kTraceCollectiveTid, "sort_index", kTraceCollectiveTid));
  };
  for (const CollectiveRecord& c : result.collectives)
    for (int d : c.devices) {
      lane(d);
      add_collective_slice(events, d, "gradient sync s" + std::to_string(c.stage), c.start, c.end,
                           {{"stage", c.stage}, {"devices", c.devices}, {"bytes", c.bytes.value}});
    }
  for (const OpRecord& r : result.ops) {  // an op's tensor-parallel / ZeRO-3 collectives, as its last part
    if (r.collective.ns <= 0) continue;
    lane(r.device);
    add_collective_slice(events, r.device, std::string("collectives of ") + op_letter(r.op.kind) + std::to_string(r.op.microbatch),
                         r.end - r.collective, r.end, {{"stage", r.op.stage}, {"ms", r.collective.ms()}});
  }
  for (const DeviceMetrics& d : metrics.per_device) {
    if (!d.has_allreduce || d.allreduce.ns <= 0) continue;
    lane(d.device);
    add_collective_slice(events, d.device, "data-parallel all-reduce", d.allreduce_end - d.allreduce,
                         d.allreduce_end, {{"total_ms", d.allreduce.ms()}});
  }
}

// Each device a process with its compute, send and recv threads, named and in that order.
void add_device_metadata(JsonArrayStream& events, int devices) {
  for (int d = 0; d < devices; ++d) {
    const int pid = trace_pid(d);
    events.push_back(metadata("process_name", pid, -1, "name", "device " + std::to_string(d)));
    events.push_back(metadata("process_sort_index", pid, -1, "sort_index", d));
    const std::pair<int, const char*> lanes[] = {
        {kTraceComputeTid, "compute"}, {kTraceSendTid, "send"}, {kTraceRecvTid, "recv"}};
    for (const auto& [tid, name] : lanes) {
      events.push_back(metadata("thread_name", pid, tid, "name", name));
      events.push_back(metadata("thread_sort_index", pid, tid, "sort_index", tid));
    }
  }
}

void add_op_slices(JsonArrayStream& events, const SimResult& result, bool chunks, bool pipes) {
  for (std::size_t i = 0; i < result.ops.size(); ++i) {
    const OpRecord& r = result.ops[i];
    json slice = {
        {"ph", "X"},
        {"name", views::record_label(result, i, chunks, pipes)},
        {"cat", op_kind_name(r.op.kind)},
        {"pid", trace_pid(r.device)},
        {"tid", kTraceComputeTid},
        {"ts", to_us(r.start)},
        {"dur", to_us(r.end - r.start)},
        {"args", {{"kind", op_kind_name(r.op.kind)},
                  {"microbatch", r.op.microbatch},
                  {"stage", r.op.stage},
                  {"chunk", r.op.chunk},
                  {"pipe", r.op.pipe},
                  {"op_index", i}}},
    };
    if (r.pair != 0) slice["args"]["pair"] = pair_kind_name();
    events.push_back(slice);
  }
}

// Time blocked in communication, on the compute thread between the device's ops.
void add_blocked_slices(JsonArrayStream& events, const SimResult& result) {
  for (const BlockedRecord& b : result.blocked)
    events.push_back({{"ph", "X"}, {"name", "blocked in communication"}, {"cat", "blocked"},
                      {"pid", trace_pid(b.device)}, {"tid", kTraceComputeTid}, {"ts", to_us(b.start)},
                      {"dur", to_us(b.end - b.start)}, {"args", {{"ms", (b.end - b.start).ms()}}}});
}

// Slices on one thread must nest, but a device may send to (or receive from) two peers
// at once. Each transfer takes the first lane of its kind that is free by its start;
// lane 0 is the named send/recv thread, further lanes are extra threads ("send 2", ...).
class TransferLanes {
 public:
  explicit TransferLanes(JsonArrayStream& events) : events_(events) {}

  // The thread id of the lane `t` takes on (pid, base_tid); names a new extra lane.
  int take(int pid, int base_tid, const TransferRecord& t) {
    auto& ends = lane_free_[{pid, base_tid}];
    std::size_t lane = 0;
    while (lane < ends.size() && ends[lane] > t.start) ++lane;
    if (lane == ends.size()) {
      ends.push_back(t.end);
      if (lane > 0) name_extra_lane(pid, base_tid, lane);
    } else {
      ends[lane] = t.end;
    }
    return lane == 0 ? base_tid : extra_lane_tid(base_tid, static_cast<int>(lane));
  }

 private:
  void name_extra_lane(int pid, int base_tid, std::size_t lane) {
    const int tid = extra_lane_tid(base_tid, static_cast<int>(lane));
    const std::string name = std::string(base_tid == kTraceSendTid ? "send " : "recv ") +
                             std::to_string(lane + 1);
    events_.push_back(metadata("thread_name", pid, tid, "name", name));
    events_.push_back(metadata("thread_sort_index", pid, tid, "sort_index", tid));
  }

  JsonArrayStream& events_;
  std::map<std::pair<int, int>, std::vector<TimeNs>> lane_free_;  // (pid, base tid) -> ends
};

// Transfer `i`: a send slice and a recv slice with the same args, joined to the
// consuming op by one flow (`s` on the send, `t` on the recv, `f` on the consumer).
void add_transfer(JsonArrayStream& events, TransferLanes& lanes, const SimResult& result, std::size_t i,
                  bool chunks, bool pipes) {
  const TransferRecord& t = result.transfers[i];
  const int send_tid = lanes.take(trace_pid(t.src), kTraceSendTid, t);
  const int recv_tid = lanes.take(trace_pid(t.dst), kTraceRecvTid, t);
  const OpRecord& producer = result.ops.at(static_cast<std::size_t>(t.producer));
  const OpRecord& consumer = result.ops.at(static_cast<std::size_t>(t.consumer));
  const std::string what = op_label(producer.op, chunks, pipes);
  const json args = {{"microbatch", producer.op.microbatch},
                     {"stage", producer.op.stage},
                     {"chunk", producer.op.chunk},
                     {"pipe", producer.op.pipe},
                     {"bytes", t.bytes.value},
                     {"src", t.src},
                     {"dst", t.dst},
                     {"transfer", i}};
  const double ts = to_us(t.start);
  const double dur = to_us(t.end - t.start);
  const double mid = mid_us(t.start, t.end);
  events.push_back({{"ph", "X"}, {"name", "send " + what + " to D" + std::to_string(t.dst)},
                    {"cat", "transfer"}, {"pid", trace_pid(t.src)}, {"tid", send_tid},
                    {"ts", ts}, {"dur", dur}, {"args", args}});
  events.push_back({{"ph", "X"}, {"name", "recv " + what + " from D" + std::to_string(t.src)},
                    {"cat", "transfer"}, {"pid", trace_pid(t.dst)}, {"tid", recv_tid},
                    {"ts", ts}, {"dur", dur}, {"args", args}});
  const std::string flow = what + " D" + std::to_string(t.src) + "->D" + std::to_string(t.dst);
  events.push_back({{"ph", "s"}, {"name", flow}, {"cat", "transfer"}, {"id", i},
                    {"pid", trace_pid(t.src)}, {"tid", send_tid}, {"ts", mid}});
  events.push_back({{"ph", "t"}, {"name", flow}, {"cat", "transfer"}, {"id", i},
                    {"pid", trace_pid(t.dst)}, {"tid", recv_tid}, {"ts", mid}});
  events.push_back({{"ph", "f"}, {"bp", "e"}, {"name", flow}, {"cat", "transfer"}, {"id", i},
                    {"pid", trace_pid(consumer.device)}, {"tid", kTraceComputeTid},
                    {"ts", mid_us(consumer.start, consumer.end)}});
}

void add_transfers(JsonArrayStream& events, const SimResult& result, bool chunks, bool pipes) {
  TransferLanes lanes(events);
  for (std::size_t i = 0; i < result.transfers.size(); ++i) add_transfer(events, lanes, result, i, chunks, pipes);
}

void add_memory_counters(JsonArrayStream& events, const SimResult& result) {
  for (const MemorySample& s : result.memory) {
    events.push_back({{"ph", "C"}, {"name", "memory"}, {"pid", trace_pid(s.device)},
                      {"ts", to_us(s.t)}, {"args", {{"bytes", s.bytes.value}}}});
  }
}

}  // namespace

int trace_pid(int device) { return device + 1; }

int extra_lane_tid(int base_tid, int lane) { return base_tid * 100 + lane; }

json chrome_trace(const Schedule& schedule, const SimResult& result) {
  return chrome_trace(schedule, result, pipeline_metrics(result));
}

// Keys in nlohmann's (sorted) order, so the bytes match a dump() of the whole document.
void write_chrome_trace(std::ostream& out, const Schedule& schedule, const SimResult& result, const Metrics& metrics) {
  const bool chunks = schedule.chunks > 1;
  const bool pipes = schedule.pipes > 1;
  const int devices = std::max(result.devices, schedule.devices);
  const json other = {{"generator", "ppsim"},
                      {"schedule", schedule.name},
                      {"devices", devices},
                      {"microbatches", schedule.microbatches},
                      {"chunks", schedule.chunks},
                      {"iteration_time_ms", metrics.iteration_time.ms()}};
  out << '{';
  write_json_key(out, "displayTimeUnit");
  out << json("ms").dump() << ',';
  write_json_key(out, "otherData");
  out << other.dump() << ',';
  write_json_key(out, "traceEvents");
  JsonArrayStream events(out);
  add_device_metadata(events, devices);
  add_op_slices(events, result, chunks, pipes);
  add_blocked_slices(events, result);
  add_transfers(events, result, chunks, pipes);
  add_collectives(events, result, metrics);
  add_memory_counters(events, result);
  events.close();
  out << '}';
}

json chrome_trace(const Schedule& schedule, const SimResult& result, const Metrics& metrics) {
  std::ostringstream text;
  write_chrome_trace(text, schedule, result, metrics);
  return json::parse(text.str());
}

}  // namespace ppsim
