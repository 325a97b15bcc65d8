// PipeDream-2BW (Narayanan et al., ICML'21): the asynchronous 1F1B order of PipeDream with
// no flush, but gradients are accumulated over the m micro-batches of a batch and a new
// weight version is made once per batch, so each stage holds two versions (double
// buffering) instead of one per micro-batch in flight. That bound needs m >= p: with
// fewer micro-batches per batch than stages, a micro-batch could still be in flight when
// a second newer version is made.
#include "generators.h"

namespace ppsim {

Schedule generate_2bw(const ScheduleParams& params) {
  if (params.microbatches < params.stages)
    throw ScheduleError("2bw needs microbatches >= stages (m=" + std::to_string(params.microbatches) +
                        ", p=" + std::to_string(params.stages) +
                        "): PipeDream-2BW keeps two weight versions only when each batch has at least p micro-batches");
  return make_async_1f1b("2bw", params, WeightPolicy::DoubleBuffer);
}

}  // namespace ppsim
