#!/usr/bin/env bash
# Installs every Debian package APC needs to build and test, then configures the build.
# Idempotent: packages already present are skipped and `apt-get update` runs at most once.
# Also makes .venv (Debian's python3 with its torch and numpy, plus the PyPI test oracles
# of tools/test-requirements.txt).
set -euo pipefail

PACKAGES=(
  cmake ninja-build ccache g++ pkg-config
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  libflatbuffers-dev flatbuffers-compiler libfmt-dev libgtest-dev nlohmann-json3-dev
  libopenblas-openmp-dev libgloo-dev libpcre2-dev
  python3 python3-venv python3-numpy python3-torch
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Python the tests use: Debian's python3 (torch, numpy) plus pinned PyPI oracles.
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! cmp -s tools/test-requirements.txt .venv/.requirements-installed; then
  echo "setup: installing test oracles from tools/test-requirements.txt into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check -r tools/test-requirements.txt
  cp tools/test-requirements.txt .venv/.requirements-installed
fi
