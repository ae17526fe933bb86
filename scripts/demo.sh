#!/usr/bin/env bash
# Builds and runs the peerlink demo: everything on loopback, no outside server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target peerlink_demo
exec build/default/examples/peerlink_demo "$@"
