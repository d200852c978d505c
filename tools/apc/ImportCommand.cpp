// `apc import llama3`: config.json -> ap IR of the training step's forward and loss.
#include "tools/apc/Commands.h"

#include "frontends/llama3/Llama3Model.h"
#include "runtime/support/AtomicFile.h"
#include "runtime/support/Flags.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>

namespace apc::tools {

static std::string withThousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

int runImport(int argc, char **argv, int first) {
  std::string model, configPath, output = "-", dtypeName = "f32";
  int64_t batch = 0, seqLen = 0;
  FlagParser flags("apc import",
                   "trace a model into ap IR (the training step's forward pass and loss)",
                   "apc import llama3 --config config.json --batch B --seq-len S "
                   "[--dtype f32|bf16] [-o llama3.mlir]");
  flags.addPositional("MODEL", &model, "model family; only 'llama3' (Llama 3, 3.1, 3.2)");
  flags.addString("config", &configPath, "Hugging Face config.json of the model", "FILE");
  flags.addInt("batch", &batch, "global batch size (sequences per step)", "B");
  flags.addInt("seq-len", &seqLen, "tokens per sequence", "S");
  flags.addString("dtype", &dtypeName, "parameter and activation type: f32 (default) or bf16",
                  "f32|bf16");
  flags.addString("o", &output, "output file ('-' or absent: stdout)", "FILE");
  flags.require("config");
  flags.require("batch");
  flags.require("seq-len");
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;
  if (model != "llama3") {
    std::fprintf(stderr, "apc import: unknown model '%s' (supported: llama3)\n", model.c_str());
    return 2;
  }
  if (batch <= 0 || seqLen <= 0) {
    std::fprintf(stderr, "apc import: --batch and --seq-len must be positive\n");
    return 2;
  }
  llama3::ImportOptions options;
  options.batch = batch;
  options.seqLen = seqLen;
  if (dtypeName == "f32")
    options.dtype = trace::DType::F32;
  else if (dtypeName == "bf16")
    options.dtype = trace::DType::BF16;
  else {
    std::fprintf(stderr, "apc import: --dtype must be f32 or bf16, got '%s'\n",
                 dtypeName.c_str());
    return 2;
  }

  Result<llama3::Config> config = llama3::readConfig(configPath);
  if (!config) {
    std::fprintf(stderr, "apc import: %s\n", config.message().c_str());
    return 1;
  }
  if (Status s = llama3::checkImportSizes(*config, options); !s) {
    std::fprintf(stderr, "apc import: %s (%s)\n", s.message().c_str(), configPath.c_str());
    return 2;
  }
  if (seqLen > config->maxPositionEmbeddings)
    std::fprintf(stderr,
                 "apc import: warning: --seq-len %lld exceeds max_position_embeddings "
                 "%lld of %s\n",
                 (long long)seqLen, (long long)config->maxPositionEmbeddings,
                 configPath.c_str());

  mlir::MLIRContext context;
  auto module = llama3::buildTrainStep(context, *config, options);
  if (!module) {
    std::fprintf(stderr, "apc import: %s: %s\n", configPath.c_str(), module.message().c_str());
    return 1;
  }

  std::string text;
  llvm::raw_string_ostream os(text);
  (*module)->print(os);
  os.flush();
  if (output == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else if (Status s = writeFileAtomically(output, text); !s) {
    std::fprintf(stderr, "apc import: %s\n", s.message().c_str());
    return 1;
  }

  // Counted from the IR itself: the sum of the parameter arguments' sizes.
  int64_t opCount = 0, parameterCount = 0;
  (*module)->walk([&](mlir::Operation *) { ++opCount; });
  (*module)->walk([&](mlir::func::FuncOp fn) {
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      auto role = fn.getArgAttrOfType<mlir::StringAttr>(i, "ap.role");
      if (role && role.getValue() == "parameter")
        parameterCount +=
            mlir::cast<mlir::RankedTensorType>(fn.getArgument(i).getType()).getNumElements();
    }
  });
  FILE *summary = output == "-" ? stderr : stdout;
  std::fprintf(summary,
               "imported llama3 from %s: %lld layers, hidden %lld, %lld heads (%lld kv, "
               "head_dim %lld), vocab %lld, rope %s%s\n"
               "  %s parameters, batch %lld x seq %lld, %s, %lld ops; verified%s%s\n",
               configPath.c_str(), (long long)config->numHiddenLayers,
               (long long)config->hiddenSize, (long long)config->numAttentionHeads,
               (long long)config->numKeyValueHeads, (long long)config->headDim,
               (long long)config->vocabSize,
               config->ropeScaling ? config->ropeScaling->ropeType.c_str() : "default",
               config->tieWordEmbeddings ? ", tied embeddings" : "",
               withThousands(parameterCount).c_str(), (long long)batch,
               (long long)seqLen, dtypeName.c_str(), (long long)opCount,
               output == "-" ? "" : "; wrote ", output == "-" ? "" : output.c_str());
  return 0;
}

} // namespace apc::tools
