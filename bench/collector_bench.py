#!/usr/bin/env python3
"""Runs flow collectors on one recorded IPFIX stream and compares records per CPU-second.

Used by bench/collector-throughput.sh, which builds the programs and records the stream; see
bench/COLLECTOR.md. For each run, one collector is started on a fresh loopback port, the stream is
replayed to it at a fixed datagram rate by `collector-stream replay` (a separate process, not counted),
the collector is left to drain its socket, then stopped, and its output is checked: every record must
have arrived and been written, and no tool may have dropped anything (the kernel's drop counter of its
sockets, the tool's own loss counters, sequence checks), or the benchmark fails.

CPU time is user + system of every process of the collector (threads, forked plugins and their
writers), from start to exit: this process is made a child subreaper, so processes orphaned at
shutdown come back to it, and it reaps them all with wait4(), whose figures include the reaped
processes' own reaped children.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

PR_SET_CHILD_SUBREAPER = 36


def fail(msg):
    print(f"collector-throughput: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        udp = s.getsockname()[1]
    return udp


def udp_sockets(port):
    """(rx_queue octets, drops) of every IPv4 UDP socket bound to `port`, from /proc/net/udp."""
    out = []
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local = cols[1]
            if int(local.split(":")[1], 16) != port:
                continue
            rx = int(cols[4].split(":")[1], 16)
            out.append((rx, int(cols[12])))
    return out


def tree_cpu_ticks(root):
    """CPU clock ticks (user + system, with their reaped children's) of `root` and its living
    descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append((int(d), sum(map(int, fields[11:15]))))
    total, todo = 0, [root]
    try:
        with open(f"/proc/{root}/stat") as f:
            stat = f.read()
        fields = stat[stat.rfind(")") + 2:].split()
        total += sum(map(int, fields[11:15]))
    except OSError:
        pass
    while todo:
        for pid, ticks in children.get(todo.pop(), []):
            total += ticks
            todo.append(pid)
    return total


class Tool:
    """How to run one collector, and how to check what it did."""

    name = ""
    stop_signal = signal.SIGTERM

    def __init__(self, opts, summary, expected_records):
        self.opts = opts
        self.summary = summary
        self.expected = expected_records

    def argv(self, port, out):
        raise NotImplementedError

    def sockets(self):
        return 1

    def before_stop(self, out):
        """Reads what must be read while the tool still runs; returns problems found."""
        return []

    def check(self, out, log):
        """Checks the tool's output after it stopped; returns problems found."""
        return []


class Podflow(Tool):
    name = "podflow"

    def __init__(self, *a):
        super().__init__(*a)
        self.metrics_port = None
        help_text = subprocess.run([self.opts.podflow, "--help"], capture_output=True, text=True).stdout
        # An option line, not the examples in the description.
        self.inventory = re.search(r"^\s+--inventory\b", help_text, re.M) is not None

    def sockets(self):
        return 2

    def argv(self, port, out):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.metrics_port = s.getsockname()[1]
        argv = [self.opts.podflow, "--listen", f"127.0.0.1:{port}", "--sockets", "2",
                "--ndjson", os.path.join(out, "flows.ndjson"),
                "--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        if self.inventory:
            argv += ["--inventory", self.opts.inventory]
        return argv

    def before_stop(self, out):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        with open(os.path.join(out, "metrics.txt"), "w") as f:
            f.write(text)
        sums = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name_labels, value = line.rsplit(" ", 1)
            name = name_labels.split("{", 1)[0]
            sums[name] = sums.get(name, 0) + float(value)
        problems = []
        for counter in ("podflow_collector_lost_records_total", "podflow_collector_dropped_datagrams_total",
                        "podflow_collector_dropped_records_total", "podflow_collector_decode_errors_total",
                        "podflow_collector_template_misses_total"):
            if sums.get(counter, 0) != 0:
                problems.append(f"{counter} = {sums[counter]:.0f}")
        records = sums.get("podflow_collector_records_total", 0)
        if records != self.expected:
            problems.append(f"decoded {records:.0f} records, expected {self.expected}")
        return problems

    def inventory_problems(self, log):
        """Every generated object must load, or endpoints go unattributed and podflow does less work."""
        if not self.inventory:
            return []
        inv = re.search(r"inventory: (\d+) objects from \d+ files \((\d+) bad", log)
        if not inv or int(inv.group(2)):
            return [f"inventory: {inv.group(0) if inv else 'no load reported'}"]
        return []

    def check(self, out, log):
        problems = self.inventory_problems(log)
        m = re.search(r"(\d+) records decoded, (\d+) documents written", log)
        if not m or int(m.group(2)) != self.expected:
            problems.append(f"documents written: {m.group(0) if m else 'no total printed'}")
        c = count(self.opts, [os.path.join(out, "flows.ndjson")])
        if c["lines"] != self.expected or c["malformed"]:
            problems.append(f"NDJSON has {c['lines']} lines ({c['malformed']} malformed), expected {self.expected}")
        return problems


class PodflowNoFlowMetrics(Podflow):
    """podflow-collector as above, with its flow metrics (podflow_connection_*) and node graph turned off."""

    name = "podflow-off"

    def argv(self, port, out):
        return super().argv(port, out) + ["--no-flow-metrics", "--no-service-map"]


class PodflowElasticsearch(Podflow):
    """podflow-collector writing to an OpenSearch node (--elasticsearch) instead of NDJSON: the same
    attribution, its documents sent with _bulk. The data stream is deleted before each run, so every
    run indexes every document anew; the run ends once the sink has delivered every document, and
    _count must equal the records. The node's own CPU over the run is kept apart."""

    name = "podflow-es"
    stream = "logs-podflow.flows-default"

    def __init__(self, *a):
        super().__init__(*a)
        self.node_cpu = []
        self._ticks = 0

    def _es(self, method, path):
        req = urllib.request.Request(self.opts.elasticsearch + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, {}

    def argv(self, port, out):
        status, _ = self._es("DELETE", f"/_data_stream/{self.stream}")
        if status not in (200, 404):
            fail(f"deleting {self.stream}: HTTP {status}")
        self._ticks = tree_cpu_ticks(self.opts.node_pid)
        argv = super().argv(port, out)
        i = argv.index("--ndjson")
        del argv[i:i + 2]
        return argv + ["--elasticsearch", self.opts.elasticsearch, "--spool-dir", os.path.join(out, "spool")]

    def before_stop(self, out):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        pattern = re.compile(r"^podflow_collector_elasticsearch_documents_total\{[^}]*\} (\S+)$", re.M)
        deadline = time.monotonic() + 600
        while True:
            text = urllib.request.urlopen(url, timeout=10).read().decode()
            delivered = sum(float(v) for v in pattern.findall(text))
            if delivered >= self.expected:
                break
            if time.monotonic() > deadline:
                return [f"the sink delivered {delivered:.0f} of {self.expected} documents in 600 s"]
            time.sleep(0.5)
        self.node_cpu.append((tree_cpu_ticks(self.opts.node_pid) - self._ticks) / os.sysconf("SC_CLK_TCK"))
        problems = super().before_stop(out)
        for line in text.splitlines():
            if line.startswith(("podflow_collector_elasticsearch_dropped_total",
                                "podflow_collector_elasticsearch_dead_letter_total")) and not line.endswith(" 0"):
                problems.append(line)
            if line.startswith("podflow_collector_elasticsearch_retries_total"):
                print(f"  podflow-es: {line}", flush=True)
        return problems

    def check(self, out, log):
        problems = self.inventory_problems(log)
        self._es("POST", f"/{self.stream}/_refresh")
        status, counted = self._es("GET", f"/{self.stream}/_count")
        if status != 200 or counted.get("count") != self.expected:
            problems.append(f"_count of {self.stream}: HTTP {status} {counted}, expected {self.expected}")
        return problems


class Nfcapd(Tool):
    name = "nfcapd"

    def argv(self, port, out):
        # One file for the whole run (-t longer than any run), uncompressed, as nfcapd writes by default.
        return ["nfcapd", "-w", out, "-b", "127.0.0.1", "-p", str(port), "-t", "3600",
                "-B", str(self.opts.rcvbuf)]

    def check(self, out, log):
        problems = []
        flows = seq = bad = 0
        stats = re.findall(r"Flows: (\d+), Packets: \d+, Bytes: \d+, Sequence Errors: (\d+), Bad Packets: (\d+)", log)
        for f, s, b in stats:
            flows += int(f)
            seq += int(s)
            bad += int(b)
        if flows != self.expected:
            problems.append(f"nfcapd stored {flows} flows, expected {self.expected}")
        if seq or bad:
            problems.append(f"nfcapd counted {seq} sequence errors, {bad} bad packets")
        files = [f for f in os.listdir(out) if f.startswith("nfcapd.")]
        if not files:
            problems.append("nfcapd wrote no file")
        return problems


class Nfacctd(Tool):
    name = "nfacctd"
    # The core process stops its plugins, which write out their caches, and waits for them.
    stop_signal = signal.SIGINT

    def argv(self, port, out):
        conf = os.path.join(out, "nfacctd.conf")
        with open(conf, "w") as f:
            f.write(f"""daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: {port}
nfacctd_pipe_size: {self.opts.rcvbuf}
! Sequence number checks: gaps are logged.
nfacctd_disable_checks: false
logfile: {out}/nfacctd.log
plugins: print[out]
aggregate[out]: src_host, dst_host, src_port, dst_port, proto, tcpflags
print_output[out]: json
print_output_file[out]: {out}/flows-%s.json
print_output_file_append[out]: true
print_refresh_time[out]: 60
! A purge is written by a forked writer; later purges queue behind it, and past print_max_writers (10)
! a purge's entries are dropped ("Maximum number of writer processes reached"). With a purge every 5 s,
! the 20 M-record stream reached that on the 2-core machine (writers get little CPU while the stream
! runs): one a minute, each of at most the recording's 2.5 M distinct flows (bigger streams replay the
! recording, so its flows aggregate), is a purge the writers keep up with.
! 393209 buckets, about 3.9 million entries: more than a minute of the stream holds.
print_cache_entries[out]: 393209
! A large queue to the plugin, in large chunks, as pmacct advises for heavy loads: 1 GiB holds some
! seven million records, so the plugin can fall behind while purge writers hold both CPUs and catch
! up after (at 256 MiB it lost up to 10% of the 20 M-record stream on a busy day).
plugin_pipe_size[out]: 1073741824
plugin_buffer_size[out]: 1048576
""")
        return ["nfacctd", "-f", conf]

    def check(self, out, log):
        problems = []
        with open(os.path.join(out, "nfacctd.log")) as f:
            text = f.read()
        for pattern in ("expecting flow", "missing data", "ERROR", "Finished cache entries",
                        "Maximum number of writer processes reached"):
            n = text.count(pattern)
            if n:
                problems.append(f"nfacctd.log: {n} x '{pattern}'")
        files = [os.path.join(out, f) for f in os.listdir(out) if f.startswith("flows-")]
        c = count(self.opts, files, '"packets": ')
        want = self.summary["packets"] * self.opts.loops
        if c["sum"] != want or c["malformed"] or c["missing"]:
            problems.append(f"JSON output: {c}, expected {want} packets")
            if c["sum"] < want and not (c["malformed"] or c["missing"]):
                # Every purge written whole, yet packets short: lost between nfacctd's core and its
                # print plugin, which fell behind (seen on a busy 2-core machine at 10,000 and 15,000
                # datagrams/s while purge writers held both CPUs).
                problems.append("nfacctd lost records inside (its print plugin fell behind the core); "
                                "a lower --rate or a quieter machine may let it keep up")
        self.lines = c["lines"]
        return problems


def count(opts, files, sum_after=None):
    argv = [opts.stream_bin, "count"] + (["--sum-after", sum_after] if sum_after else []) + files
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def run_once(tool, opts, work, label):
    out = os.path.join(work, label)
    os.makedirs(out)
    port = free_port()
    log_path = os.path.join(out, "tool.log")
    log = open(log_path, "w+")
    proc = subprocess.Popen(tool.argv(port, out), cwd=out, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    cpu = 0.0
    system = 0.0
    reaped_main = False
    problems = []
    try:
        deadline = time.monotonic() + 60
        while len(udp_sockets(port)) < tool.sockets():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                fail(f"{tool.name} did not bind 127.0.0.1:{port}:\n{log.read()}")
            time.sleep(0.05)
        # Let the tool finish starting (pmacct forks its plugins after binding).
        time.sleep(1)
        replay = subprocess.run([opts.stream_bin, "replay", "--stream", opts.stream, "--to", f"127.0.0.1:{port}",
                                 "--rate", str(opts.rate), "--loops", str(opts.loops)],
                                check=True, capture_output=True, text=True)
        sent = json.loads(replay.stdout)
        # Drained: nothing queued on its sockets and no CPU used for a second (nfacctd's plugin purges
        # every 5 s; what is left is written at exit, which is counted).
        last, quiet, deadline = tree_cpu_ticks(proc.pid), 0, time.monotonic() + 300
        while quiet < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            now = tree_cpu_ticks(proc.pid)
            busy = now - last > 2 or any(rx for rx, _ in udp_sockets(port))
            quiet = 0 if busy else quiet + 1
            last = now
        drops = sum(d for _, d in udp_sockets(port))
        if drops:
            problems.append(f"kernel dropped {drops} datagrams at its sockets")
        if sent["send_errors"]:
            problems.append(f"replay: {sent['send_errors']} send errors")
        problems += tool.before_stop(out)
        before_stop = tree_cpu_ticks(proc.pid) / os.sysconf("SC_CLK_TCK")
        os.kill(proc.pid, tool.stop_signal)
        # Reap the tool and every orphan of its process tree; stop when no child is left.
        deadline = time.monotonic() + 600
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if time.monotonic() > deadline:
                    fail(f"{tool.name} did not exit")
                time.sleep(0.05)
                continue
            cpu += usage.ru_utime + usage.ru_stime
            system += usage.ru_stime
            if pid == proc.pid:
                reaped_main = True
                proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if not reaped_main and proc.poll() is None:
            proc.kill()
    log.seek(0)
    text = log.read()
    log.close()
    if proc.returncode not in (0, -tool.stop_signal):
        problems.append(f"exit status {proc.returncode}")
    problems += tool.check(out, text)
    if problems:
        fail(f"{tool.name} ({label}): " + "; ".join(problems) + f"\n  output kept in {out}")
    shutil.rmtree(out)
    sent["cpu_before_stop"] = before_stop
    sent["cpu_system"] = system
    return cpu, sent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stream", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--inventory", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--podflow", required=True)
    ap.add_argument("--stream-bin", required=True)
    ap.add_argument("--rate", type=float, required=True, help="datagrams per second")
    ap.add_argument("--loops", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rcvbuf", type=int, default=4 << 20)
    ap.add_argument("--tools", default="podflow,nfcapd,nfacctd")
    ap.add_argument("--elasticsearch", help="the node's URL, for the podflow-es tool")
    ap.add_argument("--node-pid", type=int, help="the node's process, whose CPU podflow-es reports")
    opts = ap.parse_args()

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        fail("cannot become a child subreaper (prctl)")
    with open(opts.summary) as f:
        summary = json.load(f)
    expected = summary["records"] * opts.loops
    classes = {"podflow": Podflow, "podflow-off": PodflowNoFlowMetrics, "podflow-es": PodflowElasticsearch,
               "nfcapd": Nfcapd, "nfacctd": Nfacctd}
    tools = [classes[n](opts, summary, expected) for n in opts.tools.split(",")]
    pf = next((t for t in tools if t.name == "podflow"), None)
    print(f"stream: {expected} records ({summary['records']} x {opts.loops}) from {summary['exporters']} exporters, "
          f"{summary['datagrams'] * opts.loops} datagrams at {opts.rate:.0f}/s "
          f"(~{opts.rate * summary['records'] / summary['datagrams']:.0f} records/s)")
    if pf:
        print("podflow-collector: " + (f"--inventory {opts.inventory} ({summary['pods']} pods, "
                                       f"{summary['services']} services, {summary['nodes']} nodes)"
                                       if pf.inventory else "no --inventory option: flows are not attributed"))
    rates = {t.name: [] for t in tools}
    for r in range(opts.rounds):
        # Alternate the order, so a slow patch of the machine does not always hit the same tool.
        order = tools[r % len(tools):] + tools[:r % len(tools)]
        for t in order:
            cpu, sent = run_once(t, opts, opts.work, f"{t.name}-{r + 1}")
            rate = expected / cpu
            rates[t.name].append(rate)
            print(f"round {r + 1} {t.name:11} {cpu:8.2f} CPU-s {rate:12,.0f} records/CPU-s "
                  f"({sent['cpu_system']:.2f} of it in the kernel, {sent['cpu_before_stop']:.2f} before stopping; replay {sent['datagrams_per_second']:.0f} "
                  f"datagrams/s, {sent['max_lag_ms']:.0f} ms late at worst)",
                  flush=True)
    print("\nmedians (no tool dropped a record: kernel socket drops 0, every record accounted for):")
    med = {n: statistics.median(v) for n, v in rates.items()}
    for n, v in med.items():
        print(f"  {n:11} {v:12,.0f} records/CPU-s")
    if "podflow" in med and "podflow-off" in med:
        print(f"flow metrics on/off: {med['podflow'] / med['podflow-off']:.3f}")
    if "podflow" in med and "podflow-es" in med:
        es = next(t for t in tools if t.name == "podflow-es")
        print(f"  opensearch node {statistics.median(es.node_cpu):8.2f} CPU-s per run (median; not counted above)")
        print(f"elasticsearch/ndjson: {med['podflow-es'] / med['podflow']:.3f}")
    if "podflow" in med:
        for other in ("nfacctd", "nfcapd"):
            if other in med:
                print(f"podflow/{other}: {med['podflow'] / med[other]:.2f}")


if __name__ == "__main__":
    main()
