#!/usr/bin/env bash
# compare_openvpn.sh: ferrovpn vs the OpenVPN 2.6 client, side by side, in one run.
#
# Usage (as root, from anywhere):
#   sudo tests/benches/compare_openvpn.sh [--out FILE] [--reps N] [--connects N] [--time SEC]
#                                          [--proto udp,tcp] [--verb N] [--pair] [--udp-rate R]
#                                          [--perf DIR] [--no-build] [--keep]
#
#   --out FILE     JSON result file (default: <repo>/target/compare-openvpn.json)
#   --reps N       throughput repetitions per client and transport (default 3); the order of
#                  the two clients alternates between repetitions to cancel drift
#   --connects N   connects per client and transport for the connect time (default 5, median)
#   --time SEC     iperf3 duration per direction (default 10)
#   --proto LIST   transports to measure, comma-separated: udp, tcp (default udp,tcp)
#   --verb N       log verbosity of both clients (default 3; higher costs throughput)
#   --pair         pair mode: the ferrovpn client connects to `ferrovpn serve` (same
#                  server.conf, port 1195, tunnel 198.19.202.0/24 UDP, 198.19.203.0/24 TCP),
#                  the openvpn client to the openvpn server: implementation pair vs pair
#   --udp-rate R   iperf3 -u runs: `auto` (default) searches the highest offered rate with at
#                  most 1 % loss (see below); a rate such as 300M reports the received rate
#                  and the loss at that fixed offered rate; 0 skips the UDP runs
#   --perf DIR     record the ferrovpn client with `perf record -e cpu-clock -g` during the
#                  first UDP-up iperf3 run of each transport (DIR/perf-PROTO.data)
#   --no-build     use the existing target/release/ferrovpn
#   --keep         keep the temporary directory (PKI, configs, logs) even on success
#
# What it does: builds `cargo build --release --bin ferrovpn`; makes a throwaway PKI (EC P-256
# CA, server cert with EKU serverAuth, one client cert per implementation with EKU clientAuth)
# and a tls-crypt key; creates three network namespaces (fvb-PID-s server, fvb-PID-cf for
# ferrovpn, fvb-PID-co for the openvpn client), each client namespace with its own veth to the
# server namespace; runs ONE `openvpn` server per transport (UDP, then TCP) that both clients
# connect to, and for each client measures
#   connect time  process start -> "Initialization Sequence Completed" (median of --connects)
#   throughput    iperf3 (server in S, client in CF/CO), single TCP stream, --time seconds
#                 each way (client->server "up", -R "down"), receiver bitrate; then UDP
#                 (`-u -l 1350`) up and down: with --udp-rate auto, trials of max(2,
#                 --time/3) s starting at the TCP rate of the same run, x1.25 after a trial
#                 with <= 1 % loss (at most twice), x0.6 after one with more (until one
#                 passes, at most 5 trials); reported: the received rate of the fastest
#                 trial with <= 1 % loss (or of the last trial, with its loss, if none)
#   RTT           `ping -c 50 -i 0.05` to the server's tunnel address minus the same to its
#                 underlay address (average RTT), after the connect, before any traffic
#   memory        VmRSS 1 s after the connect (idle), the largest VmRSS sampled every 0.2 s
#                 during the iperf3 runs (load) and VmHWM (peak) at the end
#   CPU           utime+stime of the client (and server) process during each iperf3 run, per
#                 GB received, TCP and UDP separately
# The clients never run at the same time. Prints a table with absolute values and the ratios
# ferrovpn/openvpn and writes it (plus every raw sample) as JSON to --out.
#
# Network safety: nothing touches the host's own network. Everything (veths, TUN devices,
# addresses, routes, DNS, every process) lives in the three namespaces created here, which
# the EXIT/INT/TERM trap deletes again with /etc/netns/<ns>; only processes this script
# started are stopped, by pid. Addresses: underlay 198.18.210.0/24 (CF) and 198.18.211.0/24
# (CO), tunnel 198.19.200.0/24 (UDP server) and 198.19.201.0/24 (TCP server).
#
# Needs: root, openvpn 2.6, openssl, iperf3 (installed with apt-get if missing), python3,
# cargo. Takes about 6 minutes with the defaults. Exit status 1 if any connect or throughput
# run failed; the temporary directory with all logs is then kept and its path printed.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
HELPER=$SCRIPT_DIR/compare_openvpn.py

OUT=$REPO/target/compare-openvpn.json
REPS=3
CONNECTS=5
TIME=10
PROTOS=udp,tcp
VERB=3
BUILD=1
KEEP=0
PAIR=0
UDP_RATE=auto
PERF_DIR=
CONNECT_TIMEOUT=30
LOG_CONNECTED="Initialization Sequence Completed"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "compare_openvpn: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --out) OUT=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --connects) CONNECTS=$2; shift 2 ;;
        --time) TIME=$2; shift 2 ;;
        --proto) PROTOS=$2; shift 2 ;;
        --verb) VERB=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        --pair) PAIR=1; shift ;;
        --udp-rate) UDP_RATE=$2; shift 2 ;;
        --perf) PERF_DIR=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $UDP_RATE == auto || $UDP_RATE =~ ^[0-9]+[KMG]?$ ]] || die "--udp-rate: auto, a rate like 300M, or 0"
if [[ -n $PERF_DIR ]]; then
    mkdir -p "$PERF_DIR"
    PERF_DIR=$(cd "$PERF_DIR" && pwd)
    command -v perf >/dev/null || die "--perf: perf not found (apt-get install linux-perf)"
fi
[[ $REPS =~ ^[1-9][0-9]*$ && $CONNECTS =~ ^[1-9][0-9]*$ && $TIME =~ ^[1-9][0-9]*$ ]] \
    || die "--reps, --connects and --time take positive integers"
IFS=, read -r -a PROTO_LIST <<<"$PROTOS"
for p in "${PROTO_LIST[@]}"; do [[ $p == udp || $p == tcp ]] || die "--proto: udp and/or tcp"; done
[[ $OUT == /* ]] || OUT=$PWD/$OUT

[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, TUN devices)"
for tool in ip openvpn openssl python3 cargo; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
if ! command -v iperf3 >/dev/null; then
    echo "== installing iperf3 (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3 >/dev/null \
        || die "apt-get install iperf3 failed"
fi
# The interpreter itself, not a (slow) pyenv shim: the connect-time waiter starts per connect.
PY=$(python3 -c 'import sys; print(sys.executable)')

log() { printf '== %s %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---------------------------------------------------------------------------------------------
# state and cleanup

TAG=fvb-$$
NS_S=$TAG-s
NS_F=$TAG-cf
NS_O=$TAG-co
WORK=$(mktemp -d /tmp/fvb-compare.XXXXXX)
SAMPLES=$WORK/samples.jsonl
declare -A RUNNING=()   # pid -> what, for every process started and not yet reaped
NSS=()                  # namespaces created here
FAILED=0
SPAWNED_PID=
STOPPED=
DIR_TICKS=0
DIR_STICKS=0
UDP_BPS=
UDP_OFFERED=
UDP_TIME=$((TIME / 3 < 2 ? 2 : TIME / 3))
SAMPLER_PID=
PERF_NOW=0
PERF_TAG=
CLIENT_PID=
CONNECT_MS=
declare -A SERVER_PID=()  # server implementation -> pid (pair mode runs both)

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    local pid ns i
    for pid in "${!RUNNING[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < 50; i++)); do
        local left=0
        for pid in "${!RUNNING[@]}"; do
            if alive "$pid"; then left=1; fi
        done
        [[ $left == 0 ]] && break
        sleep 0.1
    done
    for pid in "${!RUNNING[@]}"; do
        if alive "$pid"; then
            echo "cleanup: ${RUNNING[$pid]} (pid $pid) ignored SIGTERM, SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    for ns in "${NSS[@]}"; do
        # Anything still inside a namespace this script created was started by this script.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            echo "cleanup: pid $pid still in $ns, SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null
        done
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    if [[ $rc != 0 || $FAILED != 0 || $KEEP == 1 ]]; then
        echo "compare_openvpn: logs, configs and throwaway PKI kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "compare_openvpn: interrupted" >&2; exit 130' INT TERM

# True while PID runs (a zombie does not count).
alive() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z && ${s:0:1} != X ]]
}

# utime+stime of PID in clock ticks (all threads).
cpu_ticks() {
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    read -r -a f <<<"$s"
    echo $((f[11] + f[12]))
}
HZ=$(getconf CLK_TCK)

# spawn WHAT NS LOG CMD...: start CMD in namespace NS (stdout+stderr appended to LOG), in the
# background; its pid (the program's own: ip netns exec execs) goes to SPAWNED_PID.
spawn() {
    local what=$1 ns=$2 out=$3
    shift 3
    ip netns exec "$ns" "$@" >>"$out" 2>&1 </dev/null &
    SPAWNED_PID=$!
    RUNNING[$SPAWNED_PID]=$what
}

# stop PID TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S, then SIGKILL. Reaps it (so: never call it
# in a subshell). Sets STOPPED to how it ended: "exit N" or "killed".
stop() {
    local pid=$1 timeout=$2 i st=0 how
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 20; i++)); do
        alive "$pid" || break
        sleep 0.05
    done
    how=
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        how=killed
    fi
    wait "$pid" 2>/dev/null || st=$?
    unset "RUNNING[$pid]"
    STOPPED=${how:-exit $st}
}

# wait_log LOG NEEDLE TIMEOUT PID: until LOG has NEEDLE (0), PID exits (3) or timeout (2).
wait_log() {
    local f=$1 needle=$2 timeout=$3 pid=$4 i
    for ((i = 0; i < timeout * 10; i++)); do
        grep -qF -- "$needle" "$f" 2>/dev/null && return 0
        alive "$pid" || { grep -qF -- "$needle" "$f" 2>/dev/null && return 0; return 3; }
        sleep 0.1
    done
    return 2
}

show_failure() {
    local what=$1 f=$2
    FAILED=1
    echo "!! $what failed; log: $f (kept in $WORK)" >&2
    echo "   --- last lines of $f ---" >&2
    tail -n 25 "$f" 2>/dev/null | sed 's/^/   | /' >&2 || true
}

# ---------------------------------------------------------------------------------------------
# 1. build

cd "$REPO"
FERRO=${CARGO_TARGET_DIR:-$REPO/target}/release/ferrovpn
if [[ $BUILD == 1 ]]; then
    log "cargo build --release --bin ferrovpn"
    cargo build --release --bin ferrovpn
fi
[[ -x $FERRO ]] || die "$FERRO not found (build failed or --no-build without a build)"

# ---------------------------------------------------------------------------------------------
# 2. throwaway PKI and tls-crypt key

log "PKI and tls-crypt key in $WORK/pki"
PKI=$WORK/pki
mkdir -p "$PKI" "$WORK/logs" "$WORK/conf"
(
    cd "$PKI"
    cat >ca.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = fvb-bench-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
    cat >server.ext <<'EOF'
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    cat >client.ext <<'EOF'
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    newkey ca.key
    openssl req -x509 -new -sha256 -days 2 -config ca.cnf -extensions v3_ca -key ca.key -out ca.crt
    for cn in server bench-ferrovpn bench-openvpn; do
        newkey "$cn.key"
        openssl req -new -sha256 -key "$cn.key" -subj "/CN=$cn" -out "$cn.csr"
        ext=client.ext
        [[ $cn == server ]] && ext=server.ext
        openssl x509 -req -sha256 -days 2 -in "$cn.csr" -CA ca.crt -CAkey ca.key \
            -CAcreateserial -extfile "$ext" -out "$cn.crt" 2>/dev/null
    done
    openvpn --genkey secret tc.key >/dev/null
    chmod 600 ./*.key
)

# ---------------------------------------------------------------------------------------------
# 3. namespaces: S <-> CF (198.18.210.0/24), S <-> CO (198.18.211.0/24)

log "namespaces $NS_S, $NS_F, $NS_O"
for ns in "$NS_S" "$NS_F" "$NS_O"; do
    [[ ! -e /var/run/netns/$ns ]] || die "namespace $ns already exists"
done
for ns in "$NS_S" "$NS_F" "$NS_O"; do
    # Recorded before creation so that a half-made namespace is deleted too.
    NSS+=("$ns")
    mkdir -p "/etc/netns/$ns"
    printf '# compare_openvpn.sh: this namespace has no resolver\nnameserver 127.0.0.1\n' \
        >"/etc/netns/$ns/resolv.conf"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
# Both ends are created directly inside their namespaces: nothing appears in the host's.
ip link add vf-s netns "$NS_S" type veth peer name vf-c netns "$NS_F"
ip link add vo-s netns "$NS_S" type veth peer name vo-c netns "$NS_O"
ip -n "$NS_S" addr add 198.18.210.1/24 dev vf-s
ip -n "$NS_F" addr add 198.18.210.2/24 dev vf-c
ip -n "$NS_S" addr add 198.18.211.1/24 dev vo-s
ip -n "$NS_O" addr add 198.18.211.2/24 dev vo-c
for l in "$NS_S vf-s" "$NS_S vo-s" "$NS_F vf-c" "$NS_O vo-c"; do
    read -r ns dev <<<"$l"
    ip -n "$ns" link set "$dev" up
done

# ---------------------------------------------------------------------------------------------
# configs

# The server implementation a client talks to: openvpn, or in --pair mode its own kind.
server_of() { [[ $PAIR == 1 && $1 == ferrovpn ]] && echo ferrovpn || echo openvpn; }
server_port() { [[ $1 == ferrovpn ]] && echo 1195 || echo 1194; }
# server_net PROTO [SERVER_IMPL]: the /24 of the tunnel (the server is .1)
server_net() {
    local n=200
    [[ $1 == tcp ]] && n=$((n + 1))
    [[ ${2:-openvpn} == ferrovpn ]] && n=$((n + 2))
    echo "198.19.$n"
}

write_server_conf() {
    local proto=$1 simpl=${2:-openvpn} net f
    net=$(server_net "$proto" "$simpl")
    f=$WORK/conf/server-$simpl-$proto.conf
    {
        echo "# generated by tests/benches/compare_openvpn.sh"
        echo "dev tun"
        if [[ $proto == udp ]]; then echo "proto udp4"; else echo "proto tcp4-server"; fi
        echo "port $(server_port "$simpl")"
        echo "server $net.0 255.255.255.0"
        echo "topology subnet"
        echo "ca $PKI/ca.crt"
        echo "cert $PKI/server.crt"
        echo "key $PKI/server.key"
        echo "dh none"
        echo "tls-crypt $PKI/tc.key"
        echo "data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305"
        echo "keepalive 10 60"
        [[ $proto == udp ]] && echo "explicit-exit-notify 1"
        echo "verb 3"
    } >"$f"
    echo "$f"
}

# write_profile IMPL PROTO -> path of the .ovpn (both implementations read the same format)
write_profile() {
    local impl=$1 proto=$2 remote f tag file
    if [[ $impl == ferrovpn ]]; then remote=198.18.210.1; else remote=198.18.211.1; fi
    f=$WORK/conf/$impl-$proto.ovpn
    {
        echo "# generated by tests/benches/compare_openvpn.sh"
        echo "client"
        echo "dev tun"
        echo "nobind"
        echo "remote $remote $(server_port "$(server_of "$impl")") $proto"
        echo "remote-cert-tls server"
        echo "data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305"
        for tag in ca cert key tls-crypt; do
            case $tag in
                ca) file=$PKI/ca.crt ;;
                cert) file=$PKI/bench-$impl.crt ;;
                key) file=$PKI/bench-$impl.key ;;
                tls-crypt) file=$PKI/tc.key ;;
            esac
            echo "<$tag>"
            sed -e '/^#/d' -e '/^$/d' "$file"
            echo "</$tag>"
        done
        [[ $proto == udp ]] && echo "explicit-exit-notify 1"
        echo "verb $VERB"
    } >"$f"
    echo "$f"
}

client_ns() { [[ $1 == ferrovpn ]] && echo "$NS_F" || echo "$NS_O"; }

# start_client IMPL PROTO LOG: starts the client; on success sets CLIENT_PID and CONNECT_MS
# (process start -> "Initialization Sequence Completed" seen in its log) and returns 0.
start_client() {
    local impl=$1 proto=$2 out=$3 ns profile ready pidf wpid wrc t0 t1
    ns=$(client_ns "$impl")
    profile=$WORK/conf/$impl-$proto.ovpn
    : >"$out"
    ready=$WORK/waiter.ready
    pidf=$WORK/waiter.pid
    rm -f "$ready" "$pidf"
    # The waiter starts first (Python's start-up is not measured) and polls the log every 0.5 ms.
    "$PY" "$HELPER" waitlog "$out" "$LOG_CONNECTED" "$CONNECT_TIMEOUT" "$ready" "$pidf" \
        >"$WORK/waiter.out" 2>"$WORK/waiter.err" &
    wpid=$!
    RUNNING[$wpid]="log waiter"
    while [[ ! -e $ready ]]; do
        alive "$wpid" || die "log waiter failed: $(cat "$WORK/waiter.err")"
        sleep 0.01
    done
    t0=$EPOCHREALTIME
    if [[ $impl == ferrovpn ]]; then
        spawn "ferrovpn client" "$ns" "$out" "$FERRO" connect "$profile" --verb "$VERB" \
            --state-dir "$WORK/ferrovpn-state"
    else
        spawn "openvpn client" "$ns" "$out" openvpn --config "$profile"
    fi
    CLIENT_PID=$SPAWNED_PID
    echo "$CLIENT_PID" >"$pidf"
    wrc=0
    wait "$wpid" || wrc=$?
    unset "RUNNING[$wpid]"
    if [[ $wrc != 0 ]]; then
        cat "$WORK/waiter.err" >>"$out.waiter" 2>/dev/null || true
        CONNECT_MS=
        return 1
    fi
    t1=$(<"$WORK/waiter.out")
    CONNECT_MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1000 }')
    if grep -q "Initialization Sequence Completed With Errors" "$out"; then
        echo "   warning: $impl logged 'Initialization Sequence Completed With Errors' ($out)" >&2
    fi
    return 0
}

cipher_of() {
    # ferrovpn: "data channel: cipher AES-256-GCM, ..."; openvpn: "Data Channel: cipher 'AES-256-GCM'"
    grep -ohE "(data channel: cipher [A-Za-z0-9-]+|Data Channel: cipher '[A-Za-z0-9-]+')" "$1" 2>/dev/null \
        | head -n1 | sed -E "s/.*cipher '?([A-Za-z0-9-]+)'?/\1/" || true
}

record() { echo "$1" >>"$SAMPLES"; }

# run_iperf NS DIR(up|down|udp-up|udp-down) JSONFILE SERVER_IP: one iperf3 run through the
# tunnel; waits in the background so that Ctrl-C and SIGTERM reach the trap at once.
run_iperf() {
    local ns=$1 dir=$2 json=$3 sip=$4 rflag=() pid st=0
    [[ $dir == *down ]] && rflag=(-R)
    local t=$TIME
    # 1350-byte datagrams fit the tunnel's MTU (no IP fragments)
    if [[ $dir == udp-* ]]; then
        rflag+=(-u -b "$UDP_BPS" -l 1350)
        t=$UDP_TIME
    fi
    timeout $((t + 30)) ip netns exec "$ns" iperf3 -c "$sip" -t "$t" -J \
        --connect-timeout 5000 "${rflag[@]}" >"$json" 2>&1 </dev/null &
    pid=$!
    RUNNING[$pid]="iperf3 client"
    wait "$pid" || st=$?
    unset "RUNNING[$pid]"
    return "$st"
}

# measure_dir NS DIR JSONFILE SERVER_IP SERVER_PID: run_iperf with the client's and the
# server's CPU ticks taken around the attempt that counts. iperf3 sometimes refuses a test that
# follows the previous one too closely ("unable to receive control message: Connection reset by
# peer", before any data): such an attempt is kept as JSONFILE.failed and retried once. Sets
# DIR_TICKS and DIR_STICKS; returns 1 if the run failed. PERF_NOW=1 records the client with
# perf during the run.
measure_dir() {
    local ns=$1 dir=$2 json=$3 sip=$4 spid=$5 a b sa attempt ppid=
    for attempt in 1 2; do
        sleep 1   # let the iperf3 server get back to listening
        if [[ ${PERF_NOW:-0} == 1 && $attempt == 1 ]]; then
            perf record -q -e cpu-clock -g -p "$CLIENT_PID" -o "$PERF_DIR/perf-$PERF_TAG.data" \
                >"$PERF_DIR/perf-$PERF_TAG.log" 2>&1 </dev/null &
            ppid=$!
            RUNNING[$ppid]="perf record"
            sleep 0.5
        fi
        a=$(cpu_ticks "$CLIENT_PID")
        sa=$(cpu_ticks "$spid")
        if run_iperf "$ns" "$dir" "$json" "$sip"; then
            b=$(cpu_ticks "$CLIENT_PID")
            DIR_TICKS=$((b - a))
            DIR_STICKS=$(($(cpu_ticks "$spid") - sa))
            stop_perf "$ppid"
            return 0
        fi
        b=$(cpu_ticks "$CLIENT_PID")
        DIR_TICKS=$((b - a))
        DIR_STICKS=$(($(cpu_ticks "$spid") - sa))
        stop_perf "$ppid"
        ppid=
        if [[ $attempt == 1 ]] && alive "$CLIENT_PID" \
            && ! grep -q '"bytes"' "$json" 2>/dev/null; then
            echo "   ($dir: iperf3 failed before any data: $(grep -o '"error":.*' "$json" 2>/dev/null || echo '?'); retrying once)" >&2
            mv "$json" "$json.failed"
            continue
        fi
        return 1
    done
}

# measure_udp NS DIR JSONFILE SERVER_IP SERVER_PID START_MBPS: the UDP run(s) of one direction
# (see --udp-rate); leaves the reported trial in JSONFILE (all trials in JSONFILE.tryN), its
# CPU ticks in DIR_TICKS/DIR_STICKS and its offered rate in UDP_OFFERED (Mbit/s).
measure_udp() {
    local ns=$1 dir=$2 json=$3 sip=$4 spid=$5 rate=$6 i ups=0 best= last= f bps bytes rtx lost pass
    local -A tk stk off
    if [[ $UDP_RATE != auto ]]; then
        UDP_BPS=$UDP_RATE
        UDP_OFFERED=$UDP_RATE
        measure_dir "$ns" "$dir" "$json" "$sip" "$spid"
        return
    fi
    for ((i = 1; i <= 5; i++)); do
        f=$json.try$i
        UDP_BPS=${rate}M
        measure_dir "$ns" "$dir" "$f" "$sip" "$spid" || return 1
        PERF_NOW=0   # only the first trial is recorded
        tk[$i]=$DIR_TICKS; stk[$i]=$DIR_STICKS; off[$i]=$rate
        last=$i
        read -r bps bytes rtx lost <<<"$("$PY" "$HELPER" iperf "$f" 2>/dev/null || echo "0 0 -1 100")"
        pass=$(awk -v l="$lost" 'BEGIN { print (l <= 1.0) ? 1 : 0 }')
        if [[ $pass == 1 ]]; then
            best=$i
            ((ups < 2)) || break
            ups=$((ups + 1))
            rate=$(awk -v r="$rate" 'BEGIN { printf "%d", r * 1.25 + 1 }')
        else
            [[ -z $best ]] || break
            rate=$(awk -v r="$rate" 'BEGIN { r = int(r * 0.6); print (r < 1) ? 1 : r }')
        fi
    done
    i=${best:-$last}
    cp "$json.try$i" "$json"
    DIR_TICKS=${tk[$i]}; DIR_STICKS=${stk[$i]}; UDP_OFFERED=${off[$i]}M
}

stop_perf() {
    [[ -n $1 ]] || return 0
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    unset "RUNNING[$1]"
}

# rss_kib PID [VmRSS|VmHWM]
rss_kib() { awk -v k="${2:-VmRSS}:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# start_rss_sampler PID FILE: largest VmRSS of PID (KiB), sampled every 0.2 s, kept in FILE.
start_rss_sampler() {
    local pid=$1 f=$2
    echo 0 >"$f"
    (
        max=0
        while alive "$pid"; do
            v=$(rss_kib "$pid")
            if [[ -n $v ]] && ((v > max)); then max=$v; echo "$max" >"$f"; fi
            sleep 0.2
        done
    ) &
    SAMPLER_PID=$!
    RUNNING[$SAMPLER_PID]="RSS sampler"
}

# ping_avg NS IP: average RTT in ms of `ping -c 50 -i 0.05`, or "null".
ping_avg() {
    local out
    out=$(ip netns exec "$1" ping -n -q -c 50 -i 0.05 -W 2 "$2" 2>&1 </dev/null) || true
    sed -nE 's|^rtt [^=]*= [0-9.]+/([0-9.]+)/.*|\1|p' <<<"$out" | grep . || echo null
}

# ---------------------------------------------------------------------------------------------
# 4. measurements

measure_connects() {
    local proto=$1 j impl order out how
    for ((j = 0; j < CONNECTS; j++)); do
        if ((j % 2 == 0)); then order=(ferrovpn openvpn); else order=(openvpn ferrovpn); fi
        for impl in "${order[@]}"; do
            out=$WORK/logs/$proto-$impl-connect$j.log
            if start_client "$impl" "$proto" "$out"; then
                stop "$CLIENT_PID" 10; how=$STOPPED
                printf '   %s %-8s connect %d: %7.1f ms (stop: %s)\n' "$proto" "$impl" "$j" "$CONNECT_MS" "$how"
                record "{\"proto\":\"$proto\",\"impl\":\"$impl\",\"kind\":\"connect\",\"i\":$j,\"ok\":true,\"ms\":$CONNECT_MS,\"stop\":\"$how\",\"cipher\":\"$(cipher_of "$out")\"}"
            else
                stop "$CLIENT_PID" 10; how=$STOPPED
                show_failure "$proto $impl connect $j" "$out"
                record "{\"proto\":\"$proto\",\"impl\":\"$impl\",\"kind\":\"connect\",\"i\":$j,\"ok\":false,\"stop\":\"$how\"}"
            fi
            # let the server notice the exit before the next client comes
            sleep 0.5
        done
    done
}

# underlay address of the server as seen from a client's namespace
underlay_ip() { [[ $1 == ferrovpn ]] && echo 198.18.210.1 || echo 198.18.211.1; }

mbps() { awk -v x="$1" 'BEGIN { printf "%.2f", x / 1e6 }'; }
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }

measure_throughput() {
    local proto=$1 r impl order out ns sip spid simpl s0 s2 hwm rss how d ok fields idle load
    local rtt_tun rtt_under dirs=(up down) json shwm
    [[ $UDP_RATE != 0 ]] && dirs+=(udp-up udp-down)
    local -A res cpu scpu offered
    local start
    for ((r = 0; r < REPS; r++)); do
        if ((r % 2 == 0)); then order=(ferrovpn openvpn); else order=(openvpn ferrovpn); fi
        for impl in "${order[@]}"; do
            out=$WORK/logs/$proto-$impl-throughput$r.log
            ns=$(client_ns "$impl")
            simpl=$(server_of "$impl")
            sip=$(server_net "$proto" "$simpl").1
            spid=${SERVER_PID[$simpl]}
            if ! start_client "$impl" "$proto" "$out"; then
                stop "$CLIENT_PID" 10; how=$STOPPED
                show_failure "$proto $impl throughput run $r (connect)" "$out"
                record "{\"proto\":\"$proto\",\"impl\":\"$impl\",\"kind\":\"throughput\",\"rep\":$r,\"ok\":false,\"stage\":\"connect\"}"
                sleep 0.5
                continue
            fi
            ok=true
            sleep 1
            idle=$(rss_kib "$CLIENT_PID")
            rtt_under=$(ping_avg "$ns" "$(underlay_ip "$impl")")
            rtt_tun=$(ping_avg "$ns" "$sip")
            start_rss_sampler "$CLIENT_PID" "$WORK/rss-max"
            s0=$(cpu_ticks "$spid")
            for d in "${dirs[@]}"; do
                json=$WORK/logs/$proto-$impl-iperf-$d$r.json
                PERF_NOW=0
                if [[ -n $PERF_DIR && $impl == ferrovpn && $d == udp-up && $r == 0 ]]; then
                    PERF_NOW=1
                    PERF_TAG=$proto
                fi
                if [[ $d == udp-* ]]; then
                    # start the search at this run's TCP rate in the same direction
                    start=$("$PY" "$HELPER" iperf "$WORK/logs/$proto-$impl-iperf-${d#udp-}$r.json" 2>/dev/null \
                        | awk '{ r = int($1 / 1e6); print (r < 10) ? 100 : r }') || start=100
                    measure_udp "$ns" "$d" "$json" "$sip" "$spid" "${start:-100}" || ok=false
                    offered[$d]=$UDP_OFFERED
                else
                    measure_dir "$ns" "$d" "$json" "$sip" "$spid" || ok=false
                fi
                cpu[$d]=$(secs "$DIR_TICKS")
                scpu[$d]=$(secs "$DIR_STICKS")
            done
            PERF_NOW=0
            s2=$(cpu_ticks "$spid")
            hwm=$(rss_kib "$CLIENT_PID" VmHWM)
            shwm=$(rss_kib "$spid" VmHWM)
            rss=$(rss_kib "$CLIENT_PID")
            stop "$SAMPLER_PID" 2
            load=$(<"$WORK/rss-max")
            alive "$CLIENT_PID" || ok=false
            stop "$CLIENT_PID" 10; how=$STOPPED
            for d in "${dirs[@]}"; do
                if fields=$("$PY" "$HELPER" iperf "$WORK/logs/$proto-$impl-iperf-$d$r.json" 2>>"$out.iperf-errors"); then
                    res[$d]=$fields
                else
                    res[$d]="0 0 -1 -1"
                    ok=false
                fi
            done
            local line="" bps bytes rtx lost js=""
            for d in "${dirs[@]}"; do
                read -r bps bytes rtx lost <<<"${res[$d]}"
                line+=$(printf ' %s %.1f Mbit/s (cpu %s s%s)' "$d" "$(mbps "$bps")" "${cpu[$d]}" \
                    "$([[ $d == udp-* ]] && echo ", offered ${offered[$d]:-?}, loss $lost %")")
                js+=",\"$d\":{\"mbps\":$(mbps "$bps"),\"bytes\":$bytes,\"cpu_s\":${cpu[$d]},\"server_cpu_s\":${scpu[$d]},\"retransmits\":$rtx,\"lost_pct\":$lost,\"offered\":\"${offered[$d]:-}\"}"
            done
            local srv_cpu
            srv_cpu=$(secs $((s2 - s0)))
            printf '   %s %-8s rep %d:%s\n      RSS idle %s KiB, under load %s KiB, VmHWM %s KiB; RTT tunnel %s ms, underlay %s ms; server (%s) cpu %s s; stop: %s\n' \
                "$proto" "$impl" "$r" "$line" "${idle:-?}" "$load" "${hwm:-?}" "$rtt_tun" "$rtt_under" \
                "$simpl" "$srv_cpu" "$how"
            [[ -s $out.iperf-errors ]] || rm -f "$out.iperf-errors"
            if [[ $ok != true ]]; then
                show_failure "$proto $impl throughput run $r" "$out"
                if [[ -s $out.iperf-errors ]]; then
                    sed 's/^/   | /' "$out.iperf-errors" >&2
                fi
            fi
            record "{\"proto\":\"$proto\",\"impl\":\"$impl\",\"server\":\"$simpl\",\"kind\":\"throughput\",\"rep\":$r,\"ok\":$ok,\"connect_ms\":$CONNECT_MS$js,\"rss_idle_kib\":${idle:-0},\"rss_load_kib\":${load:-0},\"rss_hwm_kib\":${hwm:-0},\"rss_end_kib\":${rss:-0},\"rtt_tunnel_ms\":$rtt_tun,\"rtt_underlay_ms\":$rtt_under,\"server_cpu_s\":$srv_cpu,\"server_hwm_kib\":${shwm:-0},\"stop\":\"$how\",\"cipher\":\"$(cipher_of "$out")\"}"
            sleep 0.5
        done
    done
}

# start_server SIMPL PROTO: the openvpn server or `ferrovpn serve` in S; sets SERVER_PID[SIMPL].
start_server() {
    local simpl=$1 proto=$2 conf slog rc=0
    conf=$(write_server_conf "$proto" "$simpl")
    slog=$WORK/logs/server-$simpl-$proto.log
    log "$proto: $simpl server in $NS_S (tunnel $(server_net "$proto" "$simpl").0/24, port $(server_port "$simpl"))"
    if [[ $simpl == ferrovpn ]]; then
        spawn "ferrovpn serve ($proto)" "$NS_S" "$slog" "$FERRO" serve "$conf"
    else
        spawn "openvpn server ($proto)" "$NS_S" "$slog" openvpn --config "$conf"
    fi
    SERVER_PID[$simpl]=$SPAWNED_PID
    wait_log "$slog" "$LOG_CONNECTED" 20 "$SPAWNED_PID" || rc=$?
    if [[ $rc != 0 ]]; then
        show_failure "$simpl server ($proto) start" "$slog"
        exit 1
    fi
}

run_phase() {
    local proto=$1 ilog ipid rc simpl servers=(openvpn)
    [[ $PAIR == 1 ]] && servers+=(ferrovpn)
    write_profile ferrovpn "$proto" >/dev/null
    write_profile openvpn "$proto" >/dev/null
    for simpl in "${servers[@]}"; do start_server "$simpl" "$proto"; done
    ilog=$WORK/logs/iperf3-server-$proto.log
    # one iperf3 server on every address of S (it serves one test at a time)
    log "$proto: iperf3 server in $NS_S"
    spawn "iperf3 server" "$NS_S" "$ilog" iperf3 -s --forceflush
    ipid=$SPAWNED_PID
    rc=0
    wait_log "$ilog" "Server listening" 10 "$ipid" || rc=$?
    if [[ $rc != 0 ]]; then
        show_failure "iperf3 server ($proto) start" "$ilog"
        exit 1
    fi

    log "$proto: connect time, $CONNECTS connects per client (alternating)"
    measure_connects "$proto"
    log "$proto: throughput, $REPS x ${TIME}s per direction and client (alternating order)"
    measure_throughput "$proto"

    stop "$ipid" 5
    for simpl in "${servers[@]}"; do
        stop "${SERVER_PID[$simpl]}" 10
        log "$proto: $simpl server stopped ($STOPPED)"
        unset "SERVER_PID[$simpl]"
    done
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

LOAD_START=$(loadavg)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
: >"$SAMPLES"
for proto in "${PROTO_LIST[@]}"; do
    run_phase "$proto"
done
LOAD_END=$(loadavg)

# ---------------------------------------------------------------------------------------------
# 5. report

OVPN_VERSION=$(openvpn --version 2>/dev/null | head -n1 | awk '{print $2}')
FERRO_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -n1) ]]; then FERRO_REV+="+dirty"; fi
cat >"$WORK/meta.json" <<EOF
{
  "started": "$STARTED",
  "finished": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "ferrovpn_rev": "$FERRO_REV",
  "openvpn_version": "$OVPN_VERSION",
  "iperf3_version": "$(iperf3 --version 2>/dev/null | head -n1 | awk '{print $2}')",
  "kernel": "$(uname -r)",
  "cores": $(nproc),
  "loadavg_start": "$LOAD_START",
  "loadavg_end": "$LOAD_END",
  "reps": $REPS,
  "connects": $CONNECTS,
  "iperf_seconds": $TIME,
  "client_verb": $VERB,
  "protos": "$PROTOS",
  "pair": $([[ $PAIR == 1 ]] && echo true || echo false),
  "udp_rate": "$UDP_RATE",
  "data_ciphers": "AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305",
  "failed": $([[ $FAILED == 0 ]] && echo false || echo true),
  "logs": "$([[ $FAILED != 0 || $KEEP == 1 ]] && echo "$WORK")"
}
EOF
"$PY" "$HELPER" report "$SAMPLES" --out "$OUT" --meta "$WORK/meta.json"

if [[ $FAILED != 0 ]]; then
    echo "compare_openvpn: some runs FAILED (see above); client and server logs in $WORK/logs" >&2
    exit 1
fi
