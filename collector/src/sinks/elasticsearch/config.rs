//! The sink's command-line options (each also from an environment variable `PODFLOW_<FLAG>`) and the
//! settings they resolve to, secrets read from their files (Kubernetes Secrets arrive as files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use elasticsearch::http::Url;

use super::spool;

/// Octets of a bulk request at most, by default.
pub const BULK_OCTETS: usize = 5 << 20;

/// The command-line options of the sink, for the collector's CLI to flatten in.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ElasticsearchArgs {
    /// Write every flow as an ECS document into the data stream logs-podflow.flows-<namespace> of the
    /// Elasticsearch or OpenSearch node at URL (repeatable, or comma-separated in the environment:
    /// requests go round robin, a node that fails is skipped and tried again later).
    #[arg(
        long = "elasticsearch",
        value_name = "URL",
        env = "PODFLOW_ELASTICSEARCH",
        value_delimiter = ','
    )]
    pub nodes: Vec<String>,
    /// File holding an API key (the encoded form Kibana shows, or ID:KEY).
    #[arg(
        long = "elasticsearch-api-key-file",
        value_name = "PATH",
        env = "PODFLOW_ELASTICSEARCH_API_KEY_FILE"
    )]
    pub api_key_file: Option<PathBuf>,
    /// User for basic authentication (with --elasticsearch-password-file).
    #[arg(
        long = "elasticsearch-user",
        value_name = "USER",
        env = "PODFLOW_ELASTICSEARCH_USER",
        requires = "password_file",
        conflicts_with = "api_key_file"
    )]
    pub user: Option<String>,
    /// File holding the password of --elasticsearch-user.
    #[arg(
        long = "elasticsearch-password-file",
        value_name = "PATH",
        env = "PODFLOW_ELASTICSEARCH_PASSWORD_FILE",
        requires = "user"
    )]
    pub password_file: Option<PathBuf>,
    /// PEM file of the certificate authority that signed the nodes' certificates (https URLs), instead
    /// of the system's roots.
    #[arg(
        long = "elasticsearch-ca-file",
        value_name = "PATH",
        env = "PODFLOW_ELASTICSEARCH_CA_FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// The data stream's namespace: documents go to logs-podflow.flows-<NAMESPACE>.
    #[arg(
        long = "elasticsearch-namespace",
        value_name = "NAMESPACE",
        env = "PODFLOW_ELASTICSEARCH_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// An existing index lifecycle policy for the data stream's backing indices (Elasticsearch ILM;
    /// ignored by OpenSearch, whose ISM policies attach by their own index patterns).
    #[arg(
        long = "elasticsearch-ilm-policy",
        value_name = "NAME",
        env = "PODFLOW_ELASTICSEARCH_ILM_POLICY"
    )]
    pub ilm_policy: Option<String>,
    /// Append documents the server refuses for good (mapping and parse errors) to PATH as NDJSON, each
    /// with the server's reason. Default: dead-letter.ndjson in --spool-dir; without either, each is
    /// logged (at a rate) and counted.
    #[arg(
        long = "elasticsearch-dead-letter",
        value_name = "PATH",
        env = "PODFLOW_ELASTICSEARCH_DEAD_LETTER"
    )]
    pub dead_letter: Option<PathBuf>,
    /// Octets of a bulk request at most.
    #[arg(
        long = "elasticsearch-bulk-octets",
        value_name = "OCTETS",
        env = "PODFLOW_ELASTICSEARCH_BULK_OCTETS",
        default_value_t = BULK_OCTETS
    )]
    pub bulk_octets: usize,
    /// Seconds a document waits for its bulk request to fill at most.
    #[arg(
        long = "elasticsearch-flush-interval",
        value_name = "SECONDS",
        env = "PODFLOW_ELASTICSEARCH_FLUSH_INTERVAL",
        default_value_t = 1.0
    )]
    pub flush_interval: f64,
    /// Bulk requests awaiting their answer at most.
    #[arg(
        long = "elasticsearch-requests-in-flight",
        value_name = "N",
        env = "PODFLOW_ELASTICSEARCH_REQUESTS_IN_FLIGHT",
        default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(1..=64)
    )]
    pub in_flight: u32,
    /// Compress bulk requests with gzip (less network, more CPU).
    #[arg(long = "elasticsearch-gzip", env = "PODFLOW_ELASTICSEARCH_GZIP")]
    pub gzip: bool,
    /// Keep documents that cannot be delivered yet (no node answers, or they answer 429/503) in
    /// checksummed segment files in DIR, replayed in order when a node answers, and by the next
    /// collector started on DIR. Without it such documents are dropped and counted.
    #[arg(long = "spool-dir", value_name = "DIR", env = "PODFLOW_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Size of the spool at most, in MiB.
    #[arg(
        long = "spool-max-mib",
        value_name = "MIB",
        env = "PODFLOW_SPOOL_MAX_MIB",
        default_value_t = 1024
    )]
    pub spool_max_mib: u64,
    /// What a full spool drops: the documents arriving (drop-newest) or its oldest segments
    /// (drop-oldest). Either way they are counted in
    /// podflow_collector_elasticsearch_dropped_total{reason="spool_full"}.
    #[arg(
        long = "spool-full",
        value_name = "WHICH",
        env = "PODFLOW_SPOOL_FULL",
        value_enum,
        default_value_t = spool::Full::DropNewest
    )]
    pub spool_full: spool::Full,
    /// On SIGTERM or SIGINT, seconds to let bulk requests in flight finish; what is left goes to the
    /// spool.
    #[arg(
        long = "shutdown-timeout",
        value_name = "SECONDS",
        env = "PODFLOW_SHUTDOWN_TIMEOUT",
        default_value_t = 10.0
    )]
    pub shutdown_timeout: f64,
}

/// How the sink authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// None.
    None,
    /// An API key, encoded (`base64(id:key)`).
    EncodedApiKey(String),
    /// An API key as its id and key.
    ApiKey(String, String),
    /// User and password.
    Basic(String, String),
}

/// The sink's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The nodes, in order.
    pub nodes: Vec<Url>,
    /// Credentials.
    pub auth: Auth,
    /// PEM of the certificate authority, if not the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// The data stream's namespace.
    pub namespace: String,
    /// Lifecycle policy to name in the index template.
    pub ilm_policy: Option<String>,
    /// Dead-letter file.
    pub dead_letter: Option<PathBuf>,
    /// Octets of a bulk request at most.
    pub bulk_octets: usize,
    /// Time a document waits for its request to fill at most.
    pub flush_interval: Duration,
    /// Requests in flight at most.
    pub in_flight: usize,
    /// Gzip request bodies.
    pub gzip: bool,
    /// The spool, if any.
    pub spool: Option<spool::Config>,
    /// Time for requests in flight at shutdown.
    pub shutdown_timeout: Duration,
    /// Time one request may take.
    pub request_timeout: Duration,
    /// Shortest and longest wait before sending refused documents again, and how many times.
    pub backoff: (Duration, Duration, usize),
    /// Batches queued from the enrich thread to the sink's own thread at most.
    pub queue: usize,
}

/// Why the options do not make a sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL that does not parse or is not http(s).
    #[error("--elasticsearch {0:?} is not an http:// or https:// URL")]
    Url(String),
    /// A secret file that cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A namespace a data stream name cannot hold.
    #[error(
        "--elasticsearch-namespace {0:?}: a data stream namespace is lower case, at most 100 characters, without - \\ / * ? \" < > | , # : or spaces"
    )]
    Namespace(String),
    /// A number out of range.
    #[error("{0}")]
    Range(&'static str),
}

fn read_secret(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })
}

fn seconds(s: f64, what: &'static str) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(s).map_err(|_| ConfigError::Range(what))
}

/// True for a namespace Elasticsearch accepts in a data stream's name.
pub fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 100
        && ns == ns.to_lowercase()
        && !ns.chars().any(|c| "-\\/*?\"<>|,#: ".contains(c))
}

impl ElasticsearchArgs {
    /// The settings, if the sink is enabled (`--elasticsearch` given).
    pub fn config(&self) -> Result<Option<Config>, ConfigError> {
        if self.nodes.is_empty() {
            return Ok(None);
        }
        let mut nodes = Vec::new();
        for n in &self.nodes {
            let with_slash = if n.ends_with('/') {
                n.clone()
            } else {
                format!("{n}/")
            };
            let url = Url::parse(&with_slash).map_err(|_| ConfigError::Url(n.clone()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError::Url(n.clone()));
            }
            nodes.push(url);
        }
        let auth = match (&self.api_key_file, &self.user, &self.password_file) {
            (Some(f), _, _) => {
                let key = read_secret(f)?;
                match key.split_once(':') {
                    Some((id, k)) => Auth::ApiKey(id.to_owned(), k.to_owned()),
                    None => Auth::EncodedApiKey(key),
                }
            }
            (None, Some(u), Some(p)) => Auth::Basic(u.clone(), read_secret(p)?),
            _ => Auth::None,
        };
        let ca_pem = match &self.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?),
            None => None,
        };
        if !valid_namespace(&self.namespace) {
            return Err(ConfigError::Namespace(self.namespace.clone()));
        }
        if self.bulk_octets < 4096 {
            return Err(ConfigError::Range(
                "--elasticsearch-bulk-octets must be at least 4096",
            ));
        }
        let max_octets = self.spool_max_mib.saturating_mul(1 << 20);
        let spool = self.spool_dir.as_ref().map(|dir| spool::Config {
            dir: dir.clone(),
            max_octets,
            full: self.spool_full,
            segment_octets: spool::SEGMENT_OCTETS.min(max_octets / 4).max(1 << 16),
        });
        let dead_letter = self
            .dead_letter
            .clone()
            .or_else(|| self.spool_dir.as_ref().map(|d| d.join("dead-letter.ndjson")));
        Ok(Some(Config {
            nodes,
            auth,
            ca_pem,
            namespace: self.namespace.clone(),
            ilm_policy: self.ilm_policy.clone(),
            dead_letter,
            bulk_octets: self.bulk_octets,
            flush_interval: seconds(
                self.flush_interval,
                "--elasticsearch-flush-interval must be a positive number of seconds",
            )?,
            in_flight: self.in_flight as usize,
            gzip: self.gzip,
            spool,
            shutdown_timeout: seconds(
                self.shutdown_timeout,
                "--shutdown-timeout must be a positive number of seconds",
            )?,
            request_timeout: Duration::from_secs(60),
            backoff: (Duration::from_millis(100), Duration::from_secs(5), 8),
            queue: 4,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        es: ElasticsearchArgs,
    }

    #[test]
    fn flags_resolve_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = dir.path().join("key");
        std::fs::write(&key, "aWQ6a2V5\n").unwrap_or_else(|e| panic!("{e}"));
        let key = key.to_string_lossy().into_owned();
        let args = [
            "podflow",
            "--elasticsearch",
            "https://es-0:9200",
            "--elasticsearch",
            "http://es-1:9200/",
            "--elasticsearch-api-key-file",
            &key,
            "--spool-dir",
            "/tmp/x",
            "--spool-max-mib",
            "64",
        ];
        let cfg = Cli::parse_from(args).es.config().ok().flatten();
        let cfg = cfg.unwrap_or_else(|| panic!("no config"));
        let urls: Vec<&str> = cfg.nodes.iter().map(Url::as_str).collect();
        assert_eq!(urls, ["https://es-0:9200/", "http://es-1:9200/"]);
        assert_eq!(cfg.auth, Auth::EncodedApiKey("aWQ6a2V5".into()));
        assert_eq!(cfg.namespace, "default");
        assert_eq!(cfg.dead_letter, Some(PathBuf::from("/tmp/x/dead-letter.ndjson")));
        assert_eq!(cfg.spool.map(|s| s.max_octets), Some(64 << 20));
        assert_eq!(
            (cfg.bulk_octets, cfg.in_flight, cfg.flush_interval),
            (BULK_OCTETS, 2, Duration::from_secs(1))
        );

        let off = Cli::parse_from(["p"]).es.config().ok().flatten();
        assert!(off.is_none(), "off without --elasticsearch");
        let bad: [&[&str]; 2] = [
            &["p", "--elasticsearch", "ftp://x"],
            &[
                "p",
                "--elasticsearch",
                "http://x",
                "--elasticsearch-namespace",
                "a-b",
            ],
        ];
        for args in bad {
            assert!(Cli::parse_from(args).es.config().is_err(), "{args:?}");
        }
        assert!(
            Cli::try_parse_from(["p", "--elasticsearch-user", "u"]).is_err(),
            "a user needs a password file"
        );
        let missing = [
            "p",
            "--elasticsearch",
            "http://x",
            "--elasticsearch-api-key-file",
            "/nonexistent/key",
        ];
        assert!(matches!(
            Cli::parse_from(missing).es.config(),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn namespaces() {
        for ok in ["default", "prod", "team_a.eu"] {
            assert!(valid_namespace(ok), "{ok}");
        }
        let long = "x".repeat(101);
        for bad in ["", "Prod", "a-b", "a b", "a:b", long.as_str()] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }
}
