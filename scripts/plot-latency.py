#!/usr/bin/env python3
"""Plots acknowledgement latency (p50, p99, p99.9) against offered load from the load generator's
latency.csv (medians over runs), for factorwatch and the no-op baseline, as a PNG.

    scripts/plot-latency.py target/bench-results/latency.csv docs/bench/latency.png

Needs matplotlib (pip install matplotlib); scripts/bench.sh installs it when missing.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display on a bench machine
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    series = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            series.setdefault(row["server"], []).append(row)
    for rows in series.values():
        rows.sort(key=lambda r: float(r["offered_eps"]))
    return series


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot-latency.py LATENCY_CSV OUTPUT_PNG")
    series = read(sys.argv[1])
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    colours = {"factorwatch": "tab:blue", "noop": "tab:gray"}
    styles = {"p50_ms": (":", "o", "p50"), "p99_ms": ("-", "s", "p99"), "p999_ms": ("--", "^", "p99.9")}
    for server, rows in series.items():
        x = [float(r["offered_eps"]) for r in rows]
        for column, (line, marker, name) in styles.items():
            y = [float(r[column]) for r in rows]
            label = f"{'no-op axum handler' if server == 'noop' else server} {name}"
            ax.plot(x, y, linestyle=line, marker=marker, color=colours.get(server), label=label)
    ax.axhline(10, color="tab:red", linewidth=0.8, alpha=0.6)
    ax.text(110, 11, "target p99 at 1,000 events/s: 10 ms", color="tab:red", fontsize=8)
    ax.axhline(100, color="tab:red", linewidth=0.8, alpha=0.6)
    right = max(float(r["offered_eps"]) for rows in series.values() for r in rows)
    ax.text(right, 110, "target p99 at 80% of saturation: 100 ms", color="tab:red", fontsize=8,
            ha="right")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, events/s (10-event envelopes, open loop)")
    ax.set_ylabel("acknowledgement latency, ms (from the intended send time)")
    ax.set_title("factorwatch serve, durable acknowledgement: latency against offered load\n"
                 "2 cores shared with the load generator; medians over runs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
