// Training checkpoints: written whole or not at all, resumed exactly.
//
// Layout of DIR/checkpoint-<step>/ (the names transformers' Trainer uses):
//   model.safetensors      weights by Hugging Face name (f32 masters), metadata format=pt
//   config.json            the model's Hugging Face config (so from_pretrained loads it)
//   optimizer.safetensors  exp_avg.<name> and exp_avg_sq.<name>
//   trainer_state.json     step, data position (epoch, batch), seed, dataset size, batch shape
// Everything is written into DIR/.checkpoint-<step>.tmp-<pid>/ and renamed into place
// once complete, so a crash leaves either the previous checkpoints or the new one.
//
// The format does not depend on the plan: split parameters and moments (tensor
// parallelism, ZeRO) are gathered into whole tensors before writing, one whole tensor
// per name, exactly the files one device writes; resuming reads each device's block
// back, so a checkpoint resumes under any plan and loads in transformers.
#pragma once

#include "runtime/checkpoint/TrainerState.h"
#include "runtime/checkpoint/Weights.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace apc::comm {
class Communicator;
}

namespace apc::checkpoint {

struct CheckpointContents {
  std::vector<ParameterSlot> parameters;
  std::vector<ParameterSlot> expAvg, expAvgSq; // same names and shapes as parameters
  std::string configJson;                      // Hugging Face config.json text
  TrainerState state;
};

// Writes DIR/checkpoint-<state.step>; returns its path. Every slot must be whole; each is
// written straight from its data (no copy).
Result<std::string> saveCheckpoint(const std::string &dir, const CheckpointContents &contents);

// The same checkpoint from all ranks of a job: every rank of `world` (whose ranks are the
// mesh's ranks, row-major over `mesh`) calls this at the same step with its own slots.
// Split tensors, and tensors rank 0 does not hold (another pipeline stage's: slots with
// `holders` set), are gathered to rank 0 one tensor at a time: each block is broadcast
// once by the lowest rank holding it (with every rank holding it, the device with
// coordinate 0 on the axes the tensor is not split over; a tensor several stages hold,
// such as a tied embedding, is sent by one of them). Every rank passes a slot for every
// tensor, held or not, in the same order. Rank 0 writes the files saveCheckpoint writes
// and then tells every rank how it went: all ranks return rank 0's path or its error
// (or a communication error within the communicator's timeout, when a rank died).
// Rank 0 streams: it appends each tensor to its file as soon as it is gathered, so its
// memory beyond the slots is one whole tensor and one block, not the model; after a
// failure to write it still takes part in the remaining gathers, so no rank waits.
Result<std::string> saveCheckpoint(const std::string &dir, const CheckpointContents &contents,
                                   comm::Communicator &world, const std::vector<int64_t> &mesh);

// Resolves DIR to a checkpoint folder: DIR itself if it holds trainer_state.json, else
// its complete checkpoint-<N> with the largest N. Newer checkpoint-<M> folders that lack
// a file (a copy cut short, a file deleted) are passed over; each is described in
// `passedOver` ("<folder> (no optimizer.safetensors)"), newest first, for the caller to
// report.
Result<std::string> findCheckpoint(const std::string &dir,
                                   std::vector<std::string> *passedOver = nullptr);

// Loads weights, moments and trainer state from a checkpoint folder into the slots (a
// split slot reads its block only; a slot with null data, held by another rank, nothing).
Result<TrainerState> loadCheckpoint(const std::string &folder,
                                    const CheckpointContents &slots);

} // namespace apc::checkpoint
