#include "runtime/train/Schedule.h"

#include <algorithm>
#include <cmath>

namespace apc::train {

Status Schedule::validate() const {
  if (kind != "constant" && kind != "linear" && kind != "cosine")
    return Status::error("--lr-schedule must be constant, linear or cosine, got '" + kind + "'");
  if (!(lr > 0.0))
    return Status::error("--lr must be positive");
  if (!(minLr >= 0.0 && minLr <= lr)) // also refuses NaN
    return Status::error("--min-lr must be between 0 and --lr");
  if (warmup < 0)
    return Status::error("--warmup must be >= 0");
  return Status::ok();
}

double Schedule::at(int64_t step) const {
  double t = double(step - 1); // transformers' current_step
  if (t < double(warmup))
    return lr * t / double(std::max<int64_t>(1, warmup));
  if (kind == "constant")
    return lr;
  double span = double(std::max<int64_t>(1, totalSteps - warmup));
  double progress = std::min(1.0, (t - double(warmup)) / span);
  double factor = kind == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
  return minLr + (lr - minLr) * factor;
}

} // namespace apc::train
