// Whether this machine can run a plan's ranks on the plan's backend, checked by aprun
// once before it starts any rank (so that a missing GPU is one message, not one per rank).
#pragma once

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>

namespace apc::plan {
struct Plan;
}

namespace apc::exec {

// ok for CPU plans. For a CUDA plan: the CUDA backend must be built, a GPU visible
// ("plan.fb: compiled for h100-sxm:8: no CUDA device is visible (...)"), one per local
// rank, and the plan on one device (collectives on GPUs need NCCL, not built yet).
Status checkDevicesHere(const plan::Plan &plan, const std::string &path, int64_t localRanks);

} // namespace apc::exec
