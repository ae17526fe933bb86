#!/usr/bin/env bash
# STUN interop with coturn, on loopback only (ctest label `interop`).
#
#   stun_interop.sh --tool PATH-TO-peerlink_stun_tool
#
# 1. coturn's turnserver (STUN only, RFC 5780 on 127.0.0.1 and 127.0.0.2, a primary
#    and an alternate port, also on ::1 when the host has it) answers peerlink's
#    client: Binding over IPv4 and IPv6 (mapped address == our socket's address on
#    loopback), CHANGE-REQUEST (answers from the alternate address and port), and a
#    NAT behaviour discovery that finds no NAT.
# 2. peerlink's server (four sockets on 127.0.0.1/127.0.0.2, one on ::1) answers
#    coturn's turnutils_stunclient (plain and RFC 5780 mode -f) and
#    turnutils_natdiscovery (mapping and filtering), whose answers are checked.
#
# Exit 0 when every check passes, 1 when one fails, 77 (skip) when coturn is missing.
# Every process it starts is killed on exit, failures included; all files live in a
# temporary directory that is removed.
set -uo pipefail

tool=
while [ $# -gt 0 ]; do
    case $1 in
    --tool) tool=$2; shift 2 ;;
    *) echo "stun_interop: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ -x "$tool" ] || { echo "stun_interop: --tool '$tool' is not an executable" >&2; exit 2; }

for prog in turnserver turnutils_stunclient turnutils_natdiscovery; do
    if ! command -v "$prog" >/dev/null 2>&1; then
        echo "SKIP: $prog not found (coturn is not installed: apt-get install coturn)"
        exit 77
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/peerlink-stun-interop.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failures=0
pass() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

have_v6=0
if [ -r /proc/net/if_inet6 ] && grep -q '^0\{31\}1 .* lo$' /proc/net/if_inet6; then
    have_v6=1
fi

# A UDP port p with p+1 free too (on every address; checked with ss, else hoped for).
pick_ports() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if command -v ss >/dev/null 2>&1 &&
            ss -Hlun 2>/dev/null | awk '{print $4}' | grep -Eq "[:.]($p|$((p + 1)))\$"; then
            continue
        fi
        echo "$p"
        return 0
    done
    return 1
}

# --- 1. peerlink's client against coturn -------------------------------------------
port=$(pick_ports) || { echo "stun_interop: no free port pair" >&2; exit 1; }
alt=$((port + 1))
turn_args=(-n --listening-ip 127.0.0.1 --listening-ip 127.0.0.2
    --listening-port "$port" --alt-listening-port "$alt"
    --no-tls --no-dtls --no-tcp --stun-only --no-cli
    --log-file "$tmp/turnserver.log" --simple-log --no-stdout-log
    --pidfile "$tmp/turnserver.pid" --userdb "$tmp/turndb")
[ $have_v6 = 1 ] && turn_args+=(--listening-ip ::1)
v6_note=
[ $have_v6 = 1 ] && v6_note=" and [::1]:$port"
echo "turnserver $(turnserver --version 2>/dev/null | head -1) on 127.0.0.1:$port," \
    "127.0.0.2:$alt$v6_note"
turnserver "${turn_args[@]}" >"$tmp/turnserver.out" 2>&1 &
pids+=($!)

ready=0
for _ in $(seq 1 50); do
    if timeout 5 "$tool" binding "127.0.0.1:$port" --bind 127.0.0.1 --rto 100 --requests 2 \
        >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ $ready = 0 ]; then
    echo "FAIL: turnserver did not answer within 10 s; its log:"
    tail -n 30 "$tmp/turnserver.log" "$tmp/turnserver.out" 2>/dev/null
    exit 1
fi

check_tool() { # description, tool arguments...
    local what=$1
    shift
    local out
    out=$(timeout 30 "$tool" "$@" 2>&1)
    if [ $? = 0 ]; then pass "$what: $out"; else fail "$what: $out"; fi
}

check_tool "binding over IPv4, mapped == local" \
    binding "127.0.0.1:$port" --bind 127.0.0.1 --expect-local
check_tool "CHANGE-REQUEST ip+port answered from 127.0.0.2:$alt" \
    binding "127.0.0.1:$port" --bind 127.0.0.1 --change-ip --change-port \
    --expect-origin "127.0.0.2:$alt"
check_tool "CHANGE-REQUEST port answered from 127.0.0.1:$alt" \
    binding "127.0.0.1:$port" --bind 127.0.0.1 --change-port --expect-origin "127.0.0.1:$alt"
if [ $have_v6 = 1 ]; then
    check_tool "binding over IPv6, mapped == local" \
        binding "[::1]:$port" --bind ::1 --expect-local
else
    echo "note: no ::1 on this host, IPv6 checks skipped"
fi
check_tool "NAT discovery against coturn: no NAT" \
    discover "127.0.0.1:$port" --bind 127.0.0.1 --expect-type "open internet"

# --- 2. coturn's clients against peerlink's server -----------------------------------
"$tool" serve --primary 127.0.0.1:0 --alternate 127.0.0.2:0 >"$tmp/serve.out" 2>&1 &
server_pid=$!
pids+=($server_pid)
for _ in $(seq 1 50); do
    grep -q '^listening' "$tmp/serve.out" && break
    sleep 0.1
done
read -r _ primary other < <(grep '^listening' "$tmp/serve.out")
if [ -z "${primary:-}" ] || [ -z "${other:-}" ]; then
    echo "FAIL: peerlink_stun_tool serve did not start:"
    cat "$tmp/serve.out"
    exit 1
fi
pport=${primary##*:}
aport=${other##*:}
echo "peerlink server on $primary, alternate $other"

expect_lines() { # description, file, extended regexps...
    local what=$1 file=$2
    shift 2
    local re
    for re in "$@"; do
        if ! grep -Eq "$re" "$file"; then
            fail "$what: no line matching '$re' in:"
            sed 's/^/    /' "$file"
            return
        fi
    done
    pass "$what"
}

timeout 20 turnutils_stunclient -p "$pport" 127.0.0.1 >"$tmp/stunclient.txt" 2>&1
expect_lines "turnutils_stunclient: reflexive address 127.0.0.1" "$tmp/stunclient.txt" \
    'UDP reflexive addr: 127\.0\.0\.1:[0-9]+'

timeout 20 turnutils_stunclient -f -p "$pport" 127.0.0.1 >"$tmp/stunclient5780.txt" 2>&1
expect_lines "turnutils_stunclient -f: RFC 5780 answers" "$tmp/stunclient5780.txt" \
    "Response origin: : 127\.0\.0\.1:$pport" \
    "Other addr: : 127\.0\.0\.2:$aport" \
    "Response origin: : 127\.0\.0\.2:$aport" \
    'UDP reflexive addr: 127\.0\.0\.1:[0-9]+'

lport=$(pick_ports) || lport=45679
timeout 30 turnutils_natdiscovery -m -f -L 127.0.0.1 -l "$lport" -p "$pport" 127.0.0.1 \
    >"$tmp/natdiscovery.txt" 2>&1
expect_lines "turnutils_natdiscovery: mapping and filtering, mapped == local" \
    "$tmp/natdiscovery.txt" \
    "UDP reflexive addr: 127\.0\.0\.1:$lport" \
    'NAT with Endpoint Independent Mapping' \
    'NAT with Endpoint Independent Filtering'

if [ $have_v6 = 1 ]; then
    "$tool" serve --primary '[::1]:0' >"$tmp/serve6.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do
        grep -q '^listening' "$tmp/serve6.out" && break
        sleep 0.1
    done
    read -r _ primary6 < <(grep '^listening' "$tmp/serve6.out")
    if [ -n "${primary6:-}" ]; then
        timeout 20 turnutils_stunclient -p "${primary6##*:}" ::1 >"$tmp/stunclient6.txt" 2>&1
        expect_lines "turnutils_stunclient over IPv6" "$tmp/stunclient6.txt" \
            'IPv6\. UDP reflexive addr: ::1:[0-9]+'
    else
        fail "peerlink_stun_tool serve on [::1] did not start: $(cat "$tmp/serve6.out")"
    fi
fi

# The server stops cleanly on SIGTERM and says what it answered.
kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
stats=$(tail -n 1 "$tmp/serve.out")
if [ $rc = 0 ] && echo "$stats" | grep -Eq '"requests":[1-9]'; then
    pass "peerlink server stopped cleanly: $stats"
else
    fail "peerlink server exit $rc, last line: $stats"
fi

if [ $failures = 0 ]; then
    echo "all STUN interop checks passed"
    exit 0
fi
echo "$failures STUN interop check(s) failed"
exit 1
