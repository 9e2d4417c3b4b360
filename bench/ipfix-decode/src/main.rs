//! IPFIX decode throughput: proto-ipfix against netflow_parser on the same realistic messages.
//!
//! Generates the workload (see [`workload`]), checks that both decoders yield the same records with the
//! same values, then times alternating rounds of each on one thread and prints records per second of
//! thread CPU time for each, and their ratio. With `--only`, runs just one decoder for a fixed number of
//! passes and no timing, for instruction counting under callgrind (see `bench/ipfix-decode.sh`).

mod decoders;
mod flow;
mod workload;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use decoders::{Peer, Proto, Tally};
use workload::{Shape, Workload};

/// The ratio the benchmark must show (podflow's performance target).
const TARGET_RATIO: f64 = 10.0;

struct Options {
    shape: Shape,
    rounds: usize,
    min_round: Duration,
    only: Option<String>,
    passes: usize,
}

const USAGE: &str =
    "usage: ipfix-decode [--exporters N] [--messages N (per exporter)] [--max-message-size OCTETS]
                    [--template-refresh MESSAGES] [--mixed-sets] [--seed N] [--rounds N] [--min-round-ms MS]
                    [--only proto-ipfix|netflow_parser [--passes N]]";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        shape: Shape {
            exporters: 8,
            messages_per_exporter: 250,
            max_message_size: 1400,
            template_refresh: 20,
            seed: 7011,
            mixed_sets: false,
        },
        rounds: 7,
        min_round: Duration::from_millis(300),
        only: None,
        passes: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        let mut number = || -> Result<u64, String> {
            let v = value()?;
            v.parse().map_err(|_| format!("{flag}: {v} is not a number"))
        };
        match flag.as_str() {
            "--exporters" => o.shape.exporters = number()? as usize,
            "--messages" => o.shape.messages_per_exporter = number()? as usize,
            "--max-message-size" => o.shape.max_message_size = number()? as usize,
            "--template-refresh" => o.shape.template_refresh = number()? as usize,
            "--seed" => o.shape.seed = number()?,
            "--rounds" => o.rounds = number()?.max(1) as usize,
            "--min-round-ms" => o.min_round = Duration::from_millis(number()?),
            "--passes" => o.passes = number()?.max(1) as usize,
            "--only" => o.only = Some(value()?),
            "--mixed-sets" => o.shape.mixed_sets = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// CPU time of this thread, from /proc/thread-self/schedstat (nanoseconds on CPU): time the thread spent
/// waiting for a core, busy with other builds on a shared machine, does not count. `None` where the file
/// is missing; wall time is used then.
fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// A stopwatch on thread CPU time, or on wall time when that is unavailable.
struct Clock {
    cpu: bool,
}

impl Clock {
    fn now(&self) -> Duration {
        match (self.cpu, thread_cpu_time()) {
            (true, Some(t)) => t,
            _ => START.with(|s| s.elapsed()),
        }
    }
}

thread_local! {
    static START: Instant = Instant::now();
}

/// Runs `pass` until at least `min` has elapsed; returns records per second.
fn measure(clock: &Clock, min: Duration, mut pass: impl FnMut() -> Tally) -> f64 {
    let start = clock.now();
    let mut records = 0u64;
    loop {
        records += std::hint::black_box(pass()).records;
        let elapsed = clock.now().saturating_sub(start);
        if elapsed >= min {
            return records as f64 / elapsed.as_secs_f64();
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn describe(w: &Workload, shape: &Shape) {
    let n = w.datagrams.len().max(1) as f64;
    println!(
        "workload: {} exporters x {} messages of at most {} octets, templates every {} messages, {}, seed {}",
        shape.exporters,
        shape.messages_per_exporter,
        shape.max_message_size,
        shape.template_refresh,
        if shape.mixed_sets {
            "mixed data sets"
        } else {
            "one data set per template"
        },
        shape.seed
    );
    println!(
        "          {} records in {} messages: {:.1} records, {:.1} data sets and {:.0} octets per message",
        w.records,
        w.datagrams.len(),
        w.records as f64 / n,
        w.data_sets as f64 / n,
        w.octets as f64 / n
    );
}

/// Checks a pass against what the generator wrote.
fn check(name: &str, w: &Workload, t: Tally) -> Result<(), String> {
    if t.failed_messages > 0 {
        return Err(format!("{name}: {} messages failed to decode", t.failed_messages));
    }
    if t.records != w.records {
        return Err(format!(
            "{name}: {} records decoded, {} encoded",
            t.records, w.records
        ));
    }
    if t.checksum != w.checksum {
        return Err(format!(
            "{name}: checksum {:#018x} differs from the encoded values' {:#018x}",
            t.checksum, w.checksum
        ));
    }
    Ok(())
}

fn run(o: Options) -> Result<(), String> {
    let w = workload::generate(o.shape)?;
    let mut proto = Proto::new();
    let mut peer = Peer::new(&w.exporters);
    if let Some(only) = &o.only {
        // Instruction counting: the pass functions are the only code callgrind collects.
        let mut t = Tally::default();
        for _ in 0..o.passes {
            t = match only.as_str() {
                "proto-ipfix" => proto.proto_ipfix_pass(&w),
                "netflow_parser" => peer.netflow_parser_pass(&w),
                _ => return Err(format!("--only {only}: expected proto-ipfix or netflow_parser")),
            };
            check(only, &w, t)?;
        }
        println!("records {}", t.records * o.passes as u64);
        return Ok(());
    }
    describe(&w, &o.shape);
    check("proto-ipfix", &w, proto.proto_ipfix_pass(&w))?;
    check("netflow_parser", &w, peer.netflow_parser_pass(&w))?;
    println!(
        "check:    both decoders read all {} records, value checksum {:#018x} equal to the encoder's",
        w.records, w.checksum
    );
    let clock = Clock {
        cpu: thread_cpu_time().is_some(),
    };
    let basis = if clock.cpu { "thread CPU time" } else { "wall time" };
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..o.rounds {
        // Alternate which goes first, so neither always runs on a warmer or cooler machine.
        let (ra, rb) = if round % 2 == 0 {
            let ra = measure(&clock, o.min_round, || proto.proto_ipfix_pass(&w));
            (ra, measure(&clock, o.min_round, || peer.netflow_parser_pass(&w)))
        } else {
            let rb = measure(&clock, o.min_round, || peer.netflow_parser_pass(&w));
            (measure(&clock, o.min_round, || proto.proto_ipfix_pass(&w)), rb)
        };
        println!(
            "round {}: proto-ipfix {:>6.2} M records/s, netflow_parser {:>6.3} M records/s, ratio {:.1}x",
            round + 1,
            ra / 1e6,
            rb / 1e6,
            ra / rb
        );
        a.push(ra);
        b.push(rb);
        ratios.push(ra / rb);
    }
    let (ma, mb) = (median(&mut a), median(&mut b));
    let ratio = ma / mb;
    println!("median of {} rounds ({basis}):", o.rounds);
    println!("  proto-ipfix     {:>12.0} records/s", ma);
    println!("  netflow_parser  {:>12.0} records/s", mb);
    println!(
        "ratio proto-ipfix / netflow_parser: {ratio:.1}x (rounds {:.1}x..{:.1}x; target {TARGET_RATIO}x: {})",
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
        if ratio >= TARGET_RATIO { "met" } else { "NOT met" }
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipfix-decode: {e}");
            ExitCode::FAILURE
        }
    }
}
