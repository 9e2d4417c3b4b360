//! One flow's packets, step by step: a TCP connection (handshake, request/response exchanges, FIN or
//! RST), a UDP request/response exchange (DNS- or NTP-like, optionally with an IPv4-fragmented
//! response), or an ICMP echo session.
//!
//! Every gap between two packets of a flow stays below [`MAX_GAP_US`], far below an exporter's idle
//! timeout, and a flow lasts at most a few seconds, far below its active timeout, so each flow is exactly
//! one flow record. After a TCP connection's last packet (the final ACK or the RST) nothing more is sent
//! on its tuple.

use super::Rng;
use super::wire::{
    IPV4_LEN, IPV6_LEN, L4, MTU, Packet, TCP_LEN, UDP_LEN,
    tcp_flags::{ACK, FIN, PSH, RST, SYN},
};

/// Longest gap between two packets of one flow (a retried DNS query, or a slow ping interval).
pub const MAX_GAP_US: u64 = 2_000_000;

/// Kind of flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A TCP connection.
    Tcp,
    /// UDP request/response.
    Udp,
    /// ICMP / ICMPv6 echo.
    Icmp,
}

/// How a TCP connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Client FIN, server FIN, client ACK.
    ClientFin,
    /// Server FIN, client FIN, server ACK.
    ServerFin,
    /// The client aborts with RST after the data.
    ClientRst,
    /// The server aborts with RST after the data.
    ServerRst,
    /// The server refuses the SYN with RST (two packets in all).
    Refused,
}

/// Where a flow is in its script: the packet it sends next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Syn,
    SynAck,
    HandshakeAck,
    Request,
    ServerAck,
    Response,
    ClientAck,
    Close,
    SecondFin,
    LastAck,
    Query,
    Answer,
    Fragment,
    EchoRequest,
    EchoReply,
    Done,
}

/// Parameters drawn once per flow by the generator.
#[derive(Clone, Copy, Debug)]
pub struct FlowPlan {
    /// Kind of flow.
    pub kind: Kind,
    /// IPv6 rather than IPv4.
    pub v6: bool,
    /// Client address (IPv4 in the first 4 octets).
    pub client: [u8; 16],
    /// Server address.
    pub server: [u8; 16],
    /// Client port (ICMP: echo identifier).
    pub client_port: u16,
    /// Server port (ICMP: unused).
    pub server_port: u16,
    /// TCP: data segments in all (requests and responses); UDP and ICMP: request/response exchanges.
    pub units: u32,
    /// TCP: how the connection ends.
    pub close: Close,
    /// UDP and ICMP: whether the server answers.
    pub answered: bool,
    /// UDP: the response is a large datagram sent as IPv4 fragments.
    pub fragmented: bool,
}

/// A flow being generated, and what it has sent so far.
#[derive(Clone, Debug)]
pub struct Flow {
    /// What the flow is.
    pub plan: FlowPlan,
    rng: Rng,
    step: Step,
    rtt_us: u64,
    /// Next sequence number of client and server.
    seq: [u32; 2],
    /// TCP data segments not sent yet; UDP and ICMP exchanges not finished yet.
    left: u32,
    /// Response segments still to send in the current exchange.
    response_left: u32,
    /// Server segments the client has not acknowledged yet.
    unacked: u32,
    echo_seq: u16,
    flow_label: u32,
    /// Fragmented response: IP identification, UDP datagram length, and octets of it already sent.
    frag_id: u16,
    frag_total: u32,
    frag_sent: u32,
    /// Packets and IP octets sent by the client (index 0) and by the server (index 1).
    pub packets: [u64; 2],
    /// IP octets (IP header and everything after it) sent by the client and by the server.
    pub octets: [u64; 2],
    /// IPv4 fragments sent after a first fragment.
    pub later_fragments: u64,
    /// Time of the first and of the latest packet.
    pub first_us: u64,
    /// Time of the latest packet.
    pub last_us: u64,
}

/// Largest TCP payload in a segment of a 1500-octet MTU with the timestamp option.
fn mss(v6: bool) -> u32 {
    let ip = if v6 { IPV6_LEN } else { IPV4_LEN };
    (MTU - ip - TCP_LEN) as u32
}

/// Octets of a UDP datagram's data carried by each full IPv4 fragment (a multiple of 8).
const FRAGMENT_DATA: u32 = ((MTU - IPV4_LEN) / 8 * 8) as u32;

impl Flow {
    /// A flow starting at `start_us`, drawing its sizes and timings from `rng`.
    pub fn new(plan: FlowPlan, mut rng: Rng, start_us: u64) -> Flow {
        // Round-trip times from 100 µs (same rack) to about 80 ms (another continent), log-uniform.
        let rtt_us = (100.0 * 2f64.powf(rng.unit() * 9.6)) as u64;
        let seq = [rng.next_u64() as u32, rng.next_u64() as u32];
        let flow_label = (rng.next_u64() & 0x000f_ffff) as u32;
        let step = match plan.kind {
            Kind::Tcp => Step::Syn,
            Kind::Udp => Step::Query,
            Kind::Icmp => Step::EchoRequest,
        };
        Flow {
            plan,
            rng,
            step,
            rtt_us,
            seq,
            left: plan.units,
            response_left: 0,
            unacked: 0,
            echo_seq: 0,
            flow_label,
            frag_id: 0,
            frag_total: 0,
            frag_sent: 0,
            packets: [0; 2],
            octets: [0; 2],
            later_fragments: 0,
            first_us: start_us,
            last_us: start_us,
        }
    }

    /// Fills `p` with the flow's next packet, sent at `now_us`, and returns the delay until the packet
    /// after it, or `None` when this was the flow's last packet. `ip_id` is the IPv4 identification the
    /// packet gets unless it continues a fragmented datagram.
    pub fn next(&mut self, now_us: u64, ip_id: u16, p: &mut Packet) -> Option<u64> {
        p.v6 = self.plan.v6;
        p.flow_label = self.flow_label;
        p.ip_id = ip_id;
        p.frag = None;
        p.payload = 0;
        let delay = match self.plan.kind {
            Kind::Tcp => self.tcp(now_us, p),
            Kind::Udp => self.udp(p),
            Kind::Icmp => self.icmp(p),
        };
        let side = usize::from(!p.from_client);
        if p.from_client {
            p.src = self.plan.client;
            p.dst = self.plan.server;
            p.ttl = 64;
        } else {
            p.src = self.plan.server;
            p.dst = self.plan.client;
            p.ttl = 57;
        }
        self.packets[side] += 1;
        self.octets[side] += p.ip_len() as u64;
        self.last_us = now_us;
        debug_assert!(delay.is_none_or(|d| d <= MAX_GAP_US));
        delay
    }

    /// A small random delay: back-to-back segments, or a host's reaction time.
    fn short(&mut self) -> u64 {
        self.rng.range(5, 200)
    }

    /// One-way delay plus the server's processing time.
    fn turnaround(&mut self) -> u64 {
        self.rtt_us + self.rng.range(0, 2_000)
    }

    /// Application think time between two exchanges of one flow.
    fn think(&mut self) -> u64 {
        self.rng.range(100, 300_000)
    }

    fn tcp_segment(&mut self, now_us: u64, p: &mut Packet, from_client: bool, flags: u8, payload: u32) {
        let (me, peer) = if from_client { (0, 1) } else { (1, 0) };
        p.from_client = from_client;
        let (sport, dport) = if from_client {
            (self.plan.client_port, self.plan.server_port)
        } else {
            (self.plan.server_port, self.plan.client_port)
        };
        p.l4 = L4::Tcp {
            sport,
            dport,
            seq: self.seq[me],
            ack: self.seq[peer],
            flags,
            ts_val: (now_us / 1000) as u32,
        };
        p.payload = payload as usize;
        let consumed = payload + u32::from(flags & (SYN | FIN) != 0);
        self.seq[me] = self.seq[me].wrapping_add(consumed);
    }

    fn tcp(&mut self, now_us: u64, p: &mut Packet) -> Option<u64> {
        match self.step {
            Step::Syn => {
                self.tcp_segment(now_us, p, true, SYN, 0);
                self.step = if self.plan.close == Close::Refused {
                    Step::Close
                } else {
                    Step::SynAck
                };
                Some(self.rtt_us)
            }
            Step::SynAck => {
                self.tcp_segment(now_us, p, false, SYN | ACK, 0);
                self.step = Step::HandshakeAck;
                Some(self.short())
            }
            Step::HandshakeAck => {
                self.tcp_segment(now_us, p, true, ACK, 0);
                self.step = Step::Request;
                Some(self.short())
            }
            Step::Request => {
                let size = self.request_size();
                self.tcp_segment(now_us, p, true, PSH | ACK, size);
                self.left = self.left.saturating_sub(1);
                // A response of up to 8 segments; none means the server only acknowledges.
                let want = self.rng.range(0, 8) as u32;
                self.response_left = want.min(self.left);
                self.left -= self.response_left;
                self.unacked = 0;
                self.step = if self.response_left > 0 {
                    Step::Response
                } else {
                    Step::ServerAck
                };
                Some(self.turnaround())
            }
            Step::ServerAck => {
                self.tcp_segment(now_us, p, false, ACK, 0);
                Some(self.after_exchange())
            }
            Step::Response => {
                self.response_left -= 1;
                let mss = mss(self.plan.v6);
                let (size, flags) = if self.response_left == 0 {
                    (self.rng.range(1, u64::from(mss)) as u32, PSH | ACK)
                } else {
                    (mss, ACK)
                };
                self.tcp_segment(now_us, p, false, flags, size);
                self.unacked += 1;
                // The client acknowledges every second segment and the last one (delayed ACK).
                if self.response_left == 0 || self.unacked == 2 {
                    self.step = Step::ClientAck;
                }
                Some(self.short())
            }
            Step::ClientAck => {
                self.tcp_segment(now_us, p, true, ACK, 0);
                self.unacked = 0;
                if self.response_left > 0 {
                    self.step = Step::Response;
                    Some(self.short())
                } else {
                    Some(self.after_exchange())
                }
            }
            Step::Close => {
                let (from_client, flags) = match self.plan.close {
                    Close::ClientFin => (true, FIN | ACK),
                    Close::ServerFin => (false, FIN | ACK),
                    Close::ClientRst => (true, RST | ACK),
                    Close::ServerRst | Close::Refused => (false, RST | ACK),
                };
                self.tcp_segment(now_us, p, from_client, flags, 0);
                if flags & RST != 0 {
                    self.step = Step::Done;
                    return None;
                }
                self.step = Step::SecondFin;
                Some(self.turnaround())
            }
            Step::SecondFin => {
                let from_client = self.plan.close == Close::ServerFin;
                self.tcp_segment(now_us, p, from_client, FIN | ACK, 0);
                self.step = Step::LastAck;
                // The last ACK follows within a round trip, well inside an exporter's FIN linger.
                Some(self.rtt_us.max(10))
            }
            Step::LastAck => {
                let from_client = self.plan.close == Close::ClientFin;
                self.tcp_segment(now_us, p, from_client, ACK, 0);
                self.step = Step::Done;
                None
            }
            _ => {
                self.step = Step::Done;
                None
            }
        }
    }

    /// After a request and its response: another request, or the close.
    fn after_exchange(&mut self) -> u64 {
        self.step = if self.left > 0 { Step::Request } else { Step::Close };
        self.think()
    }

    /// Request sizes: mostly a few hundred octets (HTTP requests, RPCs), sometimes an upload segment.
    fn request_size(&mut self) -> u32 {
        if self.rng.chance(10) {
            mss(self.plan.v6)
        } else {
            self.rng.range(40, 900) as u32
        }
    }

    fn udp_datagram(&mut self, p: &mut Packet, from_client: bool, payload: u32) {
        p.from_client = from_client;
        let (sport, dport) = if from_client {
            (self.plan.client_port, self.plan.server_port)
        } else {
            (self.plan.server_port, self.plan.client_port)
        };
        p.l4 = L4::Udp {
            sport,
            dport,
            len: (UDP_LEN as u32 + payload) as u16,
        };
        p.payload = payload as usize;
    }

    /// NTP (port 123) exchanges 48-octet messages; the rest is DNS-like.
    fn is_ntp(&self) -> bool {
        self.plan.server_port == 123
    }

    fn udp(&mut self, p: &mut Packet) -> Option<u64> {
        match self.step {
            Step::Query => {
                let size = if self.is_ntp() {
                    48
                } else {
                    self.rng.range(28, 90) as u32
                };
                self.udp_datagram(p, true, size);
                if self.plan.answered {
                    self.step = Step::Answer;
                    return Some(self.turnaround());
                }
                // Unanswered: the resolver retries after a second, then gives up.
                self.left -= 1;
                if self.left == 0 {
                    return None;
                }
                Some(self.rng.range(1_000_000, MAX_GAP_US))
            }
            Step::Answer => {
                if self.plan.fragmented {
                    // A large answer (DNSSEC, EDNS0 with a 4096-octet buffer), sent as IPv4 fragments.
                    let payload = self.rng.range(1_600, 4_000) as u32;
                    self.frag_total = UDP_LEN as u32 + payload;
                    self.frag_id = p.ip_id;
                    self.udp_datagram(p, false, FRAGMENT_DATA - UDP_LEN as u32);
                    // The UDP length field names the whole datagram.
                    if let L4::Udp { len, .. } = &mut p.l4 {
                        *len = self.frag_total as u16;
                    }
                    p.frag = Some((0, true));
                    self.frag_sent = FRAGMENT_DATA;
                    self.step = Step::Fragment;
                    return Some(self.rng.range(2, 30));
                }
                let size = if self.is_ntp() {
                    48
                } else {
                    self.rng.range(40, 500) as u32
                };
                self.udp_datagram(p, false, size);
                self.end_udp_exchange()
            }
            Step::Fragment => {
                let rest = self.frag_total - self.frag_sent;
                let size = rest.min(FRAGMENT_DATA);
                p.from_client = false;
                p.l4 = L4::Fragment;
                p.payload = size as usize;
                p.ip_id = self.frag_id;
                let more = size < rest;
                p.frag = Some(((self.frag_sent / 8) as u16, more));
                self.frag_sent += size;
                self.later_fragments += 1;
                if more {
                    return Some(self.rng.range(2, 30));
                }
                self.end_udp_exchange()
            }
            _ => None,
        }
    }

    fn end_udp_exchange(&mut self) -> Option<u64> {
        self.left -= 1;
        if self.left == 0 {
            self.step = Step::Done;
            return None;
        }
        self.step = Step::Query;
        Some(self.rng.range(1_000, 300_000))
    }

    fn icmp(&mut self, p: &mut Packet) -> Option<u64> {
        // ping's default: 56 octets of data.
        p.payload = 56;
        match self.step {
            Step::EchoRequest => {
                self.echo_seq = self.echo_seq.wrapping_add(1);
                p.from_client = true;
                p.l4 = L4::Echo {
                    request: true,
                    id: self.plan.client_port,
                    seq: self.echo_seq,
                };
                if self.plan.answered {
                    self.step = Step::EchoReply;
                    return Some(self.rtt_us);
                }
                self.end_echo()
            }
            Step::EchoReply => {
                p.from_client = false;
                p.l4 = L4::Echo {
                    request: false,
                    id: self.plan.client_port,
                    seq: self.echo_seq,
                };
                self.step = Step::EchoRequest;
                self.end_echo()
            }
            _ => None,
        }
    }

    /// After an echo (answered or not): the next one after ping's interval, or the end.
    fn end_echo(&mut self) -> Option<u64> {
        self.left -= 1;
        if self.left == 0 {
            self.step = Step::Done;
            return None;
        }
        self.step = Step::EchoRequest;
        Some(self.rng.range(200_000, 1_000_000))
    }
}
