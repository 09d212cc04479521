#!/usr/bin/env python3
"""Echo services for the proxy-mode interop tests (tests/proxy_interop.rs).

  echosrv.py udp ADDR PORT
      Sends every datagram back to where it came from, unchanged; except that a datagram
      "REPLY-SIZE N" is answered with N bytes (b"0123456789" repeated): a reply larger than the
      request, e.g. one that must be fragmented on its way.
  echosrv.py tcp ADDR PORT
      For each connection: reads one line and answers "echo <TAG> <peer-ip>: <line>", then
      closes (TAG is --tag, default "tcp").

Prints "LISTENING <proto> ADDR PORT" once bound and one line per datagram or connection.
"""

import argparse
import socket
import sys
import threading


def out(*words):
    print(*words, flush=True)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def udp(a):
    s = socket.socket(family(a.addr), socket.SOCK_DGRAM)
    s.bind((a.addr, a.port))
    out("LISTENING udp", a.addr, a.port)
    while True:
        data, peer = s.recvfrom(65535)
        out("DATAGRAM", peer[0], peer[1], len(data))
        if data.startswith(b"REPLY-SIZE "):
            n = int(data.split()[1])
            data = (b"0123456789" * (n // 10 + 1))[:n]
        s.sendto(data, peer)


def serve_one(conn, peer, tag):
    try:
        conn.settimeout(30)
        f = conn.makefile("rb")
        line = f.readline().rstrip(b"\r\n")
        out("CONNECTION", peer[0], peer[1], line.decode(errors="replace"))
        conn.sendall(b"echo %s %s: %s\n" % (tag.encode(), peer[0].encode(), line))
    except OSError as e:
        out("ERROR", peer[0], e)
    finally:
        conn.close()


def tcp(a):
    ls = socket.socket(family(a.addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.addr, a.port))
    ls.listen(64)
    out("LISTENING tcp", a.addr, a.port)
    while True:
        conn, peer = ls.accept()
        threading.Thread(target=serve_one, args=(conn, peer, a.tag), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("proto", choices=["udp", "tcp"])
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--tag", default="tcp")
    a = p.parse_args()
    try:
        udp(a) if a.proto == "udp" else tcp(a)
    except Exception as e:  # noqa: BLE001 - report and fail
        out("ERROR", type(e).__name__, e)
        sys.exit(1)


if __name__ == "__main__":
    main()
