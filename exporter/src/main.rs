//! podflow-exporter: the probe.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use podflow_exporter::community_id::{self, Encoding};
use proto_ipfix::community_id::CommunityId;

/// podflow probe: captures packets, aggregates bidirectional flows and exports them as IPFIX.
#[derive(Debug, Parser)]
#[command(name = "podflow-exporter", version)]
#[command(
    after_help = "Flow export (live capture, IPFIX) is not built yet; the community-id tool works today."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
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
    match cli.command {
        Some(Command::CommunityId(args)) => report(community_id_cmd(&args)),
        None => {
            eprintln!(
                "podflow-exporter: flow export is not built yet; \
                 see `podflow-exporter --help` for the available tools"
            );
            ExitCode::from(2)
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
