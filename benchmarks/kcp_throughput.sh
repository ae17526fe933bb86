#!/usr/bin/env bash
# Bulk throughput over loopback UDP, in one run, with equal settings:
#   peerlink -> peerlink   (benchmarks/kcp_bench, kcp_session<udp_transport>)
#   kcp-go   -> kcp-go     (tests/interop/kcpgo, the distribution's kcp-go)
#   raw UDP                (benchmarks/udp_blast: sendmmsg/recvmmsg, the physical limit)
# and prints each MB/s (received, 10^6 bytes per second) and the ratios
# peerlink/kcp-go and peerlink/raw UDP, and the CPU time each pair of processes
# spent per GB (a figure that depends less on the machine's load).
#
#   benchmarks/kcp_throughput.sh [--build-dir DIR] [--bytes N] [--repeat R]
#       [--wnd W] [--mtu M] [--interval MS] [--stream] [--extra]
#       [--kcp-bench PATH] [--kcpgo PATH] [--udp-blast PATH]
#
# Defaults: 256 MiB, window 4096, MTU 1400, interval 10 ms, nodelay 1 with fast
# resend 2 (the turbo mode), no congestion window, message mode. The interval is 10
# ms because kcp-go clamps it to 10..5000; peerlink runs at the same one (--extra
# adds peerlink at 1 ms, which kcp-go cannot do, and peerlink without flush_on_ack).
# With --repeat R each contender runs R times, interleaved, and the best counts.
# The aims (issue "KCP reliable transport"): >= 3x kcp-go, >= 0.5x raw UDP.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build_dir="$root/build/default"
bytes=$((256 << 20)) repeat=1 wnd=4096 mtu=1400 interval=10 stream=() extra=0
kcp_bench= kcpgo= udp_blast=
while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --wnd) wnd=$2; shift 2 ;;
    --mtu) mtu=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --stream) stream=(--stream); shift ;;
    --extra) extra=1; shift ;;
    --kcp-bench) kcp_bench=$2; shift 2 ;;
    --kcpgo) kcpgo=$2; shift 2 ;;
    --udp-blast) udp_blast=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "kcp_throughput: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
kcp_bench=${kcp_bench:-$build_dir/benchmarks/kcp_bench}
udp_blast=${udp_blast:-$build_dir/benchmarks/udp_blast}
kcpgo=${kcpgo:-$build_dir/kcpgo/kcpgo}
for f in "$kcp_bench" "$udp_blast"; do
    [ -x "$f" ] || { echo "kcp_throughput: $f missing: build the kcp_bench and udp_blast targets" >&2; exit 2; }
done
bash "$root/tests/interop/kcpgo/build.sh" "$kcpgo" >&2

pair=("$root/tests/interop/kcp_pair.sh" --kcp-bench "$kcp_bench" --kcpgo "$kcpgo"
    --udp-blast "$udp_blast" --bytes "$bytes" --timeout 120 --quiet)
settings=(--mode turbo --wnd "$wnd" --mtu "$mtu" --interval "$interval" --no-cwnd "${stream[@]}")

mbps() { sed -n 's/.*"mbps":\([0-9.]*\).*/\1/p'; }
best() { # best NAME VALUE: keeps the larger value in the variable NAME
    if [ -z "${!1}" ] || awk -v a="$2" -v b="${!1}" 'BEGIN { exit !(a > b) }'; then
        printf -v "$1" '%s' "$2"
    fi
}

# run ARGS...: one transfer through kcp_pair.sh; prints the receiver's MB/s and the
# CPU seconds of both processes per GB moved, or stops the script.
run() {
    local out
    # One retry: on a shared, loaded machine a pair (kcp-go's own included) can stall
    # past its timeout; a second failure is a real one.
    out=$("${pair[@]}" "$@") || {
        echo "kcp_throughput: a run failed, retrying once: $*" >&2
        out=$("${pair[@]}" "$@") || { echo "kcp_throughput: a run failed twice: $*" >&2; exit 1; }
    }
    local cpu
    cpu=$(sed -n 's/.*"cpu":\([0-9.]*\).*/\1/p' <<<"$out" |
        awk -v b="$bytes" '{ s += $1 } END { printf "%.2f", s / (b / 1e9) }')
    echo "$(head -n 1 <<<"$out" | mbps) $cpu"
}

pl= go= raw= pl1= plgrid= cpu_pl= cpu_go= cpu_raw= cpu_pl1= cpu_plgrid=
# measure NAME ARGS...: one run; keeps the best MB/s in NAME and the CPU of that run.
measure() {
    local name=$1 v
    shift
    v=$(run "$@")
    local before=${!name}
    best "$name" "${v% *}"
    [ "${!name}" = "$before" ] || printf -v "cpu_$name" '%s' "${v#* }"
}
for ((r = 0; r < repeat; r++)); do
    measure pl --sender peerlink --receiver peerlink -- "${settings[@]}" --conv 601
    measure go --sender go --receiver go -- "${settings[@]}" --conv 602
    measure raw --sender udp --receiver udp -- --mtu "$mtu"
    if [ "$extra" -eq 1 ]; then
        measure pl1 --sender peerlink --receiver peerlink -- --mode turbo --wnd "$wnd" \
            --mtu "$mtu" --interval 1 --no-cwnd "${stream[@]}" --conv 603
        measure plgrid --sender peerlink --receiver peerlink --peerlink-arg --grid-flush -- \
            "${settings[@]}" --conv 604
    fi
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mode=message
[ ${#stream[@]} -eq 0 ] || mode=stream
echo "KCP bulk throughput over loopback UDP, $((bytes >> 20)) MiB, best of $repeat"
echo "settings: wnd $wnd, mtu $mtu, interval $interval ms (kcp-go's floor is 10), nodelay 1," \
    "resend 2, no cwnd, $mode mode"
line() { printf '  %-40s %10s MB/s %8s CPU s/GB\n' "$1" "$2" "$3"; }
line "peerlink -> peerlink" "$pl" "$cpu_pl"
line "kcp-go   -> kcp-go" "$go" "$cpu_go"
line "raw UDP sendmmsg ($mtu-byte datagrams)" "$raw" "$cpu_raw"
if [ "$extra" -eq 1 ]; then
    line "peerlink, interval 1 ms" "$pl1" "$cpu_pl1"
    line "peerlink, no flush_on_ack" "$plgrid" "$cpu_plgrid"
fi
printf '  %-40s %10sx (aim >= 3)\n' "peerlink / kcp-go" "$(ratio "$pl" "$go")"
printf '  %-40s %10sx (aim >= 0.5)\n' "peerlink / raw UDP" "$(ratio "$pl" "$raw")"
printf '  %-40s %10sx\n' "CPU per byte, kcp-go / peerlink" "$(ratio "$cpu_go" "$cpu_pl")"
echo "(MB/s: received, 10^6 bytes/s. CPU s/GB: user+system seconds of sender and receiver"
echo " per 10^9 bytes, SHA-256 of the data on both sides included for KCP, none for raw UDP.)"
