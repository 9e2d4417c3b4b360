//! podflow-collector: receives IPFIX and NetFlow, attributes flows to Kubernetes objects and feeds sinks.
//!
//! The receive/enrich/sink pipeline is not built yet; today the binary offers `decode`, which prints what
//! IPFIX messages and files hold, element by element.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use podflow_collector::inspect;

/// podflow's collector.
#[derive(Parser, Debug)]
#[command(name = "podflow-collector", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the data records of IPFIX messages, one JSON object per line.
    ///
    /// Each FILE is either one raw IPFIX message (a UDP payload, as exporters send it) or an IPFIX file
    /// (RFC 5655: messages back to back). All FILEs are read as one exporter's stream, in the order given,
    /// so a template file followed by data files decodes like the live stream would. Elements are named
    /// from the IANA registry, RFC 5103 reverse elements (PEN 29305) as reverseName, and podflow's own
    /// elements under --podflow-pen; other enterprise elements print as "PEN/ID" with hex octets.
    /// Malformed input is reported on stderr with its offset and reason, and decoding goes on.
    Decode {
        /// Files to read, in stream order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Private Enterprise Number of podflow's enterprise elements.
        #[arg(long, default_value_t = proto_ipfix::ie::DEFAULT_PODFLOW_PEN)]
        podflow_pen: u32,
        /// Also print template definitions.
        #[arg(long)]
        templates: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode {
            files,
            podflow_pen,
            templates,
        } => inspect::run(&files, podflow_pen, templates, &mut std::io::stdout().lock()),
    };
    match result {
        Ok(report) if report.errors == 0 => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!(
                "podflow-collector: {} part(s) of the input could not be decoded",
                report.errors
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("podflow-collector: {e:#}");
            ExitCode::from(2)
        }
    }
}
