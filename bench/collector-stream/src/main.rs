//! `collector-stream`: the input of the collector benchmark (bench/collector-throughput.sh).
//!
//! * `record` writes a cluster inventory (Kubernetes List YAML) and a stream of IPFIX messages that
//!   podflow-exporter's own writer makes for flows between that cluster's pods, Services and the
//!   Internet, and prints the stream's totals as JSON.
//! * `replay` sends a recorded stream to one collector at a steady datagram rate, and prints what it
//!   sent as JSON.
//! * `count` counts the lines of collectors' JSON output, the malformed ones, and sums one numeric
//!   member, quickly enough for files of many gigabytes.
//! * `stages` runs podflow-collector's decode, enrich and encode steps on a recorded stream in one
//!   thread, and prints their CPU time per record (and is what to run under callgrind).

mod cluster;
mod count;
mod replay;
mod stages;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Records and replays the collector benchmark's IPFIX stream.
#[derive(Parser)]
#[command(name = "collector-stream")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the stream file and the inventory; prints the stream's totals as JSON.
    Record {
        /// Stream file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Directory to write the inventory (cluster.yaml) into.
        #[arg(long, value_name = "DIR")]
        inventory: PathBuf,
        /// Data records in the recording.
        #[arg(long, default_value_t = 2_500_000)]
        records: u64,
        /// Exporters: node probes, one per node.
        #[arg(long, default_value_t = 16)]
        exporters: usize,
        /// Nodes of the cluster.
        #[arg(long, default_value_t = 60)]
        nodes: usize,
        /// Pods of the cluster.
        #[arg(long, default_value_t = 3_000)]
        pods: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Largest IPFIX message, as the exporter's --max-message-size.
        #[arg(long, default_value_t = 1400)]
        max_message_size: usize,
        /// Workloads each workload talks to (a call graph chosen by the seed); 0: any pod to any pod,
        /// so nearly every flow is a workload pair of its own.
        #[arg(long, default_value_t = 0)]
        peers: usize,
    },
    /// Sends a recorded stream to a collector; prints what was sent as JSON.
    Replay {
        /// Stream file.
        #[arg(long, value_name = "FILE")]
        stream: PathBuf,
        /// Collector address.
        #[arg(long, value_name = "ADDR")]
        to: SocketAddr,
        /// Datagrams per second.
        #[arg(long)]
        rate: f64,
        /// Times the recording is sent.
        #[arg(long, default_value_t = 1)]
        loops: u32,
    },
    /// Counts lines of JSON files (those not an object are malformed) and sums a member; prints JSON.
    Count {
        /// The text before the number to sum on each line, e.g. '"packets": '.
        #[arg(long, value_name = "TEXT")]
        sum_after: Option<String>,
        /// Files.
        files: Vec<PathBuf>,
    },
    /// Runs podflow-collector's decode, enrich and encode steps on a recorded stream in one thread (no
    /// sockets, no disk) and prints their CPU time per record as JSON. Under callgrind, count only the
    /// measured part: valgrind --tool=callgrind --toggle-collect='*stages*measured*' collector-stream
    /// stages ...
    Stages {
        /// Stream file.
        #[arg(long, value_name = "FILE")]
        stream: PathBuf,
        /// The inventory the stream was recorded with (a file or a directory).
        #[arg(long, value_name = "PATH")]
        inventory: PathBuf,
        /// Datagrams processed first and not counted.
        #[arg(long, default_value_t = 2_000)]
        warm: usize,
        /// Datagrams of the recording used in all (0: every one).
        #[arg(long, default_value_t = 0)]
        datagrams: usize,
        /// Also count each flow's edge, summed per batch into the flow metrics and the node graph, as
        /// the collector does with --metrics-listen (compare a run without it for their cost).
        #[arg(long)]
        edges: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Record {
            out,
            inventory,
            records,
            exporters,
            nodes,
            pods,
            seed,
            max_message_size,
            peers,
        } => {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let cluster = cluster::Cluster::new(nodes, pods, seed);
            std::fs::create_dir_all(&inventory)
                .with_context(|| format!("creating {}", inventory.display()))?;
            // Everything in the cluster has existed for a day when the stream starts.
            let yaml = cluster.inventory_yaml(now_ms / 1000 - 86_400);
            std::fs::write(inventory.join("cluster.yaml"), yaml)?;
            let cfg = stream::RecordConfig {
                records,
                exporters,
                seed,
                start_ms: now_ms,
                stream_rate: 250_000,
                peers,
                max_message_size,
            };
            let totals = stream::record(&cluster, &cfg, &out)?;
            let mut j = totals.json(exporters.clamp(1, cluster.nodes.len()));
            j["pods"] = cluster.pods.len().into();
            j["services"] = cluster.workloads.len().into();
            j["nodes"] = cluster.nodes.len().into();
            println!("{j}");
        }
        Command::Replay {
            stream,
            to,
            rate,
            loops,
        } => {
            let dgs = stream::load(&stream)?;
            let report = replay::replay(&dgs, &replay::ReplayConfig { to, rate, loops })?;
            println!("{report}");
        }
        Command::Count { sum_after, files } => {
            println!("{}", count::count(&files, sum_after.as_deref())?);
        }
        Command::Stages {
            stream,
            inventory,
            warm,
            datagrams,
            edges,
        } => {
            let mut dgs = stream::load(&stream)?;
            if datagrams > 0 {
                dgs.truncate(datagrams);
            }
            println!("{}", stages::stages(&dgs, &inventory, warm, edges)?);
        }
    }
    Ok(())
}
