#!/usr/bin/env bash
# Runs podflow end to end on bundled and generated data, with no cluster and no Elasticsearch:
#  1. podflow-gen-pcap writes a capture of known TCP, UDP and ICMP flows (IPv4 and IPv6);
#  2. podflow-exporter reads it, aggregates bidirectional flows and exports IPFIX over UDP (loopback);
#  3. podflow-collector receives, decodes and enriches them and writes one ECS document per flow;
#  4. the documents' totals are compared with what the generator wrote.
# Then it shows the Community ID tool against the reference outputs, and decodes real IPFIX from other
# vendors' exporters.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
echo "== building (release)"
cargo build --release --quiet -p podflow-exporter -p podflow-collector
cargo build --release --quiet -p podflow-e2e --bin podflow-gen-pcap
bin=target/release
work=$(mktemp -d)
collector_pid=""
cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo
echo "== 1. a capture of known flows"
"$bin/podflow-gen-pcap" --out "$work/demo.pcap" --tcp 300 --udp 150 --icmp 50 >"$work/summary.json"
python3 - "$work/summary.json" <<'EOF' 2>/dev/null || cat "$work/summary.json"
import json, sys
s = json.load(open(sys.argv[1]))
print(f"   {s['flows']} flows, {s['packets']} packets, {s['octets']} IP octets")
EOF

scripts/demo-inventory.py "$work/inventory.yaml"

echo
echo "== 2-3. podflow-exporter -> IPFIX over UDP -> podflow-collector (with a cluster inventory) -> ECS NDJSON"
port=$((20000 + RANDOM % 20000))
mport=$((port + 1))
"$bin/podflow-collector" --listen "127.0.0.1:$port" --ndjson "$work/flows.ndjson" \
  --inventory "$work/inventory.yaml" --cluster-name demo \
  --metrics-listen "127.0.0.1:$mport" 2>"$work/collector.log" &
collector_pid=$!
metric() { curl -fs "http://127.0.0.1:$mport/metrics" 2>/dev/null | awk -v m="$1" '$1 ~ "^"m {s += $2} END {print s + 0}'; }
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$mport/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/podflow-exporter" --pcap "$work/demo.pcap" --collector "127.0.0.1:$port" 2>"$work/exporter.log"
cat "$work/exporter.log"
records=$(sed -nE 's/.* as ([0-9]+) records.*/\1/p' "$work/exporter.log")
# The collector works on its own threads: wait until it has taken every record in.
for _ in $(seq 100); do [ "$(metric podflow_collector_records_total)" -ge "$records" ] && break; sleep 0.1; done
echo
echo "== counters Prometheus scrapes from /metrics (bytes per client -> server workload, the largest):"
curl -fs "http://127.0.0.1:$mport/metrics" | grep '^podflow_connection_bytes_total' | sort -t' ' -k2 -rn \
  | head -n 6 | sed 's/^/   /'
echo
echo "== the service map (Node Graph API at /api/graph/data; the page itself is at /):"
# The graph is fed once a second: wait until it holds the batch the records came in.
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$mport/api/graph/data?window=5m" >"$work/graph.json" 2>/dev/null \
    && grep -q '"source"' "$work/graph.json" && break
  sleep 0.1
done
python3 - "$work/graph.json" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))
title = {n["id"]: f'{n["subTitle"]}/{n["title"]}' for n in g["nodes"]}
print(f"   {len(g['nodes'])} nodes, {len(g['edges'])} client -> server pairs over the last 5 minutes, the busiest:")
for e in sorted(g["edges"], key=lambda e: -e["mainStat"])[:8]:
    print(f"   {title[e['source']]:>30} -> {title[e['target']]:<30} {e['mainStat']:8.1f} B/s "
          f"{e['detail__connections']:5} connections")
EOF
kill -INT "$collector_pid"
wait "$collector_pid" || true
collector_pid=""
cat "$work/collector.log"

echo
echo "== 4. one ECS document (Kibana's Security app reads these as they are):"
grep -m1 '"kubernetes"' "$work/flows.ndjson" | python3 -m json.tool
python3 - "$work/summary.json" "$work/flows.ndjson" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
docs = [json.loads(l) for l in open(sys.argv[2])]
packets = sum(d["network"]["packets"] for d in docs)
octets = sum(d["network"]["bytes"] for d in docs)
print(f"   documents {len(docs)} (generated flows {s['flows']}), packets {packets} ({s['packets']}), "
      f"octets {octets} ({s['octets']})")
if (len(docs), packets, octets) != (s["flows"], s["packets"], s["octets"]):
    sys.exit("   MISMATCH between the documents and the generated capture")
print("   every flow, packet and octet of the capture is accounted for")
by = {}
for d in docs:
    k = d["source"].get("kubernetes", {})
    w = k.get("namespace", "") + "/" + k.get("workload", {}).get("name", "") if k else "outside the cluster"
    by[w] = by.get(w, 0) + d["network"]["bytes"]
print("   bytes by client workload: " + ", ".join(f"{w} {b}" for w, b in sorted(by.items())))
EOF

cid=exporter/tests/data/community-id
echo
echo "== Community ID of each packet, compared with the reference tool's output"
for p in "$cid"/pcaps/*.pcap; do
  n=$(basename "$p")
  if "$bin/podflow-exporter" community-id "$p" | cmp -s - "$cid/expected/$n.deflt.txt"; then
    echo "   $n: matches ($(wc -l <"$cid/expected/$n.deflt.txt") packets)"
  else
    echo "   $n: DIFFERS from the reference output" >&2
    exit 1
  fi
done

caps=testdata/captures
echo
echo "== IPFIX from a MikroTik router, with NAT fields (podflow-collector decode)"
"$bin/podflow-collector" decode "$caps"/logstash-codec-netflow/ipfix_test_mikrotik_{tpl,data258}.dat | head -n 2
echo "   ... a recorded IPFIX file (RFC 5655): $("$bin/podflow-collector" decode \
  "$caps/cesnet-ipfixcol2/example_flows.ipfix" | wc -l) records decoded"
