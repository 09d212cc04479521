#!/usr/bin/env python3
"""Helper for compare_openvpn.sh (standard library only).

Subcommands:
  waitlog LOG NEEDLE TIMEOUT READY PIDFILE
      Touches READY, then polls LOG (every 0.5 ms) until a line contains NEEDLE and prints the
      wall-clock time (time.time()) at which it was seen. Exit 2 on timeout, 3 if the process
      whose pid appears in PIDFILE has exited first. Started *before* the measured process so
      Python's start-up time is not part of the measurement.
  iperf JSONFILE
      Prints "bits_per_second bytes retransmits lost_percent" of the receiver side of an
      `iperf3 -J` run (`end.sum_received`; with -R the receiver is the client; retransmits -1
      for UDP, lost_percent -1 for TCP). Exit 1 with the error on stderr if iperf3 reported one.
  report SAMPLES.jsonl --out FILE [--meta META.json]
      Aggregates the samples, prints the comparison table and writes it as JSON to FILE.
"""

import json
import os
import statistics
import sys
import time


def proc_dead(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    state = stat[stat.rindex(b")") + 2 :].split(b" ", 1)[0]
    return state in (b"Z", b"X")


def cmd_waitlog(log, needle, timeout, ready, pidfile):
    needle_b = needle.encode()
    deadline = time.monotonic() + float(timeout)
    open(ready, "w").close()
    pid = None
    buf = b""
    f = None
    n = 0
    while True:
        if f is None:
            try:
                f = open(log, "rb")
            except OSError:
                f = None
        if f is not None:
            chunk = f.read()
            if chunk:
                buf += chunk
                if needle_b in buf:
                    print(f"{time.time():.6f}")
                    return 0
                # keep only the tail that could hold a partial needle line
                buf = buf[buf.rfind(b"\n") + 1 :] if b"\n" in buf else buf
        n += 1
        if n % 20 == 0:
            if pid is None:
                try:
                    with open(pidfile) as pf:
                        pid = int(pf.read().strip() or "0") or None
                except (OSError, ValueError):
                    pid = None
            if pid is not None and proc_dead(pid):
                # one last look: the line may have been written just before the exit
                if f is not None and needle_b in buf + f.read():
                    print(f"{time.time():.6f}")
                    return 0
                print(f"process {pid} exited before logging {needle!r}", file=sys.stderr)
                return 3
            if time.monotonic() > deadline:
                print(f"no {needle!r} in {log} within {timeout} s", file=sys.stderr)
                return 2
        time.sleep(0.0005)


def cmd_iperf(path):
    try:
        with open(path) as f:
            text = f.read()
        # iperf3 may print a warning line before the JSON
        j = json.loads(text[text.index("{") :] if "{" in text else text)
    except (OSError, ValueError) as e:
        print(f"cannot read iperf3 JSON {path}: {e}", file=sys.stderr)
        return 1
    if j.get("error"):
        print(f"iperf3: {j['error']}", file=sys.stderr)
        return 1
    end = j.get("end", {})
    rcv = end.get("sum_received", {})
    snd = end.get("sum_sent", {})
    if "bits_per_second" not in rcv:
        print(f"iperf3 JSON {path} has no end.sum_received", file=sys.stderr)
        return 1
    lost = rcv.get("lost_percent", -1)
    print(f"{rcv['bits_per_second']:.0f} {rcv.get('bytes', 0)} {snd.get('retransmits', -1)} {lost:.2f}")
    return 0


# --------------------------------------------------------------------------------------------
# report

IMPLS = ("ferrovpn", "openvpn")
DIRS = ("up", "down", "udp-up", "udp-down")


def gb_of(s, dirs):
    return sum(s[d]["bytes"] for d in dirs if s.get(d)) / 1e9


def cpu_per_gb(s, dirs, key="cpu_s"):
    """CPU seconds (client: cpu_s, server: server_cpu_s) per GB received over DIRS of sample S."""
    ds = [d for d in dirs if s.get(d)]
    if not ds:
        return None
    gb = gb_of(s, ds)
    if gb <= 0:
        return None
    if key == "server_cpu_s" and not all("server_cpu_s" in s[d] for d in ds):
        # older samples: one server figure for the whole run
        return s.get("server_cpu_s", 0) / gb
    return sum(s[d][key] for d in ds) / gb


TCP_DIRS = ("up", "down")
UDP_DIRS = ("udp-up", "udp-down")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    """(max - min) / median, in percent."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return None
    m = statistics.median(xs)
    return 100.0 * (max(xs) - min(xs)) / m if m else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def aggregate(samples):
    out = {}
    protos = []
    for s in samples:
        if s["proto"] not in protos:
            protos.append(s["proto"])
    for proto in protos:
        res = {}
        for impl in IMPLS:
            ss = [s for s in samples if s["proto"] == proto and s["impl"] == impl]
            conn = [s for s in ss if s["kind"] == "connect"]
            conn_ok = [s["ms"] for s in conn if s.get("ok")]
            tput = [s for s in ss if s["kind"] == "throughput"]
            tput_ok = [s for s in tput if s.get("ok")]
            r = {
                "connects": len(conn),
                "connect_failures": len(conn) - len(conn_ok),
                "connect_ms_median": med(conn_ok),
                "connect_ms_min": min(conn_ok) if conn_ok else None,
                "connect_ms_max": max(conn_ok) if conn_ok else None,
                "connect_ms_samples": conn_ok,
                "throughput_runs": len(tput),
                "throughput_failures": len(tput) - len(tput_ok),
            }
            for d in DIRS:
                mb = [s[d]["mbps"] for s in tput_ok if s.get(d)]
                r[f"{d}_mbps_median"] = med(mb)
                r[f"{d}_mbps_min"] = min(mb) if mb else None
                r[f"{d}_mbps_max"] = max(mb) if mb else None
                r[f"{d}_mbps_spread_pct"] = spread(mb)
                r[f"{d}_mbps_samples"] = mb
                r[f"{d}_cpu_s_median"] = med([s[d]["cpu_s"] for s in tput_ok if s.get(d)])
                r[f"{d}_retransmits_median"] = med(
                    [s[d]["retransmits"] for s in tput_ok if s.get(d) and s[d]["retransmits"] >= 0]
                )
                r[f"{d}_lost_pct_median"] = med(
                    [s[d]["lost_pct"] for s in tput_ok if s.get(d) and s[d].get("lost_pct", -1) >= 0]
                )
            rss = [s["rss_hwm_kib"] for s in tput_ok if s.get("rss_hwm_kib")]
            r["rss_hwm_mib_median"] = med([x / 1024 for x in rss])
            r["rss_hwm_mib_max"] = max(rss) / 1024 if rss else None
            for key, name in (("rss_idle_kib", "rss_idle"), ("rss_load_kib", "rss_load"),
                              ("server_hwm_kib", "server_hwm")):
                v = [s[key] / 1024 for s in tput_ok if s.get(key)]
                r[f"{name}_mib_median"] = med(v)
            rtt = [
                (s["rtt_tunnel_ms"], s["rtt_underlay_ms"])
                for s in tput_ok
                if s.get("rtt_tunnel_ms") is not None and s.get("rtt_underlay_ms") is not None
            ]
            r["rtt_tunnel_ms_median"] = med([t for t, _ in rtt])
            r["rtt_underlay_ms_median"] = med([u for _, u in rtt])
            r["rtt_added_ms_median"] = med([t - u for t, u in rtt])
            r["rtt_added_ms_samples"] = [t - u for t, u in rtt]
            for suffix, dirs in (("", TCP_DIRS), ("_udp", UDP_DIRS)):
                cpg = [x for x in (cpu_per_gb(s, dirs) for s in tput_ok) if x is not None]
                srv = [x for x in (cpu_per_gb(s, dirs, "server_cpu_s") for s in tput_ok) if x is not None]
                r[f"cpu_s_per_gb{suffix}_median"] = med(cpg)
                r[f"cpu_s_per_gb{suffix}_samples"] = cpg
                r[f"server_cpu_s_per_gb{suffix}_median"] = med(srv)
            servers = sorted({s.get("server", "openvpn") for s in tput})
            r["server"] = ",".join(servers) if servers else None
            ciphers = sorted({s.get("cipher") for s in ss if s.get("cipher")})
            r["cipher"] = ",".join(ciphers) if ciphers else None
            res[impl] = r
        f, o = res["ferrovpn"], res["openvpn"]
        # Paired ratios: ferrovpn and openvpn of the same repetition ran back to back, so their
        # ratio cancels most of the drift caused by other load on the machine.
        paired = {f"throughput_{d}": [] for d in DIRS}
        paired["cpu_per_gb"] = []
        paired["cpu_per_gb_udp"] = []
        reps = sorted({s["rep"] for s in samples if s["proto"] == proto and s["kind"] == "throughput"})
        for rep in reps:
            pair = {}
            for impl in IMPLS:
                m = [
                    s
                    for s in samples
                    if s["proto"] == proto and s["kind"] == "throughput" and s["impl"] == impl
                    and s["rep"] == rep and s.get("ok")
                ]
                if m:
                    pair[impl] = m[0]
            if len(pair) < 2:
                continue
            pf, po = pair["ferrovpn"], pair["openvpn"]
            for d in DIRS:
                if pf.get(d) and po.get(d):
                    r_ = ratio(pf[d]["mbps"], po[d]["mbps"])
                    if r_ is not None:
                        paired[f"throughput_{d}"].append(r_)
            for key, dirs in (("cpu_per_gb", TCP_DIRS), ("cpu_per_gb_udp", UDP_DIRS)):
                r_ = ratio(cpu_per_gb(pf, dirs), cpu_per_gb(po, dirs))
                if r_ is not None:
                    paired[key].append(r_)
        res["paired_ratio_per_rep"] = {
            k: {"median": med(v), "min": min(v) if v else None, "max": max(v) if v else None, "samples": v}
            for k, v in paired.items()
        }
        res["ratio_ferrovpn_over_openvpn"] = {
            "throughput_up": ratio(f["up_mbps_median"], o["up_mbps_median"]),
            "throughput_down": ratio(f["down_mbps_median"], o["down_mbps_median"]),
            "connect_time": ratio(f["connect_ms_median"], o["connect_ms_median"]),
            "rss_peak": ratio(f["rss_hwm_mib_median"], o["rss_hwm_mib_median"]),
            "cpu_per_gb": ratio(f["cpu_s_per_gb_median"], o["cpu_s_per_gb_median"]),
            "server_cpu_per_gb": ratio(f["server_cpu_s_per_gb_median"], o["server_cpu_s_per_gb_median"]),
            "throughput_udp_up": ratio(f["udp-up_mbps_median"], o["udp-up_mbps_median"]),
            "throughput_udp_down": ratio(f["udp-down_mbps_median"], o["udp-down_mbps_median"]),
            "cpu_per_gb_udp": ratio(f["cpu_s_per_gb_udp_median"], o["cpu_s_per_gb_udp_median"]),
            "server_cpu_per_gb_udp": ratio(
                f["server_cpu_s_per_gb_udp_median"], o["server_cpu_s_per_gb_udp_median"]
            ),
            "rss_idle": ratio(f["rss_idle_mib_median"], o["rss_idle_mib_median"]),
            "rss_load": ratio(f["rss_load_mib_median"], o["rss_load_mib_median"]),
            "server_hwm": ratio(f["server_hwm_mib_median"], o["server_hwm_mib_median"]),
            "rtt_added": ratio(f["rtt_added_ms_median"], o["rtt_added_ms_median"]),
        }
        out[proto] = res
    return out


def fmt(x, nd=1, suffix=""):
    if x is None:
        return "n/a"
    return f"{x:.{nd}f}{suffix}"


def rng(r, key, nd=0):
    lo, hi = r.get(f"{key}_min"), r.get(f"{key}_max")
    if lo is None:
        return ""
    return f"[{lo:.{nd}f}-{hi:.{nd}f}]"


def print_table(agg, meta):
    w = sys.stdout.write
    w("\n")
    if meta:
        w(
            f"ferrovpn vs OpenVPN {meta.get('openvpn_version', '?')} "
            + (
                "client+server pairs (ferrovpn serve vs openvpn server), "
                if meta.get("pair")
                else "client, same openvpn server process, "
            )
            + f"UDP offered {meta.get('udp_rate', '-')}, "
            f"{meta.get('reps')} reps x {meta.get('iperf_seconds')} s iperf3 per direction, "
            f"{meta.get('connects')} connects; {meta.get('cores')} cores, "
            f"loadavg at start {meta.get('loadavg_start', '?')}, at end {meta.get('loadavg_end', '?')}\n"
        )
    hdr = f"{'proto':<5} {'metric':<30} {'ferrovpn':>22} {'openvpn':>22} {'ferro/ovpn':>10}\n"
    for proto, res in agg.items():
        f, o, q = res["ferrovpn"], res["openvpn"], res["ratio_ferrovpn_over_openvpn"]
        w("\n" + hdr + "-" * (len(hdr) - 1) + "\n")

        def row(label, fv, ov, rv, nd=1):
            w(f"{proto:<5} {label:<30} {fv:>22} {ov:>22} {fmt(rv, 2):>10}\n")

        def val(r, key, nd):
            return f"{fmt(r[key + '_median'], nd)} {rng(r, key, nd)}".strip()

        row("connect time ms (med [min-max])", val(f, "connect_ms", 1), val(o, "connect_ms", 1), q["connect_time"])
        row("throughput up Mbit/s", val(f, "up_mbps", 0), val(o, "up_mbps", 0), q["throughput_up"])
        row("throughput down (-R) Mbit/s", val(f, "down_mbps", 0), val(o, "down_mbps", 0), q["throughput_down"])
        pr = res["paired_ratio_per_rep"]

        def prow(label, key):
            p_ = pr[key]
            if p_["median"] is None:
                return
            rng_ = f"range {fmt(p_['min'], 2)}-{fmt(p_['max'], 2)}"
            w(f"{proto:<5} {label:<30} {rng_:>22} {'':>22} {fmt(p_['median'], 2):>10}\n")

        prow("  same-rep ratio up (median)", "throughput_up")
        prow("  same-rep ratio down (median)", "throughput_down")
        if f["udp-up_mbps_median"] is not None or o["udp-up_mbps_median"] is not None:
            for d in UDP_DIRS:
                row(f"iperf3 -u {d[4:]:<4} received Mbit/s", val(f, f"{d}_mbps", 0), val(o, f"{d}_mbps", 0),
                    q[f"throughput_udp_{d[4:]}"])
                row(f"  {d} loss % (median)", fmt(f[f"{d}_lost_pct_median"], 1),
                    fmt(o[f"{d}_lost_pct_median"], 1), None)
            prow("  same-rep ratio udp up", "throughput_udp-up")
            prow("  same-rep ratio udp down", "throughput_udp-down")
        row("RTT added ms (tunnel-underlay)", fmt(f["rtt_added_ms_median"], 3), fmt(o["rtt_added_ms_median"], 3),
            q["rtt_added"])
        row("  RTT tunnel/underlay ms",
            f"{fmt(f['rtt_tunnel_ms_median'], 3)}/{fmt(f['rtt_underlay_ms_median'], 3)}",
            f"{fmt(o['rtt_tunnel_ms_median'], 3)}/{fmt(o['rtt_underlay_ms_median'], 3)}", None)
        row("RSS idle MiB", fmt(f["rss_idle_mib_median"], 1), fmt(o["rss_idle_mib_median"], 1), q["rss_idle"])
        row("RSS under load MiB (max)", fmt(f["rss_load_mib_median"], 1), fmt(o["rss_load_mib_median"], 1),
            q["rss_load"])
        row("peak RSS (VmHWM) MiB", fmt(f["rss_hwm_mib_median"], 1), fmt(o["rss_hwm_mib_median"], 1), q["rss_peak"])
        row("server peak RSS MiB", fmt(f["server_hwm_mib_median"], 1), fmt(o["server_hwm_mib_median"], 1),
            q["server_hwm"])
        row("client CPU s per GB", fmt(f["cpu_s_per_gb_median"], 2), fmt(o["cpu_s_per_gb_median"], 2), q["cpu_per_gb"])
        prow("  same-rep ratio (median)", "cpu_per_gb")
        row("client CPU s per GB, UDP", fmt(f["cpu_s_per_gb_udp_median"], 2), fmt(o["cpu_s_per_gb_udp_median"], 2),
            q["cpu_per_gb_udp"])
        prow("  same-rep ratio UDP (median)", "cpu_per_gb_udp")
        row(
            "client CPU s per run up/down",
            f"{fmt(f['up_cpu_s_median'], 2)}/{fmt(f['down_cpu_s_median'], 2)}",
            f"{fmt(o['up_cpu_s_median'], 2)}/{fmt(o['down_cpu_s_median'], 2)}",
            None,
        )
        row(
            "server CPU s per GB",
            fmt(f["server_cpu_s_per_gb_median"], 2),
            fmt(o["server_cpu_s_per_gb_median"], 2),
            q["server_cpu_per_gb"],
        )
        row(
            "server CPU s per GB, UDP",
            fmt(f["server_cpu_s_per_gb_udp_median"], 2),
            fmt(o["server_cpu_s_per_gb_udp_median"], 2),
            q["server_cpu_per_gb_udp"],
        )
        row("server", f["server"] or "?", o["server"] or "?", None)
        row(
            "iperf3 TCP retransmits up/down",
            f"{fmt(f['up_retransmits_median'], 0)}/{fmt(f['down_retransmits_median'], 0)}",
            f"{fmt(o['up_retransmits_median'], 0)}/{fmt(o['down_retransmits_median'], 0)}",
            None,
        )
        row(
            "spread up/down % (max-min)/med",
            f"{fmt(f['up_mbps_spread_pct'], 0)}/{fmt(f['down_mbps_spread_pct'], 0)}",
            f"{fmt(o['up_mbps_spread_pct'], 0)}/{fmt(o['down_mbps_spread_pct'], 0)}",
            None,
        )
        row("data cipher", f["cipher"] or "?", o["cipher"] or "?", None)
        fails = []
        for impl, r in (("ferrovpn", f), ("openvpn", o)):
            if r["connect_failures"] or r["throughput_failures"]:
                fails.append(
                    f"{impl}: {r['connect_failures']}/{r['connects']} connects and "
                    f"{r['throughput_failures']}/{r['throughput_runs']} throughput runs FAILED"
                )
        for line in fails:
            w(f"{proto:<5} !! {line}\n")
    w("\n")


def cmd_report(argv):
    samples_path = argv[0]
    out = None
    meta = {}
    i = 1
    while i < len(argv):
        if argv[i] == "--out":
            out = argv[i + 1]
            i += 2
        elif argv[i] == "--meta":
            with open(argv[i + 1]) as f:
                meta = json.load(f)
            i += 2
        else:
            raise SystemExit(f"report: unknown argument {argv[i]}")
    samples = []
    with open(samples_path) as f:
        for line in f:
            line = line.strip()
            if line:
                samples.append(json.loads(line))
    agg = aggregate(samples)
    print_table(agg, meta)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump({"meta": meta, "results": agg, "samples": samples}, f, indent=2)
            f.write("\n")
        print(f"JSON written to {out}")
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "waitlog" and len(args) == 5:
        return cmd_waitlog(*args)
    if cmd == "iperf" and len(args) == 1:
        return cmd_iperf(args[0])
    if cmd == "report" and args:
        return cmd_report(args)
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
