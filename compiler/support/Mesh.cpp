#include "compiler/support/Mesh.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"

using namespace mlir;

namespace apc {

ap::ParallelAttr parallelPlanOf(ModuleOp module) {
  if (auto plan = module->getAttrOfType<ap::ParallelAttr>(kParallelAttr))
    return plan;
  return ap::ParallelAttr::get(module.getContext(), 1, 1, 1, 1, 0, false, 1, 1, ap::Recompute::None,
                               0, {});
}

int Mesh::axis(llvm::StringRef name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name)
      return int(i);
  return -1;
}

int64_t Mesh::devices() const {
  int64_t n = 1;
  for (int64_t s : shape)
    n *= s;
  return n;
}

FailureOr<Mesh> meshOf(ModuleOp module) {
  ap::ParallelAttr plan = parallelPlanOf(module);
  Mesh mesh;
  auto grid = module.lookupSymbol<shard::GridOp>(kGrid);
  if (!grid) {
    if (plan.getDevices() > 1)
      return module.emitError() << "the plan " << plan << " needs the device mesh: run ap-mesh first";
    return mesh;
  }
  auto names = grid->getAttrOfType<ArrayAttr>(kMeshAxesAttr);
  if (!names || names.size() != grid.getShape().size())
    return grid.emitError() << "shard.grid @" << kGrid << " needs " << kMeshAxesAttr
                            << ", one axis name per dimension (declared by ap-mesh)";
  for (auto [name, size] : llvm::zip(names, grid.getShape())) {
    auto s = dyn_cast<StringAttr>(name);
    if (!s)
      return grid.emitError() << kMeshAxesAttr << " must hold strings";
    mesh.names.push_back(s.str());
    mesh.shape.push_back(size);
  }
  auto expected = plan.meshAxes();
  bool same = expected.size() == mesh.names.size();
  for (size_t i = 0; same && i < expected.size(); ++i)
    same = expected[i].first == mesh.names[i] && expected[i].second == mesh.shape[i];
  if (!same)
    return grid.emitError() << "shard.grid @" << kGrid << " does not match the plan " << plan;
  return mesh;
}

LogicalResult declareMesh(ModuleOp module) {
  ap::ParallelAttr plan = parallelPlanOf(module);
  if (module.lookupSymbol<shard::GridOp>(kGrid))
    return success(succeeded(meshOf(module)));
  if (plan.getDevices() == 1)
    return success();
  SmallVector<int64_t> shape;
  SmallVector<Attribute> names;
  Builder b(module.getContext());
  for (auto [name, size] : plan.meshAxes()) {
    names.push_back(b.getStringAttr(name));
    shape.push_back(size);
  }
  OpBuilder ob(module.getBodyRegion());
  ob.setInsertionPointToStart(module.getBody());
  auto grid = shard::GridOp::create(ob, module.getLoc(), kGrid, ArrayRef<int64_t>(shape));
  grid->setAttr(kMeshAxesAttr, b.getArrayAttr(names));
  return success();
}

} // namespace apc
