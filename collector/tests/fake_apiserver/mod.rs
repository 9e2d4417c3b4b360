//! A Kubernetes API server just big enough for watches: list with a resourceVersion, `watch=true`
//! streams of JSON watch events over chunked HTTP/1.1 with BOOKMARKs, and an ERROR event with a 410
//! Gone status for a watch that starts before the compacted history, as the real one answers.
//!
//! Resource versions are one counter for all resources, as etcd's revision is. Tests change objects
//! either visibly (logged, streamed to open watches) or behind the watches' back ([`Fake::expire`]:
//! changes that are compacted away, so watchers must list again to learn them).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the server holds and has done.
#[derive(Default)]
pub struct State {
    rv: u64,
    objects: HashMap<String, BTreeMap<String, Value>>,
    log: Vec<(u64, String, &'static str, Value)>,
    compacted: HashMap<String, u64>,
    drops: HashMap<String, u64>,
    /// List requests served, by path.
    pub lists: HashMap<String, u32>,
    /// Watch requests served, by path.
    pub watches: HashMap<String, u32>,
    /// BOOKMARK events sent, by path.
    pub bookmarks: HashMap<String, u32>,
    /// 410 Gone events sent, by path.
    pub gone: HashMap<String, u32>,
}

impl State {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn put(&mut self, path: &str, mut object: Value) -> u64 {
        let rv = self.bump();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        self.objects.entry(path.into()).or_default().insert(name, object);
        rv
    }
}

/// The fake server.
pub struct Fake {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

/// Every path the collector watches.
pub const PATHS: [&str; 6] = [
    "/api/v1/pods",
    "/api/v1/services",
    "/api/v1/nodes",
    "/apis/discovery.k8s.io/v1/endpointslices",
    "/apis/apps/v1/replicasets",
    "/apis/batch/v1/jobs",
];

impl Fake {
    /// Starts a server on a loopback port; returns it and its URL.
    pub async fn start() -> (Arc<Fake>, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Arc::new(Fake {
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        });
        let server = Arc::clone(&fake);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(connection(socket, Arc::clone(&server)));
            }
        });
        (fake, url)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Sets an object before anyone lists (or behind the watches' back), without an event.
    pub fn seed(&self, path: &str, object: Value) {
        self.state().put(path, object);
        self.notify();
    }

    /// Adds or changes an object, streaming it to watches.
    pub fn apply(&self, path: &str, object: Value) {
        let mut s = self.state();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let kind = if s.objects.get(path).is_some_and(|o| o.contains_key(&name)) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let rv = s.put(path, object);
        let stored = s.objects[path][&name].clone();
        s.log.push((rv, path.into(), kind, stored));
        drop(s);
        self.notify();
    }

    /// Deletes an object, streaming its last state to watches.
    pub fn delete(&self, path: &str, name: &str) {
        let mut s = self.state();
        let rv = s.bump();
        if let Some(mut object) = s.objects.get_mut(path).and_then(|o| o.remove(name)) {
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            s.log.push((rv, path.into(), "DELETED", object));
        }
        drop(s);
        self.notify();
    }

    /// Moves the resource version on without an event for `path` (changes elsewhere in the cluster).
    pub fn advance(&self) {
        self.state().bump();
        self.notify();
    }

    /// Applies `change` behind the watches' back, compacts `path`'s history up to now and ends its open
    /// watches: a watcher resuming from any earlier version gets 410 Gone.
    pub fn expire(&self, path: &str, change: impl FnOnce(&mut State, &str)) {
        let mut s = self.state();
        change(&mut s, path);
        let rv = s.rv;
        s.compacted.insert(path.into(), rv);
        *s.drops.entry(path.into()).or_default() += 1;
        drop(s);
        self.notify();
    }

    /// Waits (30 s at most) until `cond` holds of the server's state.
    pub async fn until(&self, what: &str, cond: impl Fn(&State) -> bool) {
        let mut rx = self.changed.subscribe();
        let wait = rx.wait_for(|_| cond(&self.state()));
        match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(r) => {
                r.unwrap();
            }
            Err(_) => panic!("timed out waiting for the server: {what}"),
        }
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state())
    }
}

/// Removes an object without an event (for [`Fake::expire`]).
pub fn remove(state: &mut State, path: &str, name: &str) {
    state.bump();
    state.objects.get_mut(path).and_then(|o| o.remove(name));
}

/// Adds an object without an event (for [`Fake::expire`]).
pub fn insert(state: &mut State, path: &str, object: Value) {
    state.put(path, object);
}

fn count(map: &mut HashMap<String, u32>, path: &str) {
    *map.entry(path.into()).or_default() += 1;
}

async fn connection(socket: TcpStream, fake: Arc<Fake>) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    // HTTP/1.1 keep-alive: one request after another on the connection.
    loop {
        let mut request = String::new();
        if read.read_line(&mut request).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            let n = read.read_line(&mut header).await.unwrap_or(0);
            if n == 0 || header == "\r\n" {
                break;
            }
        }
        let target = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let params: HashMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
        let ok = if !PATHS.contains(&path) {
            let body =
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}).to_string();
            respond(&mut write, "404 Not Found", &body).await
        } else if matches!(params.get("watch"), Some(&"true" | &"1")) {
            let from = params
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            stream_watch(&mut write, &fake, path, from).await
        } else {
            let body = {
                let mut s = fake.state();
                count(&mut s.lists, path);
                let items: Vec<Value> = s
                    .objects
                    .get(path)
                    .map(|o| o.values().cloned().collect())
                    .unwrap_or_default();
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": s.rv.to_string()}, "items": items})
            };
            fake.notify();
            respond(&mut write, "200 OK", &body.to_string()).await
        };
        if !ok {
            return;
        }
    }
}

async fn respond(write: &mut (impl AsyncWriteExt + Unpin), status: &str, body: &str) -> bool {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await.is_ok() && write.write_all(body.as_bytes()).await.is_ok()
}

async fn chunk(write: &mut (impl AsyncWriteExt + Unpin), event: &Value) -> bool {
    let line = format!("{event}\n");
    let framed = format!("{:x}\r\n{line}\r\n", line.len());
    write.write_all(framed.as_bytes()).await.is_ok() && write.flush().await.is_ok()
}

/// Streams events after `from` until the path's watches are dropped or the client goes away.
async fn stream_watch(
    write: &mut (impl AsyncWriteExt + Unpin),
    fake: &Fake,
    path: &str,
    mut from: u64,
) -> bool {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if write.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let mut rx = fake.changed.subscribe();
    let epoch = {
        let mut s = fake.state();
        count(&mut s.watches, path);
        s.drops.get(path).copied().unwrap_or(0)
    };
    fake.notify();
    loop {
        rx.borrow_and_update();
        let (events, end) = {
            let mut s = fake.state();
            if s.drops.get(path).copied().unwrap_or(0) != epoch {
                (Vec::new(), true)
            } else if from < s.compacted.get(path).copied().unwrap_or(0) {
                count(&mut s.gone, path);
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("too old resource version: {from}"), "reason": "Expired", "code": 410});
                (vec![json!({"type": "ERROR", "object": status})], true)
            } else {
                let mut events: Vec<Value> = s
                    .log
                    .iter()
                    .filter(|(rv, p, _, _)| *rv > from && p == path)
                    .map(|(_, _, kind, object)| json!({"type": kind, "object": object}))
                    .collect();
                from = s
                    .log
                    .iter()
                    .filter(|(rv, p, _, _)| *rv > from && p == path)
                    .map(|e| e.0)
                    .max()
                    .unwrap_or(from);
                if s.rv > from {
                    // Caught up: tell the client how far the cluster has moved, as the API server does.
                    from = s.rv;
                    count(&mut s.bookmarks, path);
                    events.push(
                        json!({"type": "BOOKMARK", "object": {"kind": "Bookmark", "apiVersion": "v1",
                        "metadata": {"resourceVersion": from.to_string()}}}),
                    );
                }
                (events, false)
            }
        };
        for event in &events {
            if !chunk(write, event).await {
                return false;
            }
        }
        if !events.is_empty() {
            // Only what was sent is news: a watch waking its peers for nothing would spin.
            fake.notify();
        }
        if end {
            return write.write_all(b"0\r\n\r\n").await.is_ok() && write.flush().await.is_ok();
        }
        if rx.changed().await.is_err() {
            return false;
        }
    }
}
