// The built-in cluster profiles: the text of compiler/cost/profiles/*.json, compiled in
// by EmbedProfiles.cmake so the tools need no data folder at run time.
#pragma once

#include <vector>

namespace apc::cost {

struct EmbeddedProfile {
  const char *name; // the file's name without .json: what --cluster NAME:N takes
  const char *text; // the file's JSON
};

// Sorted by name.
const std::vector<EmbeddedProfile> &embeddedProfiles();

} // namespace apc::cost
