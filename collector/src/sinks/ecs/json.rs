//! A JSON object writer for flat dotted field names, appending to a `Vec<u8>`.
//!
//! Fields arrive as dotted names (`source.nat.ip`) in table order; the writer opens and closes the nested
//! objects they imply, so `source.ip` then `source.nat.ip` then `network.type` becomes
//! `{"source":{"ip":..,"nat":{"ip":..}},"network":{"type":..}}`. It relies on the table keeping every
//! object's fields contiguous (checked by a test in `fields`), and on names needing no escaping.
//!
//! Nothing here allocates beyond the output buffer's own growth: numbers go through `itoa`'s stack buffer,
//! addresses through `Display` straight into the buffer.

use std::io::Write as _;
use std::net::IpAddr;

/// Last millisecond of year 9999: later dates have no four-digit year, and Elasticsearch's default date
/// format would reject them.
pub(crate) const MAX_DATE_MS: u64 = 253_402_300_799_999;

/// Writes one JSON object whose members are given as dotted names.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    /// The path of the innermost open object below the top level (`source.nat`), or "".
    open: &'static str,
    /// No member written yet in the innermost open object.
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens the top-level object.
    pub(crate) fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter {
            out,
            open: "",
            first: true,
        }
    }

    /// Starts the member `name`: closes the objects the previous field opened and this one does not
    /// share, opens the ones it needs, and writes the leaf key. The value must follow.
    pub(crate) fn key(&mut self, name: &'static str) {
        let (parent, leaf) = split_leaf(name);
        // Most fields are siblings of the previous one: nothing to close or open.
        if parent != self.open {
            self.reopen(parent);
        }
        if !self.first {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(leaf.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.first = false;
    }

    /// Closes every open object, the top-level one included.
    pub(crate) fn end(self) {
        for _ in 0..depth(self.open.as_bytes()) + 1 {
            self.out.push(b'}');
        }
    }

    /// The buffer, to write a value.
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Moves from the open object to `parent`, through their deepest common ancestor.
    fn reopen(&mut self, parent: &'static str) {
        let (old, new) = (self.open.as_bytes(), parent.as_bytes());
        let common = common_prefix(old, new);
        for _ in 0..depth(trim_dot(&old[common..])) {
            self.out.push(b'}');
            self.first = false;
        }
        let rest = trim_dot(&new[common..]);
        if !rest.is_empty() {
            for seg in rest.split(|&b| b == b'.') {
                if !self.first {
                    self.out.push(b',');
                }
                self.out.push(b'"');
                self.out.extend_from_slice(seg);
                self.out.extend_from_slice(b"\":{");
                self.first = true;
            }
        }
        self.open = parent;
    }
}

/// Splits `a.b.c` into (`a.b`, `c`); a name without dots has no parent.
fn split_leaf(name: &'static str) -> (&'static str, &'static str) {
    match name.bytes().rposition(|b| b == b'.') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    }
}

/// Number of segments (objects) in a path.
fn depth(path: &[u8]) -> usize {
    if path.is_empty() {
        0
    } else {
        path.iter().filter(|&&b| b == b'.').count() + 1
    }
}

/// Length of the longest prefix of whole segments two paths share (`a.b.c`, `a.bx` -> 1).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut same = 0;
    while same < a.len() && same < b.len() && a[same] == b[same] {
        same += 1;
    }
    let boundary = |p: &[u8]| same == p.len() || p[same] == b'.';
    if boundary(a) && boundary(b) {
        return same;
    }
    a[..same].iter().rposition(|&c| c == b'.').unwrap_or(0)
}

fn trim_dot(p: &[u8]) -> &[u8] {
    p.strip_prefix(b".").unwrap_or(p)
}

/// Appends `s` as a JSON string, quotes included.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape(out, s, false);
    out.push(b'"');
}

/// Appends the body of a JSON string for `s`; with `dedot`, every `.` becomes `_` (label keys).
pub(crate) fn escape(out: &mut Vec<u8>, s: &str, dedot: bool) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'.' if dedot => b"_",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            // Multi-byte UTF-8 sequences pass through: JSON text is UTF-8, and a &str is valid UTF-8.
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `n` as a JSON number that fits Elasticsearch's signed `long`: larger counts (only a broken or
/// hostile exporter sends them) are clamped to `i64::MAX` rather than get the document rejected.
pub(crate) fn long(out: &mut Vec<u8>, n: u64) {
    let n = n.min(i64::MAX as u64);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `n` as a JSON string of decimal digits (`network.iana_number` is a keyword).
pub(crate) fn decimal_string(out: &mut Vec<u8>, n: u64) {
    out.push(b'"');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.push(b'"');
}

/// Appends an address as a JSON string.
pub(crate) fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'"');
    match ip {
        // The common case, without the formatting machinery.
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        // Writing to a Vec cannot fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

/// Appends `ms` (Unix milliseconds) as a JSON string in RFC 3339 UTC with milliseconds,
/// `2024-05-01T12:00:00.123Z`. Callers check `ms <= MAX_DATE_MS` first; later values are clamped.
pub(crate) fn date(out: &mut Vec<u8>, ms: u64) {
    let ms = ms.min(MAX_DATE_MS);
    let secs = ms / 1000;
    let days = secs / 86_400;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"\"0000-00-00T00:00:00.000Z\"";
    put_digits(&mut b[1..5], y);
    put_digits(&mut b[6..8], m);
    put_digits(&mut b[9..11], d);
    put_digits(&mut b[12..14], sod / 3600);
    put_digits(&mut b[15..17], sod / 60 % 60);
    put_digits(&mut b[18..20], sod % 60);
    put_digits(&mut b[21..24], ms % 1000);
    out.extend_from_slice(&b);
}

/// Writes `n` as zero-padded decimal digits filling `dst`.
fn put_digits(dst: &mut [u8], mut n: u64) {
    for slot in dst.iter_mut().rev() {
        // n % 10 < 10: the cast cannot truncate.
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn nests_dotted_names() {
        let s = text(|out| {
            let mut w = ObjectWriter::begin(out);
            for name in [
                "@timestamp",
                "source.ip",
                "source.nat.ip",
                "source.nat.port",
                "source.port",
                "a.b.c",
                "d",
            ] {
                w.key(name);
                long(w.out(), 1);
            }
            w.end();
        });
        assert_eq!(
            s,
            r#"{"@timestamp":1,"source":{"ip":1,"nat":{"ip":1,"port":1},"port":1},"a":{"b":{"c":1}},"d":1}"#
        );
    }

    #[test]
    fn closes_deep_objects_at_the_end_and_writes_empty_objects() {
        let s = text(|out| {
            let mut w = ObjectWriter::begin(out);
            w.key("a.b.c");
            long(w.out(), 2);
            w.end();
        });
        assert_eq!(s, r#"{"a":{"b":{"c":2}}}"#);
        assert_eq!(text(|out| ObjectWriter::begin(out).end()), "{}");
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
        assert_eq!(text(|o| date(o, 0)), "\"1970-01-01T00:00:00.000Z\"");
        assert_eq!(text(|o| date(o, 951_782_400_000)), "\"2000-02-29T00:00:00.000Z\"");
        assert_eq!(
            text(|o| date(o, 1_714_564_800_123)),
            "\"2024-05-01T12:00:00.123Z\""
        );
        assert_eq!(
            text(|o| date(o, 4_107_542_399_999)),
            "\"2100-02-28T23:59:59.999Z\""
        );
        assert_eq!(text(|o| date(o, MAX_DATE_MS)), "\"9999-12-31T23:59:59.999Z\"");
        assert_eq!(text(|o| date(o, u64::MAX)), "\"9999-12-31T23:59:59.999Z\"");
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
    fn longs_fit_elasticsearch() {
        assert_eq!(text(|o| long(o, 0)), "0");
        assert_eq!(text(|o| long(o, u64::MAX)), i64::MAX.to_string());
        assert_eq!(text(|o| decimal_string(o, 58)), "\"58\"");
        assert_eq!(text(|o| ip(o, "fe80::1".parse().unwrap())), "\"fe80::1\"");
        assert_eq!(
            text(|o| ip(o, "::ffff:10.0.0.1".parse().unwrap())),
            "\"::ffff:10.0.0.1\""
        );
        for v4 in ["0.0.0.0", "10.244.1.5", "255.255.255.255", "1.20.100.3"] {
            assert_eq!(text(|o| ip(o, v4.parse().unwrap())), format!("\"{v4}\""));
        }
    }
}
