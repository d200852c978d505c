// Loading plan.fb: verified once, then trusted.
//
// `load` reads the file, checks the identifier and version, runs the flatbuffers
// Verifier, and then checks the plan's meaning: enum values in range, buffer sizes
// equal to their shapes, arena buffers inside the arena, aliases and parameter indices
// in range, parameter and optimizer-state buffers matching their ParameterSpec under
// their dim_axes (axes in the mesh, none twice, split dims = global / axis size, the
// same split on every device), instruction operands in range, a scalar f32 loss, one
// step and lr input per program and input_ids (labels) on the stage with the embedding
// (head), every stage with no pipeline section, each program's stage in range. Every
// refusal names the file and what is wrong; callers exit with code 2.
#pragma once

#include "runtime/support/Status.h"

#include <string>

namespace apc::plan {
struct Plan;

class LoadedPlan {
public:
  static Result<LoadedPlan> load(const std::string &path);
  static Result<LoadedPlan> fromBytes(std::string bytes, const std::string &name);

  const Plan &plan() const;
  const std::string &path() const { return path_; }

private:
  std::string path_;
  std::string bytes_;
};

// Refuses a plan compiled for a backend this runtime lacks (`--cluster h100-sxm:8` makes a
// cuda plan; only the CPU backend is built), naming the plan's cluster. `aprun --dump`
// reads any plan; running one checks this first.
Status checkBackendBuilt(const Plan &plan, const std::string &path);

} // namespace apc::plan
