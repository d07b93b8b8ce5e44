#!/usr/bin/env python3
"""Medians of load runs (the summary CSV `callvault loadgen --summary` appends to) and a plot.

Usage: tests/load/report.py SUMMARY.csv [PLOT.png]

Rows come in pairs, a baseline run then a callvault run under the same load (tests/load/compare.sh
writes them so); each pair gives one CPU ratio, and the table shows the median over the pairs of
each load. The plot (matplotlib, if installed) shows server CPU and peak RSS against concurrent
calls for both servers.
"""

import csv
import statistics
import sys
from collections import defaultdict


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def pairs(rows):
    """Consecutive (baseline, callvault) rows of the same load."""
    out = []
    for a, b in zip(rows, rows[1:]):
        same = (a["calls"], a["frames_per_write"]) == (b["calls"], b["frames_per_write"])
        if a["label"] == "baseline" and b["label"] == "callvault" and same:
            out.append((a, b))
    return out


def med(values):
    return statistics.median(values) if values else float("nan")


def main():
    rows = load(sys.argv[1])
    groups = defaultdict(list)
    for base, cv in pairs(rows):
        groups[(int(cv["calls"]), int(cv["frames_per_write"]))].append((base, cv))
    print(
        "| calls | frames per write | runs | baseline CPU (% of a core) | callvault CPU (% of a core) "
        "| CPU ratio | us per frame (baseline / callvault) | RSS per call, KiB (baseline / callvault) "
        "| load generator CPU (% of a core) | failed calls | recordings checked |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    series = defaultdict(list)
    for (calls, per_write), runs in sorted(groups.items()):
        f = lambda r, k: float(r[k])
        pct = lambda r: 100 * f(r, "server_cpu_s") / max(f(r, "hold_s"), 1e-9)
        ratio = med([f(cv, "server_cpu_s") / max(f(b, "server_cpu_s"), 1e-9) for b, cv in runs])
        failed = sum(int(cv["failed"]) for _, cv in runs)
        ok = sum(int(cv["verified_ok"]) for _, cv in runs)
        started = sum(int(cv["calls"]) for _, cv in runs)
        print(
            f"| {calls:,} | {per_write} | {len(runs)} "
            f"| {med([pct(b) for b, _ in runs]):.0f} | {med([pct(cv) for _, cv in runs]):.0f} "
            f"| {ratio:.2f} "
            f"| {med([f(b, 'cpu_us_per_frame') for b, _ in runs]):.1f} / "
            f"{med([f(cv, 'cpu_us_per_frame') for _, cv in runs]):.1f} "
            f"| {med([f(b, 'rss_kib_per_call') for b, _ in runs]):.0f} / "
            f"{med([f(cv, 'rss_kib_per_call') for _, cv in runs]):.0f} "
            f"| {med([100 * f(cv, 'loadgen_cpu_s') / max(f(cv, 'hold_s'), 1e-9) for _, cv in runs]):.0f} "
            f"| {failed} of {started} | {ok} of {started - failed} decrypted |"
        )
        for label, pick in (("baseline", 0), ("callvault", 1)):
            series[(label, per_write)].append(
                (
                    calls,
                    med([pct(r[pick]) for r in runs]),
                    med([f(r[pick], "rss_peak_kib") / 1024 for r in runs]),
                )
            )
    if len(sys.argv) < 3:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)", file=sys.stderr)
        return
    fig, (cpu, rss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (label, per_write), pts in sorted(series.items()):
        pts.sort()
        xs = [p[0] for p in pts]
        name = f"{label} ({per_write} frame{'s' if per_write > 1 else ''}/write)"
        style = "-o" if label == "callvault" else "--s"
        cpu.plot(xs, [p[1] for p in pts], style, label=name)
        rss.plot(xs, [p[2] for p in pts], style, label=name)
    for ax, title, unit in (
        (cpu, "server CPU over the hold", "% of one core"),
        (rss, "server peak RSS", "MiB"),
    ):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent stereo calls")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("callvault against the bare-receive baseline, same load, same run (median of runs)")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    print(f"plot: {sys.argv[2]}")


if __name__ == "__main__":
    main()
