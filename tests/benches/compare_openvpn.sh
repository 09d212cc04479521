#!/usr/bin/env bash
# compare_openvpn.sh: ferrovpn vs the OpenVPN 2.6 client, side by side, in one run.
#
# Usage (as root, from anywhere):
#   sudo tests/benches/compare_openvpn.sh [--out FILE] [--reps N] [--connects N] [--time SEC]
#                                          [--proto udp,tcp] [--verb N] [--no-build] [--keep]
#
#   --out FILE     JSON result file (default: <repo>/target/compare-openvpn.json)
#   --reps N       throughput repetitions per client and transport (default 3); the order of
#                  the two clients alternates between repetitions to cancel drift
#   --connects N   connects per client and transport for the connect time (default 5, median)
#   --time SEC     iperf3 duration per direction (default 10)
#   --proto LIST   transports to measure, comma-separated: udp, tcp (default udp,tcp)
#   --verb N       log verbosity of both clients (default 3; higher costs throughput)
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
#   throughput    iperf3 (server in S on the tunnel address, client in CF/CO), single stream,
#                 --time seconds each way (client->server "up", -R "down"), receiver bitrate
#   memory        VmHWM (peak RSS) of the client process at the end of the throughput run
#   CPU           utime+stime of the client process during the throughput run, per GB moved
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
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
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
CLIENT_PID=
CONNECT_MS=
SERVER_PID=

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

server_net() { [[ $1 == udp ]] && echo 198.19.200 || echo 198.19.201; }

write_server_conf() {
    local proto=$1 net f
    net=$(server_net "$proto")
    f=$WORK/conf/server-$proto.conf
    {
        echo "# generated by tests/benches/compare_openvpn.sh"
        echo "dev tun"
        if [[ $proto == udp ]]; then echo "proto udp4"; else echo "proto tcp4-server"; fi
        echo "port 1194"
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
        echo "remote $remote 1194 $proto"
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

# run_iperf NS DIR(up|down) JSONFILE SERVER_IP: one iperf3 run through the tunnel; waits in
# the background so that Ctrl-C and SIGTERM reach the trap at once.
run_iperf() {
    local ns=$1 dir=$2 json=$3 sip=$4 rflag=() pid st=0
    [[ $dir == down ]] && rflag=(-R)
    timeout $((TIME + 30)) ip netns exec "$ns" iperf3 -c "$sip" -t "$TIME" -J \
        --connect-timeout 5000 "${rflag[@]}" >"$json" 2>&1 </dev/null &
    pid=$!
    RUNNING[$pid]="iperf3 client"
    wait "$pid" || st=$?
    unset "RUNNING[$pid]"
    return "$st"
}

# measure_dir NS DIR JSONFILE SERVER_IP: run_iperf with the client's CPU ticks taken around
# the attempt that counts. iperf3 sometimes refuses a test that follows the previous one too
# closely ("unable to receive control message: Connection reset by peer", before any data):
# such an attempt is kept as JSONFILE.failed and retried once. Sets DIR_TICKS; returns 1 if
# the run failed.
measure_dir() {
    local ns=$1 dir=$2 json=$3 sip=$4 a b attempt
    for attempt in 1 2; do
        sleep 1   # let the iperf3 server get back to listening
        a=$(cpu_ticks "$CLIENT_PID")
        if run_iperf "$ns" "$dir" "$json" "$sip"; then
            b=$(cpu_ticks "$CLIENT_PID")
            DIR_TICKS=$((b - a))
            return 0
        fi
        b=$(cpu_ticks "$CLIENT_PID")
        DIR_TICKS=$((b - a))
        if [[ $attempt == 1 ]] && alive "$CLIENT_PID" \
            && ! grep -q '"bytes"' "$json" 2>/dev/null; then
            echo "   ($dir: iperf3 failed before any data: $(grep -o '"error":.*' "$json" 2>/dev/null || echo '?'); retrying once)" >&2
            mv "$json" "$json.failed"
            continue
        fi
        return 1
    done
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

measure_throughput() {
    local proto=$1 sip=$2 r impl order out ns t_up t_dn s0 s2 hwm rss how d ok fields
    local -A res
    for ((r = 0; r < REPS; r++)); do
        if ((r % 2 == 0)); then order=(ferrovpn openvpn); else order=(openvpn ferrovpn); fi
        for impl in "${order[@]}"; do
            out=$WORK/logs/$proto-$impl-throughput$r.log
            ns=$(client_ns "$impl")
            if ! start_client "$impl" "$proto" "$out"; then
                stop "$CLIENT_PID" 10; how=$STOPPED
                show_failure "$proto $impl throughput run $r (connect)" "$out"
                record "{\"proto\":\"$proto\",\"impl\":\"$impl\",\"kind\":\"throughput\",\"rep\":$r,\"ok\":false,\"stage\":\"connect\"}"
                sleep 0.5
                continue
            fi
            ok=true
            s0=$(cpu_ticks "$SERVER_PID")
            measure_dir "$ns" up "$WORK/logs/$proto-$impl-iperf-up$r.json" "$sip" || ok=false
            t_up=$DIR_TICKS
            measure_dir "$ns" down "$WORK/logs/$proto-$impl-iperf-down$r.json" "$sip" || ok=false
            t_dn=$DIR_TICKS
            s2=$(cpu_ticks "$SERVER_PID")
            hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$CLIENT_PID/status" 2>/dev/null || true)
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$CLIENT_PID/status" 2>/dev/null || true)
            alive "$CLIENT_PID" || ok=false
            stop "$CLIENT_PID" 10; how=$STOPPED
            for d in up down; do
                if fields=$("$PY" "$HELPER" iperf "$WORK/logs/$proto-$impl-iperf-$d$r.json" 2>>"$out.iperf-errors"); then
                    res[$d]=$fields
                else
                    res[$d]="0 0 -1"
                    ok=false
                fi
            done
            local up_bps up_bytes up_rtx dn_bps dn_bytes dn_rtx
            read -r up_bps up_bytes up_rtx <<<"${res[up]}"
            read -r dn_bps dn_bytes dn_rtx <<<"${res[down]}"
            local cpu_up cpu_dn srv_cpu
            cpu_up=$(awk -v t="$t_up" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
            cpu_dn=$(awk -v t="$t_dn" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
            srv_cpu=$(awk -v a="$s0" -v b="$s2" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
            printf '   %s %-8s rep %d: up %7.1f Mbit/s (cpu %5.2f s)  down %7.1f Mbit/s (cpu %5.2f s)  VmHWM %s KiB  server cpu %s s  stop: %s\n' \
                "$proto" "$impl" "$r" "$(awk -v x="$up_bps" 'BEGIN{print x/1e6}')" "$cpu_up" \
                "$(awk -v x="$dn_bps" 'BEGIN{print x/1e6}')" "$cpu_dn" "${hwm:-?}" "$srv_cpu" "$how"
            [[ -s $out.iperf-errors ]] || rm -f "$out.iperf-errors"
            if [[ $ok != true ]]; then
                show_failure "$proto $impl throughput run $r" "$out"
                if [[ -s $out.iperf-errors ]]; then
                    sed 's/^/   | /' "$out.iperf-errors" >&2
                fi
            fi
            record "{\"proto\":\"$proto\",\"impl\":\"$impl\",\"kind\":\"throughput\",\"rep\":$r,\"ok\":$ok,\"connect_ms\":$CONNECT_MS,\"up\":{\"mbps\":$(awk -v x="$up_bps" 'BEGIN{printf "%.2f", x/1e6}'),\"bytes\":$up_bytes,\"cpu_s\":$cpu_up,\"retransmits\":$up_rtx},\"down\":{\"mbps\":$(awk -v x="$dn_bps" 'BEGIN{printf "%.2f", x/1e6}'),\"bytes\":$dn_bytes,\"cpu_s\":$cpu_dn,\"retransmits\":$dn_rtx},\"rss_hwm_kib\":${hwm:-0},\"rss_end_kib\":${rss:-0},\"server_cpu_s\":$srv_cpu,\"stop\":\"$how\",\"cipher\":\"$(cipher_of "$out")\"}"
            sleep 0.5
        done
    done
}

run_phase() {
    local proto=$1 conf net sip slog ilog ipid rc
    net=$(server_net "$proto")
    sip=$net.1
    conf=$(write_server_conf "$proto")
    write_profile ferrovpn "$proto" >/dev/null
    write_profile openvpn "$proto" >/dev/null
    slog=$WORK/logs/server-$proto.log
    log "$proto: openvpn server in $NS_S (tunnel $net.0/24), iperf3 server on $sip"
    spawn "openvpn server ($proto)" "$NS_S" "$slog" openvpn --config "$conf"
    SERVER_PID=$SPAWNED_PID
    rc=0
    wait_log "$slog" "$LOG_CONNECTED" 20 "$SERVER_PID" || rc=$?
    if [[ $rc != 0 ]]; then
        show_failure "openvpn server ($proto) start" "$slog"
        exit 1
    fi
    ilog=$WORK/logs/iperf3-server-$proto.log
    spawn "iperf3 server" "$NS_S" "$ilog" iperf3 -s -B "$sip" --forceflush
    ipid=$SPAWNED_PID
    rc=0
    wait_log "$ilog" "Server listening" 10 "$ipid" || rc=$?
    if [[ $rc != 0 ]]; then
        show_failure "iperf3 server ($proto) start" "$ilog"
        exit 1
    fi

    log "$proto: connect time, $CONNECTS connects per client (alternating)"
    measure_connects "$proto"
    log "$proto: throughput, $REPS x ${TIME}s up + ${TIME}s down per client (alternating order)"
    measure_throughput "$proto" "$sip"

    stop "$ipid" 5
    stop "$SERVER_PID" 10
    log "$proto: server stopped ($STOPPED)"
    SERVER_PID=
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
