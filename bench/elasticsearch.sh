#!/usr/bin/env bash
# The Elasticsearch sink's cost: records per CPU-second of podflow-collector writing its documents to a
# real OpenSearch 2.19 node (--elasticsearch, _bulk) against the same collector writing NDJSON, on the
# same recorded IPFIX stream (attributed against an inventory), replayed over loopback UDP. Prints each
# run, the medians, the node's own CPU (apart), and the ratio, which should be at least 0.85; fails if a
# run lost a record or the data stream's _count is not the records sent. The harness is
# bench/collector_bench.py (see bench/COLLECTOR.md for the stream and how CPU is counted).
#
#   bench/elasticsearch.sh [--records N] [--loops N] [--rate DATAGRAMS_PER_S] [--rounds N]
#                          [--exporters N] [--pods N] [--seed S] [--work DIR]
#
# Defaults: a recording of 300,000 records from 16 node probes sent once, at 400 datagrams/s (about
# 4,300 records/s); 3 rounds, the order alternating; an inventory of 3,000 pods. The rate is one that an
# OpenSearch node with a 1 GiB heap keeps up with on the 2-core machine, sharing it with the collector:
# beyond what the node indexes, the sink spools (as it should) and the run measures the spool's
# writes and read-back rather than the sink. The node is started by scripts/opensearch.sh in the work
# directory and stopped at the end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

records=300000 loops=1 rate=400 rounds=3 exporters=16 pods=3000 seed=1 work=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --records) records="$2"; shift 2 ;;
        --loops) loops="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --exporters) exporters="$2"; shift 2 ;;
        --pods) pods="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "elasticsearch.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

command -v python3 >/dev/null || { echo "elasticsearch.sh: python3 not found" >&2; exit 1; }

cargo build --quiet --release -p podflow-collector -p podflow-bench-collector --bin podflow-collector \
    --bin collector-stream
target="${CARGO_TARGET_DIR:-$root/target}/release"

if [[ -z "$work" ]]; then
    work="$(mktemp -d -p "${TMPDIR:-/tmp}" podflow-elasticsearch-bench.XXXXXX)"
fi
mkdir -p "$work/node"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() {
    local rc=$?
    scripts/opensearch.sh stop --data "$work/node" || true
    if [[ $rc -eq 0 ]]; then rm -rf "$work"; else echo "elasticsearch: kept $work" >&2; fi
}
trap cleanup EXIT
PODFLOW_OPENSEARCH_HEAP="${PODFLOW_OPENSEARCH_HEAP:-1g}" \
    scripts/opensearch.sh start --port "$port" --data "$work/node" >/dev/null

"$target/collector-stream" record --out "$work/stream.bin" --inventory "$work/inventory" \
    --records "$records" --exporters "$exporters" --pods "$pods" --seed "$seed" >"$work/summary.json"

out="$(python3 bench/collector_bench.py --stream "$work/stream.bin" --summary "$work/summary.json" \
    --inventory "$work/inventory" --work "$work" --podflow "$target/podflow-collector" \
    --stream-bin "$target/collector-stream" --rate "$rate" --loops "$loops" --rounds "$rounds" \
    --tools podflow,podflow-es --elasticsearch "http://127.0.0.1:$port" --node-pid "$(cat "$work/node/pid")" \
    | tee /dev/stderr)"
ratio="$(sed -n 's/^elasticsearch\/ndjson: //p' <<<"$out")"
python3 -c "import sys; r = float(sys.argv[1]); print(f'ratio {r:.3f} (at least 0.85: {\"yes\" if r >= 0.85 else \"NO\"})'); sys.exit(0 if r >= 0.85 else 1)" "$ratio"
