// The parallel plan as text (ParallelPlanText.h): parsing, printing and validation,
// without MLIR, so that the fuzz target of test/fuzz needs only LLVM's JSON.
#include "compiler/partition/ParallelPlanText.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/JSON.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <set>
#include <vector>

namespace apc::partition {
namespace {

Result<int64_t> parseCount(const std::string &field, const std::string &value) {
  // Digits only: strtoll alone would take " 2" and "+2", and stop at a NUL byte that a
  // JSON string can hold ("1\u0000x" read as 1).
  if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
    return Result<int64_t>::error("plan field '" + field + "' must be a non-negative integer, got '" +
                                  value + "'");
  // Longer numbers saturate: the bounds of each field refuse them by name.
  return value.size() > 18 ? INT64_MAX : int64_t(std::stoll(value));
}

Status setField(ParallelPlan &plan, const std::string &key, const std::string &value,
                std::set<std::string> &seen) {
  if (!seen.insert(key).second)
    return Status::error("plan field '" + key + "' is given twice");
  auto count = [&](int64_t &out, int64_t min) -> Status {
    auto v = parseCount(key, value);
    if (!v)
      return v.status();
    if (*v < min)
      return Status::error("plan field '" + key + "' must be at least " + std::to_string(min) +
                           ", got " + value);
    out = *v;
    return Status::ok();
  };
  // Degrees are bounded so that dp * tp * pp (devices()) cannot overflow int64.
  auto degree = [&](int64_t &out) -> Status {
    APC_RETURN_IF_ERROR(count(out, 1));
    if (out > kMaxPlanDegree)
      return Status::error("plan field '" + key + "' must be at most " +
                           std::to_string(kMaxPlanDegree) + ", got " + value);
    return Status::ok();
  };
  if (key == "dp") return degree(plan.dp);
  if (key == "tp") return degree(plan.tp);
  if (key == "pp") return degree(plan.pp);
  if (key == "cp") return degree(plan.cp);
  if (key == "mb") return degree(plan.mb);
  if (key == "vp") return degree(plan.vp);
  if (key == "zero") {
    APC_RETURN_IF_ERROR(count(plan.zero, 0));
    if (plan.zero > 3)
      return Status::error("plan field 'zero' must be 0, 1, 2 or 3, got " + value);
    return Status::ok();
  }
  if (key == "sp") {
    if (value == "on" || value == "true" || value == "1") plan.sp = true;
    else if (value == "off" || value == "false" || value == "0") plan.sp = false;
    else return Status::error("plan field 'sp' must be on or off, got '" + value + "'");
    return Status::ok();
  }
  if (key == "recompute") {
    if (value != "none" && value != "selective" && value != "full")
      return Status::error("plan field 'recompute' must be none, selective or full, got '" +
                           value + "'");
    plan.recompute = value;
    return Status::ok();
  }
  if (key == "recompute_stages")
    return count(plan.recomputeStages, 0);
  if (key == "stages") { // "3+5": layers per stage
    if (value.empty() || value.find_first_not_of("0123456789+") != std::string::npos ||
        value.front() == '+' || value.back() == '+' || value.find("++") != std::string::npos)
      return Status::error("plan field 'stages' must list layers per stage joined by '+', "
                           "e.g. 3+5, got '" + value + "'");
    plan.stages.clear();
    for (size_t start = 0; start <= value.size();) {
      size_t plus = value.find('+', start);
      std::string item = value.substr(start, plus == std::string::npos ? plus : plus - start);
      if (item.size() > 9)
        return Status::error("plan field 'stages' gives one stage " + item +
                             " layers, more than any model has");
      plan.stages.push_back(std::stoll(item));
      if (plus == std::string::npos)
        break;
      start = plus + 1;
    }
    return Status::ok();
  }
  return Status::error("unknown plan field '" + key +
                       "' (fields: dp, tp, pp, cp, vp, zero, sp, mb, recompute, recompute_stages, "
                       "stages)");
}

Result<ParallelPlan> parseJson(const std::string &text, std::set<std::string> &seen) {
  using R = Result<ParallelPlan>;
  llvm::Expected<llvm::json::Value> parsed = llvm::json::parse(text);
  if (!parsed)
    return R::error("the plan is not valid JSON: " + llvm::toString(parsed.takeError()));
  const llvm::json::Object *object = parsed->getAsObject();
  if (!object)
    return R::error("a JSON plan must be an object such as {\"dp\": 2, \"tp\": 2}");
  ParallelPlan plan;
  for (const auto &[key, value] : *object) {
    std::string v;
    if (auto i = value.getAsInteger()) v = std::to_string(*i);
    else if (auto b = value.getAsBoolean()) v = *b ? "on" : "off";
    else if (auto s = value.getAsString()) v = s->str();
    else return R::error("plan field '" + key.str() + "' has a value of the wrong type");
    APC_RETURN_IF_ERROR(setField(plan, key.str(), v, seen));
  }
  return plan;
}


} // namespace

std::string stagesText(const std::vector<int64_t> &stages) {
  std::string s;
  for (int64_t n : stages)
    s += (s.empty() ? "" : "+") + std::to_string(n);
  return s;
}

std::string ParallelPlan::toString() const {
  std::string s = "dp=" + std::to_string(dp) + ",tp=" + std::to_string(tp) +
                  ",pp=" + std::to_string(pp) +
                  (cp > 1 ? ",cp=" + std::to_string(cp) : std::string()) +
                  ",zero=" + std::to_string(zero) +
                  ",sp=" + (sp ? "on" : "off") + ",mb=" + std::to_string(mb) +
                  (vp > 1 ? ",vp=" + std::to_string(vp) : std::string()) +
                  ",recompute=" + recompute;
  if (recomputeStages > 0)
    s += ",recompute_stages=" + std::to_string(recomputeStages);
  if (!stages.empty())
    s += ",stages=" + stagesText(stages);
  return s;
}

std::string ParallelPlan::toJson() const {
  llvm::json::Object o{{"dp", dp}, {"tp", tp}, {"pp", pp}, {"zero", zero},
                       {"sp", sp}, {"mb", mb}, {"recompute", recompute}};
  if (cp > 1)
    o["cp"] = cp;
  if (vp > 1)
    o["vp"] = vp;
  if (recomputeStages > 0)
    o["recompute_stages"] = recomputeStages;
  if (!stages.empty())
    o["stages"] = stagesText(stages);
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::json::Value(std::move(o));
  return out;
}

Result<ParallelPlan> parseParallelPlan(const std::string &text, std::set<std::string> *given) {
  std::set<std::string> seen;
  struct Report { // the fields named, on success
    std::set<std::string> &seen;
    std::set<std::string> *given;
    ~Report() {
      if (given)
        *given = seen;
    }
  } report{seen, given};
  size_t first = text.find_first_not_of(" \t\n");
  if (first != std::string::npos && text[first] == '{')
    return parseJson(text, seen);
  ParallelPlan plan;
  if (text.find_first_not_of(" \t") == std::string::npos)
    return plan;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos
                                                                     : comma - start);
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return Result<ParallelPlan>::error("plan item '" + item +
                                         "' is not key=value (e.g. \"dp=2,tp=2,zero=1\")");
    APC_RETURN_IF_ERROR(setField(plan, item.substr(0, eq), item.substr(eq + 1), seen));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return plan;
}

Status validate(const ParallelPlan &p, const PlanContext &c) {
  if (p.devices() != c.devices)
    return Status::error("plan degrees dp=" + std::to_string(p.dp) + " x tp=" +
                         std::to_string(p.tp) + " x pp=" + std::to_string(p.pp) +
                         (p.cp > 1 ? " x cp=" + std::to_string(p.cp) : std::string()) + " = " +
                         std::to_string(p.devices()) + " do not match the " +
                         std::to_string(c.devices) + " devices of cluster " + c.cluster);
  if (c.batch % p.dp != 0)
    return Status::error("plan field 'dp' (" + std::to_string(p.dp) +
                         ") does not divide the batch (" + std::to_string(c.batch) + ")");
  if (c.heads % p.tp != 0 || c.kvHeads % p.tp != 0)
    return Status::error("plan field 'tp' (" + std::to_string(p.tp) +
                         ") must divide the attention heads (" + std::to_string(c.heads) +
                         ") and the key/value heads (" + std::to_string(c.kvHeads) + ")");
  if (c.vocab % p.tp != 0)
    return Status::error("plan field 'tp' (" + std::to_string(p.tp) +
                         ") must divide the vocabulary (" + std::to_string(c.vocab) +
                         ") for the vocabulary-parallel embedding and LM head");
  if (c.ffn % p.tp != 0)
    return Status::error("plan field 'tp' (" + std::to_string(p.tp) +
                         ") must divide the MLP width intermediate_size (" +
                         std::to_string(c.ffn) + ")");
  if (p.sp && p.tp == 1)
    return Status::error("plan field 'sp' needs tp > 1 (sequence parallelism lives between "
                         "tensor-parallel regions)");
  if (p.sp && c.seqLen % p.tp != 0)
    return Status::error("plan field 'sp': tp (" + std::to_string(p.tp) +
                         ") must divide the sequence length (" + std::to_string(c.seqLen) + ")");
  if (p.cp > 1 && c.seqLen % (2 * p.cp) != 0)
    return Status::error("plan field 'cp' (" + std::to_string(p.cp) +
                         ") must cut the sequence (" + std::to_string(c.seqLen) + ") into 2 x cp = " +
                         std::to_string(2 * p.cp) +
                         " equal chunks (each device holds two, for the causal load balance)");
  if (p.cp > 1 && p.sp && (c.seqLen / p.cp) % p.tp != 0)
    return Status::error("plan field 'sp': tp (" + std::to_string(p.tp) +
                         ") must divide each device's part of the sequence under cp=" +
                         std::to_string(p.cp) + " (" + std::to_string(c.seqLen / p.cp) + ")");
  if (p.zero > 0 && p.dp == 1)
    return Status::error("plan field 'zero' shards over the data-parallel axis and needs dp > 1");
  if (p.pp > c.layers)
    return Status::error("plan field 'pp' (" + std::to_string(p.pp) + ") exceeds the " +
                         std::to_string(c.layers) + " layers");
  if (p.mb < 1 || (c.batch / p.dp) % p.mb != 0)
    return Status::error("plan field 'mb' (" + std::to_string(p.mb) +
                         ") must divide the per-replica batch (" + std::to_string(c.batch / p.dp) +
                         ")");
  if (p.vp > 1 && p.pp == 1)
    return Status::error("plan field 'vp' (" + std::to_string(p.vp) +
                         ") gives each pipeline stage several model chunks and needs pp > 1");
  if (p.vp > 1 && p.pp * p.vp > c.layers)
    return Status::error("plan field 'vp': pp x vp = " + std::to_string(p.pp) + " x " +
                         std::to_string(p.vp) + " chunks exceed the " +
                         std::to_string(c.layers) + " layers");
  if (p.vp > 1 && p.mb % p.pp != 0)
    return Status::error("plan field 'vp' (" + std::to_string(p.vp) +
                         ", interleaved 1F1B) needs mb (" + std::to_string(p.mb) +
                         ") to be a multiple of pp (" + std::to_string(p.pp) + ")");
  if (p.vp > 1 && p.recomputeStages > 0)
    return Status::error("plan field 'recompute_stages' is not supported with vp > 1 (an "
                         "interleaved stage holds chunks from the whole depth): recompute "
                         "every stage, or use vp=1");
  if (p.recomputeStages > 0 && (p.recompute == "none" || p.recomputeStages >= p.pp))
    return Status::error("plan field 'recompute_stages' (" + std::to_string(p.recomputeStages) +
                         ") limits recompute=selective or full to the first stages of a "
                         "pipeline: it needs recompute other than none and fewer than pp=" +
                         std::to_string(p.pp) + " stages (0 recomputes on every stage)");
  if (!p.stages.empty()) {
    const std::vector<int64_t> &layers = p.stages;
    int64_t sum = 0;
    for (int64_t n : layers)
      sum = n == INT64_MAX || sum == INT64_MAX ? INT64_MAX : sum + n;
    if (int64_t(layers.size()) != p.pp * p.vp || sum != c.layers ||
        llvm::is_contained(layers, int64_t(0)))
      return Status::error(
          "plan field 'stages' (" + stagesText(p.stages) + ") must give " +
          (p.vp > 1 ? "pp x vp = " + std::to_string(p.pp * p.vp) + " chunks"
                    : "pp=" + std::to_string(p.pp) + " stages") +
          " of at least one layer each, " + std::to_string(c.layers) + " layers in all");
  }
  return checkImplemented(p);
}

Status checkImplemented(const ParallelPlan &) {
  // Every field of the grammar is implemented; a field the compiler accepts before it can
  // build it is refused here by name, never ignored.
  return Status::ok();
}

} // namespace apc::partition
