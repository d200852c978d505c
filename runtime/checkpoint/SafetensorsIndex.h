// model.safetensors.index.json: which shard file holds each tensor of a sharded model.
#pragma once

#include "runtime/support/Status.h"

#include <map>
#include <string>

namespace apc::checkpoint {

// Tensor name -> shard path (the index's folder joined with the file its "weight_map"
// names), from the text of the index read from `indexPath`. A shard must be a relative
// path inside the index's folder (no "..", not absolute); errors name indexPath.
Result<std::map<std::string, std::string>> parseSafetensorsIndex(const std::string &text,
                                                                 const std::string &indexPath);

} // namespace apc::checkpoint
