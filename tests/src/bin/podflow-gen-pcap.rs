//! `podflow-gen-pcap`: writes a deterministic pcap file of interleaved TCP, UDP and ICMP flows over IPv4
//! and IPv6, and prints a JSON summary of exactly what it holds (flows, directions, packets and IP
//! octets, by protocol and by family), so a flow exporter's output can be checked against it or the
//! file used as a benchmark input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use podflow_e2e::pcapgen::{self, Config};

/// Generates a pcap file of known flows.
#[derive(Debug, Parser)]
#[command(name = "podflow-gen-pcap", version)]
struct Cli {
    /// Output pcap file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// TCP connections (handshake, data both ways, FIN both ways or RST).
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    tcp: u64,
    /// UDP request/response flows (DNS- and NTP-like; 3% unanswered).
    #[arg(long, value_name = "N", default_value_t = 500)]
    udp: u64,
    /// ICMP / ICMPv6 echo flows (3% unanswered).
    #[arg(long, value_name = "N", default_value_t = 100)]
    icmp: u64,
    /// Share of flows over IPv6, in percent.
    #[arg(long, value_name = "PCT", default_value_t = 30)]
    v6_share: u8,
    /// Seed: the same arguments always give the same file.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Data segments per TCP connection (requests and responses together), as MIN-MAX or N.
    #[arg(long, value_name = "MIN-MAX", default_value = "2-12", value_parser = range)]
    packets_per_flow: (u32, u32),
    /// Echo requests per ICMP flow, as MIN-MAX or N.
    #[arg(long, value_name = "MIN-MAX", default_value = "1-4", value_parser = range)]
    echoes: (u32, u32),
    /// UDP flows (over IPv4) whose response is larger than the MTU and sent as IPv4 fragments.
    #[arg(long, value_name = "N", default_value_t = 0)]
    fragmented: u64,
    /// Mean new flows per second of capture time; with flows lasting up to a few seconds, this sets how
    /// many are open at once.
    #[arg(long, value_name = "RATE", default_value_t = 2_000.0)]
    flows_per_sec: f64,
    /// Snap length: longer frames are cut in the file (as `tcpdump -s`), their IP length unchanged.
    #[arg(long, value_name = "BYTES", default_value_t = 65_535)]
    snaplen: u32,
    /// Open every flow (one per microsecond) before any flow sends its second packet, so all flows are
    /// open at once, as a memory benchmark needs; --flows-per-sec is then ignored.
    #[arg(long)]
    all_concurrent: bool,
    /// Client addresses of TCP and UDP flows per family (1 to 4096), taken round robin: client C is
    /// 10.(1 + C / 256).(C % 256).2, or 2001:db8:c::(C + 1).
    #[arg(long, value_name = "N", default_value_t = pcapgen::MAX_CLIENTS)]
    clients: u64,
}

/// Parses `MIN-MAX` or `N` (meaning `N-N`).
fn range(s: &str) -> Result<(u32, u32), String> {
    let parse = |t: &str| t.trim().parse::<u32>().map_err(|e| format!("{t:?}: {e}"));
    match s.split_once('-') {
        Some((lo, hi)) => Ok((parse(lo)?, parse(hi)?)),
        None => parse(s).map(|n| (n, n)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = Config {
        tcp: cli.tcp,
        udp: cli.udp,
        icmp: cli.icmp,
        v6_percent: cli.v6_share,
        seed: cli.seed,
        tcp_segments: cli.packets_per_flow,
        echoes: cli.echoes,
        fragmented: cli.fragmented,
        flows_per_sec: cli.flows_per_sec,
        snaplen: cli.snaplen,
        all_concurrent: cli.all_concurrent,
        clients: cli.clients,
        ..Config::default()
    };
    let started = Instant::now();
    match pcapgen::generate_file(&cfg, &cli.out, None) {
        Ok(summary) => {
            let secs = started.elapsed().as_secs_f64();
            println!("{}", summary.json());
            // Speed goes to stderr so stdout is the same for the same arguments.
            eprintln!(
                "podflow-gen-pcap: {} packets in {secs:.2} s ({:.0} packets/s)",
                summary.total.packets,
                summary.total.packets as f64 / secs.max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("podflow-gen-pcap: {e:#}");
            ExitCode::FAILURE
        }
    }
}
