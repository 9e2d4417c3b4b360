//! The enrich thread's end of the sink: documents are encoded with their `_id` straight into a bulk
//! body, and handed to the sink's own thread when the body reaches the request size or on
//! [`flush`](ElasticsearchSink::flush) (the enrich thread calls it every second). The hand-over never
//! waits: when the sink's queue is full, the body goes to the spool; when that is full too, it is
//! dropped and counted.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use prometheus::Registry;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::bulk::{Builder, Docs};
use super::client::Nodes;
use super::config::Config;
use super::dead_letter::DeadLetter;
use super::id::document_id;
use super::metrics::SinkMetrics;
use super::service::{Service, Shared};
use super::spool::Spool;
use crate::model::EnrichedFlow;
use crate::sinks::ecs::template::data_stream_name;
use crate::sinks::ecs::{Context, Encoder};

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The transports could not be made.
    #[error("{0}")]
    Client(#[from] super::client::BuildError),
    /// The spool directory could not be opened.
    #[error("spool {dir}: {source}")]
    Spool {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The thread or its runtime could not start.
    #[error("sink thread: {0}")]
    Thread(std::io::Error),
}

/// The Elasticsearch sink, as the enrich thread holds it.
pub struct ElasticsearchSink {
    builder: Builder,
    encoder: Encoder,
    tx: Option<mpsc::Sender<Docs>>,
    shared: Arc<Shared>,
    namespace: String,
    bulk_octets: usize,
    thread: Option<JoinHandle<()>>,
}

impl ElasticsearchSink {
    /// Opens the spool, registers the metrics into `registry` and starts the sink's thread. Servers
    /// that do not answer are not an error: documents wait in the spool until one does.
    pub fn start(cfg: Config, registry: &Registry) -> Result<Self, StartError> {
        let metrics = SinkMetrics::register(registry)?;
        let spool = match &cfg.spool {
            Some(sc) => {
                let (s, found) = Spool::open(sc.clone()).map_err(|source| StartError::Spool {
                    dir: sc.dir.clone(),
                    source,
                })?;
                if found.docs > 0 || found.truncated > 0 {
                    tracing::info!(
                        "elasticsearch: spool {} holds {} documents in {} segments to replay{}",
                        sc.dir.display(),
                        found.docs,
                        found.segments,
                        if found.truncated > 0 {
                            format!(" ({} octets of an unfinished write cut)", found.truncated)
                        } else {
                            String::new()
                        }
                    );
                }
                metrics.spool_octets.set(s.octets() as i64);
                metrics.spool_segments.set(s.segments() as i64);
                Some(Mutex::new(s))
            }
            None => None,
        };
        let nodes = Nodes::new(&cfg, metrics.clone())?;
        let shared = Arc::new(Shared { spool, metrics });
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let dead = DeadLetter::new(cfg.dead_letter.clone(), data_stream_name(&cfg.namespace));
        let (namespace, bulk_octets) = (cfg.namespace.clone(), cfg.bulk_octets);
        let service = Service::new(cfg, nodes, shared.clone(), dead);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Thread)?;
        let thread = std::thread::Builder::new()
            .name("elasticsearch".into())
            .spawn(move || runtime.block_on(service.run(rx)))
            .map_err(StartError::Thread)?;
        Ok(ElasticsearchSink {
            builder: Builder::with_capacity(bulk_octets + (64 << 10)),
            encoder: Encoder::new(),
            tx: Some(tx),
            shared,
            namespace,
            bulk_octets,
            thread: Some(thread),
        })
    }

    /// Adds the document of `flow`; hands the body over when it reaches the request size.
    pub fn write_one(&mut self, flow: &EnrichedFlow, ctx: &Context<'_>) {
        let ctx = Context {
            data_stream_namespace: Some(&self.namespace),
            ..*ctx
        };
        let id = document_id(&flow.record);
        let encoder = &mut self.encoder;
        self.builder
            .push_encoded(&id, |room| encoder.encode_into(flow, &ctx, room));
        if self.builder.octets() >= self.bulk_octets {
            self.flush();
        }
    }

    /// Hands what is buffered to the sink's thread (or the spool, when its queue is full).
    pub fn flush(&mut self) {
        if self.builder.is_empty() {
            return;
        }
        let docs = self.builder.take(self.bulk_octets + (64 << 10));
        let Some(tx) = &self.tx else {
            self.shared.spool(&docs);
            return;
        };
        match tx.try_send(docs) {
            Ok(()) => {}
            Err(TrySendError::Full(docs)) | Err(TrySendError::Closed(docs)) => self.shared.spool(&docs),
        }
    }

    /// Hands the rest over and waits for the sink's thread: requests in flight finish (bounded by
    /// the shutdown timeout), what is left is spooled.
    pub fn finish(mut self) {
        if !self.builder.is_empty() {
            let docs = self.builder.take(0);
            // At shutdown the enrich thread may wait for room.
            let sent = self.tx.as_ref().map(|tx| tx.blocking_send(docs));
            if let Some(Err(mpsc::error::SendError(docs))) = sent {
                self.shared.spool(&docs);
            }
        }
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The sink's metrics.
    pub fn metrics(&self) -> &SinkMetrics {
        &self.shared.metrics
    }
}
