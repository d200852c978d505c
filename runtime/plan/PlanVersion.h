// The plan format's version: bump on any change that old readers would misread.
#pragma once

namespace apc::plan {
constexpr unsigned kPlanVersion = 1;
} // namespace apc::plan
