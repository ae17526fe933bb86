#!/usr/bin/env bash
# Builds the kcp-go peer (main.go beside this script) with the distribution's Go and
# kcp-go source packages in GOPATH mode: nothing is downloaded.
#
#   tests/interop/kcpgo/build.sh OUTPUT
#
# Needs: apt-get install golang-go golang-github-xtaci-kcp-dev (scripts/install-deps.sh).
# Does nothing when OUTPUT is newer than main.go.
set -euo pipefail
out=${1:?usage: build.sh OUTPUT}
src="$(cd "$(dirname "$0")" && pwd)/main.go"
gopath=/usr/share/gocode

if ! command -v go >/dev/null 2>&1; then
    echo "kcpgo: 'go' not found: the kcp-go interop peer needs the distribution's Go." >&2
    echo "kcpgo: install it with: apt-get install golang-go golang-github-xtaci-kcp-dev" >&2
    echo "kcpgo: (scripts/install-deps.sh installs both)" >&2
    exit 1
fi
if [ ! -f "$gopath/src/github.com/xtaci/kcp-go/sess.go" ]; then
    echo "kcpgo: kcp-go's source is not in $gopath/src/github.com/xtaci/kcp-go." >&2
    echo "kcpgo: install it with: apt-get install golang-github-xtaci-kcp-dev" >&2
    exit 1
fi
if [ -x "$out" ] && [ "$out" -nt "$src" ]; then
    exit 0
fi

mkdir -p "$(dirname "$out")"
export GO111MODULE=off GOPATH="$gopath" GOPROXY=off GOFLAGS= CGO_ENABLED=0
export GOCACHE="${GOCACHE:-$(cd "$(dirname "$out")" && pwd)/go-cache}"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
go build -o "$tmp" "$src"
mv -f "$tmp" "$out"
echo "kcpgo: built $out with $(go version)"
