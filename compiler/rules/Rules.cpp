#include "compiler/rules/Rules.h"

#include "compiler/rules/RuleModels.h"
#include "dialects/ap/IR/ApDialect.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"

namespace apc::rules {

void registerApRules(mlir::DialectRegistry &registry) {
  registry.addExtension(+[](mlir::MLIRContext *context, ap::ApDialect *) {
    attachDenseRules(context);
    attachElementwiseRules(context);
    attachShapeRules(context);
    attachEmbeddingRules(context);
    attachNormRules(context);
    attachAttentionRules(context);
    attachLossRules(context);
    attachOptimizerRules(context);
    attachPipelineRules(context);
  });
  registry.addExtension(+[](mlir::MLIRContext *context, mlir::shard::ShardDialect *) {
    attachCollectiveRules(context);
  });
}

} // namespace apc::rules
