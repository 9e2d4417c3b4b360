//! Line counts and sums over collectors' JSON output.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

/// Counts lines of `files`, those that are not a whole JSON object (`{...}`), and sums the number after
/// the first `sum_after` of each line.
pub fn count(files: &[PathBuf], sum_after: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let (mut lines, mut malformed, mut sum, mut missing) = (0u64, 0u64, 0u64, 0u64);
    let mut line = Vec::with_capacity(4096);
    for path in files {
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            lines += 1;
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            if !(body.starts_with(b"{") && body.ends_with(b"}")) {
                malformed += 1;
            }
            if let Some(pat) = sum_after.map(str::as_bytes) {
                match body.windows(pat.len()).position(|w| w == pat) {
                    Some(i) => {
                        let digits = &body[i + pat.len()..];
                        let n = digits
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
                        sum += n;
                    }
                    None => missing += 1,
                }
            }
        }
    }
    Ok(json!({ "lines": lines, "malformed": malformed, "sum": sum, "missing": missing }))
}
