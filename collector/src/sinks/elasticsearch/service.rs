//! The sink's own thread: a Tokio runtime that takes the documents the enrich thread hands over and
//! is the only code that talks to the servers.
//!
//! ```text
//! enrich thread --[bounded channel]--> ready requests --> up to N bulk requests in flight
//!       | (channel full)                   ^    | (no node answers / 429 after every backoff)
//!       v                                  |    v
//!     spool  <-----------------------------+-- spool, replayed oldest segment first
//! ```
//! States: until a node has answered `GET /` and the templates are installed, documents wait (the
//! channel, then the spool); while no node answers, everything goes to the spool and the nodes are
//! probed every flush interval (each at its own pace, see [`client`](super::client)); when one answers,
//! the spool is replayed in order, and while it holds anything new documents join it behind, so they
//! arrive in the order they came.
//!
//! Shutdown (the channel closes): requests in flight and the documents already handed over are sent
//! while nodes answer, within the shutdown timeout; then whatever is left goes to the spool.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use elasticsearch::http::Method;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::bulk::Docs;
use super::client::Nodes;
use super::config::Config;
use super::dead_letter::DeadLetter;
use super::deliver::{Delivery, Target, deliver};
use super::metrics::SinkMetrics;
use super::spool::Spool;
use super::template::{self, Decision, Flavor, Server};
use crate::sinks::ecs::template::data_stream_name;
use podflow_telemetry::Throttle;

/// What the enrich thread and the service share.
pub struct Shared {
    /// The spool, if configured.
    pub spool: Option<Mutex<Spool>>,
    /// Metrics.
    pub metrics: SinkMetrics,
}

impl Shared {
    /// Appends `docs` to the spool, counting what cannot be kept.
    pub fn spool(&self, docs: &Docs) {
        let Some(s) = &self.spool else {
            self.metrics.drop_docs("no_spool", docs.len() as u64);
            return;
        };
        let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
        match s.append(docs) {
            Ok(a) => self.metrics.drop_docs("spool_full", a.dropped),
            Err(e) => {
                self.metrics.drop_docs("spool_error", docs.len() as u64);
                tracing::warn!("elasticsearch: spool: {e}");
            }
        }
        self.metrics.spool_octets.set(s.octets() as i64);
        self.metrics.spool_segments.set(s.segments() as i64);
    }

    fn has_backlog(&self) -> bool {
        self.spool
            .as_ref()
            .is_some_and(|s| !s.lock().unwrap_or_else(|e| e.into_inner()).is_empty())
    }
}

/// A bulk request to make: documents and the spool segment they came from.
struct Job {
    docs: Docs,
    segment: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No answer yet: documents wait.
    Starting,
    /// A node answers and the templates are in place.
    Up,
    /// No node answers: documents go to the spool.
    Down,
}

/// The service.
pub struct Service {
    cfg: Config,
    nodes: Arc<Nodes>,
    shared: Arc<Shared>,
    dead: DeadLetter,
    path: Arc<str>,
    state: State,
    installed: bool,
    ready: VecDeque<Job>,
    /// Jobs of each segment taken from the spool not yet done.
    outstanding: HashMap<u64, usize>,
    logs: Throttle,
}

impl Service {
    /// A service for `cfg`.
    pub fn new(cfg: Config, nodes: Nodes, shared: Arc<Shared>, dead: DeadLetter) -> Self {
        let path = format!("/{}/_bulk", data_stream_name(&cfg.namespace)).into();
        Service {
            cfg,
            nodes: Arc::new(nodes),
            shared,
            dead,
            path,
            state: State::Starting,
            installed: false,
            ready: VecDeque::new(),
            outstanding: HashMap::new(),
            logs: Throttle::default(),
        }
    }

    fn log(&mut self, line: &str) {
        if let Some(n) = self.logs.hit(1) {
            let more = if n > 1 {
                format!(" ({n} such lines since the last)")
            } else {
                String::new()
            };
            tracing::warn!("elasticsearch: {line}{more}");
        }
    }

    /// Runs until `rx` closes and what it handed over is delivered or spooled.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Docs>) {
        let mut tick = tokio::time::interval(self.cfg.flush_interval.min(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut in_flight = FuturesUnordered::new();
        // Copies of the jobs in flight, to spool them if shutdown cuts them short.
        let mut flying: HashMap<u64, Job> = HashMap::new();
        let mut next_job = 0u64;
        let mut deadline: Option<Instant> = None;
        loop {
            if self.state == State::Up {
                while in_flight.len() < self.cfg.in_flight {
                    if self.ready.is_empty() && deadline.is_none() {
                        self.take_segment();
                    }
                    let Some(job) = self.ready.pop_front() else {
                        break;
                    };
                    let id = next_job;
                    next_job += 1;
                    let docs = job.docs.clone();
                    flying.insert(id, job);
                    let target = Target {
                        nodes: self.nodes.clone(),
                        path: self.path.clone(),
                        timeout: self.cfg.request_timeout,
                        backoff: self.cfg.backoff,
                        metrics: self.shared.metrics.clone(),
                    };
                    in_flight.push(async move { (id, deliver(target, docs).await) });
                }
            }
            if deadline.is_some()
                && in_flight.is_empty()
                && (self.ready.is_empty() || self.state != State::Up)
            {
                break;
            }
            let take_more = deadline.is_none() && self.ready.len() < self.cfg.in_flight;
            tokio::select! {
                Some((id, done)) = in_flight.next(), if !in_flight.is_empty() => {
                    let job = flying.remove(&id);
                    self.finished(job.and_then(|j| j.segment), done);
                }
                got = rx.recv(), if take_more => match got {
                    Some(docs) => self.route(docs),
                    None => deadline = Some(Instant::now() + self.cfg.shutdown_timeout),
                },
                _ = tick.tick() => self.tick().await,
                _ = sleep_until(deadline) => break,
            }
        }
        drop(in_flight);
        // Cut short by the deadline: what was in flight, and what waits, goes to the spool (a
        // request that did reach the server makes 409s when replayed).
        let left: Vec<Job> = flying.into_values().chain(self.ready.drain(..)).collect();
        for job in left {
            match job.segment {
                // Still in its segment, which stays for the next start.
                Some(seg) => self.untake(seg),
                None => self.shared.spool(&job.docs),
            }
        }
        for seg in std::mem::take(&mut self.outstanding).into_keys() {
            self.untake(seg);
        }
        if let Some(s) = &self.shared.spool {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = s.close() {
                tracing::warn!("elasticsearch: spool: {e}");
            }
            if !s.is_empty() {
                tracing::info!(
                    "elasticsearch: stopped with {} documents in {} spool segments, replayed at the next start",
                    s.docs(),
                    s.segments()
                );
            }
        }
    }

    fn untake(&self, seg: u64) {
        if let Some(s) = &self.shared.spool {
            s.lock().unwrap_or_else(|e| e.into_inner()).untake(seg);
        }
    }

    /// Where documents from the enrich thread go.
    fn route(&mut self, docs: Docs) {
        let behind = self.shared.has_backlog();
        match self.state {
            State::Up if !behind => self.ready.push_back(Job { docs, segment: None }),
            State::Starting => self.ready.push_back(Job { docs, segment: None }),
            _ => self.shared.spool(&docs),
        }
    }

    /// Loads the oldest spool segment as jobs.
    fn take_segment(&mut self) {
        let Some(s) = &self.shared.spool else {
            return;
        };
        let taken = {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            s.take()
        };
        match taken {
            Ok(Some(t)) => {
                self.shared.metrics.drop_docs("spool_corrupt", t.corrupt);
                if t.corrupt > 0 {
                    self.log(&format!(
                        "spool: {} documents unreadable (checksum) in segment {}",
                        t.corrupt, t.id
                    ));
                }
                if t.batches.is_empty() {
                    self.release(t.id);
                    return;
                }
                self.outstanding.insert(t.id, t.batches.len());
                self.ready.extend(t.batches.into_iter().map(|docs| Job {
                    docs,
                    segment: Some(t.id),
                }));
            }
            Ok(None) => {}
            Err(e) => self.log(&format!("spool: cannot read a segment: {e}")),
        }
    }

    fn release(&mut self, seg: u64) {
        if let Some(s) = &self.shared.spool {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = s.release(seg) {
                tracing::warn!("elasticsearch: spool: {e}");
            }
            self.shared.metrics.spool_octets.set(s.octets() as i64);
            self.shared.metrics.spool_segments.set(s.segments() as i64);
        }
    }

    /// A request ended.
    fn finished(&mut self, segment: Option<u64>, done: Delivery) {
        for note in &done.notes {
            self.log(note);
        }
        if !done.rejected.is_empty() {
            self.dead.write(&done.rejected, &self.shared.metrics);
        }
        if let Some(left) = &done.leftover {
            self.shared.spool(left);
        }
        if done.down && self.state == State::Up {
            self.state = State::Down;
            // A change of state, not a repeated failure: said every time (probes are backed off, so
            // a flapping node cannot flood the log with it).
            tracing::warn!("elasticsearch: no node answers: documents go to the spool");
            // What waits goes to the spool behind what is there.
            for job in std::mem::take(&mut self.ready) {
                match job.segment {
                    Some(seg) => self.done_with(seg),
                    None => self.shared.spool(&job.docs),
                }
            }
        }
        if let Some(seg) = segment {
            self.done_with(seg);
        }
    }

    /// One job of segment `seg` is done (delivered, or its leftovers spooled again).
    fn done_with(&mut self, seg: u64) {
        let left = self.outstanding.get_mut(&seg).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == Some(0) {
            self.outstanding.remove(&seg);
            self.release(seg);
        }
    }

    /// Once per flush interval: fsync the spool, probe the nodes when none is known to answer.
    async fn tick(&mut self) {
        if let Some(s) = &self.shared.spool {
            let handle = s.lock().unwrap_or_else(|e| e.into_inner()).sync_handle();
            if let Some(f) = handle {
                // Outside the lock, so the enrich thread can append meanwhile.
                let _ = tokio::task::spawn_blocking(move || f.sync_data()).await;
            }
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.metrics.spool_octets.set(s.octets() as i64);
            self.shared.metrics.spool_segments.set(s.segments() as i64);
        }
        if self.state != State::Up && self.nodes.any_usable() {
            self.probe().await;
        }
    }

    /// Asks the nodes who they are, and installs the templates when one answers.
    async fn probe(&mut self) {
        let mut server = None;
        let nodes = self.nodes.clone();
        for node in nodes.all() {
            let r = node
                .send(
                    Method::Get,
                    "/",
                    &[],
                    None,
                    false,
                    self.cfg.request_timeout.min(Duration::from_secs(10)),
                )
                .await;
            match r {
                Ok(reply) if reply.status == 200 => {
                    self.nodes.up(node);
                    match Server::from_root(&reply.body) {
                        Ok(s) => server = Some(s),
                        Err(e) => tracing::warn!("elasticsearch: {}: GET / answer: {e}", node.label),
                    }
                }
                Ok(reply) => {
                    self.nodes.down(node);
                    self.log(&format!("{}: GET / answered {}", node.label, reply.status));
                }
                Err(e) => {
                    if self.nodes.down(node) || self.state == State::Starting {
                        self.log(&format!("{} does not answer: {e}", node.label));
                    }
                }
            }
        }
        let Some(server) = server else {
            if self.state == State::Starting {
                self.state = State::Down;
                for job in std::mem::take(&mut self.ready) {
                    self.shared.spool(&job.docs);
                }
            }
            return;
        };
        if !self.installed {
            match self.install(&server).await {
                Ok(()) => self.installed = true,
                Err(e) => {
                    self.log(&format!(
                        "cannot install the templates (documents wait in the spool): {e}"
                    ));
                    self.state = State::Down;
                    return;
                }
            }
        }
        if self.state != State::Up {
            tracing::info!(
                "elasticsearch: {} {} answers; writing to {}",
                match server.flavor {
                    Flavor::OpenSearch => "OpenSearch",
                    Flavor::Elasticsearch => "Elasticsearch",
                },
                server.version,
                data_stream_name(&self.cfg.namespace)
            );
        }
        self.state = State::Up;
    }

    /// Puts the component and index templates, unless the server holds the same or newer ones.
    async fn install(&mut self, server: &Server) -> Result<(), String> {
        if server.flavor == Flavor::OpenSearch && self.cfg.ilm_policy.is_some() {
            tracing::warn!(
                "elasticsearch: --elasticsearch-ilm-policy is ignored by OpenSearch (attach an ISM policy by its ism_template)"
            );
        }
        let items = [
            (
                "_component_template",
                template::COMPONENT_NAME,
                template::component_template(server),
            ),
            (
                "_index_template",
                template::index_template_name(),
                template::index_template(server, self.cfg.ilm_policy.as_deref()),
            ),
        ];
        for (api, name, body) in items {
            let path = format!("/{api}/{name}");
            let node = self.nodes.pick().ok_or("no node")?;
            let timeout = self.cfg.request_timeout;
            let got = node
                .send(Method::Get, &path, &[], None, false, timeout)
                .await
                .map_err(|e| e.to_string())?;
            let answer = match got.status {
                200 => Some(got.body),
                404 => None,
                s => return Err(format!("GET {path}: {s}")),
            };
            match template::decide(answer.as_deref()).map_err(|e| format!("GET {path}: {e}"))? {
                Decision::Keep => {}
                Decision::Newer(v) => tracing::warn!(
                    "elasticsearch: {path} has version {v}, newer than this collector's {}: left as it is",
                    template::VERSION
                ),
                Decision::Put(_) => {
                    let put = node
                        .send(Method::Put, &path, &[], Some(body.into()), false, timeout)
                        .await
                        .map_err(|e| e.to_string())?;
                    if put.status != 200 {
                        return Err(format!(
                            "PUT {path}: {} {}",
                            put.status,
                            String::from_utf8_lossy(&put.body[..put.body.len().min(500)])
                        ));
                    }
                    tracing::info!("elasticsearch: installed {path} version {}", template::VERSION);
                }
            }
        }
        Ok(())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
