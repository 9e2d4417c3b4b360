//! podflow's flow templates and sample biflows, encoded with proto-ipfix.
//!
//! The templates are the ones the probe exports: one for IPv4 and one for IPv6 biflows (RFC 5103 reverse
//! counters under PEN 29305), with the NAT translation of the flow and podflow's enterprise elements. The
//! sample flows carry values that are easy to spot in a peer's output (64-bit counters above 2^32, ports
//! that differ before and after NAT, distinct strings per flow), so a peer that swaps, truncates or drops
//! a field is caught.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, bail};
use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN, podflow};
use proto_ipfix::{Encoder, FieldSpec, RecordWriter, Template, VARIABLE_LENGTH};

/// Template ID of the IPv4 biflow template.
pub const V4_TEMPLATE_ID: u16 = 256;
/// Template ID of the IPv6 biflow template.
pub const V6_TEMPLATE_ID: u16 = 257;
/// Observation Domain ID of the sample messages.
pub const OBSERVATION_DOMAIN: u32 = 4242;
/// Export time (seconds since the epoch) of the sample messages.
pub const EXPORT_TIME: u32 = 1_700_000_100;
/// Largest message the sample encoder writes: an Ethernet MTU less IPv4 and UDP headers.
pub const MAX_MESSAGE_SIZE: usize = 1472;

/// The fields of a biflow template, in record order; `v6` picks the address family.
pub fn flow_fields(v6: bool) -> Vec<FieldSpec> {
    let (addr_len, src, dst, nat_src, nat_dst) = if v6 {
        (16, 27, 28, 281, 282)
    } else {
        (4, 8, 12, 225, 226)
    };
    let pen = DEFAULT_PODFLOW_PEN;
    vec![
        FieldSpec::iana(src, addr_len),
        FieldSpec::iana(dst, addr_len),
        FieldSpec::iana(7, 2),  // sourceTransportPort
        FieldSpec::iana(11, 2), // destinationTransportPort
        FieldSpec::iana(4, 1),  // protocolIdentifier
        FieldSpec::iana(1, 8),  // octetDeltaCount
        FieldSpec::iana(2, 8),  // packetDeltaCount
        FieldSpec::reverse(1, 8),
        FieldSpec::reverse(2, 8),
        FieldSpec::iana(152, 8), // flowStartMilliseconds
        FieldSpec::iana(153, 8), // flowEndMilliseconds
        FieldSpec::iana(136, 1), // flowEndReason
        FieldSpec::iana(6, 2),   // tcpControlBits
        FieldSpec::reverse(6, 2),
        FieldSpec::iana(239, 1), // biflowDirection
        FieldSpec::iana(nat_src, addr_len),
        FieldSpec::iana(nat_dst, addr_len),
        FieldSpec::iana(227, 2), // postNAPTSourceTransportPort
        FieldSpec::iana(228, 2), // postNAPTDestinationTransportPort
        FieldSpec::enterprise(podflow::COMMUNITY_ID, VARIABLE_LENGTH, pen),
        FieldSpec::enterprise(podflow::POST_NAT_COMMUNITY_ID, VARIABLE_LENGTH, pen),
        FieldSpec::enterprise(podflow::CONNTRACK_ID, 4, pen),
        FieldSpec::enterprise(podflow::CONNTRACK_MARK, 4, pen),
        FieldSpec::enterprise(podflow::OBSERVER_POD_NAME, VARIABLE_LENGTH, pen),
        FieldSpec::enterprise(podflow::OBSERVER_POD_NAMESPACE, VARIABLE_LENGTH, pen),
        FieldSpec::enterprise(podflow::OBSERVER_NODE_NAME, VARIABLE_LENGTH, pen),
    ]
}

/// The IPv4 and IPv6 biflow templates.
pub fn flow_templates() -> anyhow::Result<[Template; 2]> {
    Ok([
        Template::new(V4_TEMPLATE_ID, flow_fields(false)).context("IPv4 template")?,
        Template::new(V6_TEMPLATE_ID, flow_fields(true)).context("IPv6 template")?,
    ])
}

/// One biflow as the probe would export it. Addresses of one flow are all of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleFlow {
    /// Source address of the initiator (before NAT).
    pub src: IpAddr,
    /// Destination address (before NAT).
    pub dst: IpAddr,
    /// Source port (before NAT).
    pub src_port: u16,
    /// Destination port (before NAT).
    pub dst_port: u16,
    /// IP protocol number.
    pub protocol: u8,
    /// Octets from source to destination.
    pub octets: u64,
    /// Packets from source to destination.
    pub packets: u64,
    /// Octets from destination to source.
    pub reverse_octets: u64,
    /// Packets from destination to source.
    pub reverse_packets: u64,
    /// First packet, milliseconds since the epoch.
    pub start_ms: u64,
    /// Last packet, milliseconds since the epoch.
    pub end_ms: u64,
    /// flowEndReason (1 idle timeout, 2 active timeout, 3 end of flow detected).
    pub end_reason: u8,
    /// TCP flags seen from source to destination.
    pub tcp_flags: u16,
    /// TCP flags seen from destination to source.
    pub reverse_tcp_flags: u16,
    /// biflowDirection (1 initiator, 2 reverse initiator, 3 perimeter).
    pub biflow_direction: u8,
    /// Source address after NAT.
    pub post_nat_src: IpAddr,
    /// Destination address after NAT.
    pub post_nat_dst: IpAddr,
    /// Source port after NAPT.
    pub post_nat_src_port: u16,
    /// Destination port after NAPT.
    pub post_nat_dst_port: u16,
    /// Community ID of the flow before NAT.
    pub community_id: &'static str,
    /// Community ID of the flow after NAT.
    pub post_nat_community_id: &'static str,
    /// Linux conntrack entry id.
    pub conntrack_id: u32,
    /// Linux conntrack mark.
    pub conntrack_mark: u32,
    /// Name of the observed pod.
    pub pod_name: &'static str,
    /// Namespace of the observed pod.
    pub pod_namespace: &'static str,
    /// Node the probe runs on.
    pub node_name: &'static str,
}

impl SampleFlow {
    /// True when the flow's addresses are IPv6.
    pub fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// Three biflows: a TCP connection to a Service that is DNATed to a pod and SNATed, a DNS query over UDP
/// whose destination only is translated, and an IPv6 TCP flow with counters above 2^32.
pub fn sample_flows() -> Vec<SampleFlow> {
    vec![
        SampleFlow {
            src: IpAddr::V4(Ipv4Addr::new(10, 244, 1, 17)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 42)),
            src_port: 41234,
            dst_port: 443,
            protocol: 6,
            octets: 123_456_789,
            packets: 4321,
            reverse_octets: 987_654_321,
            reverse_packets: 8765,
            start_ms: 1_700_000_000_123,
            end_ms: 1_700_000_061_456,
            end_reason: 3,
            tcp_flags: 0x1b,
            reverse_tcp_flags: 0x1a,
            biflow_direction: 1,
            post_nat_src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 55)),
            post_nat_dst: IpAddr::V4(Ipv4Addr::new(10, 244, 2, 9)),
            post_nat_src_port: 61000,
            post_nat_dst_port: 8443,
            community_id: "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            post_nat_community_id: "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            conntrack_id: 0xC0FF_EE01,
            conntrack_mark: 0x2a,
            pod_name: "frontend-7d4b9c-x2x9q",
            pod_namespace: "shop",
            node_name: "node-a-17",
        },
        SampleFlow {
            src: IpAddr::V4(Ipv4Addr::new(10, 244, 1, 18)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
            src_port: 53530,
            dst_port: 53,
            protocol: 17,
            octets: 75,
            packets: 1,
            reverse_octets: 140,
            reverse_packets: 2,
            start_ms: 1_700_000_050_001,
            end_ms: 1_700_000_050_009,
            end_reason: 1,
            tcp_flags: 0,
            reverse_tcp_flags: 0,
            biflow_direction: 1,
            post_nat_src: IpAddr::V4(Ipv4Addr::new(10, 244, 1, 18)),
            post_nat_dst: IpAddr::V4(Ipv4Addr::new(10, 244, 3, 4)),
            post_nat_src_port: 53530,
            post_nat_dst_port: 5353,
            community_id: "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            post_nat_community_id: "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
            conntrack_id: 17,
            conntrack_mark: 0,
            pod_name: "checkout-5f6d8-abcde",
            pod_namespace: "shop",
            node_name: "node-a-17",
        },
        SampleFlow {
            src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x17)),
            dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0x10)),
            src_port: 50123,
            dst_port: 80,
            protocol: 6,
            octets: 5_000_000_123,
            packets: 3_500_001,
            reverse_octets: 7_000_000_456,
            reverse_packets: 4_600_002,
            start_ms: 1_699_999_000_777,
            end_ms: 1_700_000_090_888,
            end_reason: 2,
            tcp_flags: 0x18,
            reverse_tcp_flags: 0x10,
            biflow_direction: 2,
            post_nat_src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x55)),
            post_nat_dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x9)),
            post_nat_src_port: 50124,
            post_nat_dst_port: 8080,
            community_id: "1:2yGhdCYXlQtYJHUm6X7mU1q4Y1M=",
            post_nat_community_id: "1:gbSKX2kUZ0lqnM3Hn7bMuQeVZ5I=",
            conntrack_id: 0xFFFF_FFFE,
            conntrack_mark: 0x8000_0001,
            pod_name: "api-v6-0",
            pod_namespace: "edge-ns",
            node_name: "node-b-02",
        },
    ]
}

/// Writes one flow's values in template order.
fn write_flow(r: &mut RecordWriter<'_, '_>, f: &SampleFlow) {
    addr(r, f.src);
    addr(r, f.dst);
    r.uint(f.src_port.into())
        .uint(f.dst_port.into())
        .uint(f.protocol.into())
        .uint(f.octets)
        .uint(f.packets)
        .uint(f.reverse_octets)
        .uint(f.reverse_packets)
        .uint(f.start_ms)
        .uint(f.end_ms)
        .uint(f.end_reason.into())
        .uint(f.tcp_flags.into())
        .uint(f.reverse_tcp_flags.into())
        .uint(f.biflow_direction.into());
    addr(r, f.post_nat_src);
    addr(r, f.post_nat_dst);
    r.uint(f.post_nat_src_port.into())
        .uint(f.post_nat_dst_port.into())
        .str(f.community_id)
        .str(f.post_nat_community_id)
        .uint(f.conntrack_id.into())
        .uint(f.conntrack_mark.into())
        .str(f.pod_name)
        .str(f.pod_namespace)
        .str(f.node_name);
}

fn addr(r: &mut RecordWriter<'_, '_>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => r.ipv4(a),
        IpAddr::V6(a) => r.ipv6(a),
    };
}

/// Encodes `flows` as the probe would: a first message with both templates and the IPv4 flows, then a
/// message with the IPv6 flows, so a peer must keep templates across messages.
pub fn encode_messages(flows: &[SampleFlow]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut enc = Encoder::new(OBSERVATION_DOMAIN, MAX_MESSAGE_SIZE).context("encoder")?;
    for t in flow_templates()? {
        enc.add_template(t);
    }
    let mut messages = Vec::new();
    for (v6, with_templates) in [(false, true), (true, false)] {
        let mut buf = Vec::new();
        let mut m = enc.message(EXPORT_TIME, &mut buf);
        if with_templates {
            m.add_templates().context("templates")?;
        }
        let template_id = if v6 { V6_TEMPLATE_ID } else { V4_TEMPLATE_ID };
        for f in flows.iter().filter(|f| f.is_v6() == v6) {
            let families = [f.dst, f.post_nat_src, f.post_nat_dst].map(|a| a.is_ipv6());
            if families.iter().any(|&fam| fam != v6) {
                bail!("flow {f:?} mixes address families");
            }
            let mut r = m.record(template_id).context("record")?;
            write_flow(&mut r, f);
            r.commit().with_context(|| format!("flow {f:?}"))?;
        }
        m.finish();
        messages.push(buf);
    }
    Ok(messages)
}

/// The messages as an RFC 5655 IPFIX file: messages back to back.
pub fn ipfix_file(messages: &[Vec<u8>]) -> Vec<u8> {
    messages.concat()
}
