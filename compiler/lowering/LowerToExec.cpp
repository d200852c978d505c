// Lowering to kernel calls: one instruction per ap op (linear and matmul become the
// `gemm` kernel), reshapes become aliases (no copy), and each ap.adamw writes its
// parameter and moments in place, which is legal because it is their last reader.
#include "compiler/lowering/LowerToExec.h"
#include "compiler/lowering/Streams.h"

#include "compiler/partition/ParallelPlan.h"
#include "compiler/support/EntryFunction.h"
#include "compiler/support/Mesh.h"
#include "dialects/ap/IR/ApInterfaces.h"
#include "dialects/ap/IR/ApOps.h"
#include "runtime/checkpoint/Weights.h"
#include "runtime/support/CheckedMath.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;

namespace apc::lowering {
namespace {

FailureOr<DType> dtypeOf(Type type, Location loc) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape()) {
    emitError(loc) << "cannot lower a value of type " << type << " (static tensors only)";
    return failure();
  }
  Type e = tensor.getElementType();
  if (e.isF32()) return DType::F32;
  if (e.isBF16()) return DType::BF16;
  if (e.isF16()) return DType::F16;
  if (e.isSignlessInteger(32)) return DType::I32;
  if (e.isSignlessInteger(64)) return DType::I64;
  emitError(loc) << "cannot lower element type " << e;
  return failure();
}

ExecAttribute convertAttribute(NamedAttribute named) {
  ExecAttribute a;
  a.name = named.getName().str();
  Attribute v = named.getValue();
  if (auto b = dyn_cast<BoolAttr>(v)) {
    a.kind = ExecAttribute::Kind::Bool;
    a.b = b.getValue();
  } else if (auto i = dyn_cast<IntegerAttr>(v)) {
    a.kind = ExecAttribute::Kind::Int;
    a.i = i.getInt(); // signed: -100 stays -100
  } else if (auto f = dyn_cast<FloatAttr>(v)) {
    a.kind = ExecAttribute::Kind::Float;
    a.f = f.getValueAsDouble();
  } else if (auto s = dyn_cast<StringAttr>(v)) {
    a.kind = ExecAttribute::Kind::String;
    a.s = s.getValue().str();
  } else if (auto ints = dyn_cast<DenseI64ArrayAttr>(v)) {
    a.kind = ExecAttribute::Kind::Ints;
    a.ints.assign(ints.asArrayRef().begin(), ints.asArrayRef().end());
  }
  return a;
}

// Adds the op's cost rule's figures (compiler/rules/) to the instruction: FLOPs and the
// bytes it reads and writes, for the plan and the cost model. An op without one is refused.
LogicalResult addCost(Operation *op, ExecInstruction &inst) {
  auto cost = dyn_cast<ap::CostOpInterface>(op);
  if (!cost)
    return op->emitOpError() << "lowering: has no cost rule (an op's rules live in "
                                "compiler/rules/, see docs/adding-an-op.md)";
  ap::OpCost c = cost.cost();
  inst.flops += c.flops;
  inst.bytesRead += c.bytesRead;
  inst.bytesWritten += c.bytesWritten;
  return success();
}

class Lowering {
public:
  explicit Lowering(func::FuncOp fn) : fn_(fn) {}

  FailureOr<ExecProgram> run() {
    if (failed(lowerMesh()) || failed(lowerArguments()))
      return failure();
    for (Operation &op : fn_.getBody().front().without_terminator())
      if (failed(lowerOp(&op)))
        return failure();
    auto ret = cast<func::ReturnOp>(fn_.getBody().front().getTerminator());
    if (failed(writeStatesBack(ret)))
      return failure();
    for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
      std::string name = resultName(fn_, i);
      if (name == "loss")
        program_.loss = buffers_.lookup(ret.getOperand(i));
      else if (name == "grad_norm")
        program_.gradNorm = buffers_.lookup(ret.getOperand(i));
    }
    if (program_.loss < 0)
      return fn_.emitError() << "lowering: @" << fn_.getSymName() << " has no 'loss' result";
    dropUntouchedBuffers();
    assignStreams(program_);
    planMemory(program_);
    if (program_.arenaBytes > kMaxArenaBytes)
      return fn_.emitError() << "lowering: @" << fn_.getSymName() << " needs an arena of "
                             << (program_.arenaBytes == UINT64_MAX
                                     ? std::string("more than 4 EiB")
                                     : std::to_string(program_.arenaBytes) + " bytes")
                             << ", more than the " << kMaxArenaBytesText
                             << " a plan may ask of one device";
    return std::move(program_);
  }

private:
  int addBuffer(Value value, ExecBuffer buffer) {
    program_.buffers.push_back(std::move(buffer));
    int index = int(program_.buffers.size()) - 1;
    if (value)
      buffers_[value] = index;
    return index;
  }

  FailureOr<ExecBuffer> bufferFor(Value v, const std::string &name) {
    ExecBuffer b;
    b.name = name;
    FailureOr<DType> dtype = dtypeOf(v.getType(), v.getLoc());
    if (failed(dtype))
      return failure();
    b.dtype = *dtype;
    auto shape = cast<RankedTensorType>(v.getType()).getShape();
    b.shape.assign(shape.begin(), shape.end());
    return b;
  }

  // The device mesh ap-mesh declared, axes by name (none: one device).
  LogicalResult lowerMesh() {
    auto module = fn_->getParentOfType<ModuleOp>();
    FailureOr<Mesh> mesh = meshOf(module);
    if (failed(mesh))
      return failure();
    program_.meshShape.assign(mesh->shape.begin(), mesh->shape.end());
    program_.meshAxes.assign(mesh->names.begin(), mesh->names.end());
    contextAxis_ = mesh->axis("cp");
    program_.parallelPlan = partition::fromAttr(parallelPlanOf(module)).toString();
    program_.chunks = int(std::max<int64_t>(parallelPlanOf(module).getVp(), 1));
    // This stage's chunks (ap-pipeline's stage_layers lists every chunk, c * pp + stage).
    auto pipelined = module->getAttrOfType<DictionaryAttr>("ap.pipeline");
    auto stage = fn_->getAttrOfType<IntegerAttr>("ap.stage");
    if (program_.chunks > 1 && pipelined && stage)
      if (auto layers = pipelined.getAs<DenseI64ArrayAttr>("stage_layers")) {
        ArrayRef<int64_t> all = layers.asArrayRef();
        int64_t stages = int64_t(all.size()) / (2 * program_.chunks);
        for (int64_t c = 0; c < program_.chunks; ++c) {
          size_t v = size_t(c * stages + stage.getInt());
          if (2 * v + 1 < all.size())
            program_.chunkLayers.push_back({all[2 * v], all[2 * v + 1]});
        }
      }
    return success();
  }

  // shard.all_reduce -> an "all_reduce" instruction; one right after another on the
  // same axes joins it (a bucket: one collective for several gradients).
  LogicalResult lowerAllReduce(shard::AllReduceOp op) {
    bool isMax = op.getReduction() == shard::ReductionKind::Max;
    if (op.getReduction() != shard::ReductionKind::Sum && !isMax)
      return op.emitOpError() << "lowering: only sum and max all-reduces are supported";
    std::vector<int64_t> axes(op.getGridAxes().begin(), op.getGridAxes().end());
    FailureOr<ExecBuffer> b = bufferFor(op.getResult(), "%" + std::to_string(program_.buffers.size()));
    if (failed(b))
      return failure();
    int input = buffers_.lookup(op.getInput());
    // In place where the reduction is the input's only reader (a gradient, a partial
    // sum): one buffer instead of two, which matters most while the reduction runs on
    // another stream and its input lives through the reduction's whole span.
    int output = reducesInPlace(op) ? input : addBuffer(op.getResult(), *b);
    if (output == input)
      buffers_[op.getResult()] = input;
    if (!program_.instructions.empty() && lastWasAllReduce_ && !isMax) {
      ExecInstruction &prev = program_.instructions.back();
      // Not when this input is (an alias of) what the previous reduction produces.
      bool readsPrevious = llvm::is_contained(prev.outputs, rootOf(input));
      if (!readsPrevious && prev.kernel == "all_reduce" && prev.attributes.size() &&
          prev.attributes[0].ints == axes && bucketOf(op) == lastBucket_) {
        prev.inputs.push_back(input);
        prev.outputs.push_back(output);
        return addCost(op, prev);
      }
    }
    ExecInstruction inst;
    inst.kernel = "all_reduce";
    ExecAttribute a;
    a.name = "axes";
    a.kind = ExecAttribute::Kind::Ints;
    a.ints = axes;
    inst.attributes.push_back(a);
    if (isMax) {
      ExecAttribute kind;
      kind.name = "op";
      kind.kind = ExecAttribute::Kind::String;
      kind.s = "max";
      inst.attributes.push_back(kind);
    }
    inst.inputs = {input};
    inst.outputs = {output};
    if (failed(addCost(op, inst)))
      return failure();
    copyMarks(op, inst);
    program_.instructions.push_back(std::move(inst));
    lastWasAllReduce_ = !isMax;
    lastBucket_ = bucketOf(op);
    return success();
  }

  // ap-bucket-gradients' bucket of a gradient reduction (-1: not a gradient's; adjacent
  // ones of those fuse too, as the vocabulary-parallel loss's two sums).
  static int64_t bucketOf(Operation *op) {
    auto bucket = op->getAttrOfType<IntegerAttr>("ap.bucket");
    return bucket ? bucket.getInt() : -1;
  }

  // An arena value, made by an instruction (not a view of another buffer) and read by
  // this reduction alone.
  bool reducesInPlace(shard::AllReduceOp op) {
    Value in = op.getInput();
    Operation *def = in.getDefiningOp();
    if (!def || isa<ap::ReshapeOp>(def) || !in.hasOneUse())
      return false;
    auto it = buffers_.find(in);
    if (it == buffers_.end())
      return false;
    const ExecBuffer &b = program_.buffers[it->second];
    return b.kind == BufferKind::Arena;
  }

  // all_gather / reduce_scatter / all_slice over one mesh axis along one tensor dim.
  LogicalResult lowerCollective(Operation *op, StringRef kernel, ArrayRef<int16_t> gridAxes,
                                int64_t dim) {
    lastWasAllReduce_ = false;
    if (gridAxes.size() != 1)
      return op->emitOpError() << "lowering: collectives over one mesh axis only";
    FailureOr<ExecBuffer> b =
        bufferFor(op->getResult(0), "%" + std::to_string(program_.buffers.size()));
    if (failed(b))
      return failure();
    ExecInstruction inst;
    inst.kernel = kernel.str();
    ExecAttribute axes;
    axes.name = "axes";
    axes.kind = ExecAttribute::Kind::Ints;
    axes.ints = {int64_t(gridAxes[0])};
    ExecAttribute d;
    d.name = "dim";
    d.kind = ExecAttribute::Kind::Int;
    d.i = dim;
    inst.attributes = {axes, d};
    if (gridAxes[0] == contextAxis_) { // the sequence's two chunks a device (ap-partition)
      ExecAttribute balanced;
      balanced.name = "balanced";
      balanced.kind = ExecAttribute::Kind::Bool;
      balanced.b = true;
      inst.attributes.push_back(balanced);
    }
    inst.inputs = {buffers_.lookup(op->getOperand(0))};
    inst.outputs = {addBuffer(op->getResult(0), *b)};
    if (failed(addCost(op, inst)))
      return failure();
    copyMarks(op, inst);
    program_.instructions.push_back(std::move(inst));
    return success();
  }

  LogicalResult lowerArguments() {
    llvm::StringMap<int> parameterIndex;
    for (unsigned i = 0; i < fn_.getNumArguments(); ++i) {
      Value arg = fn_.getArgument(i);
      std::string name = argName(fn_, i), role = argRole(fn_, i);
      FailureOr<ExecBuffer> b = bufferFor(arg, name);
      if (failed(b))
        return failure();
      if (auto dimAxes = fn_.getArgAttrOfType<DenseI64ArrayAttr>(i, "ap.dim_axes"))
        for (int64_t a : dimAxes.asArrayRef())
          b->dimAxes.push_back(int32_t(a));
      if (role == "parameter") {
        b->kind = BufferKind::Parameter;
        b->parameter = int(program_.parameters.size());
        parameterIndex[name] = b->parameter;
        std::vector<int64_t> global = b->shape;
        for (size_t d = 0; d < b->dimAxes.size(); ++d)
          if (b->dimAxes[d] >= 0 && size_t(b->dimAxes[d]) < program_.meshShape.size())
            global[d] *= program_.meshShape[b->dimAxes[d]];
        program_.parameters.push_back({name, global, checkpoint::defaultInit(b->shape.size())});
      } else if (role == "optimizer_state") {
        b->kind = BufferKind::OptimizerState;
        llvm::StringRef rest(name);
        for (const char *slot : {"exp_avg_sq.", "exp_avg."})
          if (rest.consume_front(slot)) {
            b->optimizerSlot = llvm::StringRef(slot).drop_back().str();
            break;
          }
        auto it = parameterIndex.find(rest);
        if (b->optimizerSlot.empty() || it == parameterIndex.end())
          return fn_.emitError() << "lowering: optimizer state '" << name
                                 << "' names no parameter";
        b->parameter = it->second;
      } else {
        b->kind = BufferKind::Input;
        std::optional<ap::BatchInput> batch = batchInput(fn_, i);
        if (batch == ap::BatchInput::Tokens) b->binding = Binding::InputIds;
        else if (batch == ap::BatchInput::Labels) b->binding = Binding::Labels;
        else if (name == "step") b->binding = Binding::Step;
        else if (name == "lr") b->binding = Binding::LearningRate;
        else
          return fn_.emitError() << "lowering: argument '" << name
                                 << "' is not a parameter, optimizer state or known input";
      }
      addBuffer(arg, *b);
    }
    return success();
  }

  // A new parameter or moment that is not updated in place (under ZeRO-1/2 AdamW
  // updates a slice and an all_gather makes the whole) is written straight into its
  // argument's buffer by the instruction that makes it, which must come after every
  // reader of the argument.
  LogicalResult writeStatesBack(func::ReturnOp ret) {
    llvm::StringMap<int> argBuffer;
    for (unsigned i = 0; i < fn_.getNumArguments(); ++i)
      if (std::string name = argName(fn_, i); !name.empty()) // unnamed results update nothing
        argBuffer[name] = buffers_.lookup(fn_.getArgument(i));
    for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
      auto arg = argBuffer.find(resultName(fn_, i));
      if (arg == argBuffer.end())
        continue;
      int target = arg->second, made = rootOf(buffers_.lookup(ret.getOperand(i)));
      if (made == target)
        continue;
      int writer = -1;
      for (int k = int(program_.instructions.size()) - 1; k >= 0 && writer < 0; --k)
        if (llvm::is_contained(program_.instructions[k].outputs, made))
          writer = k;
      bool lateReader = false;
      for (size_t k = writer + 1; k < program_.instructions.size(); ++k)
        for (int in : program_.instructions[k].inputs)
          lateReader |= rootOf(in) == target || rootOf(in) == made;
      for (int in : writer >= 0 ? program_.instructions[writer].inputs : std::vector<int>{})
        lateReader |= rootOf(in) == target;
      if (writer < 0 || lateReader || program_.buffers[made].shape != program_.buffers[target].shape)
        return ret.emitOpError() << "lowering: the new value of '" << resultName(fn_, i)
                                 << "' cannot be written back into its buffer";
      for (int &out : program_.instructions[writer].outputs)
        if (out == made)
          out = target;
      buffers_[ret.getOperand(i)] = target;
    }
    return success();
  }

  // Arena buffers and aliases no instruction touches (results written into their
  // argument's buffer instead, views nothing reads) leave the program: planned, they
  // would take arena bytes at the step's start.
  void dropUntouchedBuffers() {
    std::vector<ExecBuffer> &buffers = program_.buffers;
    std::vector<char> used(buffers.size(), 0);
    for (const ExecInstruction &inst : program_.instructions) {
      for (int b : inst.inputs)
        used[size_t(b)] = 1;
      for (int b : inst.outputs)
        used[size_t(b)] = 1;
    }
    for (int keep : {program_.loss, program_.gradNorm})
      if (keep >= 0)
        used[size_t(keep)] = 1;
    for (size_t b = 0; b < buffers.size(); ++b) {
      if (buffers[b].kind != BufferKind::Arena && buffers[b].kind != BufferKind::Alias)
        used[b] = 1; // parameters, moments and inputs are the program's interface
      if (used[b] && buffers[b].kind == BufferKind::Alias)
        used[size_t(buffers[b].aliasOf)] = 1;
    }
    std::vector<int> renumbered(buffers.size(), -1);
    std::vector<ExecBuffer> kept;
    for (size_t b = 0; b < buffers.size(); ++b)
      if (used[b]) {
        renumbered[b] = int(kept.size());
        if (buffers[b].name == "%" + std::to_string(b)) // names that are their index
          buffers[b].name = "%" + std::to_string(kept.size());
        kept.push_back(std::move(buffers[b]));
      }
    for (ExecBuffer &b : kept)
      if (b.kind == BufferKind::Alias)
        b.aliasOf = renumbered[size_t(b.aliasOf)];
    for (ExecInstruction &inst : program_.instructions) {
      for (int &b : inst.inputs)
        b = renumbered[size_t(b)];
      for (int &b : inst.outputs)
        b = renumbered[size_t(b)];
    }
    for (int *keep : {&program_.loss, &program_.gradNorm})
      if (*keep >= 0)
        *keep = renumbered[size_t(*keep)];
    buffers = std::move(kept);
  }

  // The buffer an alias must point at (aliases of aliases collapse).
  int rootOf(int buffer) {
    const ExecBuffer &b = program_.buffers[buffer];
    return b.kind == BufferKind::Alias ? b.aliasOf : buffer;
  }

  // Where the op sits in the step, from ap-pipeline's marks (Pipeline.cpp).
  static void copyMarks(Operation *op, ExecInstruction &inst) {
    if (auto mb = op->getAttrOfType<IntegerAttr>("ap.micro_batch"))
      inst.microBatch = int(mb.getInt());
    if (auto layer = op->getAttrOfType<IntegerAttr>("ap.layer"))
      inst.layer = int(layer.getInt());
    if (auto pass = op->getAttrOfType<StringAttr>("ap.pass"))
      inst.pass = llvm::StringSwitch<Pass>(pass.getValue())
                      .Case("forward", Pass::Forward)
                      .Case("backward", Pass::Backward)
                      .Case("step", Pass::Step)
                      .Default(Pass::Other);
    inst.recomputed = op->hasAttr("ap.recomputed");
  }

  LogicalResult lowerOp(Operation *op) {
    if (auto reduce = dyn_cast<shard::AllReduceOp>(op))
      return lowerAllReduce(reduce);
    if (auto g = dyn_cast<shard::AllGatherOp>(op))
      return lowerCollective(op, "all_gather", g.getGridAxes(), g.getGatherAxis().getSExtValue());
    if (auto rs = dyn_cast<shard::ReduceScatterOp>(op)) {
      if (rs.getReduction() != shard::ReductionKind::Sum)
        return op->emitOpError() << "lowering: only sum reduce-scatters are supported";
      return lowerCollective(op, "reduce_scatter", rs.getGridAxes(),
                             rs.getScatterAxis().getSExtValue());
    }
    if (auto sl = dyn_cast<shard::AllSliceOp>(op))
      return lowerCollective(op, "all_slice", sl.getGridAxes(), sl.getSliceAxis().getSExtValue());
    if (!isa<ap::ApDialect>(op->getDialect()))
      return op->emitOpError() << "lowering: no lowering for this op";
    if (!isa<ap::ReshapeOp>(op))
      lastWasAllReduce_ = false;
    if (auto reshape = dyn_cast<ap::ReshapeOp>(op)) {
      FailureOr<ExecBuffer> b = bufferFor(reshape.getResult(), "%reshape");
      if (failed(b))
        return failure();
      b->kind = BufferKind::Alias;
      b->aliasOf = rootOf(buffers_.lookup(reshape.getInput()));
      addBuffer(reshape.getResult(), *b);
      return success();
    }
    ExecInstruction inst;
    inst.kernel = op->getName().stripDialect().str();
    for (NamedAttribute a : op->getAttrs())
      if (a.getName() != "operandSegmentSizes" && !a.getName().strref().starts_with("ap."))
        inst.attributes.push_back(convertAttribute(a)); // ap.* are marks, not kernel attributes
    if (isa<ap::LinearOp>(op)) {
      inst.kernel = "gemm";
      ExecAttribute t;
      t.name = "transpose_b";
      t.kind = ExecAttribute::Kind::Bool;
      t.b = true;
      inst.attributes = {t};
    } else if (isa<ap::MatmulOp>(op)) {
      inst.kernel = "gemm";
      for (ExecAttribute &a : inst.attributes)
        a.name = a.name == "transpose_lhs" ? "transpose_a" : "transpose_b";
    }
    // A vocabulary-sharded op: the runtime computes each device's first id as its
    // coordinate on the axis times the rows of a block (plan.fbs Instruction).
    if (auto axis = op->getAttrOfType<IntegerAttr>("vocab_shard_axis")) {
      Value table = isa<ap::EmbeddingGradOp>(op) ? op->getResult(0) : op->getOperand(0);
      auto type = cast<RankedTensorType>(table.getType());
      ExecAttribute rows;
      rows.name = "vocab_shard_rows";
      rows.kind = ExecAttribute::Kind::Int;
      rows.i = isa<ap::EmbeddingOp, ap::EmbeddingGradOp>(op) ? type.getDimSize(0)
                                                             : type.getShape().back();
      inst.attributes.push_back(rows);
    }
    if (failed(addCost(op, inst)))
      return failure();
    copyMarks(op, inst);
    for (Value v : op->getOperands()) {
      auto it = buffers_.find(v);
      if (it == buffers_.end())
        return op->emitOpError() << "lowering: operand has no buffer";
      inst.inputs.push_back(it->second);
    }
    if (auto adam = dyn_cast<ap::AdamWOp>(op)) {
      // In place: the update is the last reader of the parameter and its moments.
      for (Value state : {adam.getParam(), adam.getExpAvg(), adam.getExpAvgSq()}) {
        for (Operation *user : state.getUsers())
          if (user != op && op->isBeforeInBlock(user))
            return op->emitOpError() << "lowering: an in-place AdamW update must be the "
                                        "last reader of its parameter and moments";
      }
      int k = 0;
      for (Value state : {adam.getParam(), adam.getExpAvg(), adam.getExpAvgSq()}) {
        int b = buffers_.lookup(state);
        inst.outputs.push_back(b);
        buffers_[op->getResult(k++)] = b;
      }
    } else {
      for (Value r : op->getResults()) {
        FailureOr<ExecBuffer> b = bufferFor(r, "%" + std::to_string(program_.buffers.size()));
        if (failed(b))
          return failure();
        inst.outputs.push_back(addBuffer(r, *b));
      }
    }
    program_.instructions.push_back(std::move(inst));
    return success();
  }

  func::FuncOp fn_;
  ExecProgram program_;
  bool lastWasAllReduce_ = false;
  int64_t lastBucket_ = -1; // the bucket of the all_reduce instruction just lowered
  int contextAxis_ = -1; // the mesh axis "cp": its gathers and slices are balanced
  llvm::DenseMap<Value, int> buffers_;
};

} // namespace

FailureOr<ExecProgram> lowerToExec(func::FuncOp step) { return Lowering(step).run(); }

} // namespace apc::lowering
