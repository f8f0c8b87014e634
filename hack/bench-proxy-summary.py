#!/usr/bin/env python3
"""One markdown table from a run-anchors.sh result dir in which weft-proxy ran as `custom` (see hack/bench-proxy),
and/or hack/bench-proxy-mtls measured the mTLS pairs (targets `envoy-mtls`, `weft-mtls`).

usage: bench-proxy-summary.py RESULT_DIR [--h2-note TEXT] [--mtls-note TEXT]

Reads RESULT_DIR/summary.json (written by the harness's summarize.py: medians over reps) and env.txt, and prints
the anchors and weft side by side with weft ÷ Envoy and the targets: req/s >= Envoy's, p99 <= Envoy's, idle
RSS < 20 MiB; then, when the run has them, the two mTLS pairs with their own weft ÷ Envoy and targets. A cell the
run has no data for is "n/a"; runs with failed requests are marked.
"""
import argparse
import json
import math
import os
import re

NAMES = {"direct": "direct", "envoy": "Envoy", "nginx": "nginx", "haproxy": "HAProxy", "custom": "weft",
         "envoy-mtls": "Envoy mTLS pair", "weft-mtls": "weft mTLS pair"}
# Column groups: (the targets, weft's target, Envoy's target, the ratio column's and the target column's heads).
PLAINTEXT = (["envoy", "nginx", "haproxy", "custom"], "custom", "envoy", "weft ÷ Envoy", "target")
MTLS = (["envoy-mtls", "weft-mtls"], "weft-mtls", "envoy-mtls", "weft ÷ Envoy, mTLS", "target, mTLS")
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
    ap.add_argument("--mtls-note", default="")
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
    groups = []
    if present & {"custom", "envoy", "nginx", "haproxy"}:
        groups.append(([t for t in PLAINTEXT[0] if t in present or t == "custom"],) + PLAINTEXT[1:])
    if present & set(MTLS[0]):
        groups.append(MTLS)
    leading = ["direct"] if "direct" in present else []
    targets = leading + [t for g in groups for t in g[0]]

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

    head = ["metric"] + [NAMES.get(t, t) for t in leading]
    align = "|---|" + "---:|" * len(leading)
    for members, _, _, ratio_head, target_head in groups:
        head += [NAMES.get(t, t) for t in members] + [ratio_head, target_head]
        align += "---:|" * (len(members) + 1) + "---|"
    print("| " + " | ".join(head) + " |")
    print(align)
    any_errors = False
    shown = []
    for label, get, fmt, lower, target, added, proxies_only in rows:
        vals = {t: get(t) for t in targets}
        if not any(num(v) for t, (v, _) in vals.items() if not (t == "direct" and proxies_only)):
            continue  # no target has this metric (e.g. RSS in an mTLS-only run)
        shown.append(label)
        base = vals.get("direct", (None, 0))[0]

        def cell(t):
            nonlocal any_errors
            v, errs = vals[t]
            if t == "direct" and proxies_only:
                return "—"
            if not num(v):
                return "n/a"
            c = fmt(v)
            if added and t != "direct" and num(base):
                c += f" ({v - base:+,.0f})"
            if errs:
                c += f" ⚠ {errs:,} failed"
                any_errors = True
            return c

        cells = [cell(t) for t in leading]
        for members, weft_target, envoy_target, _, _ in groups:
            cells += [cell(t) for t in members]
            weft, envoy = vals[weft_target][0], vals.get(envoy_target, (None, 0))[0]
            ratio = weft / envoy if num(weft) and num(envoy) and envoy else None
            cells.append(f"{ratio:.2f}" if ratio is not None else "n/a")
            if target is None:
                verdict = ""
            elif target == "<MiB":
                verdict = f"< {IDLE_RSS_TARGET_MIB:.0f} MiB " + ("n/a" if not num(weft) else
                                                               "✅" if weft < IDLE_RSS_TARGET_MIB else "❌")
                if weft_target != "custom":
                    verdict = ""  # the idle RSS target is one proxy's; the pairs' RSS is not recorded
            else:
                want = "≥ Envoy" if target == ">=" else "≤ Envoy"
                ok = None if ratio is None else (ratio >= 1.0 if target == ">=" else ratio <= 1.0)
                if ok is not None and vals[weft_target][1]:
                    ok = False  # failed requests do not meet a target
                verdict = f"{want} " + ("n/a" if ok is None else "✅" if ok else "❌")
            cells.append(verdict)
        print(f"| {label} | " + " | ".join(cells) + " |")

    notes = [
        f"Medians of {params.get('REPS', '?')} rep(s) of {params.get('DUR', '?')} s, one worker thread each; "
        f"latency is client-side (h2load, {rate_conns} connections), (+n) = µs added over direct.",
    ]
    if any("RSS" in label for label in shown):
        notes.append(
            "RSS from /proc/PID/status of the proxy process: idle = 3 s after every target answered its first "
            "requests; VmRSS counts the mapped binary and shared libraries (RssAnon does not); 'direct' has no "
            "proxy.")
    if any(g is MTLS for g in groups):
        notes.append(
            "mTLS pairs: client → A (plaintext, as from the app) → mutual TLS 1.3 (SVIDs from one Weft CA, A checks "
            "B's SPIFFE ID; HTTP/1.1 over TLS, pooled) → B (requires a client certificate; weft: tls STRICT) → "
            "backend. Each proxy one worker thread; A, B and the backend share the SUT CPU; CPU µs/req is A + B; "
            "h2c rows: h2c from the client to A only. RSS is not recorded for the pairs.")
    if args.h2_note:
        notes.append(f"h2c: {args.h2_note}.")
    if args.mtls_note:
        notes.append(f"mTLS: {args.mtls_note}.")
    if any_errors:
        notes.append("⚠: requests failed in those runs (errors, timeouts or non-200); see summary.md.")
    print()
    for n in notes:
        print(f"- {n}")


if __name__ == "__main__":
    main()
