//! Template state per exporter and observation domain (RFC 7011 section 8).
//!
//! Templates are scoped to a transport session and an Observation Domain (section 8). Over UDP a session is
//! the exporter's address and source port, so state is keyed by [`SessionKey`]. The cache takes the caller's
//! clock as a parameter (milliseconds on any monotonic scale) and never reads one.
//!
//! The policy decides the section 8.4 rules:
//! - [`TemplatePolicy::Udp`]: templates expire after a lifetime unless refreshed; a new definition for an ID
//!   replaces the old one; withdrawals are ignored (and counted by the decoder).
//! - [`TemplatePolicy::Stream`] (files, TCP): templates live until withdrawn; withdrawals are honoured.
//!
//! Limits bound the state one exporter can create, so a hostile exporter cannot exhaust memory.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::SocketAddr;

use crate::template::{RawTemplate, Template};
use crate::wire::{OPTIONS_TEMPLATE_SET_ID, TEMPLATE_SET_ID};

/// One template scope: exporter address and port, and Observation Domain ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKey {
    /// The exporter's address and source port.
    pub exporter: SocketAddr,
    /// The Observation Domain ID from the message header.
    pub observation_domain: u32,
}

impl Hash for SessionKey {
    /// Hashes the key as one 24-octet write. The derived hash fed the address, port and domain to the
    /// hasher in several small pieces, each costly for SipHash, and the session is looked up for every
    /// message. Keys that are equal hash equally: the IPv6 flow label and scope ID, which the hash leaves
    /// out, only make more keys unequal.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (ip, v6) = match self.exporter {
            SocketAddr::V4(a) => (u128::from(a.ip().to_bits()), 0),
            SocketAddr::V6(a) => (a.ip().to_bits(), 1u64 << 48),
        };
        let rest = v6 | u64::from(self.exporter.port()) << 32 | u64::from(self.observation_domain);
        let mut octets = [0u8; 24];
        octets[..16].copy_from_slice(&ip.to_le_bytes());
        octets[16..].copy_from_slice(&rest.to_le_bytes());
        state.write(&octets);
    }
}

/// Hashes a template ID by one multiplication by an odd constant.
///
/// The map is per session, keyed by the 16-bit template IDs its exporter chose, and consulted for every
/// data set. The hash is a bijection of the ID whose low bits depend only on the ID's low bits, so IDs
/// that share a bucket must agree in those bits: with the table's at most 8192 buckets (4096 templates),
/// at most 8 of the 65536 IDs start probing from any one bucket, and an exporter cannot pile its templates
/// into one probe sequence. SipHash would resist that too, at several times the cost.
#[derive(Clone, Copy, Default)]
struct TemplateIdHasher(u64);

impl Hasher for TemplateIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u16 keys are hashed; this keeps the hasher correct for any other use.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

type TemplateMap = HashMap<u16, Cached, BuildHasherDefault<TemplateIdHasher>>;

/// How templates live and die.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplatePolicy {
    /// UDP transport: templates unrefreshed for `lifetime_ms` are forgotten; withdrawals are ignored.
    Udp {
        /// Template lifetime in milliseconds; RFC 7011 section 8.4 asks for at least 3 refresh intervals.
        lifetime_ms: u64,
    },
    /// Files and reliable streams: templates live until withdrawn.
    Stream,
}

impl Default for TemplatePolicy {
    /// UDP with a 30-minute lifetime, as ipfixcol2 and libfixbuf default to.
    fn default() -> Self {
        TemplatePolicy::Udp {
            lifetime_ms: 30 * 60 * 1000,
        }
    }
}

/// Bounds on template state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sessions (exporter and domain pairs) held at once.
    pub max_sessions: usize,
    /// Templates held per session.
    pub max_templates_per_session: usize,
    /// Fields accepted in one template.
    pub max_fields_per_template: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 16_384,
            max_templates_per_session: 4_096,
            max_fields_per_template: 1_024,
        }
    }
}

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The ID was not in use.
    New,
    /// An identical definition was refreshed (not worth logging, section 8.4).
    Refreshed,
    /// A different definition replaced the one in use.
    Replaced,
}

/// What a withdrawal did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithdrawOutcome {
    /// Ignored because the policy is UDP (section 8.4).
    Ignored,
    /// This many templates were withdrawn.
    Withdrawn(usize),
    /// No such template: ignored (section 8.1 asks to log it).
    Unknown,
}

/// A limit refused new state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Too many sessions.
    #[error("session limit of {0} reached")]
    Sessions(usize),
    /// Too many templates in one session.
    #[error("template limit of {0} per session reached")]
    Templates(usize),
}

/// What sequence tracking concluded about a message (RFC 7011 sections 3.1 and 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// First message seen, or tracking was reset.
    Start,
    /// The expected sequence number.
    InOrder,
    /// This many data records went missing before this message.
    Lost(u32),
    /// An older message arriving late (or an exporter restart); not counted as loss.
    Behind,
}

struct Cached {
    template: Template,
    last_seen: u64,
}

/// The templates and sequence state of one session.
#[derive(Default)]
pub(crate) struct Session {
    templates: TemplateMap,
    /// The last in-order message: its sequence number and its data records.
    last: Option<(u32, u32)>,
    /// The session's exporter numbers each message with the records sent *including* its own.
    inclusive: bool,
    /// The last message that was behind (number, records): where the stream would go on from if it
    /// started a new count.
    restart: Option<(u32, u32)>,
}

fn alive(policy: TemplatePolicy, c: &Cached, now: u64) -> bool {
    match policy {
        TemplatePolicy::Udp { lifetime_ms } => now.saturating_sub(c.last_seen) <= lifetime_ms,
        TemplatePolicy::Stream => true,
    }
}

/// One session of a cache, looked up once for all the sets of a message.
pub(crate) struct Scope<'a> {
    session: &'a mut Session,
    policy: TemplatePolicy,
    limits: Limits,
}

impl Scope<'_> {
    /// The live template `id`.
    #[inline]
    pub(crate) fn get(&self, id: u16, now: u64) -> Option<&Template> {
        let c = self.session.templates.get(&id)?;
        alive(self.policy, c, now).then_some(&c.template)
    }

    /// Refreshes template `raw.id()` if `raw` defines it as it is; false otherwise, with nothing done.
    pub(crate) fn refresh(&mut self, raw: &RawTemplate<'_>, now: u64) -> bool {
        match self.session.templates.get_mut(&raw.id()) {
            Some(c) if raw.defines(&c.template) => {
                c.last_seen = now;
                true
            }
            _ => false,
        }
    }

    /// Defines or refreshes a template (see [`TemplateCache::insert`]).
    pub(crate) fn insert(&mut self, template: Template, now: u64) -> Result<InsertOutcome, LimitError> {
        let max = self.limits.max_templates_per_session;
        let n = self.session.templates.len();
        match self.session.templates.entry(template.id()) {
            Entry::Occupied(mut e) => {
                let c = e.get_mut();
                c.last_seen = now;
                if c.template == template {
                    Ok(InsertOutcome::Refreshed)
                } else {
                    c.template = template;
                    Ok(InsertOutcome::Replaced)
                }
            }
            Entry::Vacant(e) => {
                if n >= max {
                    return Err(LimitError::Templates(max));
                }
                e.insert(Cached {
                    template,
                    last_seen: now,
                });
                Ok(InsertOutcome::New)
            }
        }
    }

    /// Withdraws templates (see [`TemplateCache::withdraw`]).
    pub(crate) fn withdraw(&mut self, id: u16) -> WithdrawOutcome {
        if matches!(self.policy, TemplatePolicy::Udp { .. }) {
            return WithdrawOutcome::Ignored;
        }
        let templates = &mut self.session.templates;
        let before = templates.len();
        match id {
            TEMPLATE_SET_ID => templates.retain(|_, c| c.template.is_options()),
            OPTIONS_TEMPLATE_SET_ID => templates.retain(|_, c| !c.template.is_options()),
            _ => {
                templates.remove(&id);
            }
        }
        match before - templates.len() {
            0 => WithdrawOutcome::Unknown,
            n => WithdrawOutcome::Withdrawn(n),
        }
    }

    /// Sequence tracking (see [`TemplateCache::track_sequence`]).
    pub(crate) fn track_sequence(&mut self, sequence: u32, records: Option<u32>) -> SequenceCheck {
        let session = &mut *self.session;
        // Where the message after `m` is: RFC 7011's numbering (m's number and records), and that of
        // an exporter that counts a message's own records in its number (m's number and this one's).
        let rfc = |m: Option<(u32, u32)>| m.map(|(s, n)| s.wrapping_add(n));
        let own = |m: Option<(u32, u32)>| m.zip(records).map(|((s, _), n)| s.wrapping_add(n));
        let inclusive = own(session.last);
        let check = match rfc(session.last) {
            None => SequenceCheck::Start,
            Some(expected) if expected == sequence => {
                // Where the two numberings differ, this one is RFC 7011's.
                session.inclusive &= inclusive == Some(sequence);
                SequenceCheck::InOrder
            }
            Some(_) if rfc(session.restart) == Some(sequence) || own(session.restart) == Some(sequence) => {
                SequenceCheck::InOrder
            }
            Some(_) if inclusive == Some(sequence) => {
                session.inclusive = true;
                SequenceCheck::InOrder
            }
            Some(expected) => {
                let from = match (session.inclusive, inclusive) {
                    (true, Some(e)) => e,
                    _ => expected,
                };
                match sequence.wrapping_sub(from) {
                    gap if gap < 1 << 31 => SequenceCheck::Lost(gap),
                    _ => SequenceCheck::Behind,
                }
            }
        };
        let this = records.map(|n| (sequence, n));
        if check == SequenceCheck::Behind {
            session.restart = this;
        } else {
            session.last = this;
            session.restart = None;
        }
        check
    }
}

/// Template state for every session the decoder has seen.
pub struct TemplateCache {
    policy: TemplatePolicy,
    limits: Limits,
    sessions: HashMap<SessionKey, Session>,
}

impl TemplateCache {
    /// An empty cache.
    pub fn new(policy: TemplatePolicy, limits: Limits) -> Self {
        TemplateCache {
            policy,
            limits,
            sessions: HashMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> TemplatePolicy {
        self.policy
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The live template `id` of a session.
    pub fn get(&self, key: &SessionKey, id: u16, now: u64) -> Option<&Template> {
        let c = self.sessions.get(key)?.templates.get(&id)?;
        alive(self.policy, c, now).then_some(&c.template)
    }

    /// The session of `key`, created if new and the session limit allows.
    pub(crate) fn scope(&mut self, key: &SessionKey) -> Result<Scope<'_>, LimitError> {
        let n = self.sessions.len();
        let session = match self.sessions.entry(*key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                if n >= self.limits.max_sessions {
                    return Err(LimitError::Sessions(self.limits.max_sessions));
                }
                e.insert(Session::default())
            }
        };
        Ok(Scope {
            session,
            policy: self.policy,
            limits: self.limits,
        })
    }

    /// Defines or refreshes a template.
    pub fn insert(
        &mut self,
        key: &SessionKey,
        template: Template,
        now: u64,
    ) -> Result<InsertOutcome, LimitError> {
        self.scope(key)?.insert(template, now)
    }

    /// Withdraws template `id`, or all templates (ID 2) or all options templates (ID 3) of the session.
    pub fn withdraw(&mut self, key: &SessionKey, id: u16) -> WithdrawOutcome {
        let (policy, limits) = (self.policy, self.limits);
        match self.sessions.get_mut(key) {
            Some(session) => Scope {
                session,
                policy,
                limits,
            }
            .withdraw(id),
            None if matches!(policy, TemplatePolicy::Udp { .. }) => WithdrawOutcome::Ignored,
            None => WithdrawOutcome::Unknown,
        }
    }

    /// Forgets templates past their lifetime and sessions left empty; returns the templates dropped.
    pub fn expire(&mut self, now: u64) -> usize {
        let TemplatePolicy::Udp { lifetime_ms } = self.policy else {
            return 0;
        };
        let mut dropped = 0;
        self.sessions.retain(|_, s| {
            let before = s.templates.len();
            s.templates
                .retain(|_, c| now.saturating_sub(c.last_seen) <= lifetime_ms);
            dropped += before - s.templates.len();
            !s.templates.is_empty()
        });
        dropped
    }

    /// Checks a message's sequence number against the one expected, then expects `sequence + records` next.
    ///
    /// `records` must count every data record of the message; when the caller could not count them all
    /// (a set without its template), it passes `None` and tracking restarts at the next message.
    ///
    /// A message behind the expected number is either late or the first of an exporter that restarted its
    /// count. It leaves the expectation alone, so the next in-order message is not counted as loss again;
    /// but if the next message follows on from it, the exporter restarted and tracking follows the new count
    /// (without that, every message up to the old number would be "behind" and the first one past it would
    /// report a loss that never happened).
    ///
    /// Some exporters (softflowd 1.1) number each message with the data records sent *including* its own,
    /// where RFC 7011 asks for those sent before it. A message at the previous message's number plus its
    /// own records is taken as in order; once a session has shown that numbering (two messages of
    /// different sizes), its losses are counted from it, so a lost message counts its records rather than
    /// the difference between two messages' sizes. A message that only RFC 7011's numbering explains
    /// turns that off again.
    pub fn track_sequence(&mut self, key: &SessionKey, sequence: u32, records: Option<u32>) -> SequenceCheck {
        match self.scope(key) {
            Ok(mut scope) => scope.track_sequence(sequence, records),
            Err(_) => SequenceCheck::Start,
        }
    }

    /// Forgets a session whole (its templates and sequence state); returns the templates it held.
    pub fn remove(&mut self, key: &SessionKey) -> usize {
        self.sessions.remove(key).map_or(0, |s| s.templates.len())
    }

    /// Sessions held.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Templates held, across all sessions.
    pub fn templates(&self) -> usize {
        self.sessions.values().map(|s| s.templates.len()).sum()
    }
}

impl Default for TemplateCache {
    fn default() -> Self {
        TemplateCache::new(TemplatePolicy::default(), Limits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ie::FieldSpec;

    fn key(port: u16, domain: u32) -> SessionKey {
        SessionKey {
            exporter: SocketAddr::from(([192, 0, 2, 1], port)),
            observation_domain: domain,
        }
    }

    fn tpl(id: u16, len: u16) -> Template {
        Template::new(id, vec![FieldSpec::iana(8, 4), FieldSpec::iana(1, len)]).unwrap()
    }

    #[test]
    fn udp_replaces_refreshes_expires_and_ignores_withdrawals() {
        let mut c = TemplateCache::new(TemplatePolicy::Udp { lifetime_ms: 1000 }, Limits::default());
        let k = key(4739, 1);
        assert_eq!(c.insert(&k, tpl(256, 4), 0), Ok(InsertOutcome::New));
        assert_eq!(c.insert(&k, tpl(256, 4), 500), Ok(InsertOutcome::Refreshed));
        assert_eq!(c.insert(&k, tpl(256, 8), 600), Ok(InsertOutcome::Replaced));
        assert_eq!(c.get(&k, 256, 1600).unwrap().fixed_len(), Some(12));
        assert_eq!(c.withdraw(&k, 256), WithdrawOutcome::Ignored);
        // scoped by port and by domain
        assert!(c.get(&key(4740, 1), 256, 600).is_none());
        assert!(c.get(&key(4739, 2), 256, 600).is_none());
        assert!(c.get(&k, 256, 1601).is_none(), "past its lifetime");
        assert_eq!(c.expire(1601), 1);
        assert_eq!(c.sessions(), 0);
    }

    #[test]
    fn stream_honours_withdrawals() {
        let mut c = TemplateCache::new(TemplatePolicy::Stream, Limits::default());
        let k = key(1, 0);
        c.insert(&k, tpl(256, 4), 0).unwrap();
        c.insert(&k, tpl(257, 4), 0).unwrap();
        let opts = Template::new_options(258, 1, vec![FieldSpec::iana(149, 4)]).unwrap();
        c.insert(&k, opts, 0).unwrap();
        assert!(
            c.get(&k, 256, u64::MAX).is_some(),
            "stream templates do not expire"
        );
        assert_eq!(c.withdraw(&k, 256), WithdrawOutcome::Withdrawn(1));
        assert_eq!(c.withdraw(&k, 256), WithdrawOutcome::Unknown);
        assert_eq!(c.withdraw(&k, TEMPLATE_SET_ID), WithdrawOutcome::Withdrawn(1));
        assert!(c.get(&k, 258, 0).is_some());
        assert_eq!(
            c.withdraw(&k, OPTIONS_TEMPLATE_SET_ID),
            WithdrawOutcome::Withdrawn(1)
        );
        assert_eq!(c.templates(), 0);
    }

    #[test]
    fn limits_refuse_new_state_but_keep_old() {
        let limits = Limits {
            max_sessions: 1,
            max_templates_per_session: 1,
            max_fields_per_template: 8,
        };
        let mut c = TemplateCache::new(TemplatePolicy::Stream, limits);
        c.insert(&key(1, 0), tpl(256, 4), 0).unwrap();
        assert_eq!(
            c.insert(&key(1, 0), tpl(257, 4), 0),
            Err(LimitError::Templates(1))
        );
        assert_eq!(c.insert(&key(2, 0), tpl(256, 4), 0), Err(LimitError::Sessions(1)));
        assert_eq!(c.insert(&key(1, 0), tpl(256, 8), 0), Ok(InsertOutcome::Replaced));
    }

    #[test]
    fn many_templates_and_look_alike_keys_stay_apart() {
        let mut c = TemplateCache::new(TemplatePolicy::Stream, Limits::default());
        let k = key(4739, 7);
        // A full session: IDs that share their low bits with each other, then consecutive ones.
        let ids: Vec<u16> = (0..15u16)
            .map(|i| 256 + i * 4096)
            .chain(257..257 + 4081)
            .collect();
        for (n, &id) in ids.iter().enumerate() {
            assert_eq!(
                c.insert(&k, tpl(id, 1 + (n % 8) as u16), 0),
                Ok(InsertOutcome::New)
            );
        }
        assert_eq!(c.templates(), Limits::default().max_templates_per_session);
        for (n, &id) in ids.iter().enumerate() {
            assert_eq!(
                c.get(&k, id, 0).map(Template::fixed_len),
                Some(Some(4 + 1 + n % 8))
            );
        }
        // IPv4 192.0.2.1 and its IPv4-mapped IPv6 form are different exporters.
        let mapped = SessionKey {
            exporter: SocketAddr::from(([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201], 4739)),
            observation_domain: 7,
        };
        assert_ne!(mapped, k);
        assert!(c.get(&mapped, 256, 0).is_none());
        assert!(c.get(&key(4739, 7 + (1 << 16)), 256, 0).is_none());
    }

    #[test]
    fn sequence_tracking_counts_gaps_and_wraps() {
        let mut c = TemplateCache::default();
        let k = key(1, 0);
        assert_eq!(c.track_sequence(&k, u32::MAX - 1, Some(3)), SequenceCheck::Start);
        assert_eq!(c.track_sequence(&k, 1, Some(10)), SequenceCheck::InOrder);
        assert_eq!(c.track_sequence(&k, 16, Some(1)), SequenceCheck::Lost(5));
        assert_eq!(c.track_sequence(&k, 3, Some(1)), SequenceCheck::Behind);
        assert_eq!(c.track_sequence(&k, 17, None), SequenceCheck::InOrder);
        assert_eq!(c.track_sequence(&k, 40, Some(1)), SequenceCheck::Start);
    }

    #[test]
    fn sequence_numbers_that_count_the_message_own_records_are_in_order() {
        let mut c = TemplateCache::default();
        let k = key(1, 0);
        // Each number is the records sent so far, this message's included (softflowd 1.1's IPFIX).
        assert_eq!(c.track_sequence(&k, 3, Some(3)), SequenceCheck::Start);
        for (sequence, records) in [(8, 5), (10, 2), (17, 7), (24, 7), (25, 1)] {
            assert_eq!(
                c.track_sequence(&k, sequence, Some(records)),
                SequenceCheck::InOrder
            );
        }
        // A message of 4 records (29) is lost: the next, of 6, is 35.
        assert_eq!(c.track_sequence(&k, 35, Some(6)), SequenceCheck::Lost(4));
        assert_eq!(c.track_sequence(&k, 37, Some(2)), SequenceCheck::InOrder);
        // The exporter restarts its count; the message after follows on from it.
        assert_eq!(c.track_sequence(&k, 2, Some(2)), SequenceCheck::Behind);
        assert_eq!(c.track_sequence(&k, 7, Some(5)), SequenceCheck::InOrder);
        assert_eq!(c.track_sequence(&k, 8, Some(1)), SequenceCheck::InOrder);
    }

    #[test]
    fn an_rfc_numbered_session_counts_a_lost_message_by_the_numbers_before_it() {
        let mut c = TemplateCache::default();
        let k = key(1, 0);
        assert_eq!(c.track_sequence(&k, 0, Some(3)), SequenceCheck::Start);
        assert_eq!(c.track_sequence(&k, 3, Some(5)), SequenceCheck::InOrder);
        // Lost: a message of 4 records at 8. The next (12, 6 records) is not 8 + 6 either.
        assert_eq!(c.track_sequence(&k, 12, Some(6)), SequenceCheck::Lost(4));
        assert_eq!(c.track_sequence(&k, 18, Some(2)), SequenceCheck::InOrder);
    }

    #[test]
    fn sequence_tracking_follows_an_exporter_restart_but_not_a_late_message() {
        let mut c = TemplateCache::default();
        let k = key(1, 0);
        c.track_sequence(&k, 0, Some(10));
        assert_eq!(c.track_sequence(&k, 20, Some(10)), SequenceCheck::Lost(10));
        // 10..20 arrives late; the stream goes on at 30 as expected.
        assert_eq!(c.track_sequence(&k, 10, Some(10)), SequenceCheck::Behind);
        assert_eq!(c.track_sequence(&k, 30, Some(5)), SequenceCheck::InOrder);
        // The exporter restarts at 0 and goes on from there: nothing was lost.
        assert_eq!(c.track_sequence(&k, 0, Some(20)), SequenceCheck::Behind);
        assert_eq!(c.track_sequence(&k, 20, Some(20)), SequenceCheck::InOrder);
        assert_eq!(c.track_sequence(&k, 40, Some(1)), SequenceCheck::InOrder);
        assert_eq!(c.track_sequence(&k, 45, Some(1)), SequenceCheck::Lost(4));
    }
}
