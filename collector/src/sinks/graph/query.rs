//! The query string of `/api/graph/fields` and `/api/graph/data`: a pure parser, with no dependency beyond
//! `std` (the fuzz crate compiles this file on its own).
//!
//! Accepted: `namespace=NS` (keep edges with an end in NS; empty means every namespace) and
//! `window=1m|5m|15m|1h` (default `5m`), each at most once, percent-encoded or not (`+` is a space).
//! Anything else is an error whose text says what was wrong, for a 400 answer.

use std::fmt;

/// Longest namespace accepted (a Kubernetes namespace is a DNS label of at most 63 characters; the
/// `--external-cidr` names may be longer, so allow a DNS name's length).
pub const MAX_NAMESPACE: usize = 253;
/// Longest query string accepted, in octets.
pub const MAX_QUERY: usize = 2048;

/// The windows a query may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Window {
    /// The last minute.
    M1,
    /// The last 5 minutes (the default).
    #[default]
    M5,
    /// The last 15 minutes.
    M15,
    /// The last hour, the longest window the store keeps.
    H1,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [Window::M1, Window::M5, Window::M15, Window::H1];

    /// The window's length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Window::M1 => 60,
            Window::M5 => 300,
            Window::M15 => 900,
            Window::H1 => 3600,
        }
    }

    /// The window as a query names it.
    pub fn name(self) -> &'static str {
        match self {
            Window::M1 => "1m",
            Window::M5 => "5m",
            Window::M15 => "15m",
            Window::H1 => "1h",
        }
    }

    /// The window named `s`, if any.
    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Query {
    /// Keep only edges with an end in this namespace.
    pub namespace: Option<String>,
    /// The window to add up.
    pub window: Window,
}

/// Why a query string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// Longer than [`MAX_QUERY`].
    TooLong(usize),
    /// A `%` not followed by two hex digits, or a value that is not UTF-8 once decoded.
    BadEncoding(String),
    /// A parameter this API does not know.
    Unknown(String),
    /// A parameter given twice.
    Repeated(&'static str),
    /// A window not among 1m, 5m, 15m, 1h.
    BadWindow(String),
    /// A namespace that is too long or holds characters no namespace has.
    BadNamespace(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::TooLong(n) => write!(f, "query string of {n} octets is longer than {MAX_QUERY}"),
            QueryError::BadEncoding(p) => write!(f, "bad percent-encoding or UTF-8 in {p:?}"),
            QueryError::Unknown(k) => {
                write!(f, "unknown parameter {k:?} (known: namespace, window)")
            }
            QueryError::Repeated(k) => write!(f, "parameter {k:?} given more than once"),
            QueryError::BadWindow(w) => write!(f, "window {w:?} is not one of 1m, 5m, 15m, 1h"),
            QueryError::BadNamespace(n) => write!(
                f,
                "namespace {n:?} is not a namespace name (letters, digits, '-', '.', '_'; at most {MAX_NAMESPACE})"
            ),
        }
    }
}

impl std::error::Error for QueryError {}

/// Parses a query string (the part after `?`, or `None` when there is none).
pub fn parse(raw: Option<&str>) -> Result<Query, QueryError> {
    let mut q = Query::default();
    let Some(raw) = raw else {
        return Ok(q);
    };
    if raw.len() > MAX_QUERY {
        return Err(QueryError::TooLong(raw.len()));
    }
    let (mut seen_ns, mut seen_window) = (false, false);
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = decode(k).ok_or_else(|| QueryError::BadEncoding(short(part)))?;
        let value = decode(v).ok_or_else(|| QueryError::BadEncoding(short(part)))?;
        match key.as_str() {
            "namespace" => {
                if std::mem::replace(&mut seen_ns, true) {
                    return Err(QueryError::Repeated("namespace"));
                }
                if !value.is_empty() {
                    if value.len() > MAX_NAMESPACE || !value.chars().all(namespace_char) {
                        return Err(QueryError::BadNamespace(short(&value)));
                    }
                    q.namespace = Some(value);
                }
            }
            "window" => {
                if std::mem::replace(&mut seen_window, true) {
                    return Err(QueryError::Repeated("window"));
                }
                q.window = Window::parse(&value).ok_or_else(|| QueryError::BadWindow(short(&value)))?;
            }
            _ => return Err(QueryError::Unknown(short(&key))),
        }
    }
    Ok(q)
}

fn namespace_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
}

/// At most 64 characters of `s`, for an error message.
fn short(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Percent-decodes `s` (`+` as a space); `None` for a bad escape or a result that is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_namespaces_and_windows() {
        assert_eq!(parse(None), Ok(Query::default()));
        assert_eq!(parse(Some("")).map(|q| q.window), Ok(Window::M5));
        let q = parse(Some("namespace=shop&window=1h")).unwrap();
        assert_eq!((q.namespace.as_deref(), q.window), (Some("shop"), Window::H1));
        let q = parse(Some("window=15m&namespace=&")).unwrap();
        assert_eq!((q.namespace, q.window), (None, Window::M15));
        let q = parse(Some("namespace=kube%2Dsystem")).unwrap();
        assert_eq!(q.namespace.as_deref(), Some("kube-system"));
        for w in Window::ALL {
            assert_eq!(Window::parse(w.name()), Some(w));
        }
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let err = |s: &str| parse(Some(s)).unwrap_err().to_string();
        assert_eq!(err("window=2m"), "window \"2m\" is not one of 1m, 5m, 15m, 1h");
        assert_eq!(
            err("window=1m&window=5m"),
            "parameter \"window\" given more than once"
        );
        assert_eq!(
            err("query=x"),
            "unknown parameter \"query\" (known: namespace, window)"
        );
        assert!(err("namespace=a%2").starts_with("bad percent-encoding"));
        assert!(err("namespace=%ff").starts_with("bad percent-encoding"));
        assert!(err("namespace=a b").starts_with("namespace \"a b\" is not"));
        assert!(err(&"x".repeat(MAX_QUERY + 1)).contains("longer than"));
        let long = format!("namespace={}", "n".repeat(300));
        assert!(err(&long).ends_with("at most 253)"));
        // Control characters are escaped in the message, which stays short however long the input.
        let text = err(&format!("namespace={}", "\u{15}".repeat(1000)));
        assert!(text.contains("\\u{15}") && text.len() < 64 * 10 + 200, "{text}");
        // Multi-octet characters are cut on a character boundary.
        assert!(err(&format!("window={}", "é".repeat(100))).contains("..."));
    }
}
