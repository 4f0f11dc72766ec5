# bench/lib.sh: helpers shared by hafront's benchmarks. Source it from a
# bash script running as root; it installs an EXIT/INT/TERM trap that stops
# every process started with `bench_spawn` (by PID, TERM then KILL) and
# deletes every namespace made with `bench_netns_add`.
#
# Conventions: namespaces are named hfb-<role>-$$ so parallel runs never
# collide; addresses come from 10.213.0.0/16 only; nothing is ever attached
# to the root namespace.

# Processes to stop on exit, as "PID:START_TIME" (the start time, field 22 of
# /proc/PID/stat, guards against killing a process that reused the PID).
bench_processes=()
# Namespaces to delete on exit.
bench_namespaces=()
# Scratch directory removed on exit (set by bench_scratch_dir).
bench_scratch=""

bench_log() {
    printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2
}

bench_die() {
    printf '%s: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

bench_require_root() {
    [ "$(id -u)" = 0 ] || bench_die "run as root (it creates network namespaces and installs packages)"
}

# What building hafront needs beyond Rust: protoc and the well-known protos
# (the etcd client), clang and libbpf's headers (the eBPF director).
bench_build_packages=(protobuf-compiler libprotobuf-dev clang libbpf-dev)

# bench_install PACKAGE...: installs the missing Debian packages, and what
# building hafront needs, without letting their system services start (the
# repository's install-packages.sh).
bench_install() {
    "$(dirname "${BASH_SOURCE[0]}")/../install-packages.sh" "$@" "${bench_build_packages[@]}" ||
        bench_die "installing $* failed"
}

# bench_scratch_dir: creates the scratch directory, sets $bench_scratch.
bench_scratch_dir() {
    bench_scratch=$(mktemp -d /tmp/hfb-$$.XXXXXX)
}

# bench_start_time PID: the process's start time in clock ticks since boot.
bench_start_time() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # Field 2 (comm) may hold spaces; count fields after its closing paren.
    stat=${stat##*) }
    set -- $stat
    echo "${20}"
}

# bench_spawn LOG COMMAND...: runs COMMAND in the background with stdout and
# stderr to LOG and records it for cleanup; sets $bench_pid. Use
# `ip netns exec NS ...` (which execs, keeping the PID) to place it.
bench_spawn() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    bench_pid=$!
    local started
    started=$(bench_start_time "$bench_pid") || started=gone
    bench_processes+=("$bench_pid:$started")
}

# bench_alive PID: whether the process is still running (not a zombie).
bench_alive() {
    local state
    state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# bench_stop PID: stops one recorded process: TERM, then KILL after 5 s.
bench_stop() {
    local pid=$1 entry kept=() attempt
    for entry in "${bench_processes[@]}"; do
        if [ "${entry%%:*}" = "$pid" ]; then
            if [ "$(bench_start_time "$pid" 2>/dev/null)" = "${entry#*:}" ]; then
                kill -TERM "$pid" 2>/dev/null || true
                for attempt in $(seq 50); do
                    bench_alive "$pid" || break
                    sleep 0.1
                done
                bench_alive "$pid" && kill -KILL "$pid" 2>/dev/null
            fi
            wait "$pid" 2>/dev/null || true
        else
            kept+=("$entry")
        fi
    done
    bench_processes=("${kept[@]}")
}

bench_cleanup() {
    local entry namespace
    trap - EXIT INT TERM
    # Newest first: clients before relays before servers.
    for ((entry = ${#bench_processes[@]} - 1; entry >= 0; entry--)); do
        bench_stop "${bench_processes[entry]%%:*}"
    done
    for namespace in "${bench_namespaces[@]}"; do
        ip netns delete "$namespace" 2>/dev/null || true
    done
    [ -n "$bench_scratch" ] && rm -rf "$bench_scratch"
}

trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# bench_netns_add ROLE: creates namespace hfb-ROLE-$$ with loopback up and
# records it for deletion; sets $bench_namespace to its name.
bench_netns_add() {
    bench_namespace="hfb-$1-$$"
    ip netns add "$bench_namespace"
    bench_namespaces+=("$bench_namespace")
    ip -n "$bench_namespace" link set lo up
}

# bench_link NS_A IF_A ADDR_A NS_B IF_B ADDR_B: a veth pair created directly
# inside the two namespaces (never in the root one), addresses with prefix.
bench_link() {
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$4" addr add "$6" dev "$5"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}

# bench_switch SWITCH_NS: a bridge br0, up, in SWITCH_NS (an L2 segment
# with no address and no route anywhere).
bench_switch() {
    ip -n "$1" link add br0 type bridge
    ip -n "$1" link set br0 up
    # A switch does not filter: where br_netfilter is loaded (Docker loads
    # it), bridged frames would go through iptables on every crossing.
    if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
        ip netns exec "$1" sysctl -q -w net.bridge.bridge-nf-call-iptables=0 \
            net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0
    fi
}

# bench_switch_port SWITCH_NS PORT NS IF ADDR: a veth pair from port PORT of
# SWITCH_NS's bridge to interface IF of NS, which gets ADDR (with prefix).
bench_switch_port() {
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    ip -n "$1" link set "$2" master br0
    ip -n "$1" link set "$2" up
    ip -n "$3" addr add "$5" dev "$4"
    ip -n "$3" link set "$4" up
}

# bench_wait SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until
# it succeeds; dies after SECONDS.
bench_wait() {
    local seconds=$1 what=$2 attempt
    shift 2
    for attempt in $(seq $((seconds * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    bench_die "timed out after ${seconds}s waiting for $what"
}

# bench_cpu_ticks PID: user+system CPU time of the process (all threads) in
# clock ticks, then its system part.
bench_cpu_ticks() {
    awk '{ sub(/.*\) /, ""); print $12 + $13, $13 }' "/proc/$1/stat"
}

# bench_rss_kib PID: resident set size in KiB.
bench_rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# bench_busy_ticks: the machine's busy CPU time so far (all CPUs; user,
# nice, system, irq and softirq), in clock ticks.
bench_busy_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# bench_now: seconds since the epoch with nanoseconds.
bench_now() {
    date +%s.%N
}
