//! An IPFIX exporter for tests that choose each flow's addresses and times: plain IPv4 biflows (no NAT
//! fields, so attribution sees exactly the addresses given), sent over UDP from one socket, so the
//! collector keeps one template state and sequence for it. Every message carries the template.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};

use anyhow::Context;
use proto_ipfix::{Encoder, FieldSpec, Template};

/// Template ID of the plain IPv4 biflow template.
pub const TEMPLATE_ID: u16 = 300;

/// One IPv4 biflow, as a probe exports a connection without NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Biflow {
    /// The initiator.
    pub src: SocketAddrV4,
    /// The responder.
    pub dst: SocketAddrV4,
    /// IP protocol number.
    pub protocol: u8,
    /// First packet, Unix milliseconds: the time attribution asks about.
    pub start_ms: u64,
    /// Last packet, Unix milliseconds.
    pub end_ms: u64,
}

impl Biflow {
    /// A TCP connection from `src` to `dst` that lasted 100 ms from `start_ms`.
    pub fn tcp(src: SocketAddrV4, dst: SocketAddrV4, start_ms: u64) -> Biflow {
        Biflow {
            src,
            dst,
            protocol: 6,
            start_ms,
            end_ms: start_ms + 100,
        }
    }
}

fn fields() -> Vec<FieldSpec> {
    vec![
        FieldSpec::iana(8, 4),  // sourceIPv4Address
        FieldSpec::iana(12, 4), // destinationIPv4Address
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
        FieldSpec::iana(239, 1), // biflowDirection
    ]
}

/// A UDP socket on 127.0.0.1 exporting [`Biflow`]s to one collector.
pub struct Sender {
    socket: UdpSocket,
    collector: SocketAddr,
    encoder: Encoder,
    sent: u64,
}

impl Sender {
    /// An exporter (observation domain 1) sending to `collector`.
    pub fn new(collector: SocketAddr) -> anyhow::Result<Sender> {
        let socket = UdpSocket::bind("127.0.0.1:0").context("binding the exporter's socket")?;
        let mut encoder = Encoder::new(1, 1472).context("encoder")?;
        encoder.add_template(Template::new(TEMPLATE_ID, fields()).context("template")?);
        Ok(Sender {
            socket,
            collector,
            encoder,
            sent: 0,
        })
    }

    /// Sends `flows` in one message (with the template), 1,000 octets and 10 packets each way.
    pub fn send(&mut self, flows: &[Biflow]) -> anyhow::Result<()> {
        let mut buf = Vec::new();
        let export_time = flows
            .iter()
            .map(|f| f.end_ms / 1000)
            .max()
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(0);
        let mut m = self.encoder.message(export_time, &mut buf);
        m.add_templates().context("template set")?;
        for f in flows {
            let mut r = m.record(TEMPLATE_ID).context("record")?;
            r.ipv4(*f.src.ip())
                .ipv4(*f.dst.ip())
                .uint(f.src.port().into())
                .uint(f.dst.port().into())
                .uint(f.protocol.into())
                .uint(1000)
                .uint(10)
                .uint(1000)
                .uint(10)
                .uint(f.start_ms)
                .uint(f.end_ms)
                .uint(3) // end of flow detected
                .uint(1); // the source initiated it
            r.commit().with_context(|| format!("flow {f:?}"))?;
        }
        m.finish();
        self.socket
            .send_to(&buf, self.collector)
            .with_context(|| format!("sending to {}", self.collector))?;
        self.sent += flows.len() as u64;
        Ok(())
    }

    /// Records sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The exporter's address, as the collector labels it (`exporter="127.0.0.1"`).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}
