#!/usr/bin/env python3
"""Memory of idle downstream connections (run through hack/idle-connections; stdlib only).

Starts the echo backend and a weft-proxy as fuzz_proxy.py does, then opens --connections keep-alive HTTP/1.1
connections to the outbound listener, each serving one request (so the proxy holds a decoded, idle HTTP/1.1
connection), and keeps them open. Prints the proxy's RSS before, with all of them open, and after closing
them. Bounded: every socket has a timeout, and the run stops at --seconds.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_proxy as fp  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--proxy-arg", action="append", default=[], help="one more weft-proxy argument (repeatable)")
    args = ap.parse_args()

    backend = fp.EchoServer(("127.0.0.1", 0), fp.Echo)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    outbound, inbound, admin = fp.free_ports(3)
    tmp = tempfile.mkdtemp(prefix="weft-idle-")
    config = os.path.join(tmp, "proxy.json")
    fp.write_config(config, outbound, backend.server_address[1])
    log = open(os.path.join(tmp, "weft-proxy.log"), "wb")
    proc = subprocess.Popen([args.proxy, "--config", config, "--outbound-port", str(outbound), "--inbound-port",
                             str(inbound), "--admin-port", str(admin), "--concurrency", "1", "--log-level", "error",
                             "--max-connections", str(args.connections + 100)] + args.proxy_arg,
                            stdout=log, stderr=subprocess.STDOUT)
    socks = []
    try:
        for _ in range(200):
            if fp.probe(outbound, 1.0):
                break
            time.sleep(0.05)
        for _ in range(200):
            fp.probe(outbound, 5.0)
        time.sleep(1.0)
        idle = fp.rss_kib(proc.pid)
        idle_anon = (fp.rss_kib(proc.pid, "RssAnon") or 0)
        start, failed = time.monotonic(), 0
        request = b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n"
        while len(socks) + failed < args.connections and time.monotonic() - start < args.seconds:
            try:
                s = socket.create_connection(("127.0.0.1", outbound), timeout=10)
                s.sendall(request)
                data = b""
                while not fp.complete_h1(data):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if fp.status_h1(data) != "200":
                    failed += 1
                    s.close()
                    continue
                socks.append(s)
            except OSError:
                failed += 1
        time.sleep(2.0)
        held = fp.rss_kib(proc.pid)
        held_anon = (fp.rss_kib(proc.pid, "RssAnon") or 0)
        alive = fp.probe(outbound, 10.0)
        for s in socks:
            s.close()
        n = len(socks)
        socks = []
        time.sleep(3.0)
        after = fp.rss_kib(proc.pid)
        print("idle-connections: %d open (%d failed) in %.1f s, a request through the proxy with all open: %s"
              % (n, failed, time.monotonic() - start, "ok" if alive else "FAILED"))
        print("RSS: before %.1f MiB, with %d idle connections %.1f MiB (+%.1f MiB, %.1f KiB each), after closing %.1f MiB"
              % (idle / 1024, n, held / 1024, (held - idle) / 1024, (held - idle) / max(1, n), after / 1024))
        print("of which anonymous memory (RssAnon: heap and malloc's overhead): %.1f KiB each"
              % ((held_anon - idle_anon) / max(1, n)))
        return 0 if alive and failed == 0 else 1
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        backend.shutdown()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
