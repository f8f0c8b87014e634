#!/usr/bin/env python3
"""Loopback fuzzer for weft-proxy (stdlib only; run through hack/fuzz-proxy).

Starts an echo backend and a weft-proxy on 127.0.0.1 (ephemeral ports), then sends mutated HTTP/1.1 and
h2c (prior knowledge) requests built from the seed corpus, each on its own connection, from a few worker
threads. Fails (exit 1) when the proxy dies, a connection is neither answered nor closed in time (a hang),
a liveness request through the proxy fails, or RSS does not come back to within --rss-slack MiB of idle.
Deterministic for a given --seed (each mutation is derived from the seed and its index alone).
"""

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.request
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "x"  # the outbound service's alias (the config below)

# ---------------------------------------------------------------------------------------------- echo backend


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body are two writes: without this, Nagle's algorithm and the proxy's delayed ACK hold the
    # body back 40 ms on every answer.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, ValueError):
            self.close_connection = True

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline(8)
        length = int(self.headers.get("Content-Length", "0") or 0)
        return len(self.rfile.read(length)) if length > 0 else 0

    def _answer(self):
        n = self._body()
        payload = ("echo %s %s %d\n" % (self.command, self.path[:64], n)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _answer


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


# ---------------------------------------------------------------------------------------------- proxy process


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def write_config(path, outbound, backend):
    cluster = "outbound|%d||echo.fuzz.svc.cluster.local" % backend
    config = {
        "version": "fuzz-proxy",
        "proxy": {"id": "fuzz/client", "namespace": "fuzz", "name": "client", "serviceAccount": "default",
                  "spiffeID": "spiffe://cluster.local/ns/fuzz/sa/default", "trustDomain": "cluster.local",
                  "addresses": ["127.0.0.1"]},
        "inbound": [],
        "outbound": [{"host": "127.0.0.1", "aliases": ["localhost", HOST], "port": outbound, "protocol": "http1",
                      "routes": [{"name": "default", "matches": [],
                                  "forward": {"backends": [{"cluster": cluster, "weight": 100}]}}]}],
        "clusters": [{"name": cluster, "service": "echo.fuzz.svc.cluster.local", "port": backend,
                      "protocol": "http1", "loadBalancer": {"policy": "roundRobin"},
                      "limits": {"maxConnections": 1024, "maxPendingRequests": 1024, "maxRequestsPerConnection": 0,
                                 "connectTimeoutMs": 1000, "idleTimeoutMs": 120000},
                      "retryBudget": {"percent": 20, "minRetriesPerSecond": 10},
                      "endpoints": [{"address": "127.0.0.1", "port": backend, "weight": 1, "ready": True}]}],
    }
    with open(path, "w") as f:
        json.dump(config, f)


def rss_kib(pid, field="VmRSS"):
    """A memory figure of /proc/PID/status in KiB (VmRSS, or e.g. RssAnon), None when unreadable."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------- seeds


def load_corpus(directory):
    h1, h2 = [], []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        if name.startswith("h1-"):
            h1.append(data.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
        elif name.startswith("h2-"):
            h2.append(json.loads(data))
    return h1, h2


def hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    def string(s):
        b = s.encode() if isinstance(s, str) else s
        return hpack_int(len(b), 7, 0) + b
    return b"\x00" + string(name) + string(value)


def hpack_int(value, prefix, first):
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream & 0x7FFFFFFF) + payload


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frames(seed):
    """A valid h2c request as a list of frames (bytes), from a JSON seed {headers: [[n, v]...], body: str}."""
    block = b"".join(hpack_literal(n, v) for n, v in seed["headers"])
    body = seed.get("body", "").encode()
    frames = [frame(0x4, 0, 0, b"")]
    frames.append(frame(0x1, 0x4 | (0 if body else 0x1), 1, block))
    if body:
        frames.append(frame(0x0, 0x1, 1, body))
    return frames


# ---------------------------------------------------------------------------------------------- mutations


def flip_bytes(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def insert_ctl(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b) + 1):0] = rng.choice([b"\r", b"\n", b"\x00", b"\r\n", b"\n\n", b" \r\n ", b"\t"])
    return bytes(b)


def split_head(data):
    i = data.find(b"\r\n\r\n")
    if i < 0:
        return data, b""
    return data[:i], data[i + 4:]


def add_headers(data, lines):
    head, body = split_head(data)
    return head + b"".join(b"\r\n" + line for line in lines) + b"\r\n\r\n" + body


H1_MUTATORS = {}


def h1(name):
    def register(fn):
        H1_MUTATORS[name] = fn
        return fn
    return register


@h1("byte-flip")
def m_flip(rng, seed):
    return flip_bytes(rng, seed)


@h1("ctl-insert")
def m_ctl(rng, seed):
    return insert_ctl(rng, seed)


@h1("framing-conflict")
def m_framing(rng, seed):
    options = [
        [b"Content-Length: 5", b"Content-Length: 6"],
        [b"Content-Length: 5, 6"],
        [b"Content-Length: 4", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: chunked, identity"],
        [b"Transfer-Encoding: gzip"],
        [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding : chunked"],
        [b"Content-Length: -1"],
        [b"Content-Length: 99999999999999999999999"],
        [b"Content-Length: 0x10"],
        [b"Content-Length:\t 3 "],
        [b"X-Folded: a", b" b"],
        [b"Transfer-Encoding: \x0bchunked"],
    ]
    head, _ = split_head(seed)
    body = rng.choice([b"", b"hello", b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"])
    return add_headers(head + b"\r\n\r\n", rng.choice(options)) + body


@h1("chunk-size")
def m_chunk(rng, seed):
    head, _ = split_head(seed)
    size = rng.choice([b"ffffffffffffffffff", b"7fffffffffffffff", b"-1", b"1 ; ext=\x00", b"10000000", b"z", b"",
                       b"0000000000000000000000001", b"8000000000000000"])
    tail = rng.choice([b"\r\nabc\r\n0\r\n\r\n", b"\r\n", b"\r\n" + b"a" * 64, b"\n0\n\n"])
    return add_headers(head + b"\r\n\r\n", [b"Transfer-Encoding: chunked"]).rstrip(b"\r\n") + b"\r\n\r\n" + size + tail


@h1("truncated")
def m_truncated(rng, seed):
    if rng.random() < 0.5:
        return seed[:rng.randrange(max(1, len(seed)))]
    head, _ = split_head(seed)
    return add_headers(head + b"\r\n\r\n", [b"Content-Length: %d" % rng.choice([10, 1000, 1 << 20])]) + b"short"


@h1("header-flood")
def m_flood(rng, seed):
    n = rng.choice([50, 101, 200, 1000, 5000])
    size = rng.choice([1, 100, 4000, 70000])
    if rng.random() < 0.5:
        lines = [b"X-Flood-%d: %s" % (i, b"v" * max(1, size // n)) for i in range(n)]
    else:
        lines = [b"X-Big: " + b"v" * size]
    return add_headers(seed, lines)


@h1("request-line")
def m_request_line(rng, seed):
    head, rest = seed.split(b"\r\n", 1) if b"\r\n" in seed else (seed, b"")
    junk = rng.choice([
        b"GET  / HTTP/1.1", b"GET / HTTP/1.1 extra", b"GET /\x00 HTTP/1.1", b"G\x7fT / HTTP/1.1", b"GET / HTTP/9.9",
        b"GET / HTTP/1.", b"/ HTTP/1.1", b"GET http://[::1 HTTP/1.1", b"GET * HTTP/1.1", b"CONNECT x HTTP/1.1",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1", b"\r\n\r\nGET / HTTP/1.1", b"GET / HTTP/1.1\r", b"GET\t/\tHTTP/1.1",
        b"GET //../../etc/passwd HTTP/1.1", b"GET /%zz%00 HTTP/1.1", b"PRI * HTTP/2.0", b"GET / HTTP/0.9",
    ])
    return junk + b"\r\n" + rest


@h1("host-junk")
def m_host(rng, seed):
    head, body = split_head(seed)
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"host:")]
    host = rng.choice([b"", b"x:", b"x:99999999", b"[::1", b"x, y", b"x\x00", b"@x", b"x:-1", b"x:80:80",
                       b"user@x", b"X", b"x.", b"\xff\xfe"])
    extra = [b"Host: " + host] * rng.choice([0, 1, 2])
    return b"\r\n".join(lines + extra) + b"\r\n\r\n" + body


@h1("splice")
def m_splice(rng, seed):
    a = seed[:rng.randrange(len(seed) + 1)]
    b = seed[rng.randrange(len(seed) + 1):]
    return a + rng.choice([b"", b"\r\n", b"\r\n\r\n"]) + b


H2_MUTATORS = {}


def h2m(name):
    def register(fn):
        H2_MUTATORS[name] = fn
        return fn
    return register


@h2m("byte-flip")
def n_flip(rng, frames):
    return PREFACE + flip_bytes(rng, b"".join(frames))


@h2m("bad-length")
def n_length(rng, frames):
    i = rng.randrange(len(frames))
    f = bytearray(frames[i])
    f[0:3] = struct.pack(">I", rng.choice([0, 1, 5, 16383, 16385, 0xFFFFFF, len(f) - 9 + 1, max(0, len(f) - 10)]))[1:]
    frames = frames[:i] + [bytes(f)] + frames[i + 1:]
    return PREFACE + b"".join(frames)


@h2m("unknown-type-flags")
def n_type(rng, frames):
    i = rng.randrange(len(frames))
    f = bytearray(frames[i])
    if rng.random() < 0.5:
        f[3] = rng.choice([0x0A, 0x10, 0xFF, 0x2, 0x3, 0x5, 0x6, 0x7, 0x8, 0x9])
    else:
        f[4] = rng.randrange(256)
    if rng.random() < 0.3:
        f[5:9] = struct.pack(">I", rng.choice([0, 2, 3, 0x7FFFFFFF, 0xFFFFFFFF]))
    extra = [frame(rng.randrange(0x0A, 256), rng.randrange(256), rng.randrange(4), b"z" * rng.randrange(32))]
    return PREFACE + b"".join(frames[:i] + [bytes(f)] + extra + frames[i + 1:])


@h2m("hpack-garbage")
def n_hpack(rng, frames):
    block = bytearray(rng.randbytes(rng.randrange(1, 64)))
    if rng.random() < 0.5:
        block = bytearray(b"\x82\x86\x84") + block  # :method GET, :scheme http, :path / then garbage
    if rng.random() < 0.3:
        block += b"\x3f\xe1\xff\xff\x0f"  # dynamic table size update, huge
    if rng.random() < 0.3:
        block += b"\xff" * 8  # an index that overflows
    return PREFACE + frames[0] + frame(0x1, 0x5, 1, bytes(block))


@h2m("pseudo-abuse")
def n_pseudo(rng, frames):
    headers = rng.choice([
        [(":method", "GET"), (":path", "/"), (":scheme", "http")],
        [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", HOST), (":path", "/again")],
        [(":method", "GET"), (":scheme", "http"), (":authority", HOST), (":path", "/"), ("connection", "close")],
        [(":method", "GET"), (":scheme", "http"), (":authority", HOST), (":path", "/"), ("te", "gzip")],
        [(":method", "GET"), (":scheme", "http"), (":authority", HOST), (":path", "/"), ("Upper", "x")],
        [(":method", "GET"), (":scheme", "http"), (":authority", HOST), ("x", "1"), (":path", "/")],
        [(":method", "GET"), (":scheme", "http"), (":authority", HOST), (":path", "/"), (":status", "200")],
        [(":method", "GET"), (":scheme", "http"), (":authority", HOST), (":path", ""), ("x", "a\r\nb")],
        [(":method", "POST"), (":scheme", "http"), (":authority", HOST), (":path", "/"), ("content-length", "3"),
         ("content-length", "4")],
        [(":method", "GET"), (":scheme", "http"), (":authority", "x\x00y"), (":path", "/"), ("transfer-encoding", "chunked")],
    ])
    block = b"".join(hpack_literal(n, v) for n, v in headers)
    body = frame(0x0, 0x1, 1, b"abc") if rng.random() < 0.5 else b""
    return PREFACE + frames[0] + frame(0x1, 0x4 | (0 if body else 1), 1, block) + body


@h2m("settings-flood")
def n_settings(rng, frames):
    n = rng.choice([10, 100, 1000, 5000])
    kind = rng.choice(["settings", "ping", "window", "rst", "priority", "continuation"])
    out = []
    for i in range(n):
        if kind == "settings":
            out.append(frame(0x4, 0, 0, struct.pack(">HI", rng.randrange(1, 10), rng.randrange(1 << 32))))
        elif kind == "ping":
            out.append(frame(0x6, 0, 0, struct.pack(">Q", i)))
        elif kind == "window":
            out.append(frame(0x8, 0, rng.choice([0, 1]), struct.pack(">I", rng.choice([0, 1, 0x7FFFFFFF]))))
        elif kind == "rst":
            out.append(frames[1].replace(b"\x00\x00\x00\x01", struct.pack(">I", 2 * i + 1), 1)[:9] + frames[1][9:])
            out.append(frame(0x3, 0, 2 * i + 1, struct.pack(">I", 8)))
        elif kind == "priority":
            out.append(frame(0x2, 0, 2 * i + 1, struct.pack(">IB", 2 * i + 1, 255)))
        else:
            out.append(frame(0x9, 0, 1, b"\x00\x01a\x01b"))
    head = [frames[0]] + ([frame(0x1, 0x0, 1, hpack_literal(":method", "GET"))] if kind == "continuation" else [])
    return PREFACE + b"".join(head + out + frames[1:])


@h2m("truncated")
def n_truncated(rng, frames):
    data = PREFACE + b"".join(frames)
    return data[:rng.randrange(len(data))]


@h2m("reorder")
def n_reorder(rng, frames):
    frames = list(frames)
    rng.shuffle(frames)
    if rng.random() < 0.5:
        frames.append(frames[rng.randrange(len(frames))])
    return PREFACE + b"".join(frames)


# ---------------------------------------------------------------------------------------------- exchange


def status_h1(data):
    if data.startswith(b"HTTP/1.1 ") and len(data) >= 12:
        return data[9:12].decode("latin-1")
    return "garbage" if data else None


H2_STATUS = {8: "200", 9: "204", 10: "206", 11: "304", 12: "400", 13: "404", 14: "500"}


def status_h2(data):
    """The first response HEADERS' :status (indexed or literal with indexed name, no Huffman), else a frame tag."""
    i, tag = 0, None
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        kind, payload = data[i + 3], data[i + 9:i + 9 + length]
        i += 9 + length
        if kind == 0x1 and payload:
            b = payload[0]
            if b & 0x80 and (b & 0x7F) in H2_STATUS:
                return H2_STATUS[b & 0x7F]
            if b in (0x48, 0x08, 0x18) and len(payload) >= 5 and payload[1] == 3:
                return payload[2:5].decode("latin-1", "replace")
            return "h2-headers"
        if kind == 0x7 and tag is None:
            tag = "goaway"
        if kind == 0x3 and tag is None:
            tag = "rst"
    return tag or ("frames" if data else None)


def complete_h1(data):
    """Whether data holds a whole response (head plus Content-Length body, or a head without body)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[:end].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            try:
                return len(data) - end - 4 >= int(line.split(b":", 1)[1])
            except ValueError:
                return True
    return b"transfer-encoding" not in head or data.endswith(b"0\r\n\r\n")


def complete_h2(data):
    i = 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        kind, flags = data[i + 3], data[i + 4]
        if i + 9 + length > len(data):
            return False
        if kind == 0x7 or (kind in (0x0, 0x1) and flags & 0x1 and int.from_bytes(data[i + 5:i + 9], "big") == 1):
            return True
        if kind == 0x3 and int.from_bytes(data[i + 5:i + 9], "big") == 1:
            return True
        i += 9 + length
    return False


def exchange(port, payload, complete, quiet, hang, before=None, gap=0.0):
    """Send payload; read until a whole answer, a close, or `quiet` seconds of silence (then half-close and wait
    up to `hang` seconds for the close). Returns (bytes, outcome) with outcome answered|closed|hang|refused.
    With `before`, that valid HTTP/1.1 request goes first on the same connection, its whole answer is read, and
    the payload follows `gap` seconds later (a keep-alive connection the proxy may have made dormant)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=hang)
    except OSError:
        return b"", "refused"
    data = b""
    try:
        if before is not None:
            try:
                s.sendall(before)
                while not complete_h1(data):
                    chunk = s.recv(65536)
                    if not chunk:
                        return data, "closed"
                    data += chunk
            except OSError:
                return data, "closed"
            data = b""
            time.sleep(gap)
        try:
            s.sendall(payload)
        except OSError:
            pass  # the proxy closed while we sent (a flood): read what it answered
        s.settimeout(quiet)
        half_closed, deadline = False, time.monotonic() + hang
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                if half_closed or time.monotonic() > deadline:
                    return data, "hang"
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                half_closed = True
                s.settimeout(max(0.1, deadline - time.monotonic()))
                continue
            except OSError:
                return data, "answered" if complete(data) else "closed"
            if not chunk:
                return data, "answered" if complete(data) else "closed"
            data += chunk
            if complete(data):
                return data, "answered"
            if len(data) > 1 << 20:
                return data, "answered"
    finally:
        s.close()


def probe(port, timeout):
    data, outcome = exchange(port, b"GET /liveness HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % HOST.encode(),
                             complete_h1, timeout, timeout)
    return outcome == "answered" and status_h1(data) == "200"


# ---------------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", required=True, help="the weft-proxy binary")
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--count", type=int, default=10000, help="mutations in all (half HTTP/1.1, half h2c)")
    ap.add_argument("--seconds", type=float, default=120, help="stop sending after this long")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8, help="concurrent connections")
    ap.add_argument("--probe-every", type=int, default=500, help="a liveness request every K mutations")
    ap.add_argument("--quiet", type=float, default=0.5, help="silence (s) after which the client half-closes")
    ap.add_argument("--hang", type=float, default=15, help="no close this long (s) after sending: a hang")
    ap.add_argument("--rss-slack", type=float, default=10, help="MiB over idle RSS allowed after the run")
    ap.add_argument("--log", default=None, help="the proxy's stderr/stdout (default: a temporary file)")
    ap.add_argument("--dormant-gap", type=float, default=0,
                    help="send every other HTTP/1.1 mutation this long (s) after a valid request on the same "
                         "connection (0: never); with --proxy-arg=--dormant-after=0.001 it wakes dormant connections")
    ap.add_argument("--proxy-arg", action="append", default=[],
                    help="one more weft-proxy argument (repeatable; e.g. --proxy-arg=--dormant-after=0.001)")
    args = ap.parse_args()

    h1_seeds, h2_seeds = load_corpus(args.corpus)
    if not h1_seeds or not h2_seeds:
        sys.exit("fuzz-proxy: the corpus %s needs h1-* and h2-* seeds" % args.corpus)
    h2_seed_frames = [h2_frames(s) for s in h2_seeds]

    backend = EchoServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    outbound, inbound, admin = free_ports(3)
    tmp = tempfile.mkdtemp(prefix="weft-fuzz-")
    config = os.path.join(tmp, "proxy.json")
    write_config(config, outbound, backend.server_address[1])
    log_path = args.log or os.path.join(tmp, "weft-proxy.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([args.proxy, "--config", config, "--outbound-port", str(outbound), "--inbound-port",
                             str(inbound), "--admin-port", str(admin), "--concurrency", "1", "--log-level", "error"]
                            + args.proxy_arg,
                            stdout=log, stderr=subprocess.STDOUT)
    failures = []
    try:
        up = False
        for _ in range(200):
            if proc.poll() is not None:
                break
            if probe(outbound, 1.0):
                up = True
                break
            time.sleep(0.05)
        if not up:
            sys.exit("fuzz-proxy: weft-proxy did not answer on 127.0.0.1:%d (log: %s)" % (outbound, log_path))
        for _ in range(200):  # warm up: pools, buffers, the allocator
            probe(outbound, 5.0)
        time.sleep(1.0)
        idle = rss_kib(proc.pid)

        max_rss = [idle]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                r = rss_kib(proc.pid)
                if r:
                    max_rss[0] = max(max_rss[0], r)
                stop.wait(0.2)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        sent, results = Counter(), Counter()
        lock = threading.Lock()
        h1_names, h2_names = sorted(H1_MUTATORS), sorted(H2_MUTATORS)

        def one(i):
            rng = random.Random(args.seed * 1_000_003 + i)
            before = None
            if i % 2 == 0:
                name = rng.choice(h1_names)
                payload = H1_MUTATORS[name](rng, rng.choice(h1_seeds))
                cls, complete, status = "h1/" + name, complete_h1, status_h1
                if args.dormant_gap > 0 and i % 4 == 0:
                    before = b"GET /before HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode()
                    cls = "h1-after-idle/" + name
            else:
                name = rng.choice(h2_names)
                payload = H2_MUTATORS[name](rng, rng.choice(h2_seed_frames))
                cls, complete, status = "h2/" + name, complete_h2, status_h2
            data, outcome = exchange(outbound, payload, complete, args.quiet, args.hang, before, args.dormant_gap)
            key = "answered " + (status(data) or "?") if outcome == "answered" else outcome
            with lock:
                sent[cls] += 1
                results[cls[:2] + " " + key] += 1
                if outcome in ("hang", "refused"):
                    failures.append("mutation %d (%s): %s" % (i, cls, outcome))

        start = time.monotonic()
        done = 0
        probes_ok = probes_failed = 0
        with ThreadPoolExecutor(args.workers) as pool:
            while done < args.count and time.monotonic() - start < args.seconds and proc.poll() is None:
                batch = min(args.probe_every, args.count - done)
                list(pool.map(one, range(done, done + batch)))
                done += batch
                if proc.poll() is not None:
                    break
                if probe(outbound, 10.0):
                    probes_ok += 1
                else:
                    probes_failed += 1
                    failures.append("liveness request failed after %d mutations" % done)
        elapsed = time.monotonic() - start
        stop.set()
        sampler.join()

        died = proc.poll() is not None
        if died:
            failures.append("weft-proxy exited with %s (log: %s)" % (proc.returncode, log_path))
        final = None
        if not died:
            for _ in range(30):  # let closed connections' buffers go back
                time.sleep(0.5)
                final = rss_kib(proc.pid)
                if final is not None and final - idle <= args.rss_slack * 1024:
                    break
            if final is None or final - idle > args.rss_slack * 1024:
                failures.append("RSS %s KiB after the run, idle was %d KiB (slack %g MiB)" % (final, idle, args.rss_slack))

        print("fuzz-proxy: seed %d, %d mutations in %.1f s (%d workers), %d liveness probes ok, %d failed"
              % (args.seed, done, elapsed, args.workers, probes_ok, probes_failed))
        print("sent per class:")
        for cls in sorted(sent):
            print("  %-24s %7d" % (cls, sent[cls]))
        print("outcomes:")
        for key in sorted(results):
            print("  %-24s %7d" % (key, results[key]))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/stats" % admin, timeout=5) as answer:
                for line in answer.read().decode().splitlines():
                    if line.startswith("outbound.http1.dormant:"):
                        print("idle keep-alive connections that went dormant: %s" % line.split(":")[1].strip())
        except OSError:
            pass
        print("RSS: idle %.1f MiB, max %.1f MiB, final %s MiB"
              % (idle / 1024, max_rss[0] / 1024, "%.1f" % (final / 1024) if final else "n/a"))
        if failures:
            print("FAILED (%d):" % len(failures))
            for f in failures[:20]:
                print("  " + f)
            return 1
        print("ok: the proxy never died, every connection was answered or closed, RSS back within %g MiB of idle"
              % args.rss_slack)
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        backend.shutdown()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
