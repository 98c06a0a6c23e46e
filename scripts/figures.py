#!/usr/bin/env python3
"""Regenerates the README's figures table from a benchmark run.

Usage: figures.py <criterion dir> <bench output dir> <README.md>

Reads benches/figures.json (one row per figure: what, target, command, and how the value is
computed from criterion's estimates), criterion's median estimates under <criterion dir>, the
`FIGURE <id>: <text>` lines the benches print (in <bench output dir>/<bench>.log) and the load
average recorded before each bench (<bench output dir>/loads), and rewrites the table between
`<!-- figures:begin -->` and `<!-- figures:end -->` in the README. A figure whose data is
missing says so; it is never carried over from an earlier run.
"""
import json
import os
import re
import sys


# Criterion results older than this (the start of the benchmark that should have written
# them) belong to an earlier run and are not used.
SINCE = [0.0]


def median_ns(criterion, bench_id):
    path = os.path.join(criterion, bench_id, "new", "estimates.json")
    try:
        if os.path.getmtime(path) < SINCE[0]:
            return None
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def elements(criterion, bench_id):
    path = os.path.join(criterion, bench_id, "new", "benchmark.json")
    try:
        with open(path) as f:
            t = json.load(f).get("throughput") or {}
        return t.get("Elements")
    except (OSError, ValueError):
        return None


def rate(criterion, bench_id):
    ns, n = median_ns(criterion, bench_id), elements(criterion, bench_id)
    if ns is None or not n:
        return None
    return n / (ns / 1e9)


def human_time(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.1f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def human_rate(r):
    return f"{r:,.0f}/s"


def value(row, criterion, logs):
    v = row["value"]
    kind = v["kind"]
    if kind == "time":
        ns = median_ns(criterion, v["id"])
        return None if ns is None else f"**{human_time(ns)}**"
    if kind == "rate":
        r = rate(criterion, v["id"])
        return None if r is None else f"**{human_rate(r)}**"
    if kind == "rate_ratio":
        a, b = rate(criterion, v["num"]), rate(criterion, v["den"])
        if a is None or b is None:
            return None
        return f"**{a / b:.2f}** ({human_rate(a)} vs {human_rate(b)})"
    if kind == "time_ratio":
        a, b = median_ns(criterion, v["num"]), median_ns(criterion, v["den"])
        if a is None or b is None:
            return None
        return f"**{a / b:.2f}** ({human_time(a)} vs {human_time(b)})"
    if kind == "line":
        text = logs.get(v["bench"], "")
        found = re.findall(rf"^FIGURE {re.escape(v['id'])}: (.*)$", text, re.M)
        return found[-1].strip() if found else None
    raise SystemExit(f"benches/figures.json: unknown kind {kind!r}")


def main():
    criterion, out, readme = sys.argv[1:4]
    with open("benches/figures.json") as f:
        rows = json.load(f)
    logs, loads = {}, {}
    for name in {r["bench"] for r in rows}:
        try:
            with open(os.path.join(out, f"{name}.log"), errors="replace") as f:
                logs[name] = f.read()
        except OSError:
            pass
    try:
        with open(os.path.join(out, "loads")) as f:
            for line in f:
                name, load, cores, started = line.rstrip("\n").split("|")
                loads[name] = (load, cores, float(started))
    except OSError:
        pass
    lines = [
        "| what | target | measured | load (1/5/15 min), cores | command |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        load, cores, started = loads.get(row["bench"], ("?", "?", float("inf")))
        SINCE[0] = started
        measured = value(row, criterion, logs) if row["bench"] in logs else None
        if measured is None:
            reason = "not run" if row["bench"] not in logs else "no result in its output"
            measured = f"not measured ({reason}: see `{row['bench']}.log`)"
        lines.append(
            f"| {row['what']} | {row['target']} | {measured} | {load}, {cores} | "
            f"`{row['command']}` |"
        )
    table = "\n".join(lines)
    with open(readme) as f:
        text = f.read()
    begin, end = "<!-- figures:begin -->", "<!-- figures:end -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{readme}: no {begin} ... {end} block to regenerate")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(readme, "w") as f:
        f.write(f"{head}{begin}\n{table}\n{end}{tail}")
    print(table)


if __name__ == "__main__":
    main()
