//! Datagrams from exporters to [`FlowRecord`]s: IPFIX with proto-ipfix, NetFlow v9 and v5 with the
//! `netflow_parser` crate.
//!
//! The [`Decoder`] is sans-IO: a datagram, the exporter's address and the caller's clock go in, flow
//! records come out through a callback. It keeps, per exporter address and port and per observation
//! domain, the templates (with a lifetime, RFC 7011 section 8.4 and RFC 3954 section 9), the data sets that
//! arrived before their template (held for a few seconds, then decoded or dropped), and the sequence
//! numbers that tell lost records. Every piece of state is bounded ([`DecodeLimits`], [`HoldLimits`]), per
//! exporter and in total, so one hostile exporter can neither exhaust memory nor crowd out the others;
//! when the total is nearly reached, exporters that hold state but decode nothing make room
//! ([`evict`]), so a flood of many cannot lock the others out either.
//!
//! IPFIX records are read through an extraction plan computed once per template, without allocating per
//! record. NetFlow v9 keeps its own template state here (lifetime on the caller's clock, the same limits
//! and holding as IPFIX) and has netflow_parser decode each data flowset against its template; v5 is
//! parsed by netflow_parser whole.
//!
//! Counters per exporter and domain are in [`DecodeStats`], read and reset by the caller per batch.

mod evict;
mod flow;
mod hold;
mod ipfix;
mod report;
mod state;
mod stats;
mod v5;
mod v9;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use foldhash::HashMap;

pub use hold::HoldLimits;
pub use report::Reports;
pub use stats::{DecodeStats, ErrorCounts, ExporterStats, StatsKey};

use state::ExporterState;
use std::collections::hash_map::Entry;

use crate::model::{FlowRecord, Protocol};

/// Bounds on decoder state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Exporter addresses (and ports) tracked at once; datagrams from more are refused.
    pub max_exporters: usize,
    /// Observation domains (IPFIX), Source IDs (v9) and engines (v5) per exporter.
    pub max_domains_per_exporter: usize,
    /// Templates per exporter, across its domains.
    pub max_templates_per_exporter: usize,
    /// Fields in one template.
    pub max_fields_per_template: usize,
    /// Fields of all of one exporter's templates: the size of its template state.
    pub max_template_fields_per_exporter: usize,
    /// Fields of all templates of all exporters.
    pub max_template_fields: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_exporters: 16_384,
            max_domains_per_exporter: 16,
            max_templates_per_exporter: 512,
            max_fields_per_template: 512,
            max_template_fields_per_exporter: 8_192,
            // About 40 MB of templates and plans.
            max_template_fields: 2 << 20,
        }
    }
}

/// How the decoder behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Enterprise number of podflow's Information Elements (Community ID, conntrack, observer).
    pub podflow_pen: u32,
    /// Templates not refreshed for this long are forgotten, milliseconds.
    pub template_lifetime_ms: u64,
    /// State bounds.
    pub limits: DecodeLimits,
    /// Holding of data sets that arrive before their template.
    pub hold: HoldLimits,
    /// Octets held across all exporters.
    pub max_held_bytes: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            podflow_pen: proto_ipfix::ie::DEFAULT_PODFLOW_PEN,
            // As proto-ipfix, ipfixcol2 and libfixbuf default to.
            template_lifetime_ms: 30 * 60 * 1000,
            limits: DecodeLimits::default(),
            hold: HoldLimits::default(),
            max_held_bytes: 64 << 20,
        }
    }
}

/// What one datagram gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Flow records produced (held sets decoded on the way included).
    pub records: u32,
    /// Decode errors and refusals.
    pub errors: u32,
}

/// State shared by all exporters, checked against the global limits.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    pub template_fields: usize,
    pub held_bytes: usize,
    pub held_sets: usize,
}

/// Held sets are checked for expiry this often (or every half hold time if shorter); templates every
/// eighth of their lifetime, but not more often than this.
const SWEEP_INTERVAL_MS: u64 = 1_000;

/// Decodes IPFIX, NetFlow v9 and NetFlow v5 datagrams from any number of exporters.
pub struct Decoder {
    cfg: DecoderConfig,
    ipfix: proto_ipfix::Decoder,
    exporters: HashMap<SocketAddr, ExporterState>,
    budget: Budget,
    stats: DecodeStats,
    next_hold_sweep: u64,
    next_template_sweep: u64,
    scratch: Scratch,
}

/// Buffers reused across datagrams.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Template IDs defined by the current datagram, whose held sets to replay.
    pub defined: Vec<u16>,
    /// Held sets being replayed.
    pub held: Vec<hold::HeldSet>,
    /// A v9 value's octets.
    pub value: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DecoderConfig::default())
    }
}

impl Decoder {
    /// A decoder with no state yet.
    pub fn new(cfg: DecoderConfig) -> Self {
        let l = cfg.limits;
        let cache = proto_ipfix::TemplateCache::new(
            proto_ipfix::TemplatePolicy::Udp {
                lifetime_ms: cfg.template_lifetime_ms,
            },
            proto_ipfix::Limits {
                max_sessions: l.max_exporters.saturating_mul(l.max_domains_per_exporter),
                max_templates_per_session: l.max_templates_per_exporter,
                max_fields_per_template: l.max_fields_per_template,
            },
        );
        Decoder {
            cfg,
            ipfix: proto_ipfix::Decoder::new(cache),
            exporters: HashMap::default(),
            budget: Budget::default(),
            stats: DecodeStats::default(),
            next_hold_sweep: 0,
            next_template_sweep: 0,
            scratch: Scratch::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Counters since the last reset.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Takes the counters, leaving them empty: one call per published batch.
    pub fn take_stats(&mut self) -> DecodeStats {
        std::mem::take(&mut self.stats)
    }

    /// Exporters tracked.
    pub fn exporters(&self) -> usize {
        self.exporters.len()
    }

    /// Templates held, across exporters and protocols.
    pub fn templates(&self) -> usize {
        self.exporters.values().map(|e| e.templates).sum()
    }

    /// Data sets held for want of a template, across exporters.
    pub fn held_sets(&self) -> usize {
        self.budget.held_sets
    }

    /// Decodes one datagram received from `exporter` at `now_ms` (caller's clock, milliseconds on any
    /// monotonic scale) and hands each flow record to `out`.
    pub fn decode<F: FnMut(FlowRecord)>(
        &mut self,
        exporter: SocketAddr,
        datagram: &[u8],
        now_ms: u64,
        out: &mut F,
    ) -> Decoded {
        self.sweep(now_ms);
        let version = match datagram {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        };
        if !matches!(version, 5 | 9 | 10) {
            // Not worth any state: counted under the exporter only if it is known already.
            let key = match self.exporters.contains_key(&exporter) {
                true => StatsKey {
                    exporter,
                    observation_domain: None,
                },
                false => StatsKey::OVERFLOW,
            };
            let reason = if datagram.len() < 2 {
                "truncated"
            } else {
                "unsupported_version"
            };
            let c = self.stats.entry(key);
            c.datagrams += 1;
            c.errors.add(reason, 1);
            return Decoded {
                records: 0,
                errors: 1,
            };
        }
        self.room_for_exporter(exporter);
        if version != 5 {
            self.room_for_templates(exporter, now_ms);
        }
        let Some(state) = admit(&mut self.exporters, &self.cfg, exporter) else {
            let c = self.stats.entry(StatsKey::OVERFLOW);
            c.datagrams += 1;
            c.limit_hits += 1;
            c.errors.add("state_limit", 1);
            return Decoded {
                records: 0,
                errors: 1,
            };
        };
        state.last_seen_ms = now_ms;
        let mut ctx = Ctx {
            cfg: &self.cfg,
            exporter,
            state,
            budget: &mut self.budget,
            stats: &mut self.stats,
            now_ms,
            out,
            decoded: Decoded::default(),
        };
        match version {
            10 => ipfix::decode(&mut ctx, &mut self.ipfix, datagram, &mut self.scratch),
            9 => v9::decode(&mut ctx, datagram, &mut self.scratch),
            _ => v5::decode(&mut ctx, datagram),
        }
        if ctx.decoded.records > 0 {
            ctx.state.last_data_ms = Some(now_ms);
        }
        ctx.decoded
    }

    /// Forgets templates past their lifetime, held sets past their time and exporters idle for a
    /// template lifetime with nothing left. [`Decoder::decode`] calls this as time passes; call it when no
    /// datagrams come.
    pub fn expire(&mut self, now_ms: u64) {
        self.expire_held(now_ms);
        self.expire_templates(now_ms);
    }

    fn sweep(&mut self, now_ms: u64) {
        if now_ms >= self.next_hold_sweep {
            self.next_hold_sweep =
                now_ms.saturating_add(SWEEP_INTERVAL_MS.min(self.cfg.hold.hold_ms / 2).max(1));
            self.expire_held(now_ms);
        }
        if now_ms >= self.next_template_sweep {
            let every = (self.cfg.template_lifetime_ms / 8).max(SWEEP_INTERVAL_MS);
            self.next_template_sweep = now_ms.saturating_add(every);
            self.expire_templates(now_ms);
        }
    }

    fn expire_held(&mut self, now_ms: u64) {
        if self.budget.held_sets == 0 {
            return;
        }
        for (addr, st) in self.exporters.iter_mut() {
            expire_held(st, *addr, &self.cfg, &mut self.budget, &mut self.stats, now_ms);
        }
    }

    fn expire_templates(&mut self, now_ms: u64) {
        self.ipfix.cache_mut().expire(now_ms);
        let lifetime = self.cfg.template_lifetime_ms;
        let cache = self.ipfix.cache();
        let budget = &mut self.budget;
        self.exporters.retain(|addr, st| {
            let mut gone = Vec::new();
            for d in st.domains.iter_mut() {
                let key = proto_ipfix::SessionKey {
                    exporter: *addr,
                    observation_domain: d.domain,
                };
                d.plans.retain(|id, plan| {
                    let alive = cache.get(&key, *id, now_ms).is_some();
                    if !alive {
                        gone.push(plan.fields);
                    }
                    alive
                });
                d.v9.retain(|_, t| {
                    let alive = now_ms.saturating_sub(t.last_seen_ms) <= lifetime;
                    if !alive {
                        gone.push(t.fields);
                    }
                    alive
                });
            }
            for fields in gone {
                st.remove_template(fields);
                budget.template_fields = budget.template_fields.saturating_sub(fields);
            }
            st.templates > 0 || !st.hold.is_empty() || now_ms.saturating_sub(st.last_seen_ms) <= lifetime
        });
    }
}

/// The state of `exporter`, created if the exporter limit allows.
fn admit<'a>(
    exporters: &'a mut HashMap<SocketAddr, ExporterState>,
    cfg: &DecoderConfig,
    exporter: SocketAddr,
) -> Option<&'a mut ExporterState> {
    let n = exporters.len();
    match exporters.entry(exporter) {
        Entry::Occupied(e) => Some(e.into_mut()),
        Entry::Vacant(e) => (n < cfg.limits.max_exporters).then(|| e.insert(ExporterState::default())),
    }
}

/// Drops an exporter's held sets past their time, counting them per domain.
fn expire_held(
    st: &mut ExporterState,
    addr: SocketAddr,
    cfg: &DecoderConfig,
    budget: &mut Budget,
    stats: &mut DecodeStats,
    now_ms: u64,
) {
    st.hold.expire(now_ms, cfg.hold.hold_ms, |domain, len| {
        budget.held_bytes = budget.held_bytes.saturating_sub(len);
        budget.held_sets = budget.held_sets.saturating_sub(1);
        stats
            .entry(StatsKey {
                exporter: addr,
                observation_domain: Some(domain),
            })
            .expired_sets += 1;
    });
}

/// One datagram being decoded: the exporter's state and where results go.
pub(crate) struct Ctx<'a, F> {
    pub cfg: &'a DecoderConfig,
    pub exporter: SocketAddr,
    pub state: &'a mut ExporterState,
    pub budget: &'a mut Budget,
    pub stats: &'a mut DecodeStats,
    pub now_ms: u64,
    pub out: &'a mut F,
    pub decoded: Decoded,
}

impl<F: FnMut(FlowRecord)> Ctx<'_, F> {
    /// Counts a datagram refused as a whole, under its domain if known.
    pub fn refuse(&mut self, protocol: Option<Protocol>, domain: Option<u32>, reason: &'static str) {
        let c = self.stats.entry(StatsKey {
            exporter: self.exporter,
            observation_domain: domain,
        });
        c.datagrams += 1;
        if protocol.is_some() {
            c.protocol = protocol;
        }
        c.errors.add(reason, 1);
        if reason == "state_limit" {
            c.limit_hits += 1;
        }
        self.decoded.errors += 1;
    }

    /// The index of a domain of the exporter, admitting it if the limit allows; counts a refusal.
    pub fn domain(&mut self, protocol: Protocol, domain: u32) -> Option<usize> {
        let i = self
            .state
            .domain(protocol, domain, self.cfg.limits.max_domains_per_exporter);
        if i.is_none() {
            self.refuse(Some(protocol), None, "state_limit");
        }
        i
    }

    /// The counters of a domain of this exporter, counting the datagram.
    pub fn counters(&mut self, protocol: Protocol, domain: u32) -> &mut ExporterStats {
        let c = self.stats.entry(StatsKey {
            exporter: self.exporter,
            observation_domain: Some(domain),
        });
        c.protocol = Some(protocol);
        c.datagrams += 1;
        c
    }

    /// Whether the exporter may grow its templates by `templates` and `fields`.
    pub fn template_room(&self, templates: usize, fields: usize) -> bool {
        let l = &self.cfg.limits;
        self.state.templates + templates <= l.max_templates_per_exporter
            && self.state.template_fields + fields <= l.max_template_fields_per_exporter
            && self.budget.template_fields + fields <= l.max_template_fields
    }

    /// Accounts for a template defined, replacing one of `old` fields if any.
    pub fn add_template(&mut self, fields: usize, old: Option<usize>) {
        self.state.add_template(fields, old);
        self.budget.template_fields = self.budget.template_fields.saturating_sub(old.unwrap_or(0)) + fields;
    }

    /// Holds a data set of `len` octets for want of its template (`make` builds it once it is known to
    /// fit); `false` when a limit refused it.
    pub fn hold(&mut self, len: usize, make: impl FnOnce() -> hold::HeldSet) -> bool {
        if self.budget.held_bytes + len > self.cfg.max_held_bytes
            || !self.state.hold.fits(len, &self.cfg.hold)
        {
            return false;
        }
        self.budget.held_bytes += len;
        self.budget.held_sets += 1;
        self.state.hold.push(make());
        true
    }

    /// Takes the held sets of template `set_id` of a domain into `out`, after expiring old ones.
    pub fn take_held(&mut self, protocol: Protocol, domain: u32, set_id: u16, out: &mut Vec<hold::HeldSet>) {
        if self.state.hold.is_empty() {
            return;
        }
        expire_held(
            self.state,
            self.exporter,
            self.cfg,
            self.budget,
            self.stats,
            self.now_ms,
        );
        let before = out.len();
        self.state.hold.take(protocol, domain, set_id, out);
        for s in &out[before..] {
            self.budget.held_bytes = self.budget.held_bytes.saturating_sub(s.body.len());
            self.budget.held_sets = self.budget.held_sets.saturating_sub(1);
        }
    }
}
