//! podflow-exporter: the probe.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use podflow_exporter::capture::{self, LiveConfig};
use podflow_exporter::community_id::{self, Encoding};
use podflow_exporter::conntrack::{Conntrack, NetlinkSource, TableLimits};
use podflow_exporter::export::{Collectors, ExportConfig, IpfixWriter, ObserverInfo};
use podflow_exporter::flow::{FlowTable, TableConfig};
use podflow_exporter::metrics::Metrics;
use podflow_exporter::probe::{Engine, wall_ms};
use podflow_telemetry::LogFormat;
use proto_ipfix::community_id::CommunityId;

/// podflow probe: captures packets, aggregates bidirectional flows and exports them as IPFIX.
///
/// Reads live interfaces (--interface) or a capture file (--pcap), counts packets into bidirectional
/// flows keyed like the Community ID, and sends each ended flow as one IPFIX biflow record (RFC 5103)
/// over UDP to every --collector. Octets count IP packets (header and payload), never the link layer.
///
/// Examples:
///   podflow-exporter --interface 'veth*' --direction in --collector collector.podflow:4739
///   podflow-exporter --interface 'cali*' --direction in --conntrack --collector 10.0.0.5:4739
///   podflow-exporter --pcap trace.pcap --collector 127.0.0.1:4739 --uniflow
#[derive(Debug, Parser)]
#[command(name = "podflow-exporter", version, verbatim_doc_comment)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Log format: text lines (podflow-exporter: ...), or one JSON object per line.
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(flatten)]
    probe: ProbeArgs,
}

#[derive(Debug, Args)]
struct ProbeArgs {
    /// Interface to capture, by name or glob pattern (repeatable): 'eth0', 'veth*', 'cali*'. Patterns
    /// are matched again every --rescan-interval, so interfaces that appear later are captured too.
    #[arg(long = "interface", short = 'i', value_name = "NAME", conflicts_with = "pcap")]
    interfaces: Vec<String>,

    /// Read packets from a pcap or pcapng file as fast as possible instead of capturing; the packets'
    /// timestamps are the clock, and every flow is exported at the end of the file.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,

    /// Collector to send IPFIX to, HOST:PORT (repeatable; UDP; 4739 is the IPFIX port).
    #[arg(long = "collector", short = 'c', value_name = "HOST:PORT")]
    collectors: Vec<String>,

    /// BPF filter applied in the kernel (pcap-filter syntax), e.g. 'not port 4739'.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,

    /// Octets kept of each packet: headers are enough (Ethernet, VLANs, IPv6 and TCP with options).
    #[arg(long, value_name = "BYTES", default_value_t = 128)]
    snaplen: i32,

    /// Kernel capture buffer per interface, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    buffer_size: i32,

    /// Capture in promiscuous mode (off: a probe counts the traffic of its own host or pod).
    #[arg(long)]
    promisc: bool,

    /// Which packets of each interface to count: 'in' (received), 'out' (sent) or 'both'. A node probe
    /// on pod-side veth interfaces uses 'in': a packet a pod sends is received there once.
    #[arg(long, value_enum, default_value_t = DirectionArg::Both)]
    direction: DirectionArg,

    /// How often interface patterns are matched again, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    rescan_interval: u64,

    /// A flow with no packet for this long ends (flowEndReason 1).
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    idle_timeout: u64,

    /// A flow lasting this long is exported and goes on as a new delta record (flowEndReason 2).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    active_timeout: u64,

    /// Time after TCP FIN both ways or RST before the flow ends (flowEndReason 3), so the last ACK counts.
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    tcp_linger: u64,

    /// Most flows held; when full, the least recently seen are exported early (flowEndReason 5).
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    max_flows: usize,

    /// Two uniflow records per flow, for collectors that do not understand RFC 5103 reverse elements.
    #[arg(long)]
    uniflow: bool,

    /// Observation Domain ID in every IPFIX message header.
    #[arg(long, value_name = "N", default_value_t = 1)]
    observation_domain_id: u32,

    /// Largest IPFIX message in octets: the path MTU less IP and UDP headers (1500 - 20 - 8 = 1472 on
    /// IPv4 Ethernet; RFC 7011 recommends 512 when the path MTU is unknown).
    #[arg(long, value_name = "BYTES", default_value_t = 1400)]
    mtu: usize,

    /// Templates are sent again this often, in seconds. Over UDP a collector that starts or restarts
    /// knows no template until the exporter sends them again (RFC 7011 section 8.4: periodically), so
    /// this is the longest a restarted collector waits to decode this probe again (it holds the data
    /// meanwhile: its --template-wait, 15 s, outlasts the default). A template message costs a few
    /// hundred octets.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    template_refresh: u64,

    /// Private Enterprise Number of podflow's own elements (communityId, observer names, ...).
    #[arg(long, value_name = "PEN", default_value_t = proto_ipfix::ie::DEFAULT_PODFLOW_PEN)]
    enterprise_number: u32,

    /// Name of the pod this probe observes, exported in every record (sidecars: from the downward API).
    #[arg(long, env = "PODFLOW_POD_NAME", value_name = "NAME")]
    observer_pod_name: Option<String>,

    /// Namespace of that pod.
    #[arg(long, env = "PODFLOW_POD_NAMESPACE", value_name = "NAMESPACE")]
    observer_pod_namespace: Option<String>,

    /// Node the probe runs on.
    #[arg(long, env = "PODFLOW_NODE_NAME", value_name = "NODE")]
    observer_node_name: Option<String>,

    /// Learn Service NAT and masquerading from the kernel's conntrack table (netlink; needs
    /// CAP_NET_ADMIN): a Service connection's backend replies count into the client's biflow, and flows
    /// of translated connections carry the post-NAT addresses, ports and Community ID, the conntrack id
    /// and mark; every translated connection is also exported as NAT events (create, delete). Use with
    /// --direction in on pod-side interfaces. Without the capability or the kernel module the probe runs
    /// on without it, with a warning.
    #[arg(long, conflicts_with = "pcap")]
    conntrack: bool,

    /// Receive buffer for conntrack events, in KiB: room for event storms between two reads (set past
    /// net.core.rmem_max). When it still overflows, the table is resynchronised with a full dump.
    #[arg(long, value_name = "KIB", default_value_t = 32 * 1024)]
    conntrack_buffer: usize,

    /// Most translated connections remembered (live, and ended ones for the flows still open).
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    conntrack_max: usize,

    /// While translated connections older than the probe are open, a conntrack dump this often finds
    /// those that ended: the kernel sends no events for connections that began before anyone listened.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    conntrack_sweep: u64,

    /// Serve Prometheus self metrics on /metrics (OpenMetrics when asked), a health check on /healthz
    /// and readiness on /readyz at this address, e.g. 0.0.0.0:9477.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DirectionArg {
    In,
    Out,
    Both,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Community ID of every packet in a capture file.
    ///
    /// The Community ID (https://github.com/corelight/community-id-spec) is a standard flow identifier:
    /// a version prefix and a SHA-1 hash of the seed, both IP addresses, the IP protocol and the two ports
    /// (ICMP: type and code), ordered so that both directions of a flow get the same ID. Zeek, Suricata,
    /// Wireshark, Elastic and others compute the same string, so it joins records across tools.
    ///
    /// Output, one line per packet, in the format of pycommunityid's community-id-pcap:
    ///
    ///   <secs.micros> | <community id> | <saddr> <daddr> <proto> [<sport> <dport>]
    ///
    /// Packets without an IP packet print "<not IP>" (or "<truncated>", "<malformed>") instead of an ID.
    ///
    /// Reads pcap and pcapng files with link types Ethernet (with VLAN/QinQ), Linux cooked capture v1/v2
    /// and raw IPv4/IPv6.
    #[command(verbatim_doc_comment)]
    CommunityId(CommunityIdArgs),
}

#[derive(Debug, Args)]
struct CommunityIdArgs {
    /// Seed mixed into every hash, 0 to 65535. IDs only match between tools using the same seed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u16,

    /// Print the SHA-1 digest in hex instead of base64 [default: base64]. A debugging aid: the result is
    /// not the ID other tools produce.
    #[arg(long)]
    no_base64: bool,

    /// Capture file to read (pcap or pcapng).
    #[arg(value_name = "FILE.pcap")]
    file: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    podflow_telemetry::log::init("podflow-exporter", cli.log_format);
    match cli.command {
        Some(Command::CommunityId(args)) => report(community_id_cmd(&args)),
        None => match usage_error(&cli.probe) {
            Some(msg) => {
                tracing::error!("{msg}; see podflow-exporter --help");
                ExitCode::from(2)
            }
            None => report(probe(cli.probe)),
        },
    }
}

/// What is missing from the command line, if anything.
fn usage_error(a: &ProbeArgs) -> Option<&'static str> {
    if a.pcap.is_none() && a.interfaces.is_empty() {
        return Some("nothing to read: give --interface NAME (live capture) or --pcap FILE");
    }
    if a.collectors.is_empty() {
        return Some("no collector: give --collector HOST:PORT (repeatable)");
    }
    None
}

fn probe(a: ProbeArgs) -> anyhow::Result<()> {
    let secs = |s: u64| s.saturating_mul(1000);
    let table = TableConfig {
        idle_timeout_ms: secs(a.idle_timeout),
        active_timeout_ms: secs(a.active_timeout),
        tcp_linger_ms: secs(a.tcp_linger),
        max_flows: a.max_flows.max(1),
        ..TableConfig::default()
    };
    // Before the export settings: the NAT templates are announced only when conntrack runs.
    let conntrack = if a.conntrack {
        start_conntrack(&a, &table)
    } else {
        None
    };
    let export = ExportConfig {
        observation_domain: a.observation_domain_id,
        max_message_size: a.mtu,
        uniflow: a.uniflow,
        enterprise_number: a.enterprise_number,
        observer: ObserverInfo {
            pod_name: a.observer_pod_name.filter(|s| !s.is_empty()),
            pod_namespace: a.observer_pod_namespace.filter(|s| !s.is_empty()),
            node_name: a.observer_node_name.filter(|s| !s.is_empty()),
        },
        template_refresh_ms: secs(a.template_refresh),
        nat: conntrack.is_some(),
    };
    let writer = IpfixWriter::new(export).context("export settings")?;
    let collectors = Collectors::connect(&a.collectors)?;
    let metrics = Metrics::default();
    let server = podflow_telemetry::Server::new("podflow-exporter").families(metrics.families());
    let ready = server.readiness();
    if let Some(addr) = a.metrics_listen {
        let bound = server.spawn(addr).with_context(|| format!("metrics on {addr}"))?;
        tracing::info!("metrics on http://{bound}/metrics");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let mut engine = Engine::new(FlowTable::new(table), writer, collectors, metrics.clone());
    if a.conntrack {
        engine = engine.with_conntrack(conntrack);
    }
    // The export sockets are connected; capture opens its interfaces (or file) next.
    ready.set();
    let totals = match &a.pcap {
        Some(path) => capture::run_file(path, &mut engine, &stop)?,
        None => {
            let live = LiveConfig {
                interfaces: a.interfaces,
                filter: a.filter,
                snaplen: a.snaplen,
                buffer_size: a.buffer_size.saturating_mul(1 << 20),
                promisc: a.promisc,
                direction: match a.direction {
                    DirectionArg::In => pcap::Direction::In,
                    DirectionArg::Out => pcap::Direction::Out,
                    DirectionArg::Both => pcap::Direction::InOut,
                },
                rescan: Duration::from_secs(a.rescan_interval.max(1)),
            };
            capture::run_live(live, &mut engine, &metrics, &stop)?
        }
    };
    tracing::info!(
        "{} packets ({} skipped), {} flows exported as {} records in {} messages; at most \
         {} flows held at once",
        totals.packets,
        totals.skipped,
        totals.flows,
        totals.records,
        totals.messages,
        totals.peak_flows
    );
    Ok(())
}

/// Opens conntrack and takes the first dump; on failure prints the one warning and returns `None`: the
/// probe goes on without NAT resolution.
fn start_conntrack(a: &ProbeArgs, table: &TableConfig) -> Option<Conntrack> {
    let limits = TableLimits {
        max_entries: a.conntrack_max.max(1),
        // A destroyed connection's flows can still be open for an idle timeout (or a TCP linger).
        grace_ms: table
            .idle_timeout_ms
            .max(table.tcp_linger_ms)
            .saturating_add(5_000),
    };
    let started = NetlinkSource::open(a.conntrack_buffer.saturating_mul(1024)).and_then(|source| {
        let buffer = source.receive_buffer();
        let ct = Conntrack::start(Box::new(source), limits, wall_ms())?;
        Ok((
            ct.with_sweep_interval(a.conntrack_sweep.saturating_mul(1000)),
            buffer,
        ))
    });
    match started {
        Ok((ct, buffer)) => {
            tracing::info!(
                "conntrack: {} translated connections, event buffer {} KiB",
                ct.stats().entries,
                buffer / 1024
            );
            Some(ct)
        }
        Err(e) => {
            tracing::warn!(
                "--conntrack: {e}; going on without conntrack: flows are \
                 exported without NAT fields and counted as unresolved"
            );
            None
        }
    }
}

fn community_id_cmd(args: &CommunityIdArgs) -> anyhow::Result<()> {
    let encoding = if args.no_base64 {
        Encoding::Hex
    } else {
        Encoding::Base64
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match community_id::run(&args.file, CommunityId::new(args.seed), encoding, &mut out) {
        Ok(_) => Ok(()),
        // A reader that went away (`| head`) is not a failure of ours.
        Err(community_id::Error::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            // Lines printed before a mid-file error are still useful; don't lose them.
            let _ = out.flush();
            Err(e.into())
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "podflow-exporter: {e:#}");
            ExitCode::FAILURE
        }
    }
}
