// `aprun --dump`: a plan printed for people.
#pragma once

#include <cstdio>

namespace apc::plan {
struct Plan;
}

namespace apc::tools {
void dumpPlan(const plan::Plan &plan, std::FILE *out);
}
