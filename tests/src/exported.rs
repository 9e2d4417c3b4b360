//! What podflow-exporter sent, as a test receives it: a UDP socket standing in for a collector, each
//! datagram kept and decoded with proto-ipfix into [`ExportedFlow`]s.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use proto_ipfix::community_id::CommunityId;
use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN, podflow};
use proto_ipfix::{DataRecord, Decoder, REVERSE_PEN, Visitor};

/// One data record of podflow-exporter's templates (biflow or uniflow, with NAT fields or not, or a NAT
/// event), by meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportedFlow {
    /// Source address (the initiator, in a biflow record).
    pub src: Option<IpAddr>,
    /// Destination address.
    pub dst: Option<IpAddr>,
    /// Source port (0 for ICMP).
    pub sport: u16,
    /// Destination port (0 for ICMP).
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// icmpTypeCodeIPv4 or icmpTypeCodeIPv6 (type * 256 + code).
    pub icmp_type_code: u16,
    /// octetDeltaCount: source to destination.
    pub octets: u64,
    /// packetDeltaCount: source to destination.
    pub packets: u64,
    /// reverseOctetDeltaCount (biflow records only).
    pub reverse_octets: Option<u64>,
    /// reversePacketDeltaCount (biflow records only).
    pub reverse_packets: Option<u64>,
    /// tcpControlBits.
    pub tcp_flags: u16,
    /// reverseTcpControlBits (biflow records only).
    pub reverse_tcp_flags: Option<u16>,
    /// flowStartMilliseconds.
    pub start_ms: u64,
    /// flowEndMilliseconds.
    pub end_ms: u64,
    /// flowEndReason (1 idle, 2 active, 3 end of flow, 4 forced end, 5 lack of resources).
    pub end_reason: u8,
    /// podflow's communityId element.
    pub community_id: Option<String>,
    /// postNATSourceIPv4Address / postNATSourceIPv6Address (flows of translated connections, NAT events).
    pub post_nat_src: Option<IpAddr>,
    /// postNATDestinationIPv4Address / postNATDestinationIPv6Address.
    pub post_nat_dst: Option<IpAddr>,
    /// postNAPTSourceTransportPort.
    pub post_nat_sport: Option<u16>,
    /// postNAPTDestinationTransportPort.
    pub post_nat_dport: Option<u16>,
    /// podflow's postNatCommunityId element.
    pub post_nat_community_id: Option<String>,
    /// podflow's conntrackId element.
    pub conntrack_id: Option<u32>,
    /// podflow's conntrackMark element.
    pub conntrack_mark: Option<u32>,
    /// natEvent: set on NAT event records only (4 create, 5 delete).
    pub nat_event: Option<u8>,
    /// observationTimeMilliseconds (NAT event records).
    pub observation_ms: Option<u64>,
}

impl ExportedFlow {
    /// The record's data from one [`DataRecord`] of podflow-exporter's templates.
    pub fn from_record(r: &DataRecord<'_>) -> Self {
        let mut f = ExportedFlow::default();
        for field in r.fields() {
            let spec = field.spec;
            let num = || field.u64().unwrap_or(0);
            match (spec.pen, spec.id) {
                (0, 8) => f.src = field.ipv4().map(IpAddr::V4),
                (0, 12) => f.dst = field.ipv4().map(IpAddr::V4),
                (0, 27) => f.src = field.ipv6().map(IpAddr::V6),
                (0, 28) => f.dst = field.ipv6().map(IpAddr::V6),
                (0, 7) => f.sport = num() as u16,
                (0, 11) => f.dport = num() as u16,
                (0, 4) => f.proto = num() as u8,
                (0, 32 | 139) => f.icmp_type_code = num() as u16,
                (0, 1) => f.octets = num(),
                (0, 2) => f.packets = num(),
                (0, 6) => f.tcp_flags = num() as u16,
                (0, 152) => f.start_ms = num(),
                (0, 153) => f.end_ms = num(),
                (0, 136) => f.end_reason = num() as u8,
                (REVERSE_PEN, 1) => f.reverse_octets = Some(num()),
                (REVERSE_PEN, 2) => f.reverse_packets = Some(num()),
                (REVERSE_PEN, 6) => f.reverse_tcp_flags = Some(num() as u16),
                (DEFAULT_PODFLOW_PEN, podflow::COMMUNITY_ID) => {
                    f.community_id = field.str().map(str::to_string)
                }
                (0, 225) => f.post_nat_src = field.ipv4().map(IpAddr::V4),
                (0, 226) => f.post_nat_dst = field.ipv4().map(IpAddr::V4),
                (0, 281) => f.post_nat_src = field.ipv6().map(IpAddr::V6),
                (0, 282) => f.post_nat_dst = field.ipv6().map(IpAddr::V6),
                (0, 227) => f.post_nat_sport = Some(num() as u16),
                (0, 228) => f.post_nat_dport = Some(num() as u16),
                (0, 230) => f.nat_event = Some(num() as u8),
                (0, 323) => f.observation_ms = Some(num()),
                (DEFAULT_PODFLOW_PEN, podflow::POST_NAT_COMMUNITY_ID) => {
                    f.post_nat_community_id = field.str().map(str::to_string)
                }
                (DEFAULT_PODFLOW_PEN, podflow::CONNTRACK_ID) => f.conntrack_id = Some(num() as u32),
                (DEFAULT_PODFLOW_PEN, podflow::CONNTRACK_MARK) => f.conntrack_mark = Some(num() as u32),
                _ => {}
            }
        }
        f
    }

    /// True when the record is the flow from `src` to `dst` with protocol `proto`.
    pub fn is(&self, proto: u8, src: SocketAddr, dst: SocketAddr) -> bool {
        self.proto == proto
            && self.src == Some(src.ip())
            && self.dst == Some(dst.ip())
            && self.sport == src.port()
            && self.dport == dst.port()
    }

    /// The Community ID proto-ipfix computes from the record's own addresses, protocol and ports (ICMP:
    /// type and code), for comparison with the exported one.
    pub fn expected_community_id(&self) -> Option<String> {
        let (src, dst) = (self.src?, self.dst?);
        let (sport, dport) = if self.proto == 1 || self.proto == 58 {
            (self.icmp_type_code >> 8, self.icmp_type_code & 0xff)
        } else {
            (self.sport, self.dport)
        };
        CommunityId::default()
            .hash(src, dst, self.proto, sport, dport)
            .map(|d| d.base64().to_string())
    }
}

/// Collects the data records of decoded messages.
#[derive(Default)]
struct Collect {
    flows: Vec<ExportedFlow>,
}

impl Visitor for Collect {
    fn record(&mut self, r: &DataRecord<'_>) {
        self.flows.push(ExportedFlow::from_record(r));
    }
}

/// A UDP socket that podflow-exporter sends to, keeping every message and the flows decoded from them.
pub struct Receiver {
    socket: UdpSocket,
    decoder: Decoder,
    buf: Vec<u8>,
    /// Every datagram received, in order.
    pub messages: Vec<Vec<u8>>,
    /// Every data record received, in order.
    pub flows: Vec<ExportedFlow>,
}

impl Receiver {
    /// Receives on `socket` (already bound, in whichever network namespace the exporter sends in).
    pub fn new(socket: UdpSocket) -> anyhow::Result<Self> {
        // Short reads so that waits check their deadline often; they never stand for synchronisation.
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(Receiver {
            socket,
            decoder: Decoder::default(),
            buf: vec![0u8; 65_535],
            messages: Vec::new(),
            flows: Vec::new(),
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    /// Receives and decodes one datagram if one arrives within the socket's short timeout; fails on a
    /// message proto-ipfix cannot fully decode (errors, data without a template, lost records).
    fn poll(&mut self) -> anyhow::Result<bool> {
        let (n, from) = match self.socket.recv_from(&mut self.buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e).context("receiving from podflow-exporter"),
        };
        let msg = self.buf[..n].to_vec();
        let mut visitor = Collect::default();
        let summary = self.decoder.decode(from, &msg, 0, &mut visitor);
        if summary.errors > 0 || summary.missing_template_sets > 0 || summary.lost_records > 0 {
            bail!(
                "message {} from podflow-exporter did not decode cleanly: {summary:?}",
                self.messages.len()
            );
        }
        self.messages.push(msg);
        self.flows.extend(visitor.flows);
        Ok(true)
    }

    /// Receives (bounded by `timeout`) until `done` holds for the flows received so far.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[ExportedFlow]) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !done(&self.flows) {
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; received {} flows: {:#?}",
                    self.flows.len(),
                    self.flows
                );
            }
            self.poll()?;
        }
        Ok(())
    }

    /// Receives (bounded by `timeout`) until `n` messages in all have arrived.
    pub fn wait_messages(&mut self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.messages.len() < n {
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {n} messages from podflow-exporter; got {}",
                    self.messages.len()
                );
            }
            self.poll()?;
        }
        Ok(())
    }

    /// Stops `exporter` with SIGTERM, checks that it exits 0, and receives every message its closing
    /// line says it sent, and nothing more; returns what it printed on stderr.
    pub fn stop_exporter(&mut self, exporter: crate::peer::PeerProcess) -> anyhow::Result<String> {
        let out = exporter.stop()?;
        if !out.status.success() {
            bail!("podflow-exporter failed:\n{}", crate::peer::describe(&out));
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let n = summary_messages(&stderr)?;
        self.wait_messages(n, crate::peer::PEER_TIMEOUT)?;
        self.drain()?;
        if self.messages.len() != n {
            bail!("received {} messages, the exporter sent {n}", self.messages.len());
        }
        Ok(stderr)
    }

    /// Takes whatever arrives within one short read timeout, to show that nothing more was sent.
    pub fn drain(&mut self) -> anyhow::Result<()> {
        while self.poll()? {}
        Ok(())
    }
}

/// podflow-exporter's closing line
/// (`podflow-exporter: N packets (S skipped), F flows exported as R records in M messages[; ...]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExporterSummary {
    /// Packets read.
    pub packets: u64,
    /// Flows exported.
    pub flows: u64,
    /// IPFIX records written.
    pub records: u64,
    /// IPFIX messages written.
    pub messages: u64,
}

/// Parses podflow-exporter's closing line from its stderr; text after the message count is ignored.
pub fn exporter_summary(stderr: &str) -> anyhow::Result<ExporterSummary> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(" flows exported as "))
        .with_context(|| format!("podflow-exporter printed no summary line:\n{stderr}"))?;
    let words: Vec<&str> = line.split([' ', ';', ',']).filter(|w| !w.is_empty()).collect();
    // The number before each keyword.
    let before = |keyword: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == keyword)?;
        words.get(i.checked_sub(1)?)?.parse().ok()
    };
    let parsed = (|| {
        Some(ExporterSummary {
            packets: before("packets")?,
            flows: before("flows")?,
            records: before("records")?,
            messages: before("messages")?,
        })
    })();
    parsed.with_context(|| format!("unexpected summary line: {line}"))
}

/// The message count from podflow-exporter's closing line.
pub fn summary_messages(stderr: &str) -> anyhow::Result<usize> {
    Ok(exporter_summary(stderr)?.messages as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_parses_with_or_without_trailing_text() {
        let plain = "podflow-exporter: 42955 packets (0 skipped), 4000 flows exported as 4001 records in 333 messages";
        let want = ExporterSummary {
            packets: 42955,
            flows: 4000,
            records: 4001,
            messages: 333,
        };
        assert_eq!(exporter_summary(plain).unwrap(), want);
        let longer = format!("noise\n{plain}; at most 4000 flows held at once\n");
        assert_eq!(exporter_summary(&longer).unwrap(), want);
        assert!(exporter_summary("podflow-exporter: 1 flows exported as x records").is_err());
    }

    #[test]
    fn summary_line_is_parsed() {
        let err = "podflow-exporter: capturing x (Ethernet)\n\
                   podflow-exporter: 68 packets (6 skipped), 14 flows exported as 23 records in 3 messages\n";
        assert_eq!(summary_messages(err).unwrap(), 3);
        assert!(summary_messages("podflow-exporter: oops\n").is_err());
    }

    #[test]
    fn community_id_of_a_record() {
        // The spec's TCP example (pcaps/tcp.pcap of the Community ID spec).
        let f = ExportedFlow {
            src: Some("128.232.110.120".parse().unwrap()),
            dst: Some("66.35.250.204".parse().unwrap()),
            sport: 34855,
            dport: 80,
            proto: 6,
            ..Default::default()
        };
        assert_eq!(
            f.expected_community_id().as_deref(),
            Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        );
    }
}
