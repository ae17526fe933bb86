#!/usr/bin/env bash
# Memory and idle CPU per KCP session: peerlink (kcp_sessions) beside kcp-go
# (kcpgo_sessions, when built), same pair count, same settings (Fast), same run.
#
#   run_sessions.sh --bin DIR [--pairs N] [--idle-seconds S] [--bytes B] [--quick]
#
# Defaults: 100 pairs (200 sessions), 20 s idle (past the first 15 s keepalive),
# 256 KiB per pair under load. --quick: 20 pairs, 3 s idle, 64 KiB per pair (ctest).
# Needs no root (with root, the kernel's per-socket objects are shown too). Exit:
# kcp_sessions' status (0 when every pair connected and moved its bytes), or
# kcpgo_sessions' if that failed.
#
# Idle CPU: some virtual machines (this one) charge a sleeping process a little CPU
# time, growing with its resident memory, so peerlink's measured idle CPU is partly
# that charge. Besides the figure as measured, the full run (not --quick) separates
# the keepalives' own cost: a second kcp_sessions run with keepalives every 250 ms,
# minus the quiet charge of the first run (its median one-second slice), scaled back
# to the default keepalive interval.
set -u

bin=""
quick=0
pairs=100
idle=20
bytes=262144
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --idle-seconds) idle="$2"; shift 2 ;;
    --bytes) bytes="$2"; shift 2 ;;
    --quick) pairs=20; idle=3; bytes=65536; quick=1; shift ;;
    *) echo "run_sessions.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ] || [ ! -x "$bin/kcp_sessions" ]; then
    echo "run_sessions.sh: --bin DIR must hold kcp_sessions" >&2
    exit 2
fi

out="$(mktemp /tmp/plk_sessions.XXXXXX)"
trap 'rm -f "$out" "$out.go" "$out.probe"' EXIT

timeout 600 "$bin/kcp_sessions" --pairs "$pairs" --idle-seconds "$idle" --bytes "$bytes" \
    --mode fast | tee "$out"
status=${PIPESTATUS[0]}
echo
: >"$out.probe"
if [ "$quick" = 0 ]; then
    echo "keepalive probe: the same sessions with a keepalive every 250 ms"
    timeout 600 "$bin/kcp_sessions" --pairs "$pairs" --idle-seconds 10 --bytes 4096 --mode fast \
        --keepalive-ms 250 >"$out.probe"
    grep -A2 '^idle' "$out.probe"
    echo
fi
if [ -x "$bin/kcpgo_sessions" ]; then
    timeout 600 "$bin/kcpgo_sessions" -pairs "$pairs" -idle-seconds "$idle" -bytes "$bytes" |
        tee "$out.go"
    go_status=${PIPESTATUS[0]}
    [ "$status" = 0 ] && status=$go_status
    echo
else
    echo "kcp-go yardstick not built (needs golang-go and golang-github-xtaci-kcp-dev)"
    : >"$out.go"
fi

field() { # file key
    grep '^RESULT' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
row() { # label key unit(kib|count|pct)
    local a b
    a=$(field "$out" "$2")
    b=$(field "$out.go" "$2")
    awk -v l="$1" -v a="$a" -v b="$b" -v u="$3" 'BEGIN {
        if (u == "kib") { sa = sprintf("%.1f KiB", a / 1024); sb = (b == "") ? "-" : sprintf("%.1f KiB", b / 1024) }
        else if (u == "pct") { sa = sprintf("%.4f%%", a * 100); sb = (b == "") ? "-" : sprintf("%.4f%%", b * 100) }
        else { sa = sprintf("%d", a); sb = (b == "") ? "-" : sprintf("%d", b) }
        r = (b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b)
        printf "  %-34s %16s %16s %8s\n", l, sa, sb, r
    }'
}

echo "per session (one end of a pair), $((2 * pairs)) sessions, Fast settings:"
printf "  %-34s %16s %16s %8s\n" "" peerlink kcp-go "ratio"
row "resident, just connected" connected_rss_per_session kib
row "heap, just connected" connected_heap_per_session kib
row "resident, idle (after ${idle} s)" idle_rss_per_session kib
row "heap, idle (after ${idle} s)" idle_heap_per_session kib
row "resident, peak under load" peak_rss_per_session kib
row "heap, peak under load" peak_heap_per_session kib
row "resident, after ${bytes} B per pair" loaded_rss_per_session kib
row "heap, after ${bytes} B per pair" loaded_heap_per_session kib
row "idle CPU, all sessions" idle_cpu_fraction pct
row "idle sessions per thread at 1% CPU" sessions_at_1pct_cpu count
if [ -s "$out.probe" ]; then
    # CPU per session per keepalive period, net of the quiet charge, at the default interval.
    awk -v probe="$(field "$out.probe" idle_cpu_fraction)" -v quiet="$(field "$out" quiet_cpu_fraction)" \
        -v n="$(field "$out" sessions)" -v ka="$(field "$out" keepalive_ms)" 'BEGIN {
        net = probe - quiet; if (net < 0) net = 0
        per_keepalive = net * 0.25 / n          # CPU seconds per session per keepalive
        frac = per_keepalive / (ka / 1000)      # per session, at the default interval
        printf "  %-34s %16s %16s %8s\n", "  keepalive work only (net)", \
            (frac > 0) ? sprintf("%d", 0.01 / frac) : "-", "-", "-"
        printf "  (%.1f us CPU per session per keepalive; keepalive every %d ms)\n",
            per_keepalive * 1e6, ka
    }'
fi
awk -v s="$(field "$out" per_socket_heap)" -v k="$(field "$out" kernel_socket_bytes)" 'BEGIN {
    printf "  of which per UDP socket, not per session: %.1f KiB heap (the driver'"'"'s receive batch)", s / 1024
    if (k > 0) printf " + %.1f KiB kernel objects", k / 1024
    printf "\n  (peerlink: one socket per peer_connection; kcp-go: dialled sessions own one, accepted ones share the listener'"'"'s)\n"
}'
idle_rss=$(field "$out" idle_rss_per_session)
awk -v v="$idle_rss" 'BEGIN {
    printf "aim (<= 8 KiB resident per idle session): %s (%.1f KiB)\n",
           (v <= 8192) ? "met" : "NOT met", v / 1024 }'
exit "$status"
