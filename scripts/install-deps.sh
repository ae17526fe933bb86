#!/usr/bin/env bash
# Installs what peerlink's build and tests need from Debian 12's packages.
# Run as root (or with sudo available). Does nothing when all are present.
set -euo pipefail

packages=(
    g++ clang cmake ninja-build pkg-config   # toolchain
    libasio-dev nlohmann-json3-dev libssl-dev # the library's dependencies
    catch2                                    # tests
    golang-go golang-github-xtaci-kcp-dev     # kcp-go, the real KCP peer of the interop tests
    golang-github-klauspost-reedsolomon-dev   # the Reed-Solomon reference (kcp-go's FEC)
    libisal-dev                               # ISA-L, the yardstick of the FEC benchmark
    coturn                                    # STUN/TURN server and clients the NAT tests face
    tshark                                    # checks that DNS-disguised packets are valid DNS
    nodejs node-ws                            # a real WebSocket peer for the signaling server
    iproute2 nftables                         # network namespaces and NATs of the NAT lab
    "$@"
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
