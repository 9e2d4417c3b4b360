//! Logs through `tracing`: plain lines by default, as the binaries always printed them
//! (`podflow-collector: warning: ...`, no timestamp: the container runtime adds one), or one JSON
//! object per line with `--log-format json` (timestamp, level, target, message and fields).
//!
//! Two gates keep a log from following the traffic: [`crate::Throttle`], one line per interval for
//! something that repeats (per exporter, per sink), and [`LogBudget`], a fixed number of lines per
//! minute over all of them together, so that sixty thousand exporters that each say one broken thing
//! cost a hundred lines a minute, not sixty thousand.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `podflow-collector: message key=value`, warnings with `warning: `.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the process's log subscriber, writing to stderr: podflow's own crates at `info`, the
/// libraries under them at `warn`. A second call does nothing.
pub fn init(who: &'static str, format: LogFormat) {
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("podflow_collector", LevelFilter::INFO)
        .with_target("podflow_exporter", LevelFilter::INFO)
        .with_target("podflow_telemetry", LevelFilter::INFO);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .event_format(Plain { who }),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .try_init(),
    };
}

/// The text format: the binary's name, `warning: ` for warnings, the message and its fields.
struct Plain {
    who: &'static str,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        write!(w, "{}: ", self.who)?;
        if *event.metadata().level() == Level::WARN {
            w.write_str("warning: ")?;
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Lines per minute a [`LogBudget`] lets through by default.
pub const LINES_PER_MINUTE: u32 = 100;

/// A fixed number of log lines per window, shared by every thread that logs one kind of thing (the
/// decode threads' reports about exporters). What it refuses, the caller counts in a metric; the first
/// admission of a later window says how many lines the previous ones refused, so the log tells that
/// something was left out.
#[derive(Debug)]
pub struct LogBudget {
    lines: u32,
    every: Duration,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    used: u32,
    refused: u64,
}

/// What [`LogBudget::admit`] allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    /// Lines that may be written now (the first ones asked for).
    pub lines: usize,
    /// Lines refused since the last report of refusals, to be said in one line now; zero when there
    /// is nothing to say.
    pub refused_before: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget::new(LINES_PER_MINUTE, Duration::from_secs(60))
    }
}

impl LogBudget {
    /// At most `lines` lines per `every`.
    pub fn new(lines: u32, every: Duration) -> Self {
        LogBudget {
            lines,
            every,
            state: Mutex::new(Window::default()),
        }
    }

    /// Asks for `wanted` lines (zero to learn only whether refusals are due to be reported).
    pub fn admit(&self, wanted: usize) -> Admitted {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut refused_before = 0;
        if w.start.is_none_or(|s| now.duration_since(s) >= self.every) {
            w.start = Some(now);
            w.used = 0;
            refused_before = std::mem::take(&mut w.refused);
        }
        let left = self.lines.saturating_sub(w.used) as usize;
        let lines = wanted.min(left);
        w.used += lines as u32;
        w.refused += (wanted - lines) as u64;
        Admitted {
            lines,
            refused_before,
        }
    }

    /// Lines refused and not yet reported (at the end of a run).
    pub fn take_refused(&self) -> u64 {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut w.refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_admits_its_lines_per_window_and_reports_the_rest_later() {
        let b = LogBudget::new(3, Duration::from_secs(3600));
        assert_eq!(
            b.admit(2),
            Admitted {
                lines: 2,
                refused_before: 0
            }
        );
        assert_eq!(b.admit(5).lines, 1);
        assert_eq!(b.admit(1).lines, 0);
        assert_eq!(b.take_refused(), 5);
        assert_eq!(b.take_refused(), 0);
        // A window of zero is always new: what the last one refused is reported with the next call.
        let open = LogBudget::new(1, Duration::ZERO);
        assert_eq!(open.admit(3).lines, 1);
        assert_eq!(
            open.admit(0),
            Admitted {
                lines: 0,
                refused_before: 2
            }
        );
    }
}
