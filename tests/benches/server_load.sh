#!/usr/bin/env bash
# server_load.sh: the same client load against `ferrovpn serve` and the OpenVPN 2.6 server.
#
# Usage (as root, from anywhere):
#   sudo tests/benches/server_load.sh [--clients N] [--rate PER_S] [--duration S] [--shards N]
#                                     [--connect-timeout S] [--only ferrovpn|openvpn]
#                                     [--first ferrovpn|openvpn] [--bufs BYTES] [--userspace]
#                                     [--json FILE] [--no-build] [--keep]
#
#   --clients N          simulated clients (default 200)
#   --rate PER_S         new handshakes started per second (default 100)
#   --duration S         hold phase after everyone connected (default 20)
#   --shards N           client driver tasks/threads in the load program (default 1)
#   --connect-timeout S  per handshake attempt, and the wait for stragglers (default 30)
#   --only IMPL          measure one server only
#   --first IMPL         which server runs first (default ferrovpn)
#   --bufs BYTES         add `rcvbuf BYTES` and `sndbuf BYTES` to server.conf (OpenVPN applies
#                        them; ferrovpn accepts and ignores them, its UDP socket always asks for
#                        a 4 MiB receive buffer). Without it OpenVPN keeps the kernel default
#                        (~208 KiB) and drops handshake packets in bursts.
#   --userspace          run `ferrovpn serve --userspace` (no TUN; its netstack answers the
#                        pings) instead of tunnel mode; openvpn always uses its TUN device
#   --json FILE          also write the RESULT lines (with the server figures) as JSON to FILE
#   --no-build           use the existing binaries
#   --keep               keep the temporary directory (configs, logs) even on success
#
# Binaries: FERROVPN_BIN (default ${CARGO_TARGET_DIR:-<repo>/target}/release/ferrovpn, built
# with `cargo build --release --bin ferrovpn`) and LOAD_BIN (default: the executable of
# `cargo bench --bench server_load --no-run`, i.e. tests/benches/server_load.rs; with
# --no-build the newest $CARGO_TARGET_DIR/release/deps/server_load-* already built).
#
# What it does: two namespaces, fvsl-PID-s (server) and fvsl-PID-c (the load program), joined
# by a veth on 198.18.230.0/24. One server.conf for both servers (vector PKI from
# /work/shared/vectors/a-tls-crypt-udp-aes256gcm-reneg or $PKI_DIR): `server 198.18.128.0
# 255.255.192.0` (a /18 pool), topology subnet, UDP, tls-crypt, AES-256-GCM, duplicate-cn,
# max-clients 20000, connect-freq-initial 100000 10, keepalive 10 60, verb 1. Each server in
# turn (never both at once): start it, run the load program in the client namespace with the
# same arguments, read the server's VmHWM and CPU seconds, stop it. Prints both RESULT lines,
# the server figures and the ratios ferrovpn/openvpn.
#
# Network safety: everything (veth, TUN device, addresses, every process) lives in the two
# namespaces created here; each has /etc/netns/NS/resolv.conf before anything runs in it. The
# EXIT/INT/TERM trap stops the processes this script started, by pid, and deletes the
# namespaces and /etc/netns/NS. Addresses: 198.18.230.0/24 (veth), 198.18.128.0/18 (tunnel).
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)

CLIENTS=200
RATE=100
DURATION=20
SHARDS=1
CONNECT_TIMEOUT=30
ONLY=
FIRST=ferrovpn
USERSPACE=0
BUFS=
BUILD=1
KEEP=0
JSON=
PKI_DIR=${PKI_DIR:-/work/shared/vectors/a-tls-crypt-udp-aes256gcm-reneg}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "server_load: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --clients) CLIENTS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --connect-timeout) CONNECT_TIMEOUT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --first) FIRST=$2; shift 2 ;;
        --userspace) USERSPACE=1; shift ;;
        --bufs) BUFS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        --json) JSON=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $CLIENTS =~ ^[1-9][0-9]*$ && $SHARDS =~ ^[1-9][0-9]*$ ]] || die "--clients/--shards: positive integers"
[[ $RATE =~ ^[0-9]+(\.[0-9]+)?$ && $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--rate/--duration: numbers"
case $FIRST in ferrovpn) ORDER=(ferrovpn openvpn) ;; openvpn) ORDER=(openvpn ferrovpn) ;; *) die "--first: ferrovpn or openvpn" ;; esac
if [[ -n $ONLY ]]; then
    [[ $ONLY == ferrovpn || $ONLY == openvpn ]] || die "--only: ferrovpn or openvpn"
    ORDER=("$ONLY")
fi
[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, TUN devices)"
for tool in ip ss openvpn python3; do command -v "$tool" >/dev/null || die "$tool not found"; done
for f in ca.crt server.crt server.key client.crt client.key ta.key; do
    [[ -r $PKI_DIR/$f ]] || die "$PKI_DIR/$f missing (set PKI_DIR)"
done

log() { printf '== %s %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---------------------------------------------------------------------------------------------
# state and cleanup

TAG=fvsl-$$
NS_S=$TAG-s
NS_C=$TAG-c
WORK=$(mktemp -d /tmp/fvsl.XXXXXX)
declare -A RUNNING=()   # pid -> what
NSS=()
FAILED=0
SPAWNED_PID=

alive() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z && ${s:0:1} != X ]]
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    local pid ns i left
    for pid in "${!RUNNING[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "${!RUNNING[@]}"; do alive "$pid" && left=1; done
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
        echo "server_load: configs and logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "server_load: interrupted" >&2; exit 130' INT TERM

# spawn WHAT NS LOG CMD...: CMD in namespace NS, in the background; pid in SPAWNED_PID.
spawn() {
    local what=$1 ns=$2 out=$3
    shift 3
    ip netns exec "$ns" "$@" >>"$out" 2>&1 </dev/null &
    SPAWNED_PID=$!
    RUNNING[$SPAWNED_PID]=$what
}

# stop PID TIMEOUT_S: SIGTERM, then SIGKILL after TIMEOUT_S; reaps it.
stop() {
    local pid=$1 timeout=$2 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 20; i++)); do
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    unset "RUNNING[$pid]"
}

cpu_seconds() {
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    read -r -a f <<<"$s"
    awk -v t=$((f[11] + f[12])) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# ---------------------------------------------------------------------------------------------
# binaries

cd "$REPO"
TGT=${CARGO_TARGET_DIR:-$REPO/target}
FERROVPN_BIN=${FERROVPN_BIN:-$TGT/release/ferrovpn}
if [[ $BUILD == 1 ]]; then
    command -v cargo >/dev/null || die "cargo not found (or use --no-build with FERROVPN_BIN/LOAD_BIN)"
    log "cargo build --release --bin ferrovpn"
    cargo build --release --bin ferrovpn
    log "cargo bench --bench server_load --no-run"
fi
if [[ -z ${LOAD_BIN:-} && $BUILD == 0 ]]; then
    # The newest bench executable already built (cargo names it server_load-HASH).
    LOAD_BIN=$(find "$TGT/release/deps" -maxdepth 1 -type f -name 'server_load-*' ! -name '*.*' \
        -perm -u+x -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n1 | cut -d' ' -f2-)
fi
if [[ -z ${LOAD_BIN:-} ]]; then
    command -v cargo >/dev/null || die "cargo not found: set LOAD_BIN"
    LOAD_BIN=$(cargo bench --bench server_load --no-run --message-format=json 2>"$WORK/load-build.err" \
        | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "server_load" and m.get("executable"):
        print(m["executable"])
') || true
    [[ -n $LOAD_BIN ]] || { cat "$WORK/load-build.err" >&2; die "cannot build the server_load bench"; }
fi
[[ -x $FERROVPN_BIN ]] || die "$FERROVPN_BIN not found"
[[ -x $LOAD_BIN ]] || die "$LOAD_BIN not found"

# ---------------------------------------------------------------------------------------------
# namespaces and configuration

log "namespaces $NS_S, $NS_C"
for ns in "$NS_S" "$NS_C"; do
    [[ ! -e /var/run/netns/$ns ]] || die "namespace $ns already exists"
done
for ns in "$NS_S" "$NS_C"; do
    NSS+=("$ns")
    mkdir -p "/etc/netns/$ns"
    printf '# server_load.sh: this namespace has no resolver\nnameserver 127.0.0.1\n' \
        >"/etc/netns/$ns/resolv.conf"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip link add sl-s netns "$NS_S" type veth peer name sl-c netns "$NS_C"
ip -n "$NS_S" addr add 198.18.230.1/24 dev sl-s
ip -n "$NS_C" addr add 198.18.230.2/24 dev sl-c
ip -n "$NS_S" link set sl-s up
ip -n "$NS_C" link set sl-c up

SERVER_CONF=$WORK/server.conf
cat >"$SERVER_CONF" <<EOF
# generated by tests/benches/server_load.sh
dev tun
proto udp
port 1194
local 198.18.230.1
server 198.18.128.0 255.255.192.0
topology subnet
ca $PKI_DIR/ca.crt
cert $PKI_DIR/server.crt
key $PKI_DIR/server.key
dh none
tls-crypt $PKI_DIR/ta.key
data-ciphers AES-256-GCM
keepalive 10 60
duplicate-cn
max-clients 20000
connect-freq-initial 100000 10
verb 1
EOF
if [[ -n $BUFS ]]; then
    [[ $BUFS =~ ^[1-9][0-9]*$ ]] || die "--bufs: a byte count"
    printf 'rcvbuf %s\nsndbuf %s\n' "$BUFS" "$BUFS" >>"$SERVER_CONF"
fi
PROFILE=$WORK/client.ovpn
cat >"$PROFILE" <<EOF
# generated by tests/benches/server_load.sh
client
dev tun
proto udp4
remote 198.18.230.1 1194
nobind
remote-cert-tls server
ca $PKI_DIR/ca.crt
cert $PKI_DIR/client.crt
key $PKI_DIR/client.key
tls-crypt $PKI_DIR/ta.key
data-ciphers AES-256-GCM
verb 1
EOF

# wait_server PID: until UDP 1194 is bound and 198.18.128.1 exists (or, --userspace, just the
# socket); 1 if the server died or 20 s passed.
wait_server() {
    local pid=$1 need_addr=$2 i
    for ((i = 0; i < 200; i++)); do
        alive "$pid" || return 1
        if [[ -n $(ip netns exec "$NS_S" ss -Hnul 'sport = :1194' 2>/dev/null) ]]; then
            if [[ $need_addr == 0 ]] || ip -n "$NS_S" -4 addr show 2>/dev/null | grep -q 'inet 198\.18\.128\.1/'; then
                return 0
            fi
        fi
        sleep 0.1
    done
    return 1
}

# udp_drops NS: the namespace's UDP receive-buffer overflows so far (RcvbufErrors).
udp_drops() {
    ip netns exec "$1" cat /proc/net/snmp 2>/dev/null | awk '
        $1 == "Udp:" && !h { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1; next }
        $1 == "Udp:" && h { print $c + 0; exit }'
}

declare -A RESULT HWM CPU CPU_LOAD DROPS_S DROPS_C
run_one() {
    local impl=$1 slog=$WORK/$impl-server.log llog=$WORK/$impl-load.log pid need_addr=1 c0 c1 rc=0
    : >"$slog"
    if [[ $impl == ferrovpn ]]; then
        if [[ $USERSPACE == 1 ]]; then
            need_addr=0
            spawn "ferrovpn serve" "$NS_S" "$slog" "$FERROVPN_BIN" serve "$SERVER_CONF" --userspace
        else
            spawn "ferrovpn serve" "$NS_S" "$slog" "$FERROVPN_BIN" serve "$SERVER_CONF"
        fi
    else
        spawn "openvpn server" "$NS_S" "$slog" openvpn --config "$SERVER_CONF"
    fi
    pid=$SPAWNED_PID
    if ! wait_server "$pid" "$need_addr"; then
        FAILED=1
        echo "!! $impl server did not come up; log $slog:" >&2
        tail -n 20 "$slog" | sed 's/^/   | /' >&2
        stop "$pid" 5
        return 1
    fi
    sleep 0.5
    c0=$(cpu_seconds "$pid")
    local ds0 dc0
    ds0=$(udp_drops "$NS_S")
    dc0=$(udp_drops "$NS_C")
    log "$impl: $CLIENTS clients at $RATE/s, hold ${DURATION}s (server pid $pid)"
    spawn "load ($impl)" "$NS_C" "$llog" "$LOAD_BIN" --profile "$PROFILE" --clients "$CLIENTS" \
        --rate "$RATE" --duration "$DURATION" --connect-timeout "$CONNECT_TIMEOUT" \
        --shards "$SHARDS" --impl "$impl"
    local lpid=$SPAWNED_PID
    wait "$lpid" || rc=$?
    unset "RUNNING[$lpid]"
    c1=$(cpu_seconds "$pid")
    DROPS_S[$impl]=$(($(udp_drops "$NS_S") - ds0))
    DROPS_C[$impl]=$(($(udp_drops "$NS_C") - dc0))
    HWM[$impl]=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    CPU[$impl]=$c1
    CPU_LOAD[$impl]=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
    alive "$pid" || { FAILED=1; echo "!! $impl server exited during the run (log $slog)" >&2; }
    stop "$pid" 10
    grep -v '^RESULT' "$llog" | tail -n 4 | sed 's/^/   /'
    RESULT[$impl]=$(grep '^RESULT' "$llog" | tail -n1 || true)
    if [[ $rc != 0 || -z ${RESULT[$impl]} ]]; then
        FAILED=1
        echo "!! load program failed against $impl (exit $rc); log $llog:" >&2
        tail -n 20 "$llog" | sed 's/^/   | /' >&2
        return 1
    fi
    echo "   ${RESULT[$impl]}"
    echo "   server: VmHWM ${HWM[$impl]} KiB, CPU ${CPU_LOAD[$impl]} s during the load (${CPU[$impl]} s total)"
    echo "   UDP receive-buffer drops: server namespace ${DROPS_S[$impl]}, client namespace ${DROPS_C[$impl]}"
    sleep 1
}

log "loadavg $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, $(openvpn --version | head -n1 | awk '{print $1, $2}')"
for impl in "${ORDER[@]}"; do
    run_one "$impl" || true
done

# ---------------------------------------------------------------------------------------------
# report

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "NA"; else printf "%.2f", a / b }'; }

echo
echo "== server load: $CLIENTS clients, $RATE handshakes/s offered, hold ${DURATION}s, $SHARDS shard(s), server bufs ${BUFS:-default}, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
for impl in "${ORDER[@]}"; do
    [[ -n ${RESULT[$impl]:-} ]] || continue
    echo "${RESULT[$impl]} server_hwm_kib=${HWM[$impl]} server_cpu_s=${CPU_LOAD[$impl]} server_udp_drops=${DROPS_S[$impl]} client_udp_drops=${DROPS_C[$impl]}"
done
if [[ -n ${RESULT[ferrovpn]:-} && -n ${RESULT[openvpn]:-} ]]; then
    f=${RESULT[ferrovpn]} o=${RESULT[openvpn]}
    printf 'RATIO ferrovpn/openvpn hs_per_s=%s held=%s p50_ms=%s p99_ms=%s server_hwm=%s server_cpu=%s\n' \
        "$(ratio "$(field "$f" hs_per_s)" "$(field "$o" hs_per_s)")" \
        "$(ratio "$(field "$f" held)" "$(field "$o" held)")" \
        "$(ratio "$(field "$f" p50_ms)" "$(field "$o" p50_ms)")" \
        "$(ratio "$(field "$f" p99_ms)" "$(field "$o" p99_ms)")" \
        "$(ratio "${HWM[ferrovpn]}" "${HWM[openvpn]}")" \
        "$(ratio "${CPU_LOAD[ferrovpn]}" "${CPU_LOAD[openvpn]}")"
fi
if [[ -n $JSON ]]; then
    for impl in "${ORDER[@]}"; do
        [[ -n ${RESULT[$impl]:-} ]] || continue
        echo "${RESULT[$impl]} server_hwm_kib=${HWM[$impl]} server_cpu_s=${CPU_LOAD[$impl]} server_udp_drops=${DROPS_S[$impl]} client_udp_drops=${DROPS_C[$impl]}"
    done | python3 -c '
import json, sys
res = {}
for line in sys.stdin:
    kv = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
    for k, v in kv.items():
        try:
            kv[k] = float(v) if "." in v else int(v)
        except ValueError:
            pass
    res[kv["impl"]] = kv
meta = dict(clients=int(sys.argv[2]), rate=sys.argv[3], duration=sys.argv[4], bufs=sys.argv[5] or None,
            loadavg_end=sys.argv[6])
json.dump({"meta": meta, "results": res}, open(sys.argv[1], "w"), indent=2)
' "$JSON" "$CLIENTS" "$RATE" "$DURATION" "$BUFS" "$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "JSON written to $JSON"
fi
if [[ $FAILED != 0 ]]; then
    echo "server_load: a run FAILED (see above)" >&2
    exit 1
fi
