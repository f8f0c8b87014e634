#!/usr/bin/env python3
"""One markdown table from a run-anchors.sh result dir in which weft-proxy ran as `custom` (see hack/bench-proxy).

usage: bench-proxy-summary.py RESULT_DIR [--h2-note TEXT]

Reads RESULT_DIR/summary.json (written by the harness's summarize.py: medians over reps) and env.txt, and prints
the anchors and weft side by side with weft ÷ Envoy and the targets: req/s >= Envoy's, p99 <= Envoy's, idle
RSS < 20 MiB. A cell the run has no data for is "n/a"; runs with failed requests are marked.
"""
import argparse
import json
import math
import os
import re

NAMES = {"direct": "direct", "envoy": "Envoy", "nginx": "nginx", "haproxy": "HAProxy", "custom": "weft"}
IDLE_RSS_TARGET_MIB = 20.0


def num(x):
    return x is not None and isinstance(x, (int, float)) and not math.isnan(x)


def fmt_rps(x):
    return f"{x:,.0f}"


def fmt_us(x):
    return f"{x / 1000:.2f} ms" if x >= 10000 else f"{x:,.0f} µs"


def fmt_mib(x):
    return f"{x:.1f} MiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--h2-note", default="")
    args = ap.parse_args()

    with open(os.path.join(args.outdir, "summary.json")) as f:
        summary = json.load(f)
    agg, rss = summary.get("agg", {}), summary.get("rss", {})
    params = {}
    env_path = os.path.join(args.outdir, "env.txt")
    if os.path.exists(env_path):
        for line in open(env_path):
            if line.startswith("params:"):
                params = dict(kv.split("=", 1) for kv in line.split()[1:])
    conns, rate = params.get("CONNS", "64"), int(params.get("RATE", "2000"))
    rate_conns = params.get("RATE_CONNS", "16")

    present = {k.split("/")[0] for k in agg} | set(rss)
    targets = [t for t in ("direct", "envoy", "nginx", "haproxy") if t in present] + ["custom"]

    def value(t, kind, key):
        a = agg.get(f"{t}/{kind}")
        return (a.get(key), a.get("errors", 0)) if a else (None, 0)

    def rss_mib(t, phase, key):
        r = rss.get(t, {}).get(phase)
        return r[key] / 1024 if r else None

    # (label, getter(target) -> (value, errors), formatter, lower_is_better, target: None | ">=" | "<=" | "<MiB",
    #  show added latency over direct, proxies only)
    rows = [
        (f"HTTP/1.1 req/s, {conns} connections (wrk)", lambda t: value(t, "wrk", "rps"), fmt_rps, False, ">=",
         False, False),
        (f"HTTP/1.1 p50 at {rate:,} req/s, smooth arrivals", lambda t: value(t, "h2load-h1-smooth", "p50"), fmt_us,
         True, None, True, False),
        (f"HTTP/1.1 p99 at {rate:,} req/s, smooth arrivals", lambda t: value(t, "h2load-h1-smooth", "p99"), fmt_us,
         True, "<=", True, False),
        ("HTTP/1.1 proxy CPU µs/req at max", lambda t: value(t, "wrk", "proxy_us_per_req"), lambda x: f"{x:.1f}",
         True, None, False, True),
        ("h2c req/s, 16 connections × 10 streams", lambda t: value(t, "h2load-h2-max", "rps"), fmt_rps, False, ">=",
         False, False),
        (f"h2c p50 at {rate:,} req/s, bursty arrivals", lambda t: value(t, "h2load-h2-rate", "p50"), fmt_us, True,
         None, True, False),
        (f"h2c p99 at {rate:,} req/s, bursty arrivals", lambda t: value(t, "h2load-h2-rate", "p99"), fmt_us, True,
         "<=", True, False),
        ("idle RSS (VmRSS)", lambda t: (rss_mib(t, "idle", "rss_kb"), 0), fmt_mib, True, "<MiB", False, True),
        ("idle RSS, anonymous only (RssAnon)", lambda t: (rss_mib(t, "idle", "anon_kb"), 0), fmt_mib, True, None,
         False, True),
        ("loaded RSS (peak VmHWM over all runs)", lambda t: (rss_mib(t, "after-all", "hwm_kb"), 0), fmt_mib, True,
         None, False, True),
    ]

    head = ["metric"] + [NAMES.get(t, t) for t in targets] + ["weft ÷ Envoy", "target"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(targets) + 1) + "---|")
    any_errors = False
    for label, get, fmt, lower, target, added, proxies_only in rows:
        cells = []
        vals = {t: get(t) for t in targets}
        base = vals.get("direct", (None, 0))[0]
        for t in targets:
            v, errs = vals[t]
            if t == "direct" and proxies_only:
                cells.append("—")
                continue
            if not num(v):
                cells.append("n/a")
                continue
            c = fmt(v)
            if added and t != "direct" and num(base):
                c += f" ({v - base:+,.0f})"
            if errs:
                c += f" ⚠ {errs:,} failed"
                any_errors = True
            cells.append(c)
        weft, envoy = vals["custom"][0], vals.get("envoy", (None, 0))[0]
        ratio = weft / envoy if num(weft) and num(envoy) and envoy else None
        cells.append(f"{ratio:.2f}" if ratio is not None else "n/a")
        if target is None:
            verdict = ""
        elif target == "<MiB":
            verdict = f"< {IDLE_RSS_TARGET_MIB:.0f} MiB " + ("n/a" if not num(weft) else
                                                           "✅" if weft < IDLE_RSS_TARGET_MIB else "❌")
        else:
            want = "≥ Envoy" if target == ">=" else "≤ Envoy"
            ok = None if ratio is None else (ratio >= 1.0 if target == ">=" else ratio <= 1.0)
            if ok is not None and vals["custom"][1]:
                ok = False  # failed requests do not meet a target
            verdict = f"{want} " + ("n/a" if ok is None else "✅" if ok else "❌")
        cells.append(verdict)
        print(f"| {label} | " + " | ".join(cells) + " |")

    notes = [
        f"Medians of {params.get('REPS', '?')} rep(s) of {params.get('DUR', '?')} s, one worker thread each; "
        f"latency is client-side (h2load, {rate_conns} connections), (+n) = µs added over direct.",
        "RSS from /proc/PID/status of the proxy process: idle = 3 s after every target answered its first "
        "requests; VmRSS counts the mapped binary and shared libraries (RssAnon does not); 'direct' has no proxy.",
    ]
    if args.h2_note:
        notes.append(f"h2c: {args.h2_note}.")
    if any_errors:
        notes.append("⚠: requests failed in those runs (errors, timeouts or non-200); see summary.md.")
    print()
    for n in notes:
        print(f"- {n}")


if __name__ == "__main__":
    main()
