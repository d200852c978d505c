// Which program a device runs, and what in it depends on the device.
//
// A plan holds one program per pipeline stage (plan.fbs, version 4). A device's rank
// gives its mesh coordinates (row-major over Plan.mesh_shape, the last axis fastest:
// runtime/support/MeshCoordinates.h), its coordinate on the mesh axis named "pp" gives
// its stage (stage 0 without that axis), and that stage's program is what it runs. The
// one thing in a program that differs per device is the first vocabulary id of the
// block a vocabulary-parallel kernel holds: `vocab_start = coordinate[vocab_shard_axis]
// * vocab_shard_rows`, and the chunks of the sequence a context-parallel kernel holds:
// `seq_shard_rank = coordinate[seq_shard_axis]`. Send and recv name their peers relative to the device along an
// axis, so they need nothing.
// The loader, the executor, the training loop, `aprun --dump` and `apc explain` all ask
// here, so the rule lives in one place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace apc::plan {
struct Plan;
struct Program;
struct Instruction;

// The mesh's sizes ([] for one device) and its number of devices.
std::vector<int64_t> meshShapeOf(const Plan &plan);
int64_t deviceCount(const Plan &plan);

// The index of the mesh axis named "pp" (among Plan.mesh_shape's), -1 when none is.
int pipelineAxis(const Plan &plan);

// The pipeline stage the device at `coordinates` runs: its coordinate on "pp", else 0.
int stageOf(const Plan &plan, const std::vector<int64_t> &coordinates);

// For each of the plan's programs (stages), the ranks that run it, ascending; a rank whose
// stage has no program (a damaged plan, before the loader refuses it) is in none.
std::vector<std::vector<int64_t>> stageRanks(const Plan &plan);

// The program of device `rank` (null when the plan has no program for its stage).
const Program *programOf(const Plan &plan, int64_t rank);

// The Int attribute `vocab_start` an instruction takes on the device at `coordinates`:
// set for instructions with `vocab_shard_axis` and `vocab_shard_rows`, else empty.
std::optional<int64_t> vocabStart(const Instruction &inst,
                                  const std::vector<int64_t> &coordinates);

// The Int attribute `seq_shard_rank` an instruction takes on the device at `coordinates`
// (context parallelism: which two chunks of the sequence it holds): its coordinate on
// the mesh axis `seq_shard_axis`, for instructions with that attribute, else empty.
std::optional<int64_t> seqShardRank(const Instruction &inst,
                                    const std::vector<int64_t> &coordinates);

} // namespace apc::plan
