// Learning-rate schedules, as transformers' get_*_schedule_with_warmup compute them.
//
// The lr of update number t (1-based) is the schedule at t - 1, exactly as a
// torch LambdaLR stepped after each optimizer step gives it; so with warmup the first
// update has lr 0, as in transformers. `min_lr` is the floor the decay ends at.
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>

namespace apc::train {

struct Schedule {
  std::string kind = "constant"; // constant | linear | cosine
  double lr = 1e-4;
  int64_t warmup = 0;
  double minLr = 0.0;
  int64_t totalSteps = 1;

  // Checks the fields (kind known, lr > 0, 0 <= min_lr <= lr, warmup >= 0).
  Status validate() const;
  // The learning rate of update `step` (1-based).
  double at(int64_t step) const;
};

} // namespace apc::train
