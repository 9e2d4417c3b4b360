//! The deterministic `_id` of a document: a digest of what identifies its record, so that a bulk
//! request sent twice (a retry after a timeout, a spool replayed after a crash, the same datagrams
//! replayed on purpose) makes the second copy a 409 conflict instead of a duplicate document.
//!
//! What identifies a record: the exporter's address and source port, the protocol, the observation
//! domain, the message's export time and sequence number, and the record's place in the message.
//! The digest is SHA-1 over those values in a fixed binary layout, cut to 120 bits and written as 20
//! characters of URL-safe base64 (no padding): short `_id`s keep the index small, and at 120 bits two
//! records of one data stream never meet by chance. The layout carries a version octet, so it can change
//! without old and new `_id`s meeting.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::model::FlowRecord;

/// Characters of an `_id`.
pub const ID_LEN: usize = 20;

/// Version of the layout digested.
const LAYOUT: u8 = 1;

/// The `_id` of `record`'s document.
pub fn document_id(record: &FlowRecord) -> [u8; ID_LEN] {
    let mut input = [0u8; 40];
    input[0] = LAYOUT;
    input[1] = record.protocol.version() as u8;
    let ip = match record.exporter.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    input[2..18].copy_from_slice(&ip.octets());
    input[18..20].copy_from_slice(&record.exporter.port().to_be_bytes());
    input[20..24].copy_from_slice(&record.observation_domain.to_be_bytes());
    input[24..28].copy_from_slice(&record.export_time.to_be_bytes());
    input[28..32].copy_from_slice(&record.sequence.to_be_bytes());
    input[32..36].copy_from_slice(&record.position.to_be_bytes());
    let digest = Sha1::digest(&input[..36]);
    let mut out = [0u8; ID_LEN];
    // 15 octets are exactly 20 base64 characters.
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(&digest[..15], &mut out)
        .unwrap_or(0);
    debug_assert_eq!(n, ID_LEN);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::tests::record;

    fn id(r: &FlowRecord) -> String {
        String::from_utf8(document_id(r).to_vec()).unwrap_or_default()
    }

    #[test]
    fn the_same_record_has_the_same_id_and_every_identifying_value_changes_it() {
        let base = record("10.0.0.1", 40000, "10.0.0.2", 80);
        let a = id(&base);
        assert_eq!(a.len(), ID_LEN);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{a}"
        );
        // Golden: the layout is part of the data's identity across collector versions.
        assert_eq!(a, id(&base.clone()));
        let mut seen = std::collections::HashSet::from([a]);
        let variants: [fn(&mut FlowRecord); 7] = [
            |r| r.exporter.set_port(r.exporter.port() + 1),
            |r| r.exporter.set_ip("192.0.2.99".parse().unwrap_or(r.exporter.ip())),
            |r| r.observation_domain += 1,
            |r| r.export_time += 1,
            |r| r.sequence += 1,
            |r| r.position += 1,
            |r| r.protocol = crate::model::Protocol::NetflowV9,
        ];
        for change in variants {
            let mut r = base.clone();
            change(&mut r);
            assert!(seen.insert(id(&r)), "{r:?} has an id already seen");
        }
        // What does not identify the record (its counters, its tuple) leaves the id alone.
        let mut r = base.clone();
        r.forward.octets += 1000;
        r.sport += 1;
        assert_eq!(id(&r), id(&base));
    }

    #[test]
    fn golden_id() {
        let r = record("10.0.0.1", 40000, "10.0.0.2", 80);
        assert_eq!(
            id(&r),
            GOLDEN,
            "the _id layout changed: old documents would be written again"
        );
    }

    /// The id of `record("10.0.0.1", 40000, "10.0.0.2", 80)`.
    const GOLDEN: &str = "5r3tttbIgFUiMRQMZ-WQ";
}
