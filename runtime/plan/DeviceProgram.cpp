#include "runtime/plan/DeviceProgram.h"

#include "runtime/schema/plan_generated.h"
#include "runtime/support/MeshCoordinates.h"

namespace apc::plan {

std::vector<int64_t> meshShapeOf(const Plan &plan) {
  return plan.mesh_shape() ? std::vector<int64_t>(plan.mesh_shape()->begin(),
                                                  plan.mesh_shape()->end())
                           : std::vector<int64_t>{};
}

int64_t deviceCount(const Plan &plan) { return meshSize(meshShapeOf(plan)); }

int pipelineAxis(const Plan &plan) {
  // Names past the mesh's axes (a damaged or hand-edited plan) name nothing.
  flatbuffers::uoffset_t axes = plan.mesh_shape() ? plan.mesh_shape()->size() : 0;
  if (plan.mesh_axes())
    for (flatbuffers::uoffset_t a = 0; a < plan.mesh_axes()->size() && a < axes; ++a)
      if (plan.mesh_axes()->Get(a)->str() == "pp")
        return int(a);
  return -1;
}

int stageOf(const Plan &plan, const std::vector<int64_t> &coordinates) {
  int axis = pipelineAxis(plan);
  return axis >= 0 && size_t(axis) < coordinates.size() ? int(coordinates[size_t(axis)]) : 0;
}

std::vector<std::vector<int64_t>> stageRanks(const Plan &plan) {
  std::vector<std::vector<int64_t>> ranks(plan.programs() ? plan.programs()->size() : 0);
  std::vector<int64_t> mesh = meshShapeOf(plan);
  for (int64_t r = 0; r < deviceCount(plan); ++r) {
    int s = stageOf(plan, coordinatesOf(r, mesh));
    if (s >= 0 && size_t(s) < ranks.size())
      ranks[size_t(s)].push_back(r);
  }
  return ranks;
}

const Program *programOf(const Plan &plan, int64_t rank) {
  if (!plan.programs() || rank < 0 || rank >= deviceCount(plan))
    return nullptr;
  int stage = stageOf(plan, coordinatesOf(rank, meshShapeOf(plan)));
  if (stage < 0 || flatbuffers::uoffset_t(stage) >= plan.programs()->size())
    return nullptr;
  return plan.programs()->Get(flatbuffers::uoffset_t(stage));
}

std::optional<int64_t> vocabStart(const Instruction &inst,
                                  const std::vector<int64_t> &coordinates) {
  if (!inst.attributes())
    return std::nullopt;
  std::optional<int64_t> axis, rows;
  for (const Attribute *a : *inst.attributes()) {
    if (a->kind() != AttributeKind::Int || !a->name())
      continue;
    if (a->name()->str() == "vocab_shard_axis")
      axis = a->i();
    else if (a->name()->str() == "vocab_shard_rows")
      rows = a->i();
  }
  if (!axis || !rows || *axis < 0 || size_t(*axis) >= coordinates.size())
    return std::nullopt;
  return coordinates[size_t(*axis)] * *rows;
}

std::optional<int64_t> seqShardRank(const Instruction &inst,
                                    const std::vector<int64_t> &coordinates) {
  if (!inst.attributes())
    return std::nullopt;
  for (const Attribute *a : *inst.attributes())
    if (a->kind() == AttributeKind::Int && a->name() && a->name()->str() == "seq_shard_axis" &&
        a->i() >= 0 && size_t(a->i()) < coordinates.size())
      return coordinates[size_t(a->i())];
  return std::nullopt;
}

} // namespace apc::plan
