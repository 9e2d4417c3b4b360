//! proto-ipfix, read in two ways.
//!
//! Both use one [`Decoder`] (UDP template policy) for all exporters, templates scoped by exporter and
//! domain, and read every field of every record into the typed flow:
//!
//! - [`Located`]: when a data set begins, the visitor locates each field it reads in the set's
//!   template ([`Template::locate`]), once per template; each record is then read at those locations. This
//!   is how proto-ipfix is meant to be used when the same fields are read from many records.
//! - [`FieldByField`]: each record's fields are walked and dispatched on their Information Element,
//!   as with netflow_parser's output.

use std::net::IpAddr;

use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN, REVERSE_PEN, podflow};
use proto_ipfix::{DataRecord, Decoder, Field, FieldSpec, Location, SessionKey, Template, Visitor};

use crate::flow::{Flow, Tally};
use crate::workload::Workload;

/// A decoder and its visitor's state; use one per way of reading, so each has its own templates.
pub struct Proto {
    decoder: Decoder,
    plans: Plans,
}

impl Proto {
    /// A decoder with the UDP template policy, as the collector runs it.
    pub fn new() -> Self {
        Proto {
            decoder: Decoder::default(),
            plans: Plans::default(),
        }
    }

    /// Decodes every datagram once, reading records at located fields.
    #[inline(never)]
    pub fn located_pass(&mut self, w: &Workload) -> Tally {
        let mut sink = Located {
            plans: &mut self.plans,
            tally: Tally::default(),
        };
        decode_all(&mut self.decoder, w, &mut sink, |s| &mut s.tally)
    }

    /// Decodes every datagram once, walking the fields of each record.
    #[inline(never)]
    pub fn field_by_field_pass(&mut self, w: &Workload) -> Tally {
        let mut sink = FieldByField {
            tally: Tally::default(),
        };
        decode_all(&mut self.decoder, w, &mut sink, |s| &mut s.tally)
    }
}

#[inline(always)]
fn decode_all<V: Visitor>(
    decoder: &mut Decoder,
    w: &Workload,
    sink: &mut V,
    tally: impl Fn(&mut V) -> &mut Tally,
) -> Tally {
    for d in &w.datagrams {
        let sum = decoder.decode(w.exporters[d.exporter], &d.bytes, d.now_ms, sink);
        if sum.errors > 0 || sum.missing_template_sets > 0 {
            tally(sink).failed_messages += 1;
        }
    }
    *tally(sink)
}

/// Where the fields a flow needs lie in one template's records.
struct Plan {
    /// The template's fields, to recognise it: any template with the same fields has the same plan.
    specs: Box<[FieldSpec]>,
    src4: Option<Location>,
    dst4: Option<Location>,
    src6: Option<Location>,
    dst6: Option<Location>,
    src_port: Option<Location>,
    dst_port: Option<Location>,
    protocol: Option<Location>,
    tcp_flags: Option<Location>,
    octets: Option<Location>,
    packets: Option<Location>,
    rev_octets: Option<Location>,
    rev_packets: Option<Location>,
    start: Option<Location>,
    end: Option<Location>,
    end_reason: Option<Location>,
    community_id: Option<Location>,
}

impl Plan {
    fn new(t: &Template) -> Self {
        Plan {
            specs: t.fields().into(),
            src4: t.locate(8, 0),
            dst4: t.locate(12, 0),
            src6: t.locate(27, 0),
            dst6: t.locate(28, 0),
            src_port: t.locate(7, 0),
            dst_port: t.locate(11, 0),
            protocol: t.locate(4, 0),
            tcp_flags: t.locate(6, 0),
            octets: t.locate(1, 0),
            packets: t.locate(2, 0),
            rev_octets: t.locate(1, REVERSE_PEN),
            rev_packets: t.locate(2, REVERSE_PEN),
            start: t.locate(152, 0),
            end: t.locate(153, 0),
            end_reason: t.locate(136, 0),
            community_id: t.locate(podflow::COMMUNITY_ID, DEFAULT_PODFLOW_PEN),
        }
    }

    /// Reads one record into a flow.
    ///
    /// Inlined into the decoder's record loop: this is straight-line code, one read per field with no
    /// loop, so the compiler keeps the flow's values in registers up to the fold instead of storing
    /// them and loading them back (measured: 599 instructions per record against 643 when the flow was
    /// filled through a reference from a function that is not inlined, and faster).
    #[inline(always)]
    fn read<'a>(&self, r: &DataRecord<'a>, f: &mut Flow<'a>) {
        if let Some(a) = array::<4>(r, &self.src4) {
            f.src = IpAddr::from(a);
        }
        if let Some(a) = array::<4>(r, &self.dst4) {
            f.dst = IpAddr::from(a);
        }
        if let Some(a) = array::<16>(r, &self.src6) {
            f.src = IpAddr::from(a);
        }
        if let Some(a) = array::<16>(r, &self.dst6) {
            f.dst = IpAddr::from(a);
        }
        f.src_port = uint(r, &self.src_port) as u16;
        f.dst_port = uint(r, &self.dst_port) as u16;
        f.protocol = uint(r, &self.protocol) as u8;
        f.tcp_flags = uint(r, &self.tcp_flags) as u16;
        f.octets = uint(r, &self.octets);
        f.packets = uint(r, &self.packets);
        f.rev_octets = uint(r, &self.rev_octets);
        f.rev_packets = uint(r, &self.rev_packets);
        f.start_ms = uint(r, &self.start);
        f.end_ms = uint(r, &self.end);
        f.end_reason = uint(r, &self.end_reason) as u8;
        f.community_id = at(r, &self.community_id).and_then(|v| v.str()).unwrap_or("");
    }
}

/// The field at `l`, if the template has it.
#[inline(always)]
fn at<'a>(r: &DataRecord<'a>, l: &Option<Location>) -> Option<Field<'a>> {
    l.as_ref().and_then(|l| r.at(l))
}

/// The value at `l` if the template has it and it is `N` octets long (an address).
#[inline(always)]
fn array<const N: usize>(r: &DataRecord<'_>, l: &Option<Location>) -> Option<[u8; N]> {
    l.as_ref().and_then(|l| r.array_at::<N>(l))
}

/// The unsigned integer at `l`, 0 if the template does not have it.
#[inline(always)]
fn uint(r: &DataRecord<'_>, l: &Option<Location>) -> u64 {
    l.as_ref().and_then(|l| r.u64_at(l)).unwrap_or(0)
}

/// The plans of the templates seen so far, and the one of the current data set.
#[derive(Default)]
struct Plans {
    plans: Vec<Plan>,
    current: usize,
}

impl Plans {
    /// Templates with distinct fields kept at most; a collector facing many exporters would evict
    /// the least recently used instead of starting over.
    const MAX: usize = 1024;

    fn select(&mut self, t: &Template) {
        let same = |p: &Plan| *p.specs == *t.fields();
        if self.plans.get(self.current).is_some_and(same) {
            return;
        }
        self.current = match self.plans.iter().position(same) {
            Some(i) => i,
            None => {
                if self.plans.len() >= Self::MAX {
                    self.plans.clear();
                }
                self.plans.push(Plan::new(t));
                self.plans.len() - 1
            }
        };
    }
}

/// Reads each record at the locations its template's [`Plan`] found.
struct Located<'p> {
    plans: &'p mut Plans,
    tally: Tally,
}

impl Visitor for Located<'_> {
    fn data_set(&mut self, _key: &SessionKey, template: &Template) {
        self.plans.select(template);
    }

    #[inline(always)]
    fn record(&mut self, r: &DataRecord<'_>) {
        let mut f = Flow::default();
        if let Some(plan) = self.plans.plans.get(self.plans.current) {
            plan.read(r, &mut f);
        }
        self.tally.add(&f);
    }
}

/// Reads each record by walking its fields and matching their Information Elements.
///
/// Here and in netflow_parser's reader, the flow is filled through a reference from a function that is
/// not inlined: inlined, the compiler keeps all the flow's fields in registers through the field loop
/// and spills the loop's own state instead, which slows both (measured for netflow_parser: 4828 against
/// 4811 instructions per record, and no faster). [`Plan::read`] has no loop and is inlined.
struct FieldByField {
    tally: Tally,
}

impl Visitor for FieldByField {
    #[inline]
    fn record(&mut self, r: &DataRecord<'_>) {
        let mut f = Flow::default();
        walk(r, &mut f);
        self.tally.add(&f);
    }
}

/// Reads one record into a flow by walking its fields.
#[inline(never)]
fn walk<'a>(r: &DataRecord<'a>, f: &mut Flow<'a>) {
    for field in r.fields() {
        let s = field.spec;
        match (s.pen, s.id) {
            (0, 8) => f.src = field.ipv4().map_or(f.src, IpAddr::V4),
            (0, 12) => f.dst = field.ipv4().map_or(f.dst, IpAddr::V4),
            (0, 27) => f.src = field.ipv6().map_or(f.src, IpAddr::V6),
            (0, 28) => f.dst = field.ipv6().map_or(f.dst, IpAddr::V6),
            (0, 7) => f.src_port = field.u64().unwrap_or(0) as u16,
            (0, 11) => f.dst_port = field.u64().unwrap_or(0) as u16,
            (0, 4) => f.protocol = field.u64().unwrap_or(0) as u8,
            (0, 6) => f.tcp_flags = field.u64().unwrap_or(0) as u16,
            (0, 1) => f.octets = field.u64().unwrap_or(0),
            (0, 2) => f.packets = field.u64().unwrap_or(0),
            (REVERSE_PEN, 1) => f.rev_octets = field.u64().unwrap_or(0),
            (REVERSE_PEN, 2) => f.rev_packets = field.u64().unwrap_or(0),
            (0, 152) => f.start_ms = field.u64().unwrap_or(0),
            (0, 153) => f.end_ms = field.u64().unwrap_or(0),
            (0, 136) => f.end_reason = field.u64().unwrap_or(0) as u8,
            (DEFAULT_PODFLOW_PEN, podflow::COMMUNITY_ID) => f.community_id = field.str().unwrap_or(""),
            _ => {}
        }
    }
}
