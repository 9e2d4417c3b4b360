#!/usr/bin/env bash
# podflow's soak run: exporter -> collector at a steady rate, pods coming and going, for N minutes.
#
#   bench/soak.sh [--minutes N] [--warmup-minutes N] [--pps PPS] [--pods N] [--pod-lifetime S]
#                 [--elasticsearch URL] [--out DIR]        (--help: every option)
#
# Builds podflow-exporter, podflow-collector and podflow-gen-pcap in release mode, then runs
# bench/soak.py (see its description, or bench/README.md): samples every 10 s into DIR/soak.csv, plots
# DIR/soak.png and writes DIR/summary.txt (DIR: bench/soak-out), and fails on a crash, on RSS or
# descriptor growth over 5 % after the warm-up, or on a lost record no counter accounts for.
# Needs root, tcpreplay, Debian's /usr/bin/python3 with matplotlib, and the test API server
# (scripts/kube-apiserver.sh builds it on first use). Default: 60 minutes, about 2,000 records/s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for arg in "$@"; do
  case "$arg" in -h|--help) exec /usr/bin/python3 bench/soak.py --bin . --help ;; esac
done
[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root (a veth pair and live capture)" >&2; exit 1; }
command -v tcpreplay >/dev/null || { echo "soak.sh: tcpreplay is missing (apt-get install tcpreplay)" >&2; exit 1; }
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
  echo "soak.sh: no matplotlib for /usr/bin/python3 (apt-get install python3-matplotlib): no plot" >&2
cargo build --quiet --release -p podflow-exporter -p podflow-collector -p podflow-e2e \
  --bin podflow-exporter --bin podflow-collector --bin podflow-gen-pcap
exec /usr/bin/python3 bench/soak.py --bin "${CARGO_TARGET_DIR:-$root/target}/release" "$@"
