//! What a stream of appends leaves in the page cache: the last few MiB, not the whole file.
//!
//! A collector writes documents as fast as flows come (hundreds of MB a second at full rate) and never
//! reads them back; whatever ships them on (a log shipper tailing the file) reads what was just written.
//! Left to itself the kernel keeps every written page cached and dirty until the dirty limits force
//! writeback, so a fast stream fills memory with gigabytes of dirty pages: the writer is then throttled
//! and reclaims memory in its own time, and in a container those pages count against its memory limit.
//! On the development VM, writing 8.5 GB that way cost 4.5 to 11 s of system time; starting writeback
//! every 8 MiB and dropping what lies 64 MiB behind cost 2.8 to 3.8 s (bench/COLLECTOR.md).
//!
//! [`CacheWindow`] does the latter with `posix_fadvise(POSIX_FADV_DONTNEED)`, which on dirty pages
//! starts their writeback without waiting for it, and on written-back pages drops them. It never waits
//! for the disk; a page still being written when its range is dropped simply stays cached until the
//! kernel reclaims it.

use std::fs::File;
use std::io;
use std::num::NonZeroU64;

/// Writeback is started each time this much more has been written.
pub const WRITEBACK_EVERY: u64 = 8 << 20;

/// The default of how much of the end of the file stays cached.
pub const DEFAULT_KEEP: u64 = 64 << 20;

/// The page-cache window of one file being appended to.
#[derive(Debug)]
pub struct CacheWindow {
    file: File,
    plan: Plan,
}

impl CacheWindow {
    /// A window over `file`, which is `len` octets long now, keeping about the last `keep` octets
    /// written cached.
    pub fn new(file: File, len: u64, keep: u64) -> Self {
        CacheWindow {
            file,
            plan: Plan::new(len, keep),
        }
    }

    /// Tells the window the file is now `end` octets long: starts writeback of what was added and drops
    /// what fell out of the window. An error (a file system or file type without the advice) means the
    /// caller should stop asking.
    pub fn advance(&mut self, end: u64) -> io::Result<()> {
        for (from, to) in self.plan.advance(end).into_iter().flatten() {
            rustix::fs::fadvise(
                &self.file,
                from,
                NonZeroU64::new(to - from),
                rustix::fs::Advice::DontNeed,
            )?;
        }
        Ok(())
    }
}

/// Which ranges to advise, as the file grows: the pure part of [`CacheWindow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    keep: u64,
    /// Writeback was started for everything before this offset.
    started: u64,
    /// Everything before this offset was dropped (or was there before the window began).
    dropped: u64,
}

impl Plan {
    pub(crate) fn new(len: u64, keep: u64) -> Self {
        Plan {
            keep,
            started: len,
            dropped: len,
        }
    }

    /// The ranges `[from, to)` to advise now that the file is `end` octets long: first the new octets
    /// (to start their writeback), then those now more than `keep` behind the end (to drop them).
    /// Each is at least [`WRITEBACK_EVERY`] long, so the calls stay rare.
    pub(crate) fn advance(&mut self, end: u64) -> [Option<(u64, u64)>; 2] {
        let mut out = [None, None];
        if end < self.started.saturating_add(WRITEBACK_EVERY) {
            return out;
        }
        out[0] = Some((self.started, end));
        self.started = end;
        let behind = end.saturating_sub(self.keep);
        if behind >= self.dropped.saturating_add(WRITEBACK_EVERY) {
            out[1] = Some((self.dropped, behind));
            self.dropped = behind;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_writeback_in_large_steps_and_drops_what_falls_behind_the_window() {
        let mib = 1 << 20;
        let mut p = Plan::new(100, 64 * mib);
        assert_eq!(
            p.advance(100 + 8 * mib - 1),
            [None, None],
            "less than a step: nothing"
        );
        assert_eq!(p.advance(100 + 8 * mib), [Some((100, 100 + 8 * mib)), None]);
        // Every range is advised once to start writeback, and once (later) to drop it.
        let (mut started, mut dropped) = (vec![(100, 100 + 8 * mib)], vec![]);
        let mut end = 100 + 8 * mib;
        while end < 1000 * mib {
            end += 300 * 1024;
            let [s, d] = p.advance(end);
            started.extend(s);
            dropped.extend(d);
        }
        let contiguous = |r: &[(u64, u64)]| r.windows(2).all(|w| w[0].1 == w[1].0);
        assert!(contiguous(&started) && contiguous(&dropped));
        assert_eq!(started[0].0, 100);
        assert_eq!(dropped[0].0, 100, "the window starts where the file was opened");
        let last_started = started.last().unwrap().1;
        let last_dropped = dropped.last().unwrap().1;
        assert!(end - last_started < 8 * mib);
        assert!(last_dropped <= end - 64 * mib, "the last 64 MiB stay cached");
        assert!(last_dropped >= end - 64 * mib - 16 * mib, "and not much more");
    }
}
