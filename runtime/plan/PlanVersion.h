// The plan format's version: bump on any change that old readers would misread.
#pragma once

namespace apc::plan {
// 2: DataSpec.batch is the global batch; mesh_shape, mesh_axes, parallel_plan.
// 3: Buffer.dim_axes (sharded parameters and optimizer state).
constexpr unsigned kPlanVersion = 3;
} // namespace apc::plan
