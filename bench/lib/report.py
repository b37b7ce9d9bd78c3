#!/usr/bin/env python3
"""Parse load-generator output into JSON lines, and summarise them.

  report.py record --peer P --scenario S --rep N --tool wrk|h2load --raw FILE
                   [--h2log FILE] --cpu-before SNAP --cpu-after SNAP [--expect 200|401]
      -> one JSON object (run.sh appends it to runs.jsonl)
  report.py table runs.jsonl [--peers a,b] [--scenarios x,y] [--ref PEER]
      -> a Markdown table: medians over the repetitions, min-max, ratios
  report.py line < one JSON object          -> one progress line
  report.py idle SNAP SNAP                  -> exit 0 when both CPUs were < 15 % busy
  report.py requests wrk|h2load FILE        -> the number of requests completed
  report.py percentile P < numbers          -> the P-th percentile of one number a line
"""
import argparse
import json
import re
import statistics
import sys

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(v: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", v.strip())
    if not m:
        raise ValueError(v)
    return float(m.group(1)) * UNIT[m.group(2)]


def parse_cpu(snap: str) -> dict:
    out = {}
    for part in snap.strip().strip(";").split(";"):
        f = part.split()
        if len(f) >= 9:
            out[f[0]] = [int(x) for x in f[1:9]]
    return out


def cpu_usage(before: str, after: str) -> dict:
    """Busy % (all but idle and iowait) and steal % of each CPU between two snapshots."""
    b, a = parse_cpu(before), parse_cpu(after)
    res = {}
    for cpu in sorted(a):
        if cpu not in b:
            continue
        d = [y - x for x, y in zip(b[cpu], a[cpu])]
        total = sum(d) or 1
        n = cpu.replace("cpu", "")
        res[f"cpu{n}"] = round(100.0 * (total - d[3] - d[4]) / total, 1)
        res[f"steal{n}"] = round(100.0 * d[7] / total, 2)
    return res


def parse_wrk(text: str) -> dict:
    r = {"tool": "wrk"}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+),", text)
    r["requests"] = int(m.group(1)) if m else 0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)\s*$", text, re.M)
        if m:
            r[f"p{pct}_ms"] = round(to_ms(m.group(1)), 3)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["sock_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    r["ok2xx"] = r["requests"] - r["non2xx"]
    return r


def parse_h2load(text: str, logfile) -> dict:
    r = {"tool": "h2load"}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        _, _, done, _, _, errored, timeout = map(int, m.groups())
        r["requests"], r["sock_errors"] = done, errored + timeout
    else:
        r["requests"], r["sock_errors"] = 0, 0
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        c2, c3, c4, c5 = map(int, m.groups())
        r["ok2xx"], r["non2xx"] = c2, c3 + c4 + c5
    else:
        r["ok2xx"], r["non2xx"] = 0, r["requests"]
    if logfile:
        try:
            with open(logfile) as fh:
                lat = sorted(int(f[2]) / 1000.0 for f in (l.split("\t") for l in fh) if len(f) >= 3)
        except FileNotFoundError:
            lat = []
        for pct in (50, 99):
            if lat:
                r[f"p{pct}_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * pct / 100))], 3)
    return r


def cmd_record(a) -> None:
    text = open(a.raw, errors="replace").read()
    r = parse_wrk(text) if a.tool == "wrk" else parse_h2load(text, a.h2log)
    r.update(peer=a.peer, scenario=a.scenario, rep=a.rep, expect=a.expect, raw=a.raw)
    r.update(cpu_usage(a.cpu_before, a.cpu_after))
    if r.get("rps") and "cpu0" in r:
        # CPU time spent on the proxy's core per request
        r["cpu0_us_per_req"] = round(r["cpu0"] / 100.0 * 1e6 / r["rps"], 1)
    problems = []
    if not r.get("rps"):
        problems.append("no result")
    if a.expect == 200 and r.get("non2xx"):
        problems.append(f"{r['non2xx']} non-2xx")
    if a.expect == 401 and r.get("ok2xx"):
        problems.append(f"{r['ok2xx']} accepted bad keys")
    if r.get("sock_errors"):
        problems.append(f"{r['sock_errors']} socket errors")
    r["problems"] = problems
    print(json.dumps(r))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, nd=0):
    if v is None:
        return "–"
    if nd == 0:
        return f"{v:,.0f}" if abs(v) >= 10 or v == 0 else f"{v:.2f}"
    return f"{v:.{nd}f}"


def inflight(s: str) -> int:
    m = re.search(r"c(\d+)(?:m(\d+))?", s)
    return int(m.group(1)) * int(m.group(2) or 1) if m else 64


def split(v):
    """Lists are newline-separated (peer specs may hold commas), else comma-separated."""
    return [x for x in (v.split("\n") if "\n" in v else v.split(",")) if x]


def cmd_table(a) -> None:
    rows = [json.loads(l) for l in open(a.runs) if l.strip()]
    peers = split(a.peers) if a.peers else list(dict.fromkeys(r["peer"] for r in rows))
    scens = split(a.scenarios) if a.scenarios else list(dict.fromkeys(r["scenario"] for r in rows))
    agg = {}
    for r in rows:
        agg.setdefault((r["peer"], r["scenario"]), []).append(r)

    def m(peer, scen, key):
        rs = agg.get((peer, scen))
        return med([x.get(key) for x in rs]) if rs else None

    out = ["| peer | scenario | req/s median | min–max (n) | ×direct | ×nginx-noauth | p50 ms | p99 ms "
           f"| proxy-core µs/req | µs ÷ {a.ref} | cpu0 % | cpu1 % | notes |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in peers:
        for s in scens:
            rs = agg.get((p, s))
            if not rs:
                continue
            rps = [x["rps"] for x in rs if x.get("rps") is not None]
            mr = med(rps)
            dref = m("direct", f"h1-c{inflight(s)}", "rps")
            nref = m("nginx-noauth", s, "rps")
            us, uref = m(p, s, "cpu0_us_per_req"), m(a.ref, s, "cpu0_us_per_req")
            notes = sorted({pr for x in rs for pr in x.get("problems", [])})
            st = med([max(x.get("steal0", 0), x.get("steal1", 0)) for x in rs])
            if st and st >= 1:
                notes.append(f"steal {st:.1f}%")
            out.append("| " + " | ".join([
                p, s, fmt(mr),
                f"{fmt(min(rps)) if rps else '–'}–{fmt(max(rps)) if rps else '–'} ({len(rps)})",
                fmt(mr / dref, 2) if (mr and dref) else "–",
                fmt(mr / nref, 2) if (mr and nref and p != "nginx-noauth") else "–",
                fmt(m(p, s, "p50_ms"), 2), fmt(m(p, s, "p99_ms"), 2),
                fmt(us, 1) if p != "direct" else "–",
                fmt(us / uref, 2) if (us and uref and p not in ("direct", a.ref)) else "–",
                fmt(m(p, s, "cpu0"), 0), fmt(m(p, s, "cpu1"), 0),
                "; ".join(notes),
            ]) + " |")
    print("\n".join(out))


def cmd_line(a) -> None:
    r = json.loads(sys.stdin.readline())
    print(f"{r['peer']:>14} {r['scenario']:<10} r{r['rep']} {r.get('rps') or 0:>9.0f} req/s"
          f" p50={r.get('p50_ms', '-')}ms p99={r.get('p99_ms', '-')}ms"
          f" cpu0={r.get('cpu0')}% cpu1={r.get('cpu1')}% {' '.join(r['problems'])}")


def cmd_idle(a) -> None:
    busy = cpu_usage(a.before, a.after)
    sys.exit(0 if all(v <= 15 for k, v in busy.items() if k.startswith("cpu")) else 1)


def cmd_requests(a) -> None:
    text = open(a.raw, errors="replace").read()
    print((parse_wrk(text) if a.tool == "wrk" else parse_h2load(text, None))["requests"])


def cmd_percentile(a) -> None:
    xs = sorted(float(l) for l in sys.stdin if l.strip())
    print(f"{xs[min(len(xs) - 1, int(len(xs) * a.p / 100))]:.2f}" if xs else "–")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--peer", required=True)
    r.add_argument("--scenario", required=True)
    r.add_argument("--rep", type=int, required=True)
    r.add_argument("--tool", choices=["wrk", "h2load"], required=True)
    r.add_argument("--raw", required=True)
    r.add_argument("--h2log")
    r.add_argument("--cpu-before", required=True)
    r.add_argument("--cpu-after", required=True)
    r.add_argument("--expect", type=int, default=200)
    t = sub.add_parser("table")
    t.add_argument("runs")
    t.add_argument("--peers")
    t.add_argument("--scenarios")
    t.add_argument("--ref", default="nginx-auth", help="the peer of the µs ÷ column")
    sub.add_parser("line")
    i = sub.add_parser("idle")
    i.add_argument("before")
    i.add_argument("after")
    q = sub.add_parser("requests")
    q.add_argument("tool", choices=["wrk", "h2load"])
    q.add_argument("raw")
    p = sub.add_parser("percentile")
    p.add_argument("p", type=float)
    a = ap.parse_args()
    {"record": cmd_record, "table": cmd_table, "line": cmd_line, "idle": cmd_idle,
     "requests": cmd_requests, "percentile": cmd_percentile}[a.cmd](a)


if __name__ == "__main__":
    main()
