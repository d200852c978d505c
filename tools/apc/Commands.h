// The subcommands of `apc`. Each takes the full argv and the index of its first own
// argument, and returns the process exit code (0 ok, 1 bad input, 2 usage error).
#pragma once

namespace apc::tools {

int runImport(int argc, char **argv, int first);
int runEval(int argc, char **argv, int first);
int runCompile(int argc, char **argv, int first);
// `apc plan MODEL.mlir --cluster C --plan P`: the cost model's prediction of one plan.
int runPlan(int argc, char **argv, int first);
// `apc explain plan.fb`: a compiled plan in words (and its schedule as a picture).
int runExplain(int argc, char **argv, int first);
// `apc calibrate`: measures this machine and writes a cluster file (--cluster FILE).
int runCalibrate(int argc, char **argv, int first);
// `apc data <subcommand>`: argv[first] names the subcommand (sample, ...).
int runDataCommand(int argc, char **argv, int first);

} // namespace apc::tools
