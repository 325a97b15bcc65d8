#include "ppsim/schedules/user_schedule.h"

#include "ppsim/input/json_file.h"
#include "ppsim/schedules/registry.h"
#include "ppsim/schedules/schedule_formats.h"

namespace ppsim {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw ScheduleError(path + ": " + problem);
}

int get_int(const json& doc, const char* key, int fallback, int min, int max) {
  if (!doc.contains(key)) {
    if (fallback < min) fail(key, "missing (required integer)");
    return fallback;
  }
  const json& v = doc.at(key);
  if (!v.is_number_integer()) fail(key, "must be an integer");
  const auto x = v.get<std::int64_t>();
  if (x < min || x > max) fail(key, "must be in " + std::to_string(min) + ".." + std::to_string(max));
  return static_cast<int>(x);
}

/// Parses digits at `pos`; returns -1 when there are none or they overflow.
int read_number(const std::string& t, std::size_t& pos) {
  const std::size_t begin = pos;
  std::int64_t x = 0;
  while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
    x = x * 10 + (t[pos++] - '0');
    if (x > 100'000'000) return -1;
  }
  return pos == begin ? -1 : static_cast<int>(x);
}

/// The fields `ppsim schedule --format json` writes for asynchronous schedules and
/// weight policies other than one version.
void parse_async_fields(const json& doc, Schedule& s) {
  if (doc.contains("synchronous")) {
    if (!doc["synchronous"].is_boolean()) fail("synchronous", "must be true or false");
    s.synchronous = doc["synchronous"].get<bool>();
  }
  s.iterations = get_int(doc, "iterations", 1, 1, 1000);
  s.measure_from = get_int(doc, "measure_from", 0, 0, 1000);
  if (doc.contains("weights")) {
    const json& w = doc["weights"];
    if (w == "single") s.weights = WeightPolicy::Single;
    else if (w == "stash") s.weights = WeightPolicy::StashInFlight;
    else if (w == "double-buffer") s.weights = WeightPolicy::DoubleBuffer;
    else fail("weights", "must be \"single\", \"stash\" or \"double-buffer\"");
  }
}

/// A send or receive token (comm_token: SEND_F3>d1, RECV_B3c1<d0): checked, then left to
/// the lowering, which derives every transfer from the compute order (communication.h),
/// as the torch CSV reader does.
void check_comm_token(const std::string& path, const std::string& t, int device, int devices) {
  const bool send = t.rfind("SEND_", 0) == 0;
  if (t.size() < 6 || (t[5] != 'F' && t[5] != 'B'))
    fail(path, "token '" + t + "': a send or receive is SEND_F<mb>, SEND_B<mb>, RECV_F<mb> or RECV_B<mb>");
  std::size_t pos = 6;
  if (read_number(t, pos) < 0) fail(path, "token '" + t + "' needs a micro-batch number after " + t.substr(0, 6));
  while (pos < t.size() && (t[pos] == 'c' || t[pos] == 'p' || t[pos] == 's')) {
    ++pos;
    if (read_number(t, pos) < 0) fail(path, "token '" + t + "': suffixes are c<chunk>, p<pipe>, s<stage>");
  }
  if (pos == t.size()) return;  // no peer given
  const char arrow = send ? '>' : '<';
  if (t[pos] != arrow || pos + 1 >= t.size() || t[pos + 1] != 'd')
    fail(path, "token '" + t + "': the peer is written " + std::string(1, arrow) + "d<device>");
  pos += 2;
  const int peer = read_number(t, pos);
  if (peer < 0 || pos != t.size() || peer >= devices || peer == device)
    fail(path, "token '" + t + "': peer device must be another device in 0.." + std::to_string(devices - 1));
}

}  // namespace

Schedule parse_user_schedule(const json& doc) {
  if (!doc.is_object()) fail("(top level)", "must be an object");
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    static const char* allowed[] = {"name",  "devices", "microbatches", "chunks",       "pipes",  "split_backward",
                                    "ops",   "description", "synchronous", "iterations", "measure_from", "weights"};
    bool ok = false;
    for (const char* a : allowed) ok = ok || it.key() == a;
    if (!ok)
      fail(it.key(), "unknown key (allowed: name, devices, microbatches, chunks, pipes, split_backward, ops, description, "
                     "synchronous, iterations, measure_from, weights)");
  }
  Schedule s;
  for (const char* key : {"name", "description"})
    if (doc.contains(key) && !doc.at(key).is_string()) fail(key, "must be a string");
  s.name = doc.value("name", std::string("user"));
  s.devices = get_int(doc, "devices", -1, 1, 16384);
  s.microbatches = get_int(doc, "microbatches", -1, 1, 1'000'000);
  s.chunks = get_int(doc, "chunks", 1, 1, 256);
  s.pipes = get_int(doc, "pipes", 1, 1, 2);
  s.num_stages = s.devices * s.chunks;
  if (doc.contains("split_backward")) {
    if (!doc["split_backward"].is_boolean()) fail("split_backward", "must be true or false");
    s.split_backward = doc["split_backward"].get<bool>();
  }
  if (!doc.contains("ops") || !doc["ops"].is_array()) fail("ops", "missing (a list with one token list per device)");
  const json& ops = doc["ops"];
  if (static_cast<int>(ops.size()) != s.devices)
    fail("ops", "has " + std::to_string(ops.size()) + " device lists, devices is " + std::to_string(s.devices));
  s.device_ops.resize(s.devices);
  for (int d = 0; d < s.devices; ++d) {
    const std::string dpath = "ops[" + std::to_string(d) + "]";
    if (!ops[d].is_array()) fail(dpath, "must be a list of op tokens");
    for (std::size_t i = 0; i < ops[d].size(); ++i) {
      const std::string path = dpath + "[" + std::to_string(i) + "]";
      if (!ops[d][i].is_string()) fail(path, "must be a token string like \"F3\", \"B3c1\", \"W0p1\"");
      const std::string t = ops[d][i].get<std::string>();
      if (t.rfind("SEND_", 0) == 0 || t.rfind("RECV_", 0) == 0) {
        check_comm_token(path, t, d, s.devices);
        continue;
      }
      Op op;
      if (t.empty() || (t[0] != 'F' && t[0] != 'B' && t[0] != 'W'))
        fail(path, "token '" + t + "' must start with F, B or W (or be a SEND_/RECV_ step)");
      op.kind = t[0] == 'F' ? OpKind::Forward : t[0] == 'B' ? OpKind::Backward : OpKind::Weight;
      std::size_t pos = 1;
      const int mb = read_number(t, pos);
      if (mb < 0) fail(path, "token '" + t + "' needs a micro-batch number after the letter");
      op.microbatch = mb;
      int stage = -1, chunk = 0, pipe = 0;
      while (pos < t.size()) {
        const char tag = t[pos++];
        const int v = read_number(t, pos);
        if (v < 0 || (tag != 'c' && tag != 'p' && tag != 's'))
          fail(path, "token '" + t + "': suffixes are c<chunk>, p<pipe>, s<stage>");
        (tag == 'c' ? chunk : tag == 'p' ? pipe : stage) = v;
      }
      if (chunk >= s.chunks) fail(path, "token '" + t + "': chunk " + std::to_string(chunk) + " but chunks is " + std::to_string(s.chunks));
      if (pipe >= s.pipes) fail(path, "token '" + t + "': pipe " + std::to_string(pipe) + " but pipes is " + std::to_string(s.pipes));
      if (stage < 0) {
        stage = chunk * s.devices + d;
        if (pipe == 1) stage = s.num_stages - 1 - stage;
      }
      if (stage >= s.num_stages) fail(path, "token '" + t + "': stage out of range 0.." + std::to_string(s.num_stages - 1));
      if (op.kind == OpKind::Weight && !s.split_backward)
        fail(path, "token '" + t + "': W ops need \"split_backward\": true");
      op.stage = stage;
      op.chunk = static_cast<std::int16_t>(chunk);
      op.pipe = static_cast<std::int8_t>(pipe);
      s.device_ops[d].push_back(op);
    }
  }
  parse_async_fields(doc, s);
  add_replica_syncs(s);
  try {
    validate_schedule(s);
  } catch (const ScheduleError& e) {
    fail("ops", e.what());
  }
  return s;
}

Schedule load_user_schedule(const std::string& path, int chunks) {
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0) {
    std::string text;
    try {
      text = read_input_file(path);  // regular files only, bounded size
    } catch (const InputFileError& e) {
      throw ScheduleError(e.what());
    }
    try {
      return parse_torch_csv(text, chunks);
    } catch (const ScheduleError& e) {
      throw ScheduleError(path + ": " + e.what());
    }
  }
  json doc;
  try {
    doc = read_json_input(path);
  } catch (const InputFileError& e) {
    throw ScheduleError(e.what());
  }
  try {
    return parse_user_schedule(doc);
  } catch (const ScheduleError& e) {
    throw ScheduleError(path + ": " + e.what());
  }
}

}  // namespace ppsim
