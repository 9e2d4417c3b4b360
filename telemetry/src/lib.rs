//! What podflow's binaries say about themselves: the HTTP server ([`http::Server`]: `/metrics` in the
//! Prometheus text format or OpenMetrics, `/healthz`, `/readyz`, and the routes other parts merge in), the
//! counters' shared state rendered on each scrape, and the gate that keeps a failure repeating for every
//! packet or document to one log line in ten seconds. The binaries own their counters and render them on
//! request; this crate speaks HTTP, writes families and keeps time between log lines.

pub mod http;
pub mod log;
pub mod openmetrics;

pub use http::{Ready, Server};
pub use log::{LogBudget, LogFormat};

use std::borrow::Borrow;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Counters that render themselves as Prometheus text families.
pub trait Render {
    /// Appends this state's families to `out`.
    fn render(&self, out: &mut String);
}

/// A binary's counters, shared by the threads that update them (once per batch, never per packet) and
/// the thread that serves them.
pub struct Shared<S>(Arc<Mutex<S>>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<S: Default> Default for Shared<S> {
    fn default() -> Self {
        Shared(Arc::new(Mutex::new(S::default())))
    }
}

impl<S> Shared<S> {
    /// Locks the state for an update (a poisoned lock still holds valid counters: each update is a
    /// few additions).
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: Render + Clone + Send + 'static> Shared<S> {
    /// Renders the Prometheus text exposition of a copy of the state (the lock is not held while the
    /// text is written).
    pub fn render(&self) -> String {
        let state = self.lock().clone();
        let mut out = String::with_capacity(4096);
        state.render(&mut out);
        out
    }

    /// Appends the state's families to a scrape, as [`Server::families`] takes them.
    pub fn families(&self) -> impl Fn(&mut String) + Send + Sync + 'static {
        let me = self.clone();
        move |out: &mut String| {
            // A copy, so the lock is not held while the text is written.
            let state = me.lock().clone();
            state.render(out);
        }
    }
}

/// How often a [`Throttle`] lets a line through by default.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The gate of a log line that may repeat for every packet, datagram or document: the first
/// occurrence is logged, then at most one in each interval, saying how many there were since the last
/// line. Whatever it holds back is still counted in the metrics by the caller.
#[derive(Clone, Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    since: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(LOG_EVERY)
    }
}

impl Throttle {
    /// A gate that opens at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            since: 0,
        }
    }

    /// Counts `n` occurrences; when a line is due, returns how many there were since the last line
    /// (these included) and starts counting again.
    pub fn hit(&mut self, n: u64) -> Option<u64> {
        self.since += n;
        if self.since == 0 || self.last.is_some_and(|t| t.elapsed() < self.every) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.since))
    }

    /// Occurrences counted since the last line.
    pub fn pending(&self) -> u64 {
        self.since
    }
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

    #[test]
    fn a_throttle_lets_the_first_line_through_then_counts() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.hit(0), None, "nothing happened: no line");
        assert_eq!(t.hit(2), Some(2));
        assert_eq!(t.hit(1), None);
        assert_eq!(t.hit(4), None);
        assert_eq!(t.pending(), 5);
        // An interval of zero is always due: every hit is a line, with what it held back.
        let mut open = Throttle::new(Duration::ZERO);
        assert_eq!(open.hit(1), Some(1));
        assert_eq!(open.hit(3), Some(3));
    }

    #[derive(Clone, Default)]
    struct Two(u64);

    impl Render for Two {
        fn render(&self, out: &mut String) {
            family(
                out,
                "podflow_two_total",
                "counter",
                "Two.",
                [(String::new(), self.0)],
            );
        }
    }

    #[test]
    fn shared_state_renders_what_was_counted() {
        let m = Shared::<Two>::default();
        m.clone().lock().0 += 2;
        assert!(m.render().contains("\npodflow_two_total 2\n"), "{}", m.render());
    }
}
