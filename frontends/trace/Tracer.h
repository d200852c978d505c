// The tracer: write a model like PyTorch code, get `ap` ops in a `func.func`.
//
//   Tracer t(context, "train_step");
//   Tensor x = t.input("input_ids", {B, S}, DType::I64);
//   Tensor w = t.parameter("model.embed_tokens.weight", {V, H}, DType::F32);
//   Tensor h = t.embedding(w, x);
//   ...
//   t.output("loss", loss);
//   auto module = t.finish();   // error message if any op had bad shapes
//
// Each op is built and checked by the dialect's own verifier at once, so a shape
// error in model code is reported where it happens, naming the op, the scope
// ("model.layers.3.mlp.down_proj") and the shapes. After the first error the tracer
// keeps going without building ops (later tensors are "poisoned") and `finish`
// returns that first error.
#pragma once

#include "runtime/support/DType.h"
#include "runtime/support/Status.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/IR/Value.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir {
class MLIRContext;
class OpBuilder;
class Operation;
class Block;
} // namespace mlir

namespace apc::trace {

// Element types: the one DType of plans and kernels (runtime/support/DType.h).
using apc::DType;
using apc::dtypeName;

class Tracer;

// A traced value: an SSA value of static ranked tensor type (or poisoned).
class Tensor {
public:
  Tensor() = default;
  bool valid() const { return static_cast<bool>(value_); }
  mlir::Value value() const { return value_; }
  std::vector<int64_t> shape() const;
  int64_t rank() const;
  // Size of dim `i`; negative `i` counts from the end as in PyTorch.
  int64_t dim(int64_t i) const;
  DType dtype() const;

private:
  friend class Tracer;
  explicit Tensor(mlir::Value value) : value_(value) {}
  mlir::Value value_;
};

// Rotary embedding parameters (`rope_type` "default" or "llama3").
struct RopeParams {
  double theta = 10000.0;
  std::string ropeType = "default";
  double factor = 0, lowFreqFactor = 0, highFreqFactor = 0;
  int64_t originalMaxPositionEmbeddings = 0;
};

// Where a parameter sits: a decoder layer (`ap.layer = N`), the head (final norm, LM
// head: `ap.head`) or neither (the embedding). Recomputation and pipeline stages group
// ops by it.
struct ParameterPlace {
  int64_t decoderLayer = -1;
  bool head = false;
};

class Tracer {
public:
  Tracer(mlir::MLIRContext &context, const std::string &functionName);
  ~Tracer();
  Tracer(const Tracer &) = delete;
  Tracer &operator=(const Tracer &) = delete;

  // What the model knows about its arguments, marked on them (`ap.layout`, `ap.batch`)
  // so that generic passes read marks, not names.
  enum class Layout { Replicated, Column, Row, Vocab }; // tensor-parallel split
  enum class Batch { None, Tokens, Labels };             // what a batch input holds
  using Place = ParameterPlace;

  // Function arguments. Parameters are trained; inputs (ids, labels) are data.
  Tensor parameter(const std::string &name, std::vector<int64_t> shape, DType dtype,
                   Layout layout = Layout::Replicated, Place place = {});
  Tensor input(const std::string &name, std::vector<int64_t> shape, DType dtype,
               Batch batch = Batch::None);
  // Declares a named result of the function.
  void output(const std::string &name, Tensor value);
  // Attaches an attribute to the function (model config, ...).
  void setFunctionAttr(const std::string &name, mlir::Attribute value);

  // Names the ops built while it lives (nested: "model.layers.0" + "mlp").
  class Scope {
  public:
    Scope(Tracer &tracer, const std::string &name);
    ~Scope();

  private:
    Tracer &tracer_;
  };

  Tensor embedding(Tensor weight, Tensor ids);
  Tensor linear(Tensor input, Tensor weight);
  Tensor matmul(Tensor lhs, Tensor rhs, bool transposeLhs = false,
                bool transposeRhs = false);
  Tensor rmsNorm(Tensor input, Tensor weight, double epsilon);
  Tensor rope(Tensor input, const RopeParams &params);
  Tensor attention(Tensor query, Tensor key, Tensor value,
                   std::optional<double> scale = std::nullopt, bool causal = true);
  Tensor silu(Tensor input);
  Tensor add(Tensor lhs, Tensor rhs);
  Tensor mul(Tensor lhs, Tensor rhs);
  Tensor cast(Tensor input, DType dtype);
  // One dim may be -1 (inferred), as in torch.reshape.
  Tensor reshape(Tensor input, std::vector<int64_t> shape);
  Tensor transpose(Tensor input, std::vector<int64_t> permutation);
  Tensor reduceSum(Tensor input, std::vector<int64_t> dims, bool keepDims = false);
  Tensor shiftLabels(Tensor labels, int64_t ignoreIndex = -100);
  Tensor crossEntropy(Tensor logits, Tensor labels, int64_t ignoreIndex = -100,
                      const std::string &reduction = "mean");

  // The first error, if any op or argument was wrong.
  const std::optional<std::string> &error() const { return error_; }
  // Completes the function and returns the module holding it, or the first error.
  Result<mlir::OwningOpRef<mlir::ModuleOp>> finish();

private:
  mlir::Location currentLocation();
  mlir::Type tensorType(const std::vector<int64_t> &shape, mlir::Type element);
  mlir::Type elementType(DType dtype);
  Tensor addArgument(const std::string &name, const char *role,
                     std::vector<int64_t> shape, DType dtype,
                     llvm::ArrayRef<mlir::NamedAttribute> marks);
  // Verifies a freshly built op; on failure records the error, erases the op and
  // returns a poisoned tensor.
  Tensor checked(mlir::Operation *op);
  bool anyPoisoned(std::initializer_list<Tensor> tensors);
  void fail(const std::string &message);

  mlir::MLIRContext &context_;
  mlir::OwningOpRef<mlir::ModuleOp> module_;
  mlir::Operation *function_ = nullptr; // the func.func being traced
  mlir::Block *body_ = nullptr;
  std::unique_ptr<mlir::OpBuilder> builder_;
  std::vector<std::string> scopes_;
  std::vector<mlir::Attribute> argAttrs_;
  std::vector<mlir::Value> results_;
  std::vector<mlir::Attribute> resultAttrs_;
  std::optional<std::string> error_;
};

} // namespace apc::trace
