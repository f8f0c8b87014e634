#!/usr/bin/env python3
"""gRPC test peer for the Weft proxy integration tests (needs only `grpcio`).

No protoc, no generated code: every message is raw bytes (UTF-8 text).

Server:
    python3 grpc_peer.py server [--port 0] [--name NAME]

    Serves insecure HTTP/2 (h2c) on 127.0.0.1, prints exactly one line
    `READY <port>` on stdout once serving, runs until SIGTERM/SIGINT.
    Service `weft.test.Echo`:
      Unary         -> "NAME:" + request
      ServerStream  -> request is an integer N; streams "NAME:0" .. "NAME:N-1"
      ClientStream  -> "NAME:" + ",".join(requests)
      Bidi          -> "NAME:" + m for each request m, answered immediately
    Request metadata (all methods):
      x-sleep-ms: N   Unary: sleep before answering; ServerStream: sleep
                      between messages. Stops early if the call is cancelled
                      or its deadline expires.
      x-status: CODE  after the normal work, fail with gRPC status CODE and
                      details "requested" (0 means OK).
      x-weft-test: V  echoed back as trailing metadata `x-echo-weft-test: V`.
    Every call gets initial metadata `x-peer-name: NAME` and trailing
    metadata `x-served-by: NAME`.

Client:
    python3 grpc_peer.py client --target 127.0.0.1:PORT [--authority HOST]
        --method unary|server-stream|client-stream|bidi
        [--message TEXT]... [--timeout SECONDS] [--metadata k=v]...

    Makes one call over insecure h2c (grpc retries and HTTP proxies disabled;
    --authority sets the :authority header) and prints one JSON line:
      {"code": "OK", "details": "...", "responses": [...],
       "initial": {...}, "trailing": {...}}
    `code` is the grpc.StatusCode name. Exit code 0 whenever a call was made,
    2 on usage errors. unary/server-stream send the single --message (default
    ""); bidi sends each --message and waits for its answer before the next.
"""
import argparse
import json
import queue
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "weft.test.Echo"


# ---------------------------------------------------------------- server

def serve(args):
    name = args.name

    def prologue(context):
        """Sends initial metadata, sets trailing metadata, returns (sleep_s, status)."""
        md = dict(context.invocation_metadata())
        context.send_initial_metadata((("x-peer-name", name),))
        trailing = [("x-served-by", name)]
        if "x-weft-test" in md:
            trailing.append(("x-echo-weft-test", md["x-weft-test"]))
        context.set_trailing_metadata(tuple(trailing))
        return int(md.get("x-sleep-ms", "0")) / 1000.0, md.get("x-status")

    def sleep(context, seconds):
        """Sleeps, returns False early if the call is no longer active."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not context.is_active():
                return False
            time.sleep(min(0.01, max(0.0, end - time.monotonic())))
        return context.is_active()

    def finish(context, status):
        if status is not None and int(status) != 0:
            code = next((c for c in grpc.StatusCode if c.value[0] == int(status)),
                        grpc.StatusCode.UNKNOWN)
            context.abort(code, "requested")

    def reply(data):
        return name.encode() + b":" + data

    def unary(request, context):
        delay, status = prologue(context)
        if not sleep(context, delay):
            return b""  # cancelled / deadline exceeded: nobody is listening
        finish(context, status)
        return reply(request)

    def server_stream(request, context):
        delay, status = prologue(context)
        try:
            n = int(request.decode())
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request must be an integer")
        for i in range(n):
            if i > 0 and not sleep(context, delay):
                return
            yield reply(str(i).encode())
        finish(context, status)

    def client_stream(request_iterator, context):
        _, status = prologue(context)
        joined = b",".join(request_iterator)
        finish(context, status)
        return reply(joined)

    def bidi(request_iterator, context):
        _, status = prologue(context)
        for m in request_iterator:
            yield reply(m)
        finish(context, status)

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         handlers=[handler], options=[("grpc.so_reuseport", 0)])
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if port == 0:
        sys.exit(f"grpc_peer: cannot bind 127.0.0.1:{args.port}")
    server.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"READY {port}", flush=True)
    while not stop.wait(1.0):
        pass
    server.stop(grace=0.5).wait()


# ---------------------------------------------------------------- client

def md_dict(md):
    out = {}
    for k, v in md or ():
        out[k] = v.decode("latin-1") if isinstance(v, bytes) else v
    return out


def run_client(args, parser):
    if args.method in ("unary", "server-stream") and len(args.message) > 1:
        parser.error(f"--method {args.method} takes at most one --message")
    metadata = []
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--metadata expects k=v, got {item!r}")
        metadata.append((key.lower(), value))

    options = [("grpc.enable_retries", 0), ("grpc.enable_http_proxy", 0)]
    if args.authority:
        options.append(("grpc.default_authority", args.authority))
    messages = [m.encode() for m in args.message]
    kw = {"timeout": args.timeout, "metadata": metadata}
    responses = []
    call = None

    with grpc.insecure_channel(args.target, options=options) as channel:
        try:
            if args.method == "unary":
                resp, call = channel.unary_unary(f"/{SERVICE}/Unary").with_call(
                    messages[0] if messages else b"", **kw)
                responses.append(resp)
            elif args.method == "client-stream":
                resp, call = channel.stream_unary(f"/{SERVICE}/ClientStream").with_call(
                    iter(messages), **kw)
                responses.append(resp)
            elif args.method == "server-stream":
                call = channel.unary_stream(f"/{SERVICE}/ServerStream")(
                    messages[0] if messages else b"", **kw)
                for resp in call:
                    responses.append(resp)
            else:  # bidi: strict ping-pong through a queue-fed request iterator
                outbox = queue.Queue()
                call = channel.stream_stream(f"/{SERVICE}/Bidi")(
                    iter(outbox.get, None), **kw)
                try:
                    for m in messages:
                        outbox.put(m)
                        responses.append(next(call))
                finally:
                    outbox.put(None)  # half-close
                for resp in call:
                    responses.append(resp)
        except grpc.RpcError as err:
            call = err  # the raised error is also a grpc.Call
        except StopIteration:
            pass  # bidi: server closed before answering every message

        result = {
            "code": call.code().name,
            "details": call.details() or "",
            "responses": [r.decode("utf-8", "replace") for r in responses],
            "initial": md_dict(call.initial_metadata()),
            "trailing": md_dict(call.trailing_metadata()),
        }
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description="gRPC test peer for Weft proxy tests")
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--name", default="server")
    c = sub.add_parser("client")
    c.add_argument("--target", required=True)
    c.add_argument("--authority")
    c.add_argument("--method", required=True,
                   choices=["unary", "server-stream", "client-stream", "bidi"])
    c.add_argument("--message", action="append", default=[])
    c.add_argument("--timeout", type=float)
    c.add_argument("--metadata", action="append", default=[])
    args = parser.parse_args()
    if args.mode == "server":
        serve(args)
    else:
        run_client(args, c)


if __name__ == "__main__":
    main()
