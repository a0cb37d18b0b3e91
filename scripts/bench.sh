#!/usr/bin/env bash
# Reproduces BENCHMARKS.md with one command: builds the release binaries, runs every load scenario
# (RUNS times, medians), the ten-million-event memory run, the System Log poller against the Okta
# stand-in (a day at Okta's ceiling of 400,000 events), the detection criterion bench, and
# plots ack latency against offered load into docs/bench/latency.png. About 60 to 70 minutes on
# the 2-core machine; every step is bounded by `timeout`. Results go to target/bench-results/.
#
#   scripts/bench.sh                          # everything, as in BENCHMARKS.md
#   RUNS=1 LONG_EVENTS=1000000 scripts/bench.sh   # a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/bench-results}
RUNS=${RUNS:-3}
LONG_EVENTS=${LONG_EVENTS:-10000000}
mkdir -p "$OUT"

echo "== machine"
{ echo "nproc: $(nproc)"; free -m | sed -n 2p; echo "loadavg: $(cat /proc/loadavg)"; } | tee "$OUT/machine.txt"

echo "== services: NATS JetStream on 127.0.0.1:4222 (end-to-end scenario)"
scripts/local-services.sh

echo "== build (release profile)"
cargo bench --locked --no-run

echo "== load: every scenario, $RUNS runs"
timeout 1500 cargo bench --locked --bench load -- all --runs "$RUNS" --out "$OUT"

echo "== load: RSS over $LONG_EVENTS events"
timeout 2700 cargo bench --locked --bench load -- long --events "$LONG_EVENTS" --out "$OUT"

echo "== System Log poller: a day of System Log at Okta's ceiling, $RUNS runs"
timeout 1200 cargo bench --locked --bench load -- poller --runs "$RUNS" --out "$OUT"

echo "== responses: POST of an MFA reset to the action in the Okta stand-in, $RUNS runs"
timeout 900 cargo bench --locked --bench load -- responses --runs "$RUNS" --out "$OUT"

echo "== mixes (issue 23): end to end on a mass reset and an org of 400,000 users, memory with a million users, $RUNS runs"
timeout 3600 cargo bench --locked --bench load -- mixes --runs "$RUNS" --out "$OUT"

echo "== detection alone (criterion)"
timeout 600 cargo bench --locked --bench detection 2>&1 | tee "$OUT/detection.txt"

echo "== plot"
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib
mkdir -p docs/bench
python3 scripts/plot-latency.py "$OUT/latency.csv" docs/bench/latency.png

echo "== done: $OUT/summary.md, $OUT/long.json, $OUT/poller-summary.md, $OUT/responses-summary.md, $OUT/mixes-summary.md, $OUT/detection.txt, docs/bench/latency.png"
