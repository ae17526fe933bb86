#!/usr/bin/env bash
# Proves that DNS-disguised packets decode as valid DNS: runs a test transfer through
# dns_disguise over UDP on 127.0.0.1 (dns_tshark_transfer), then has tshark decode the
# packets as DNS and fails if one is not DNS, is malformed, or draws any expert info, or
# if tshark counts other numbers of queries and responses than were sent.
#
#   check_dns_pcap.sh --program PATH --mode pcap      the program's own pcap of what it
#                                                     received (no privileges needed)
#   check_dns_pcap.sh --program PATH --mode capture   a real capture on lo with dumpcap
#                                                     (root), and the program's pcap too
#
# Exit 0: pass; 1: fail; 77: skipped (no tshark; capture mode: not root or no dumpcap).
# KEEP_DNS_PCAP=1 keeps the work directory and prints its path.
set -u

program=""
mode=pcap
while [ $# -gt 0 ]; do
    case "$1" in
    --program) program="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    *) echo "usage: $0 --program PATH [--mode pcap|capture]" >&2; exit 2 ;;
    esac
done
[ -x "$program" ] || { echo "FAIL: --program '$program' is not an executable" >&2; exit 1; }

if ! command -v tshark >/dev/null 2>&1; then
    echo "SKIPPED: tshark not found (apt-get install tshark; scripts/install-deps.sh)"
    exit 77
fi
if [ "$mode" = capture ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIPPED: a capture on lo needs root (the pcap mode needs none)"
        exit 77
    fi
    if ! command -v dumpcap >/dev/null 2>&1; then
        echo "SKIPPED: dumpcap not found (it comes with tshark/wireshark-common)"
        exit 77
    fi
fi

work=$(mktemp -d /tmp/peerlink-dns-tshark.XXXXXX)
dumpcap_pid=""
prog_pid=""
cleanup() {
    [ -n "$dumpcap_pid" ] && kill "$dumpcap_pid" 2>/dev/null && wait "$dumpcap_pid" 2>/dev/null
    [ -n "$prog_pid" ] && kill "$prog_pid" 2>/dev/null && wait "$prog_pid" 2>/dev/null
    if [ "${KEEP_DNS_PCAP:-0}" = 1 ]; then
        echo "kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    exit 1
}

# check_file FILE: every packet of FILE is clean DNS and the counts match the transfer.
check_file() {
    local file="$1" label="$2"
    local decode=(-d "udp.port==$port_a,dns" -d "udp.port==$port_b,dns")
    tshark -r "$file" "${decode[@]}" -T fields -E separator=/t \
        -e frame.number -e frame.protocols -e dns.flags.response -e dns.id \
        -e dns.qry.name -e dns.count.answers -e _ws.expert -e _ws.malformed \
        >"$work/$label.fields" 2>"$work/$label.stderr" ||
        fail "$label: tshark could not read $file: $(grep -v 'Running as' "$work/$label.stderr")"
    local total queries responses bad
    total=$(wc -l <"$work/$label.fields")
    # Exactly Ethernet/IPv4/UDP/DNS, nothing after DNS (no undecoded trailing data).
    bad=$(awk -F'\t' '$2 != "eth:ethertype:ip:udp:dns" || $7 != "" || $8 != ""' \
        "$work/$label.fields")
    [ -z "$bad" ] || fail "$label: packets not decoded as clean DNS:
$(echo "$bad" | head -20)"
    queries=$(awk -F'\t' '$3 == "0" || $3 == "False"' "$work/$label.fields" | wc -l)
    responses=$(awk -F'\t' '$3 == "1" || $3 == "True"' "$work/$label.fields" | wc -l)
    [ "$total" -eq "$sent" ] || fail "$label: $total DNS packets, $sent sent"
    [ "$queries" -eq "$sent_queries" ] || fail "$label: $queries queries, $sent_queries sent"
    [ "$responses" -eq "$sent_responses" ] ||
        fail "$label: $responses responses, $sent_responses sent"

    # The expert summary: any entry (error, warning, note or chat) fails.
    tshark -r "$file" "${decode[@]}" -q -z expert >"$work/$label.expert" 2>/dev/null ||
        fail "$label: tshark -z expert failed"
    if grep -Eq '^(Errors|Warns|Notes|Chats|Comments) \(' "$work/$label.expert"; then
        fail "$label: tshark expert info:
$(cat "$work/$label.expert")"
    fi
    # Queries and responses Wireshark paired up, for the log.
    local matched unsolicited
    matched=$(tshark -r "$file" "${decode[@]}" -Y dns.response_to 2>/dev/null | wc -l)
    unsolicited=$(tshark -r "$file" "${decode[@]}" -Y dns.unsolicited 2>/dev/null | wc -l)
    echo "$label: $total packets decoded as DNS ($queries queries, $responses responses;" \
        "$matched responses matched to their query, $unsolicited unsolicited)," \
        "no malformed packet, no expert info"
    echo "$label: first packets as tshark shows them:"
    tshark -r "$file" "${decode[@]}" -c 4 2>/dev/null | sed 's/^/    /'
}

# start_program PCAP [ARGS...]
start_program() {
    local pcap="$1"
    shift
    coproc PROG { "$program" --pcap "$pcap" "$@"; }
    prog_pid=$PROG_PID
    # Own copies of the pipes: bash drops PROG once the program has exited.
    exec {prog_out}<&"${PROG[0]}" {prog_in}>&"${PROG[1]}"
    local line
    read -r -t 10 line <&"$prog_out" || fail "the transfer program did not start"
    set -- $line
    [ "$1" = ports ] || fail "unexpected program output: $line"
    port_a=$2
    port_b=$3
}

finish_program() {
    local line
    read -r -t 120 line <&"$prog_out" || fail "the transfer did not finish"
    wait "$prog_pid" || fail "the transfer failed (payload lost or changed): $line"
    prog_pid=""
    set -- $line
    [ "$1" = sent ] || fail "unexpected program output: $line"
    sent=$2
    sent_queries=$4
    sent_responses=$6
    echo "transfer: $line (ports $port_a, $port_b)"
}

if [ "$mode" = pcap ]; then
    start_program "$work/self.pcap"
    finish_program
    check_file "$work/self.pcap" "program pcap"
    # Negative control: the same transfer with its last packet cut short in the pcap
    # must fail the check, as a malformed packet.
    start_program "$work/bad.pcap" --truncate-last --steps 20
    finish_program >/dev/null
    if out=$(check_file "$work/bad.pcap" "control"); then
        fail "the check passed a pcap with a truncated packet"
    fi
    echo "$out" | grep -q "not decoded as clean DNS" ||
        fail "the check failed the truncated packet for another reason: $out"
    echo "control: a pcap whose last packet is 5 bytes short fails the check, as it must"
    exit 0
fi

# Capture mode: the program binds its ports and waits; dumpcap starts on those ports; the
# transfer runs; dumpcap stops once the last packet had time to be written.
start_program "$work/self.pcap" --wait-go
filter="udp and src host 127.0.0.1 and dst host 127.0.0.1 and"
filter="$filter ((src port $port_a and dst port $port_b) or (src port $port_b and dst port $port_a))"
dumpcap -i lo -f "$filter" -w "$work/live.pcapng" >"$work/dumpcap.log" 2>&1 &
dumpcap_pid=$!
for _ in $(seq 100); do
    grep -q "Capturing on" "$work/dumpcap.log" && break
    kill -0 "$dumpcap_pid" 2>/dev/null || fail "dumpcap exited: $(cat "$work/dumpcap.log")"
    sleep 0.1
done
grep -q "Capturing on" "$work/dumpcap.log" || fail "dumpcap did not start within 10 s"
sleep 0.5 # the capture filter is attached once "Capturing on" is printed; a margin anyway
echo go >&"$prog_in"
finish_program
sleep 1
kill -INT "$dumpcap_pid"
wait "$dumpcap_pid"
dumpcap_pid=""
check_file "$work/live.pcapng" "capture on lo"
check_file "$work/self.pcap" "program pcap"
# The kernel carried what the program says it received: same messages, same order.
cmp -s <(cut -f3-6 "$work/capture on lo.fields") <(cut -f3-6 "$work/program pcap.fields") ||
    fail "the capture on lo and the program's pcap differ"
echo "capture on lo and program pcap: the same $sent DNS messages in the same order"
