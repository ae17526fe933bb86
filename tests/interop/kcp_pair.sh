#!/usr/bin/env bash
# Runs one bulk transfer between two peers on 127.0.0.1 and checks it.
#
#   kcp_pair.sh --receiver KIND --sender KIND --bytes N [--timeout S]
#               [--kcp-bench PATH] [--kcpgo PATH] [--udp-blast PATH]
#               [--peerlink-arg ARG]... [--quiet] -- [KCP FLAGS]
#
# KIND: peerlink (benchmarks/kcp_bench), go (tests/interop/kcpgo, a kcp-go program)
# or udp (benchmarks/udp_blast, raw UDP: both sides must be udp). KCP FLAGS are in
# kcp_bench's syntax (--mode M --wnd W --mtu M --interval MS --conv C --no-cwnd
# --stream) and are translated for the Go peer (-mode, ..., -nocwnd, -stream); both
# sides get the same. --peerlink-arg passes a flag to kcp_bench only.
#
# The receiver listens on a free port it picks itself (port 0, read back from its
# "listening on" line). For KCP the test passes when both exit 0, the receiver got
# N bytes, and its SHA-256 equals the sender's (and the sender saw it: "verified").
# Prints the receiver's JSON line, then the sender's, on stdout. Every child is
# bounded by a timeout and killed on exit.
set -euo pipefail

receiver= sender= bytes= timeout=60 quiet=0
kcp_bench= kcpgo= udp_blast=
kcp_args=() pl_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --receiver) receiver=$2; shift 2 ;;
    --sender) sender=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --kcp-bench) kcp_bench=$2; shift 2 ;;
    --kcpgo) kcpgo=$2; shift 2 ;;
    --udp-blast) udp_blast=$2; shift 2 ;;
    --peerlink-arg) pl_args+=("$2"); shift 2 ;;
    --quiet) quiet=1; shift ;;
    --) shift; kcp_args=("$@"); break ;;
    *) echo "kcp_pair: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ -n "$receiver" ] && [ -n "$sender" ] && [ -n "$bytes" ] || {
    echo "kcp_pair: --receiver, --sender and --bytes are required" >&2
    exit 2
}

for kind in "$receiver" "$sender"; do
    case $kind in
    peerlink) [ -x "$kcp_bench" ] || { echo "kcp_pair: --kcp-bench '$kcp_bench' is not an executable (build the kcp_bench target)" >&2; exit 2; } ;;
    go) [ -x "$kcpgo" ] || { echo "kcp_pair: --kcpgo '$kcpgo' is not an executable: build it with tests/interop/kcpgo/build.sh (needs: apt-get install golang-go golang-github-xtaci-kcp-dev)" >&2; exit 2; } ;;
    udp) [ -x "$udp_blast" ] || { echo "kcp_pair: --udp-blast '$udp_blast' is not an executable" >&2; exit 2; } ;;
    *) echo "kcp_pair: unknown peer kind '$kind' (peerlink, go, udp)" >&2; exit 2 ;;
    esac
done
if { [ "$receiver" = udp ] || [ "$sender" = udp ]; } && [ "$receiver" != "$sender" ]; then
    echo "kcp_pair: udp only faces udp" >&2
    exit 2
fi

# The Go peer's spelling of the same flags; the MTU for raw UDP datagrams.
go_args=() mtu=1400
for ((i = 0; i < ${#kcp_args[@]}; i++)); do
    a=${kcp_args[$i]}
    case $a in
    --no-cwnd) go_args+=(-nocwnd) ;;
    --mtu) mtu=${kcp_args[$((i + 1))]}; go_args+=(-mtu) ;;
    --*) go_args+=("-${a#--}") ;;
    *) go_args+=("$a") ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kcp_pair.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# listen_cmd KIND / send_cmd KIND PORT: the command lines, into the array `cmd`.
listen_cmd() {
    case $1 in
    peerlink) cmd=("$kcp_bench" --listen 127.0.0.1:0 "${kcp_args[@]}" "${pl_args[@]}" --timeout "$timeout") ;;
    go) cmd=("$kcpgo" -listen 127.0.0.1:0 "${go_args[@]}" -timeout "${timeout}s") ;;
    udp) cmd=("$udp_blast" --listen 127.0.0.1:0 --timeout "$timeout") ;;
    esac
}
send_cmd() {
    case $1 in
    peerlink) cmd=("$kcp_bench" --connect "127.0.0.1:$2" --bytes "$bytes" "${kcp_args[@]}" "${pl_args[@]}" --timeout "$timeout") ;;
    go) cmd=("$kcpgo" -connect "127.0.0.1:$2" -bytes "$bytes" "${go_args[@]}" -timeout "${timeout}s") ;;
    udp) cmd=("$udp_blast" --connect "127.0.0.1:$2" --bytes "$bytes" --size "$mtu") ;;
    esac
}

hard_limit=$((timeout + 15))
listen_cmd "$receiver"
timeout -k 5 "$hard_limit" "${cmd[@]}" >"$work/receiver.out" 2>"$work/receiver.err" &
rpid=$!
pids+=("$rpid")

port=
for _ in $(seq 200); do
    port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)$/\1/p' "$work/receiver.err" | head -n 1)
    [ -n "$port" ] && break
    if ! kill -0 "$rpid" 2>/dev/null; then
        break
    fi
    sleep 0.05
done
if [ -z "$port" ]; then
    echo "kcp_pair: the $receiver receiver did not start listening:" >&2
    cat "$work/receiver.err" >&2
    exit 1
fi

send_cmd "$sender" "$port"
src=0
timeout -k 5 "$hard_limit" "${cmd[@]}" >"$work/sender.out" 2>"$work/sender.err" || src=$?
rrc=0
wait "$rpid" || rrc=$?
pids=()

show() {
    echo "--- $sender sender (exit $src): $(cat "$work/sender.out")" >&2
    sed 's/^/    /' "$work/sender.err" >&2
    echo "--- $receiver receiver (exit $rrc): $(cat "$work/receiver.out")" >&2
    sed 's/^/    /' "$work/receiver.err" >&2
}
field() { # field NAME FILE: a JSON number or string value from a one-line object
    sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$2" | head -n 1
}

if [ "$src" -ne 0 ] || [ "$rrc" -ne 0 ]; then
    echo "kcp_pair: FAILED: $sender -> $receiver: exit codes sender $src, receiver $rrc" >&2
    show
    exit 1
fi
got=$(field bytes "$work/receiver.out")
if [ "$receiver" != udp ]; then
    sha_s=$(field sha256 "$work/sender.out")
    sha_r=$(field sha256 "$work/receiver.out")
    verified=$(field verified "$work/sender.out")
    if [ "$got" != "$bytes" ] || [ -z "$sha_r" ] || [ "$sha_s" != "$sha_r" ] || [ "$verified" != true ]; then
        echo "kcp_pair: FAILED: $sender -> $receiver: received $got of $bytes bytes, SHA-256 sender $sha_s receiver $sha_r, verified '$verified'" >&2
        show
        exit 1
    fi
fi
[ "$quiet" -eq 1 ] || echo "kcp_pair: ok: $sender -> $receiver, $got bytes at $(field mbps "$work/receiver.out") MB/s (${kcp_args[*]} ${pl_args[*]})" >&2
cat "$work/receiver.out" "$work/sender.out"
