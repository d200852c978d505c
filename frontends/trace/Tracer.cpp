// Implementation of the tracer. Result types are inferred here with simple rules;
// whether the inputs are consistent is decided by the op's verifier, so the dialect
// stays the one source of truth for shape rules.
#include "frontends/trace/Tracer.h"

#include "dialects/ap/IR/ApAttrs.h"
#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

#include <numeric>

using namespace mlir;

namespace apc::trace {

static RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

std::vector<int64_t> Tensor::shape() const {
  if (!valid())
    return {};
  auto s = typeOf(value_).getShape();
  return {s.begin(), s.end()};
}

int64_t Tensor::rank() const { return valid() ? typeOf(value_).getRank() : 0; }

int64_t Tensor::dim(int64_t i) const {
  int64_t r = rank();
  if (i < 0)
    i += r;
  if (i < 0 || i >= r)
    return 0;
  return typeOf(value_).getDimSize(i);
}

DType Tensor::dtype() const {
  if (!valid())
    return DType::F32;
  Type t = typeOf(value_).getElementType();
  if (t.isBF16()) return DType::BF16;
  if (t.isF16()) return DType::F16;
  if (t.isSignlessInteger(32)) return DType::I32;
  if (t.isSignlessInteger(64)) return DType::I64;
  return DType::F32;
}

Tracer::Tracer(MLIRContext &context, const std::string &functionName)
    : context_(context) {
  context_.loadDialect<ap::ApDialect, func::FuncDialect>();
  builder_ = std::make_unique<OpBuilder>(&context_);
  Location loc = NameLoc::get(builder_->getStringAttr(functionName));
  module_ = ModuleOp::create(loc);
  builder_->setInsertionPointToEnd(module_->getBody());
  auto fn = func::FuncOp::create(*builder_, loc, functionName,
                                 builder_->getFunctionType({}, {}));
  function_ = fn.getOperation();
  body_ = fn.addEntryBlock();
  builder_->setInsertionPointToEnd(body_);
}

Tracer::~Tracer() = default;

Tracer::Scope::Scope(Tracer &tracer, const std::string &name) : tracer_(tracer) {
  tracer_.scopes_.push_back(name);
}
Tracer::Scope::~Scope() { tracer_.scopes_.pop_back(); }

Location Tracer::currentLocation() {
  if (scopes_.empty())
    return builder_->getUnknownLoc();
  std::string name;
  for (const std::string &s : scopes_)
    name += (name.empty() ? "" : ".") + s;
  return NameLoc::get(builder_->getStringAttr(name));
}

Type Tracer::elementType(DType dtype) {
  switch (dtype) {
  case DType::F32: return builder_->getF32Type();
  case DType::BF16: return builder_->getBF16Type();
  case DType::F16: return builder_->getF16Type();
  case DType::I32: return builder_->getI32Type();
  case DType::I64: return builder_->getI64Type();
  }
  return {};
}

Type Tracer::tensorType(const std::vector<int64_t> &shape, Type element) {
  return RankedTensorType::get(shape, element);
}

void Tracer::fail(const std::string &message) {
  if (!error_)
    error_ = message;
}

bool Tracer::anyPoisoned(std::initializer_list<Tensor> tensors) {
  if (error_)
    return true;
  for (const Tensor &t : tensors)
    if (!t.valid()) {
      fail("a tensor used before it was defined (empty Tensor)");
      return true;
    }
  return false;
}

Tensor Tracer::addArgument(const std::string &name, const char *role,
                           std::vector<int64_t> shape, DType dtype,
                           ArrayRef<NamedAttribute> marks) {
  for (int64_t d : shape)
    if (d <= 0) {
      std::string dims;
      for (int64_t x : shape)
        dims += (dims.empty() ? "" : ", ") + std::to_string(x);
      fail(std::string(role) + " '" + name + "' has a non-positive dim in shape [" +
           dims + "]");
      return Tensor();
    }
  Value arg = body_->addArgument(tensorType(shape, elementType(dtype)),
                                 NameLoc::get(builder_->getStringAttr(name)));
  SmallVector<NamedAttribute> attrs = {
      builder_->getNamedAttr("ap.name", builder_->getStringAttr(name)),
      builder_->getNamedAttr("ap.role", builder_->getStringAttr(role))};
  attrs.append(marks.begin(), marks.end());
  argAttrs_.push_back(builder_->getDictionaryAttr(attrs));
  return Tensor(arg);
}

Tensor Tracer::parameter(const std::string &name, std::vector<int64_t> shape, DType dtype,
                         Layout layout, Place place) {
  SmallVector<NamedAttribute> marks;
  auto mk = [&](ap::TensorLayout l) {
    marks.push_back(
        builder_->getNamedAttr("ap.layout", ap::TensorLayoutAttr::get(&context_, l)));
  };
  switch (layout) {
  case Layout::Replicated: break;
  case Layout::Column: mk(ap::TensorLayout::Column); break;
  case Layout::Row: mk(ap::TensorLayout::Row); break;
  case Layout::Vocab: mk(ap::TensorLayout::Vocab); break;
  }
  if (place.decoderLayer >= 0)
    marks.push_back(
        builder_->getNamedAttr("ap.layer", builder_->getI64IntegerAttr(place.decoderLayer)));
  if (place.head)
    marks.push_back(builder_->getNamedAttr("ap.head", builder_->getUnitAttr()));
  return addArgument(name, "parameter", std::move(shape), dtype, marks);
}

Tensor Tracer::input(const std::string &name, std::vector<int64_t> shape, DType dtype,
                     Batch batch) {
  SmallVector<NamedAttribute> marks;
  if (batch != Batch::None)
    marks.push_back(builder_->getNamedAttr(
        "ap.batch", ap::BatchInputAttr::get(&context_, batch == Batch::Tokens
                                                             ? ap::BatchInput::Tokens
                                                             : ap::BatchInput::Labels)));
  return addArgument(name, "input", std::move(shape), dtype, marks);
}

void Tracer::output(const std::string &name, Tensor value) {
  if (anyPoisoned({value}))
    return;
  results_.push_back(value.value());
  resultAttrs_.push_back(builder_->getDictionaryAttr(
      {builder_->getNamedAttr("ap.name", builder_->getStringAttr(name))}));
}

void Tracer::setFunctionAttr(const std::string &name, Attribute value) {
  function_->setAttr(name, value);
}

Tensor Tracer::checked(Operation *op) {
  std::string message;
  {
    ScopedDiagnosticHandler handler(&context_, [&](Diagnostic &diag) {
      if (message.empty())
        message = diag.str();
      return success();
    });
    if (succeeded(verify(op, /*verifyRecursively=*/false)))
      return Tensor(op->getResult(0));
  }
  std::string where;
  llvm::raw_string_ostream os(where);
  os << op->getLoc();
  fail("shape error at " + where + ": '" + op->getName().getStringRef().str() +
       "' " + (message.rfind("'", 0) == 0 ? message.substr(message.find(' ') + 1)
                                           : message));
  op->erase();
  return Tensor();
}

// Shape helpers: defensive, since the verifier (not these) judges the inputs.
static std::vector<int64_t> dropLast(const std::vector<int64_t> &s) {
  return s.empty() ? s : std::vector<int64_t>(s.begin(), s.end() - 1);
}

Tensor Tracer::embedding(Tensor weight, Tensor ids) {
  if (anyPoisoned({weight, ids}))
    return {};
  auto shape = ids.shape();
  shape.push_back(weight.dim(-1));
  Type type = tensorType(shape, typeOf(weight.value()).getElementType());
  return checked(ap::EmbeddingOp::create(*builder_, currentLocation(), type,
                                         weight.value(), ids.value()));
}

Tensor Tracer::linear(Tensor input, Tensor weight) {
  if (anyPoisoned({input, weight}))
    return {};
  auto shape = dropLast(input.shape());
  shape.push_back(weight.dim(0));
  Type type = tensorType(shape, typeOf(input.value()).getElementType());
  return checked(ap::LinearOp::create(*builder_, currentLocation(), type,
                                      input.value(), weight.value()));
}

Tensor Tracer::matmul(Tensor lhs, Tensor rhs, bool transposeLhs, bool transposeRhs) {
  if (anyPoisoned({lhs, rhs}))
    return {};
  auto shape = lhs.shape();
  if (shape.size() >= 2 && rhs.rank() >= 2) {
    shape[shape.size() - 2] = transposeLhs ? lhs.dim(-1) : lhs.dim(-2);
    shape.back() = transposeRhs ? rhs.dim(-2) : rhs.dim(-1);
  }
  Type type = tensorType(shape, typeOf(lhs.value()).getElementType());
  return checked(ap::MatmulOp::create(*builder_, currentLocation(), type, lhs.value(),
                                      rhs.value(), transposeLhs, transposeRhs));
}

Tensor Tracer::rmsNorm(Tensor input, Tensor weight, double epsilon) {
  if (anyPoisoned({input, weight}))
    return {};
  return checked(ap::RmsNormOp::create(*builder_, currentLocation(),
                                       input.value().getType(), input.value(),
                                       weight.value(),
                                       builder_->getF64FloatAttr(epsilon)));
}

Tensor Tracer::rope(Tensor input, const RopeParams &params) {
  if (anyPoisoned({input}))
    return {};
  auto op = ap::RopeOp::create(*builder_, currentLocation(), input.value().getType(),
                               input.value(), builder_->getF64FloatAttr(params.theta),
                               builder_->getStringAttr(params.ropeType),
                               /*factor=*/nullptr, /*low_freq_factor=*/nullptr,
                               /*high_freq_factor=*/nullptr,
                               /*original_max_position_embeddings=*/nullptr,
                               builder_->getI64IntegerAttr(0), /*seq_shard_axis=*/nullptr,
                               /*seq_shard_parts=*/nullptr);
  if (params.ropeType != "default") {
    op.setFactorAttr(builder_->getF64FloatAttr(params.factor));
    op.setLowFreqFactorAttr(builder_->getF64FloatAttr(params.lowFreqFactor));
    op.setHighFreqFactorAttr(builder_->getF64FloatAttr(params.highFreqFactor));
    op.setOriginalMaxPositionEmbeddingsAttr(
        builder_->getI64IntegerAttr(params.originalMaxPositionEmbeddings));
  }
  return checked(op);
}

Tensor Tracer::attention(Tensor query, Tensor key, Tensor value,
                         std::optional<double> scale, bool causal) {
  if (anyPoisoned({query, key, value}))
    return {};
  FloatAttr scaleAttr = scale ? builder_->getF64FloatAttr(*scale) : FloatAttr();
  return checked(ap::AttentionOp::create(*builder_, currentLocation(),
                                         query.value().getType(), query.value(),
                                         key.value(), value.value(), scaleAttr,
                                         builder_->getBoolAttr(causal),
                                         /*seq_shard_axis=*/nullptr,
                                         /*seq_shard_parts=*/nullptr));
}

Tensor Tracer::silu(Tensor input) {
  if (anyPoisoned({input}))
    return {};
  return checked(ap::SiluOp::create(*builder_, currentLocation(), input.value().getType(),
                                    input.value()));
}

Tensor Tracer::add(Tensor lhs, Tensor rhs) {
  if (anyPoisoned({lhs, rhs}))
    return {};
  return checked(ap::AddOp::create(*builder_, currentLocation(), lhs.value().getType(),
                                   lhs.value(), rhs.value()));
}

Tensor Tracer::mul(Tensor lhs, Tensor rhs) {
  if (anyPoisoned({lhs, rhs}))
    return {};
  return checked(ap::MulOp::create(*builder_, currentLocation(), lhs.value().getType(),
                                   lhs.value(), rhs.value()));
}

Tensor Tracer::cast(Tensor input, DType dtype) {
  if (anyPoisoned({input}))
    return {};
  Type type = tensorType(input.shape(), elementType(dtype));
  return checked(ap::CastOp::create(*builder_, currentLocation(), type, input.value()));
}

Tensor Tracer::reshape(Tensor input, std::vector<int64_t> shape) {
  if (anyPoisoned({input}))
    return {};
  int64_t known = 1, inferred = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && inferred < 0)
      inferred = int64_t(i);
    else
      known *= shape[i];
  }
  if (inferred >= 0) {
    auto in = input.shape();
    int64_t total = std::accumulate(in.begin(), in.end(), int64_t(1),
                                    std::multiplies<int64_t>());
    shape[inferred] = known > 0 && total % known == 0 ? total / known : 0;
  }
  for (int64_t d : shape)
    if (d < 0) { // a second -1 or a negative dim: not a shape the verifier can judge
      fail("shape error at " + [&] {
        std::string s;
        llvm::raw_string_ostream os(s);
        os << currentLocation();
        return s;
      }() + ": 'ap.reshape' target shape has a negative dim");
      return {};
    }
  Type type = tensorType(shape, typeOf(input.value()).getElementType());
  return checked(ap::ReshapeOp::create(*builder_, currentLocation(), type, input.value()));
}

Tensor Tracer::transpose(Tensor input, std::vector<int64_t> permutation) {
  if (anyPoisoned({input}))
    return {};
  std::vector<int64_t> shape;
  for (int64_t d : permutation)
    shape.push_back(input.dim(d < 0 ? input.rank() : d)); // 0 when out of range
  Type type = tensorType(shape, typeOf(input.value()).getElementType());
  return checked(ap::TransposeOp::create(*builder_, currentLocation(), type,
                                         input.value(),
                                         builder_->getDenseI64ArrayAttr(permutation)));
}

Tensor Tracer::reduceSum(Tensor input, std::vector<int64_t> dims, bool keepDims) {
  if (anyPoisoned({input}))
    return {};
  std::vector<int64_t> shape;
  for (int64_t d = 0; d < input.rank(); ++d) {
    bool reduced = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!reduced)
      shape.push_back(input.dim(d));
    else if (keepDims)
      shape.push_back(1);
  }
  Type type = tensorType(shape, typeOf(input.value()).getElementType());
  return checked(ap::ReduceSumOp::create(*builder_, currentLocation(), type,
                                         input.value(),
                                         builder_->getDenseI64ArrayAttr(dims),
                                         builder_->getBoolAttr(keepDims)));
}

Tensor Tracer::shiftLabels(Tensor labels, int64_t ignoreIndex) {
  if (anyPoisoned({labels}))
    return {};
  return checked(ap::ShiftLabelsOp::create(*builder_, currentLocation(),
                                           labels.value().getType(), labels.value(),
                                           builder_->getI64IntegerAttr(ignoreIndex)));
}

Tensor Tracer::crossEntropy(Tensor logits, Tensor labels, int64_t ignoreIndex,
                            const std::string &reduction) {
  if (anyPoisoned({logits, labels}))
    return {};
  Type type = tensorType({}, builder_->getF32Type());
  return checked(ap::CrossEntropyOp::create(
      *builder_, currentLocation(), type, logits.value(), labels.value(), /*kept_count=*/Value(),
      builder_->getI64IntegerAttr(ignoreIndex), builder_->getStringAttr(reduction)));
}

Result<OwningOpRef<ModuleOp>> Tracer::finish() {
  if (error_)
    return Result<OwningOpRef<ModuleOp>>::error(*error_);
  if (!module_)
    return Result<OwningOpRef<ModuleOp>>::error("finish() called twice");
  auto fn = llvm::cast<func::FuncOp>(function_);
  SmallVector<Type> resultTypes;
  for (Value v : results_)
    resultTypes.push_back(v.getType());
  func::ReturnOp::create(*builder_, fn.getLoc(), results_);
  fn.setType(builder_->getFunctionType(body_->getArgumentTypes(), resultTypes));
  fn.setAllArgAttrs(argAttrs_);
  fn.setAllResultAttrs(resultAttrs_);
  if (failed(verify(*module_)))
    return Result<OwningOpRef<ModuleOp>>::error("the traced function does not verify");
  return std::move(module_);
}

} // namespace apc::trace
