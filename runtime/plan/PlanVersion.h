// The plan format's version: bump on any change that old readers would misread.
#pragma once

namespace apc::plan {
// 2: DataSpec.batch is the global batch; mesh_shape, mesh_axes, parallel_plan.
// 3: Buffer.dim_axes (sharded parameters and optimizer state).
// 4: one Program per pipeline stage, not per device (Program.device deprecated; the
//    runtime derives vocab_start from vocab_shard_axis/vocab_shard_rows and the mesh
//    coordinates); Instruction.micro_batch, pass, layer.
// 5: streams and events: Instruction.stream, wait_events, record_event; Program.num_events.
// 6: context parallelism: collectives' Bool attribute `balanced` (two chunks a device)
//    and kernels' `seq_shard_axis` / `seq_shard_parts`, whose meaning an older runtime
//    would silently ignore.
constexpr unsigned kPlanVersion = 6;
} // namespace apc::plan
