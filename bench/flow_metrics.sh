#!/usr/bin/env bash
# Flow metrics' and the node graph's cost: records per CPU-second of podflow-collector with both on (the
# default with --metrics-listen: edges summed per batch, podflow_connection_* counters, the node graph's
# windowed store) against the same collector with --no-flow-metrics --no-service-map, on the same recorded IPFIX stream (attributed against an inventory,
# written as ECS NDJSON), replayed over loopback UDP. Prints each run, the medians and the ratio
# on/off, which should be at least 0.95; fails if a run dropped or lost a record. The harness is
# bench/collector_bench.py (see bench/COLLECTOR.md for the stream and how CPU is counted).
#
#   bench/flow_metrics.sh [--records N] [--loops N] [--rate DATAGRAMS_PER_S] [--rounds N]
#                         [--exporters N] [--pods N] [--peers N] [--seed S] [--work DIR]
#
# Defaults: a recording of 1,000,000 records from 16 node probes sent twice (2 million records per run)
# at 15,000 datagrams/s; 3 rounds, the order alternating; an inventory of 3,000 pods on 60 nodes, each
# workload talking to 4 others (--peers 0: any pod to any pod, nearly every record an edge of its own). Each
# run's NDJSON (about 2.5 GB) is removed after the run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

records=1000000 loops=2 rate=15000 rounds=3 exporters=16 pods=3000 peers=4 seed=1 work=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --records) records="$2"; shift 2 ;;
        --loops) loops="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --exporters) exporters="$2"; shift 2 ;;
        --pods) pods="$2"; shift 2 ;;
        --peers) peers="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "flow_metrics.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

command -v python3 >/dev/null || { echo "flow_metrics.sh: python3 not found" >&2; exit 1; }

cargo build --quiet --release -p podflow-collector -p podflow-bench-collector --bin podflow-collector \
    --bin collector-stream
target="${CARGO_TARGET_DIR:-$root/target}/release"

if [[ -z "$work" ]]; then
    work="$(mktemp -d -p "${TMPDIR:-/tmp}" podflow-flow-metrics-bench.XXXXXX)"
    trap 'if [[ $? -eq 0 ]]; then rm -rf "$work"; else echo "flow_metrics: kept $work" >&2; fi' EXIT
fi
mkdir -p "$work"

"$target/collector-stream" record --out "$work/stream.bin" --inventory "$work/inventory" \
    --records "$records" --exporters "$exporters" --pods "$pods" --peers "$peers" --seed "$seed" >"$work/summary.json"

out="$(python3 bench/collector_bench.py --stream "$work/stream.bin" --summary "$work/summary.json" \
    --inventory "$work/inventory" --work "$work" --podflow "$target/podflow-collector" \
    --stream-bin "$target/collector-stream" --rate "$rate" --loops "$loops" --rounds "$rounds" \
    --tools podflow,podflow-off | tee /dev/stderr)"
ratio="$(sed -n 's/^flow metrics on\/off: //p' <<<"$out")"
python3 -c "import sys; r = float(sys.argv[1]); print(f'ratio {r:.3f} (at least 0.95: {\"yes\" if r >= 0.95 else \"NO\"})'); sys.exit(0 if r >= 0.95 else 1)" "$ratio"
