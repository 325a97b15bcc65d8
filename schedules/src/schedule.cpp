#include "ppsim/schedule.h"

namespace ppsim {

char op_letter(OpKind kind) {
  switch (kind) {
    case OpKind::Forward: return 'F';
    case OpKind::Backward: return 'B';
    case OpKind::Weight: return 'W';
  }
  return '?';
}

std::string op_token(const Op& op) {
  std::string token(1, op_letter(op.kind));
  token += std::to_string(op.microbatch);
  if (op.chunk != 0) token += "c" + std::to_string(op.chunk);
  if (op.pipe != 0) token += "p" + std::to_string(op.pipe);
  return token;
}

}  // namespace ppsim
