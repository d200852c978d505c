// apc-opt: mlir-opt for APC's dialects and passes, used by the lit tests.
// Registers only what APC's IR contains (ap, func) and APC's passes, not all of MLIR.
#include "compiler/driver/TrainStepPipeline.h"
#include "compiler/rules/Rules.h"
#include "dialects/ap/IR/ApDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  apc::registerCompilerPasses();
  mlir::DialectRegistry registry;
  registry.insert<apc::ap::ApDialect, mlir::func::FuncDialect, mlir::shard::ShardDialect>();
  apc::rules::registerApRules(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "APC optimizer driver\n", registry));
}
