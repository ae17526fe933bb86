#!/usr/bin/env bash
# Builds peerlink and passes all its tests: the default build (every test), then
# the unit and simulation tests again under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --workflow --preset default
cmake --workflow --preset asan
