//! podflow-collector: receives IPFIX and NetFlow, attributes flows to Kubernetes objects and feeds sinks.
//!
//! Without a subcommand it runs the collector: receive, decode, join NAT, attribute to Kubernetes, write
//! documents. `decode` prints what IPFIX messages and files hold, element by element.

use std::path::PathBuf;
use std::process::ExitCode;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use podflow_collector::decode::DecoderConfig;
use podflow_collector::enrich::dedup::DedupConfig;
use podflow_collector::enrich::{Attributor, NoMetadata};
use podflow_collector::inspect;
use podflow_collector::k8s::{
    self,
    api::{ApiProvider, ApiSettings, Observer},
    index::IndexSettings,
    inventory::Inventory,
};
use podflow_collector::metrics::Metrics;
use podflow_collector::pipeline::{self, PipelineConfig};
use podflow_collector::receive;
use podflow_collector::sinks::edges::EdgeConsumer;
use podflow_collector::sinks::edges::peers::{Cidr, NamedCidr, Peers};
use podflow_collector::sinks::elasticsearch::{ElasticsearchArgs, ElasticsearchSink};
use podflow_collector::sinks::graph::{self, SharedGraph};
use podflow_collector::sinks::ndjson::NdjsonArgs;
use podflow_collector::sinks::prometheus::{FlowMetrics, FlowMetricsConfig};
use podflow_telemetry::LogFormat;
use podflow_telemetry::Server;

/// podflow's collector: receives IPFIX and NetFlow v9/v5 over UDP from podflow's probes and any other
/// exporter, joins Service NAT, attributes every endpoint to its pod, workload, Service and node at the
/// flow's own time, and writes one ECS document per flow.
///
/// Every socket accepts IPFIX, NetFlow v9 and v5 (the header says which). Examples:
///   podflow-collector --ndjson flows.ndjson --inventory cluster.yaml
///   podflow-collector --listen 0.0.0.0:4739 --ndjson - --metrics-listen 0.0.0.0:9478
#[derive(Parser, Debug)]
#[command(name = "podflow-collector", version, verbatim_doc_comment)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Log format: text lines (podflow-collector: ...), or one JSON object per line.
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// UDP address to receive on (repeatable). Default: 0.0.0.0:4739 and [::]:4739 (IPFIX), 0.0.0.0:2055
    /// and [::]:2055 (NetFlow); an address family the host lacks is skipped with a warning.
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<SocketAddr>,

    /// Sockets per listen address (SO_REUSEPORT: each exporter stays on one socket and its decoder).
    /// Default: the number of CPUs, at most 4.
    #[arg(long, value_name = "N")]
    sockets: Option<usize>,

    /// Kernel receive buffer per socket, in MiB (the kernel may cap it: see net.core.rmem_max).
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    receive_buffer: usize,

    /// Decoded records waiting for enrichment and the sinks at most (some 400 octets each in memory
    /// while they wait). This is what rides out a sink that stalls, such as a disk that stops for a
    /// second: the default is about three seconds of 150,000 records a second. Past it, whole batches
    /// are dropped and counted in podflow_collector_dropped_records_total.
    #[arg(long, value_name = "RECORDS", default_value_t = pipeline::DEFAULT_BACKLOG_RECORDS,
          value_parser = clap::value_parser!(u64).range(1024..))]
    backlog: u64,

    #[command(flatten)]
    ndjson: NdjsonArgs,

    #[command(flatten)]
    elasticsearch: ElasticsearchArgs,

    /// Attribute endpoints from a static inventory: Kubernetes Lists in JSON or YAML, as
    /// `kubectl get pods,services,endpointslices,nodes,replicasets,jobs -A -o yaml` prints them (a file
    /// or a directory of them; repeatable).
    #[arg(long, value_name = "PATH")]
    inventory: Vec<PathBuf>,

    /// Attribute endpoints from the Kubernetes API: watch pods, services, endpointslices, nodes,
    /// replicasets and jobs (in cluster, or from --kubeconfig / KUBECONFIG / ~/.kube/config).
    #[arg(long, conflicts_with = "inventory")]
    kubernetes: bool,

    /// Kubeconfig file for --kubernetes.
    #[arg(long, value_name = "PATH", requires = "kubernetes")]
    kubeconfig: Option<PathBuf>,

    /// How long address history is kept, in seconds (flows are attributed at their own start time).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    history: u64,

    /// How long a connection reported by one observer (exporter, or sidecar pod) stays its own: a
    /// record of the same connection from another observer within this many seconds of the owner's
    /// last record is marked podflow.duplicate, so counters count the connection once.
    #[arg(long, value_name = "SECONDS", default_value_t = DedupConfig::default().window_ms / 1000)]
    duplicate_window: u64,

    /// Connections the duplicate table holds (16 octets each; the default, 1048576, is 16 MiB). When
    /// it is full, the connection quiet for longest in a slot's group gives way
    /// (podflow_collector_duplicates_untracked_total counts those still within the window).
    #[arg(long, value_name = "N", default_value_t = DedupConfig::default().max_entries as u64,
          value_parser = clap::value_parser!(u64).range(4..=1 << 28))]
    duplicate_entries: u64,

    /// orchestrator.cluster.name written into every document.
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,

    /// Private Enterprise Number of podflow's enterprise elements.
    #[arg(long, default_value_t = proto_ipfix::ie::DEFAULT_PODFLOW_PEN)]
    podflow_pen: u32,

    /// Templates not refreshed for this long are forgotten, in seconds (RFC 7011 asks for at least three
    /// times the exporters' refresh interval).
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    template_lifetime: u64,

    /// How long a data set that arrives before its template is held for it, in seconds. A collector
    /// that starts knows no template until each exporter sends its templates again (podflow-exporter:
    /// every 10 s; softflowd: every 16 messages); what arrives meanwhile is held (up to 4 MiB per
    /// exporter and 64 MiB in all) and decoded then. Sets held longer are dropped and counted in
    /// podflow_collector_held_sets_total{outcome="expired"}.
    #[arg(long, value_name = "SECONDS", default_value_t = podflow_collector::decode::HoldLimits::default().hold_ms / 1000,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    template_wait: u64,

    /// Serve Prometheus self metrics on /metrics (OpenMetrics when asked), a health check on /healthz
    /// and readiness on /readyz at this address.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,

    /// Do not count flow metrics (podflow_connections_total, podflow_connection_bytes_total,
    /// podflow_connection_packets_total), which /metrics serves whenever --metrics-listen is given.
    #[arg(long)]
    no_flow_metrics: bool,

    /// An address range outside the cluster that the flow metrics name (as namespace external,
    /// workload NAME) instead of plain external, NAME=CIDR (repeatable; the first match wins).
    #[arg(long = "external-cidr", value_name = "NAME=CIDR")]
    external_cidrs: Vec<NamedCidr>,

    /// The cluster's address ranges (repeatable): an address in them with no Kubernetes owner at the
    /// flow's time is unknown in the flow metrics, any other is external. Default: the private ranges
    /// (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, loopback and link-local).
    #[arg(long = "cluster-cidr", value_name = "CIDR")]
    cluster_cidrs: Vec<Cidr>,

    /// Flow metric series of an edge (client, server, Service, protocol) not counted for this long are
    /// removed, so workloads that are gone stop being exported: 600, 600s, 10m or 1h.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    metrics_series_ttl: Duration,

    /// Edges the flow metrics hold at most (five series each); updates of further edges are left out
    /// and counted in podflow_collector_flow_series_refused_total.
    #[arg(long, value_name = "N", default_value_t = FlowMetricsConfig::default().max_series)]
    metrics_max_series: usize,

    /// Also export netflow_connection_count and netflow_connection_bytes (labels srchost,
    /// srcnamespace, dsthost, dstnamespace), for dashboards built for the NetFlow exporter.
    #[arg(long)]
    compat_netflow_metrics: bool,

    /// Do not keep the node graph: no service-map page at /, no Node Graph API under /api/graph
    /// (served on --metrics-listen otherwise).
    #[arg(long)]
    no_service_map: bool,

    /// Client -> server pairs the node graph holds at most (2.4 KiB each, measured: 47 MiB at the
    /// default); pairs beyond it are refused until old ones age out, and logged.
    #[arg(long, value_name = "N", default_value_t = graph::store::DEFAULT_MAX_EDGES)]
    graph_max_edges: usize,
}

/// Seconds, or a number with an `s`, `m` or `h` suffix.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        _ => (s, 1),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (600, 600s, 10m, 1h)"))?;
    Ok(Duration::from_secs(n.saturating_mul(unit)))
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
    /// Serve the sidecar-injection webhook: a mutating admission webhook (HTTPS, AdmissionReview v1 on
    /// POST /mutate) that adds the podflow-exporter probe container to new pods.
    ///
    /// Register it with a MutatingWebhookConfiguration whose namespaceSelector matches the label
    /// podflow.io/inject=enabled (the Helm chart does). A pod annotated podflow.io/inject: "false", a pod
    /// that already has a container named podflow-probe, and a host-network pod are left as they are;
    /// every pod is allowed. The certificate files are read again when they change.
    /// Example:
    ///   podflow-collector webhook --tls-cert /tls/tls.crt --tls-key /tls/tls.key \
    ///       --sidecar-image podflow/podflow:0.1.0 --collector podflow-collector.podflow:4739
    #[command(verbatim_doc_comment)]
    Webhook(Box<WebhookArgs>),
}

#[derive(Args, Debug)]
struct WebhookArgs {
    /// HTTPS address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8443",
        env = "PODFLOW_WEBHOOK_LISTEN"
    )]
    listen: SocketAddr,
    /// PEM certificate (chain) the webhook serves.
    #[arg(long, value_name = "PATH", env = "PODFLOW_WEBHOOK_TLS_CERT")]
    tls_cert: PathBuf,
    /// PEM private key of that certificate.
    #[arg(long, value_name = "PATH", env = "PODFLOW_WEBHOOK_TLS_KEY")]
    tls_key: PathBuf,
    /// Image of the injected probe container (podflow-exporter).
    #[arg(long, value_name = "IMAGE", env = "PODFLOW_SIDECAR_IMAGE")]
    sidecar_image: String,
    /// imagePullPolicy of the injected container.
    #[arg(long, value_name = "POLICY", default_value = "IfNotPresent")]
    sidecar_pull_policy: String,
    /// Collector the injected probe exports to, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", env = "PODFLOW_SIDECAR_COLLECTOR")]
    collector: String,
    /// Interface the probe captures inside the pod (repeatable). Default: eth0.
    #[arg(long = "sidecar-interface", value_name = "PATTERN")]
    sidecar_interfaces: Vec<String>,
    /// CPU request of the injected container.
    #[arg(long, value_name = "QUANTITY", default_value = "10m")]
    sidecar_cpu_request: String,
    /// Memory request of the injected container.
    #[arg(long, value_name = "QUANTITY", default_value = "32Mi")]
    sidecar_memory_request: String,
    /// Memory limit of the injected container.
    #[arg(long, value_name = "QUANTITY", default_value = "128Mi")]
    sidecar_memory_limit: String,
    /// Extra argument for the injected probe (repeatable), e.g. --sidecar-arg=--idle-timeout=30.
    #[arg(long = "sidecar-arg", value_name = "ARG", allow_hyphen_values = true)]
    sidecar_args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    podflow_telemetry::log::init("podflow-collector", cli.log_format);
    let (files, podflow_pen, templates) = match cli.command {
        Some(Command::Decode {
            files,
            podflow_pen,
            templates,
        }) => (files, podflow_pen, templates),
        Some(Command::Webhook(w)) => return exit(webhook(*w)),
        None => return exit(serve(cli.serve)),
    };
    match inspect::run(&files, podflow_pen, templates, &mut std::io::stdout().lock()) {
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

fn exit(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}

fn webhook(w: WebhookArgs) -> anyhow::Result<()> {
    use podflow_collector::webhook::{SidecarResources, SidecarSpec, server};
    let cfg = server::WebhookConfig {
        listen: w.listen,
        cert: w.tls_cert,
        key: w.tls_key,
        sidecar: SidecarSpec {
            image: w.sidecar_image,
            pull_policy: w.sidecar_pull_policy,
            collector: w.collector,
            interfaces: w.sidecar_interfaces,
            resources: SidecarResources {
                cpu_request: w.sidecar_cpu_request,
                memory_request: w.sidecar_memory_request,
                memory_limit: w.sidecar_memory_limit,
            },
            extra_args: w.sidecar_args,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::select! {
            r = server::serve(cfg) => r.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = terminate() => Ok(()),
        }
    })
}

/// Resolves on SIGTERM (what Kubernetes sends to stop a pod).
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let listen = if a.listen.is_empty() {
        ["0.0.0.0:4739", "[::]:4739", "0.0.0.0:2055", "[::]:2055"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    } else {
        a.listen.clone()
    };
    let per = a
        .sockets
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    let mut listeners = Vec::new();
    for addr in &listen {
        match receive::bind(*addr, per, a.receive_buffer.saturating_mul(1 << 20)) {
            Ok((ls, warning)) => {
                if let Some(w) = warning {
                    tracing::warn!("{w}");
                }
                tracing::info!("listening on udp {} ({} sockets)", ls[0].addr, ls.len());
                listeners.extend(ls);
            }
            // The default IPv6 addresses are optional: hosts without IPv6 still collect over IPv4.
            Err(e) if a.listen.is_empty() && addr.is_ipv6() => {
                tracing::warn!("not listening on {addr}: {e}");
            }
            Err(e) => return Err(e).with_context(|| format!("listening on udp {addr}")),
        }
    }
    let sink = a.ndjson.open().context("opening the NDJSON output")?;
    let es_config = a.elasticsearch.config()?;
    match &sink {
        Some(s) => tracing::info!("ndjson: writing to {} ({})", s.target(), s.io_mode()),
        None if es_config.is_none() => tracing::warn!(
            "no sink configured (--ndjson, --elasticsearch): flows are decoded and counted only"
        ),
        None => {}
    }
    let metrics = Metrics::default();
    // The one registry sinks register their metrics into, served beside the pipeline's own families.
    let registry = prometheus::Registry::new();
    let elasticsearch = match es_config {
        Some(cfg) => {
            if cfg.spool.is_none() {
                tracing::warn!(
                    "elasticsearch: no --spool-dir: documents that cannot be delivered are dropped (and counted)"
                );
            }
            Some(ElasticsearchSink::start(cfg, &registry).context("starting the Elasticsearch sink")?)
        }
        None => None,
    };
    let mut edge_consumers: Vec<Box<dyn EdgeConsumer>> = Vec::new();
    if a.metrics_listen.is_some() && !a.no_flow_metrics {
        let cfg = FlowMetricsConfig {
            ttl_ms: u64::try_from(a.metrics_series_ttl.as_millis()).unwrap_or(u64::MAX),
            max_series: a.metrics_max_series,
            compat_netflow: a.compat_netflow_metrics,
        };
        let flow_metrics = FlowMetrics::register(cfg, &registry).context("flow metrics")?;
        edge_consumers.push(Box::new(flow_metrics));
    }
    // Routers other parts of the collector serve on the same address.
    let mut routers: Vec<axum::Router> = Vec::new();
    if a.metrics_listen.is_some() && !a.no_service_map {
        let graph = SharedGraph::new(a.graph_max_edges);
        routers.push(graph::router(graph.clone()));
        edge_consumers.push(Box::new(graph));
    }
    let server = Server::new("podflow-collector")
        .families(metrics.families())
        .registry(&registry)
        .merge_all(routers);
    let ready = server.readiness();
    if let Some(addr) = a.metrics_listen {
        let bound = server.spawn(addr).with_context(|| format!("metrics on {addr}"))?;
        tracing::info!("metrics on http://{bound}/metrics");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    // The API provider's watches run on a small Tokio runtime that lives as long as the collector.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let index = IndexSettings {
        retention_ms: Some(a.history.saturating_mul(1000)),
        ..IndexSettings::default()
    };
    let kubernetes = a.kubernetes || !a.inventory.is_empty();
    let attributor: Arc<dyn Attributor + Send + Sync> = if !a.inventory.is_empty() {
        let inv =
            Inventory::load(&a.inventory, index, pipeline::now_ms()).context("reading the inventory")?;
        let r = inv.report();
        tracing::info!(
            "inventory: {} objects from {} files ({} bad, {} ignored)",
            r.objects,
            r.files,
            r.bad,
            r.ignored
        );
        for p in r.problems.iter().take(10) {
            tracing::info!("inventory: {p}");
        }
        Arc::new(inv)
    } else if a.kubernetes {
        let watched = metrics.clone();
        let observer: Observer = Arc::new(move |s| watched.lock().kubernetes = Some(s.clone()));
        let provider = runtime.block_on(async {
            let client = k8s::api::client(a.kubeconfig.as_deref()).await?;
            ApiProvider::spawn(
                client,
                ApiSettings {
                    index,
                    observer: Some(observer),
                    ..ApiSettings::default()
                },
            )
        });
        let provider = provider.map_err(|e| anyhow::anyhow!("connecting to the Kubernetes API: {e}"))?;
        tracing::info!("watching the Kubernetes API");
        let provider = Arc::new(provider);
        let watched = Arc::clone(&provider);
        ready.require("kubernetes index not synced", move || watched.synced());
        provider
    } else {
        Arc::new(NoMetadata)
    };
    let cfg = PipelineConfig {
        decoder: DecoderConfig {
            podflow_pen: a.podflow_pen,
            template_lifetime_ms: a.template_lifetime.saturating_mul(1000),
            hold: podflow_collector::decode::HoldLimits {
                hold_ms: a.template_wait.saturating_mul(1000),
                ..Default::default()
            },
            ..DecoderConfig::default()
        },
        cluster_name: a.cluster_name,
        kubernetes,
        backlog_records: a.backlog,
        dedup: DedupConfig {
            window_ms: a.duplicate_window.saturating_mul(1000),
            max_entries: usize::try_from(a.duplicate_entries).unwrap_or(usize::MAX),
        },
        peers: Peers {
            external: a.external_cidrs,
            cluster: if a.cluster_cidrs.is_empty() {
                Peers::default().cluster
            } else {
                a.cluster_cidrs
            },
        },
        edge_consumers,
        ..PipelineConfig::default()
    };
    let sinks = pipeline::Sinks {
        ndjson: sink,
        elasticsearch,
    };
    // The sockets are bound; with --kubernetes, /readyz waits for the index as well.
    ready.set();
    let totals = pipeline::run(listeners, cfg, attributor, sinks, metrics, stop)?;
    runtime.shutdown_background();
    tracing::info!(
        "{} records decoded, {} documents written",
        totals.records,
        totals.documents
    );
    Ok(())
}
