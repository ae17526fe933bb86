# shellcheck shell=bash
# natlab_lib.sh: source this from a test script to use peerlink's NAT lab.
#
#   source "$(dirname "$0")/natlab_lib.sh"     # path to tests/natlab
#   natlab_require || exit 77                  # prints SKIPPED: ... when not possible
#   natlab_up --site a:symmetric --site b:full-cone     # sets NATLAB_PREFIX, installs a trap
#   natlab_daemon pub turn turnserver -n --listening-ip 198.18.0.10 ...
#   natlab_wait_port pub udp 3478
#   natlab_exec a-host1 ./my_client "$(natlab_addr b-host1)"
#   natlab_down                                 # also done by the trap on EXIT INT TERM
#
# The trap: natlab_up sets `trap ... EXIT` and `trap ... INT TERM` (signals exit 130 through
# the EXIT trap). If the script needs its own cleanup, define a function natlab_cleanup_hook;
# it runs before the lab is taken down. Do not replace the EXIT trap after natlab_up.
#
# Every function runs tests/natlab/natlab.sh (which does the work in its own process with
# set -euo pipefail); the lab's state lives in $(natlab.sh statedir $NATLAB_PREFIX).

NATLAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NATLAB_SH=$NATLAB_DIR/natlab.sh
NATLAB_PREFIX=${NATLAB_PREFIX:-}
# shellcheck disable=SC2034 # for the scripts that source this file
NATLAB_PUB_IP1=198.18.0.10
# shellcheck disable=SC2034
NATLAB_PUB_IP2=198.18.0.11

# Returns 0 when a lab can be built here; otherwise prints "SKIPPED: ..." and returns 1.
natlab_require() {
    local why=""
    if [[ $EUID -ne 0 ]]; then
        why="not root"
    elif ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
        why="ip (iproute2) or nft (nftables) missing"
    else
        local probe=nlprobe$$
        probe=${probe:0:12}
        if ! ip netns add "$probe-x" 2>/dev/null; then
            why="cannot create network namespaces"
        else
            if ! ip netns exec "$probe-x" nft add table ip natlab_probe 2>/dev/null; then
                why="nftables unusable in a namespace"
            fi
            ip netns del "$probe-x" 2>/dev/null || true
        fi
    fi
    if [[ -n $why ]]; then
        echo "SKIPPED: needs root (network namespaces, nftables): $why"
        return 1
    fi
}

_natlab_on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if declare -F natlab_cleanup_hook >/dev/null; then
        natlab_cleanup_hook || true
    fi
    natlab_down || true
    exit "$rc"
}

# natlab_up [--prefix P] [--udp-timeout S] --site NAME:TYPE[:HOSTS]...
# Builds the lab and sets NATLAB_PREFIX (a fresh unique one unless given).
natlab_up() {
    local has_prefix=0 a
    for a in "$@"; do [[ $a == --prefix ]] && has_prefix=1; done
    if ((has_prefix == 0)); then
        NATLAB_PREFIX=nl$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
        set -- --prefix "$NATLAB_PREFIX" "$@"
    else
        local prev=""
        for a in "$@"; do
            [[ $prev == --prefix ]] && NATLAB_PREFIX=$a
            prev=$a
        done
    fi
    # Never adopt (and so tear down) a lab someone else is running under that prefix.
    if "$NATLAB_SH" list | grep -q "^$NATLAB_PREFIX "; then
        echo "natlab: prefix '$NATLAB_PREFIX' is in use" >&2
        NATLAB_PREFIX=""
        return 1
    fi
    trap _natlab_on_exit EXIT
    trap 'exit 130' INT TERM
    "$NATLAB_SH" up "$@" >/dev/null
}

natlab_down() {
    [[ -n $NATLAB_PREFIX ]] || return 0
    "$NATLAB_SH" down --prefix "$NATLAB_PREFIX"
    NATLAB_PREFIX=""
}

# NODE -> namespace name (pub, inet, SITE-router, SITE-hostK; same rule as natlab.sh ns).
natlab_ns() {
    case $1 in
    pub | inet | *-router | *-host[0-9]*) echo "$NATLAB_PREFIX-$1" ;;
    *) echo "natlab: unknown node '$1'" >&2; return 1 ;;
    esac
}
# NODE CMD...: runs CMD in NODE (directly, no natlab.sh process: tests start many of these).
natlab_exec() {
    local ns
    ns=$(natlab_ns "$1") || return 1
    shift
    ip netns exec "$ns" "$@"
}
natlab_addr() { "$NATLAB_SH" addr "$NATLAB_PREFIX" "$1"; }   # NODE -> address
natlab_info() { "$NATLAB_SH" info "$NATLAB_PREFIX"; }
natlab_daemon() { "$NATLAB_SH" daemon "$NATLAB_PREFIX" "$@"; }  # NODE NAME CMD...
natlab_stop() { "$NATLAB_SH" stop "$NATLAB_PREFIX" "$1"; }   # NAME
natlab_log() { echo "$("$NATLAB_SH" statedir "$NATLAB_PREFIX")/$1.log"; } # NAME -> log file
natlab_wait_port() { "$NATLAB_SH" wait-port "$NATLAB_PREFIX" "$@"; } # NODE udp|tcp PORT [S]
natlab_rebind() { "$NATLAB_SH" rebind "$NATLAB_PREFIX" "$1"; }       # SITE
natlab_verify() { "$NATLAB_SH" verify "$NATLAB_PREFIX"; }
