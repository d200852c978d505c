#include "compiler/partition/ParallelPlan.h"

#include "compiler/support/EntryFunction.h"
#include "dialects/ap/IR/ApAttrs.h"
#include "dialects/ap/IR/ApDialect.h"

#include <vector>

namespace apc::partition {

ap::ParallelAttr toAttr(mlir::MLIRContext *context, const ParallelPlan &p) {
  ap::Recompute recompute = p.recompute == "full"        ? ap::Recompute::Full
                            : p.recompute == "selective" ? ap::Recompute::Selective
                                                         : ap::Recompute::None;
  // A module of func ops alone has not loaded the dialect the attribute belongs to.
  context->getOrLoadDialect<ap::ApDialect>();
  return ap::ParallelAttr::get(context, p.dp, p.tp, p.pp, p.cp, p.zero, p.sp, p.mb, p.vp, recompute,
                               p.recomputeStages, p.stages);
}

ParallelPlan fromAttr(ap::ParallelAttr a) {
  ParallelPlan p;
  p.dp = a.getDp();
  p.tp = a.getTp();
  p.pp = a.getPp();
  p.cp = a.getCp();
  p.zero = a.getZero();
  p.sp = a.getSp();
  p.mb = a.getMb();
  p.vp = a.getVp();
  p.recompute = ap::stringifyRecompute(a.getRecompute()).str();
  p.recomputeStages = a.getRecomputeStages();
  p.stages.assign(a.getStages().begin(), a.getStages().end());
  return p;
}

Result<PlanContext> planContextOf(mlir::func::FuncOp fn, int64_t devices,
                                  const std::string &cluster) {
  using R = Result<PlanContext>;
  PlanContext c;
  c.devices = devices;
  c.cluster = cluster;
  auto model = fn->getAttrOfType<mlir::DictionaryAttr>("ap.model");
  auto intOf = [&](const char *key, int64_t otherwise) {
    auto a = model ? model.getAs<mlir::IntegerAttr>(key) : mlir::IntegerAttr();
    return a ? a.getInt() : otherwise;
  };
  // Without a model every divisibility check passes (1 divides nothing but itself).
  c.heads = intOf("num_attention_heads", 0);
  c.kvHeads = intOf("num_key_value_heads", 0);
  c.ffn = intOf("intermediate_size", 0);
  c.layers = intOf("num_hidden_layers", INT64_MAX);
  c.vocab = intOf("vocab_size", 0);
  c.batch = 0;
  c.seqLen = 0;
  for (unsigned i = 0; i < fn.getNumArguments(); ++i)
    if (batchInput(fn, i) == ap::BatchInput::Tokens) {
      auto type = mlir::dyn_cast<mlir::RankedTensorType>(fn.getArgument(i).getType());
      if (!type || type.getRank() != 2)
        return R::error("argument '" + argName(fn, i) + "' must be a [batch, seq] tensor");
      c.batch = type.getDimSize(0);
      c.seqLen = type.getDimSize(1);
      break;
    }
  return c;
}

} // namespace apc::partition
