// aprun --profile: where a rank's step time goes, kernel by kernel, measured.
//
// The executor times each instruction of the steps after the first (the first warms
// caches and thread pools); this writes the totals per step as JSON, grouped by kernel
// name and listed per instruction, so they can be set beside the cost model's figures
// (`apc plan --json`, docs/cost-model.md).
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::exec {
class Executor;
}

namespace apc::train {

struct ProfileRun {
  std::string planPath;
  int rank = 0;
  int stage = 0;
  int threads = 1;
  int64_t stepsProfiled = 0;      // steps the executor timed
  double medianStepSeconds = 0;   // of those steps, the whole step (data loading included)
};

// The path rank `rank` writes: `path` with "%r" replaced by the rank. Without "%r",
// rank 0 writes `path` and the other ranks write nothing ("" for them).
std::string profilePathOf(const std::string &path, int rank);

// Writes the profile (atomically: runtime/support/AtomicFile.h). Errors name the file.
Status writeProfile(const std::string &path, const exec::Executor &executor,
                    const ProfileRun &run);

// The few lines aprun prints at the end: the kernels taking the most time per step.
std::string profileSummary(const exec::Executor &executor, const ProfileRun &run, int top);

} // namespace apc::train
