// The model itself, line for line with transformers' modeling_llama.py (eager path,
// no attention mask: right padding is masked out of the loss by the labels, and causal
// attention keeps pad tokens from influencing the real ones before them).
#include "frontends/llama3/Llama3Model.h"

#include "runtime/support/CheckedMath.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/MLIRContext.h"

namespace apc::llama3 {

using trace::DType;
using trace::Tensor;
using trace::Tracer;

namespace {

mlir::DictionaryAttr configAttr(mlir::MLIRContext &context, const Config &c) {
  mlir::Builder b(&context);
  llvm::SmallVector<mlir::NamedAttribute> fields = {
      b.getNamedAttr("architecture", b.getStringAttr("llama3")),
      b.getNamedAttr("hidden_size", b.getI64IntegerAttr(c.hiddenSize)),
      b.getNamedAttr("intermediate_size", b.getI64IntegerAttr(c.intermediateSize)),
      b.getNamedAttr("num_hidden_layers", b.getI64IntegerAttr(c.numHiddenLayers)),
      b.getNamedAttr("num_attention_heads", b.getI64IntegerAttr(c.numAttentionHeads)),
      b.getNamedAttr("num_key_value_heads", b.getI64IntegerAttr(c.numKeyValueHeads)),
      b.getNamedAttr("head_dim", b.getI64IntegerAttr(c.headDim)),
      b.getNamedAttr("vocab_size", b.getI64IntegerAttr(c.vocabSize)),
      b.getNamedAttr("max_position_embeddings", b.getI64IntegerAttr(c.maxPositionEmbeddings)),
      b.getNamedAttr("rope_theta", b.getF64FloatAttr(c.ropeTheta)),
      b.getNamedAttr("rms_norm_eps", b.getF64FloatAttr(c.rmsNormEps)),
      b.getNamedAttr("initializer_range", b.getF64FloatAttr(c.initializerRange)),
      b.getNamedAttr("tie_word_embeddings", b.getBoolAttr(c.tieWordEmbeddings)),
      b.getNamedAttr("rope_type", b.getStringAttr(c.ropeScaling ? c.ropeScaling->ropeType
                                                                : "default")),
  };
  if (c.ropeScaling) {
    fields.push_back(b.getNamedAttr("rope_factor", b.getF64FloatAttr(c.ropeScaling->factor)));
    fields.push_back(b.getNamedAttr("rope_low_freq_factor",
                                    b.getF64FloatAttr(c.ropeScaling->lowFreqFactor)));
    fields.push_back(b.getNamedAttr("rope_high_freq_factor",
                                    b.getF64FloatAttr(c.ropeScaling->highFreqFactor)));
    fields.push_back(b.getNamedAttr(
        "rope_original_max_position_embeddings",
        b.getI64IntegerAttr(c.ropeScaling->originalMaxPositionEmbeddings)));
  }
  return b.getDictionaryAttr(fields);
}

} // namespace

Result<Config> configFromModelAttr(mlir::DictionaryAttr model) {
  using R = Result<Config>;
  if (!model)
    return R::error("the step has no ap.model");
  auto str = model.getAs<mlir::StringAttr>("architecture");
  if (!str || str.getValue() != "llama3")
    return R::error("ap.model is not a llama3 model");
  Config c;
  bool missing = false;
  auto integer = [&](llvm::StringRef key, int64_t &out) {
    if (auto a = model.getAs<mlir::IntegerAttr>(key))
      out = a.getInt();
    else
      missing = true;
  };
  auto real = [&](llvm::StringRef key, double &out) {
    if (auto a = model.getAs<mlir::FloatAttr>(key))
      out = a.getValueAsDouble();
    else
      missing = true;
  };
  integer("hidden_size", c.hiddenSize);
  integer("intermediate_size", c.intermediateSize);
  integer("num_hidden_layers", c.numHiddenLayers);
  integer("num_attention_heads", c.numAttentionHeads);
  integer("num_key_value_heads", c.numKeyValueHeads);
  integer("head_dim", c.headDim);
  integer("vocab_size", c.vocabSize);
  integer("max_position_embeddings", c.maxPositionEmbeddings);
  real("rope_theta", c.ropeTheta);
  real("rms_norm_eps", c.rmsNormEps);
  real("initializer_range", c.initializerRange);
  if (auto tie = model.getAs<mlir::BoolAttr>("tie_word_embeddings"))
    c.tieWordEmbeddings = tie.getValue();
  else
    missing = true;
  auto ropeType = model.getAs<mlir::StringAttr>("rope_type");
  if (ropeType && ropeType.getValue() != "default") {
    RopeScaling r;
    r.ropeType = ropeType.getValue().str();
    real("rope_factor", r.factor);
    real("rope_low_freq_factor", r.lowFreqFactor);
    real("rope_high_freq_factor", r.highFreqFactor);
    integer("rope_original_max_position_embeddings", r.originalMaxPositionEmbeddings);
    c.ropeScaling = r;
  }
  if (missing)
    return R::error("ap.model lacks a field of the llama3 config");
  return c;
}

namespace {

struct LayerWeights {
  Tensor q, k, v, o, gate, up, down, inputNorm, postAttentionNorm;
};

// Declared in named_parameters() order: attention, mlp, then the two norms. Megatron's
// layouts: q, k, v, gate and up split their outputs (column-parallel), o and down their
// inputs (row-parallel), so each half of a block needs one reduction.
LayerWeights declareLayer(Tracer &t, const Config &c, int64_t layer, DType dtype) {
  constexpr Tracer::Layout Column = Tracer::Layout::Column, Row = Tracer::Layout::Row,
                           Whole = Tracer::Layout::Replicated;
  Tracer::Place in{layer};
  std::string p = "model.layers." + std::to_string(layer) + ".";
  int64_t h = c.hiddenSize, qSize = c.numAttentionHeads * c.headDim,
          kvSize = c.numKeyValueHeads * c.headDim, ffn = c.intermediateSize;
  LayerWeights w;
  w.q = t.parameter(p + "self_attn.q_proj.weight", {qSize, h}, dtype, Column, in);
  w.k = t.parameter(p + "self_attn.k_proj.weight", {kvSize, h}, dtype, Column, in);
  w.v = t.parameter(p + "self_attn.v_proj.weight", {kvSize, h}, dtype, Column, in);
  w.o = t.parameter(p + "self_attn.o_proj.weight", {h, qSize}, dtype, Row, in);
  w.gate = t.parameter(p + "mlp.gate_proj.weight", {ffn, h}, dtype, Column, in);
  w.up = t.parameter(p + "mlp.up_proj.weight", {ffn, h}, dtype, Column, in);
  w.down = t.parameter(p + "mlp.down_proj.weight", {h, ffn}, dtype, Row, in);
  w.inputNorm = t.parameter(p + "input_layernorm.weight", {h}, dtype, Whole, in);
  w.postAttentionNorm =
      t.parameter(p + "post_attention_layernorm.weight", {h}, dtype, Whole, in);
  return w;
}

Tensor attentionBlock(Tracer &t, const Config &c, const LayerWeights &w, Tensor x,
                      const trace::RopeParams &rope) {
  Tracer::Scope scope(t, "self_attn");
  int64_t b = x.dim(0), s = x.dim(1);
  Tensor q, k, v;
  {
    Tracer::Scope s1(t, "q_proj");
    q = t.reshape(t.linear(x, w.q), {b, s, c.numAttentionHeads, c.headDim});
  }
  {
    Tracer::Scope s1(t, "k_proj");
    k = t.reshape(t.linear(x, w.k), {b, s, c.numKeyValueHeads, c.headDim});
  }
  {
    Tracer::Scope s1(t, "v_proj");
    v = t.reshape(t.linear(x, w.v), {b, s, c.numKeyValueHeads, c.headDim});
  }
  {
    Tracer::Scope s1(t, "rotary_emb");
    q = t.rope(q, rope);
    k = t.rope(k, rope);
  }
  Tensor a = t.attention(q, k, v);
  Tracer::Scope s1(t, "o_proj");
  return t.linear(t.reshape(a, {b, s, c.numAttentionHeads * c.headDim}), w.o);
}

Tensor mlpBlock(Tracer &t, const LayerWeights &w, Tensor x) {
  Tracer::Scope scope(t, "mlp");
  Tensor gate, up;
  {
    Tracer::Scope s1(t, "gate_proj");
    gate = t.silu(t.linear(x, w.gate));
  }
  {
    Tracer::Scope s1(t, "up_proj");
    up = t.linear(x, w.up);
  }
  Tracer::Scope s1(t, "down_proj");
  return t.linear(t.mul(gate, up), w.down);
}

} // namespace

Status checkImportSizes(const Config &c, const ImportOptions &options) {
  if (options.batch <= 0 || options.seqLen <= 0)
    return Status::error("--batch and --seq-len must be positive");
  // The widest activation rows of a token, by what the message blames.
  struct Row {
    const char *what;
    int64_t width;
  };
  const Row rows[] = {{"vocab_size (the logits)", c.vocabSize},
                      {"intermediate_size (the MLP)", c.intermediateSize},
                      {"num_attention_heads x head_dim (attention)",
                       c.numAttentionHeads * c.headDim},
                      {"hidden_size", c.hiddenSize}};
  for (const Row &row : rows) {
    std::optional<int64_t> bytes = checkedProduct(
        std::initializer_list<int64_t>{options.batch, options.seqLen, row.width}, 4);
    if (!bytes || *bytes > kMaxTensorBytes)
      return Status::error("--batch " + std::to_string(options.batch) + " x --seq-len " +
                           std::to_string(options.seqLen) + " x " + row.what +
                           " makes an activation larger than the " + kMaxTensorBytesText +
                           " APC addresses");
  }
  return Status::ok();
}

Result<mlir::OwningOpRef<mlir::ModuleOp>>
buildTrainStep(mlir::MLIRContext &context, const Config &c, const ImportOptions &options) {
  using ResultT = Result<mlir::OwningOpRef<mlir::ModuleOp>>;
  APC_RETURN_IF_ERROR(checkImportSizes(c, options));
  if (options.dtype != DType::F32 && options.dtype != DType::BF16)
    return ResultT::error("dtype must be f32 or bf16");
  Tracer t(context, "train_step");
  t.setFunctionAttr("ap.model", configAttr(context, c));
  DType dtype = options.dtype;

  trace::RopeParams rope;
  rope.theta = c.ropeTheta;
  if (c.ropeScaling) {
    rope.ropeType = c.ropeScaling->ropeType;
    rope.factor = c.ropeScaling->factor;
    rope.lowFreqFactor = c.ropeScaling->lowFreqFactor;
    rope.highFreqFactor = c.ropeScaling->highFreqFactor;
    rope.originalMaxPositionEmbeddings = c.ropeScaling->originalMaxPositionEmbeddings;
  }

  Tensor embed = t.parameter("model.embed_tokens.weight", {c.vocabSize, c.hiddenSize}, dtype,
                             Tracer::Layout::Vocab);
  std::vector<LayerWeights> layers;
  for (int64_t i = 0; i < c.numHiddenLayers; ++i)
    layers.push_back(declareLayer(t, c, i, dtype));
  const Tracer::Place head{-1, true};
  Tensor finalNorm = t.parameter("model.norm.weight", {c.hiddenSize}, dtype,
                                 Tracer::Layout::Replicated, head);
  Tensor lmHead = c.tieWordEmbeddings
                      ? embed
                      : t.parameter("lm_head.weight", {c.vocabSize, c.hiddenSize}, dtype,
                                    Tracer::Layout::Vocab, head);
  Tensor inputIds =
      t.input("input_ids", {options.batch, options.seqLen}, DType::I64, Tracer::Batch::Tokens);
  Tensor labels =
      t.input("labels", {options.batch, options.seqLen}, DType::I64, Tracer::Batch::Labels);

  Tensor x;
  {
    Tracer::Scope scope(t, "model.embed_tokens");
    x = t.embedding(embed, inputIds);
  }
  for (int64_t i = 0; i < c.numHiddenLayers; ++i) {
    Tracer::Scope scope(t, "model.layers." + std::to_string(i));
    const LayerWeights &w = layers[i];
    Tensor h;
    {
      Tracer::Scope s1(t, "input_layernorm");
      h = t.rmsNorm(x, w.inputNorm, c.rmsNormEps);
    }
    x = t.add(x, attentionBlock(t, c, w, h, rope));
    {
      Tracer::Scope s1(t, "post_attention_layernorm");
      h = t.rmsNorm(x, w.postAttentionNorm, c.rmsNormEps);
    }
    x = t.add(x, mlpBlock(t, w, h));
  }
  {
    Tracer::Scope scope(t, "model.norm");
    x = t.rmsNorm(x, finalNorm, c.rmsNormEps);
  }
  Tensor logits;
  {
    Tracer::Scope scope(t, "lm_head");
    logits = t.linear(x, lmHead);
    if (dtype != DType::F32) // transformers upcasts logits to f32 for the loss
      logits = t.cast(logits, DType::F32);
  }
  Tracer::Scope scope(t, "loss");
  Tensor loss = t.crossEntropy(logits, t.shiftLabels(labels));
  t.output("loss", loss);
  return t.finish();
}

std::function<Result<mlir::OwningOpRef<mlir::ModuleOp>>(mlir::MLIRContext &context,
                                                        int64_t layers, int64_t batch)>
retracer(mlir::ModuleOp module) {
  auto step = module.lookupSymbol<mlir::func::FuncOp>("train_step");
  if (!step)
    return nullptr;
  auto config = configFromModelAttr(step->getAttrOfType<mlir::DictionaryAttr>("ap.model"));
  if (!config)
    return nullptr;
  ImportOptions options;
  bool haveIds = false, haveParameter = false;
  for (unsigned i = 0; i < step.getNumArguments(); ++i) {
    auto type = mlir::dyn_cast<mlir::RankedTensorType>(step.getArgument(i).getType());
    auto name = step.getArgAttrOfType<mlir::StringAttr>(i, "ap.name");
    auto role = step.getArgAttrOfType<mlir::StringAttr>(i, "ap.role");
    if (type && name && name.getValue() == "input_ids" && type.getRank() == 2) {
      options.batch = type.getDimSize(0);
      options.seqLen = type.getDimSize(1);
      haveIds = true;
    }
    if (type && role && role.getValue() == "parameter" && !haveParameter) {
      options.dtype = type.getElementType().isBF16() ? trace::DType::BF16 : trace::DType::F32;
      haveParameter = true;
    }
  }
  if (!haveIds || !haveParameter)
    return nullptr;
  Config base = *config;
  return [base, options](mlir::MLIRContext &context, int64_t layers,
                         int64_t batch) -> Result<mlir::OwningOpRef<mlir::ModuleOp>> {
    Config c = base;
    c.numHiddenLayers = layers;
    ImportOptions sized = options;
    sized.batch = batch;
    return buildTrainStep(context, c, sized);
  };
}

} // namespace apc::llama3
