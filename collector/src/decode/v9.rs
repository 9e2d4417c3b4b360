//! NetFlow v9 (RFC 3954).
//!
//! The template state lives here, per exporter and Source ID, on the caller's clock: netflow_parser's own
//! template cache and pending-flow cache time their entries with `Instant::now()`, which a sans-IO decoder
//! cannot use, and they would keep v9 outside the limits and holding that IPFIX has. This module walks the
//! packet's flowsets and reads template records itself (they are a list of (type, length) pairs), then
//! has netflow_parser decode each data flowset against its template (`Data::parse_with_limits`) and maps
//! the values it returns through the same extraction plan as IPFIX.

use netflow_parser::variable_versions::v9::{Data, Template, TemplateField};
use netflow_parser::{DecodedOutputLimits, V9Field};

use super::flow::{Acc, Clock, Plan, Slot};
use super::hold::HeldSet;
use super::{Ctx, Scratch};
use crate::model::{FlowRecord, Observer, Protocol};

/// Length of the v9 packet header.
const HEADER_LEN: usize = 20;
/// RFC 3954 has no variable-length fields; H3C sends IPFIX-style ones with this length, which
/// netflow_parser cannot decode.
const VARIABLE_LENGTH: u16 = 65535;

/// What a template describes.
#[derive(Debug)]
pub(crate) enum V9Kind {
    /// Flow records, decoded by netflow_parser and mapped through the plan.
    Data { template: Template, plan: Plan },
    /// Options records (exporter metadata): counted, not decoded. Scope and option fields as
    /// (type, length).
    Options {
        record_len: usize,
        fields: Box<[(u16, u16)]>,
    },
}

/// A v9 template of one exporter and Source ID.
#[derive(Debug)]
pub(crate) struct V9Template {
    pub kind: V9Kind,
    /// Fields, for state accounting.
    pub fields: usize,
    /// When it was last defined or refreshed (caller's clock).
    pub last_seen_ms: u64,
}

/// The header fields that matter here.
#[derive(Clone, Copy)]
struct Header {
    sys_uptime: u32,
    unix_secs: u32,
    sequence: u32,
    source_id: u32,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes one v9 export packet.
pub(crate) fn decode<F: FnMut(FlowRecord)>(ctx: &mut Ctx<'_, F>, dg: &[u8], scratch: &mut Scratch) {
    let header = (|| {
        Some(Header {
            sys_uptime: be32(dg, 4)?,
            unix_secs: be32(dg, 8)?,
            sequence: be32(dg, 12)?,
            source_id: be32(dg, 16)?,
        })
    })();
    let Some(h) = header else {
        ctx.refuse(Some(Protocol::NetflowV9), None, "truncated");
        return;
    };
    let Some(di) = ctx.domain(Protocol::NetflowV9, h.source_id) else {
        return;
    };
    let mut p = Packet {
        ctx,
        di,
        h,
        tally: Tally::default(),
        defined: std::mem::take(&mut scratch.defined),
        value: std::mem::take(&mut scratch.value),
    };
    let lost = p
        .ctx
        .state
        .domains
        .get_mut(di)
        .map(|d| d.sequence.check(h.sequence, 1));
    p.flowsets(dg);

    let mut defined = std::mem::take(&mut p.defined);
    let mut held = std::mem::take(&mut scratch.held);
    for &id in &defined {
        p.ctx.take_held(Protocol::NetflowV9, h.source_id, id, &mut held);
        for s in held.drain(..) {
            let held_header = Header {
                sys_uptime: s.sys_uptime,
                unix_secs: s.export_time,
                ..h
            };
            let saved = std::mem::replace(&mut p.h, held_header);
            p.data(id, &s.body);
            p.h = saved;
            p.tally.replayed += 1;
        }
    }
    defined.clear();
    scratch.defined = defined;
    scratch.held = held;
    scratch.value = std::mem::take(&mut p.value);

    let t = p.tally;
    let c = ctx.counters(Protocol::NetflowV9, h.source_id);
    if let Some(super::state::Sequence::Lost(n)) = lost {
        c.lost_datagrams += u64::from(n);
    }
    c.records += t.records;
    c.options_records += t.options;
    c.no_addresses += t.no_addresses;
    c.templates += t.templates;
    c.template_misses += t.misses;
    c.held_sets += t.held;
    c.dropped_sets += t.dropped;
    c.replayed_sets += t.replayed;
    c.limit_hits += t.dropped + t.limit_hits;
    for &(reason, n) in &t.errors {
        c.errors.add(reason, n);
    }
    let errors: u64 = t.errors.iter().map(|(_, n)| n).sum();
    ctx.decoded.records += u32::try_from(t.records).unwrap_or(u32::MAX);
    ctx.decoded.errors += u32::try_from(errors).unwrap_or(u32::MAX);
}

#[derive(Default)]
struct Tally {
    records: u64,
    options: u64,
    no_addresses: u64,
    templates: u64,
    misses: u64,
    held: u64,
    dropped: u64,
    replayed: u64,
    limit_hits: u64,
    errors: Vec<(&'static str, u64)>,
}

/// The place in its packet of the data record decoded next.
fn position(t: &Tally) -> u32 {
    u32::try_from(t.records + t.no_addresses).unwrap_or(u32::MAX)
}

impl Tally {
    fn error(&mut self, reason: &'static str) {
        match self.errors.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.errors.push((reason, 1)),
        }
    }
}

struct Packet<'c, 'a, F> {
    ctx: &'c mut Ctx<'a, F>,
    di: usize,
    h: Header,
    tally: Tally,
    defined: Vec<u16>,
    /// A value's octets, as netflow_parser writes them back.
    value: Vec<u8>,
}

impl<F: FnMut(FlowRecord)> Packet<'_, '_, F> {
    fn flowsets(&mut self, dg: &[u8]) {
        let mut at = HEADER_LEN;
        while let (Some(id), Some(len)) = (be16(dg, at), be16(dg, at + 2)) {
            let len = usize::from(len);
            if len < 4 {
                // Some exporters (Palo Alto) pad the packet with zeros after the last flowset.
                if !dg.get(at..).is_some_and(|r| r.iter().all(|&b| b == 0)) {
                    self.tally.error("bad_length");
                }
                return;
            }
            let Some(body) = dg.get(at + 4..at + len) else {
                self.tally.error("truncated");
                return;
            };
            match id {
                0 => self.templates(body),
                1 => self.options_templates(body),
                // Reserved (RFC 3954 section 5.2): skipped.
                2..=255 => {}
                _ => self.data(id, body),
            }
            at += len;
        }
    }

    fn templates(&mut self, body: &[u8]) {
        let mut at = 0;
        while let (Some(id), Some(count)) = (be16(body, at), be16(body, at + 2)) {
            if id == 0 && count == 0 && body[at..].iter().all(|&b| b == 0) {
                return; // padding
            }
            let count = usize::from(count);
            let Some(specs) = body.get(at + 4..at + 4 + 4 * count) else {
                self.tally.error("truncated");
                return;
            };
            at += 4 + 4 * count;
            if id < 256 || count == 0 {
                self.tally.error("bad_template");
                return;
            }
            if count > self.ctx.cfg.limits.max_fields_per_template {
                self.tally.error("state_limit");
                self.tally.limit_hits += 1;
                continue;
            }
            let fields: Vec<(u16, u16)> = specs
                .chunks_exact(4)
                .map(|c| (u16::from_be_bytes([c[0], c[1]]), u16::from_be_bytes([c[2], c[3]])))
                .collect();
            if fields.iter().any(|&(_, l)| l == VARIABLE_LENGTH) {
                self.tally.error("unsupported_template");
                continue;
            }
            if fields.iter().all(|&(_, l)| l == 0) {
                self.tally.error("bad_template");
                continue;
            }
            self.define(id, V9Def::Data(&fields));
        }
    }

    fn options_templates(&mut self, body: &[u8]) {
        let mut at = 0;
        while let (Some(id), Some(scope), Some(opts)) =
            (be16(body, at), be16(body, at + 2), be16(body, at + 4))
        {
            if body[at..].iter().all(|&b| b == 0) {
                return; // padding
            }
            let len = usize::from(scope) + usize::from(opts);
            let Some(specs) = body.get(at + 6..at + 6 + len) else {
                self.tally.error("truncated");
                return;
            };
            at += 6 + len;
            if id < 256 || scope % 4 != 0 || opts % 4 != 0 {
                self.tally.error("bad_template");
                return;
            }
            if len / 4 > self.ctx.cfg.limits.max_fields_per_template {
                self.tally.error("state_limit");
                self.tally.limit_hits += 1;
                continue;
            }
            let fields: Box<[(u16, u16)]> = specs
                .chunks_exact(4)
                .map(|c| (u16::from_be_bytes([c[0], c[1]]), u16::from_be_bytes([c[2], c[3]])))
                .collect();
            self.define(id, V9Def::Options(fields));
        }
    }

    /// Defines, refreshes or replaces template `id`, within the exporter's limits.
    fn define(&mut self, id: u16, def: V9Def<'_>) {
        let now = self.ctx.now_ms;
        let pen = self.ctx.cfg.podflow_pen;
        let Some(d) = self.ctx.state.domains.get_mut(self.di) else {
            return;
        };
        let new_fields = def.fields();
        if let Some(old) = d.v9.get_mut(&id).filter(|old| def.same_as(&old.kind)) {
            old.last_seen_ms = now;
            self.tally.templates += 1;
            self.defined.push(id);
            return;
        }
        let old = d.v9.get(&id).map(|t| t.fields);
        let (templates, fields) = match old {
            Some(n) => (0, new_fields.saturating_sub(n)),
            None => (1, new_fields),
        };
        if !self.ctx.template_room(templates, fields) {
            self.tally.error("state_limit");
            self.tally.limit_hits += 1;
            return;
        }
        let kind = match def {
            V9Def::Data(f) => {
                let plan = Plan::new(f.iter().map(|&(t, l)| (0, t, l)), false, pen);
                let template = Template {
                    template_id: id,
                    field_count: u16::try_from(f.len()).unwrap_or(u16::MAX),
                    fields: f
                        .iter()
                        .map(|&(t, l)| TemplateField {
                            field_type_number: t,
                            field_type: V9Field::from(t),
                            field_length: l,
                        })
                        .collect(),
                };
                V9Kind::Data { template, plan }
            }
            V9Def::Options(fields) => V9Kind::Options {
                record_len: fields.iter().map(|&(_, l)| usize::from(l)).sum(),
                fields,
            },
        };
        let Some(d) = self.ctx.state.domains.get_mut(self.di) else {
            return;
        };
        d.v9.insert(
            id,
            V9Template {
                kind,
                fields: new_fields,
                last_seen_ms: now,
            },
        );
        self.ctx.add_template(new_fields, old);
        self.tally.templates += 1;
        self.defined.push(id);
    }

    /// Decodes a data flowset of template `id`, or holds it until the template comes.
    fn data(&mut self, id: u16, body: &[u8]) {
        let now = self.ctx.now_ms;
        let lifetime = self.ctx.cfg.template_lifetime_ms;
        let Ctx {
            state, out, exporter, ..
        } = &mut *self.ctx;
        let Some(d) = state.domains.get_mut(self.di) else {
            return;
        };
        let live =
            d.v9.get(&id)
                .filter(|t| now.saturating_sub(t.last_seen_ms) <= lifetime);
        match live.map(|t| &t.kind) {
            None => {
                self.tally.misses += 1;
                let h = self.h;
                let held = self.ctx.hold(body.len(), || HeldSet {
                    protocol: Protocol::NetflowV9,
                    domain: h.source_id,
                    set_id: id,
                    at_ms: now,
                    export_time: h.unix_secs,
                    sys_uptime: h.sys_uptime,
                    body: body.into(),
                });
                if held {
                    self.tally.held += 1;
                } else {
                    self.tally.dropped += 1;
                }
            }
            Some(V9Kind::Options { record_len, .. }) => {
                if *record_len > 0 {
                    self.tally.options += (body.len() / record_len) as u64;
                }
            }
            Some(V9Kind::Data { template, plan }) => {
                let Ok((_, data)) = Data::parse_with_limits(body, template, DecodedOutputLimits::default())
                else {
                    self.tally.error("record_overrun");
                    return;
                };
                let clock = Clock {
                    export_ms: u64::from(self.h.unix_secs) * 1000,
                    sys_uptime: Some(self.h.sys_uptime),
                    system_init_ms: None,
                };
                for rec in &data.fields {
                    let mut acc = Acc::default();
                    let mut observer = Observer::default();
                    for ((_, value), &slot) in rec.iter().zip(plan.slots.iter()) {
                        if slot == Slot::Skip {
                            continue;
                        }
                        // netflow_parser typed the value; its octets are what the plan reads.
                        self.value.clear();
                        if value.write_be_bytes(&mut self.value).is_ok() {
                            acc.apply(slot, &self.value, &mut observer, &mut state.interner);
                        }
                    }
                    let flow = acc.finish(
                        observer,
                        *exporter,
                        self.h.source_id,
                        Protocol::NetflowV9,
                        self.h.unix_secs,
                        &clock,
                    );
                    match flow {
                        Some(mut f) => {
                            f.sequence = self.h.sequence;
                            f.position = position(&self.tally);
                            self.tally.records += 1;
                            out(f);
                        }
                        None => self.tally.no_addresses += 1,
                    }
                }
            }
        }
    }
}

/// A template record as read from the packet.
enum V9Def<'f> {
    Data(&'f [(u16, u16)]),
    Options(Box<[(u16, u16)]>),
}

impl V9Def<'_> {
    fn fields(&self) -> usize {
        match self {
            V9Def::Data(f) => f.len(),
            V9Def::Options(f) => f.len(),
        }
    }

    /// Whether `kind` is this very definition (a refresh).
    fn same_as(&self, kind: &V9Kind) -> bool {
        match (self, kind) {
            (V9Def::Data(f), V9Kind::Data { template, .. }) => {
                f.len() == template.fields.len()
                    && f.iter()
                        .zip(&template.fields)
                        .all(|(&(t, l), tf)| t == tf.field_type_number && l == tf.field_length)
            }
            (V9Def::Options(f), V9Kind::Options { fields, .. }) => f == fields,
            _ => false,
        }
    }
}
