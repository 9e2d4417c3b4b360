//! Helpers shared by podflow's end-to-end tests (peer programs, temporary directories, UDP plumbing).
//!
//! - [`flows`]: podflow's flow templates and a few sample biflows with distinctive values, encoded with
//!   proto-ipfix exactly as the probe exports them.
//! - [`binaries`]: podflow's own programs (`podflow-exporter`, `podflow-collector`), built with the running
//!   test's profile.
//! - [`collector`]: `podflow-collector` receiving from an exporter under test: its `/metrics` polled until
//!   it has counted what was sent, then stopped and its NDJSON documents read.
//! - [`expect`]: field-by-field comparison that reports every mismatch, and calendar formatting of times.
//! - [`pcapgen`]: a deterministic pcap generator (TCP, UDP, ICMP over IPv4 and IPv6) whose flows, packets and
//!   octets are known exactly; `podflow-gen-pcap` is its command line.
//! - [`nfcapd`]: nfdump's collector on a loopback port (or in a network namespace), and knowing it has read
//!   every datagram sent to it.
//! - [`pcap`]: a minimal pcap writer, so a peer dissector can read the exact datagrams from a file.
//! - [`peer`]: finding peer programs, waiting (bounded) for them to listen, and stopping them.
//! - [`netns`]: network namespaces joined by veth pairs, for live capture tests (root only).
//! - [`kubeapi`]: a real Kubernetes API server on etcd (`scripts/kube-apiserver.sh`), its REST API over
//!   HTTPS, restarts and etcd compaction.
//! - [`kubectl`]: helm and kubectl pointed at that server, and the upstream CRDs of the chart's optional
//!   objects.
//! - [`kubenode`]: a Kubernetes node with pods, a Service (iptables DNAT) and masquerading, in network
//!   namespaces, and `conntrack -L` as an oracle (root only).
//! - [`pdml`]: tshark's PDML dissection of IPFIX captures, parsed.
//! - [`webhook`]: `podflow-collector webhook` with an openssl-made CA and certificate.
//! - [`exported`]: a UDP socket standing in for a collector of podflow-exporter, decoding what it gets.
//! - [`opensearch`]: a real OpenSearch 2.19 node on loopback (`scripts/opensearch.sh`), killed and
//!   restarted on the same data at will.
//! - [`sender`]: an IPFIX exporter of plain IPv4 biflows whose addresses and times a test chooses.
//! - [`elasticsearch`]: the collector writing into an OpenSearch node, `_count`, and the sink's metrics.
//! - [`ipfix_stream`]: as many IPFIX records as a test wants, sent at the pace the collector decodes.
//! - [`http`]: a small blocking HTTP client returning every status as a reply, for tests of HTTP servers.
//! - [`prometheus`]: Debian's Prometheus scraping podflow's `/metrics` into a temporary directory, and its
//!   query API.
//! - [`dashboards`]: podflow's Grafana dashboards: structure checks and their PromQL, variables replaced.

pub mod binaries;
pub mod collector;
pub mod dashboards;
pub mod elasticsearch;
pub mod expect;
pub mod exported;
pub mod flows;
pub mod http;
pub mod ipfix_stream;
pub mod known;
pub mod kubeapi;
pub mod kubectl;
pub mod kubenode;
pub mod netns;
pub mod nfcapd;
pub mod opensearch;
pub mod pcap;
pub mod pcapgen;
pub mod pdml;
pub mod peer;
pub mod prometheus;
pub mod sender;
pub mod webhook;
