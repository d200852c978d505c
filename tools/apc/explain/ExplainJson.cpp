// `apc explain --json`: the facts of the text as one JSON object, every parameter and
// collective listed (nothing grouped).
#include "tools/apc/explain/PlanFacts.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace apc::explain {
namespace {

using Json = nlohmann::ordered_json;

double finite(double v) { return std::isfinite(v) ? v : 0.0; }

Json layoutJson(const PlanFacts &f, const Layout &layout) {
  if (!layout.present)
    return nullptr;
  Json splits = Json::array();
  for (size_t d = 0; d < layout.dimAxes.size(); ++d)
    if (layout.dimAxes[d] >= 0)
      splits.push_back({{"dim", d},
                        {"axis", f.axisName(layout.dimAxes[d])},
                        {"ways", f.axisSize(layout.dimAxes[d])}});
  return Json{{"dim_axes", layout.dimAxes},
              {"splits", splits},
              {"replicated", splits.empty()},
              {"local_shape", layout.localShape},
              {"bytes_per_device", layout.bytesPerDevice},
              {"ranks", layout.ranks},
              {"text", layoutText(f, layout)}};
}

Json axesNames(const PlanFacts &f, const std::vector<int64_t> &axes) {
  Json names = Json::array();
  for (int64_t a : axes)
    names.push_back(f.axisName(a));
  return names;
}

} // namespace

std::string renderJson(const PlanFacts &f, const std::string &svgPath) {
  Json j;
  j["file"] = f.path;
  j["producer"] = f.producer;
  j["format_version"] = f.version;
  j["model"] = {{"architecture", f.architecture},
                {"num_hidden_layers", f.layers},
                {"hidden_size", f.hidden},
                {"intermediate_size", f.intermediate},
                {"num_attention_heads", f.heads},
                {"num_key_value_heads", f.kvHeads},
                {"head_dim", f.headDim},
                {"vocab_size", f.vocab},
                {"tie_word_embeddings", f.tied}};
  j["data"] = {{"batch", f.batch}, {"seq_len", f.seqLen}};
  j["precision"] = f.precision;
  j["parallel_plan"] = f.parallelPlan;
  j["cluster"] = f.cluster;

  Json ranks = Json::array();
  for (int64_t r = 0; r < f.devices; ++r) {
    Json coords = Json::object();
    std::vector<int64_t> c = f.coordinates(r);
    for (size_t a = 0; a < c.size(); ++a)
      coords[f.axisNames[a]] = c[a];
    ranks.push_back({{"rank", r}, {"coordinates", coords}});
  }
  j["mesh"] = {{"axes", f.axisNames}, {"shape", f.meshShape}, {"devices", f.devices},
               {"ranks", ranks}};

  Json stages = Json::array();
  for (size_t s = 0; s < f.stages.size(); ++s) {
    const StageFacts &st = f.stages[s];
    stages.push_back({{"stage", s},
                      {"first_layer", st.firstLayer},
                      {"num_layers", st.numLayers},
                      {"embedding", st.embedding},
                      {"head", st.head},
                      {"contents", stageContents(st)},
                      {"ranks", st.ranks},
                      {"flops", finite(st.flops)},
                      {"plan_order", st.planOrder.empty() ? Json(nullptr) : Json(st.planOrder)},
                      {"plan_order_is_1f1b",
                       st.planOrder.empty() ? Json(nullptr) : Json(st.planOrderIs1F1B)}});
  }
  Json pipeline = {{"present", f.pipelinePresent},
                   {"stages", stages},
                   {"micro_batches", f.microBatches},
                   {"schedule", f.schedule},
                   {"recompute", f.recompute},
                   {"recompute_stages", f.recomputeStages},
                   {"pp_axis", f.ppAxis >= 0 ? Json(f.axisName(f.ppAxis)) : Json(nullptr)},
                   {"warnings", f.warnings}};
  if (f.timeline) {
    Json timeline = Json::array();
    for (size_t s = 0; s < f.timeline->ops.size(); ++s) {
      Json row = Json::array();
      bool recompute = f.stageTimesPredicted && s < f.predictedStages.size() &&
                       f.predictedStages[s].recomputeKnown;
      for (const ScheduledOp &op : f.timeline->ops[s]) {
        Json o = {{"op", op.label()}, {"start", op.start}, {"end", op.end}};
        if (!op.forward && recompute)
          o["recompute"] = op.recompute;
        row.push_back(o);
      }
      timeline.push_back(row);
    }
    Json steps = nullptr;
    if (!f.timeline->stepStart.empty()) {
      steps = Json::array();
      for (size_t s = 0; s < f.timeline->stepStart.size(); ++s)
        steps.push_back({{"start", f.timeline->stepStart[s]}, {"end", f.timeline->stepEnd[s]}});
    }
    pipeline["timeline"] = {{"cost_model", f.stageTimesPredicted
                                               ? "the plan's predicted stage times (seconds; "
                                                 "docs/cost-model.md)"
                                               : "backward = 2 x forward; forward time per "
                                                 "stage proportional to its program's FLOPs "
                                                 "(equal when unknown)"},
                            {"makespan", f.timeline->makespan},
                            {"end", f.timeline->end},
                            {"bubble_fraction", f.timeline->bubbleFraction},
                            {"stages", timeline},
                            {"steps", steps},
                            {"predicted_stages_unused", f.predictedStagesUnused.empty()
                                                            ? Json(nullptr)
                                                            : Json(f.predictedStagesUnused)}};
  } else {
    pipeline["timeline"] = nullptr;
  }
  j["pipeline"] = pipeline;

  Json parameters = Json::array();
  for (const ParameterFacts &p : f.parameters)
    parameters.push_back({{"name", p.name},
                          {"shape", p.shape},
                          {"dtype", p.dtype},
                          {"layer", p.layer >= 0 ? Json(p.layer) : Json(nullptr)},
                          {"stages", p.stages},
                          {"layout", layoutJson(f, p.parameter)},
                          {"exp_avg", layoutJson(f, p.expAvg)},
                          {"exp_avg_sq", layoutJson(f, p.expAvgSq)}});
  j["parameters"] = parameters;

  Json programs = Json::array();
  for (const ProgramFacts &p : f.programs) {
    uint64_t moved = 0;
    Json list = Json::array();
    for (const CollectiveFacts &c : p.collectives) {
      moved += c.bytes;
      Json item = {{"instruction", c.instruction}, {"kind", c.kind}};
      if (!c.op.empty())
        item["op"] = c.op;
      item["axes"] = axesNames(f, c.axes);
      if (c.dim >= 0)
        item["dim"] = c.dim;
      item["buffers"] = c.operands;
      item["bytes"] = c.bytes;
      item["communicates"] = c.communicates;
      if (c.kind == "send" || c.kind == "recv") {
        item["peer_offset"] = c.peerOffset;
        item["peer_stage"] = c.peerStage >= 0 ? Json(c.peerStage) : Json(nullptr);
        item["tag"] = c.tag;
      }
      list.push_back(item);
    }
    Json byKind = Json::array();
    for (const CollectiveSummary &r : summarizeCollectives(p)) {
      Json row = {{"kind", r.kind},
                  {"op", r.op.empty() ? Json(nullptr) : Json(r.op)},
                  {"axes", axesNames(f, r.axes)},
                  {"count", r.count},
                  {"bytes", r.bytes}};
      if (r.kind == "send" || r.kind == "recv") {
        row["peer_offset"] = r.peerOffset;
        row["peer_stage"] = r.peerStage >= 0 ? Json(r.peerStage) : Json(nullptr);
      }
      byKind.push_back(row);
    }
    std::string order;
    for (bool forward : p.passOrder)
      order += forward ? 'F' : 'B';
    programs.push_back(
        {{"program", p.index},
         {"stage", p.stage},
         {"ranks", f.stages[size_t(p.stage)].ranks},
         {"pp_coordinate", p.ppCoordinate >= 0 ? Json(p.ppCoordinate) : Json(nullptr)},
         {"pass_order", order},
         {"instructions", p.instructions},
         {"flops", finite(p.flops)},
         {"memory",
          {{"parameters", p.parameterBytes},
           {"optimizer_state", p.optimizerBytes},
           {"inputs", p.inputBytes},
           {"arena", p.arenaBytes},
           {"gradients_in_arena", p.gradientBytes},
           {"input_bindings", p.inputBindings},
           {"total", p.totalBytes()}}},
         {"collectives",
          {{"count", p.collectives.size()}, {"bytes", moved}, {"by_kind", byKind},
           {"instructions", list}}}});
  }
  j["programs"] = programs;
  if (f.predictedPresent)
    j["predicted"] = {{"flops_per_step", finite(f.predictedFlops)},
                      {"seconds_per_step", finite(f.predictedSeconds)},
                      {"bytes_per_device", f.predictedBytes},
                      {"cluster", f.predictedCluster}};
  if (f.predictedPresent && f.predictedModel) {
    Json breakdown = Json::object(), memory = Json::object();
    for (const auto &[name, seconds] : f.predictedBreakdown)
      breakdown[name] = finite(seconds);
    for (const auto &[name, bytes] : f.predictedMemory)
      memory[name] = bytes;
    j["predicted"]["tokens_per_second_per_device"] = finite(f.predictedTokensPerSecondPerDevice);
    j["predicted"]["mfu"] = finite(f.predictedMfu);
    j["predicted"]["fits"] = f.predictedFits;
    j["predicted"]["usable_bytes_per_device"] = finite(f.predictedUsableBytes);
    j["predicted"]["breakdown"] = breakdown;
    j["predicted"]["memory"] = memory;
    Json stages = Json::array();
    for (const PredictedStageTimes &st : f.predictedStages)
      stages.push_back({{"forward", finite(st.times.forward)},
                        {"backward", finite(st.times.backward)},
                        {"recompute", st.recomputeKnown ? Json(finite(st.recompute)) : Json(nullptr)},
                        {"step", finite(st.step)},
                        {"send_forward", finite(st.times.sendForward)},
                        {"send_backward", finite(st.times.sendBackward)}});
    j["predicted"]["stages"] = stages;
  } else if (!f.predictedPresent) {
    j["predicted"] = nullptr;
  }
  j["svg"] = svgPath.empty() ? Json(nullptr) : Json(svgPath);
  // Names and strings come from the file: replace invalid UTF-8 rather than throw.
  if (f.searched) {
    Json alternatives = Json::array();
    for (const PlanFacts::Alternative &a : f.alternatives) {
      Json breakdown = Json::object();
      for (const auto &[name, seconds] : a.breakdown)
        breakdown[name] = finite(seconds);
      alternatives.push_back({{"plan", a.plan},
                              {"seconds_per_step", finite(a.seconds)},
                              {"bytes_per_device", a.bytes},
                              {"estimated", a.estimated},
                              {"breakdown", breakdown},
                              {"loses_on", whyNot(f, a)}});
    }
    j["search"] = {{"request", f.searchRequest},       {"enumerated", f.searchEnumerated},
                   {"estimated", f.searchEstimated},   {"compiled", f.searchCompiled},
                   {"pruned_by_bound", f.searchPruned}, {"dominated", f.searchDominated},
                   {"dropped", f.searchDropped},       {"seconds", finite(f.searchSeconds)},
                   {"alternatives", alternatives}};
  }
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

} // namespace apc::explain
