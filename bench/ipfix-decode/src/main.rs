//! IPFIX decode throughput: proto-ipfix against netflow_parser on the same realistic messages.
//!
//! Generates the workload (see [`workload`]), checks that every decoder yields the records the encoder
//! wrote with the same values, then times rounds of each on one thread, in rotating order, and prints
//! records per second of thread CPU time for each and the ratios to netflow_parser. proto-ipfix is read in
//! two ways (see [`proto`]). With `--only`, runs one decoder for a fixed number of passes and no timing,
//! for instruction counting under callgrind (see `bench/ipfix-decode.sh`).

mod flow;
mod peer;
mod proto;
mod workload;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use flow::Tally;
use peer::Peer;
use proto::Proto;
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
                    [--only proto-ipfix|proto-ipfix-fields|netflow_parser [--passes N]]";

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

/// The decoders compared, by the names `--only` takes and the output shows.
const DECODERS: [&str; 3] = ["proto-ipfix", "proto-ipfix-fields", "netflow_parser"];
/// Index of netflow_parser in [`DECODERS`]: the peer every ratio is to.
const PEER: usize = 2;

struct Decoders {
    located: Proto,
    field_by_field: Proto,
    peer: Peer,
}

impl Decoders {
    fn pass(&mut self, which: usize, w: &Workload) -> Tally {
        match which {
            0 => self.located.located_pass(w),
            1 => self.field_by_field.field_by_field_pass(w),
            _ => self.peer.netflow_parser_pass(w),
        }
    }
}

fn run(o: Options) -> Result<(), String> {
    let w = workload::generate(o.shape)?;
    let mut d = Decoders {
        located: Proto::new(),
        field_by_field: Proto::new(),
        peer: Peer::new(&w.exporters),
    };
    if let Some(only) = &o.only {
        // Instruction counting: the pass functions are the only code callgrind collects.
        let which = DECODERS
            .iter()
            .position(|n| n == only)
            .ok_or(format!("--only {only}: expected one of {}", DECODERS.join(", ")))?;
        for _ in 0..o.passes {
            check(only, &w, d.pass(which, &w))?;
        }
        println!("records {}", w.records * o.passes as u64);
        return Ok(());
    }
    describe(&w, &o.shape);
    for (which, name) in DECODERS.iter().enumerate() {
        check(name, &w, d.pass(which, &w))?;
    }
    println!(
        "check:    every decoder read all {} records, value checksum {:#018x} equal to the encoder's",
        w.records, w.checksum
    );
    let clock = Clock {
        cpu: thread_cpu_time().is_some(),
    };
    let basis = if clock.cpu { "thread CPU time" } else { "wall time" };
    let mut rates: [Vec<f64>; 3] = Default::default();
    for round in 0..o.rounds {
        // Rotate the order, so no decoder always runs on a warmer or cooler machine.
        let mut rate = [0.0; 3];
        for k in 0..3 {
            let which = (round + k) % 3;
            rate[which] = measure(&clock, o.min_round, || d.pass(which, &w));
        }
        println!(
            "round {}: {} {:.2}, {} {:.2}, {} {:.3} M records/s; ratios {:.1}x, {:.1}x",
            round + 1,
            DECODERS[0],
            rate[0] / 1e6,
            DECODERS[1],
            rate[1] / 1e6,
            DECODERS[2],
            rate[2] / 1e6,
            rate[0] / rate[PEER],
            rate[1] / rate[PEER]
        );
        for (all, r) in rates.iter_mut().zip(rate) {
            all.push(r);
        }
    }
    println!("median of {} rounds ({basis}):", o.rounds);
    let peer = median(&mut rates[PEER].clone());
    for (which, name) in DECODERS.iter().enumerate() {
        let m = median(&mut rates[which].clone());
        if which == PEER {
            println!("  {name:<20} {m:>12.0} records/s");
        } else {
            let ratios: Vec<f64> = rates[which]
                .iter()
                .zip(&rates[PEER])
                .map(|(a, b)| a / b)
                .collect();
            println!(
                "  {name:<20} {m:>12.0} records/s  {:>5.1}x netflow_parser (rounds {:.1}x..{:.1}x)",
                m / peer,
                ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratios.iter().copied().fold(0.0, f64::max)
            );
        }
    }
    let ratio = median(&mut rates[0].clone()) / peer;
    println!(
        "ratio proto-ipfix / netflow_parser: {ratio:.1}x (target {TARGET_RATIO}x: {})",
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
