//! OpenMetrics 1.0 for scrapers that ask for it (Prometheus does, in its Accept header), written from the
//! Prometheus text format 0.0.4 that the binaries and the `prometheus` crate render.
//!
//! The two formats differ in three places that matter here: a counter family is named without its
//! `_total` suffix (its samples keep it), HELP texts escape double quotes too, and the exposition ends
//! with `# EOF`. A counter whose samples have no `_total` suffix (`netflow_connection_count`, kept as the
//! NetFlow exporter names it) cannot be an OpenMetrics counter, so it is typed `unknown`, as is
//! `untyped`; Prometheus stores the samples under the same names either way.

/// The Content-Type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Content-Type of OpenMetrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// True when an Accept header prefers OpenMetrics to the Prometheus text format (by q-value; a tie goes
/// to OpenMetrics, which is what a client naming both first means).
pub fn wanted(accept: &str) -> bool {
    let (mut open, mut text) = (None::<f32>, None::<f32>);
    for part in accept.split(',') {
        let mut params = part.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let slot = match media.as_str() {
            "application/openmetrics-text" => &mut open,
            "text/plain" | "text/*" | "*/*" => &mut text,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |s| s.max(q)));
    }
    open.is_some_and(|o| o > 0.0 && o >= text.unwrap_or(0.0))
}

/// Rewrites a Prometheus text exposition as OpenMetrics text.
pub fn from_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    // HELP comes before TYPE, and its family name depends on the type.
    let mut help: Option<(&str, &str)> = None;
    let flush_help = |out: &mut String, help: &mut Option<(&str, &str)>| {
        if let Some((name, h)) = help.take() {
            push_help(out, name, h);
        }
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, &mut help);
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (family, kind) = match kind {
                "counter" => match name.strip_suffix("_total") {
                    Some(f) => (f, "counter"),
                    None => (name, "unknown"),
                },
                "untyped" => (name, "unknown"),
                k => (name, k),
            };
            match help.take() {
                Some((n, h)) if n == name => push_help(&mut out, family, h),
                other => {
                    let mut other = other;
                    flush_help(&mut out, &mut other);
                }
            }
            out.push_str("# TYPE ");
            out.push_str(family);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
        } else if line.is_empty() || line.starts_with('#') {
            // Other comments have no place in OpenMetrics.
        } else {
            flush_help(&mut out, &mut help);
            out.push_str(line);
            out.push('\n');
        }
    }
    flush_help(&mut out, &mut help);
    out.push_str("# EOF\n");
    out
}

fn push_help(out: &mut String, family: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(family);
    out.push(' ');
    // The text format already escapes backslashes and newlines; OpenMetrics escapes quotes as well.
    out.push_str(&help.replace('"', "\\\""));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_and_curl_does_not() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wanted(prometheus));
        assert!(!wanted("*/*"));
        assert!(!wanted(""));
        assert!(!wanted("text/plain"));
        assert!(!wanted("application/openmetrics-text;q=0.2, text/plain"));
        assert!(!wanted("application/openmetrics-text;q=0"));
        assert!(wanted("application/openmetrics-text"));
    }

    #[test]
    fn counters_lose_total_in_their_family_name_and_the_text_ends_with_eof() {
        let text = "# HELP a_total Things \"counted\".\n# TYPE a_total counter\na_total{k=\"v\"} 3\n\
                    # HELP netflow_connection_count Connections.\n# TYPE netflow_connection_count counter\n\
                    netflow_connection_count 2\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n\
                    # HELP h A histogram.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
        assert_eq!(
            from_text(text),
            "# HELP a Things \\\"counted\\\".\n# TYPE a counter\na_total{k=\"v\"} 3\n\
             # HELP netflow_connection_count Connections.\n# TYPE netflow_connection_count unknown\n\
             netflow_connection_count 2\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n\
             # HELP h A histogram.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n# EOF\n"
        );
        assert_eq!(from_text(""), "# EOF\n");
    }
}
