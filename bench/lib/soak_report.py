#!/usr/bin/env python3
"""soak.sh's summary, from a results folder (samples.csv, the load
generators' outputs, admin-page.json):

  soak_report.py RESULTS --warmup S --duration S --flat KIB_PER_MIN

Requests by kind and status (what was not expected, counted), RSS and open
fds of each keygate at start / after warm-up / end / max, the slope of RSS
over the second half (least squares, KiB/min) and a verdict line. Exit 1
when anything was unexpected or a slope is not flat.
"""
import argparse
import csv
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the clone
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import parse_h2load, parse_wrk  # noqa: E402

# kind -> the statuses that are right for it (None: h2load's classes, 2xx only)
WRK = {"good-h1": {200}, "good-tls": {200}, "wrong-key": {401}, "malformed": {400, 401}}


def slope(points):
    """Least-squares slope of (minutes, KiB) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def requests(res):
    """[(kind, status, count, expected?)], socket errors, load generator rows."""
    rows, errors = [], 0
    for kind, ok in WRK.items():
        path = os.path.join(res, kind + ".txt")
        if not os.path.exists(path):
            continue
        text = open(path).read()
        errors += parse_wrk(text)["sock_errors"]
        for code, n in re.findall(r"^status (\d+) (\d+)$", text, re.M):
            rows.append((kind, code, int(n), int(code) in ok))
    path = os.path.join(res, "good-h2.txt")
    if os.path.exists(path):
        r = parse_h2load(open(path).read(), None)
        errors += r["sock_errors"]
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", open(path).read())
        if m:
            for cls, n in zip(("2xx", "3xx", "4xx", "5xx"), map(int, m.groups())):
                if n or cls == "2xx":
                    rows.append(("good-h2", cls, n, cls == "2xx"))
    path = os.path.join(res, "admin-page.json")
    if os.path.exists(path):
        from soak_traffic import EXPECTED
        for k, n in sorted(json.load(open(path))["counts"].items()):
            kind, code = k.split()
            rows.append((kind, code, n, int(code) in EXPECTED[kind]))
    return rows, errors


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--warmup", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--flat", type=float, required=True)
    a = p.parse_args()
    samples = list(csv.DictReader(open(os.path.join(a.results, "samples.csv"))))
    if not samples:
        sys.exit("no samples")
    rows, errors = requests(a.results)
    unexpected = sum(n for *_, n, ok in rows if not ok)
    print("## Requests by kind and status\n")
    print("| kind | status | requests | expected |")
    print("|---|---|---:|---|")
    for kind, code, n, ok in rows:
        print(f"| {kind} | {code} | {n} | {'yes' if ok else '**no**'} |")
    print(f"\nTotal {sum(r[2] for r in rows)} requests, {unexpected} with an unexpected status, "
          f"{errors} connection errors or timeouts (load generators).\n")

    print("## Memory and file descriptors\n")
    print("| process | RSS start | RSS after warm-up | RSS end | RSS max | fd start | fd end | fd max | RSS slope, 2nd half |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    flat = True
    verdicts = []
    for proc in ("tls", "plain"):
        rss = [(float(s["elapsed_s"]), int(s[f"{proc}_rss_kib"])) for s in samples]
        fd = [int(s[f"{proc}_fd"]) for s in samples]
        warm = next((v for t, v in rss if t >= a.warmup), rss[-1][1])
        half = [(t / 60, v) for t, v in rss if t >= a.duration / 2]
        k = slope(half)
        ok = k < a.flat
        flat &= ok
        mib = lambda v: f"{v / 1024:.1f} MiB"  # noqa: E731
        print(f"| keygate {proc} | {mib(rss[0][1])} | {mib(warm)} | {mib(rss[-1][1])} | "
              f"{mib(max(v for _, v in rss))} | {fd[0]} | {fd[-1]} | {max(fd)} | {k:+.1f} KiB/min |")
        verdicts.append(f"{proc} {k:+.1f} KiB/min")
    redis = [int(s["redis_used_bytes"] or 0) for s in samples]
    keys = [int(s["redis_keys"] or 0) for s in samples]
    print(f"\nRedis used memory: {redis[0] / 1048576:.1f} MiB at start, {redis[-1] / 1048576:.1f} MiB at the end "
          f"(max {max(redis) / 1048576:.1f} MiB); keys {keys[0]} -> {keys[-1]}.\n")
    outcomes = {}
    for proc in ("tls", "plain"):
        path = os.path.join(a.results, f"metrics-{proc}.txt")
        text = open(path).read() if os.path.exists(path) else ""
        for name, label, n in re.findall(r'^keygate_(auth_total|cache_hits_total)(?:\{outcome="(\w+)"\})? (\d+)', text, re.M):
            key = label or "cache hits"
            outcomes[key] = outcomes.get(key, 0) + int(n)
    if outcomes:
        print("keygate's key checks (keygate_auth_total by outcome, both processes): "
              + ", ".join(f"{k} {n}" for k, n in outcomes.items() if n) + ".\n")
    verdict = "FLAT" if flat else "NOT FLAT"
    print(f"Verdict: RSS {verdict} over the second half ({', '.join(verdicts)}; flat: under {a.flat:g} KiB/min); "
          f"{unexpected} unexpected statuses.")
    sys.exit(0 if flat and unexpected == 0 else 1)


if __name__ == "__main__":
    main()
