//! IPFIX: proto-ipfix walks the message; a visitor turns each data record into a flow through its
//! template's extraction plan, holds data sets whose template is unknown and replays them when it comes.

use std::sync::Arc;

use foldhash::HashMap;

use proto_ipfix::template::{TemplateRecord, TemplateRecords};
use proto_ipfix::wire::{HEADER_LEN, HeaderRepr, Message, OPTIONS_TEMPLATE_SET_ID};
use proto_ipfix::{DataRecord, DecodeErrorKind, InsertOutcome, SessionKey, Template, TemplateError};

use super::flow::{Acc, Clock, Plan, Slot};
use super::hold::HeldSet;
use super::{Ctx, Scratch};
use crate::model::{FlowRecord, Observer, Protocol};

/// What the visitor counted, merged into the domain's counters once per datagram.
#[derive(Default)]
struct Tally {
    records: u64,
    options: u64,
    no_addresses: u64,
    held: u64,
    dropped: u64,
    replayed: u64,
}

struct Visitor<'c, 'a, F> {
    ctx: &'c mut Ctx<'a, F>,
    /// Index of the domain in the exporter's state.
    di: usize,
    domain: u32,
    export_time: u32,
    /// The message header's sequence number.
    sequence: u32,
    /// The plan of the template whose records are arriving: records of one set share it.
    cur: Option<(u16, Arc<Plan>)>,
    /// Templates defined by this message, whose held sets to replay after it.
    defined: Vec<u16>,
    tally: Tally,
}

/// Decodes one IPFIX message.
pub(crate) fn decode<F: FnMut(FlowRecord)>(
    ctx: &mut Ctx<'_, F>,
    dec: &mut proto_ipfix::Decoder,
    dg: &[u8],
    scratch: &mut Scratch,
) {
    let Some(domain) = dg
        .get(12..HEADER_LEN)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
    else {
        ctx.refuse(Some(Protocol::Ipfix), None, "truncated");
        return;
    };
    let Some(di) = ctx.domain(Protocol::Ipfix, domain) else {
        return;
    };
    if let Some(d) = ctx.state.domains.get(di) {
        let (templates, fields) = growth(dg, &d.plans, ctx.cfg.limits.max_fields_per_template);
        if (templates, fields) != (0, 0) && !ctx.template_room(templates, fields) {
            // Refused whole: proto-ipfix cannot take some of a message's templates and not others. The
            // exporter's data sets decode again once its templates expire or it sends fewer.
            ctx.refuse(Some(Protocol::Ipfix), Some(domain), "state_limit");
            return;
        }
    }
    let key = SessionKey {
        exporter: ctx.exporter,
        observation_domain: domain,
    };
    let now = ctx.now_ms;
    let mut v = Visitor {
        ctx,
        di,
        domain,
        export_time: 0,
        sequence: 0,
        cur: None,
        defined: std::mem::take(&mut scratch.defined),
        tally: Tally::default(),
    };
    let sum = dec.decode(key.exporter, dg, now, &mut v);

    // Data sets that waited for a template this message defined.
    let mut defined = std::mem::take(&mut v.defined);
    let mut held = std::mem::take(&mut scratch.held);
    let mut replay_errors = Vec::new();
    for &id in &defined {
        v.ctx.take_held(Protocol::Ipfix, domain, id, &mut held);
        for h in held.drain(..) {
            v.export_time = h.export_time;
            v.cur = None;
            if let Some((_, err)) = dec.decode_set(&key, id, &h.body, now, &mut v) {
                v.tally.replayed += 1;
                replay_errors.extend(err.map(|e| e.reason()));
            }
        }
    }
    defined.clear();
    scratch.defined = defined;
    scratch.held = held;

    let tally = v.tally;
    let errors = u64::from(sum.errors) + replay_errors.len() as u64;
    let c = ctx.counters(Protocol::Ipfix, domain);
    c.records += tally.records;
    c.options_records += tally.options;
    c.no_addresses += tally.no_addresses;
    c.templates += u64::from(sum.templates);
    c.template_misses += u64::from(sum.missing_template_sets);
    c.lost_records += u64::from(sum.lost_records);
    c.held_sets += tally.held;
    c.dropped_sets += tally.dropped;
    c.limit_hits += tally.dropped;
    c.replayed_sets += tally.replayed;
    if let Some(e) = sum.first_error {
        // The summary names only its first error's reason; the others are counted under it.
        c.errors.add(e.reason(), u64::from(sum.errors));
        if matches!(
            e.kind,
            DecodeErrorKind::Limit(_) | DecodeErrorKind::Template(TemplateError::TooManyFields { .. })
        ) {
            c.limit_hits += u64::from(sum.errors);
        }
    }
    for r in replay_errors {
        c.errors.add(r, 1);
    }
    ctx.decoded.records += u32::try_from(tally.records).unwrap_or(u32::MAX);
    ctx.decoded.errors += u32::try_from(errors).unwrap_or(u32::MAX);
}

/// How many templates, and fields, a message would add to its domain's state (`plans` mirrors the
/// templates the domain has).
fn growth(dg: &[u8], plans: &HashMap<u16, Arc<Plan>>, max_fields: usize) -> (usize, usize) {
    let Ok(msg) = Message::new_checked(dg) else {
        return (0, 0);
    };
    let (mut templates, mut fields) = (0, 0);
    for set in msg.sets().flatten().filter(|s| s.is_template_set()) {
        let options = set.id() == OPTIONS_TEMPLATE_SET_ID;
        for (_, r) in TemplateRecords::new(set.body(), options, max_fields) {
            let Ok(TemplateRecord::Define(t)) = r else {
                continue;
            };
            let n = t.fields().len();
            match plans.get(&t.id()) {
                Some(p) => fields += n.saturating_sub(p.fields),
                None => {
                    templates += 1;
                    fields += n;
                }
            }
        }
    }
    (templates, fields)
}

impl<F: FnMut(FlowRecord)> Visitor<'_, '_, F> {
    /// The plan of `t`, built and accounted for if the domain has none that fits it.
    fn plan_for(&mut self, t: &Template) -> Option<Arc<Plan>> {
        let pen = self.ctx.cfg.podflow_pen;
        let d = self.ctx.state.domains.get_mut(self.di)?;
        if let Some(p) = d.plans.get(&t.id()).filter(|p| p.fields == t.fields().len()) {
            return Some(Arc::clone(p));
        }
        let plan = Arc::new(plan(t, pen));
        let old = d.plans.insert(t.id(), Arc::clone(&plan)).map(|p| p.fields);
        self.ctx.add_template(plan.fields, old);
        Some(plan)
    }
}

fn plan(t: &Template, podflow_pen: u32) -> Plan {
    Plan::new(
        t.fields().iter().map(|f| (f.pen, f.id, f.length)),
        t.is_options(),
        podflow_pen,
    )
}

impl<F: FnMut(FlowRecord)> proto_ipfix::Visitor for Visitor<'_, '_, F> {
    fn begin(&mut self, _key: &SessionKey, header: &HeaderRepr) {
        self.export_time = header.export_time;
        self.sequence = header.sequence;
    }

    fn record(&mut self, r: &DataRecord<'_>) {
        let t = r.template();
        let fresh = matches!(&self.cur, Some((id, p)) if *id == t.id() && p.fields == t.fields().len());
        if !fresh {
            self.cur = self.plan_for(t).map(|p| (t.id(), p));
        }
        let Visitor {
            ctx,
            di,
            domain,
            export_time,
            sequence,
            cur,
            tally,
            ..
        } = self;
        let Some((_, plan)) = cur.as_ref() else {
            return;
        };
        let mut acc = Acc::default();
        let mut observer = Observer::default();
        let interner = &mut ctx.state.interner;
        match &plan.fixed {
            Some(fixed) => {
                let b = r.as_bytes();
                for &(off, len, slot) in fixed.iter() {
                    let off = usize::from(off);
                    if let Some(v) = b.get(off..off + usize::from(len)) {
                        acc.apply(slot, v, &mut observer, interner);
                    }
                }
            }
            None => {
                for (f, &slot) in r.fields().zip(plan.slots.iter()) {
                    if slot != Slot::Skip {
                        acc.apply(slot, f.value, &mut observer, interner);
                    }
                }
            }
        }
        let Some(d) = ctx.state.domains.get_mut(*di) else {
            return;
        };
        if plan.options {
            tally.options += 1;
            // Exporters announce their boot time in options records; sysUpTime timestamps need it.
            if acc.system_init.is_some() {
                d.system_init_ms = acc.system_init;
            }
            return;
        }
        let clock = Clock {
            export_ms: u64::from(*export_time) * 1000,
            sys_uptime: None,
            system_init_ms: d.system_init_ms,
        };
        match acc.finish(
            observer,
            ctx.exporter,
            *domain,
            Protocol::Ipfix,
            *export_time,
            &clock,
        ) {
            Some(mut rec) => {
                rec.sequence = *sequence;
                rec.position = u32::try_from(tally.records + tally.no_addresses).unwrap_or(u32::MAX);
                tally.records += 1;
                (ctx.out)(rec);
            }
            None => tally.no_addresses += 1,
        }
    }

    fn template(&mut self, _key: &SessionKey, t: &Template, outcome: InsertOutcome) {
        // Whatever the outcome, records of this ID are read through the domain's plan from now on.
        self.cur = None;
        self.defined.push(t.id());
        let pen = self.ctx.cfg.podflow_pen;
        let Some(d) = self.ctx.state.domains.get_mut(self.di) else {
            return;
        };
        let known = d.plans.get(&t.id()).is_some_and(|p| p.fields == t.fields().len());
        if outcome == InsertOutcome::Refreshed && known {
            return;
        }
        let plan = Arc::new(plan(t, pen));
        let fields = plan.fields;
        let old = d.plans.insert(t.id(), plan).map(|p| p.fields);
        self.ctx.add_template(fields, old);
    }

    fn missing_template(&mut self, key: &SessionKey, header: &HeaderRepr, set_id: u16, body: &[u8]) {
        let at_ms = self.ctx.now_ms;
        let held = self.ctx.hold(body.len(), || HeldSet {
            protocol: Protocol::Ipfix,
            domain: key.observation_domain,
            set_id,
            at_ms,
            export_time: header.export_time,
            sys_uptime: 0,
            body: body.into(),
        });
        if held {
            self.tally.held += 1;
        } else {
            self.tally.dropped += 1;
        }
    }
}
