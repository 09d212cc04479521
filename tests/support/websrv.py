#!/usr/bin/env python3
"""A small web server for the proxy-mode interop tests (tests/proxy_interop.rs).

  websrv.py ADDR PORT
      GET /blob?size=N&seed=S   N bytes of the deterministic stream for seed S (Content-Length set)
      POST /upload              answers "<sha256 hex of the body> <length>\\n"
      GET /                     "ok\\n"
  Prints "LISTENING ADDR PORT" once bound. HTTP/1.0, one request per connection.

  websrv.py gen N S
      Writes the stream for seed S, N bytes, to stdout (for scripts that need the expected data).

The stream for seed S: Python's Mersenne Twister seeded with the integer S (random.Random(S)),
its successive 32-bit outputs written little-endian. Produced 64 KiB at a time with
getrandbits(8 * 65536), which yields exactly those words in that order; the last chunk is cut
to length. tests/support/proxy.rs generates the same bytes in Rust (`blob`).
"""

import hashlib
import random
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 1 << 16


def stream(size, seed):
    rng = random.Random(seed)
    left = size
    while left > 0:
        chunk = rng.getrandbits(8 * CHUNK).to_bytes(CHUNK, "little")
        if left < CHUNK:
            chunk = chunk[:left]
        yield chunk
        left -= len(chunk)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "ferrovpn-test-websrv"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))

    def reply(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            return self.reply(200, b"ok\n")
        if url.path != "/blob":
            return self.reply(404, b"not found\n")
        q = parse_qs(url.query)
        try:
            size = int(q.get("size", ["0"])[0])
            seed = int(q.get("seed", ["0"])[0])
        except ValueError:
            return self.reply(400, b"bad size or seed\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        try:
            for chunk in stream(size, seed):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError) as e:
            sys.stderr.write("blob size=%d seed=%d aborted: %s\n" % (size, seed, e))

    def do_POST(self):
        if urlsplit(self.path).path != "/upload":
            return self.reply(404, b"not found\n")
        h = hashlib.sha256()
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                left = size
                while left > 0:
                    b = self.rfile.read(min(left, 1 << 20))
                    if not b:
                        return self.reply(400, b"short chunked body\n")
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left > 0:
                b = self.rfile.read(min(left, 1 << 20))
                if not b:
                    return self.reply(400, b"short body\n")
                h.update(b)
                n += len(b)
                left -= len(b)
        self.reply(200, ("%s %d\n" % (h.hexdigest(), n)).encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Hundreds of clients connect at once in the parallel-connections test.
    request_queue_size = 1024


def main():
    if sys.argv[1] == "gen":
        out = sys.stdout.buffer
        for chunk in stream(int(sys.argv[2]), int(sys.argv[3])):
            out.write(chunk)
        return
    addr, port = sys.argv[1], int(sys.argv[2])
    Server.address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    srv = Server((addr, port), Handler)
    print("LISTENING", addr, port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
