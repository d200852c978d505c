// Llama 3 written on the tracer: Hugging Face LlamaForCausalLM forward + causal-LM loss.
//
// The traced function is `train_step(params..., input_ids, labels) -> loss`. Parameters
// carry their Hugging Face names in `ap.name` and appear in the order of
// `model.named_parameters()`; with tied embeddings the LM head reuses
// `model.embed_tokens.weight` (there is no `lm_head.weight`). The config is attached to
// the function as the `ap.model` dictionary so that later phases can read it.
#pragma once

#include <functional>

#include "frontends/llama3/Llama3Config.h"
#include "frontends/trace/Tracer.h"

namespace apc::llama3 {

struct ImportOptions {
  int64_t batch = 1;
  int64_t seqLen = 1;
  trace::DType dtype = trace::DType::F32; // parameters and activations
};

// Refuses batch and sequence sizes whose activations APC cannot address (each tensor
// at most kMaxTensorBytes), naming the flags and the config field involved.
Status checkImportSizes(const Config &config, const ImportOptions &options);

// Checks the sizes (checkImportSizes) and traces the training step.
Result<mlir::OwningOpRef<mlir::ModuleOp>>
buildTrainStep(mlir::MLIRContext &context, const Config &config,
               const ImportOptions &options);

// The config a traced step records as `ap.model` (buildTrainStep writes it), read back:
// to trace the same model again with other sizes (the plan search's smaller stand-ins).
Result<Config> configFromModelAttr(mlir::DictionaryAttr model);

// For an imported step (`module`): a function tracing the same model again with `layers`
// decoder layers and `batch` sequences, the same sequence length and parameter dtype,
// into a context with the compiler's dialects (the plan search's stand-ins,
// compiler/search/PlanSearch.h). Null when the step is not one this frontend traced.
std::function<Result<mlir::OwningOpRef<mlir::ModuleOp>>(mlir::MLIRContext &context,
                                                        int64_t layers, int64_t batch)>
retracer(mlir::ModuleOp module);

} // namespace apc::llama3
