#!/usr/bin/env python3
"""A steady stream of numbered UDP datagrams through the tunnel, to count loss (tests/faults.rs,
tests/benches/reneg_soak.sh).

  udpseq.py echo ADDR PORT
      Sends every datagram back unchanged. Prints "LISTENING" once bound.
  udpseq.py send ADDR PORT --rate PPS --duration SECS [--size BYTES]
      Sends `rate` datagrams a second for `duration` seconds, each carrying its sequence number,
      counts the distinct echoes that come back (waiting 3 s after the last), and prints
      "RESULT sent N received M lost K" (K = N - M) and the longest run of consecutive losses
      as "GAP longest L".
"""

import argparse
import socket
import struct
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def echo(a):
    s = socket.socket(family(a.addr), socket.SOCK_DGRAM)
    s.bind((a.addr, a.port))
    print("LISTENING", flush=True)
    while True:
        data, src = s.recvfrom(65536)
        try:
            s.sendto(data, src)
        except OSError:
            pass


def send(a):
    s = socket.socket(family(a.addr), socket.SOCK_DGRAM)
    s.connect((a.addr, a.port))
    s.setblocking(False)
    pad = b"\0" * max(a.size - 8, 0)
    got = set()
    sent = 0
    start = time.monotonic()
    total = int(a.rate * a.duration)
    interval = 1.0 / a.rate

    def drain():
        while True:
            try:
                d = s.recv(65536)
            except (BlockingIOError, ConnectionRefusedError):
                return
            except OSError:
                return
            if len(d) >= 8:
                got.add(struct.unpack("!Q", d[:8])[0])

    while sent < total:
        due = start + sent * interval
        now = time.monotonic()
        if now < due:
            time.sleep(min(due - now, 0.01))
            drain()
            continue
        try:
            s.send(struct.pack("!Q", sent) + pad)
        except OSError:
            pass  # e.g. no route while the tunnel is down: counted as lost
        sent += 1
        drain()
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        time.sleep(0.01)
        drain()
    longest = run = 0
    for i in range(sent):
        if i in got:
            run = 0
        else:
            run += 1
            longest = max(longest, run)
    received = len([i for i in got if i < sent])
    print(f"RESULT sent {sent} received {received} lost {sent - received}", flush=True)
    print(f"GAP longest {longest}", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["echo", "send"])
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--duration", type=float, default=40.0)
    p.add_argument("--size", type=int, default=200)
    a = p.parse_args()
    if a.mode == "echo":
        echo(a)
    else:
        send(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
