#!/usr/bin/env bash
# TURN interop with coturn, on loopback only (ctest label `interop`).
#
#   turn_interop.sh --check PATH-TO-peerlink_turn_check
#
# Starts coturn's turnserver on 127.0.0.1 with free ports and no config file (-n),
# long-term credentials (alice:secret, realm peerlink.test), no TLS/DTLS, loopback
# peers allowed (the echo peer is on 127.0.0.1), 127.0.0.9 denied as a peer, and short
# lifetimes so that a 12 s wait proves the refreshes: allocations 10 s, permissions
# 6 s, channels 8 s, nonces stale after 4 s (so refreshes meet real 438 answers).
# Then peerlink_turn_check, over UDP and over TCP to the server: Allocate (401
# challenge), CreatePermission, data both ways via Send/Data indications, ChannelBind,
# data both ways via ChannelData, Refresh, the wait with automatic refreshes and 438s,
# data again, a denied peer (403), Refresh LIFETIME 0, and a wrong password
# (turn_error::unauthorized). coturn's log must show the allocations, the refreshes
# and the deallocations.
#
# Exit 0 when every check passes, 1 when one fails, 77 (skip) when coturn is missing.
# The server is killed on exit, failures included; all files live in a temporary
# directory that is removed.
set -uo pipefail

check=
while [ $# -gt 0 ]; do
    case $1 in
    --check) check=$2; shift 2 ;;
    *) echo "turn_interop: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ -x "$check" ] || { echo "turn_interop: --check '$check' is not an executable" >&2; exit 2; }

if ! command -v turnserver >/dev/null 2>&1; then
    echo "SKIP: turnserver not found (coturn is not installed: apt-get install coturn)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/peerlink-turn-interop.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failures=0
pass() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# A port free for both UDP and TCP on loopback (checked with ss, else hoped for).
pick_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 25000))
        if command -v ss >/dev/null 2>&1 &&
            ss -Hlntu 2>/dev/null | awk '{print $5}' | grep -Eq "[:.]$p\$"; then
            continue
        fi
        echo "$p"
        return 0
    done
    return 1
}

port=$(pick_port) || { echo "turn_interop: no free port" >&2; exit 1; }
relay_min=$((46000 + (RANDOM % 80) * 200))
relay_max=$((relay_min + 199))
echo "turnserver $(turnserver --version 2>/dev/null | head -1) on 127.0.0.1:$port" \
    "(UDP and TCP), relay ports $relay_min-$relay_max"
# Options with an optional value (lifetimes, stale nonce) need the --opt=value form.
turnserver -n -v --listening-ip 127.0.0.1 --listening-port "$port" --relay-ip 127.0.0.1 \
    --min-port "$relay_min" --max-port "$relay_max" \
    --lt-cred-mech --user alice:secret --realm peerlink.test \
    --no-tls --no-dtls --no-cli --allow-loopback-peers --denied-peer-ip=127.0.0.9 \
    --max-allocate-lifetime=10 --permission-lifetime=6 --channel-lifetime=8 --stale-nonce=4 \
    --log-file "$tmp/turnserver.log" --simple-log --no-stdout-log \
    --pidfile "$tmp/turnserver.pid" --userdb "$tmp/turndb" >"$tmp/turnserver.out" 2>&1 &
server_pid=$!

# Bounded wait until it listens on both transports.
ready=0
for _ in $(seq 1 50); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    if ss -Hlnu 2>/dev/null | awk '{print $4}' | grep -q "127.0.0.1:$port\$" &&
        ss -Hlnt 2>/dev/null | awk '{print $4}' | grep -q "127.0.0.1:$port\$"; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ $ready = 0 ]; then
    echo "FAIL: turnserver did not start listening within 10 s; its log:"
    tail -n 30 "$tmp/turnserver.log" "$tmp/turnserver.out" 2>/dev/null
    exit 1
fi
if grep -q "CONFIGURATION ALERT" "$tmp/turnserver.log"; then
    fail "turnserver rejected an option: $(grep -A1 'CONFIGURATION ALERT' "$tmp/turnserver.log" | tr '\n' ' ')"
fi

for transport in udp tcp; do
    echo "--- peerlink TURN client over ${transport^^} to coturn"
    timeout 90 "$check" run --server "127.0.0.1:$port" --transport "$transport" \
        --user alice --password secret --peer-bind 127.0.0.1 --wait 12 --expect-stale \
        --forbidden-peer 127.0.0.9:5000 --bad-password >"$tmp/check-$transport.txt" 2>&1
    rc=$?
    sed 's/^/    /' "$tmp/check-$transport.txt"
    if [ $rc = 0 ]; then
        pass "turn_check over ${transport^^}"
    else
        fail "turn_check over ${transport^^} (exit $rc)"
    fi
done

# What coturn saw: two sessions allocated for alice with the 10 s lifetime, refreshed,
# released with lifetime 0, and the wrong password refused.
log="$tmp/turnserver.log"
count() { grep -Ec "$1" "$log"; }
allocs=$(count 'new, realm=<peerlink\.test>, username=<alice>, lifetime=10')
refreshes=$(count 'refreshed, realm=<peerlink\.test>, username=<alice>, lifetime=10')
releases=$(count 'refreshed, realm=<peerlink\.test>, username=<alice>, lifetime=0')
stale=$(count 'error 438')
denied=$(count 'peer IP 127\.0\.0\.9 denied')
badpw=$(count 'user alice credentials are incorrect')
channel_updates=$(count 'peer 127\.0\.0\.1 lifetime updated: 8')
summary="allocations $allocs, refreshes $refreshes, releases $releases, 438s $stale, denied peers $denied, bad credentials $badpw, channel (re)binds $channel_updates"
if [ "$allocs" -ge 2 ] && [ "$refreshes" -ge 4 ] && [ "$releases" -ge 2 ] && [ "$stale" -ge 1 ] &&
    [ "$denied" -ge 2 ] && [ "$badpw" -ge 2 ] && [ "$channel_updates" -ge 4 ]; then
    pass "coturn's log: $summary"
else
    fail "coturn's log: $summary; its last lines:"
    tail -n 40 "$log" | sed 's/^/    /'
fi

if [ $failures = 0 ]; then
    echo "all TURN interop checks passed"
    exit 0
fi
echo "$failures TURN interop check(s) failed"
exit 1
