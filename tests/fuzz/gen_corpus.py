#!/usr/bin/env python3
"""Writes the committed seed corpora (tests/fuzz/corpus/TARGET/) from the test data:
packets of the captured OpenVPN 2.6 sessions (tests/data/vectors/*/capture.pcap), the example
profiles (assets/examples/), OpenVPN's sample server.conf (as quoted in src/config/server_tests.rs)
and a few hand-made SOCKS5 / HTTP / DNS / key-method-2 / push messages and fuzz scripts.
Deterministic: running it again gives the same files. Usage: tests/fuzz/gen_corpus.py"""
import hashlib, os, re, shutil, struct, sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
VEC = os.path.join(ROOT, "tests", "data", "vectors")

corpus = {}

def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    corpus.setdefault(target, []).append(bytes(data))

def read_pcap(path):
    """(tcp, dst_port, payload) of every IPv4 UDP/TCP frame of a classic Ethernet pcap."""
    b = open(path, "rb").read()
    le = b[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    e = "<" if le else ">"
    pos, out = 24, []
    while pos + 16 <= len(b):
        incl = struct.unpack(e + "I", b[pos + 8:pos + 12])[0]
        rec = b[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(rec) < 34 or rec[12:14] != b"\x08\x00":
            continue
        ip = rec[14:]
        ihl = (ip[0] & 15) * 4
        ip = ip[:struct.unpack(">H", ip[2:4])[0]]
        l4 = ip[ihl:]
        if ip[9] == 17:
            out.append((False, struct.unpack(">H", l4[2:4])[0], l4[8:]))
        elif ip[9] == 6:
            out.append((True, struct.unpack(">H", l4[2:4])[0], l4[(l4[12] >> 4) * 4:]))
    return out

# --- wire, wrap, tcp_deframer: captured packets -------------------------------------------
WRAP_MODE = {  # capture -> (mode for client->server packets, mode for server->client packets)
    "a-tls-crypt-udp-aes256gcm-reneg": (2, 3),
    "b-tls-auth-sha256-udp-chacha20": (0, 0),
    "c-tls-crypt-v2-cookie-udp-aes128gcm": (4, 4),
    "d-tls-crypt-tcp-aes256gcm": (2, 3),
    "f-tls-plain-udp-aes256cbc-sha1-reneg": (0, 1),
}
for cap in sorted(os.listdir(VEC)):
    path = os.path.join(VEC, cap, "capture.pcap")
    if not os.path.exists(path):
        continue
    pkts = read_pcap(path)
    streams = {True: b"", False: b""}
    seen_ops = set()
    for tcp, dport, payload in pkts:
        c2s = dport == 1194
        if tcp:
            streams[c2s] += payload
            continue
        if not payload:
            continue
        op = payload[0] >> 3
        add("wire", payload)
        if op not in (6, 9):  # control packets only for the wrap seeds
            mode = WRAP_MODE[cap][0 if c2s else 1]
            add("wrap", bytes([mode]) + payload)
        # One data packet per opcode and direction is plenty.
        key = (op, c2s)
        if op in (6, 9) and key in seen_ops:
            corpus["wire"].pop()
        seen_ops.add(key)
    for c2s, s in streams.items():
        if s:
            add("tcp_deframer", bytes([0, 6]) + s[:6000])
            add("tcp_deframer", bytes([1, 0]) + s[:3000])

# wrap scripts: [mode] then ops (0 = new packet: opcode sel, len, payload; 1 = deliver i;
# 2 = deliver i with byte changed; 3 = raw).
for mode in range(5):
    script = [mode, 0, 5, 4, 1, 2, 3, 4, 0, 1, 3, 7, 8, 9, 1, 0, 1, 1, 1, 0, 2, 1, 0, 9, 0x40,
              0, 2, 0, 1, 2, 1, 1, 3, 0, 4, 0xde, 0xad, 0xbe, 0xef]
    add("wrap", bytes(script))

# --- reliable: structured (arbitrary) scripts: a few byte patterns ------------------------
for seed in range(6):
    h = b""
    x = hashlib.sha256(b"reliable%d" % seed).digest()
    while len(h) < 256:
        h += x
        x = hashlib.sha256(x).digest()
    add("reliable", h[: 64 + 32 * seed])

# --- handshake: key-method-2 messages and pushes ------------------------------------------
def s(text):
    return b"\x00\x00" if not text else struct.pack(">H", len(text) + 1) + text.encode() + b"\0"

rnd = hashlib.sha512(b"km2").digest() + hashlib.sha512(b"km2b").digest()
opts = "V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto UDPv4,cipher AES-256-GCM,auth [null-digest],keysize 256,key-method 2,tls-client"
peer = "IV_VER=2.6.3\nIV_PLAT=linux\nIV_PROTO=990\nIV_NCP=2\nIV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nIV_LZ4=1\n"
client_msg = b"\0\0\0\0\x02" + rnd[:112] + s(opts) + s("alice") + s("secret") + s(peer)
server_msg = b"\0\0\0\0\x02" + rnd[:64] + s(opts.replace("tls-client", "tls-server")) + s("") + s("")
add("handshake", b"\x00" + client_msg)
add("handshake", b"\x00" + b"\0\0\0\0\x02" + rnd[:112] + s(opts) + b"\0\0\0\0" + s(peer))
add("handshake", b"\x01" + server_msg)
add("handshake", b"\x02" + client_msg)
add("handshake", b"\x02" + server_msg)
pushes = [
    "route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 120,ifconfig 10.8.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM,protocol-flags cc-exit tls-ekm dyn-tls-crypt,tun-mtu 1500",
    "redirect-gateway def1 bypass-dhcp,dhcp-option DNS 10.8.0.1,dhcp-option DOMAIN example.test,route 10.9.0.0 255.255.0.0,route-ipv6 2001:db8:1::/48,ifconfig-ipv6 2001:db8::2/64 2001:db8::1,push-continuation 2\ndns server 0 address 10.8.0.1,dns search-domains corp.test,block-outside-dns,auth-token-user YWxpY2U=,auth-token SESS_ID_x,push-continuation 1",
    "topology net30,ifconfig 10.8.0.6 10.8.0.5,route 10.8.0.1,compress stub-v2,explicit-exit-notify 3,key-derivation tls-ekm,inactive 3600 1000",
]
for sel, p in zip((3, 0x13, 0x73), pushes):
    add("handshake", bytes([sel]) + p.encode())

# --- profiles ------------------------------------------------------------------------------
ex = os.path.join(ROOT, "assets", "examples")
for f in sorted(os.listdir(ex)):
    add("profile", open(os.path.join(ex, f), "rb").read())
for cap in sorted(os.listdir(VEC)):
    add("profile", open(os.path.join(VEC, cap, "client.conf"), "rb").read())
add("profile", "client\nremote 198.18.0.1 1194 udp\n<connection>\nremote 198.18.0.2 443 tcp\n</connection>\n"
               "ca ca.crt\ncert client.crt\nkey client.key\n<tls-crypt>\n" +
               open(os.path.join(VEC, "a-tls-crypt-udp-aes256gcm-reneg", "ta.key")).read() +
               "</tls-crypt>\nauth-user-pass userpass.txt\nroute-nopull\npull-filter accept \"route 10.\"\n"
               "data-ciphers AES-128-GCM:CHACHA20-POLY1305\nmssfix 1400\nverify-x509-name server name\n")

tests = open(os.path.join(ROOT, "src", "config", "server_tests.rs")).read()
sample = re.search(r'const SAMPLE: &str = r#"(.*?)"#;', tests, re.S).group(1)
add("server_profile", sample)
add("server_profile", "port 1194\nproto udp\ndev tun\nca ca.crt\ncert server.crt\nkey server.key\ndh none\n"
    "server 198.19.0.0 255.255.255.0\nserver-ipv6 2001:db8:100::/64\ntopology subnet\n"
    "tls-crypt-v2 tc2-server.key\nclient-to-client\nkeepalive 10 120\nmax-clients 10\n"
    "push \"route 198.19.1.0 255.255.255.0\"\npush \"dhcp-option DNS 198.19.0.1\"\n"
    "auth-gen-token 3600 external-auth\nauth-gen-token-secret auth-token.key\n"
    "client-config-dir ccd\nduplicate-cn\nstatus status.log 10\nverb 3\n")
add("server_profile", "iroute 198.19.5.0 255.255.255.0\nifconfig-push 198.19.0.9 255.255.255.0\n"
    "push \"route 198.19.6.0 255.255.255.0\"\npush-reset\ndisable\n")

# --- netstack parsers ------------------------------------------------------------------------
for m in [b"\x05\x01\x00", b"\x05\x02\x00\x02", b"\x05\x03\x00\x01\x02"]:
    add("socks5", b"\x00" + m)
add("socks5", b"\x01" + b"\x01\x05alice\x06secret")
add("socks5", b"\x02" + b"\x05\x01\x00\x01" + bytes([198, 18, 0, 1]) + b"\x00\x50")
add("socks5", b"\x02" + b"\x05\x01\x00\x03\x0bexample.com\x01\xbb")
add("socks5", b"\x02" + b"\x05\x03\x00\x04" + bytes(15) + b"\x01" + b"\x00\x35")
add("socks5", b"\x03" + b"\x00\x00\x00\x01" + bytes([198, 18, 0, 1]) + b"\x00\x35" + b"payload")
add("socks5", b"\x03" + b"\x00\x00\x00\x03\x07dns.com\x00\x35" + b"q")
add("http", b"\x00GET http://example.com/index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n")
add("http", b"\x00CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n")
add("http", b"\x00POST http://198.18.0.1:8080/upload HTTP/1.1\r\nHost: 198.18.0.1:8080\r\nContent-Length: 5\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\nhello")
add("http", b"\x00PUT http://[2001:db8::1]/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: close, TE\r\nTE: trailers\r\n\r\n")
add("http", b"\x01HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n")
add("http", b"\x01HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
add("http", b"\x01HTTP/1.0 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n")
add("http", b"\x025\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
add("http", b"\x02A\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n")

def dns_answer(id_, qtype, name, rdatas, rcode=0, tc=False):
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    flags = 0x8180 | rcode | (0x0200 if tc else 0)
    out = struct.pack(">HHHHHH", id_, flags, 1, len(rdatas), 0, 0) + q + struct.pack(">HH", qtype, 1)
    for rtype, rd in rdatas:
        out += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 300, len(rd)) + rd
    return out
add("dns", b"\x12\x34\x00" + dns_answer(0x1234, 1, "example.com", [(1, bytes([93, 184, 216, 34])), (1, bytes([198, 18, 0, 1]))]))
add("dns", b"\x12\x34\x01" + dns_answer(0x1234, 28, "example.com", [(28, bytes.fromhex("20010db8000000000000000000000001"))]))
add("dns", b"\x00\x07\x00" + dns_answer(7, 1, "www.example.com", [(5, b"\x07example\x03com\x00"), (1, bytes([198, 18, 0, 9]))]))
add("dns", b"\x00\x08\x00" + dns_answer(8, 1, "nx.example", [], rcode=3))
add("dns", b"\x00\x09\x01" + dns_answer(9, 28, "big.example", [], tc=True))
add("dns", b"\x00\x0a\x00example.com")

# --- client / server: scripts (see tests/fuzz/common/session.rs) --------------------------
PUMP = 0xF0  # op 0 (240 % 12) with 15 extra rounds
for mode in range(4):
    hs = [mode, PUMP, PUMP, PUMP, 6, 0, 50, PUMP]
    for t in ("client", "server"):
        add(t, bytes(hs))
        # Handshake, tunnel packets both ways, time for a renegotiation, more traffic.
        add(t, bytes(hs + [9, 0, 20] + list(b"0123456789abcdefghij") + [0x19, 0, 4] + list(b"pong") +
                     [PUMP, 6, 0x17, 0x70, PUMP, PUMP, 9, 0, 2, 0x41, 0x42, 1, 1, 1]))
        # Handshake with corruption: change, truncate, replay, drop, inject.
        add(t, bytes([mode, 1, 1, 4, 0, 30, 0x55, 3, 11, 11, 1, 7, 20, 8, 0, 2, PUMP, 5, 1, 0, 16] +
                     list(range(16)) + [PUMP, 10, 6, 0xff, 0xff, PUMP]))
        add(t, bytes([mode, 11, 1, 11, 1, 11, 1, 11, 1, 11, 1, 11, 1, 11, 1, 11, 1, 11, 1, 8, 3, 8, 1, 0x1a, PUMP]))

def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    total = 0
    for target, items in sorted(corpus.items()):
        d = os.path.join(OUT, target)
        os.makedirs(d)
        for data in items:
            name = hashlib.sha1(data).hexdigest()
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print(f"{target}: {len(set(items))} files", file=sys.stderr)
    print(f"total {total} bytes", file=sys.stderr)

main()
