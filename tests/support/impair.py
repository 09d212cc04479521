#!/usr/bin/env python3
"""Impairment relay for the fault tests (tests/faults.rs): this kernel has no netem, so the
tests put this forwarder between the client and the server.

    impair.py udp LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT [options]
    impair.py tcp LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT [options]

UDP: every client address seen on the listening socket gets its own upstream socket (so the
server sees one source port per client). Per direction (`--up-*`: client -> server,
`--down-*`: server -> client, or both with the bare option) each datagram may be:
  lost (--loss %), delayed (--delay ms, --jitter ms), reordered (--reorder %: held back by an
  extra --reorder-ms), duplicated (--dup %), tampered (--tamper %: one payload byte flipped),
  truncated (--truncate %: cut to a random shorter length), replayed (--replay %: an earlier
  datagram of the same direction is sent again, in addition to this one).
--rebind-after SECS: after SECS seconds every upstream socket is replaced by a new one (new
  source port): the server sees the client float to a new address. SIGUSR1 does the same at
  once (any number of times).
--seed N: the random generator (the same seed gives the same choices for the same traffic).

TCP: a stream relay: every accepted connection gets its own upstream connection; bytes are
delayed by --delay ms per chunk (in order); --cut-after SECS closes the first relayed connection
(both sides) SECS seconds after it was accepted, once; SIGUSR2 closes every open one at once.

Counters go to --stats FILE (JSON) on SIGTERM/SIGINT and every second, and a line
`LISTENING` is printed once the relay listens.
"""

import argparse
import heapq
import json
import os
import random
import selectors
import signal
import socket
import sys
import time


def pct(v):
    f = float(v)
    if not 0.0 <= f <= 100.0:
        raise argparse.ArgumentTypeError(f"{v}: a percentage from 0 to 100")
    return f


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["udp", "tcp"])
    p.add_argument("listen_addr")
    p.add_argument("listen_port", type=int)
    p.add_argument("upstream_addr")
    p.add_argument("upstream_port", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stats", help="JSON counters file")
    p.add_argument("--rebind-after", type=float, default=0.0)
    p.add_argument("--cut-after", type=float, default=0.0)
    for kind, typ in [
        ("loss", pct), ("reorder", pct), ("dup", pct), ("tamper", pct),
        ("truncate", pct), ("replay", pct), ("delay", float), ("jitter", float),
    ]:
        p.add_argument(f"--{kind}", type=typ, default=None)
        p.add_argument(f"--up-{kind}", type=typ, default=None)
        p.add_argument(f"--down-{kind}", type=typ, default=None)
    p.add_argument("--reorder-ms", type=float, default=30.0)
    a = p.parse_args(argv)
    # Per-direction settings: the specific option wins over the bare one.
    a.dirs = {}
    for d in ("up", "down"):
        s = {}
        for kind in ("loss", "reorder", "dup", "tamper", "truncate", "replay", "delay", "jitter"):
            v = getattr(a, f"{d}_{kind}")
            if v is None:
                v = getattr(a, kind)
            s[kind] = v or 0.0
        a.dirs[d] = s
    return a


class Counters:
    def __init__(self, path):
        self.path = path
        self.c = {}
        for d in ("up", "down"):
            for k in ("received", "forwarded", "lost", "reordered", "duplicated", "tampered",
                      "truncated", "replayed", "bytes"):
                self.c[f"{d}_{k}"] = 0
        self.c.update(rebinds=0, upstream_ports=[], connections=0, cuts=0)

    def add(self, key, n=1):
        self.c[key] += n

    def write(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.c, f, sort_keys=True)
        os.replace(tmp, self.path)


class Stop(Exception):
    pass


def on_signal(_sig, _frm):
    raise Stop()


REBIND_NOW = []
CUT_NOW = []


def on_usr2(_sig, _frm):
    CUT_NOW.append(1)


def on_usr1(_sig, _frm):
    REBIND_NOW.append(1)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


class UdpRelay:
    def __init__(self, a, counters):
        self.a = a
        self.c = counters
        self.rng = random.Random(a.seed)
        self.sel = selectors.DefaultSelector()
        self.lsock = socket.socket(family(a.listen_addr), socket.SOCK_DGRAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((a.listen_addr, a.listen_port))
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.upstream = (a.upstream_addr, a.upstream_port)
        self.clients = {}  # client addr -> upstream socket
        self.queue = []  # (due, seq, direction, sock-getter, dest, payload)
        self.seq = 0
        self.history = {"up": [], "down": []}
        self.start = time.monotonic()
        self.rebound = False

    def new_upstream(self, client):
        s = socket.socket(family(self.a.upstream_addr), socket.SOCK_DGRAM)
        s.bind((self.a.listen_addr, 0))
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, client)
        self.clients[client] = s
        self.c.c["upstream_ports"].append(s.getsockname()[1])
        return s

    def impair(self, direction, client, data):
        s = self.a.dirs[direction]
        c = self.c
        rng = self.rng
        c.add(f"{direction}_received")
        if rng.random() * 100 < s["loss"]:
            c.add(f"{direction}_lost")
            return
        hist = self.history[direction]
        hist.append(data)
        if len(hist) > 256:
            del hist[0]
        if data and rng.random() * 100 < s["tamper"]:
            b = bytearray(data)
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
            data = bytes(b)
            c.add(f"{direction}_tampered")
        if len(data) > 1 and rng.random() * 100 < s["truncate"]:
            data = data[: rng.randrange(1, len(data))]
            c.add(f"{direction}_truncated")
        delay = s["delay"] + (rng.uniform(-s["jitter"], s["jitter"]) if s["jitter"] else 0.0)
        if rng.random() * 100 < s["reorder"]:
            delay += self.a.reorder_ms
            c.add(f"{direction}_reordered")
        copies = [max(delay, 0.0)]
        if rng.random() * 100 < s["dup"]:
            copies.append(max(delay, 0.0) + rng.uniform(0, 5))
            c.add(f"{direction}_duplicated")
        for d in copies:
            self.schedule(d, direction, client, data)
        if len(hist) > 8 and rng.random() * 100 < s["replay"]:
            old = hist[rng.randrange(len(hist) - 8)]
            self.schedule(max(delay, 0.0) + rng.uniform(0, 20), direction, client, old)
            c.add(f"{direction}_replayed")

    def schedule(self, delay_ms, direction, client, data):
        self.seq += 1
        heapq.heappush(self.queue, (time.monotonic() + delay_ms / 1000.0, self.seq, direction,
                                    client, data))

    def send(self, direction, client, data):
        try:
            if direction == "up":
                s = self.clients.get(client) or self.new_upstream(client)
                s.sendto(data, self.upstream)
            else:
                self.lsock.sendto(data, client)
        except (BlockingIOError, OSError):
            self.c.add(f"{direction}_lost")
            return
        self.c.add(f"{direction}_forwarded")
        self.c.add(f"{direction}_bytes", len(data))

    def rebind(self):
        for client, s in list(self.clients.items()):
            self.sel.unregister(s)
            s.close()
            self.new_upstream(client)
        self.c.add("rebinds")
        print(f"REBOUND {self.c.c['upstream_ports']}", flush=True)

    def run(self):
        last_stats = 0.0
        while True:
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, direction, client, data = heapq.heappop(self.queue)
                self.send(direction, client, data)
            if self.a.rebind_after and not self.rebound and now - self.start >= self.a.rebind_after:
                self.rebound = True
                self.rebind()
            if REBIND_NOW:
                REBIND_NOW.clear()
                self.rebind()
            if now - last_stats >= 1.0:
                self.c.write()
                last_stats = now
            timeout = 0.2
            if self.queue:
                timeout = min(timeout, max(self.queue[0][0] - now, 0.0))
            for key, _ in self.sel.select(timeout):
                sock, client = key.fileobj, key.data
                for _ in range(64):
                    try:
                        data, src = sock.recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if client is None:
                        self.impair("up", src, data)
                    else:
                        if self.clients.get(client) is not sock:
                            break  # an old socket after a rebind
                        self.impair("down", client, data)


class TcpRelay:
    def __init__(self, a, counters):
        self.a = a
        self.c = counters
        self.sel = selectors.DefaultSelector()
        self.lsock = socket.socket(family(a.listen_addr), socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((a.listen_addr, a.listen_port))
        self.lsock.listen(16)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.pairs = []  # dicts: a, b, accepted, pending {sock: [(due, bytes)]}
        self.cut_done = False

    def accept(self):
        conn, _ = self.lsock.accept()
        try:
            up = socket.create_connection((self.a.upstream_addr, self.a.upstream_port), timeout=5)
        except OSError:
            conn.close()
            return
        for s in (conn, up):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = {"socks": (conn, up), "at": time.monotonic(), "out": {conn: [], up: []}}
        self.sel.register(conn, selectors.EVENT_READ, (pair, up, "up"))
        self.sel.register(up, selectors.EVENT_READ, (pair, conn, "down"))
        self.pairs.append(pair)
        self.c.add("connections")

    def close(self, pair):
        if pair not in self.pairs:
            return
        self.pairs.remove(pair)
        for s in pair["socks"]:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def run(self):
        last_stats = 0.0
        while True:
            now = time.monotonic()
            if CUT_NOW:
                CUT_NOW.clear()
                for pair in list(self.pairs):
                    self.c.add("cuts")
                    print("CUT", flush=True)
                    self.close(pair)
            for pair in list(self.pairs):
                if (self.a.cut_after and not self.cut_done
                        and now - pair["at"] >= self.a.cut_after):
                    self.cut_done = True
                    self.c.add("cuts")
                    print("CUT", flush=True)
                    self.close(pair)
                    continue
                for dst, chunks in pair["out"].items():
                    while chunks and chunks[0][0] <= now:
                        data = chunks[0][1]
                        try:
                            n = dst.send(data)
                        except BlockingIOError:
                            break
                        except OSError:
                            self.close(pair)
                            break
                        if n < len(data):
                            chunks[0] = (chunks[0][0], data[n:])
                            break
                        chunks.pop(0)
            if now - last_stats >= 1.0:
                self.c.write()
                last_stats = now
            for key, _ in self.sel.select(0.01):
                if key.data is None:
                    self.accept()
                    continue
                pair, dst, direction = key.data
                if pair not in self.pairs:
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.close(pair)
                    continue
                self.c.add(f"{direction}_received")
                self.c.add(f"{direction}_forwarded")
                self.c.add(f"{direction}_bytes", len(data))
                delay = self.a.dirs[direction]["delay"] / 1000.0
                pair["out"][dst].append((time.monotonic() + delay, data))


def main():
    a = parse_args(sys.argv[1:])
    counters = Counters(a.stats)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    relay = UdpRelay(a, counters) if a.mode == "udp" else TcpRelay(a, counters)
    print(f"LISTENING {a.mode} {a.listen_addr} {a.listen_port} -> "
          f"{a.upstream_addr} {a.upstream_port}", flush=True)
    try:
        relay.run()
    except Stop:
        pass
    finally:
        counters.write()
        print("STATS " + json.dumps(counters.c, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
