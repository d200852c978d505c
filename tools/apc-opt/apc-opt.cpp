// apc-opt: mlir-opt for APC's dialects and passes, used by the lit tests.
// Registers only what APC's IR contains (ap, func, shard), the ops' rules and APC's
// passes, not all of MLIR.
#include "compiler/driver/Compile.h"
#include "compiler/driver/TrainStepPipeline.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/CommandLine.h"

int main(int argc, char **argv) {
  // The options registered before mlir-opt's own are the linked LLVM libraries' globals
  // (AMDGPU, ARM, BPF, ... code generation): shown by --help-hidden only, so that --help
  // lists what applies to APC's IR (the passes, mlir-opt's and the printing options).
  for (auto &entry : llvm::cl::getRegisteredOptions())
    if (entry.first != "help" && entry.first != "help-hidden" &&
        entry.first != "version")
      entry.second->setHiddenFlag(llvm::cl::Hidden);
  apc::registerCompilerPasses();
  mlir::DialectRegistry registry;
  apc::driver::registerCompilerDialects(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "APC optimizer driver\n", registry));
}
