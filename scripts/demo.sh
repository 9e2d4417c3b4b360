#!/usr/bin/env bash
# Runs podflow on bundled data, with no cluster and no Elasticsearch.
#  1. podflow-exporter computes the Community ID of every packet of bundled pcaps (the flow key the probe and
#     the collector share), and the output is compared with the reference tool's.
#  2. podflow-collector decodes real IPFIX from several vendors' exporters and a recorded IPFIX file and
#     prints the records as JSON lines, elements named from the IANA registry.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cargo build --release --quiet -p podflow-exporter -p podflow-collector
bin=target/release
cid=exporter/tests/data/community-id
caps=testdata/captures

echo "== Community ID of each packet (podflow-exporter community-id $cid/pcaps/tcp.pcap)"
"$bin/podflow-exporter" community-id "$cid/pcaps/tcp.pcap" | head -n 5
for p in "$cid"/pcaps/*.pcap; do
  n=$(basename "$p")
  if "$bin/podflow-exporter" community-id "$p" | cmp -s - "$cid/expected/$n.deflt.txt"; then
    echo "   $n: matches the reference output ($(wc -l <"$cid/expected/$n.deflt.txt") packets)"
  else
    echo "   $n: DIFFERS from the reference output" >&2
    exit 1
  fi
done

echo
echo "== IPFIX from a MikroTik router, with NAT fields (podflow-collector decode)"
"$bin/podflow-collector" decode "$caps"/logstash-codec-netflow/ipfix_test_mikrotik_{tpl,data258}.dat | head -n 3

echo
echo "== A recorded IPFIX file (RFC 5655), 68 messages"
out=$("$bin/podflow-collector" decode "$caps/cesnet-ipfixcol2/example_flows.ipfix")
echo "$out" | head -n 2
echo "   ... $(echo "$out" | wc -l) records decoded"
