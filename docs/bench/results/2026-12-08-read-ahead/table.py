"""The A/B table of BENCHMARKS.md from the `mixes` bench's output.

usage: python3 table.py mixes-new1-1.json mixes-base-1.json ...   (one file per run, in run order)
"""
import json
import os
import sys

STAGES = ["fetch", "read", "rules", "claim", "prepare", "store"]
rows = {"mass-reset": [], "org": []}
for path in sys.argv[1:]:
    run = os.path.basename(path).removeprefix("mixes-").removesuffix(".json")
    for record in json.load(open(path)):
        if record["scenario"] != "mixes":
            continue
        v = record["values"]
        # Events detected after the drive, over the time it took: how fast a backlog drains.
        drain = (v["events_acked"] - v["detected_during_drive_eps"] * v["drive_s"]) / v["catch_up_s"]
        stages = " / ".join(
            (f"{1000 * v[f'stage_{s}_s'] / v[f'stage_{s}_passes']:.1f}" if v.get(f'stage_{s}_passes') else '–') for s in STAGES
        )
        kib = v["disk_write_mib"] * 1024 / v["events_acked"]
        rows[record["label"]].append(
            f"| {run} | {record['label']} | {v['acked_eps']:,.0f} | {v['e2e_eps']:,.0f} | {drain:,.0f} "
            f"| {v['catch_up_s']:.1f} | {v['cpu_ms_per_1000_events']:.0f} "
            f"| {v['disk_write_mib']:,.0f} ({kib:.1f} KiB an event) | {stages} | {v['hwm_mib']:.0f} |"
        )
print("\n".join(rows["mass-reset"] + rows["org"]))
