#!/usr/bin/env bash
# Exporter throughput: packets per CPU-second of podflow-exporter --pcap, softflowd -r and nfpcapd -r on
# the same generated capture, each exporting to a UDP sink on 127.0.0.1, and of a bare libpcap read loop
# (the read floor). Prints the medians and the ratios podflow/softflowd, podflow/nfpcapd and
# podflow/read-floor. See bench/EXPORTER.md.
#
#   bench/exporter-throughput.sh [--runs N] [--snaplen BYTES] [--tcp N] [--udp N] [--icmp N] [--seed S]
#
# Defaults: 5 runs; 120,000 TCP + 60,000 UDP + 20,000 ICMP flows (about 2.1 million packets), snap length
# 128 (headers only, as the probe captures). The file is written to a temporary directory and removed.
# Needs: softflowd, nfdump (nfpcapd), libpcap-dev, a C compiler, python3, GNU time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

runs=5 snaplen=128 tcp=120000 udp=60000 icmp=20000 seed=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --snaplen) snaplen="$2"; shift 2 ;;
        --tcp) tcp="$2"; shift 2 ;;
        --udp) udp="$2"; shift 2 ;;
        --icmp) icmp="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "exporter-throughput.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

for tool in softflowd nfpcapd cc python3; do
    command -v "$tool" >/dev/null || {
        echo "exporter-throughput.sh: $tool not found (apt-get install softflowd nfdump gcc libpcap-dev python3 time)" >&2
        exit 1
    }
done

[[ -x /usr/bin/time ]] || {
    echo "exporter-throughput.sh: GNU time (/usr/bin/time) not found (apt-get install softflowd nfdump gcc libpcap-dev python3 time)" >&2
    exit 1
}

cargo build --quiet --release -p podflow-exporter -p podflow-e2e --bin podflow-exporter --bin podflow-gen-pcap
target="${CARGO_TARGET_DIR:-$root/target}/release"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/pcap-read-floor" bench/pcap-read-floor.c -lpcap

"$target/podflow-gen-pcap" --out "$work/input.pcap" --tcp "$tcp" --udp "$udp" --icmp "$icmp" \
    --fragmented 100 --seed "$seed" --snaplen "$snaplen" >"$work/summary.json"

python3 bench/exporter_bench.py throughput --pcap "$work/input.pcap" --summary "$work/summary.json" \
    --work "$work" --podflow "$target/podflow-exporter" --floor "$work/pcap-read-floor" \
    --runs "$runs" --snaplen "$snaplen"
