#!/usr/bin/env bash
# Builds peerlink and passes all its tests: the default build (every test), then
# the unit and simulation tests again under AddressSanitizer + UBSan, then a
# Clang build with warnings as errors (GCC and Clang must both stay clean).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --workflow --preset default
cmake --workflow --preset asan
cmake --preset clang
cmake --build --preset clang
