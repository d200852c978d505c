// See ShardedValues.h.
#include "compiler/partition/ShardedValues.h"

#include "dialects/ap/IR/ApOps.h"

using namespace mlir;

namespace apc::partition {

int ShardedValues::numAxes() const { return int(mesh_.size()); }
Sharding ShardedValues::replicated() const { return Sharding(numAxes(), AxisState::r()); }
RankedTensorType ShardedValues::globalOf(Value v) {
  if (auto it = global_.find(v); it != global_.end())
    return it->second;
  return cast<RankedTensorType>(v.getType());
}
Sharding ShardedValues::shardingOf(Value v) {
  if (auto it = sharding_.find(v); it != sharding_.end())
    return it->second;
  return replicated();
}
AxisState ShardedValues::st(Value v, int axis) { return shardingOf(v)[axis]; }
int64_t ShardedValues::rankOf(Value v) { return globalOf(v).getRank(); }

RankedTensorType ShardedValues::localType(RankedTensorType global, const Sharding &s) {
  SmallVector<int64_t> shape(global.getShape());
  for (int a = 0; a < numAxes(); ++a)
    if (s[a].isSplit())
      shape[s[a].dim] /= mesh_[a];
  return RankedTensorType::get(shape, global.getElementType());
}

// Records `v`'s global type and sharding and gives it its local type. One dim may be
// split over the context axis and another one: the sequence under cp and sp (tp cuts
// each device's part of the sequence again), or the (batch, seq) rows of a flattened
// activation under dp and cp (dp blocks of batch rows, each holding the cp chunks).
LogicalResult ShardedValues::assign(Value v, RankedTensorType global, const Sharding &s) {
  for (int a = 0; a < numAxes(); ++a) {
    if (!s[a].isSplit())
      continue;
    int64_t d = s[a].dim;
    // Every axis on the dim divides it (another axis on a cp-split dim cuts each device's
    // part again), and the context axis cuts it into 2 x cp chunks, two a device.
    int64_t parts = mesh_[a];
    for (int b = 0; b < numAxes(); ++b)
      if (b != a && s[b].isSplit() && s[b].dim == d)
        parts *= mesh_[b];
    bool chunks = a != cpAxis_ || (d < global.getRank() && global.getDimSize(d) % (2 * mesh_[a]) == 0);
    if (d >= global.getRank() || global.getDimSize(d) % parts != 0 || !chunks) {
      emitError(v.getLoc()) << "ap-partition: cannot split " << global << " on dim " << d
                            << " into " << (a == cpAxis_ ? 2 * mesh_[a] : mesh_[a])
                            << (a == cpAxis_ ? " chunks" : " parts") << " (mesh axis "
                            << axisName(a) << ")";
      failed_ = true;
      return failure();
    }
    for (int b = 0; b < a; ++b)
      if (s[b].isSplit() && s[b].dim == d && a != cpAxis_ && b != cpAxis_) {
        emitError(v.getLoc()) << "ap-partition: dim " << d << " of " << global
                              << " would be split over two mesh axes";
        failed_ = true;
        return failure();
      }
  }
  global_[v] = global;
  sharding_[v] = s;
  v.setType(localType(global, s));
  return success();
}

std::string ShardedValues::axisName(int a) const { return axisNames_[size_t(a)]; }

shard::ReductionKind ShardedValues::sum() { return shard::ReductionKind::Sum; }

// One collective on `axis` from `from` to `to`, inserted with `b`.
Value ShardedValues::collective(OpBuilder &b, Value v, int axis, AxisState from, AxisState to) {
  Location loc = v.getLoc();
  Sharding s = shardingOf(v);
  RankedTensorType global = globalOf(v);
  Sharding target = s;
  target[axis] = to;
  Type local = localType(global, target);
  SmallVector<shard::GridAxis> axes{shard::GridAxis(axis)};
  Operation *op = nullptr;
  if (from.kind == AxisState::P && to.kind == AxisState::R)
    op = shard::AllReduceOp::create(b, loc, local, kGrid, axes, v, sum());
  else if (from.kind == AxisState::P && to.isSplit())
    op = shard::ReduceScatterOp::create(
        b, loc, local, FlatSymbolRefAttr::get(b.getContext(), kGrid),
        b.getDenseI16ArrayAttr(axes), v,
        shard::ReductionKindAttr::get(b.getContext(), sum()), b.getIndexAttr(to.dim));
  else if (from.isSplit() && to.kind == AxisState::R)
    op = shard::AllGatherOp::create(b, loc, local, FlatSymbolRefAttr::get(b.getContext(), kGrid),
                                    b.getDenseI16ArrayAttr(axes), v, b.getIndexAttr(from.dim));
  else if (from.kind == AxisState::R && to.isSplit())
    op = shard::AllSliceOp::create(b, loc, local, v, kGrid, axes, to.dim);
  Value result = op->getResult(0);
  global_[result] = global;
  sharding_[result] = target;
  return result;
}

// `v` in state `to` on `axis`. Cached per (value, axis, state), placed right after
// `v` is complete, unless `before` is given (ZeRO-3 gathers: one per use, freed after).
Value ShardedValues::convert(Value v, int axis, AxisState to, Operation *before) {
  AxisState from = st(v, axis);
  if (from == to)
    return v;
  auto key = std::make_tuple(v, axis, int(to.kind), to.dim);
  if (!before)
    if (auto it = conversions_.find(key); it != conversions_.end())
      return it->second;
  if (to.kind == AxisState::P) {
    emitError(v.getLoc()) << "ap-partition: no rule makes a partial sum on mesh axis "
                          << axisName(axis);
    failed_ = true;
    return v;
  }
  // The context axis's chunks are of the whole sequence dim (dim 1 of [batch, seq, ...]):
  // a value whose dim is cut again on another axis, or rows flattened into dim 0 (each
  // holding its chunks), cannot be gathered or sliced on cp (no rule asks for it).
  if (axis == cpAxis_) {
    bool flattened = (from.isSplit() && from.dim == 0) || (to.isSplit() && to.dim == 0);
    for (int a = 0; a < numAxes() && !flattened; ++a)
      if (a != axis && st(v, a).isSplit() &&
          ((from.isSplit() && st(v, a).dim == from.dim) || (to.isSplit() && st(v, a).dim == to.dim))) {
        emitError(v.getLoc()) << "ap-partition: cannot convert on mesh axis cp a value whose "
                                 "dim is also split on mesh axis " << axisName(a);
        failed_ = true;
        return v;
      }
    if (flattened) {
      emitError(v.getLoc()) << "ap-partition: cannot gather or slice " << globalOf(v)
                            << " on mesh axis cp along dim 0: context parallelism splits the "
                               "sequence, dim 1 of [batch, seq, ...]";
      failed_ = true;
      return v;
    }
  }
  OpBuilder b(context_);
  if (before)
    b.setInsertionPoint(before);
  else if (!v.getDefiningOp() || (from.kind == AxisState::R && to.isSplit()))
    b.setInsertionPoint(current_); // arguments and slices (no communication): right
                                   // before the first user, so they live briefly
  else
    b.setInsertionPointAfter(v.getDefiningOp());
  Value result;
  if (from.isSplit() && to.isSplit()) { // another split dim: gather, then slice
    Value whole = collective(b, v, axis, from, AxisState::r());
    result = collective(b, whole, axis, AxisState::r(), to);
  } else if (from.kind == AxisState::P && !globalOf(v).getElementType().isF32()) {
    // The runtime's reductions are f32: reduce a bf16 or f16 partial sum in f32.
    RankedTensorType global = globalOf(v);
    Sharding s = shardingOf(v);
    auto wide = RankedTensorType::get(global.getShape(), b.getF32Type());
    Value up = ap::CastOp::create(b, v.getLoc(), localType(wide, s), v);
    global_[up] = wide;
    sharding_[up] = s;
    Value reduced = collective(b, up, axis, from, to);
    Sharding t = shardingOf(reduced);
    result = ap::CastOp::create(b, v.getLoc(), localType(global, t), reduced);
    global_[result] = global;
    sharding_[result] = t;
  } else {
    result = collective(b, v, axis, from, to);
  }
  if (!before)
    conversions_[key] = result;
  return result;
}

Value ShardedValues::allReduceMax(OpBuilder &b, Value v, int axis) {
  SmallVector<shard::GridAxis> axes{shard::GridAxis(axis)};
  Value r = shard::AllReduceOp::create(b, v.getLoc(), v.getType(), kGrid, axes, v,
                                       shard::ReductionKind::Max)
                .getResult();
  global_[r] = globalOf(v);
  sharding_[r] = shardingOf(v);
  return r;
}

// A new op's result with the given global type and sharding.
Value ShardedValues::record(Value v, RankedTensorType global, const Sharding &s) {
  global_[v] = global;
  sharding_[v] = s;
  v.setType(localType(global, s));
  return v;
}

} // namespace apc::partition
