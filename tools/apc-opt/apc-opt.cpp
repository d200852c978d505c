// apc-opt: mlir-opt for APC's dialects and passes, used by the lit tests.
// Registers only what APC's IR contains (ap, func, shard), the ops' rules and APC's
// passes, not all of MLIR.
#include "compiler/driver/Compile.h"
#include "compiler/driver/TrainStepPipeline.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  apc::registerCompilerPasses();
  mlir::DialectRegistry registry;
  apc::driver::registerCompilerDialects(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "APC optimizer driver\n", registry));
}
