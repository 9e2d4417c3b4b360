#!/usr/bin/env bash
# Collector throughput: records per CPU-second of podflow-collector (ECS NDJSON, attributing against an
# inventory of a few thousand pods when it has --inventory), nfcapd (binary files) and nfacctd (print
# plugin, JSON) on the same recorded IPFIX stream, replayed over loopback UDP at a rate none of them
# drops. Prints each run, the medians and the ratios podflow/nfacctd and podflow/nfcapd; fails if any tool
# dropped or lost a record. See bench/COLLECTOR.md.
#
#   bench/collector-throughput.sh [--records N] [--loops N] [--rate DATAGRAMS_PER_S] [--rounds N]
#                                 [--exporters N] [--pods N] [--seed S] [--tools LIST] [--work DIR]
#
# Defaults: a recording of 2,500,000 records from 16 node probes sent 8 times (20 million records,
# about 1.9 million datagrams) at 15,000 datagrams/s (about 160,000 records/s); 3 rounds, the tools'
# order rotating; an inventory of 3,000 pods on 60 nodes. The recording and the tools' output go to a
# temporary directory under $TMPDIR (default /tmp; the same disk for every tool), removed at the end;
# podflow's NDJSON of 20 million records takes about 25 GB while it runs.
# Needs: nfdump (nfcapd), pmacct (nfacctd), python3.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

records=2500000 loops=8 rate=15000 rounds=3 exporters=16 pods=3000 seed=1
tools=podflow,nfcapd,nfacctd work=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --records) records="$2"; shift 2 ;;
        --loops) loops="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --exporters) exporters="$2"; shift 2 ;;
        --pods) pods="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --tools) tools="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "collector-throughput.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

for tool in nfcapd nfacctd python3; do
    command -v "$tool" >/dev/null || {
        echo "collector-throughput.sh: $tool not found (apt-get install nfdump pmacct python3)" >&2
        exit 1
    }
done

cargo build --quiet --release -p podflow-collector -p podflow-bench-collector --bin podflow-collector \
    --bin collector-stream
target="${CARGO_TARGET_DIR:-$root/target}/release"

if [[ -z "$work" ]]; then
    work="$(mktemp -d -p "${TMPDIR:-/tmp}" podflow-collector-bench.XXXXXX)"
    # Removed when the run succeeds; a failed run keeps the failing tool's output (and the stream) to
    # look at, and says where.
    trap 'if [[ $? -eq 0 ]]; then rm -rf "$work"; else echo "collector-throughput: kept $work" >&2; fi' EXIT
fi
mkdir -p "$work"

"$target/collector-stream" record --out "$work/stream.bin" --inventory "$work/inventory" \
    --records "$records" --exporters "$exporters" --pods "$pods" --seed "$seed" >"$work/summary.json"

python3 bench/collector_bench.py --stream "$work/stream.bin" --summary "$work/summary.json" \
    --inventory "$work/inventory" --work "$work" --podflow "$target/podflow-collector" \
    --stream-bin "$target/collector-stream" --rate "$rate" --loops "$loops" --rounds "$rounds" --tools "$tools"
