// Fuzzes partition::parseParallelPlan (apc's --plan and ap-mesh{plan=...}): the input is
// the plan as typed, "dp=2,tp=2,zero=1" or a JSON object. On success the canonical text
// and JSON forms must parse back to the same plan, and validate() must answer (no
// overflow, no division by zero) against two clusters: 8 devices, and as many devices
// as the plan asks for.
#include "compiler/partition/ParallelPlanText.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <string>

using namespace apc;
using partition::ParallelPlan;

namespace {

bool samePlan(const ParallelPlan &a, const ParallelPlan &b) {
  return a.dp == b.dp && a.tp == b.tp && a.pp == b.pp && a.zero == b.zero && a.sp == b.sp &&
         a.mb == b.mb && a.recompute == b.recompute && a.stages == b.stages;
}

void checkRefusal(const Status &s) {
  // The plan is the input: every message says "plan" (the field, the item or the JSON).
  APC_FUZZ_CHECK(!s.message().empty() && s.message().find("plan") != std::string::npos,
                 "message: %s", s.message().c_str());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto plan = partition::parseParallelPlan(fuzz::asText(data, size));
  fuzz::report(plan ? plan->toString() : plan.status().message());
  if (!plan) {
    checkRefusal(plan.status());
    return 0;
  }
  for (const std::string &form : {plan->toString(), plan->toJson()}) {
    auto again = partition::parseParallelPlan(form);
    APC_FUZZ_CHECK(again && samePlan(*again, *plan), "'%s' does not parse back: %s",
                   form.c_str(), again ? again->toString().c_str() : again.message().c_str());
  }
  partition::PlanContext context;
  context.devices = 8;
  context.cluster = "cpu:8";
  context.batch = 16;
  context.seqLen = 32;
  context.heads = 8;
  context.kvHeads = 4;
  context.layers = 4;
  context.vocab = 128;
  context.ffn = 64;
  for (int64_t devices : {int64_t(8), plan->dp * plan->tp * plan->pp}) {
    context.devices = devices;
    Status s = partition::validate(*plan, context);
    if (!s)
      checkRefusal(s);
  }
  return 0;
}
