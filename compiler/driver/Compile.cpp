#include "compiler/driver/Compile.h"

#include "compiler/driver/Predict.h"

#include "compiler/emit/EmitPlan.h"
#include "compiler/rules/Rules.h"
#include "compiler/support/EntryFunction.h"
#include "compiler/support/Mesh.h"
#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Pass/PassManager.h"

#include <cstdint>

namespace apc::driver {

using namespace mlir;

void registerCompilerDialects(DialectRegistry &registry) {
  registry.insert<ap::ApDialect, func::FuncDialect, shard::ShardDialect>();
  rules::registerApRules(registry);
}

Status checkImportedStep(ModuleOp module) {
  // A step apc compile already differentiated (its --emit=mlir output) is not an input:
  // said in one line, rather than by the first pass that meets a gradient op.
  Operation *compiled = nullptr;
  module.walk([&](Operation *op) {
    if (!compiled && isa<ap::AdamWOp, ap::GradNormOp>(op))
      compiled = op;
  });
  if (compiled)
    return Status::error("holds an already compiled training step (" +
                         compiled->getName().getStringRef().str() +
                         "): apc compile takes the forward and loss that apc import writes");
  // A step from apc import marks its batch and its layers; one from an older apc does not.
  for (auto fn : module.getOps<func::FuncOp>()) {
    auto model = fn->getAttrOfType<DictionaryAttr>("ap.model");
    if (!model)
      continue;
    std::string missing;
    if (!batchArgument(fn, ap::BatchInput::Tokens))
      missing = "no argument marked ap.batch = #ap.batch<tokens> (the token ids)";
    auto layers = model.getAs<IntegerAttr>("num_hidden_layers");
    bool layerMarks = false;
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      layerMarks = layerMarks || fn.getArgAttr(i, "ap.layer");
    if (missing.empty() && layers && layers.getInt() > 0 && !layerMarks)
      missing = "no parameter marked with its decoder layer (ap.layer)";
    if (!missing.empty())
      return Status::error("@" + fn.getSymName().str() + " has " + missing +
                           ": it was imported by an older apc; run apc import again");
  }
  return Status::ok();
}

Status setParallelPlan(ModuleOp module, const partition::ParallelPlan &plan,
                       const cost::Cluster &cluster) {
  // Without a step (the passes say so) the plan is still checked, against a model that
  // constrains nothing: only a well-formed plan can become #ap.parallel.
  partition::PlanContext context;
  context.devices = cluster.devices();
  context.cluster = cluster.spec;
  context.batch = context.seqLen = context.heads = context.kvHeads = context.vocab = 0;
  context.ffn = 0;
  context.layers = INT64_MAX;
  if (auto fn = findEntryFunction(module); succeeded(fn)) {
    auto stepContext = partition::planContextOf(*fn, cluster.devices(), cluster.spec);
    if (!stepContext)
      return stepContext.status();
    context = *stepContext;
  }
  APC_RETURN_IF_ERROR(partition::validate(plan, context));
  module->setAttr(kParallelAttr, partition::toAttr(module.getContext(), plan));
  return Status::ok();
}

LogicalResult runPasses(ModuleOp module, const TrainStepOptions &options, Phase last,
                        bool timing, bool verify) {
  PassManager pm(module.getContext());
  pm.enableVerifier(verify);
  if (timing)
    pm.enableTiming();
  buildTrainStepPipeline(pm, options, last);
  return pm.run(module);
}

FailureOr<CompiledPlan> emitPlan(ModuleOp module, const PlanOptions &options) {
  FailureOr<LoweredStages> lowered = lowerStages(module);
  if (failed(lowered))
    return failure();
  CompiledPlan plan;
  for (const lowering::ExecProgram &program : lowered->programs)
    plan.stageArenas.push_back(program.arenaBytes);
  emit::PlanInfo info;
  info.cluster = options.cluster;
  info.backend = options.backend;
  info.padId = options.padId;
  info.search = options.search;
  // The prediction the plan records: the cost model on the cluster (docs/cost-model.md).
  auto cluster = cost::resolveCluster(options.cluster);
  if (!cluster)
    return lowered->first.emitError() << "emit: " << cluster.message();
  auto prediction = predictPlan(*lowered, *cluster);
  if (!prediction)
    return lowered->first.emitError() << "emit: the cost model: " << prediction.message();
  plan.prediction = std::move(*prediction);
  info.prediction = &plan.prediction;
  FailureOr<std::string> bytes = emit::emitPlan(lowered->programs, lowered->first, info);
  if (failed(bytes))
    return failure();
  plan.bytes = std::move(*bytes);
  return plan;
}

} // namespace apc::driver
