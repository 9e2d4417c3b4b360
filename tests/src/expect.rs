//! Field-by-field comparison of what a peer decoded with what was encoded.
//!
//! Every mismatch is collected before failing, so one run shows everything a peer got wrong rather than
//! only the first field.

use std::fmt::{Debug, Display};

/// Collects mismatches between decoded and expected values.
#[derive(Debug, Default)]
pub struct Mismatches {
    checked: usize,
    errors: Vec<String>,
}

impl Mismatches {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a mismatch unless `got == want`; `what` names the flow and field.
    pub fn check<G, W>(&mut self, what: impl Display, got: G, want: W)
    where
        G: PartialEq<W> + Debug,
        W: Debug,
    {
        self.checked += 1;
        if got != want {
            self.errors.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }

    /// Records a failure that is not a value comparison (a missing field, say).
    pub fn fail(&mut self, what: impl Display) {
        self.checked += 1;
        self.errors.push(what.to_string());
    }

    /// How many comparisons were made (to assert a check ran at all).
    pub fn checked(&self) -> usize {
        self.checked
    }

    /// Ok when nothing mismatched, else every mismatch, one per line, under `peer`'s name.
    pub fn finish(self, peer: &str) -> anyhow::Result<usize> {
        if self.errors.is_empty() {
            Ok(self.checked)
        } else {
            anyhow::bail!(
                "{peer} decoded {} of {} fields differently:\n  {}",
                self.errors.len(),
                self.checked,
                self.errors.join("\n  ")
            )
        }
    }
}

/// A UTC calendar time split from milliseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    /// Year.
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// Hour, 0..=23.
    pub hour: u32,
    /// Minute, 0..=59.
    pub minute: u32,
    /// Second, 0..=59.
    pub second: u32,
    /// Millisecond, 0..=999.
    pub milli: u32,
}

impl UtcTime {
    /// The calendar time of `ms` milliseconds after 1970-01-01T00:00:00Z (proleptic Gregorian).
    pub fn from_millis(ms: u64) -> Self {
        let secs = ms / 1000;
        let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
        let in_day = secs % 86_400;
        // Civil-from-days (H. Hinnant's algorithm): counts in 400-year eras starting on 0000-03-01.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        UtcTime {
            year,
            month: month as u32,
            day: day as u32,
            hour: (in_day / 3600) as u32,
            minute: (in_day / 60 % 60) as u32,
            second: (in_day % 60) as u32,
            milli: (ms % 1000) as u32,
        }
    }

    /// `2023-11-14T22:13:20.123`, as nfdump's JSON prints times.
    pub fn iso_millis(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.milli
        )
    }

    /// `Nov 14, 2023 22:13:20.123000000 UTC`, as Wireshark shows absolute times.
    pub fn wireshark(&self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("???");
        format!(
            "{month} {:2}, {} {:02}:{:02}:{:02}.{:03}000000 UTC",
            self.day, self.year, self.hour, self.minute, self.second, self.milli
        )
    }
}

/// Lower-case hex of `bytes`, as peers print raw values.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_times_match_known_dates() {
        let t = UtcTime::from_millis(1_700_000_000_123);
        assert_eq!(t.iso_millis(), "2023-11-14T22:13:20.123");
        assert_eq!(t.wireshark(), "Nov 14, 2023 22:13:20.123000000 UTC");
        assert_eq!(UtcTime::from_millis(0).iso_millis(), "1970-01-01T00:00:00.000");
        // A leap day, and the last millisecond of a year.
        assert_eq!(
            UtcTime::from_millis(951_782_400_000).iso_millis(),
            "2000-02-29T00:00:00.000"
        );
        assert_eq!(
            UtcTime::from_millis(1_704_067_199_999).iso_millis(),
            "2023-12-31T23:59:59.999"
        );
    }

    #[test]
    fn mismatches_are_all_reported() {
        let mut m = Mismatches::new();
        m.check("a", 1, 1);
        m.check("b", 2, 3);
        m.fail("c missing");
        assert_eq!(m.checked(), 3);
        let err = m.finish("peer").unwrap_err().to_string();
        assert!(err.contains("2 of 3") && err.contains("b: got 2, want 3") && err.contains("c missing"));
    }
}
