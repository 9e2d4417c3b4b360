//! The spool on a real directory: order, restarts, checksums, the bound.

use std::fs;

use super::*;
use crate::sinks::elasticsearch::bulk::Builder;

/// `n` documents whose sources say `{"n":first+i}`.
fn docs(first: u64, n: u64) -> Docs {
    let mut b = Builder::default();
    for i in first..first + n {
        let mut id = [b'a'; 20];
        id[..8].copy_from_slice(format!("{i:08}").as_bytes());
        b.push(&id, |out| {
            out.extend_from_slice(format!("{{\"n\":{i}}}").as_bytes())
        });
    }
    b.finish()
}

/// The `n` of every document, in order.
fn numbers(batches: &[Docs]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|d| (0..d.len()).map(move |i| d.source(i).to_vec()))
        .map(|s| {
            let v: serde_json::Value = serde_json::from_slice(&s).unwrap_or_default();
            v["n"].as_u64().unwrap_or(u64::MAX)
        })
        .collect()
}

fn cfg(dir: &Path, max: u64, full: Full, segment: u64) -> Config {
    Config {
        dir: dir.to_path_buf(),
        max_octets: max,
        full,
        segment_octets: segment,
    }
}

fn open(c: Config) -> (Spool, Found) {
    Spool::open(c).unwrap_or_else(|e| panic!("{e}"))
}

fn take_all(s: &mut Spool) -> Vec<u64> {
    let mut all = Vec::new();
    while let Ok(Some(t)) = s.take() {
        assert_eq!(t.corrupt, 0);
        all.extend(numbers(&t.batches));
        s.release(t.id).unwrap_or_else(|e| panic!("{e}"));
    }
    all
}

#[test]
fn documents_come_back_in_order_across_segments_and_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = cfg(dir.path(), 1 << 20, Full::DropNewest, 600);
    let (mut s, found) = open(c.clone());
    assert_eq!(found, Found::default());
    for k in 0..10 {
        assert_eq!(
            s.append(&docs(k * 5, 5)).ok(),
            Some(Appended {
                stored: 5,
                dropped: 0
            })
        );
    }
    assert!(s.segments() > 1, "small segments roll over");
    assert_eq!(s.docs(), 50);
    // A partly replayed spool: the first segment is taken and released, the second taken only.
    let first = s.take().ok().flatten().map(|t| (t.id, numbers(&t.batches)));
    let (id, got) = first.unwrap_or_default();
    s.release(id).unwrap_or_else(|e| panic!("{e}"));
    assert!(!got.is_empty() && got.iter().copied().eq(0..got.len() as u64));
    let _second = s.take();
    s.close().unwrap_or_else(|e| panic!("{e}"));
    drop(s);

    let (mut again, found) = open(c);
    assert_eq!(
        found.docs,
        50 - got.len() as u64,
        "the taken second segment is replayed again"
    );
    assert_eq!(
        again.octets(),
        fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum::<u64>()
    );
    again.append(&docs(50, 3)).unwrap_or_else(|e| panic!("{e}"));
    let rest = take_all(&mut again);
    assert_eq!(rest, (got.len() as u64..53).collect::<Vec<_>>());
    assert!(again.is_empty() && again.octets() == 0);
    assert_eq!(
        fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(9),
        0,
        "released segments are deleted"
    );
}

#[test]
fn a_torn_tail_is_cut_and_a_bad_checksum_skips_the_rest_of_its_segment() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = cfg(dir.path(), 1 << 20, Full::DropNewest, 1 << 20);
    let (mut s, _) = open(c.clone());
    for k in 0..3 {
        s.append(&docs(k * 4, 4)).unwrap_or_else(|e| panic!("{e}"));
    }
    s.close().unwrap_or_else(|e| panic!("{e}"));
    drop(s);
    let seg = path_of(dir.path(), 0);
    let whole = fs::read(&seg).unwrap_or_default();
    // A write the process did not finish: half a record at the end.
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[MAGIC.len()..MAGIC.len() + 20]);
    fs::write(&seg, &torn).unwrap_or_else(|e| panic!("{e}"));
    let (mut s, found) = open(c.clone());
    assert_eq!((found.docs, found.truncated), (12, 20));
    assert_eq!(
        fs::read(&seg).unwrap_or_default(),
        whole,
        "cut back to the last whole record"
    );
    assert_eq!(take_all(&mut s), (0..12).collect::<Vec<_>>());

    // A flipped bit in the second record: the first is replayed, the rest counted corrupt.
    let (mut s, _) = open(c.clone());
    for k in 0..3 {
        s.append(&docs(k * 4, 4)).unwrap_or_else(|e| panic!("{e}"));
    }
    s.close().unwrap_or_else(|e| panic!("{e}"));
    drop(s);
    // An emptied spool numbers its segments from 0 again.
    let seg = path_of(dir.path(), 0);
    let mut bad = fs::read(&seg).unwrap_or_default();
    let second = MAGIC.len() + HEADER + docs(0, 4).octets() + HEADER + 30;
    bad[second] ^= 0x40;
    fs::write(&seg, &bad).unwrap_or_else(|e| panic!("{e}"));
    let (mut s, _) = open(c);
    let t = s.take().ok().flatten();
    let (got, corrupt) = t.map(|t| (numbers(&t.batches), t.corrupt)).unwrap_or_default();
    assert_eq!((got, corrupt), ((0..4).collect::<Vec<_>>(), 8));
}

#[test]
fn a_full_spool_drops_the_newest_or_the_oldest_as_configured() {
    // The largest record of the five (two-digit numbers).
    let one = (HEADER + docs(40, 10).octets()) as u64;
    for full in [Full::DropNewest, Full::DropOldest] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Room for three records of ten, one record per segment.
        let max = 3 * (one + MAGIC.len() as u64) + 1;
        let (mut s, _) = open(cfg(dir.path(), max, full, one + MAGIC.len() as u64));
        let mut dropped = 0;
        for k in 0..5 {
            let a = s.append(&docs(k * 10, 10)).unwrap_or_default();
            dropped += a.dropped;
            assert!(s.octets() <= max, "{} > {max}", s.octets());
        }
        assert_eq!(dropped, 20, "{full:?}");
        let kept = take_all(&mut s);
        match full {
            Full::DropNewest => assert_eq!(kept, (0..30).collect::<Vec<_>>()),
            Full::DropOldest => assert_eq!(kept, (20..50).collect::<Vec<_>>()),
        }
    }
}
