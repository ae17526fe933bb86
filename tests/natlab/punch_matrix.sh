#!/usr/bin/env bash
# punch_matrix.sh: peerlink's hole punching (ice::punch_core via punch_peer) across every
# pair of NAT types in the lab; prints NAT A x NAT B -> direct / failed and the time to
# the first data byte, next to natlab_probe's simple-strategy baseline (README.md).
#
#   sudo tests/natlab/punch_matrix.sh [--peer path/to/punch_peer] [--runs N]
#
# Exit 77 (SKIPPED) when not root; 1 if a pair where one side maps endpoint-independently
# (and neither is udp-blocked) did not go direct. Bounded: each peer runs under `timeout`,
# all pairs in parallel; the lab is torn down on every exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
peer_bin=""
runs=1
while (($#)); do
    case $1 in
    --peer) peer_bin=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "punch_matrix: unknown argument $1" >&2; exit 2 ;;
    esac
done

# shellcheck source=natlab_lib.sh
source "$here/natlab_lib.sh"
natlab_require || exit 77

work=$(mktemp -d /tmp/natlab_punch.XXXXXX)
natlab_cleanup_hook() { rm -rf "$work"; }
trap 'rm -rf "$work"' EXIT

if [[ -z $peer_bin ]]; then
    echo "building punch_peer (a minute or two)"
    g++ -std=c++20 -O1 -I"$here/../../include" -DASIO_STANDALONE -DASIO_NO_DEPRECATED \
        -o "$work/punch_peer" "$here/punch_peer.cpp" -lcrypto -lpthread
    peer_bin=$work/punch_peer
fi
peer_bin=$(readlink -f "$peer_bin")

types=(full-cone restricted-cone port-restricted-cone symmetric udp-blocked none)
short=(fc rc prc sym blk pub)
sites=()
for i in "${!types[@]}"; do
    sites+=(--site "${short[$i]}1:${types[$i]}" --site "${short[$i]}2:${types[$i]}")
done
natlab_up "${sites[@]}"

serve_pid=$(natlab_daemon pub serve "$peer_bin" serve --addr "$NATLAB_PUB_IP1" --alt-addr "$NATLAB_PUB_IP2" \
    --stun-port 3478 --alt-port 3479 --rdv-port 7100)
natlab_wait_port pub udp 3478 10
natlab_wait_port pub udp 7100 10

simple() { # natlab_probe's simple strategy, as measured in README.md: 0 = direct
    local a=$1 b=$2
    [[ $a == udp-blocked || $b == udp-blocked ]] && return 1
    if [[ $a == symmetric && ($b == symmetric || $b == port-restricted-cone) ]] ||
        [[ $b == symmetric && $a == port-restricted-cone ]]; then
        return 1
    fi
    return 0
}
must_direct() { # the aim: one side endpoint-independent, no side udp-blocked
    local a=$1 b=$2
    [[ $a == udp-blocked || $b == udp-blocked ]] && return 1
    [[ $a == symmetric && $b == symmetric ]] && return 1
    return 0
}

declare -A wins=() times=()
fail=0
for ((run = 1; run <= runs; run++)); do
    pair=0
    for i in "${!types[@]}"; do
        for ((j = i; j < ${#types[@]}; j++)); do
            pair=$((pair + 1))
            for side in a b; do
                if [[ $side == a ]]; then node=${short[$i]}1-host1; else node=${short[$j]}2-host1; fi
                natlab_exec "$node" timeout -k 5 20 "$peer_bin" peer \
                    --stun "$NATLAB_PUB_IP1:3478" --stun2 "$NATLAB_PUB_IP2:3479" \
                    --rdv "$NATLAB_PUB_IP1:7100" --session "r${run}p$pair" --side "$side" \
                    --port-min $((30000 + pair)) --port-max $((30000 + pair)) \
                    --timeout-ms 5000 >"$work/out.$run.$i.$j.$side" 2>&1 &
            done
        done
    done
    wait || true
    for i in "${!types[@]}"; do
        for ((j = i; j < ${#types[@]}; j++)); do
            oa=$(tail -n1 "$work/out.$run.$i.$j.a")
            ob=$(tail -n1 "$work/out.$run.$i.$j.b")
            ra=$(sed -n 's/.*"result":"\([a-z]*\)".*/\1/p' <<<"$oa")
            rb=$(sed -n 's/.*"result":"\([a-z]*\)".*/\1/p' <<<"$ob")
            if [[ $ra == direct && $rb == direct ]]; then
                ta=$(sed -n 's/.*"ms_to_first_byte":\([0-9-]*\).*/\1/p' <<<"$oa")
                tb=$(sed -n 's/.*"ms_to_first_byte":\([0-9-]*\).*/\1/p' <<<"$ob")
                wins[$i,$j]=$((${wins[$i,$j]:-0} + 1))
                times[$i,$j]="${times[$i,$j]:-} $((ta > tb ? ta : tb))"
            else
                wins[$i,$j]=${wins[$i,$j]:-0}
                if must_direct "${types[$i]}" "${types[$j]}"; then
                    echo "FAIL run $run: ${types[$i]} x ${types[$j]} did not go direct"
                    echo "  a: $oa"
                    echo "  b: $ob"
                    fail=1
                fi
            fi
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'; }
echo
echo "peerlink punch (checks 3 x 50 ms + backoff, birthday 256 sockets x 2048 probes), $runs run(s);"
echo "cell: direct (wins/runs) median ms to first byte | simple strategy's baseline"
printf '%-22s' "A \\ B"
for t in "${types[@]}"; do printf '%-30s' "$t"; done
echo
for i in "${!types[@]}"; do
    printf '%-22s' "${types[$i]}"
    for j in "${!types[@]}"; do
        a=$((i < j ? i : j)) b=$((i < j ? j : i))
        w=${wins[$a,$b]}
        if simple "${types[$a]}" "${types[$b]}"; then base=direct; else base=failed; fi
        if ((w > 0)); then
            c="direct $w/$runs $(median <<<"${times[$a,$b]}")ms|$base"
        else
            c="failed 0/$runs|$base"
        fi
        printf '%-30s' "$c"
    done
    echo
done
echo
if ! kill -0 "$serve_pid" 2>/dev/null; then
    echo "FAIL: the STUN/rendezvous server died: $(cat "$(natlab_log serve)")"
    fail=1
fi
if ((fail)); then
    echo "natlab punch: FAILED"
    exit 1
fi
echo "natlab punch: every pair with an endpoint-independent side went direct"
