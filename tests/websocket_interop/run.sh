#!/usr/bin/env bash
# One WebSocket interop scenario between peerlink (ws_peer) and node's `ws` package.
#   run.sh SCENARIO WS_PEER
# Scenarios:
#   node-client      node ws client  -> peerlink server (ws://)
#   node-server      peerlink client -> node ws server  (ws://)
#   tls-node-client  node ws client  -> peerlink server (wss://, throwaway self-signed cert)
#   tls-node-server  peerlink client -> node ws server  (wss://)
#   tls-self         peerlink client -> peerlink server (wss://)
#   bad-frames       raw node socket -> peerlink server: 1009, 1002, 1007, 400, 431, 426;
#                    then a normal client is still served
# Exit 0 on success, 1 on failure, 77 (skip) when node, ws or openssl is missing.
# Everything runs on 127.0.0.1 with kernel-chosen ports; every process started here is
# killed and the temporary directory removed on every exit path.
set -u
scenario=${1:?scenario}
peer=${2:?path to ws_peer}
here=$(cd "$(dirname "$0")" && pwd)
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/peerlink-ws-XXXXXX")
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
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.log; do
        [ -f "$f" ] && { echo "--- $(basename "$f")"; tail -n 40 "$f"; }
    done
    exit 1
}

need_node() {
    command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed (apt-get install nodejs)"; exit 77; }
    node -e 'require("ws")' >/dev/null 2>&1 ||
        { echo "SKIP: node's ws package is missing (apt-get install node-ws)"; exit 77; }
}

need_cert() {
    command -v openssl >/dev/null 2>&1 || { echo "SKIP: the openssl tool is not installed"; exit 77; }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >"$tmp/openssl.log" 2>&1 ||
        fail "could not make a self-signed certificate"
}

# Starts peerlink's server; sets $port.
start_peer_server() {
    "$peer" server --port-file "$tmp/port" --timeout 100 "$@" >"$tmp/peer_server.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        [ -s "$tmp/port" ] && break
        kill -0 "${pids[-1]}" 2>/dev/null || fail "peerlink server exited early"
        sleep 0.1
    done
    [ -s "$tmp/port" ] || fail "peerlink server did not start within 10 s"
    port=$(cat "$tmp/port")
}

# Stops peerlink's server: it must exit cleanly on SIGTERM, without sanitizer reports.
stop_peer_server() {
    local pid=${pids[0]}
    kill -TERM "$pid" 2>/dev/null
    local rc=0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$pid" || rc=$?
    [ $rc -eq 0 ] || fail "peerlink server exited with $rc"
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$tmp/peer_server.log"; then
        fail "sanitizer report in the peerlink server"
    fi
}

# Starts node's server; sets $port.
start_node_server() {
    node "$here/node_server.js" "$@" >"$tmp/node_server.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q '^PORT ' "$tmp/node_server.log" 2>/dev/null && break
        kill -0 "${pids[-1]}" 2>/dev/null || fail "node server exited early"
        sleep 0.1
    done
    port=$(sed -n 's/^PORT //p' "$tmp/node_server.log")
    [ -n "$port" ] || fail "node server did not start within 10 s"
}

# Waits (at most 5 s) until the log file has a line matching the pattern.
expect_log() {
    local file=$1 pattern=$2
    for _ in $(seq 50); do
        grep -qE "$pattern" "$file" && return 0
        sleep 0.1
    done
    fail "$(basename "$file") has no line matching: $pattern"
}

run_node() {
    timeout 90 node "$@" >"$tmp/node_client.log" 2>&1
    local rc=$?
    cat "$tmp/node_client.log"
    [ $rc -eq 0 ] || fail "node $(basename "$1") exited with $rc"
}

run_peer_client() {
    timeout 90 "$peer" client --timeout 60 "$@" >"$tmp/peer_client.log" 2>&1
    local rc=$?
    cat "$tmp/peer_client.log"
    [ $rc -eq 0 ] || fail "peerlink client exited with $rc"
}

case "$scenario" in
node-client | tls-node-client)
    need_node
    if [ "$scenario" = tls-node-client ]; then
        need_cert
        start_peer_server --tls "$tmp/cert.pem" "$tmp/key.pem"
        run_node "$here/node_client.js" "wss://127.0.0.1:$port/echo" --ca "$tmp/cert.pem"
    else
        start_peer_server
        run_node "$here/node_client.js" "ws://127.0.0.1:$port/echo"
    fi
    # Our server saw node's close code and UTF-8 reason, and the close it started.
    expect_log "$tmp/peer_server.log" "session-end .*code=4002 reason=client bye ✓ result=.*closed"
    expect_log "$tmp/peer_server.log" "session-end .*code=4003 reason=.* result=.*closed"
    stop_peer_server
    ;;
node-server | tls-node-server)
    need_node
    if [ "$scenario" = tls-node-server ]; then
        need_cert
        start_node_server --tls "$tmp/cert.pem" "$tmp/key.pem"
        # Without the certificate as a trust anchor, our client must refuse the server.
        timeout 30 "$peer" client --timeout 20 --url "wss://127.0.0.1:$port/echo" \
            >"$tmp/untrusted.log" 2>&1 && fail "our client accepted an untrusted certificate"
        grep -q "certificate verify failed" "$tmp/untrusted.log" ||
            fail "an untrusted certificate failed for another reason: $(tail -n 3 "$tmp/untrusted.log")"
        echo "ok   untrusted certificate refused"
        run_peer_client --url "wss://127.0.0.1:$port/echo" --ca "$tmp/cert.pem"
    else
        start_node_server
        run_peer_client --url "ws://127.0.0.1:$port/echo"
    fi
    # node saw our close code and UTF-8 reason.
    expect_log "$tmp/node_server.log" "^close 4002 client bye ✓$"
    if grep -q '^error ' "$tmp/node_server.log"; then fail "node server reported an error"; fi
    ;;
tls-self)
    need_cert
    start_peer_server --tls "$tmp/cert.pem" "$tmp/key.pem"
    run_peer_client --url "wss://127.0.0.1:$port/echo" --ca "$tmp/cert.pem"
    expect_log "$tmp/peer_server.log" "session-end .*code=4002 reason=client bye ✓ result=.*closed"
    stop_peer_server
    ;;
bad-frames)
    need_node
    start_peer_server --max-message 65536
    run_node "$here/node_raw.js" "$port" 65536
    expect_log "$tmp/peer_server.log" "result=.*larger than the configured maximum"
    expect_log "$tmp/peer_server.log" "result=.*unmasked WebSocket frame"
    expect_log "$tmp/peer_server.log" "result=.*not valid UTF-8"
    stop_peer_server
    ;;
*)
    echo "unknown scenario $scenario"
    exit 2
    ;;
esac
echo "PASS: $scenario"
exit 0
