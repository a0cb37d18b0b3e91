"""The A/B table of BENCHMARKS.md from the `mixes` bench's output.

usage: python3 table.py mixes-new1-1.json mixes-base-1.json ...   (one file per run, in run order)
"""
import json
import os
import sys

# A stage gets a column when some run has it (`fetch` only in the runs of 2026-12-08); a run
# whose build did not time it shows `–`.
STAGES = ["fetch", "read", "rules", "claim", "prepare", "store"]
records = [
    (os.path.basename(path).removeprefix("mixes-").removesuffix(".json"), record)
    for path in sys.argv[1:]
    for record in json.load(open(path))
    if record["scenario"] == "mixes"
]
present = [s for s in STAGES if any(f"stage_{s}_passes" in r["values"] for _, r in records)]


def per_pass(v, stage):
    passes = v.get(f"stage_{stage}_passes")
    return f"{1000 * v[f'stage_{stage}_s'] / passes:.1f}" if passes else "–"


rows = {"mass-reset": [], "org": []}
for run, record in records:
    v = record["values"]
    # Events detected after the drive, over the time it took: how fast a backlog drains.
    drain = (v["events_acked"] - v["detected_during_drive_eps"] * v["drive_s"]) / v["catch_up_s"]
    stages = " / ".join(per_pass(v, s) for s in present)
    kib = v["disk_write_mib"] * 1024 / v["events_acked"]
    rows[record["label"]].append(
        f"| {run} | {record['label']} | {v['acked_eps']:,.0f} | {v['e2e_eps']:,.0f} | {drain:,.0f} "
        f"| {v['catch_up_s']:.1f} | {v['cpu_ms_per_1000_events']:.0f} "
        f"| {v['disk_write_mib']:,.0f} ({kib:.1f} KiB an event) | {stages} | {v['hwm_mib']:.0f} |"
    )
print("\n".join(rows["mass-reset"] + rows["org"]))
