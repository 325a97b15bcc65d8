/// @file timeline.cpp
/// @brief Timeline JSON (docs/formats.md, views/timeline.schema.json): a view over SimResult,
/// streamed event by event.
#include "ppsim/views/timeline.h"

#include <sstream>

#include "json_array_stream.h"
#include "op_names.h"

namespace ppsim {

using nlohmann::json;

namespace {

json event(int device, const char* lane, const Op& op, TimeNs start, TimeNs end) {
  return json{{"device", device}, {"lane", lane}, {"op", std::string(1, op_letter(op.kind))},
              {"microbatch", op.microbatch}, {"stage", op.stage}, {"chunk", op.chunk}, {"pipe", op.pipe},
              {"start", start.ms()}, {"end", end.ms()}};
}

void write_events(std::ostream& out, const Schedule& s, const SimResult& r) {
  JsonArrayStream events(out);
  for (std::size_t i = 0; i < r.ops.size(); ++i) {
    const OpRecord& rec = r.ops[i];
    json e = event(rec.device, "compute", rec.op, rec.start, rec.end);
    // An op of an overlapped pair run as one unit: its share of the pair, and the pair's label.
    if (rec.pair != 0) e["pair"] = views::record_label(r, i, s.chunks > 1, s.pipes > 1);
    events.push_back(e);
  }
  // An op's blocking collectives (tensor parallel, ZeRO-3), drawn as its last part.
  for (const auto& rec : r.ops)
    if (rec.collective.ns > 0) events.push_back(event(rec.device, "collective", rec.op, rec.end - rec.collective, rec.end));
  for (const auto& t : r.transfers) {
    const Op& op = r.ops[t.producer].op;
    json send = event(t.src, "send", op, t.start, t.end);
    send["peer"] = t.dst;
    send["bytes"] = t.bytes.value;
    events.push_back(send);
    json recv = event(t.dst, "recv", op, t.start, t.end);
    recv["peer"] = t.src;
    recv["bytes"] = t.bytes.value;
    events.push_back(recv);
  }
  events.close();
}

}  // namespace

// Keys in nlohmann's (sorted) order, so the bytes match a dump() of the whole document.
void write_timeline(std::ostream& out, const Schedule& s, const SimResult& r) {
  out << '{';
  if (!r.blocked.empty()) {  // communication semantics other than ideal
    write_json_key(out, "blocked");
    JsonArrayStream blocked(out);
    for (const BlockedRecord& b : r.blocked)
      blocked.push_back({{"device", b.device}, {"start", b.start.ms()}, {"end", b.end.ms()}});
    blocked.close();
    out << ',';
  }
  if (!r.collectives.empty()) {
    write_json_key(out, "collectives");
    JsonArrayStream collectives(out);
    for (const CollectiveRecord& c : r.collectives)
      collectives.push_back({{"kind", "gradient_sync"}, {"stage", c.stage}, {"devices", c.devices},
                             {"bytes", c.bytes.value}, {"start", c.start.ms()}, {"end", c.end.ms()}});
    collectives.close();
    out << ',';
  }
  write_json_key(out, "devices");
  out << json(r.devices).dump() << ',';
  write_json_key(out, "events");
  write_events(out, s, r);
  out << ',';
  write_json_key(out, "memory");
  JsonArrayStream memory(out);
  for (const auto& m : r.memory) memory.push_back({{"device", m.device}, {"t", m.t.ms()}, {"bytes", m.bytes.value}});
  memory.close();
  out << ',';
  write_json_key(out, "schedule");
  out << json(s.name).dump() << ',';
  write_json_key(out, "schema");
  out << json("ppsim.timeline/1").dump() << ',';
  write_json_key(out, "time_unit");
  out << json("ms").dump() << '}';
}

json make_timeline(const Schedule& s, const SimResult& r) {
  std::ostringstream text;
  write_timeline(text, s, r);
  return json::parse(text.str());
}

}  // namespace ppsim
