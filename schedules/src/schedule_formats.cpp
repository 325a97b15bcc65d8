// Schedules written so that they read back: the user-schedule JSON and PyTorch's CSV.
#include "ppsim/schedules/schedule_formats.h"

#include <algorithm>
#include <sstream>

namespace ppsim {

using nlohmann::json;

std::string user_token(const Schedule& s, int device, const Op& op) {
  int stage = op.chunk * s.devices + device;  // the reader's default placement
  if (op.pipe == 1) stage = s.num_stages - 1 - stage;
  std::string token = op_token(op);
  if (stage != op.stage) token += "s" + std::to_string(op.stage);
  return token;
}

namespace {
const char* weights_name(WeightPolicy w) {
  switch (w) {
    case WeightPolicy::Single: return "single";
    case WeightPolicy::StashInFlight: return "stash";
    case WeightPolicy::DoubleBuffer: return "double-buffer";
  }
  return "single";
}
}  // namespace

std::string comm_token(const Schedule& s, const CommProgram& prog, const CommStep& st) {
  const CommTransfer& t = prog.transfers[static_cast<std::size_t>(st.index)];
  int first = 0;
  for (int d = 0; d < t.src; ++d) first += static_cast<int>(s.device_ops[d].size());
  const Op& from = s.device_ops[t.src][static_cast<std::size_t>(t.producer - first)];
  const std::string what = op_token(from).substr(1);  // micro-batch and suffixes
  const char dir = from.kind == OpKind::Forward ? 'F' : 'B';
  return st.kind == StepKind::Send ? std::string("SEND_") + dir + what + ">d" + std::to_string(t.dst)
                                   : std::string("RECV_") + dir + what + "<d" + std::to_string(t.src);
}

json schedule_to_json(const Schedule& s, const CommProgram* comm) {
  json ops = json::array();
  for (int d = 0; d < s.devices; ++d) {
    json row = json::array();
    if (comm != nullptr && !comm->devices.empty()) {
      for (const CommStep& st : comm->devices[d])
        row.push_back(st.kind == StepKind::Compute ? user_token(s, d, s.device_ops[d][static_cast<std::size_t>(st.index)])
                                                   : comm_token(s, *comm, st));
    } else {
      for (const Op& op : s.device_ops[d]) row.push_back(user_token(s, d, op));
    }
    ops.push_back(std::move(row));
  }
  json doc = {{"name", s.name},         {"devices", s.devices}, {"microbatches", s.microbatches},
              {"chunks", s.chunks},     {"pipes", s.pipes},     {"split_backward", s.split_backward}};
  if (!s.synchronous) {
    doc["synchronous"] = false;
    doc["iterations"] = s.iterations;
    doc["measure_from"] = s.measure_from;
  }
  if (s.weights != WeightPolicy::Single) doc["weights"] = weights_name(s.weights);
  doc["ops"] = std::move(ops);
  return doc;
}

void add_replica_syncs(Schedule& s) {
  if (s.pipes != 2) return;
  std::vector<int> where(static_cast<std::size_t>(2 * s.num_stages), -1);
  for (int d = 0; d < s.devices; ++d)
    for (const Op& op : s.device_ops[d]) where[static_cast<std::size_t>(op.pipe * s.num_stages + op.stage)] = d;
  // A pipe with no ops on a stage (too few micro-batches) has it where the reader's
  // default placement puts it.
  for (int k = 0; k < s.num_stages; ++k) {
    const int a = where[static_cast<std::size_t>(k)] >= 0 ? where[static_cast<std::size_t>(k)] : k % s.devices;
    const int mirrored = (s.num_stages - 1 - k) % s.devices;
    const int b = where[static_cast<std::size_t>(s.num_stages + k)] >= 0 ? where[static_cast<std::size_t>(s.num_stages + k)] : mirrored;
    if (a >= 0 && b >= 0 && a != b) s.gradient_syncs.push_back({k, {a, b}});
  }
}

namespace {

std::string torch_compute(const Schedule& s, const Op& op) {
  const char* type = op.kind == OpKind::Forward ? "F" : op.kind == OpKind::Weight ? "W" : s.split_backward ? "I" : "B";
  return std::to_string(op.pipe * s.num_stages + op.stage) + type + std::to_string(op.microbatch);
}

/// torch's `_Action` repr of an OVERLAP_F_B action: `(<forward>;<backward>)OVERLAP_F_B`.
std::string torch_overlap_cell(const Schedule& s, const Op& forward, const Op& backward) {
  std::string cell(1, '(');
  cell += torch_compute(s, forward);
  cell += ';';
  cell += torch_compute(s, backward);
  return cell + ")OVERLAP_F_B";
}

std::string torch_comm(const Schedule& s, const CommProgram& prog, const CommStep& st, const std::vector<int>& first) {
  const CommTransfer& t = prog.transfers[static_cast<std::size_t>(st.index)];
  const auto op_at = [&](int index, int device) -> const Op& {
    return s.device_ops[device][static_cast<std::size_t>(index - first[device])];
  };
  const Op& from = op_at(t.producer, t.src);
  const Op& to = op_at(t.consumer, t.dst);
  const bool fwd = from.kind == OpKind::Forward;
  const Op& named = st.kind == StepKind::Send ? from : to;
  const char* type = st.kind == StepKind::Send ? (fwd ? "SEND_F" : "SEND_B") : (fwd ? "RECV_F" : "RECV_B");
  return std::to_string(named.pipe * s.num_stages + named.stage) + type + std::to_string(named.microbatch);
}

}  // namespace

std::string schedule_to_torch_csv(const Schedule& s, const CommProgram* comm) {
  if (!s.synchronous)
    throw ScheduleError(s.name + " is asynchronous: PyTorch's CSV holds one flush iteration");
  std::vector<int> first(static_cast<std::size_t>(s.devices) + 1, 0);
  for (int d = 0; d < s.devices; ++d) first[d + 1] = first[d] + static_cast<int>(s.device_ops[d].size());
  const std::vector<std::vector<std::uint8_t>> pair_start = overlap_pair_starts(s);
  std::string out;
  for (int d = 0; d < s.devices; ++d) {
    std::string row;
    auto add = [&](const std::string& cell) { row += (row.empty() ? "" : ",") + cell; };
    // A compute cell; an overlapped pair is one `(F;B)OVERLAP_F_B` cell at its forward.
    auto compute = [&](std::size_t i) {
      const auto& ops = s.device_ops[d];
      if (pair_start[d][i] != 0) add(torch_overlap_cell(s, ops[i], ops[i + 1]));
      else if (i == 0 || pair_start[d][i - 1] == 0) add(torch_compute(s, ops[i]));
    };
    if (comm != nullptr && !comm->devices.empty()) {
      for (const CommStep& st : comm->devices[d])
        if (st.kind == StepKind::Compute) compute(static_cast<std::size_t>(st.index));
        else add(torch_comm(s, *comm, st, first));
    } else {
      for (std::size_t i = 0; i < s.device_ops[d].size(); ++i) compute(i);
    }
    out += row + "\n";
  }
  return out;
}

namespace {

[[noreturn]] void cell_error(std::size_t row, std::size_t col, const std::string& cell, const std::string& problem) {
  throw ScheduleError("row " + std::to_string(row + 1) + ", column " + std::to_string(col + 1) + ", cell '" + cell +
                      "': " + problem);
}

/// Digits at `pos` as a number (at most 10^8); -1 when none.
long long digits(const std::string& t, std::size_t& pos) {
  const std::size_t begin = pos;
  long long x = 0;
  while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
    x = x * 10 + (t[pos++] - '0');
    if (x > 100'000'000) return -2;
  }
  return pos == begin ? -1 : x;
}

std::vector<std::string> split_rows(const std::string& text) {
  std::vector<std::string> rows;
  std::string line;
  std::istringstream in(text);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    rows.push_back(line);
  }
  return rows;
}

struct TorchAction {
  std::string type;
  long long stage{-1}, microbatch{-1};
};

TorchAction parse_action(const std::string& cell, std::size_t row, std::size_t col) {
  static const char* types[] = {"SEND_F", "RECV_F", "SEND_B", "RECV_B", "UNSHARD", "RESHARD", "REDUCE_GRAD", "F", "I", "B", "W"};
  TorchAction a;
  std::size_t pos = 0;
  a.stage = digits(cell, pos);
  if (a.stage < 0) cell_error(row, col, cell, "must start with a stage number, as in 0F3, 1I2, 1W2, 0B3, 2SEND_F0");
  for (const char* t : types)
    if (cell.compare(pos, std::string(t).size(), t) == 0) {
      a.type = t;
      break;
    }
  if (a.type.empty()) cell_error(row, col, cell, "unknown action type (F, I, B, W, SEND_F, RECV_F, SEND_B, RECV_B)");
  pos += a.type.size();
  a.microbatch = digits(cell, pos);
  if (pos != cell.size()) cell_error(row, col, cell, "unexpected text after the micro-batch number");
  if (a.microbatch == -2) cell_error(row, col, cell, "micro-batch number too large");
  return a;
}

/// An OVERLAP_F_B cell, `(0F3;1B1)OVERLAP_F_B`: a forward, then a backward (B or I).
std::pair<TorchAction, TorchAction> parse_overlap(const std::string& cell, std::size_t row, std::size_t col) {
  static const std::string suffix = ")OVERLAP_F_B";
  const std::size_t semi = cell.find(';');
  if (cell.size() < suffix.size() + 2 || cell.compare(cell.size() - suffix.size(), suffix.size(), suffix) != 0 ||
      semi == std::string::npos || cell.find(';', semi + 1) != std::string::npos)
    cell_error(row, col, cell, "a parenthesised action must be (<forward>;<backward>)OVERLAP_F_B, as in (0F3;1B1)OVERLAP_F_B");
  const TorchAction f = parse_action(cell.substr(1, semi - 1), row, col);
  const TorchAction b = parse_action(cell.substr(semi + 1, cell.size() - suffix.size() - semi - 1), row, col);
  if (f.type != "F" || (b.type != "B" && b.type != "I"))
    cell_error(row, col, cell, "an OVERLAP_F_B pair is a forward (F) then a backward (B or I)");
  return {f, b};
}

}  // namespace

Schedule parse_torch_csv(const std::string& text, int chunks) {
  const std::vector<std::string> rows = split_rows(text);
  if (rows.empty()) throw ScheduleError("row 1: the file has no rows (one row of actions per rank)");
  Schedule s;
  s.name = "torch-csv";
  s.devices = static_cast<int>(rows.size());
  s.chunks = std::max(1, chunks);
  s.num_stages = s.devices * s.chunks;
  s.device_ops.resize(rows.size());
  std::vector<std::vector<std::int32_t>> pairs(rows.size());
  bool full = false, split = false, any_pair = false;
  int max_mb = -1;
  // One compute action (F, I, B, W) onto row r's list; sends, receives and FSDP steps skipped.
  auto compute = [&](const TorchAction& a, std::size_t r, std::size_t c, const std::string& cell) {
    if (a.type == "UNSHARD" || a.type == "RESHARD" || a.type == "REDUCE_GRAD") return false;  // FSDP: no time here
    if (a.microbatch < 0) cell_error(r, c, cell, "needs a micro-batch number after the action type");
    if (a.stage >= 2LL * s.num_stages)
      cell_error(r, c, cell, "stage out of range 0.." + std::to_string(s.num_stages - 1) + " (pipe 1: " +
                                 std::to_string(s.num_stages) + ".." + std::to_string(2 * s.num_stages - 1) + ")");
    if (a.type.size() > 1) return false;  // a send or receive: ppsim derives them (communication.h)
    Op op;
    op.kind = a.type == "F" ? OpKind::Forward : a.type == "W" ? OpKind::Weight : OpKind::Backward;
    full = full || a.type == "B";
    split = split || a.type == "I" || a.type == "W";
    if (full && split) cell_error(r, c, cell, "mixes full backward B with split backward I/W");
    op.pipe = static_cast<std::int8_t>(a.stage >= s.num_stages ? 1 : 0);
    op.stage = static_cast<std::int32_t>(a.stage - op.pipe * s.num_stages);
    op.chunk = static_cast<std::int16_t>((op.pipe == 0 ? op.stage : s.num_stages - 1 - op.stage) / s.devices);
    op.microbatch = static_cast<std::int32_t>(a.microbatch);
    if (op.pipe == 1) s.pipes = 2;
    max_mb = std::max(max_mb, op.microbatch);
    s.device_ops[r].push_back(op);
    return true;
  };
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::istringstream cells(rows[r]);
    std::string cell;
    for (std::size_t c = 0; std::getline(cells, cell, ','); ++c) {
      cell.erase(0, cell.find_first_not_of(" \t"));
      cell.erase(cell.find_last_not_of(" \t") + 1);
      if (cell.empty()) continue;  // an idle step
      if (cell.front() != '(') {
        compute(parse_action(cell, r, c), r, c, cell);
        continue;
      }
      const auto [forward, backward] = parse_overlap(cell, r, c);
      pairs[r].push_back(static_cast<std::int32_t>(s.device_ops[r].size()));
      compute(forward, r, c, cell);
      compute(backward, r, c, cell);
      any_pair = true;
    }
  }
  s.split_backward = split;
  s.microbatches = max_mb + 1;
  if (any_pair) s.overlap_pairs = std::move(pairs);
  add_replica_syncs(s);
  validate_schedule(s);
  return s;
}

}  // namespace ppsim
