#include "compiler/driver/Predict.h"

#include "compiler/lowering/LowerToExec.h"
#include "compiler/support/EntryFunction.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <set>

namespace apc::driver {

using namespace mlir;

FailureOr<LoweredStages> lowerStages(ModuleOp module) {
  // One function per pipeline stage (ap.stage), or the step itself.
  std::vector<func::FuncOp> stageFns;
  for (auto f : module.getOps<func::FuncOp>())
    if (f->hasAttr("ap.stage"))
      stageFns.push_back(f);
  llvm::sort(stageFns, [](func::FuncOp a, func::FuncOp b) {
    return a->getAttrOfType<IntegerAttr>("ap.stage").getInt() <
           b->getAttrOfType<IntegerAttr>("ap.stage").getInt();
  });
  if (stageFns.empty()) {
    FailureOr<func::FuncOp> fn = findEntryFunction(module);
    if (failed(fn))
      return failure();
    stageFns.push_back(*fn);
  }
  LoweredStages lowered;
  lowered.first = stageFns.front();
  for (func::FuncOp f : stageFns) {
    FailureOr<lowering::ExecProgram> program = lowering::lowerToExec(f);
    if (failed(program))
      return failure();
    lowered.programs.push_back(std::move(*program));
  }
  return lowered;
}

cost::ModelFigures modelShapeOf(func::FuncOp step) {
  cost::ModelFigures m;
  auto model = step->getAttrOfType<DictionaryAttr>("ap.model");
  auto get = [&](StringRef key) -> int64_t {
    auto a = model ? model.getAs<IntegerAttr>(key) : IntegerAttr();
    return a ? a.getInt() : 0;
  };
  m.layers = get("num_hidden_layers");
  m.heads = get("num_attention_heads");
  m.headDim = get("head_dim");
  if (m.headDim == 0 && m.heads > 0)
    m.headDim = get("hidden_size") / m.heads;
  return m;
}

cost::ModelFigures modelFiguresOf(func::FuncOp step,
                                  const std::vector<lowering::ExecProgram> &programs) {
  cost::ModelFigures m = modelShapeOf(step);
  // Every trained parameter once (a tied embedding is on the first and last stage).
  std::set<std::string> seen;
  for (const lowering::ExecProgram &p : programs)
    for (const lowering::ExecParameter &param : p.parameters)
      if (seen.insert(param.name).second) {
        double n = 1;
        for (int64_t d : param.shape)
          n *= double(d);
        m.parameters += n;
      }
  // The token ids hold one data-parallel share of the step's sequences.
  for (const lowering::ExecProgram &p : programs)
    for (const lowering::ExecBuffer &b : p.buffers)
      if (b.binding == lowering::Binding::InputIds && b.shape.size() == 2) {
        int64_t dp = 1;
        for (size_t a = 0; a < p.meshAxes.size() && a < p.meshShape.size(); ++a)
          if (p.meshAxes[a] == "dp")
            dp = p.meshShape[a];
        m.globalBatch = b.shape[0] * dp;
        m.seqLen = b.shape[1];
      }
  auto precision = step->getAttrOfType<StringAttr>("ap.precision");
  m.computeDType = precision && precision.getValue() == "bf16" ? "bf16" : "f32";
  return m;
}

Result<cost::Prediction> predictPlan(const LoweredStages &stages, const cost::Cluster &cluster,
                                     bool byKernel) {
  return cost::predict(stages.programs, modelFiguresOf(stages.first, stages.programs), cluster,
                       byKernel);
}

} // namespace apc::driver
