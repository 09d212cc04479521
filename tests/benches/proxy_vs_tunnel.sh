#!/usr/bin/env bash
# proxy_vs_tunnel.sh: ferrovpn's proxy mode (SOCKS5 over the userspace stack) against its tunnel
# mode (kernel TUN device), over the same OpenVPN 2.6 server, in one run.
#
# Usage (as root, from anywhere):
#   sudo tests/benches/proxy_vs_tunnel.sh [--size BYTES] [--reps N] [--dirs down,up]
#                                          [--verb N] [--json FILE] [--no-build] [--keep]
#
#   --size BYTES   bytes per transfer (default 200000000)
#   --reps N       repetitions per mode and direction (default 3); proxy and tunnel alternate,
#                  and which goes first alternates too
#   --dirs LIST    down (HTTP GET from the server side), up (HTTP POST to it), or both
#                  (default down,up)
#   --verb N       ferrovpn --verb (default 3)
#   --json FILE    also write the runs and the summary as JSON to FILE
#   --no-build     use the existing target/release/ferrovpn instead of building it
#   --keep         keep the temporary directory (PKI, configs, logs) even on success
#
# What it does: builds `cargo build --release --bin ferrovpn`; makes a throwaway PKI with the
# openssl CLI and a tls-crypt key; creates two namespaces, fvpt-PID-s (server) and fvpt-PID-c
# (client), joined by a veth (198.18.220.0/24); runs `openvpn` (UDP, AES-256-GCM, tunnel
# 198.19.220.0/24) in S, which pushes a route to 198.19.255.1, an address on S's `lo` where
# tests/support/websrv.py serves the data. For each repetition and mode it starts the client in
# C, waits for "Initialization Sequence Completed", moves --size bytes with curl (proxy:
# `curl --socks5 127.0.0.1:1080` to `ferrovpn proxy`; tunnel: plain curl over the routes
# `ferrovpn connect` installed), and stops the client again: the two clients never run at the
# same time. Prints MB/s per run, the medians, the proxy/tunnel ratio of the medians and the
# median of the per-repetition ratios, and the client's CPU seconds per GB.
#
# Network safety: nothing touches the host's own network. The veth ends are created inside the
# two namespaces; every process runs inside them; /etc/netns/<ns>/resolv.conf exists before
# anything starts there. The EXIT/INT/TERM trap stops the processes this script started, by
# pid, and deletes the namespaces and /etc/netns/<ns>. Addresses come from 198.18.0.0/15.
#
# Needs: root, openvpn 2.6, openssl, curl, python3, cargo.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
WEBSRV=$REPO/tests/support/websrv.py

SIZE=200000000
REPS=3
DIRS=down,up
VERB=3
BUILD=1
KEEP=0
JSON=
LOG_CONNECTED="Initialization Sequence Completed"
VPN_ONLY=198.19.255.1
WEB_PORT=8000

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "proxy_vs_tunnel: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --size) SIZE=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --dirs) DIRS=$2; shift 2 ;;
        --verb) VERB=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        --json) JSON=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $SIZE =~ ^[1-9][0-9]*$ && $REPS =~ ^[1-9][0-9]*$ ]] || die "--size and --reps take positive integers"
IFS=, read -r -a DIR_LIST <<<"$DIRS"
for d in "${DIR_LIST[@]}"; do [[ $d == down || $d == up ]] || die "--dirs: down and/or up"; done

[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, TUN devices)"
for tool in ip openvpn openssl curl python3 cargo; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
PY=$(python3 -c 'import sys; print(sys.executable)')

log() { printf '== %s %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---------------------------------------------------------------------------------------------
# state and cleanup

TAG=fvpt-$$
NS_S=$TAG-s
NS_C=$TAG-c
WORK=$(mktemp -d /tmp/fvpt-bench.XXXXXX)
declare -A RUNNING=()   # pid -> what, for every process started and not yet reaped
NSS=()                  # namespaces created here
FAILED=0
SPAWNED_PID=

# True while PID runs (a zombie does not count).
alive() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z && ${s:0:1} != X ]]
}

cleanup() {
    local rc=$? pid ns i left
    set +e
    trap - EXIT INT TERM
    for pid in "${!RUNNING[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "${!RUNNING[@]}"; do alive "$pid" && left=1; done
        [[ $left == 0 ]] && break
        sleep 0.1
    done
    for pid in "${!RUNNING[@]}"; do
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for ns in "${NSS[@]}"; do
        # Anything still inside a namespace this script created was started by this script.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    if [[ $rc != 0 || $FAILED != 0 || $KEEP == 1 ]]; then
        echo "proxy_vs_tunnel: logs, configs and throwaway PKI kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "proxy_vs_tunnel: interrupted" >&2; exit 130' INT TERM

# spawn WHAT NS LOG CMD...: CMD in namespace NS in the background (output appended to LOG); its
# pid (the program's own: ip netns exec execs) goes to SPAWNED_PID.
spawn() {
    local what=$1 ns=$2 out=$3
    shift 3
    ip netns exec "$ns" "$@" >>"$out" 2>&1 </dev/null &
    SPAWNED_PID=$!
    RUNNING[$SPAWNED_PID]=$what
}

# stop PID: SIGTERM, up to 10 s, then SIGKILL; reaps it.
stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    unset "RUNNING[$pid]"
}

# wait_log LOG NEEDLE TIMEOUT PID: until LOG has NEEDLE (0), PID exits (3) or timeout (2).
wait_log() {
    local f=$1 needle=$2 timeout=$3 pid=$4 i
    for ((i = 0; i < timeout * 20; i++)); do
        grep -qF -- "$needle" "$f" 2>/dev/null && return 0
        alive "$pid" || { grep -qF -- "$needle" "$f" 2>/dev/null && return 0; return 3; }
        sleep 0.05
    done
    return 2
}

fail() {
    FAILED=1
    echo "!! $1; log: $2" >&2
    tail -n 20 "$2" 2>/dev/null | sed 's/^/   | /' >&2 || true
    exit 1
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

# ---------------------------------------------------------------------------------------------
# build, PKI

cd "$REPO"
FERRO=${CARGO_TARGET_DIR:-$REPO/target}/release/ferrovpn
if [[ $BUILD == 1 ]]; then
    log "cargo build --release --bin ferrovpn"
    cargo build --release --bin ferrovpn
fi
[[ -x $FERRO ]] || die "$FERRO not found (build failed, or --no-build without a build)"

log "PKI in $WORK/pki"
PKI=$WORK/pki
mkdir -p "$PKI" "$WORK/logs"
(
    cd "$PKI"
    printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = fvpt-bench-ca\n[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n' >ca.cnf
    printf 'basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\n' >server.ext
    printf 'basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n' >client.ext
    newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    newkey ca.key
    openssl req -x509 -new -sha256 -days 2 -config ca.cnf -extensions v3_ca -key ca.key -out ca.crt
    for cn in server client; do
        newkey "$cn.key"
        openssl req -new -sha256 -key "$cn.key" -subj "/CN=$cn" -out "$cn.csr"
        openssl x509 -req -sha256 -days 2 -in "$cn.csr" -CA ca.crt -CAkey ca.key \
            -CAcreateserial -extfile "$cn.ext" -out "$cn.crt" 2>/dev/null
    done
    openvpn --genkey secret tc.key >/dev/null
    chmod 600 ./*.key
)

# ---------------------------------------------------------------------------------------------
# namespaces

log "namespaces $NS_S, $NS_C"
for ns in "$NS_S" "$NS_C"; do
    [[ ! -e /var/run/netns/$ns ]] || die "namespace $ns already exists"
done
for ns in "$NS_S" "$NS_C"; do
    NSS+=("$ns")   # recorded first: a half-made namespace is deleted too
    mkdir -p "/etc/netns/$ns"
    printf '# proxy_vs_tunnel.sh: this namespace has no resolver\nnameserver 127.0.0.1\n' \
        >"/etc/netns/$ns/resolv.conf"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip link add vS netns "$NS_S" type veth peer name vC netns "$NS_C"
ip -n "$NS_S" addr add 198.18.220.1/24 dev vS
ip -n "$NS_C" addr add 198.18.220.2/24 dev vC
ip -n "$NS_S" link set vS up
ip -n "$NS_C" link set vC up
ip -n "$NS_S" addr add $VPN_ONLY/32 dev lo

# ---------------------------------------------------------------------------------------------
# server, web server, client profile

cat >"$WORK/server.conf" <<EOF
# generated by tests/benches/proxy_vs_tunnel.sh
dev tun
proto udp4
local 198.18.220.1
port 1194
server 198.19.220.0 255.255.255.0
topology subnet
ca $PKI/ca.crt
cert $PKI/server.crt
key $PKI/server.key
dh none
tls-crypt $PKI/tc.key
data-ciphers AES-256-GCM
keepalive 10 60
push "route $VPN_ONLY 255.255.255.255"
explicit-exit-notify 1
verb 3
EOF
{
    echo "client"
    echo "dev tun"
    echo "nobind"
    echo "remote 198.18.220.1 1194 udp"
    echo "remote-cert-tls server"
    echo "data-ciphers AES-256-GCM"
    for f in ca:ca.crt cert:client.crt key:client.key tls-crypt:tc.key; do
        echo "<${f%%:*}>"
        cat "$PKI/${f#*:}"
        echo "</${f%%:*}>"
    done
    echo "verb 3"
} >"$WORK/client.ovpn"

log "openvpn server"
spawn "openvpn server" "$NS_S" "$WORK/logs/server.log" openvpn --config "$WORK/server.conf"
SERVER_PID=$SPAWNED_PID
wait_log "$WORK/logs/server.log" "$LOG_CONNECTED" 20 "$SERVER_PID" \
    || fail "the openvpn server did not start" "$WORK/logs/server.log"
spawn "websrv" "$NS_S" "$WORK/logs/websrv.log" "$PY" "$WEBSRV" $VPN_ONLY $WEB_PORT
wait_log "$WORK/logs/websrv.log" LISTENING 10 "$SPAWNED_PID" \
    || fail "websrv.py did not start" "$WORK/logs/websrv.log"

UPLOAD=$WORK/upload.bin
if [[ " ${DIR_LIST[*]} " == *" up "* ]]; then
    "$PY" "$WEBSRV" gen "$SIZE" 77 >"$UPLOAD"
fi

# ---------------------------------------------------------------------------------------------
# runs

# run MODE DIR REP: one client start, one transfer, one client stop. Appends
# "MODE DIR REP MB/s cpu_s_per_GB" to $WORK/results.
run() {
    local mode=$1 dir=$2 rep=$3 clog pid t0 t1 out size secs url
    clog=$WORK/logs/$mode-$dir-$rep.log
    if [[ $mode == proxy ]]; then
        spawn "ferrovpn proxy" "$NS_C" "$clog" "$FERRO" proxy "$WORK/client.ovpn" \
            --socks5 127.0.0.1:1080 --verb "$VERB"
    else
        spawn "ferrovpn connect" "$NS_C" "$clog" "$FERRO" connect "$WORK/client.ovpn" \
            --verb "$VERB" --state-dir "$WORK/state"
    fi
    pid=$SPAWNED_PID
    wait_log "$clog" "$LOG_CONNECTED" 30 "$pid" || fail "$mode client did not connect" "$clog"
    local via=(--noproxy '*')
    [[ $mode == proxy ]] && via=(--noproxy '' --socks5 127.0.0.1:1080)
    t0=$(cpu_ticks "$pid")
    if [[ $dir == down ]]; then
        url="http://$VPN_ONLY:$WEB_PORT/blob?size=$SIZE&seed=$rep"
        out=$(ip netns exec "$NS_C" curl -sS --fail --max-time 600 "${via[@]}" -o /dev/null \
            -w '%{size_download} %{time_total}' "$url") || fail "$mode download failed" "$clog"
    else
        url="http://$VPN_ONLY:$WEB_PORT/upload"
        out=$(ip netns exec "$NS_C" curl -sS --fail --max-time 600 "${via[@]}" -H 'Expect:' \
            -T "$UPLOAD" -X POST -o "$WORK/upload-reply" -w '%{size_upload} %{time_total}' \
            "$url") || fail "$mode upload failed" "$clog"
        grep -q " $SIZE\$" "$WORK/upload-reply" || fail "$mode upload: server got $(cat "$WORK/upload-reply")" "$clog"
    fi
    t1=$(cpu_ticks "$pid")
    stop "$pid"
    read -r size secs <<<"$out"
    [[ $size == "$SIZE" ]] || fail "$mode $dir moved $size bytes, not $SIZE" "$clog"
    awk -v m="$mode" -v d="$dir" -v r="$rep" -v n="$SIZE" -v s="$secs" -v c=$((t1 - t0)) -v hz="$HZ" \
        'BEGIN { printf "%s %s %d %.1f %.2f\n", m, d, r, n / s / 1e6, c / hz / (n / 1e9) }' \
        >>"$WORK/results"
    printf '   %-6s %-4s rep %d: %s\n' "$mode" "$dir" "$rep" \
        "$(tail -n 1 "$WORK/results" | awk '{ printf "%7.1f MB/s, client CPU %.2f s/GB", $4, $5 }')"
}

log "$(nproc) CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg); $REPS reps of $SIZE bytes"
: >"$WORK/results"
for dir in "${DIR_LIST[@]}"; do
    for ((rep = 1; rep <= REPS; rep++)); do
        if ((rep % 2)); then order=(proxy tunnel); else order=(tunnel proxy); fi
        for mode in "${order[@]}"; do run "$mode" "$dir" "$rep"; done
    done
done

# ---------------------------------------------------------------------------------------------
# summary

echo
printf '%-5s %14s %14s %8s %14s %16s %16s\n' dir "proxy MB/s" "tunnel MB/s" ratio "same-rep ratio" \
    "proxy CPU s/GB" "tunnel CPU s/GB"
for dir in "${DIR_LIST[@]}"; do
    awk -v d="$dir" '
        function median(a, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $2 == d && $1 == "proxy"  { p[++np] = $4; pc[np] = $5; pr[$3] = $4 }
        $2 == d && $1 == "tunnel" { t[++nt] = $4; tc[nt] = $5; tr[$3] = $4 }
        END {
            for (r in pr) if (r in tr) q[++nq] = pr[r] / tr[r]
            mp = median(p, np); mt = median(t, nt)
            printf "%-5s %14.1f %14.1f %8.2f %14.2f %16.2f %16.2f\n", d, mp, mt, mp / mt, median(q, nq),
                median(pc, np), median(tc, nt)
        }' "$WORK/results"
done
echo "(medians of $REPS; ratio = proxy/tunnel; CPU = ferrovpn client utime+stime per GB moved)"
if [[ -n $JSON ]]; then
    "$PY" - "$WORK/results" "$JSON" "$(cut -d' ' -f1-3 /proc/loadavg)" "$SIZE" <<'PYEOF'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
runs = [{"mode": m, "dir": d, "rep": int(r), "mb_s": float(v), "cpu_s_per_gb": float(c)} for m, d, r, v, c in rows]
out = {"size": int(sys.argv[4]), "loadavg_end": sys.argv[3], "runs": runs, "summary": {}}
for d in sorted({x["dir"] for x in runs}):
    sel = {m: [x for x in runs if x["dir"] == d and x["mode"] == m] for m in ("proxy", "tunnel")}
    med = {m: statistics.median([x["mb_s"] for x in v]) if v else None for m, v in sel.items()}
    cpu = {m: statistics.median([x["cpu_s_per_gb"] for x in v]) if v else None for m, v in sel.items()}
    byrep = {m: {x["rep"]: x["mb_s"] for x in v} for m, v in sel.items()}
    same = [byrep["proxy"][r] / byrep["tunnel"][r] for r in byrep["proxy"] if r in byrep["tunnel"]]
    out["summary"][d] = {
        "proxy_mb_s": med["proxy"], "tunnel_mb_s": med["tunnel"],
        "ratio": med["proxy"] / med["tunnel"] if med["proxy"] and med["tunnel"] else None,
        "same_rep_ratio": statistics.median(same) if same else None,
        "proxy_cpu_s_per_gb": cpu["proxy"], "tunnel_cpu_s_per_gb": cpu["tunnel"],
    }
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
PYEOF
    echo "JSON written to $JSON"
fi
