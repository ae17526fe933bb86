#!/usr/bin/env bash
# The whole packet pipeline over loopback UDP, in one run, with equal settings:
#   peerlink -> peerlink  pipeline_bench: peer_connection<udp_transport, kcp<kcp_turbo>,
#                         noise_chacha20poly1305, reed_solomon_fec<>>, FEC 10:3 (fixed,
#                         not adaptive), Noise IK + ChaCha20-Poly1305
#   kcp-go  -> kcp-go     kcpgo_pipeline: kcp-go with FEC 10/3 and salsa20
# Both: KCP nodelay 1, interval 10 ms, fast resend 2, no congestion window, windows
# 256/256 (kcp_turbo's; --wnd 4096 for wider ones, with peerlink's flush_on_ack on as
# kcp-go always flushes when the window slides), message mode, 1400-byte datagrams,
# 4 MiB socket buffers. Prints the receivers' MB/s (10^6 bytes per second), the ratio
# peerlink/kcp-go (aim: >= 2x), and the CPU seconds each pair of processes spent per
# GB moved (user + system of sender and receiver: depends less on the machine's load).
# Checks that the receiver's SHA-256 equals the sender's in every run.
#
#   benchmarks/pipeline/run_pipeline.sh --build-dir DIR [--bytes N] [--repeat R]
#       [--wnd 256|4096] [--timeout S] [--pipeline-bench PATH] [--kcpgo PATH]
#
# DIR is the CMake build directory (the programs are in DIR/benchmarks/pipeline).
# Defaults: 256 MiB, 1 repeat. With --repeat R each pair runs R times, interleaved,
# and the best MB/s counts (with that run's CPU). Without kcpgo_pipeline in DIR it is
# built with the distribution's Go and kcp-go (GOPATH mode, nothing downloaded).
# Exit: 0 success, 1 a transfer failed or a digest differs, 2 bad usage, 77 a
# prerequisite is missing (no pipeline_bench, no Go or kcp-go).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
build_dir=
bytes=$((256 << 20)) repeat=1 wnd=256 timeout_s=120
bench='' kcpgo=''
while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --wnd) wnd=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --pipeline-bench) bench=$2; shift 2 ;;
    --kcpgo) kcpgo=$2; shift 2 ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "run_pipeline: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ -z "$build_dir" ] && { [ -z "$bench" ] || [ -z "$kcpgo" ]; }; then
    echo "run_pipeline: --build-dir DIR is required (see --help)" >&2
    exit 2
fi
bench=${bench:-$build_dir/benchmarks/pipeline/pipeline_bench}
kcpgo=${kcpgo:-$build_dir/benchmarks/pipeline/kcpgo_pipeline}
if ! [ -x "$bench" ]; then
    echo "run_pipeline: $bench missing: build the pipeline_bench target (skipped)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/run_pipeline.XXXXXX")
listener=
cleanup() {
    if [ -n "$listener" ] && kill -0 "$listener" 2>/dev/null; then
        kill "$listener" 2>/dev/null || true
        wait "$listener" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if ! [ -x "$kcpgo" ]; then
    gopath=/usr/share/gocode
    if ! command -v go >/dev/null 2>&1 || ! [ -f "$gopath/src/github.com/xtaci/kcp-go/sess.go" ]; then
        echo "run_pipeline: no Go or no kcp-go source in $gopath (apt-get install golang-go" \
            "golang-github-xtaci-kcp-dev): the kcp-go yardstick cannot run (skipped)"
        exit 77
    fi
    kcpgo=$tmp/kcpgo_pipeline
    GO111MODULE=off GOPATH=$gopath GOPROXY=off GOFLAGS='' CGO_ENABLED=0 \
        GOCACHE="${GOCACHE:-$tmp/gocache}" go build -o "$kcpgo" "$here/kcpgo_pipeline.go"
fi

field() { # field KEY: the value of "KEY" in the JSON line on stdin
    sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -n 1
}

# transfer NAME: one transfer of the pair NAME (peerlink or kcpgo); sets result to
# "MBPS CPU_PER_GB" and cipher, or exits 1 (in this shell, so the trap cleans up).
transfer() {
    local name=$1 out=$tmp/$1
    local -a listen_cmd connect_cmd
    if [ "$name" = peerlink ]; then
        listen_cmd=("$bench" --listen 127.0.0.1:0 --wnd "$wnd" --timeout "$timeout_s")
    else
        listen_cmd=("$kcpgo" -listen 127.0.0.1:0 -wnd "$wnd" -timeout "${timeout_s}s")
    fi
    : >"$out.lerr"
    timeout $((timeout_s + 15)) "${listen_cmd[@]}" >"$out.lout" 2>"$out.lerr" &
    listener=$!
    local port='' peer='' i
    for ((i = 0; i < 200; ++i)); do
        port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$out.lerr")
        [ -n "$port" ] && break
        kill -0 "$listener" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        echo "run_pipeline: the $name listener did not start:" >&2
        cat "$out.lerr" >&2
        exit 1
    fi
    if [ "$name" = peerlink ]; then
        peer=$(sed -n 's/.* peer \(pl[a-z0-9]*\).*/\1/p' "$out.lerr")
        connect_cmd=("$bench" --connect "127.0.0.1:$port" --bytes "$bytes" --wnd "$wnd"
            --timeout "$timeout_s" --peer "$peer")
    else
        connect_cmd=("$kcpgo" -connect "127.0.0.1:$port" -bytes "$bytes" -wnd "$wnd"
            -timeout "${timeout_s}s")
    fi
    local rc=0
    timeout $((timeout_s + 15)) "${connect_cmd[@]}" >"$out.cout" 2>"$out.cerr" || rc=$?
    local lrc=0
    wait "$listener" || lrc=$?
    listener=
    if [ $rc -ne 0 ] || [ $lrc -ne 0 ]; then
        echo "run_pipeline: $name failed (sender exit $rc, receiver exit $lrc):" >&2
        cat "$out.cerr" "$out.lerr" >&2
        exit 1
    fi
    local recv send
    recv=$(grep '"role":"receiver"' "$out.lout" || true)
    send=$(grep '"role":"sender"' "$out.cout" || true)
    local want got
    want=$(field sha256 <<<"$send")
    got=$(field sha256 <<<"$recv")
    if [ -z "$want" ] || [ "$want" != "$got" ] || [ "$(field bytes <<<"$recv")" != "$bytes" ]; then
        echo "run_pipeline: $name: the received data differs (sent sha256 '$want'," \
            "received '$got', $(field bytes <<<"$recv") of $bytes bytes)" >&2
        exit 1
    fi
    local fec_s fec_r
    fec_s=$(field fec <<<"$send")
    fec_r=$(field fec <<<"$recv")
    if [ "$fec_s" != 10:3 ] || [ "$fec_r" != 10:3 ]; then
        echo "run_pipeline: $name: FEC was not 10:3 to the end (sender $fec_s, receiver $fec_r)" >&2
        exit 1
    fi
    cipher=$(field cipher <<<"$recv")
    local cpu
    cpu=$(awk -v a="$(field cpu <<<"$send")" -v b="$(field cpu <<<"$recv")" -v n="$bytes" \
        'BEGIN { printf "%.2f", (a + b) / (n / 1e9) }')
    result="$(field mbps <<<"$recv") $cpu"
}

result='' cipher='' pl='' go='' cpu_pl='' cpu_go='' pl_cipher=''
keep() { # keep NAME CPU_NAME "MBPS CPU": the best MB/s and that run's CPU
    local v=${3% *} c=${3#* }
    if [ -z "${!1}" ] || awk -v a="$v" -v b="${!1}" 'BEGIN { exit !(a > b) }'; then
        printf -v "$1" '%s' "$v"
        printf -v "$2" '%s' "$c"
    fi
}

mib=$(awk -v b="$bytes" 'BEGIN { printf "%g", b / 1048576 }')
echo "run_pipeline: $mib MiB over 127.0.0.1, KCP turbo (nodelay 1, interval 10 ms, resend 2," \
    "no cwnd), windows $wnd/$wnd, message mode, 1400-byte datagrams, best of $repeat"
for ((r = 1; r <= repeat; ++r)); do
    transfer peerlink
    pl_cipher=$cipher
    echo "  run $r peerlink: $result (MB/s, CPU s/GB)"
    keep pl cpu_pl "$result"
    transfer kcpgo
    echo "  run $r kcp-go:   $result (MB/s, CPU s/GB)"
    keep go cpu_go "$result"
done

printf 'peerlink (KCP + FEC 10:3 + %s, ChaCha20-Poly1305): %9.1f MB/s  %6.2f CPU s/GB\n' \
    "$pl_cipher" "$pl" "$cpu_pl"
printf 'kcp-go   (KCP + FEC 10/3 + salsa20):                   %9.1f MB/s  %6.2f CPU s/GB\n' \
    "$go" "$cpu_go"
awk -v a="$pl" -v b="$go" -v ca="$cpu_pl" -v cb="$cpu_go" 'BEGIN {
    printf "ratio peerlink/kcp-go: %.2fx throughput (aim >= 2x), %.2fx less CPU per GB\n",
        a / b, cb / ca }'
echo "SHA-256 equal on both ends in every run"
