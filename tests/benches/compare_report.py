#!/usr/bin/env python3
"""Table of tests/benches/compare (standard library only).

  compare_report.py DIR --started T --rev R --load-start L --load-end L --quick 0|1 --openvpn V

Reads DIR/client.json and DIR/pair.json (compare_openvpn.sh --out), DIR/proxy.json
(proxy_vs_tunnel.sh --json) and DIR/server.json (server_load.sh --json), whichever exist, prints
one table (ferrovpn, OpenVPN, ratio, issue-7 target, met?) and writes DIR/compare.json.
"""

import json
import os
import sys

ROWS = []


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def add(part, proto, metric, f, o, r, target=None, nd=1):
    """target: (">=", x) or ("<=", x) on the ratio r, or None (information only)."""
    met = None
    if target is not None and r is not None:
        op, x = target
        met = r >= x if op == ">=" else r <= x
    ROWS.append(
        {
            "part": part,
            "proto": proto,
            "metric": metric,
            "ferrovpn": f,
            "openvpn": o,
            "ratio": r,
            "target": f"{target[0]}{target[1]:.2f}" if target else None,
            "met": met,
            "nd": nd,
        }
    )


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def vpn_rows(part, data, pair):
    """Rows of a compare_openvpn.sh result (client or pair mode)."""
    for proto, res in data.get("results", {}).items():
        f, o = res["ferrovpn"], res["openvpn"]
        udp = proto == "udp"  # the targets are for the UDP transport

        def t(x):
            return x if udp else None

        tput = (">=", 3.0) if pair else (">=", 1.0)
        rate = data.get("meta", {}).get("udp_rate", "auto")
        udp_what = " (<=1% loss)" if rate == "auto" else f" (at {rate})"
        for key, label in (
            ("up", "TCP up Mbit/s"),
            ("down", "TCP down Mbit/s"),
            ("udp-up", "UDP up Mbit/s" + udp_what),
            ("udp-down", "UDP down Mbit/s" + udp_what),
        ):
            fv, ov = f.get(f"{key}_mbps_median"), o.get(f"{key}_mbps_median")
            if fv is None and ov is None:
                continue
            add(part, proto, label, fv, ov, ratio(fv, ov), t(tput), 0)
        for key, label in (("up", "UDP up loss %"), ("down", "UDP down loss %")):
            fv, ov = f.get(f"udp-{key}_lost_pct_median"), o.get(f"udp-{key}_lost_pct_median")
            if fv is not None or ov is not None:
                add(part, proto, label, fv, ov, None)
        cpu_t = None if pair else (("<=", 0.5))
        add(part, proto, "client CPU s/GB (TCP)", f.get("cpu_s_per_gb_median"), o.get("cpu_s_per_gb_median"),
            ratio(f.get("cpu_s_per_gb_median"), o.get("cpu_s_per_gb_median")), t(cpu_t), 2)
        if f.get("cpu_s_per_gb_udp_median") is not None:
            add(part, proto, "client CPU s/GB (UDP)", f.get("cpu_s_per_gb_udp_median"),
                o.get("cpu_s_per_gb_udp_median"),
                ratio(f.get("cpu_s_per_gb_udp_median"), o.get("cpu_s_per_gb_udp_median")), t(cpu_t), 2)
        add(part, proto, "server CPU s/GB (TCP)", f.get("server_cpu_s_per_gb_median"),
            o.get("server_cpu_s_per_gb_median"),
            ratio(f.get("server_cpu_s_per_gb_median"), o.get("server_cpu_s_per_gb_median")), None, 2)
        if f.get("server_cpu_s_per_gb_udp_median") is not None:
            add(part, proto, "server CPU s/GB (UDP)", f.get("server_cpu_s_per_gb_udp_median"),
                o.get("server_cpu_s_per_gb_udp_median"),
                ratio(f.get("server_cpu_s_per_gb_udp_median"), o.get("server_cpu_s_per_gb_udp_median")), None, 2)
        add(part, proto, "connect time ms", f.get("connect_ms_median"), o.get("connect_ms_median"),
            ratio(f.get("connect_ms_median"), o.get("connect_ms_median")), t(("<=", 0.5)))
        if f.get("rtt_added_ms_median") is not None:
            add(part, proto, "RTT added ms", f.get("rtt_added_ms_median"), o.get("rtt_added_ms_median"),
                ratio(f.get("rtt_added_ms_median"), o.get("rtt_added_ms_median")), t(("<=", 1.0)), 3)
        mem_t = None if pair else ("<=", 0.5)
        for key, label in (("rss_idle", "client RSS idle MiB"), ("rss_load", "client RSS under load MiB"),
                           ("rss_hwm", "client peak RSS MiB")):
            fv, ov = f.get(f"{key}_mib_median"), o.get(f"{key}_mib_median")
            if fv is None and ov is None:
                continue
            add(part, proto, label, fv, ov, ratio(fv, ov), t(mem_t) if key != "rss_hwm" else None)
        if pair:
            fv, ov = f.get("server_hwm_mib_median"), o.get("server_hwm_mib_median")
            add(part, proto, "server peak RSS MiB", fv, ov, ratio(fv, ov))


def proxy_rows(data):
    for d, s in data.get("summary", {}).items():
        target = (">=", 0.8) if d == "down" else None
        add("proxy", "udp", f"{'download' if d == 'down' else 'upload'} MB/s (proxy | tunnel)",
            s.get("proxy_mb_s"), s.get("tunnel_mb_s"), s.get("ratio"), target)
        add("proxy", "udp", f"  same-rep ratio {d}", None, None, s.get("same_rep_ratio"))
        add("proxy", "udp", f"client CPU s/GB {d} (proxy | tunnel)", s.get("proxy_cpu_s_per_gb"),
            s.get("tunnel_cpu_s_per_gb"), ratio(s.get("proxy_cpu_s_per_gb"), s.get("tunnel_cpu_s_per_gb")), None, 2)


def server_rows(data):
    res = data.get("results", {})
    f, o = res.get("ferrovpn", {}), res.get("openvpn", {})
    n = data.get("meta", {}).get("clients")

    def g(r, k):
        v = r.get(k)
        return v if isinstance(v, (int, float)) else None

    add("server", "udp", f"handshakes/s ({n} clients)", g(f, "hs_per_s"), g(o, "hs_per_s"),
        ratio(g(f, "hs_per_s"), g(o, "hs_per_s")), (">=", 3.0))
    add("server", "udp", "sessions held", g(f, "held"), g(o, "held"), ratio(g(f, "held"), g(o, "held")),
        (">=", 1.0), 0)
    add("server", "udp", "connect p50 ms", g(f, "p50_ms"), g(o, "p50_ms"), ratio(g(f, "p50_ms"), g(o, "p50_ms")))
    add("server", "udp", "connect p99 ms", g(f, "p99_ms"), g(o, "p99_ms"), ratio(g(f, "p99_ms"), g(o, "p99_ms")))
    fh, oh = g(f, "server_hwm_kib"), g(o, "server_hwm_kib")
    add("server", "udp", "server peak RSS MiB", fh / 1024 if fh else None, oh / 1024 if oh else None,
        ratio(fh, oh))
    add("server", "udp", "server CPU s (whole load)", g(f, "server_cpu_s"), g(o, "server_cpu_s"),
        ratio(g(f, "server_cpu_s"), g(o, "server_cpu_s")), None, 2)
    add("server", "udp", "server UDP receive drops", g(f, "server_udp_drops"), g(o, "server_udp_drops"), None,
        None, 0)


def fmt(x, nd):
    if x is None:
        return "-"
    if isinstance(x, float) or isinstance(x, int):
        return f"{x:.{nd}f}"
    return str(x)


def main():
    argv = sys.argv[1:]
    d = argv[0]
    opts = dict(zip(argv[1::2], argv[2::2]))
    parts = {}
    for name in ("client", "pair", "proxy", "server"):
        data = load(os.path.join(d, f"{name}.json"))
        if data is None:
            continue
        parts[name] = data
        if name in ("client", "pair"):
            vpn_rows(name, data, name == "pair")
        elif name == "proxy":
            proxy_rows(data)
        else:
            server_rows(data)
    w = sys.stdout.write
    w(
        f"\nferrovpn {opts.get('--rev')} vs OpenVPN {opts.get('--openvpn')}, started {opts.get('--started')}"
        f"{' (--quick)' if opts.get('--quick') == '1' else ''}; {os.cpu_count()} cores; "
        f"loadavg at start {opts.get('--load-start')}, at end {opts.get('--load-end')}\n"
    )
    w("ratio = ferrovpn/OpenVPN of the medians (proxy rows: proxy/tunnel, both ferrovpn); "
      "client = ferrovpn vs openvpn client, openvpn server; pair = each client with its own server\n\n")
    hdr = f"{'part':<7} {'tr.':<4} {'metric':<38} {'ferrovpn':>10} {'OpenVPN':>10} {'ratio':>7} {'target':>7} {'met':>4}\n"
    w(hdr + "-" * (len(hdr) - 1) + "\n")
    for r in ROWS:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        w(
            f"{r['part']:<7} {r['proto']:<4} {r['metric']:<38} {fmt(r['ferrovpn'], r['nd']):>10} "
            f"{fmt(r['openvpn'], r['nd']):>10} {fmt(r['ratio'], 2):>7} {r['target'] or '':>7} {met:>4}\n"
        )
    missing = [p for p in ("client", "pair", "proxy", "server") if p not in parts]
    if missing:
        w(f"(no result for: {', '.join(missing)})\n")
    met = [r for r in ROWS if r["met"] is not None]
    w(f"\ntargets met: {sum(1 for r in met if r['met'])} of {len(met)}\n")
    with open(os.path.join(d, "compare.json"), "w") as f:
        json.dump({"meta": opts, "rows": ROWS, "parts": parts}, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
