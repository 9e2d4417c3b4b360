//! Tests of the JSON writer: cursor, keys, escaping, numbers, addresses and dates.

use super::*;

fn text(f: impl FnOnce(&mut Cursor<'_>)) -> String {
    let mut v = vec![0u8; 4096];
    let mut c = Cursor::new(&mut v);
    f(&mut c);
    let n = c.finish().unwrap();
    v.truncate(n);
    String::from_utf8(v).unwrap()
}

#[test]
fn nests_dotted_names() {
    let names = [
        "@timestamp",
        "source.ip",
        "source.nat.ip",
        "source.nat.port",
        "source.port",
        "a.b.c",
        "a.x.y",
        "d",
    ];
    let layout = Layout::<8>::new(&names);
    let write = |which: &[usize]| {
        text(|out| {
            let mut w = ObjectWriter::begin(out, &layout);
            for &i in which {
                w.key(i);
                long(w.out(), 1);
            }
            w.end();
        })
    };
    assert_eq!(
        write(&[0, 1, 2, 3, 4, 5, 6, 7]),
        r#"{"@timestamp":1,"source":{"ip":1,"nat":{"ip":1,"port":1},"port":1},"a":{"b":{"c":1},"x":{"y":1}},"d":1}"#
    );
    // Members left out: objects open where their first written member needs them.
    assert_eq!(
        write(&[2, 6, 7]),
        r#"{"source":{"nat":{"ip":1}},"a":{"x":{"y":1}},"d":1}"#
    );
    assert_eq!(write(&[1, 4]), r#"{"source":{"ip":1,"port":1}}"#);
}

#[test]
fn closes_deep_objects_at_the_end_and_writes_empty_objects() {
    const LAYOUT: Layout<1> = Layout::new(&["a.b.c"]);
    let s = text(|out| {
        let mut w = ObjectWriter::begin(out, &LAYOUT);
        w.key(0);
        long(w.out(), 2);
        w.end();
    });
    assert_eq!(s, r#"{"a":{"b":{"c":2}}}"#);
    assert_eq!(text(|out| ObjectWriter::begin(out, &LAYOUT).end()), "{}");
}

#[test]
fn a_document_too_large_for_its_buffer_is_reported_not_cut() {
    let mut small = [0u8; 8];
    let mut c = Cursor::new(&mut small);
    c.bytes(b"1234567");
    assert_eq!(c.finish(), Some(7));
    long(&mut c, 12);
    assert_eq!(c.finish(), None, "two digits do not fit in one octet");
    let mut c = Cursor::new(&mut small);
    string(&mut c, "a longer string");
    assert_eq!(c.finish(), None);
    // Fixed-size copies near the end of the buffer still write what fits exactly.
    let mut buf = [0u8; 30];
    let mut c = Cursor::new(&mut buf);
    c.bytes(b"0123");
    DateText::new(0).put(&mut c);
    assert_eq!(c.finish(), Some(30));
    assert_eq!(&buf[4..], b"\"1970-01-01T00:00:00.000Z\"");
}

#[test]
fn escapes_what_json_requires() {
    let hostile = "q\"b\\n\nr\rt\tb\u{8}f\u{c}z\u{0}u\u{1f}\u{7f}é😀</script>";
    let s = text(|out| string(out, hostile));
    assert_eq!(
        s,
        r#""q\"b\\n\nr\rt\tb\bf\fz\u0000u\u001f"#.to_owned() + "\u{7f}é😀</script>\""
    );
    let back: String = serde_json::from_str(&s).unwrap();
    assert_eq!(back, hostile);
    assert_eq!(
        text(|out| escape(out, "app.kubernetes.io/name", true)),
        "app_kubernetes_io/name"
    );
}

#[test]
fn formats_dates_in_rfc3339_with_milliseconds() {
    assert_eq!(
        text(|o| DateText::new(1_714_564_800_123).put(o)),
        "\"2024-05-01T12:00:00.123Z\""
    );
    // In this order: a later day, back to one written before, a time on the same day, the day
    // before (the day's text is kept between calls).
    let cases = [
        (0, "1970-01-01T00:00:00.000Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_714_564_800_123, "2024-05-01T12:00:00.123Z"),
        (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
        (MAX_DATE_MS, "9999-12-31T23:59:59.999Z"),
        (u64::MAX, "9999-12-31T23:59:59.999Z"),
        (1_714_568_399_124, "2024-05-01T12:59:59.124Z"),
        (1_714_568_399_124, "2024-05-01T12:59:59.124Z"),
        (1_714_521_600_000, "2024-05-01T00:00:00.000Z"),
        (1_714_521_599_999, "2024-04-30T23:59:59.999Z"),
    ];
    for (ms, want) in cases {
        assert_eq!(text(|o| date(o, ms)), format!("\"{want}\""), "{ms}");
    }
}

#[test]
fn dates_agree_with_a_day_by_day_calendar() {
    // Walk every day from 1970 to 2400 and compare with a naive calendar.
    let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
    for days in 0..157_000u64 {
        assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][m as usize - 1];
        d += 1;
        if d > len {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
}

#[test]
fn numbers_at_every_power_of_ten_and_every_octet() {
    for p in 0..20u32 {
        let ten = 10u64.pow(p);
        for n in [ten - 1, ten, ten + 1] {
            assert_eq!(text(|o| digits(o, n)), n.to_string());
        }
    }
    assert_eq!(text(|o| digits(o, u64::MAX)), u64::MAX.to_string());
    for octet in 0..=255u8 {
        for addr in [
            std::net::Ipv4Addr::new(octet, 0, 255, octet),
            std::net::Ipv4Addr::new(255, octet, octet, 9),
        ] {
            assert_eq!(text(|o| ip(o, addr.into())), format!("\"{addr}\""));
        }
    }
}

#[test]
fn longs_fit_elasticsearch() {
    assert_eq!(text(|o| long(o, 0)), "0");
    for n in [1, 9, 10, 99, 100, 65_535, 1_000_000_007, i64::MAX as u64 - 1] {
        assert_eq!(text(|o| long(o, n)), n.to_string());
        assert_eq!(text(|o| decimal_string(o, n)), format!("\"{n}\""));
    }
    assert_eq!(text(|o| long(o, u64::MAX)), i64::MAX.to_string());
    assert_eq!(text(|o| decimal_string(o, 58)), "\"58\"");
    assert_eq!(text(|o| ip(o, "fe80::1".parse().unwrap())), "\"fe80::1\"");
    assert_eq!(
        text(|o| ip(o, "::ffff:10.0.0.1".parse().unwrap())),
        "\"::ffff:10.0.0.1\""
    );
    for addr in [
        "0.0.0.0",
        "10.244.1.5",
        "255.255.255.255",
        "1.20.100.3",
        "::ffff:255.255.255.255",
        "1111:2222:3333:4444:5555:6666:7777:8888",
    ] {
        assert_eq!(text(|o| ip(o, addr.parse().unwrap())), format!("\"{addr}\""));
        assert_eq!(
            text(|o| IpText::new(addr.parse().unwrap()).put(o)),
            format!("\"{addr}\"")
        );
    }
}
