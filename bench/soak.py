#!/usr/bin/python3
"""podflow's soak run: exporter -> collector at a steady rate for N minutes, with pods coming and going.

Run by bench/soak.sh (which builds the binaries); see bench/README.md. Needs root (a veth pair, live
capture), tcpreplay, and the test Kubernetes API server (scripts/kube-apiserver.sh).

The world:
- a veth pair on the host: tcpreplay loops a generated capture (podflow-gen-pcap) out of one end at a
  fixed packet rate; podflow-exporter captures the other end and exports IPFIX to the collector;
- podflow-collector --kubernetes against a real kube-apiserver (the static --inventory is read once at
  start, so pods cannot come and go there), writing ECS NDJSON to its standard output (counted here),
  serving /metrics, and with --elasticsearch URL also the Elasticsearch sink (spooling to disk);
- the capture's TCP and UDP clients are the pods of a few Deployments (a ReplicaSet each). Pods are
  replaced all the time, each after --pod-lifetime seconds: the old one is deleted and a new one (new
  name and UID) takes its address, so flows keep coming from short-lived pods and the collector's
  address history keeps turning over. Workloads stay, as in a cluster, so series and graph edges by
  workload stay as many; what grows with pods is only what the collector keeps per pod, for --history.

Every 10 s it samples the RSS and open file descriptors of both processes and their counters into a CSV
and, at the end, a PNG plot. It fails when a process dies, when RSS or descriptors grow by more than 5 %
from the end of the warm-up to the end of the run, or when a record is lost without a counter saying so:
after the traffic stops, the exporter's records must equal the collector's decoded records plus those it
counted as lost by sequence number plus the exporter's refused sends, and every decoded record must be a
document (counted on the NDJSON stream, and delivered by the Elasticsearch sink) or a NAT event or a
counted drop.
"""

import argparse
import csv
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERVAL = 10
NAMESPACE = "soak"
GROWTH_LIMIT = 0.05
SETTLE_TIMEOUT = 240

FIELDS = ["t_s", "collector_rss_kib", "collector_fds", "exporter_rss_kib", "exporter_fds",
          "exporter_records", "exporter_failed_records", "collector_records", "collector_lost_records",
          "collector_dropped_records", "collector_dropped_datagrams", "queue_depth", "ndjson_documents",
          "documents_read", "es_delivered", "es_dropped", "spool_octets", "nat_events", "enrichment_misses",
          "pods_replaced", "pod_deletions_seen"]


def log(msg):
    print(f"soak: {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    """The run cannot go on: a process died, or something it waited for never came."""


def scrape(port):
    """Every sample of 127.0.0.1:port/metrics: the sum of each family by name, and each labelled sample
    by name and labels as printed."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    sums = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        sums[m.group(1)] = sums.get(m.group(1), 0.0) + v
        if m.group(2):
            sums[m.group(1) + m.group(2)] = v
    return sums


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """The Kubernetes API server's REST API over one kept-alive connection, as a controller uses it."""

    def __init__(self, kdir):
        with open(os.path.join(kdir, "ports.env")) as f:
            ports = dict(line.strip().split("=", 1) for line in f if "=" in line)
        self.port = int(ports["apiserver_port"])
        with open(os.path.join(kdir, "token")) as f:
            self.token = f.read().strip()
        self.ctx = ssl.create_default_context(cafile=os.path.join(kdir, "ca.crt"))
        self.conn = None
        self.calls = 0

    def call(self, method, path, body=None, content_type="application/json", ok=(200, 201, 202)):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                text = r.read()
            except (OSError, http.client.HTTPException) as e:
                # A kept-alive connection the server closed: once more on a new one.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise Failed(f"kube-apiserver: {method} {path}: {e}") from e
                continue
            self.calls += 1
            if r.status not in ok:
                raise Failed(f"kube-apiserver: {method} {path}: {r.status} {text[:300]!r}")
            return json.loads(text or b"{}")
        return {}

    def replica_set(self, w):
        """ReplicaSet `w` of Deployment client<w> (the Deployment itself is not needed: the owner
        reference names it)."""
        deployment, pod_hash = f"client{w}", f"{w:04x}50a6"
        labels = {"app": deployment, "pod-template-hash": pod_hash}
        rs = self.call("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets", {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{deployment}-{pod_hash}", "namespace": NAMESPACE, "labels": labels,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                                              "uid": f"00000000-0000-4000-8000-{w:012d}",
                                              "controller": True}]},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}},
        })
        return rs["metadata"]["name"], rs["metadata"]["uid"], labels

    def pod(self, name, owner, addr):
        rs_name, rs_uid, labels = owner
        self.call("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                              "uid": rs_uid, "controller": True}]},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        })
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.call("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/status", {"status": {
            "phase": "Running", "podIP": addr, "podIPs": [{"ip": addr}], "startTime": now,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        }}, content_type="application/merge-patch+json")

    def delete_pod(self, name):
        self.call("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}", {"gracePeriodSeconds": 0})


class Pods:
    """The client pods: one per capture client address, each replaced after its lifetime."""

    def __init__(self, api, count, workloads, lifetime):
        self.api = api
        self.lifetime = lifetime
        self.owners = [api.replica_set(w) for w in range(workloads)]
        self.addrs = [f"10.{1 + c // 256}.{c % 256}.2" for c in range(count)]
        self.names = [None] * count
        self.serial = 0
        self.replaced = 0
        self.next = 0
        self.due = 0.0
        for c in range(count):
            self.start(c)

    def start(self, c):
        owner = self.owners[c % len(self.owners)]
        self.serial += 1
        self.names[c] = f"{owner[0]}-{self.serial:06d}"
        self.api.pod(self.names[c], owner, self.addrs[c])

    def churn(self, seconds):
        """Replaces as many pods as `seconds` of their lifetime asks, oldest first."""
        self.due += seconds * len(self.addrs) / self.lifetime
        while self.due >= 1:
            self.due -= 1
            c = self.next
            self.next = (c + 1) % len(self.addrs)
            self.api.delete_pod(self.names[c])
            self.start(c)
            self.replaced += 1


class LineCounter(threading.Thread):
    """Counts the documents (lines) of the collector's NDJSON on its standard output."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.lines = 0
        self.not_json = 0

    def run(self):
        at_start = True
        while True:
            block = self.stream.read1(1 << 20)
            if not block:
                return
            if at_start and not block.startswith(b"{"):
                self.not_json += 1
            self.lines += block.count(b"\n")
            # Every line starts with '{': each newline not at the end of the block is followed by one.
            self.not_json += block.count(b"\n") - block.count(b"\n{") - (1 if block.endswith(b"\n") else 0)
            at_start = block.endswith(b"\n")


class World:
    """The processes of the run, their ports and logs; each is checked to be alive on every step."""

    def __init__(self, a, work):
        self.a = a
        self.work = work
        self.procs = {}
        self.veth = f"pfsoak{os.getpid() % 10000}"
        self.kdir = os.path.join(work, "kube")
        self.cmetrics = free_port()
        self.emetrics = free_port()
        self.listen = free_port(socket.SOCK_DGRAM)
        self.documents = None
        # The run's own data stream, counted and deleted at the end.
        self.es_namespace = f"soak{int(time.time())}"

    def alive(self, start=None):
        for name, p in self.procs.items():
            if p.poll() is not None:
                when = f" after {time.monotonic() - start:.0f} s" if start else ""
                raise Failed(f"{name} exited with {p.returncode}{when}: see {self.a.out}/{name}.log")

    def wait_for(self, cond, what, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            if cond():
                return
            time.sleep(0.2)
        raise Failed(f"timed out after {timeout} s waiting for {what}")

    def spawn(self, name, argv, **kw):
        logf = open(os.path.join(self.a.out, f"{name}.log"), "w")
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=logf, **kw)
        return self.procs[name]

    def start_kubernetes(self):
        subprocess.run([os.path.join(ROOT, "scripts/kube-apiserver.sh"), "start", "--dir", self.kdir],
                       check=True, stdout=subprocess.DEVNULL)
        api = Api(self.kdir)
        api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": NAMESPACE}})
        api.call("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}})
        return api

    def make_capture(self):
        """A capture of TCP and UDP flows of the pods' addresses (and ICMP from other addresses), long
        enough that a flow's key comes back only after the exporter has ended and exported it."""
        a = self.a
        pcap = os.path.join(self.work, "flows.pcap")
        out = subprocess.run([os.path.join(a.bin, "podflow-gen-pcap"), "--out", pcap, "--clients", str(a.pods),
                              "--tcp", str(a.flows // 2), "--udp", str(a.flows - a.flows // 2 - a.flows // 50),
                              "--icmp", str(a.flows // 50), "--v6-share", "0", "--packets-per-flow", "2-4",
                              "--flows-per-sec", "3000", "--snaplen", "128"],
                             check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        summary = json.loads(out.stdout)
        log(f"capture: {summary['flows']} flows, {summary['packets']} packets: one loop every "
            f"{summary['packets'] / a.pps:.0f} s at {a.pps} packets/s, about "
            f"{a.pps * summary['flows'] / summary['packets']:.0f} flows/s")
        return pcap

    def start_collector(self):
        a = self.a
        argv = [os.path.join(a.bin, "podflow-collector"), "--listen", f"127.0.0.1:{self.listen}", "--sockets", "1",
                "--kubernetes", "--kubeconfig", os.path.join(self.kdir, "kubeconfig"), "--history", str(a.history),
                "--ndjson", "-", "--metrics-listen", f"127.0.0.1:{self.cmetrics}"]
        if a.elasticsearch:
            argv += ["--elasticsearch", a.elasticsearch, "--elasticsearch-namespace", self.es_namespace,
                     "--spool-dir", os.path.join(self.work, "spool")]
        p = self.spawn("collector", argv, stdout=subprocess.PIPE)
        self.documents = LineCounter(p.stdout)
        self.documents.start()
        self.wait_for(lambda: ready(self.cmetrics), "the collector's /readyz (the Kubernetes index synced)")

    def start_exporter(self):
        ip(["link", "add", self.veth + "a", "type", "veth", "peer", "name", self.veth + "b"])
        for end in ("a", "b"):
            subprocess.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{self.veth}{end}.disable_ipv6=1"], check=False)
            ip(["link", "set", self.veth + end, "up"])
        self.spawn("exporter", [os.path.join(self.a.bin, "podflow-exporter"), "--interface", self.veth + "b",
                                "--collector", f"127.0.0.1:{self.listen}", "--idle-timeout", "5",
                                "--active-timeout", "30", "--metrics-listen", f"127.0.0.1:{self.emetrics}"])
        elog = os.path.join(self.a.out, "exporter.log")
        self.wait_for(lambda: f"capturing {self.veth}b" in open(elog).read(), "the exporter to capture")
        self.wait_for(lambda: ready(self.emetrics), "the exporter's /readyz")

    def start_replay(self, pcap):
        # Bursts of 100 packets between sleeps: a packet at a time busy-waits a whole core.
        self.spawn("tcpreplay", ["tcpreplay", "-q", "-T", "nano", "-i", self.veth + "a", f"--pps={self.a.pps}",
                                 "--pps-multi=100", "--loop=0", pcap], stdout=subprocess.DEVNULL)

    def sample(self, start, pods):
        col, exp = self.procs["collector"].pid, self.procs["exporter"].pid
        # /proc before the scrapes, so their connections are not counted among the descriptors.
        row = {"t_s": round(time.monotonic() - start), "collector_rss_kib": rss_kib(col),
               "collector_fds": fds(col), "exporter_rss_kib": rss_kib(exp), "exporter_fds": fds(exp)}
        c, e = scrape(self.cmetrics), scrape(self.emetrics)
        row.update({
            "exporter_records": int(e.get("podflow_exporter_records_total", 0)),
            "exporter_failed_records": int(e.get("podflow_exporter_send_failed_records_total", 0)),
            "collector_records": int(c.get("podflow_collector_records_total", 0)),
            "collector_lost_records": int(c.get("podflow_collector_lost_records_total", 0)),
            "collector_dropped_records": int(c.get("podflow_collector_dropped_records_total", 0)),
            "collector_dropped_datagrams": int(c.get("podflow_collector_dropped_datagrams_total", 0)),
            "queue_depth": int(c.get("podflow_collector_queue_depth", 0)),
            "ndjson_documents": int(c.get('podflow_collector_documents_total{sink="ndjson"}', 0)),
            "documents_read": self.documents.lines,
            "es_delivered": int(c.get("podflow_collector_elasticsearch_documents_total", 0)),
            "es_dropped": int(c.get("podflow_collector_elasticsearch_dropped_total", 0)
                              + c.get("podflow_collector_elasticsearch_dead_letter_total", 0)),
            "spool_octets": int(c.get("podflow_collector_spool_octets", 0)),
            "nat_events": int(c.get("podflow_collector_nat_events_total", 0)),
            "enrichment_misses": int(c.get("podflow_collector_enrichment_misses_total", 0)),
            "pods_replaced": pods.replaced,
            "pod_deletions_seen": int(c.get('podflow_collector_kubernetes_events_total{kind="pod",event="deleted"}', 0)),
        })
        return row

    def stop(self, name):
        p = self.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return "no exit within 60 s of SIGTERM"

    def close(self):
        for p in self.procs.values():
            p.kill()
            p.wait()
        subprocess.run(["ip", "link", "del", self.veth + "a"], stderr=subprocess.DEVNULL, check=False)
        subprocess.run([os.path.join(ROOT, "scripts/kube-apiserver.sh"), "stop", "--dir", self.kdir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def ip(cmd):
    subprocess.run(["ip"] + cmd, check=True)


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def es_count(url, stream):
    """Documents in `stream` at `url` after a refresh, and the stream deleted (it was this run's)."""
    def call(method, path):
        req = urllib.request.Request(url.rstrip("/") + path, method=method)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}")

    try:
        call("POST", f"/{stream}/_refresh")
        count = call("GET", f"/{stream}/_count")["count"]
        call("DELETE", f"/_data_stream/{stream}")
        return count
    except (OSError, KeyError, ValueError) as e:
        return f"nothing countable ({e})"


def settle(world, row_of, pods):
    """After the traffic stopped: waits until the exporter holds no flow, its records and everything the
    collector did stop moving for three scrapes, the NDJSON reader has every document and the watch has
    seen every pod deletion. Returns the last sample and whether that happened in time."""
    last, stable = None, 0
    deadline = time.monotonic() + SETTLE_TIMEOUT
    row = row_of()
    while time.monotonic() < deadline:
        row = row_of()
        now = tuple(row[k] for k in ("exporter_records", "collector_records", "collector_lost_records",
                                      "ndjson_documents", "documents_read", "es_delivered", "es_dropped"))
        e = scrape(world.emetrics)
        done = (e.get("podflow_exporter_active_flows", 1) == 0 and row["queue_depth"] == 0
                and row["documents_read"] == row["ndjson_documents"] and row["spool_octets"] == 0
                and row["pod_deletions_seen"] >= pods.replaced)
        stable = stable + 1 if now == last and done else 0
        if stable >= 3:
            return row, True
        last = now
        time.sleep(2)
        world.alive()
    return row, False


def account(row, world, es):
    """The record and document balances after settling; returns (summary lines, failures)."""
    lines, failures = [], []
    exported, refused = row["exporter_records"], row["exporter_failed_records"]
    decoded, lost = row["collector_records"], row["collector_lost_records"]
    unaccounted = exported - refused - decoded - lost
    lines.append(f"records: {exported} exported, {refused} refused, {decoded} decoded, {lost} lost by sequence "
                 f"numbers; unaccounted {unaccounted}")
    if unaccounted:
        failures.append(f"{unaccounted} records neither decoded nor counted lost (exported {exported} - refused "
                        f"{refused} - decoded {decoded} - lost {lost})")
    c = scrape(world.cmetrics)
    nat, dropped = row["nat_events"], row["collector_dropped_records"]
    flows = decoded - nat - dropped
    ndjson_failed = int(c.get('podflow_collector_sink_failures_total{sink="ndjson",reason="backlog_full"}', 0))
    written, read = row["ndjson_documents"], row["documents_read"]
    lines.append(f"documents: {flows} flows ({nat} NAT events, {dropped} records dropped behind); NDJSON "
                 f"{written} written, {ndjson_failed} dropped, {read} read from the stream")
    if written + ndjson_failed != flows:
        failures.append(f"NDJSON: {flows} flows but {written} documents written and {ndjson_failed} counted dropped")
    if read != written or world.documents.not_json:
        failures.append(f"NDJSON: the collector counts {written} documents, the stream held {read} lines "
                        f"({world.documents.not_json} not JSON objects)")
    if es:
        delivered, es_dropped = row["es_delivered"], row["es_dropped"]
        indexed = int(c.get('podflow_collector_elasticsearch_documents_total{outcome="indexed"}', 0))
        stream = f"logs-podflow.flows-{world.es_namespace}"
        stored = es_count(es, stream)
        lines.append(f"elasticsearch: {delivered} delivered ({indexed} indexed), {es_dropped} dropped or "
                     f"dead-lettered; {stream} holds {stored}")
        if delivered + es_dropped != flows:
            failures.append(f"Elasticsearch: {flows} flows but {delivered} delivered and {es_dropped} counted")
        if stored != indexed:
            failures.append(f"Elasticsearch: the sink counts {indexed} documents indexed, {stream} holds {stored}")
    # Servers are outside the cluster: one miss per flow. Clients are pods, but for the ICMP ones (2 %)
    # and flows in the moment a pod is replaced.
    misses = row["enrichment_misses"] / max(1, flows)
    lines.append(f"attribution: {misses:.3f} enrichment misses per flow (1 when every client is a known pod)")
    if misses > 1.1:
        failures.append(f"{misses:.2f} enrichment misses per flow: clients are not attributed to their pods")
    return lines, failures


def growth(rows, warmup_s):
    """From the mean of the first three samples after the warm-up to that of the last three, per
    measure; returns (summary lines, failures)."""
    after = [r for r in rows if r["t_s"] >= warmup_s]
    if len(after) < 6:
        return [], [f"only {len(after)} samples after the warm-up: run longer or warm up shorter"]
    lines, failures = [], []
    for key, unit in (("collector_rss_kib", "KiB"), ("collector_fds", "fds"), ("exporter_rss_kib", "KiB"),
                      ("exporter_fds", "fds")):
        first = sum(r[key] for r in after[:3]) / 3
        last = sum(r[key] for r in after[-3:]) / 3
        g = (last - first) / first if first else 0.0
        lines.append(f"{key}: {first:.0f} {unit} after warm-up ({after[0]['t_s'] / 60:.1f} min), {last:.0f} at the end "
                     f"({after[-1]['t_s'] / 60:.1f} min), peak {max(r[key] for r in after)}: {g * 100:+.1f} %")
        if g > GROWTH_LIMIT:
            failures.append(f"{key} grew {g * 100:.1f} % after the warm-up (limit {GROWTH_LIMIT * 100:.0f} %)")
    return lines, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the run (60)")
    ap.add_argument("--warmup-minutes", type=float, default=None,
                    help="growth is measured from the end of the warm-up (a sixth of the run, at least 2)")
    ap.add_argument("--pps", type=int, default=12000, help="packets a second tcpreplay sends (12000: about "
                    "2,000 flows/s)")
    ap.add_argument("--flows", type=int, default=100000, help="flows in the capture, which loops (100000)")
    ap.add_argument("--pods", type=int, default=256, help="client pods, one per client address (256)")
    ap.add_argument("--workloads", type=int, default=8, help="Deployments the pods belong to (8)")
    ap.add_argument("--pod-lifetime", type=float, default=30.0, help="seconds before a pod is replaced (30)")
    ap.add_argument("--history", type=int, default=None,
                    help="the collector's --history, seconds (a quarter of the warm-up, 15 to 300): pods are "
                         "remembered this long after they go, so it must end well within the warm-up")
    ap.add_argument("--elasticsearch", metavar="URL", help="also run the Elasticsearch sink against URL (no "
                    "authentication), into a data stream of the run's own, counted and deleted at the end")
    ap.add_argument("--out", default="bench/soak-out", help="directory for soak.csv, soak.png, summary.txt, logs")
    ap.add_argument("--bin", required=True, help="directory holding the release binaries")
    a = ap.parse_args()
    warmup = a.warmup_minutes if a.warmup_minutes is not None else max(2.0, a.minutes / 6)
    if a.history is None:
        a.history = int(min(300, max(15, warmup * 60 / 4)))
    if not 1 <= a.pods <= 4096 or a.workloads < 1:
        ap.error("--pods must be 1 to 4096 and --workloads at least 1")
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="podflow-soak-")
    world = World(a, work)
    failures, summary = [], []
    rows = []
    started = time.monotonic()
    try:
        api = world.start_kubernetes()
        pods = Pods(api, a.pods, a.workloads, a.pod_lifetime)
        log(f"{a.pods} pods of {a.workloads} Deployments, each replaced after {a.pod_lifetime:g} s "
            f"({a.pods / a.pod_lifetime:.1f} a second); collector --history {a.history}")
        pcap = world.make_capture()
        world.start_collector()
        world.start_exporter()
        world.start_replay(pcap)

        # The run: pods replaced every second, a sample every INTERVAL seconds.
        out_csv = os.path.join(a.out, "soak.csv")
        start = time.monotonic()
        end = start + a.minutes * 60
        tick = next_sample = start
        with open(out_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            while True:
                world.alive(start)
                now = time.monotonic()
                if now >= next_sample:
                    next_sample += INTERVAL
                    rows.append(world.sample(start, pods))
                    w.writerow(rows[-1])
                    f.flush()
                    r = rows[-1]
                    if len(rows) % 30 == 1:
                        log(f"{r['t_s'] / 60:.1f} min: collector {r['collector_rss_kib'] // 1024} MiB "
                            f"{r['collector_fds']} fds, exporter {r['exporter_rss_kib'] // 1024} MiB, "
                            f"{r['collector_records']} records, {r['pods_replaced']} pods replaced")
                if now >= end:
                    break
                pods.churn(1)
                tick += 1
                time.sleep(max(0.0, min(tick, end) - time.monotonic()))

            # Quiesce: no more packets or pods, every flow exported, everything decoded and written.
            world.stop("tcpreplay")
            row, settled = settle(world, lambda: world.sample(start, pods), pods)
            rows.append(row)
            w.writerow(row)
        if not settled:
            failures.append(f"the counters did not settle within {SETTLE_TIMEOUT} s of the traffic stopping "
                            f"(last sample in {out_csv}; pods replaced {pods.replaced}, deletions seen "
                            f"{row['pod_deletions_seen']})")
        lines, failed = account(row, world, a.elasticsearch)
        summary += lines
        failures += failed
        lines, failed = growth(rows[:-1], warmup * 60)
        summary += lines
        failures += failed
        summary.append(f"pods: {pods.replaced} replaced ({api.calls} API calls), the collector saw "
                       f"{row['pod_deletions_seen']} pod deletions")

        for name in ("exporter", "collector"):
            rc = world.stop(name)
            if rc != 0:
                failures.append(f"{name} exited {rc} on SIGTERM: see {a.out}/{name}.log")
        world.documents.join(timeout=30)
        with open(os.path.join(a.out, "collector.log")) as f:
            m = re.search(r"(\d+) records decoded, (\d+) documents written", f.read())
        if not m or int(m.group(2)) != world.documents.lines:
            failures.append(f"the collector's last line says {m.group(0) if m else 'nothing'}; "
                            f"the stream held {world.documents.lines} documents")
        plot(rows, os.path.join(a.out, "soak.png"), warmup, a)
    except (Failed, subprocess.CalledProcessError, OSError) as e:
        failures.append(f"crash or failure to run: {e}")
    finally:
        world.close()
        shutil.rmtree(work, ignore_errors=True)

    # The rate while the traffic ran: the last sample of the run, not the one after it stopped.
    run_rows = rows[:-1] if len(rows) > 1 else rows
    rate = run_rows[-1]["exporter_records"] / max(1, run_rows[-1]["t_s"]) if rows else 0
    head = (f"soak: {a.minutes:g} min (warm-up {warmup:g} min, {len(rows)} samples, {time.monotonic() - started:.0f} s "
            f"wall in all), {a.pps} packets/s, {rate:.0f} records/s exported")
    result = "FAIL: " + "; ".join(failures) if failures else "PASS"
    text = "\n".join([head] + [f"  {s}" for s in summary] + [f"result: {result}"])
    with open(os.path.join(a.out, "summary.txt"), "w") as f:
        f.write(text + "\n")
    print(text, flush=True)
    sys.exit(1 if failures else 0)


def plot(rows, path, warmup, a):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed for /usr/bin/python3 (apt-get install python3-matplotlib): no plot")
        return
    rows = rows[:-1]  # not the sample after the traffic stopped
    t = [r["t_s"] / 60 for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    ax1.plot(t, [r["collector_rss_kib"] / 1024 for r in rows], label="collector")
    ax1.plot(t, [r["exporter_rss_kib"] / 1024 for r in rows], label="exporter")
    ax1.set_ylabel("RSS (MiB)")
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="lower right")
    ax2.plot(t, [r["collector_fds"] for r in rows], label="collector")
    ax2.plot(t, [r["exporter_fds"] for r in rows], label="exporter")
    ax2.set_ylabel("open descriptors")
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="lower right")

    def rate(key):
        return [0] + [(y[key] - x[key]) / max(1, y["t_s"] - x["t_s"]) for x, y in zip(rows, rows[1:])]

    ax3.plot(t, rate("exporter_records"), label="records exported/s")
    ax3.plot(t, rate("collector_records"), label="records decoded/s", linestyle="--")
    ax3.plot(t, [r["queue_depth"] for r in rows], label="queue depth (records)")
    ax3.plot(t, rate("pods_replaced"), label="pods replaced/s")
    ax3.set_yscale("symlog", linthresh=10)
    ax3.set_xlabel("minutes")
    ax3.legend(loc="lower right", fontsize="small")
    for ax in (ax1, ax2, ax3):
        ax.axvline(warmup, color="grey", linestyle=":")
        ax.grid(alpha=0.3)
    fig.suptitle(f"podflow soak: {a.pps} packets/s, {a.pods} pods each replaced after {a.pod_lifetime:g} s "
                 f"(warm-up dotted)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    log(f"plot: {path}")


if __name__ == "__main__":
    main()
