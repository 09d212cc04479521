#!/usr/bin/env python3
"""Bulk TCP transfer with checksums, for the interop tests (tests/support/traffic.rs).

  blast.py serve ADDR PORT [--timeout S]
      Accepts one connection. Reads a header (up, down, seed, rate), then `up` bytes, and prints
      "RECV <sha256> <n>"; then sends `down` bytes of seeded pseudo-random data and prints
      "SENT <sha256> <n>". Prints "LISTENING" once bound.

  blast.py send ADDR PORT --up N --down N [--seed S (0: compressible text)] [--rate BYTES_PER_S] [--timeout S]
      Connects, sends the header and `up` bytes of seeded data ("SENT <sha256> <n>"), then reads
      `down` bytes ("RECV <sha256> <n>"). --rate paces both directions.

Each side fails (exit 1) if the peer stalls for --timeout seconds (default 30). The caller compares
the sender's SENT with the receiver's RECV for each direction.
"""

import argparse
import hashlib
import random
import socket
import struct
import sys
import time

HEADER = struct.Struct("!QQQd")
CHUNK = 1 << 16


def out(*words):
    print(*words, flush=True)


def source(seed, n):
    if seed == 0:
        # Seed 0: compressible text instead of random bytes (the compression tests).
        yield from text_source(n)
        return
    rng = random.Random(seed)
    left = n
    while left > 0:
        k = min(CHUNK, left)
        yield rng.randbytes(k)
        left -= k


def text_source(n):
    i = 0
    left = n
    while left > 0:
        line = b"%08d the quick brown fox jumps over the lazy dog, again and again\n" % i
        chunk = line * (CHUNK // len(line))
        k = min(len(chunk), left)
        yield chunk[:k]
        left -= k
        i += 1


def send_data(sock, seed, n, rate):
    h = hashlib.sha256()
    start = time.monotonic()
    sent = 0
    for chunk in source(seed, n):
        if rate > 0:
            due = start + sent / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
        sock.sendall(chunk)
        h.update(chunk)
        sent += len(chunk)
    out("SENT", h.hexdigest(), sent, "%.3f" % (time.monotonic() - start))


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        b = sock.recv(n - len(buf))
        if not b:
            raise EOFError("peer closed after %d of %d header bytes" % (len(buf), n))
        buf += b
    return bytes(buf)


def recv_data(sock, n):
    h = hashlib.sha256()
    start = time.monotonic()
    got = 0
    while got < n:
        b = sock.recv(min(1 << 20, n - got))
        if not b:
            break
        h.update(b)
        got += len(b)
    out("RECV", h.hexdigest(), got, "%.3f" % (time.monotonic() - start))
    if got != n:
        out("SHORT", got, "of", n)
        sys.exit(1)


def serve(a):
    family = socket.AF_INET6 if ":" in a.addr else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.addr, a.port))
    ls.listen(1)
    ls.settimeout(a.timeout * 4)
    out("LISTENING", a.addr, a.port)
    conn, peer = ls.accept()
    conn.settimeout(a.timeout)
    out("ACCEPTED", peer[0])
    up, down, seed, rate = HEADER.unpack(recv_exact(conn, HEADER.size))
    recv_data(conn, up)
    send_data(conn, seed + 1, down, rate)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)  # wait for the client to close
    conn.close()
    out("DONE")


def send(a):
    sock = socket.create_connection((a.addr, a.port), timeout=a.timeout)
    sock.settimeout(a.timeout)
    sock.sendall(HEADER.pack(a.up, a.down, a.seed, float(a.rate)))
    send_data(sock, a.seed, a.up, a.rate)
    recv_data(sock, a.down)
    sock.close()
    out("DONE")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["serve", "send"])
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--up", type=int, default=0)
    p.add_argument("--down", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=int, default=0)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    try:
        serve(a) if a.mode == "serve" else send(a)
    except Exception as e:  # noqa: BLE001 - report and fail
        out("ERROR", type(e).__name__, e)
        sys.exit(1)


if __name__ == "__main__":
    main()
