#!/usr/bin/env bash
# natlab.sh: builds and tears down peerlink's NAT lab (network namespaces, veth pairs,
# a bridge as "internet", nftables NATs of the RFC 4787 kinds). Needs root. See README.md.
#
#   natlab.sh up [--prefix P] [--udp-timeout S] --site NAME:TYPE[:HOSTS] ...
#       TYPE: full-cone | restricted-cone | port-restricted-cone | symmetric | udp-blocked | none
#       Prints the prefix. Without --prefix one is made up (nl + 6 hex digits).
#   natlab.sh down --prefix P        (or: natlab.sh down P)  removes everything of P
#   natlab.sh list                   prefixes present (state dirs and namespaces)
#   natlab.sh info P                 key=value lines: addresses of every node
#   natlab.sh exec P NODE CMD...     runs CMD in NODE's namespace (NODE: pub, inet,
#                                    SITE-router, SITE-host1, ...)
#   natlab.sh ns P NODE              the namespace name of NODE (for ip netns exec)
#   natlab.sh addr P NODE            NODE's address (host: LAN or public; router: WAN; pub: first)
#   natlab.sh daemon P NODE NAME CMD...   starts CMD in the background in NODE (own session,
#                                    log in $(natlab.sh statedir P)/NAME.log); killed at down
#   natlab.sh stop P NAME            stops daemon NAME
#   natlab.sh wait-port P NODE udp|tcp PORT [SECONDS]   waits until something listens
#   natlab.sh rebind P SITE          flushes SITE's conntrack and NAT maps (NAT "reboot")
#   natlab.sh verify P               checks that nothing of P can reach the real network
#   natlab.sh statedir P             the run's state directory
#
# Environment: NATLAB_STATE_ROOT (default /run/natlab), NATLAB_PROBE (natlab_probe binary,
# needed by `rebind` only).
set -euo pipefail

NATLAB_STATE_ROOT=${NATLAB_STATE_ROOT:-/run/natlab}
PUB_IP1=198.18.0.10
PUB_IP2=198.18.0.11
INET_PREFIXLEN=15

die() {
    echo "natlab: $*" >&2
    exit 1
}

check_prefix() {
    [[ $1 =~ ^[a-z][a-z0-9]{1,11}$ ]] ||
        die "bad prefix '$1' (a lowercase letter, then 1-11 lowercase letters or digits)"
}

statedir() { echo "$NATLAB_STATE_ROOT/$1"; }

# Namespace of a node: pub, inet, SITE-router, SITE-hostK.
node_ns() {
    local p=$1 node=$2
    case $node in
    pub | inet) echo "$p-$node" ;;
    *-router | *-host[0-9]*) echo "$p-$node" ;;
    *) die "unknown node '$node' (pub, inet, SITE-router, SITE-hostK)" ;;
    esac
}

nsx() { # nsx NS CMD...: run CMD inside NS
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

prefix_namespaces() { # every namespace of prefix $1
    ip netns list | awk '{print $1}' | grep -E "^$1-" || true
}

canonical_type() {
    case $1 in
    full-cone | full) echo full-cone ;;
    restricted-cone | restricted) echo restricted-cone ;;
    port-restricted-cone | port-restricted) echo port-restricted-cone ;;
    symmetric) echo symmetric ;;
    udp-blocked | blocked) echo udp-blocked ;;
    none | public) echo none ;;
    *) die "unknown NAT type '$1'" ;;
    esac
}

# The router's nftables ruleset for a NAT type. $1 type, $2 WAN address, $3 map timeout (s).
router_ruleset() {
    local type=$1 wan=$2 timeout=$3
    local snat="snat ip to $wan"
    [[ $type == symmetric ]] && snat="snat ip to $wan fully-random"
    echo "table ip natlab {"
    if [[ $type == full-cone || $type == restricted-cone ]]; then
        # External port -> the internal endpoint that owns it, learned from outbound packets
        # after SNAT chose the port (refreshed by every outbound packet).
        cat <<EOF
    map mapping {
        type inet_service : ipv4_addr . inet_service
        flags dynamic, timeout; timeout ${timeout}s
    }
EOF
    fi
    if [[ $type == restricted-cone ]]; then
        # (external port, remote address) pairs the mapping has sent to.
        cat <<EOF
    set contacted {
        type inet_service . ipv4_addr
        flags dynamic, timeout; timeout ${timeout}s
    }
EOF
    fi
    echo "    chain prerouting {"
    echo "        type nat hook prerouting priority dstnat; policy accept;"
    case $type in
    full-cone) echo "        iifname \"wan\" dnat ip to udp dport map @mapping" ;;
    restricted-cone)
        echo "        iifname \"wan\" udp dport . ip saddr @contacted dnat ip to udp dport map @mapping"
        ;;
    esac
    echo "    }"
    cat <<EOF
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" $snat
    }
EOF
    if [[ $type == full-cone || $type == restricted-cone ]]; then
        echo "    chain learn {"
        echo "        type filter hook postrouting priority srcnat + 10; policy accept;"
        echo "        oifname \"wan\" ct direction original" \
            "update @mapping { udp sport : ct original ip saddr . ct original proto-src }"
        echo "        oifname \"wan\" ct direction reply" \
            "update @mapping { udp sport : ct reply ip saddr . ct reply proto-src }"
        [[ $type == restricted-cone ]] &&
            echo "        oifname \"wan\" update @contacted { udp sport . ip daddr }"
        echo "    }"
    fi
    echo "    chain forward {"
    echo "        type filter hook forward priority filter; policy drop;"
    [[ $type == udp-blocked ]] && echo "        meta l4proto udp counter drop"
    cat <<EOF
        iifname "lan" oifname "wan" accept
        iifname "wan" oifname "lan" ct state established,related accept
        iifname "wan" oifname "lan" ct status dnat accept
        counter
    }
    chain input {
        type filter hook input priority filter; policy drop;
        iifname { "lo", "lan" } accept
        ct state established,related accept
        iifname "wan" icmp type echo-request accept
        counter
    }
}
EOF
}

# Runs the given commands (each one string, evaluated) in parallel; fails if any failed.
run_parallel() {
    local job_pids=() cmd pid rc=0
    for cmd in "$@"; do
        eval "$cmd" &
        job_pids+=($!)
    done
    for pid in "${job_pids[@]}"; do
        wait "$pid" || rc=1
    done
    return $rc
}

cmd_up() {
    local prefix="" udp_timeout="" sites=()
    while (($#)); do
        case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --udp-timeout) udp_timeout=$2; shift 2 ;;
        --site) sites+=("$2"); shift 2 ;;
        *) die "up: unknown argument '$1'" ;;
        esac
    done
    [[ -n $prefix ]] || prefix=nl$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    check_prefix "$prefix"
    ((${#sites[@]} >= 1 && ${#sites[@]} <= 200)) || die "up: give 1 to 200 --site NAME:TYPE"
    [[ -z $udp_timeout || $udp_timeout =~ ^[1-9][0-9]*$ ]] || die "bad --udp-timeout"
    local sd
    sd=$(statedir "$prefix")
    [[ ! -e $sd && -z $(prefix_namespaces "$prefix") ]] || die "prefix '$prefix' is in use"
    mkdir -p "$sd/daemons" "$sd/build"

    # From here on, a failure removes whatever was built.
    UP_PREFIX=$prefix
    trap 'rc=$?; if [[ -n ${UP_PREFIX:-} ]]; then echo "natlab: up failed, tearing down $UP_PREFIX" >&2; cmd_down "$UP_PREFIX" >&2 || true; fi; exit $rc' EXIT
    trap 'exit 130' INT TERM

    local map_timeout=${udp_timeout:-120}
    : >"$sd/sites"
    echo "udp_timeout=${udp_timeout:-default}" >"$sd/config"

    # The build is planned as one `ip -batch` file per namespace (few processes: fast).
    local b=$sd/build inet=$prefix-inet pub=$prefix-pub
    local all_ns=("$inet" "$pub") routers=() hosts_ns=()
    {
        echo "link add br0 type bridge stp_state 0"
        echo "link set br0 up"
        echo "link add pub type veth peer name eth0 netns $pub"
        echo "link set pub master br0 up"
    } >"$b/$inet"
    {
        echo "addr add $PUB_IP1/$INET_PREFIXLEN dev eth0"
        echo "addr add $PUB_IP2/$INET_PREFIXLEN dev eth0"
        echo "link set eth0 up"
    } >"$b/$pub"

    local idx=0 spec name type hosts k rns hns
    declare -A seen=()
    for spec in "${sites[@]}"; do
        idx=$((idx + 1))
        IFS=: read -r name type hosts <<<"$spec"
        [[ $name =~ ^[a-z][a-z0-9]{0,15}$ ]] || die "bad site name '$name' (lowercase, digits)"
        [[ -z ${seen[$name]:-} ]] || die "site '$name' given twice"
        seen[$name]=1
        type=$(canonical_type "${type:-}")
        hosts=${hosts:-1}
        [[ $hosts =~ ^[1-9][0-9]?$ ]] || die "bad host count in '$spec'"
        echo "$name $type $idx $hosts" >>"$sd/sites"

        if [[ $type == none ]]; then
            # Public hosts sit on the internet bridge themselves: no router, no NAT.
            for ((k = 1; k <= hosts; k++)); do
                hns=$prefix-$name-host$k
                all_ns+=("$hns")
                hosts_ns+=("$hns")
                echo "link add s${idx}h$k type veth peer name eth0 netns $hns" >>"$b/$inet"
                echo "link set s${idx}h$k master br0 up" >>"$b/$inet"
                {
                    echo "addr add 198.18.$idx.$((k + 1))/$INET_PREFIXLEN dev eth0"
                    echo "link set eth0 up"
                } >"$b/$hns"
            done
            continue
        fi

        rns=$prefix-$name-router
        all_ns+=("$rns")
        routers+=("$rns")
        echo "link add s$idx type veth peer name wan netns $rns" >>"$b/$inet"
        echo "link set s$idx master br0 up" >>"$b/$inet"
        {
            echo "addr add 198.18.$idx.1/$INET_PREFIXLEN dev wan"
            echo "link set wan up"
            echo "link add lan type bridge stp_state 0"
            echo "addr add 10.$idx.0.1/24 dev lan"
            echo "link set lan up"
        } >"$b/$rns"
        router_ruleset "$type" "198.18.$idx.1" "$map_timeout" >"$b/$rns.nft"
        local sysctl="net.ipv4.ip_forward=1"
        [[ -z $udp_timeout ]] || sysctl+=" net.netfilter.nf_conntrack_udp_timeout=$udp_timeout"
        [[ -z $udp_timeout ]] || sysctl+=" net.netfilter.nf_conntrack_udp_timeout_stream=$udp_timeout"
        echo "$sysctl" >"$b/$rns.sysctl"
        for ((k = 1; k <= hosts; k++)); do
            hns=$prefix-$name-host$k
            all_ns+=("$hns")
            hosts_ns+=("$hns")
            echo "link add h$k type veth peer name eth0 netns $hns" >>"$b/$rns"
            echo "link set h$k master lan up" >>"$b/$rns"
            {
                echo "addr add 10.$idx.0.$((k + 1))/24 dev eth0"
                echo "link set eth0 up"
                echo "route add default via 10.$idx.0.1"
            } >"$b/$hns"
        done
    done

    local ns cmds=()
    for ns in "${all_ns[@]}"; do echo "netns add $ns"; done | ip -batch -
    # IPv4 only (set before any interface exists there), loopback up, router settings.
    for ns in "${all_ns[@]}"; do
        local extra=""
        [[ -f $b/$ns.sysctl ]] && extra=$(cat "$b/$ns.sysctl")
        cmds+=("ip netns exec $ns sh -c 'sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 $extra && ip link set lo up'")
    done
    run_parallel "${cmds[@]}"
    ip -n "$inet" -batch "$b/$inet" # makes every WAN and public host link
    cmds=()
    for ns in "${routers[@]}"; do
        cmds+=("ip -n $ns -batch $b/$ns && ip netns exec $ns nft -f $b/$ns.nft")
    done
    ((${#cmds[@]} == 0)) || run_parallel "${cmds[@]}" # makes every LAN host link
    cmds=("ip -n $pub -batch $b/$pub")
    for ns in "${hosts_ns[@]}"; do cmds+=("ip -n $ns -batch $b/$ns"); done
    run_parallel "${cmds[@]}"
    rm -rf "$b"
    UP_PREFIX=""
    trap - EXIT INT TERM
    echo "$prefix"
}

# Processes whose network namespace is one of the given ones (`ip netns pids`, in one scan).
pids_in_namespaces() {
    local ns inodes=()
    for ns in "$@"; do inodes+=("/run/netns/$ns"); done
    find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%l %h\n' 2>/dev/null |
        awk 'NR == FNR { want[$1] = 1; next } ($1 in want) { split($2, p, "/"); print p[3] }' \
            <(stat -L -c 'net:[%i]' "${inodes[@]}" 2>/dev/null) - || true
}

cmd_down() {
    local prefix=${1:-}
    [[ $prefix == --prefix ]] && prefix=${2:-}
    check_prefix "$prefix"
    local sd ns pid tries pids=() alive
    sd=$(statedir "$prefix")
    local namespaces
    namespaces=$(prefix_namespaces "$prefix")
    # Daemons (by their recorded ids) and anything else still running in our namespaces.
    if [[ -d $sd/daemons ]]; then
        mapfile -t -O "${#pids[@]}" pids < <(cat "$sd"/daemons/*.pid 2>/dev/null || true)
    fi
    if [[ -n $namespaces ]]; then
        # shellcheck disable=SC2086 # one namespace name per word
        mapfile -t -O "${#pids[@]}" pids < <(pids_in_namespaces $namespaces)
    fi
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for ((tries = 0; tries < 20; tries++)); do
            alive=()
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
            pids=("${alive[@]}")
            ((${#pids[@]})) || break
            sleep 0.05
        done
        ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    # Deleting a namespace removes its veths, bridges and nftables tables with it.
    [[ -z $namespaces ]] || for ns in $namespaces; do echo "netns del $ns"; done |
        ip -force -batch - 2>/dev/null || true
    rm -rf "$sd"
    [[ -z $(prefix_namespaces "$prefix") ]] || die "down: namespaces of '$prefix' remain"
}

cmd_list() {
    local p
    {
        [[ -d $NATLAB_STATE_ROOT ]] && ls -1 "$NATLAB_STATE_ROOT"
        ip netns list | awk '{print $1}' | sed -n 's/^\([a-z][a-z0-9]*\)-inet$/\1/p'
    } | sort -u | while read -r p; do
        [[ -n $p ]] || continue
        local site_list=""
        [[ -f $NATLAB_STATE_ROOT/$p/sites ]] &&
            site_list=$(awk '{printf "%s%s:%s", (NR > 1 ? " " : ""), $1, $2}' "$NATLAB_STATE_ROOT/$p/sites")
        echo "$p namespaces=$(prefix_namespaces "$p" | wc -l) sites=[$site_list]"
    done
}

sites_file() {
    local f
    f=$(statedir "$1")/sites
    [[ -f $f ]] || die "no lab with prefix '$1'"
    echo "$f"
}

cmd_info() {
    local prefix=$1 name type idx hosts k
    check_prefix "$prefix"
    echo "prefix=$prefix"
    echo "pub_ip1=$PUB_IP1"
    echo "pub_ip2=$PUB_IP2"
    while read -r name type idx hosts; do
        echo "site_${name}_type=$type"
        echo "site_${name}_hosts=$hosts"
        if [[ $type == none ]]; then
            for ((k = 1; k <= hosts; k++)); do echo "${name}_host${k}=198.18.$idx.$((k + 1))"; done
        else
            echo "${name}_router=198.18.$idx.1"
            for ((k = 1; k <= hosts; k++)); do echo "${name}_host${k}=10.$idx.0.$((k + 1))"; done
        fi
    done <"$(sites_file "$prefix")"
}

cmd_addr() {
    local prefix=$1 node=$2 key
    check_prefix "$prefix"
    [[ $node == pub ]] && { echo "$PUB_IP1"; return; }
    key=${node//-/_}
    cmd_info "$prefix" | sed -n "s/^$key=//p" | grep . || die "no node '$node' in '$prefix'"
}

cmd_exec() {
    local prefix=$1 node=$2
    shift 2
    check_prefix "$prefix"
    local ns
    ns=$(node_ns "$prefix" "$node")
    exec ip netns exec "$ns" "$@"
}

cmd_daemon() {
    local prefix=$1 node=$2 name=$3
    shift 3
    [[ ${1:-} == -- ]] && shift
    check_prefix "$prefix"
    [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad daemon name '$name'"
    (($#)) || die "daemon: no command"
    local sd ns
    sd=$(statedir "$prefix")
    [[ -d $sd/daemons ]] || die "no lab with prefix '$prefix'"
    [[ ! -e $sd/daemons/$name.pid ]] || die "daemon '$name' already exists"
    ns=$(node_ns "$prefix" "$node")
    ip netns list | awk '{print $1}' | grep -qx "$ns" || die "no namespace $ns"
    # setsid: its own session, so a test's Ctrl-C does not reach it twice; killed at down.
    ip netns exec "$ns" setsid "$@" </dev/null >"$sd/$name.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$sd/daemons/$name.pid"
    echo "$pid"
}

cmd_stop() {
    local prefix=$1 name=$2 sd pid tries
    check_prefix "$prefix"
    sd=$(statedir "$prefix")
    [[ -f $sd/daemons/$name.pid ]] || die "no daemon '$name'"
    pid=$(cat "$sd/daemons/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((tries = 0; tries < 40; tries++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$sd/daemons/$name.pid"
}

cmd_wait_port() {
    local prefix=$1 node=$2 proto=$3 port=$4 seconds=${5:-5} ns flag tries
    check_prefix "$prefix"
    ns=$(node_ns "$prefix" "$node")
    case $proto in udp) flag=-u ;; tcp) flag=-t ;; *) die "wait-port: udp or tcp" ;; esac
    for ((tries = 0; tries < seconds * 20; tries++)); do
        if [[ -n $(ip netns exec "$ns" ss -Hln "$flag" "sport = :$port") ]]; then
            return 0
        fi
        sleep 0.05
    done
    die "nothing listens on $proto port $port in $node after ${seconds}s"
}

cmd_rebind() {
    local prefix=$1 site=$2 rns probe
    check_prefix "$prefix"
    rns=$prefix-$site-router
    ip netns list | awk '{print $1}' | grep -qx "$rns" || die "no router for site '$site'"
    probe=${NATLAB_PROBE:-$(dirname "$(readlink -f "$0")")/natlab_probe}
    [[ -x $probe ]] || die "rebind needs NATLAB_PROBE=path/to/natlab_probe"
    nsx "$rns" nft flush set ip natlab contacted 2>/dev/null || true
    nsx "$rns" nft flush map ip natlab mapping 2>/dev/null || true
    nsx "$rns" "$probe" ct-flush >/dev/null
}

# Prints what is wrong with one namespace of the lab (nothing when all is well).
verify_namespace() {
    local prefix=$1 ns=$2
    # Links: loopback, bridges, and veths whose far end is in one of our namespaces.
    ip -n "$ns" -d -o link show | awk -v ns="$ns" -v p="$prefix-" '
        {
            name = $2; sub(/:$/, "", name); sub(/@.*/, "", name)
            if ($0 ~ /link\/loopback/) next
            if ($0 ~ /\\    bridge forward_delay/) next
            if ($0 !~ /\\    veth/) { print ns ": non-lab link " name; next }
            if ($0 ~ /link-netnsid/) { print ns ": " name " leads to an unnamed namespace"; next }
            if (match($0, /link-netns [^ ]+/)) {
                peer = substr($0, RSTART + 11, RLENGTH - 11)
                if (index(peer, p) != 1) print ns ": " name " leads to " peer
            }
        }'
    # Routes: only the lab's own subnets; a default route only on LAN hosts, via 10.x.0.1.
    ip -n "$ns" -4 route show | awk -v ns="$ns" '
        $1 == "default" && ns ~ /-host[0-9]+$/ && $3 ~ /^10\.[0-9]+\.0\.1$/ { next }
        $1 ~ /^198\.18\.0\.0\/15$/ || $1 ~ /^10\.[0-9]+\.0\.0\/24$/ { next }
        { print ns ": unexpected route " $0 }'
}

cmd_verify() {
    local prefix=$1 ns out
    check_prefix "$prefix"
    local namespaces
    namespaces=$(prefix_namespaces "$prefix")
    [[ -n $namespaces ]] || die "no namespaces for '$prefix'"
    # In parallel: on a loaded machine process start-up is what costs.
    out=$(for ns in $namespaces; do verify_namespace "$prefix" "$ns" & done; wait)
    if [[ -n $out ]]; then
        local line
        while IFS= read -r line; do echo "verify: $line" >&2; done <<<"$out"
        die "verify failed for '$prefix'"
    fi
    echo "verify=ok namespaces=$(wc -w <<<"$namespaces")"
}

main() {
    (($#)) || die "usage: natlab.sh up|down|list|info|exec|ns|addr|daemon|stop|wait-port|rebind|verify|statedir ..."
    local cmd=$1
    shift
    case $cmd in
    up | down | daemon | stop | rebind | verify)
        [[ $EUID -eq 0 ]] || die "needs root (network namespaces, nftables)"
        ;;
    esac
    case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    list) cmd_list ;;
    info) cmd_info "$1" ;;
    exec) cmd_exec "$@" ;;
    ns) check_prefix "$1"; node_ns "$1" "$2" ;;
    addr) cmd_addr "$1" "$2" ;;
    daemon) cmd_daemon "$@" ;;
    stop) cmd_stop "$1" "$2" ;;
    wait-port) cmd_wait_port "$@" ;;
    rebind) cmd_rebind "$1" "$2" ;;
    verify) cmd_verify "$1" ;;
    statedir) check_prefix "$1"; statedir "$1" ;;
    *) die "unknown command '$cmd'" ;;
    esac
}

main "$@"
