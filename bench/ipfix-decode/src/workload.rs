//! The benchmark's input: realistic IPFIX streams from several exporters, built with proto-ipfix's
//! [`Encoder`] from a fixed seed, so every run decodes the same octets.
//!
//! Each exporter is a node of a Kubernetes cluster exporting biflows of its pods (IPv4 and IPv6) to one
//! collector over UDP: templates in its first message and again every `template_refresh` messages (as
//! exporters with a packet-count refresh do), data records buffered per template (see [`stream`]). The
//! collector receives the streams interleaved.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN, podflow};
use proto_ipfix::wire::Message;
use proto_ipfix::{EncodeError, Encoder, FieldSpec, MessageWriter, Template, VARIABLE_LENGTH};

use crate::flow::Flow;

/// Template ID of IPv4 biflows.
pub const TEMPLATE_V4: u16 = 256;
/// Template ID of IPv6 biflows.
pub const TEMPLATE_V6: u16 = 257;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Exporters (nodes), each with its own address and Observation Domain.
    pub exporters: usize,
    /// Messages each exporter sends.
    pub messages_per_exporter: usize,
    /// Largest message, in octets (the path MTU less IP and UDP headers).
    pub max_message_size: usize,
    /// Templates are resent every this many messages.
    pub template_refresh: usize,
    /// Seed of the value generator.
    pub seed: u64,
    /// Records in flow-expiry order, a new data set at each change of template, instead of one data set
    /// per message.
    pub mixed_sets: bool,
}

/// One datagram as the collector receives it.
pub struct Datagram {
    /// Index of the exporter in [`Workload::exporters`].
    pub exporter: usize,
    /// The exporter's export time, in milliseconds: the decoder's "now".
    pub now_ms: u64,
    /// The IPFIX message.
    pub bytes: Vec<u8>,
}

/// The generated streams and what decoding them must yield.
pub struct Workload {
    /// Exporter addresses.
    pub exporters: Vec<SocketAddr>,
    /// Datagrams in arrival order (the exporters' streams interleaved, each in its own order).
    pub datagrams: Vec<Datagram>,
    /// Data records in all datagrams.
    pub records: u64,
    /// Data sets in all datagrams.
    pub data_sets: u64,
    /// Octets in all datagrams.
    pub octets: u64,
    /// Sum over records of [`Flow::fold`]: what a decoder that read every value correctly computes.
    pub checksum: u64,
}

/// The seed each record's fold starts from; records are summed so their order does not matter.
pub const FOLD_SEED: u64 = 0x706f_6466_6c6f_7721;

/// SplitMix64: small, fast and identical on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The IPv4 and IPv6 biflow templates every exporter uses.
fn templates() -> Result<[Template; 2], proto_ipfix::TemplateError> {
    let tail = [
        FieldSpec::iana(7, 2),    // sourceTransportPort
        FieldSpec::iana(11, 2),   // destinationTransportPort
        FieldSpec::iana(4, 1),    // protocolIdentifier
        FieldSpec::iana(6, 2),    // tcpControlBits
        FieldSpec::iana(1, 8),    // octetDeltaCount
        FieldSpec::iana(2, 8),    // packetDeltaCount
        FieldSpec::reverse(1, 8), // reverse octetDeltaCount
        FieldSpec::reverse(2, 8), // reverse packetDeltaCount
        FieldSpec::iana(152, 8),  // flowStartMilliseconds
        FieldSpec::iana(153, 8),  // flowEndMilliseconds
        FieldSpec::iana(136, 1),  // flowEndReason
        FieldSpec::enterprise(podflow::COMMUNITY_ID, VARIABLE_LENGTH, DEFAULT_PODFLOW_PEN),
    ];
    let v4 = [FieldSpec::iana(8, 4), FieldSpec::iana(12, 4)]; // source/destinationIPv4Address
    let v6 = [FieldSpec::iana(27, 16), FieldSpec::iana(28, 16)]; // source/destinationIPv6Address
    Ok([
        Template::new(TEMPLATE_V4, v4.iter().chain(&tail).copied().collect())?,
        Template::new(TEMPLATE_V6, v6.iter().chain(&tail).copied().collect())?,
    ])
}

/// A flow as the exporter holds it, with its Community ID owned.
struct Spec {
    flow: Flow<'static>,
    community_id: String,
}

impl Spec {
    fn flow(&self) -> Flow<'_> {
        Flow {
            community_id: &self.community_id,
            ..self.flow
        }
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// "1:" and the base64 of a 20-octet SHA-1, as Community ID v1 looks (28 characters, one '=').
fn community_id(rng: &mut Rng) -> String {
    let mut digest = [0u8; 21];
    for chunk in digest[..20].chunks_mut(4) {
        chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
    }
    let mut s = String::with_capacity(30);
    s.push_str("1:");
    for (i, g) in digest.chunks(3).enumerate() {
        let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        let chars = if i == 6 { 3 } else { 4 }; // 20 octets: six whole groups, then two octets
        for k in 0..chars {
            s.push(char::from(BASE64[(n >> (18 - 6 * k) & 63) as usize]));
        }
    }
    s.push('=');
    s
}

const SERVER_PORTS: [u16; 12] = [443, 443, 443, 80, 53, 8080, 5432, 6379, 9090, 3306, 9092, 10250];
/// Common tcpControlBits of finished TCP flows: FIN|SYN|PSH|ACK, SYN|PSH|ACK, RST|ACK, SYN, ...
const TCP_FLAGS: [u16; 8] = [0x1b, 0x1b, 0x1b, 0x1a, 0x18, 0x14, 0x16, 0x02];
/// flowEndReason: idle timeout most often, then active timeout, end of flow detected, forced, lack of
/// resources.
const END_REASONS: [u8; 20] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 4];

/// A flow of a pod on node `node`, ending shortly before `now_ms`.
fn flow(rng: &mut Rng, node: u8, now_ms: u64) -> Spec {
    let (src, dst) = if rng.chance(75) {
        let src = Ipv4Addr::new(10, 244, node, 2 + rng.below(250) as u8);
        let dst = match rng.below(10) {
            0..=4 => Ipv4Addr::new(10, 244, rng.below(64) as u8, 2 + rng.below(250) as u8),
            5..=7 => Ipv4Addr::new(10, 96, rng.below(256) as u8, rng.below(256) as u8),
            _ => Ipv4Addr::from(rng.next() as u32 | 0x0100_0000),
        };
        (IpAddr::V4(src), IpAddr::V4(dst))
    } else {
        let src = Ipv6Addr::new(
            0xfd00,
            0x10,
            0x244,
            u16::from(node),
            0,
            0,
            0,
            2 + rng.below(4000) as u16,
        );
        let dst = if rng.chance(70) {
            Ipv6Addr::new(
                0xfd00,
                0x10,
                0x96,
                0,
                0,
                0,
                rng.below(65536) as u16,
                rng.below(65536) as u16,
            )
        } else {
            Ipv6Addr::from(
                0x2001_0db8_u128 << 96 | u128::from(rng.next()) << 32 | u128::from(rng.next() as u32),
            )
        };
        (IpAddr::V6(src), IpAddr::V6(dst))
    };
    let dst_port = rng.pick(&SERVER_PORTS);
    let protocol = match rng.below(100) {
        _ if dst_port == 53 => 17,
        0..=1 => 1,
        2..=14 => 17,
        _ => 6,
    };
    let (src_port, dst_port) = match protocol {
        1 => (0, 0x0800), // ICMP flows carry type and code in the destination port (echo request)
        _ => (32768 + rng.below(28232) as u16, dst_port),
    };
    let tcp_flags = if protocol == 6 { rng.pick(&TCP_FLAGS) } else { 0 };
    // Packet counts spread over six orders of magnitude, most flows small.
    let packets = (1u64 << rng.below(21)) + rng.below(1 << 10);
    let octets = packets * (40 + rng.below(1461));
    let rev_packets = rng.below(packets * 2 + 1);
    let rev_octets = rev_packets * (40 + rng.below(1461));
    let end_ms = now_ms - rng.below(5_000);
    let start_ms = end_ms - rng.below(300_000);
    Spec {
        flow: Flow {
            src,
            dst,
            src_port,
            dst_port,
            protocol,
            tcp_flags,
            octets,
            packets,
            rev_octets,
            rev_packets,
            start_ms,
            end_ms,
            end_reason: rng.pick(&END_REASONS),
            community_id: "",
        },
        community_id: community_id(rng),
    }
}

/// Appends one flow to the message.
fn write(m: &mut MessageWriter<'_>, s: &Spec) -> Result<(), EncodeError> {
    let f = &s.flow;
    let mut r = match (f.src, f.dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mut r = m.record(TEMPLATE_V4)?;
            r.ipv4(a).ipv4(b);
            r
        }
        (a, b) => {
            let mut r = m.record(TEMPLATE_V6)?;
            r.ipv6(to_v6(a)).ipv6(to_v6(b));
            r
        }
    };
    r.uint(f.src_port.into())
        .uint(f.dst_port.into())
        .uint(f.protocol.into())
        .uint(f.tcp_flags.into())
        .uint(f.octets)
        .uint(f.packets)
        .uint(f.rev_octets)
        .uint(f.rev_packets)
        .uint(f.start_ms)
        .uint(f.end_ms)
        .uint(f.end_reason.into())
        .str(&s.community_id);
    r.commit()
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// 0 for an IPv4 flow, 1 for IPv6: the index of its template's buffer.
fn family(s: &Spec) -> usize {
    usize::from(s.flow.src.is_ipv6())
}

/// What the encoded records add up to.
#[derive(Default)]
struct Written {
    records: u64,
    checksum: u64,
}

/// The messages of exporter `node`.
///
/// By default the exporter buffers records per template, as most exporters do, and sends a template's
/// buffer when it holds a message's worth: each message carries one data set. With `shape.mixed_sets`,
/// records go out in flow-expiry order and each change of address family starts a new data set.
fn stream(shape: &Shape, node: u8, rng: &mut Rng, written: &mut Written) -> Result<Vec<Datagram>, String> {
    let mut enc = Encoder::new(1 + u32::from(node), shape.max_message_size).map_err(|e| e.to_string())?;
    for t in templates().map_err(|e| e.to_string())? {
        enc.add_template(t);
    }
    // More records than a message can hold, for each template: the smallest record is 95 octets (IPv4).
    let capacity = shape.max_message_size / 95 + 1;
    let mut buffers: [VecDeque<Spec>; 2] = Default::default();
    let mut stream = Vec::with_capacity(shape.messages_per_exporter);
    let base_secs: u32 = 1_750_000_000;
    while stream.len() < shape.messages_per_exporter {
        let i = stream.len();
        // Exporters send a few messages a second; "now" advances with the export time.
        let export_secs = base_secs + (i / 4) as u32;
        let now_ms = u64::from(export_secs) * 1000;
        let buffer = if shape.mixed_sets {
            0
        } else {
            loop {
                let s = flow(rng, node, now_ms);
                let f = family(&s);
                buffers[f].push_back(s);
                if buffers[f].len() >= capacity {
                    break f;
                }
            }
        };
        let mut bytes = Vec::with_capacity(shape.max_message_size);
        let mut m = enc.message(export_secs, &mut bytes);
        if i % shape.template_refresh.max(1) == 0 {
            m.add_templates().map_err(|e| e.to_string())?;
        }
        loop {
            let s = match buffers[buffer].pop_front() {
                Some(s) => s,
                None if shape.mixed_sets => flow(rng, node, now_ms),
                None => break,
            };
            match write(&mut m, &s) {
                Ok(()) => {
                    written.records += 1;
                    written.checksum = written.checksum.wrapping_add(s.flow().fold(FOLD_SEED));
                }
                Err(EncodeError::MessageFull) if m.records() > 0 => {
                    buffers[buffer].push_front(s);
                    break;
                }
                Err(e) => return Err(format!("cannot encode a flow: {e}")),
            }
        }
        m.finish();
        stream.push(Datagram {
            exporter: usize::from(node),
            now_ms,
            bytes,
        });
    }
    Ok(stream)
}

/// Generates the workload.
pub fn generate(shape: Shape) -> Result<Workload, String> {
    let mut rng = Rng(shape.seed);
    let mut written = Written::default();
    let mut streams = Vec::with_capacity(shape.exporters);
    let mut exporters = Vec::with_capacity(shape.exporters);
    for e in 0..shape.exporters {
        let node = u8::try_from(e).map_err(|_| "at most 256 exporters")?;
        exporters.push(SocketAddr::from(([192, 168, 0, node], 40_000 + u16::from(node))));
        streams.push(stream(&shape, node, &mut rng, &mut written)?.into_iter());
    }
    // Arrival order: the exporters' streams interleaved round-robin.
    let mut datagrams = Vec::with_capacity(shape.exporters * shape.messages_per_exporter);
    for _ in 0..shape.messages_per_exporter {
        datagrams.extend(streams.iter_mut().filter_map(Iterator::next));
    }
    let octets = datagrams.iter().map(|d| d.bytes.len() as u64).sum();
    let data_sets = datagrams
        .iter()
        .filter_map(|d| Message::new_checked(&d.bytes).ok())
        .flat_map(|m| m.sets().flatten().filter(|s| s.is_data_set()))
        .count() as u64;
    Ok(Workload {
        exporters,
        datagrams,
        records: written.records,
        data_sets,
        octets,
        checksum: written.checksum,
    })
}
