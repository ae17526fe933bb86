#!/usr/bin/env bash
# check_lab.sh: the NAT lab's own test (ctest natlab:lab).
#
# Builds two sites of every NAT type, checks that nothing can leave the namespaces, that
# each type classifies as built (mapping and filtering, RFC 4787 / RFC 5780), that TCP
# passes the udp-blocked NAT, then punches every pair of types with natlab_probe's simple
# strategy (rendezvous at the reflector, both send bursts to the other's reflexive address
# and answer the address a punch came from) and prints the table. The table must match the
# baseline (punched unless a side is udp-blocked, or symmetric meets symmetric or
# port-restricted cone). Finally checks that no namespace or link is left behind.
#
#   check_lab.sh [--probe path/to/natlab_probe]    (built with g++ when not given)
# Exit: 0 pass, 1 fail, 77 skipped (not root, no ip/nft, no namespaces).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
probe=""
while (($#)); do
    case $1 in
    --probe) probe=$2; shift 2 ;;
    *) echo "check_lab: unknown argument $1" >&2; exit 2 ;;
    esac
done

# shellcheck source=natlab_lib.sh
source "$here/natlab_lib.sh"
natlab_require || exit 77

work=$(mktemp -d /tmp/natlab_check.XXXXXX)
natlab_cleanup_hook() { rm -rf "$work"; }
# Until natlab_up installs its trap, clean the work dir ourselves.
trap 'rm -rf "$work"' EXIT

if [[ -z $probe ]]; then
    echo "building natlab_probe"
    g++ -std=c++20 -O1 -Wall -Wextra -o "$work/natlab_probe" "$here/natlab_probe.cpp"
    probe=$work/natlab_probe
fi
probe=$(readlink -f "$probe")
[[ -x $probe ]] || { echo "check_lab: no probe at $probe" >&2; exit 2; }
export NATLAB_PROBE=$probe

fail=0
problem() {
    echo "FAIL: $*"
    fail=1
}

types=(full-cone restricted-cone port-restricted-cone symmetric udp-blocked none)
short=(fc rc prc sym blk pub)
sites=()
for i in "${!types[@]}"; do
    sites+=(--site "${short[$i]}1:${types[$i]}" --site "${short[$i]}2:${types[$i]}")
done

netns_before=$(ip netns list | sort)
links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort)
t0=${EPOCHREALTIME/./}
stage() { # prints the time since start, to see where a slow run spends it
    local now=${EPOCHREALTIME/./}
    printf '[%6.2f s] %s\n' "$(((now - t0) / 10000))e-2" "$*"
}

natlab_up "${sites[@]}"
stage "lab $NATLAB_PREFIX up: ${#types[@]} NAT types x 2 sites"

# --- Nothing leaves the lab -------------------------------------------------------------
natlab_verify || problem "natlab.sh verify"
links_during=$(ip -o link show | awk -F': ' '{print $2}' | sort)
[[ $links_during == "$links_before" ]] || problem "links appeared in the root namespace"
# A LAN host's packets to a non-lab address die at its router (no route there).
if natlab_exec fc1-router ip route get 192.0.2.1 >/dev/null 2>&1; then
    problem "fc1-router has a route to 192.0.2.1"
fi

stage "isolation verified"
# --- Reflector on the public host -------------------------------------------------------
reflector=$(natlab_daemon pub reflector "$probe" reflect --addr "$NATLAB_PUB_IP1" \
    --addr "$NATLAB_PUB_IP2" --port 7000 --port 7001)
natlab_wait_port pub udp 7001 5
natlab_wait_port pub tcp 7000 5
stage "reflector up"

# --- Classification ---------------------------------------------------------------------
for s in "${short[@]}"; do
    for n in 1 2; do
        natlab_exec "$s$n-host1" "$probe" classify --server "$NATLAB_PUB_IP1" \
            --alt-server "$NATLAB_PUB_IP2" --port 7000 --alt-port 7001 \
            >"$work/classify.$s$n" 2>&1 &
    done
done
wait
stage "classified"
printf '%-22s %-28s %-28s %s\n' "site type" mapping filtering "classified as"
for i in "${!types[@]}"; do
    for n in 1 2; do
        f=$work/classify.${short[$i]}$n
        got=$(sed -n 's/^nat=//p' "$f")
        printf '%-22s %-28s %-28s %s\n' "${types[$i]}" "$(sed -n 's/^mapping=//p' "$f")" \
            "$(sed -n 's/^filtering=//p' "$f")" "$got"
        [[ $got == "${types[$i]}" ]] ||
            problem "site ${short[$i]}$n built as ${types[$i]} classifies as '$got': $(tr '\n' ' ' <"$f")"
    done
done
# udp-blocked still passes TCP; every other NAT too.
for s in blk1 fc1 sym1; do
    natlab_exec "$s-host1" "$probe" tcp-check --server "$NATLAB_PUB_IP1:7000" >"$work/tcp.$s" 2>&1 &
done
wait
for s in blk1 fc1 sym1; do
    grep -q '^result=ok' "$work/tcp.$s" ||
        problem "TCP from $s-host1 to the public host failed: $(cat "$work/tcp.$s")"
done

stage "TCP checked"

# --- Mappings hold, and `natlab.sh rebind` replaces them ------------------------------------
mapped_port() { # NODE: the port the reflector sees from local port 6000
    natlab_exec "$1" "$probe" classify --server "$NATLAB_PUB_IP1" --alt-server "$NATLAB_PUB_IP2" \
        --port 7000 --alt-port 7001 --local-port 6000 --filtering 0 |
        sed -n 's/^mapped_ip1_p1=.*://p'
}
m1=$(mapped_port sym1-host1)
m2=$(mapped_port sym1-host1)
natlab_rebind sym1
m3=$(mapped_port sym1-host1)
echo "symmetric mapping of local port 6000: $m1, again $m2, after rebind $m3"
[[ -n $m1 && $m1 == "$m2" ]] || problem "symmetric mapping did not hold ($m1 then $m2)"
[[ -n $m3 && $m3 != "$m1" ]] || problem "rebind did not change the symmetric mapping ($m1 -> $m3)"
stage "mappings checked"
# --- Hole punching, every pair of types ---------------------------------------------------
expect_punch() { # simple strategy's baseline for types $1 x $2
    local a=$1 b=$2
    [[ $a == udp-blocked || $b == udp-blocked ]] && return 1
    if [[ $a == symmetric && ($b == symmetric || $b == port-restricted-cone) ]] ||
        [[ $b == symmetric && $a == port-restricted-cone ]]; then
        return 1
    fi
    return 0
}

pair=0
for i in "${!types[@]}"; do
    for ((j = i; j < ${#types[@]}; j++)); do
        pair=$((pair + 1))
        port=$((20000 + pair))
        for side in a b; do
            if [[ $side == a ]]; then node=${short[$i]}1-host1; else node=${short[$j]}2-host1; fi
            natlab_exec "$node" "$probe" punch --server "$NATLAB_PUB_IP1:7000" \
                --session "p$pair" --side "$side" --local-port "$port" \
                --rendezvous-ms 3000 --duration-ms 2000 >"$work/punch.$i.$j.$side" 2>&1 &
        done
    done
done
wait || true
stage "punched"

declare -A cell=()
for i in "${!types[@]}"; do
    for ((j = i; j < ${#types[@]}; j++)); do
        ra=$(sed -n 's/^result=//p' "$work/punch.$i.$j.a")
        rb=$(sed -n 's/^result=//p' "$work/punch.$i.$j.b")
        if [[ $ra == punched && $rb == punched ]]; then
            ta=$(sed -n 's/^first_rx_ms=//p' "$work/punch.$i.$j.a")
            tb=$(sed -n 's/^first_rx_ms=//p' "$work/punch.$i.$j.b")
            c="direct $((ta > tb ? ta : tb))ms"
            expect_punch "${types[$i]}" "${types[$j]}" ||
                problem "${types[$i]} x ${types[$j]} punched; the baseline says it cannot"
        else
            c="failed"
            expect_punch "${types[$i]}" "${types[$j]}" &&
                problem "${types[$i]} x ${types[$j]} did not punch (a: $(tr '\n' ' ' <"$work/punch.$i.$j.a"); b: $(tr '\n' ' ' <"$work/punch.$i.$j.b"))"
        fi
        cell[$i,$j]=$c
        cell[$j,$i]=$c
    done
done
echo
echo "Simple simultaneous punch (rendezvous, bursts every 20 ms, answer the source seen):"
printf '%-22s' "A \\ B"
for t in "${types[@]}"; do printf '%-22s' "$t"; done
echo
for i in "${!types[@]}"; do
    printf '%-22s' "${types[$i]}"
    for j in "${!types[@]}"; do printf '%-22s' "${cell[$i,$j]}"; done
    echo
done
echo

# --- Teardown leaves nothing --------------------------------------------------------------
# The reflector must have survived everything (a crash or sanitizer report fails the test).
kill -0 "$reflector" 2>/dev/null || problem "the reflector died: $(cat "$(natlab_log reflector)")"
[[ $(cat "$(natlab_log reflector)") == reflect=ready ]] ||
    problem "the reflector wrote: $(cat "$(natlab_log reflector)")"

prefix=$NATLAB_PREFIX
natlab_down
stage "torn down"
[[ -z $(ip netns list | awk '{print $1}' | grep -E "^$prefix-" || true) ]] ||
    problem "namespaces of $prefix remain"
[[ $(ip netns list | sort) == "$netns_before" ]] || echo "note: other namespaces changed meanwhile"
links_after=$(ip -o link show | awk -F': ' '{print $2}' | sort)
[[ $links_after == "$links_before" ]] || problem "root namespace links changed"
[[ ! -d ${NATLAB_STATE_ROOT:-/run/natlab}/$prefix ]] || problem "state dir of $prefix remains"

stage "done"
if ((fail)); then
    echo "natlab: FAILED"
    exit 1
fi
echo "natlab: all NAT types built as intended; punch table matches the baseline"
