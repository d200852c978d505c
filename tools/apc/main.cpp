// apc: the APC compiler driver. Dispatches to one subcommand per job.
#include "tools/apc/Commands.h"

#include <cstdio>
#include <cstring>
#include <string>

static const char *kUsage =
    "apc: the APC compiler (automatic parallelism for LLM training)\n"
    "\n"
    "usage: apc <command> [args] (apc <command> --help for each)\n"
    "\n"
    "commands:\n"
    "  import llama3   trace a Hugging Face Llama 3 config.json into ap IR\n"
    "  compile         turn the imported forward + loss into the training step\n"
    "  plan            predict a plan's step time, throughput, MFU and memory (cost model)\n"
    "  calibrate       measure this machine (kernels, Gloo collectives) into a cluster file\n"
    "  explain         explain a compiled plan.fb: mesh, stages, layouts, collectives, memory\n"
    "  eval            run an ap IR function on the reference interpreter\n"
    "  data sample     write a synthetic tokenized dataset (Arrow IPC stream)\n"
    "  data tokenize   pre-tokenize a text dataset into an Arrow IPC stream of input_ids\n";

int main(int argc, char **argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  if (command == "import")
    return apc::tools::runImport(argc, argv, 2);
  if (command == "compile")
    return apc::tools::runCompile(argc, argv, 2);
  if (command == "plan")
    return apc::tools::runPlan(argc, argv, 2);
  if (command == "calibrate")
    return apc::tools::runCalibrate(argc, argv, 2);
  if (command == "explain")
    return apc::tools::runExplain(argc, argv, 2);
  if (command == "eval")
    return apc::tools::runEval(argc, argv, 2);
  if (command == "data")
    return apc::tools::runDataCommand(argc, argv, 2);
  std::fprintf(stderr, "apc: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 2;
}
