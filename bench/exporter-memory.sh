#!/usr/bin/env bash
# Exporter memory: peak RSS of podflow-exporter --pcap and softflowd -r holding at least a million flows at
# once, at the same flow capacity, and the bytes per flow of each ((peak - baseline) / flows, the baseline
# being the same tool's peak on a 1,000-flow file). Prints both and the ratio podflow/softflowd.
# See bench/EXPORTER.md.
#
#   bench/exporter-memory.sh [--runs N] [--flows N] [--max-flows N]
#
# Defaults: 3 runs; 1,000,000 flows (half TCP, half UDP, 30% IPv6), all open at once (the generator's
# --all-concurrent), timeouts of a day so none ends before the end of the file; flow capacity 1,048,576.
# Needs: softflowd, python3, GNU time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

runs=3 flows=1000000 max_flows=1048576
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --flows) flows="$2"; shift 2 ;;
        --max-flows) max_flows="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "exporter-memory.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if (( flows > max_flows )); then
    echo "exporter-memory.sh: --flows $flows exceeds --max-flows $max_flows: flows would be evicted" >&2
    exit 2
fi

for tool in softflowd python3; do
    command -v "$tool" >/dev/null || {
        echo "exporter-memory.sh: $tool not found (apt-get install softflowd python3 time)" >&2
        exit 1
    }
done

[[ -x /usr/bin/time ]] || {
    echo "exporter-memory.sh: GNU time (/usr/bin/time) not found (apt-get install softflowd python3 time)" >&2
    exit 1
}

cargo build --quiet --release -p podflow-exporter -p podflow-e2e --bin podflow-exporter --bin podflow-gen-pcap
target="${CARGO_TARGET_DIR:-$root/target}/release"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gen() { # OUT FLOWS
    local tcp=$(($2 / 2))
    "$target/podflow-gen-pcap" --out "$1" --tcp "$tcp" --udp $(($2 - tcp)) --icmp 0 \
        --packets-per-flow 1 --all-concurrent --snaplen 128
}
gen "$work/input.pcap" "$flows" >"$work/summary.json"
gen "$work/baseline.pcap" 1000 >/dev/null

day=86400
python3 bench/exporter_bench.py memory --pcap "$work/input.pcap" --summary "$work/summary.json" \
    --baseline-pcap "$work/baseline.pcap" --work "$work" --podflow "$target/podflow-exporter" \
    --runs "$runs" --max-flows "$max_flows" --idle-timeout "$day" --active-timeout "$day" --tcp-linger "$day"
