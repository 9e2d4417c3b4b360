//! The self-metrics endpoint of podflow's binaries: `/metrics` in the Prometheus text format (0.0.4) and
//! `/healthz`, served from one background thread with std's TCP listener. The binaries own their
//! counters and render them on request; this crate only speaks HTTP/1.1 and writes families.

use std::borrow::Borrow;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Serves `/metrics` (the text `render` returns) and `/healthz` on `addr` from a background thread named
/// after `who`; returns the bound address (port 0 picks one).
pub fn serve(
    addr: SocketAddr,
    who: &'static str,
    render: impl Fn() -> String + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // A slow or broken client only costs its own request.
                let _ = answer(conn, who, &render);
            }
        })?;
    Ok(bound)
}

fn answer(mut conn: TcpStream, who: &str, render: &impl Fn() -> String) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/metrics" => ("200 OK", render()),
        "/healthz" => ("200 OK", "ok\n".to_string()),
        _ => ("404 Not Found", format!("{who} serves /metrics and /healthz\n")),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Appends one metric family: HELP and TYPE lines, then `name{labels} value` per sample, where each
/// sample's labels are already rendered (`{k="v"}`, or empty).
pub fn family<S: Borrow<(String, u64)>>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = S>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for s in samples {
        let (labels, v) = s.borrow();
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// Renders one label as `{key="value"}`, escaped.
pub fn label(key: &str, value: &str) -> String {
    format!("{{{key}=\"{}\"}}", escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn serves_metrics_healthz_and_404() {
        let addr = serve("127.0.0.1:0".parse().unwrap(), "podflow-test", || {
            let mut o = String::new();
            family(
                &mut o,
                "podflow_test_total",
                "counter",
                "A test.",
                &[(label("k", "a\"b"), 3)],
            );
            o
        })
        .unwrap();
        let get = |path: &str| {
            let mut c = TcpStream::connect(addr).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        let m = get("/metrics");
        assert!(m.starts_with("HTTP/1.1 200 OK"));
        assert!(
            m.contains("# TYPE podflow_test_total counter\npodflow_test_total{k=\"a\\\"b\"} 3\n"),
            "{m}"
        );
        assert!(get("/healthz").ends_with("\r\n\r\nok\n"));
        assert!(get("/nope").starts_with("HTTP/1.1 404"));
    }
}
