// Writes a whole file so that readers see either the old file or the complete new
// one: data goes to `<path>.tmp.<pid>` in the same folder, is flushed to disk, then
// renamed over `path`. On any failure the temporary file is removed.
#pragma once

#include "runtime/support/Status.h"

#include <string>
#include <string_view>

namespace apc {

Status writeFileAtomically(const std::string &path, std::string_view contents);

} // namespace apc
