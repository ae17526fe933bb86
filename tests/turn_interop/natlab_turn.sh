#!/usr/bin/env bash
# TURN from behind a UDP-blocking NAT, in the NAT lab (ctest label `natlab`, needs root).
#
#   natlab_turn.sh --check PATH-TO-peerlink_turn_check
#
# The lab: site c behind a `udp-blocked` NAT (no UDP crosses its router; TCP does), site
# p a public host, and coturn on the public host `pub` (198.18.0.10:3478, relaying from
# 198.18.0.10). An echo peer runs on p's host. From c's host, peerlink_turn_check:
#   1. TURN over UDP: the Allocate gets no answer (turn_error::timeout), as the NAT
#      drops it;
#   2. TURN over TCP: Allocate (the mapped address is c's router: the NAT), permission,
#      data both ways to the public peer via Send/Data indications and via ChannelData
#      (the peer sees the relayed address as the source), refresh, deallocate, and a
#      wrong password refused.
# Exit 0 when both pass, 1 when one fails, 77 (skip) without root or coturn. The lab and
# its daemons are torn down on every exit (natlab_lib.sh's trap).
set -uo pipefail

check=
while [ $# -gt 0 ]; do
    case $1 in
    --check) check=$2; shift 2 ;;
    *) echo "natlab_turn: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ -x "$check" ] || { echo "natlab_turn: --check '$check' is not an executable" >&2; exit 2; }
check=$(cd "$(dirname "$check")" && pwd)/$(basename "$check")

# shellcheck source=../natlab/natlab_lib.sh
source "$(dirname "$0")/../natlab/natlab_lib.sh"
natlab_require || exit 77
if ! command -v turnserver >/dev/null 2>&1; then
    echo "SKIPPED: turnserver not found (coturn is not installed: apt-get install coturn)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/peerlink-natlab-turn.XXXXXX")
natlab_cleanup_hook() { rm -rf "$tmp"; }
natlab_up --site c:udp-blocked --site p:none || { echo "FAIL: the lab did not come up"; exit 1; }

failures=0
pass() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

pub=$NATLAB_PUB_IP1
peer_ip=$(natlab_addr p-host1)
router_ip=$(natlab_addr c-router)
echo "lab $NATLAB_PREFIX: client c-host1 $(natlab_addr c-host1) behind udp-blocked NAT $router_ip," \
    "peer p-host1 $peer_ip, coturn on pub $pub:3478"

natlab_daemon pub turn turnserver -n -v --listening-ip "$pub" --relay-ip "$pub" \
    --listening-port 3478 --lt-cred-mech --user alice:secret --realm natlab \
    --no-tls --no-dtls --no-cli --log-file stdout --simple-log \
    --pidfile "$tmp/turnserver.pid" --userdb "$tmp/turndb" >/dev/null
natlab_daemon p-host1 echo "$check" echo --bind "$peer_ip:7000" >/dev/null
if ! natlab_wait_port pub udp 3478 10 || ! natlab_wait_port pub tcp 3478 10 ||
    ! natlab_wait_port p-host1 udp 7000 10; then
    echo "FAIL: coturn or the echo peer did not start; logs:"
    tail -n 20 "$(natlab_log turn)" "$(natlab_log echo)" 2>/dev/null
    exit 1
fi

echo "--- TURN over UDP from behind the udp-blocked NAT (expected to get no answer)"
natlab_exec c-host1 timeout 30 "$check" run --server "$pub:3478" --transport udp \
    --expect-timeout --rto-ms 100 --requests 3 >"$tmp/udp.txt" 2>&1
rc=$?
sed 's/^/    /' "$tmp/udp.txt"
if [ $rc = 0 ]; then pass "TURN over UDP is blocked: timeout"; else fail "TURN over UDP (exit $rc)"; fi

echo "--- TURN over TCP from behind the udp-blocked NAT to a public UDP peer"
natlab_exec c-host1 timeout 60 "$check" run --server "$pub:3478" --transport tcp \
    --remote-peer "$peer_ip:7000" --bad-password >"$tmp/tcp.txt" 2>&1
rc=$?
sed 's/^/    /' "$tmp/tcp.txt"
if [ $rc = 0 ]; then pass "TURN over TCP relays both ways"; else fail "TURN over TCP (exit $rc)"; fi
if grep -Eq "relayed $pub:[0-9]+, mapped $router_ip:[0-9]+" "$tmp/tcp.txt"; then
    pass "relayed address on $pub, mapped address is the NAT's ($router_ip)"
else
    fail "expected relayed $pub:* and mapped $router_ip:* in the client's output"
fi

if [ $failures = 0 ]; then
    echo "all natlab TURN checks passed"
    exit 0
fi
echo "coturn's log (last lines):"
tail -n 30 "$(natlab_log turn)" | sed 's/^/    /'
echo "$failures natlab TURN check(s) failed"
exit 1
