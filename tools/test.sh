#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, then runs every test (lit,
# gtest, end-to-end numerics) through ctest, whose summary ends the log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
