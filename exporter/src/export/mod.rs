//! Flows to IPFIX messages (pure: the caller passes the time and receives finished messages).
//!
//! One template per address family. By default a flow is one biflow record (RFC 5103): forward counters
//! in the standard elements, backward ones in the reverse elements (PEN 29305), the source being the
//! initiator (biflowDirection 1). With `uniflow` each direction that carried packets is its own record,
//! for collectors that do not understand reverse elements. Templates go out in the first message and
//! again every refresh interval (RFC 7011 section 8.4); messages never exceed the configured size.
//!
//! With conntrack (`nat` in [`ExportConfig`]), a flow of a translated connection is written under a
//! template of its own that adds the post-NAT fields, and NAT events are records of their own template;
//! untranslated flows keep the plain templates, so no record carries zero-filled NAT fields.

mod nat;
mod templates;
mod udp;
#[cfg(test)]
mod udp_tests;

use std::net::IpAddr;

use proto_ipfix::community_id::CommunityId;
use proto_ipfix::{EncodeError, Encoder, RecordWriter};

use crate::conntrack::{Connection, NatEvent};
use crate::flow::{Expired, Oriented, Side};
pub use templates::{ObserverInfo, TemplateSet};
pub use udp::{Collectors, SendStats};

/// Export settings.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Observation Domain ID in every message header.
    pub observation_domain: u32,
    /// Largest message, in octets (the path MTU less IP and UDP headers).
    pub max_message_size: usize,
    /// Two uniflow records per flow instead of one biflow record.
    pub uniflow: bool,
    /// Private Enterprise Number of podflow's elements.
    pub enterprise_number: u32,
    /// Who observes: written into every record when set (sidecars).
    pub observer: ObserverInfo,
    /// Templates are sent again after this many milliseconds.
    pub template_refresh_ms: u64,
    /// Announce the templates of translated flows and NAT events (conntrack is on).
    pub nat: bool,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            observation_domain: 1,
            max_message_size: 1400,
            uniflow: false,
            enterprise_number: proto_ipfix::ie::DEFAULT_PODFLOW_PEN,
            observer: ObserverInfo::default(),
            template_refresh_ms: 10_000,
            nat: false,
        }
    }
}

/// Why an export configuration cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The maximum message size is out of range.
    #[error(transparent)]
    MessageSize(#[from] EncodeError),
    /// A template could not be built.
    #[error("template: {0}")]
    Template(#[from] proto_ipfix::TemplateError),
    /// A template does not fit in a message.
    #[error("a template needs {needed} octets per message, more than the maximum message size {max}")]
    TemplatesTooLarge {
        /// Octets the header and the largest template need.
        needed: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// Counters of the writer's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Data records written.
    pub records: u64,
    /// Messages finished.
    pub messages: u64,
    /// Flows that could not be encoded (never expected; counted rather than lost silently).
    pub encode_errors: u64,
    /// NAT event records written.
    pub nat_events: u64,
}

/// One record to write.
#[derive(Clone, Copy)]
enum Rec<'a> {
    /// A flow, from `side`, with its connection's translation when it has one.
    Flow {
        flow: &'a Expired,
        side: Side,
        template: u16,
        nat: Option<&'a Connection>,
    },
    /// A NAT event.
    Event { event: &'a NatEvent, template: u16 },
}

/// Builds IPFIX messages from exported flows.
pub struct IpfixWriter {
    cfg: ExportConfig,
    enc: Encoder,
    templates: TemplateSet,
    /// Every template's ID, in the order they are sent.
    template_ids: Vec<u16>,
    cid: CommunityId,
    buf: Vec<u8>,
    next_templates_ms: Option<u64>,
    stats: WriterStats,
}

impl IpfixWriter {
    /// A writer; fails for a maximum message size outside 32..=65535 or templates that do not fit it.
    pub fn new(cfg: ExportConfig) -> Result<Self, ConfigError> {
        let mut enc = Encoder::new(cfg.observation_domain, cfg.max_message_size)?;
        let templates = TemplateSet::new(cfg.uniflow, cfg.enterprise_number, &cfg.observer, cfg.nat)?;
        // Templates are spread over as many messages as they need, but each must fit one.
        let template_len = templates
            .all()
            .iter()
            .map(|t| t.buffer_len() + 4)
            .max()
            .unwrap_or(0);
        if 16 + template_len > cfg.max_message_size {
            return Err(ConfigError::TemplatesTooLarge {
                needed: 16 + template_len,
                max: cfg.max_message_size,
            });
        }
        for t in templates.all() {
            enc.add_template(t);
        }
        let template_ids = templates.all().iter().map(|t| t.id()).collect();
        Ok(IpfixWriter {
            cfg,
            enc,
            templates,
            template_ids,
            cid: CommunityId::default(),
            buf: Vec::with_capacity(65536),
            next_templates_ms: None,
            stats: WriterStats::default(),
        })
    }

    /// The writer's counters.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Writes `flows` at time `now` (Unix milliseconds) into as many messages as needed and hands each
    /// finished message to `send`. Templates lead the first message and every message after a refresh
    /// interval. Nothing is sent for an empty batch unless templates are due.
    pub fn write(&mut self, flows: &[Expired], now: u64, send: &mut impl FnMut(&[u8])) {
        self.write_all(flows, &[], &[], now, send);
    }

    /// Like [`write`](Self::write), with each flow's translated connection (`nat`: empty, or one entry
    /// per flow) and NAT events after the flows. Translations and events are written only when the
    /// writer has NAT templates ([`ExportConfig::nat`]).
    pub fn write_all(
        &mut self,
        flows: &[Expired],
        nat: &[Option<Connection>],
        events: &[NatEvent],
        now: u64,
        send: &mut impl FnMut(&[u8]),
    ) {
        let export_time = u32::try_from(now / 1000).unwrap_or(u32::MAX);
        let t = &self.templates;
        let uniflow = self.cfg.uniflow;
        let ids = [t.id(false), t.id(true)];
        let nat_ids = [t.nat_flow_id(false), t.nat_flow_id(true)];
        let event_ids = [t.nat_event_id(false), t.nat_event_id(true)];
        let flow_records = flows.iter().enumerate().flat_map(|(i, f)| {
            let v6 = usize::from(f.key.is_v6());
            let (template, nat) = match (nat.get(i).and_then(Option::as_ref), nat_ids[v6]) {
                (Some(c), Some(id)) => (id, Some(c)),
                _ => (ids[v6], None),
            };
            sides_of(f, uniflow).map(move |side| Rec::Flow {
                flow: f,
                side,
                template,
                nat,
            })
        });
        let event_records = events.iter().filter_map(|e| {
            let template = event_ids[usize::from(e.conn.orig.src.is_ipv6())]?;
            Some(Rec::Event { event: e, template })
        });
        let mut pending = flow_records.chain(event_records).peekable();
        let templates_due = self.next_templates_ms.is_none_or(|t| now >= t);
        if pending.peek().is_none() && !templates_due {
            return;
        }
        // The next template to send, while templates are being sent.
        let mut next_template = templates_due.then_some(0);
        let ids = &self.template_ids;
        loop {
            let mut msg = self.enc.message(export_time, &mut self.buf);
            if let Some(mut i) = next_template {
                while let Some(&id) = ids.get(i) {
                    match msg.add_template(id) {
                        Ok(()) => i += 1,
                        // The rest go in the next message (with NAT templates and a small MTU).
                        Err(EncodeError::MessageFull) if msg.template_records() > 0 => break,
                        Err(_) => {
                            // A template that does not fit an empty message cannot be sent: count, stop.
                            self.stats.encode_errors += 1;
                            return;
                        }
                    }
                }
                if i < ids.len() {
                    next_template = Some(i);
                    msg.finish();
                    self.stats.messages += 1;
                    send(&self.buf);
                    continue;
                }
                next_template = None;
                self.next_templates_ms = Some(now.saturating_add(self.cfg.template_refresh_ms));
            }
            let mut wrote_any = false;
            while let Some(&rec) = pending.peek() {
                let template = match rec {
                    Rec::Flow { template, .. } | Rec::Event { template, .. } => template,
                };
                let outcome = msg.record(template).and_then(|mut r| {
                    match rec {
                        Rec::Flow { flow, side, nat, .. } => {
                            fill(&mut r, flow, side, nat, &self.cid, &self.cfg);
                        }
                        Rec::Event { event, .. } => {
                            nat::event_record(&mut r, event, &self.cid, &self.cfg.observer);
                        }
                    }
                    r.commit()
                });
                match outcome {
                    Ok(()) => {
                        wrote_any = true;
                        self.stats.records += 1;
                        if matches!(rec, Rec::Event { .. }) {
                            self.stats.nat_events += 1;
                        }
                        pending.next();
                    }
                    Err(EncodeError::MessageFull) if wrote_any || msg.template_records() > 0 => break,
                    Err(_) => {
                        // A record that fits no message, or does not match its template: count, skip.
                        self.stats.encode_errors += 1;
                        pending.next();
                    }
                }
            }
            let done = pending.peek().is_none();
            if !msg.is_empty() {
                msg.finish();
                self.stats.messages += 1;
                send(&self.buf);
            }
            if done {
                return;
            }
        }
    }
}

/// The source directions of the records a flow becomes: the initiator's for a biflow, each direction
/// that carried packets for uniflow records.
fn sides_of(f: &Expired, uniflow: bool) -> impl Iterator<Item = Side> {
    let init = f.initiator();
    let sides: [Option<Side>; 2] = if uniflow {
        let has = |s: Side| f.flow.dirs[s.index()].packets > 0;
        [has(init).then_some(init), has(init.flip()).then_some(init.flip())]
    } else {
        [Some(init), None]
    };
    sides.into_iter().flatten()
}

/// Writes one record: `side` is the record's source direction (the initiator's, for a biflow); `nat`
/// the flow's translated connection when it is written under a NAT template.
fn fill(
    r: &mut RecordWriter<'_, '_>,
    f: &Expired,
    side: Side,
    nat: Option<&Connection>,
    cid: &CommunityId,
    cfg: &ExportConfig,
) {
    let (uniflow, observer) = (cfg.uniflow, &cfg.observer);
    let fwd: Oriented = f.oriented(side);
    let rev: Oriented = f.oriented(side.flip());
    match (fwd.src, fwd.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => r.ipv4(s).ipv4(d),
        (IpAddr::V6(s), IpAddr::V6(d)) => r.ipv6(s).ipv6(d),
        // Keys hold one family; a mismatch would fail the template check and be counted.
        _ => r,
    };
    let icmp = f.icmp_type_code();
    let icmp = if side == f.initiator() {
        icmp
    } else {
        reply_type_code(f.key.proto, icmp)
    };
    r.uint(u64::from(fwd.sport))
        .uint(u64::from(fwd.dport))
        .uint(u64::from(f.key.proto))
        .uint(u64::from(icmp));
    r.uint(fwd.dir.octets).uint(fwd.dir.packets);
    if !uniflow {
        r.uint(rev.dir.octets).uint(rev.dir.packets);
    }
    r.uint(f.flow.start_ms).uint(f.flow.end_ms).uint(f.reason as u64);
    if !uniflow {
        // Reverse flags first: nfdump 1.7 keeps one flags value, the last one it reads.
        r.uint(u64::from(rev.dir.tcp_flags));
    }
    r.uint(u64::from(fwd.dir.tcp_flags));
    if !uniflow {
        r.uint(1); // biflowDirection: initiator, the source opened the flow
    }
    let icmp_pair = f
        .key
        .is_icmp()
        .then(|| (f.icmp_type_code() >> 8, f.icmp_type_code() & 0xff));
    let id = f.key.community_id(cid, f.initiator(), icmp_pair);
    r.str(&id.base64());
    if let Some(c) = nat {
        nat::flow_fields(r, c, (fwd.src, fwd.sport), (fwd.dst, fwd.dport), cid);
    }
    for s in observer.values() {
        r.str(s);
    }
}

/// The type and code the responder sends back for an ICMP request (its counterpart), for uniflow
/// records of the reply direction.
fn reply_type_code(proto: u8, request: u16) -> u16 {
    let t = (request >> 8) as u8;
    let reply = match (proto, t) {
        (1, 8) => 0,
        (1, 13) => 14,
        (1, 15) => 16,
        (1, 10) => 9,
        (1, 17) => 18,
        (58, 128 | 130 | 133 | 135 | 139 | 144) => t + 1,
        _ => return request,
    };
    u16::from(reply) << 8
}

#[cfg(test)]
mod tests;
