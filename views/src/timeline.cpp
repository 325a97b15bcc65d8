/// @file timeline.cpp
/// @brief Timeline JSON (docs/formats.md, views/timeline.schema.json): a view over SimResult.
#include "ppsim/views/timeline.h"

namespace ppsim {

using nlohmann::json;

json make_timeline(const Schedule& s, const SimResult& r) {
  json events = json::array();
  auto event = [](int device, const char* lane, const Op& op, TimeNs start, TimeNs end) {
    return json{{"device", device}, {"lane", lane}, {"op", std::string(1, op_letter(op.kind))},
                {"microbatch", op.microbatch}, {"stage", op.stage}, {"chunk", op.chunk}, {"pipe", op.pipe},
                {"start", start.ms()}, {"end", end.ms()}};
  };
  for (const auto& rec : r.ops) events.push_back(event(rec.device, "compute", rec.op, rec.start, rec.end));
  for (const auto& t : r.transfers) {
    const Op& op = r.ops[t.producer].op;
    json send = event(t.src, "send", op, t.start, t.end);
    send["peer"] = t.dst;
    send["bytes"] = t.bytes.value;
    json recv = event(t.dst, "recv", op, t.start, t.end);
    recv["peer"] = t.src;
    recv["bytes"] = t.bytes.value;
    events.push_back(std::move(send));
    events.push_back(std::move(recv));
  }
  json memory = json::array();
  for (const auto& m : r.memory) memory.push_back({{"device", m.device}, {"t", m.t.ms()}, {"bytes", m.bytes.value}});
  json doc = {{"schema", "ppsim.timeline/1"},
              {"time_unit", "ms"},
              {"schedule", s.name},
              {"devices", r.devices},
              {"events", std::move(events)},
              {"memory", std::move(memory)}};
  if (!r.collectives.empty()) {
    json collectives = json::array();
    for (const CollectiveRecord& c : r.collectives)
      collectives.push_back({{"kind", "gradient_sync"}, {"stage", c.stage}, {"devices", c.devices},
                             {"bytes", c.bytes.value}, {"start", c.start.ms()}, {"end", c.end.ms()}});
    doc["collectives"] = std::move(collectives);
  }
  return doc;
}

}  // namespace ppsim
