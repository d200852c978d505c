#include "tools/apc/EvalInputs.h"

#include "runtime/checkpoint/Weights.h"
#include "runtime/data/ArrowFile.h"
#include "runtime/data/TextDataset.h"
#include "runtime/train/BatchBuilder.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <cstdio>
#include <cstring>
#include <random>

namespace apc::tools {
namespace {

std::string stringAttr(mlir::DictionaryAttr attrs, llvm::StringRef key) {
  if (attrs)
    if (auto s = attrs.getAs<mlir::StringAttr>(key))
      return s.getValue().str();
  return "";
}

template <typename T> std::vector<uint8_t> bytesOf(const std::vector<T> &values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// Shapes are checked against kMaxElements (argumentTooLarge) before anything counts them.
using checkpoint::numElements;

// The reference interpreter's limit on a tensor (interp::run refuses larger results too).
constexpr int64_t kMaxElements = int64_t(1) << 30;

bool argumentTooLarge(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n) || n > kMaxElements)
      return true;
  return false;
}

// The model's facts that apc import records on the module (ap.model).
mlir::DictionaryAttr modelAttrs(mlir::func::FuncOp fn) {
  for (mlir::Operation *op = fn; op; op = op->getParentOp())
    if (auto model = op->getAttrOfType<mlir::DictionaryAttr>("ap.model"))
      return model;
  return {};
}

// input_ids and labels of the first `batch` rows of the data, or seeded random ids.
Status makeBatch(const EvalInputOptions &o, int64_t batch, int64_t seqLen, int64_t vocab,
                 std::vector<int64_t> &ids, std::vector<int64_t> &labels) {
  ids.assign(size_t(batch * seqLen), 0);
  labels.assign(ids.size(), 0);
  if (o.dataPath.empty()) {
    std::mt19937_64 rng(o.seed);
    for (int64_t &id : ids)
      id = int64_t(rng() % uint64_t(vocab));
    labels = ids; // the loss shifts them: position t predicts t + 1
    return Status::ok();
  }
  auto file = data::ArrowFile::open(o.dataPath);
  if (!file)
    return Status::error(file.message());
  auto column = file->intListColumn(o.column);
  if (!column)
    return Status::error(column.message());
  int64_t firstNull = -1;
  if (int64_t nulls = column->nullCount(&firstNull); nulls > 0)
    return Status::error(data::nullRowsMessage(o.dataPath, o.column, nulls, firstNull));
  if (column->numRows() < batch)
    return Status::error(o.dataPath + ": " + std::to_string(column->numRows()) +
                         " rows, fewer than the batch of " + std::to_string(batch) +
                         " that " + o.irPath + " takes");
  std::optional<int64_t> padId = o.padId;
  if (!padId) { // apc data tokenize records the tokenizer's pad id, as aprun reads it
    auto recorded = data::recordedPadId(*file, vocab);
    if (!recorded)
      return recorded.status();
    padId = *recorded;
    if (padId)
      std::printf("padding with id %lld, recorded in %s by apc data tokenize (--pad-id N to "
                  "choose)\n", (long long)*padId, o.dataPath.c_str());
  }
  train::BatchBuilder builder(*column, seqLen, padId, vocab);
  std::vector<int64_t> rows(static_cast<size_t>(batch));
  for (int64_t r = 0; r < batch; ++r)
    rows[size_t(r)] = r;
  kernels::TensorView idsView{ids.data(), DType::I64, {batch, seqLen}};
  kernels::TensorView labelsView{labels.data(), DType::I64, {batch, seqLen}};
  if (Status s = builder.fill(rows, idsView, labelsView); !s)
    return Status::error(o.dataPath + ": " + s.message());
  return Status::ok();
}

} // namespace

Result<std::vector<safetensors::TensorToWrite>> makeEvalInputs(mlir::func::FuncOp fn,
                                                                const EvalInputOptions &o) {
  using Out = Result<std::vector<safetensors::TensorToWrite>>;
  mlir::DictionaryAttr model = modelAttrs(fn);
  auto modelNumber = [&](llvm::StringRef key) -> std::optional<double> {
    if (model)
      if (mlir::Attribute a = model.get(key)) {
        if (auto f = mlir::dyn_cast<mlir::FloatAttr>(a))
          return f.getValueAsDouble();
        if (auto i = mlir::dyn_cast<mlir::IntegerAttr>(a))
          return double(i.getInt());
      }
    return std::nullopt;
  };

  struct Arg {
    std::string name, role;
    std::vector<int64_t> shape;
    bool isFloat = true;
  };
  std::vector<Arg> args;
  for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
    mlir::DictionaryAttr attrs = fn.getArgAttrDict(i);
    auto type = mlir::dyn_cast<mlir::RankedTensorType>(fn.getArgument(i).getType());
    Arg a{stringAttr(attrs, "ap.name"), stringAttr(attrs, "ap.role"), {}, true};
    if (!type || !type.hasStaticShape())
      return Out::error(o.irPath + ": argument " + std::to_string(i) + " of @" +
                        fn.getSymName().str() + " is not a static tensor");
    a.shape.assign(type.getShape().begin(), type.getShape().end());
    if (argumentTooLarge(a.shape))
      return Out::error(o.irPath + ": argument " + std::to_string(i) + " of @" +
                        fn.getSymName().str() + " has more than 2^30 elements, more than the "
                        "reference interpreter holds");
    a.isFloat = mlir::isa<mlir::FloatType>(type.getElementType());
    if (a.name.empty() || a.role.empty())
      return Out::error(o.irPath + ": argument " + std::to_string(i) + " of @" +
                        fn.getSymName().str() +
                        " has no ap.name and ap.role, so nothing says what it holds "
                        "(apc import and apc compile write both)");
    args.push_back(std::move(a));
  }

  // Parameters first, in argument order: that is the plan's parameter order, so the
  // seeded initialisation gives aprun's initial weights.
  std::vector<std::vector<float>> parameterData;
  std::vector<checkpoint::ParameterSlot> slots;
  for (const Arg &a : args)
    if (a.role == "parameter")
      parameterData.emplace_back(size_t(numElements(a.shape)));
  size_t p = 0;
  for (const Arg &a : args)
    if (a.role == "parameter") {
      checkpoint::ParameterSlot slot;
      slot.name = a.name;
      slot.shape = a.shape;
      slot.data = parameterData[p++].data();
      slot.init = checkpoint::defaultInit(a.shape.size());
      slots.push_back(std::move(slot));
    }
  if (!o.weightsPath.empty()) {
    if (Status s = checkpoint::loadWeights(o.weightsPath, slots); !s)
      return Out::error(s.message());
  } else {
    std::optional<double> initStd = modelNumber("initializer_range");
    if (!initStd && !slots.empty())
      return Out::error(o.irPath + ": no ap.model.initializer_range to initialise the "
                                   "parameters with; give --weights");
    checkpoint::initWeights(slots, initStd.value_or(0.02), o.seed);
  }

  std::vector<int64_t> ids, labels;
  bool batchMade = false;
  std::vector<safetensors::TensorToWrite> tensors;
  p = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const Arg &a = args[i];
    safetensors::TensorToWrite t{a.name, safetensors::DType::F32, a.shape, {}};
    if (a.role == "parameter") {
      t.bytes = bytesOf(parameterData[p++]);
    } else if (a.role == "optimizer_state") {
      t.bytes.assign(size_t(numElements(a.shape)) * 4, 0); // AdamW's moments start at 0
    } else if (a.role == "step") {
      t.dtype = safetensors::DType::I64;
      t.bytes = bytesOf(std::vector<int64_t>(size_t(numElements(a.shape)), 1));
    } else if (a.role == "learning_rate") {
      t.bytes = bytesOf(std::vector<float>(size_t(numElements(a.shape)), float(o.lr)));
    } else if (a.role == "input" && (a.name == "input_ids" || a.name == "labels") &&
               a.shape.size() == 2 && !a.isFloat) {
      if (!batchMade) {
        std::optional<double> vocab = modelNumber("vocab_size");
        if (!vocab)
          return Out::error(o.irPath + ": no ap.model.vocab_size to check token ids against");
        if (Status s = makeBatch(o, a.shape[0], a.shape[1], int64_t(*vocab), ids, labels); !s)
          return Out::error(s.message());
        batchMade = true;
      }
      t.dtype = safetensors::DType::I64;
      t.bytes = bytesOf(a.name == "input_ids" ? ids : labels);
    } else {
      return Out::error(o.irPath + ": argument " + std::to_string(i) + " ('" + a.name +
                        "', role '" + a.role + "') is nothing --make-inputs knows how to "
                        "make; write it yourself");
    }
    tensors.push_back(std::move(t));
  }
  if (!o.dataPath.empty() && !batchMade)
    std::fprintf(stderr, "apc eval: note: %s takes no batch; --data %s is not used\n",
                 o.irPath.c_str(), o.dataPath.c_str());
  return tensors;
}

} // namespace apc::tools
