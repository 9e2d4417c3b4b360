#!/usr/bin/env python3
"""Runs flow exporters on one capture file and compares their CPU time or peak memory.

Used by bench/exporter-throughput.sh and bench/exporter-memory.sh, which build the binaries and generate
the input; see bench/EXPORTER.md. Each tool runs as a child process reaped with wait4(): its CPU time (user
+ system, all threads, microsecond resolution) is that child's own; its peak resident set size comes
from GNU time (see run_child). The UDP sink every exporter sends to is a thread of this process, so its work is never counted
against a tool.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time


class Sink:
    """A UDP discard collector on 127.0.0.1: counts datagrams and octets, decodes nothing.

    It drains its socket every millisecond instead of blocking in recv(): a receiver asleep on the
    socket makes every send wake it (a cross-CPU interrupt, costly in a VM), and that cost lands in
    the sender's system time. A sink nobody waits on costs each exporter only its own sends.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # Root may exceed rmem_max: room for far more than a millisecond of datagrams.
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.datagrams = 0
        self.octets = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            stopping = self.stopping
            while True:
                try:
                    data = self.sock.recv(65535)
                except BlockingIOError:
                    break
                self.datagrams += 1
                self.octets += len(data)
            if stopping:
                return
            time.sleep(0.001)

    def close(self):
        """Stops after one more drain, so datagrams already queued are counted."""
        self.stopping = True
        self.thread.join()
        self.sock.close()


def run_child(argv, cwd):
    """Runs argv to completion; returns (cpu seconds, peak RSS in KiB, exit status, stdout+stderr).

    The child runs under GNU time, which reports its peak RSS: Linux carries the RSS high-water mark
    of a process across exec(), so wait4()'s figure for a child forked from this Python process would
    never be below Python's own RSS. GNU time is a small C program, below every tool measured here.
    The CPU time is wait4()'s, in microseconds: the tool's, and GNU time's own, about a millisecond.
    """
    rss_file = os.path.join(cwd, "rss.txt")
    with open(os.path.join(cwd, "child.log"), "w+b") as log:
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        out = log.read().decode(errors="replace")
    with open(rss_file) as f:
        rss_kib = int(f.read().split()[-1])
    return usage.ru_utime + usage.ru_stime, rss_kib, proc.returncode, out


def find(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        raise SystemExit(f"exporter_bench: {what}: expected output not found ({pattern!r}):\n{text}")
    return int(m.group(1))


class Tool:
    """One program under test: how to run it and how to read what it says it did."""

    def __init__(self, name, argv, packets_pattern, flows_pattern=None, exports=True):
        self.name = name
        self.argv = argv
        self.packets_pattern = packets_pattern
        self.flows_pattern = flows_pattern
        self.exports = exports

    def run(self, work):
        sink = Sink() if self.exports else None
        argv = [a.replace("{port}", str(sink.port)) if sink else a for a in self.argv]
        try:
            cpu, rss_kib, code, out = run_child(argv, work)
        finally:
            if sink:
                sink.close()
        if code != 0:
            raise SystemExit(f"exporter_bench: {self.name} exited with {code}:\n{' '.join(argv)}\n{out}")
        result = {
            "cpu": cpu,
            "rss": rss_kib * 1024,
            "packets": find(self.packets_pattern, out, self.name),
            "flows": find(self.flows_pattern, out, self.name) if self.flows_pattern else None,
            "datagrams": sink.datagrams if sink else None,
            "output": out,
        }
        if sink and sink.datagrams == 0:
            raise SystemExit(f"exporter_bench: {self.name} exported nothing to the sink:\n{out}")
        return result


def tools(args):
    """The tools, with the same flow capacity and timeouts where each has the setting."""
    idle, active, linger, cap = args.idle_timeout, args.active_timeout, args.tcp_linger, args.max_flows
    podflow = Tool(
        "podflow",
        [args.podflow, "--pcap", args.pcap, "--collector", "127.0.0.1:{port}",
         "--idle-timeout", str(idle), "--active-timeout", str(active), "--tcp-linger", str(linger),
         "--max-flows", str(cap)],
        r"(\d+) packets \(",
        r"(\d+) flows exported",
    )
    # softflowd 1.1: -d stays in the foreground and prints its statistics at the end; without a control
    # socket (-c none) it can block in accept() after the end of the file instead of exiting.
    softflowd = Tool(
        "softflowd",
        ["softflowd", "-r", args.pcap, "-n", "127.0.0.1:{port}", "-v", "10", "-d", "-c", "none",
         "-p", os.path.join(args.work, "softflowd.pid"), "-m", str(cap),
         "-t", f"general={idle}", "-t", f"tcp={idle}", "-t", f"udp={idle}", "-t", f"icmp={idle}",
         "-t", f"tcp.rst={linger}", "-t", f"tcp.fin={linger}", "-t", f"maxlife={active}"],
        r"Packets processed: (\d+)",
        r"Flows expired: (\d+)",
    )
    # nfpcapd (nfdump 1.7) sends its flow records to a collector with -H host/port.
    nfpcapd = Tool(
        "nfpcapd",
        ["nfpcapd", "-r", args.pcap, "-H", "127.0.0.1/{port}", "-e", f"{active},{idle}",
         "-B", str(cap)],
        r"Total: Processed: (\d+)",
    )
    floor = Tool("read floor", [args.floor, args.pcap], r"packets (\d+)", exports=False)
    return {"floor": floor, "podflow": podflow, "softflowd": softflowd, "nfpcapd": nfpcapd}


def check_packets(name, got, expected):
    if got != expected:
        raise SystemExit(f"exporter_bench: {name} read {got} packets, the file has {expected}")


def throughput(args, summary):
    """Packets per CPU-second of each tool, median over the runs, and podflow's ratios."""
    all_tools = tools(args)
    names = ["floor", "podflow", "softflowd", "nfpcapd"]
    cpu = {n: [] for n in names}
    last = {}
    for r in range(args.runs):
        # Rotate the order each run so no tool always runs first (cold caches) or last.
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            res = all_tools[n].run(args.work)
            check_packets(all_tools[n].name, res["packets"], summary["packets"])
            cpu[n].append(res["cpu"])
            last[n] = res
        print(f"run {r + 1}/{args.runs}: " + ", ".join(f"{n} {cpu[n][-1]:.3f} CPU-s" for n in names),
              file=sys.stderr)
    packets = summary["packets"]
    rate = {n: packets / statistics.median(cpu[n]) for n in names}
    print(f"input: {packets} packets, {summary['flows']} flows, snap length {args.snaplen}; "
          f"{args.runs} runs per tool, median CPU time (user + system)")
    print(f"{'tool':<11} {'packets/CPU-s':>14} {'share of floor':>15} {'flows':>9} {'datagrams':>10}")
    for n in names:
        res = last[n]
        flows = res["flows"] if res["flows"] is not None else "-"
        datagrams = res["datagrams"] if res["datagrams"] is not None else "-"
        print(f"{all_tools[n].name:<11} {rate[n]:>14.0f} {rate[n] / rate['floor']:>15.2f} "
              f"{flows!s:>9} {datagrams!s:>10}")
    spread = {n: (min(cpu[n]) / statistics.median(cpu[n]), max(cpu[n]) / statistics.median(cpu[n]))
              for n in names}
    print("spread of runs (min/median .. max/median): "
          + ", ".join(f"{all_tools[n].name} {a:.2f}..{b:.2f}" for n, (a, b) in spread.items()))
    print(f"ratio podflow/softflowd packets per CPU-second: {rate['podflow'] / rate['softflowd']:.2f}"
          " (required >= 3, aim 5)")
    print(f"ratio podflow/nfpcapd packets per CPU-second:   {rate['podflow'] / rate['nfpcapd']:.2f}")
    print(f"ratio podflow/read-floor packets per CPU-second: {rate['podflow'] / rate['floor']:.2f}"
          " (1.00 would be the cost of reading the file alone)")


def memory(args, summary, baseline_pcap):
    """Peak RSS of podflow and softflowd holding every flow of the file, less their RSS on a tiny file."""
    all_tools = tools(args)
    names = ["podflow", "softflowd"]
    peak = {n: [] for n in names}
    base = {n: [] for n in names}
    flows = {}
    for r in range(args.runs):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            res = all_tools[n].run(args.work)
            check_packets(all_tools[n].name, res["packets"], summary["packets"])
            peak[n].append(res["rss"])
            flows[n] = res["flows"]
            if n == "softflowd":
                held_to_end(res["output"], summary)
            else:
                held = find(r"at most (\d+) flows held at once", res["output"], n)
                if held < summary["flows"]:
                    raise SystemExit(f"exporter_bench: podflow held at most {held} flows at once:\n"
                                     + res["output"])
        small = argparse.Namespace(**{**vars(args), "pcap": baseline_pcap})
        small_tools = tools(small)
        for n in order:
            base[n].append(small_tools[n].run(args.work)["rss"])
    print(f"input: {summary['packets']} packets, {summary['flows']} flows, at most "
          f"{summary['max_concurrent_flows']} open at once; flow capacity {args.max_flows}; "
          f"{args.runs} runs per tool, median peak RSS")
    per_flow = {}
    for n in names:
        p, b = statistics.median(peak[n]), statistics.median(base[n])
        per_flow[n] = (p - b) / flows[n]
        print(f"{n:<10} peak RSS {p / 2**20:8.1f} MiB, baseline {b / 2**20:6.1f} MiB, {flows[n]} flows: "
              f"{per_flow[n]:6.1f} bytes per flow")
    print(f"ratio podflow/softflowd bytes per flow: {per_flow['podflow'] / per_flow['softflowd']:.2f}"
          " (required <= 1)")


def held_to_end(out, summary):
    """softflowd must have held every flow until the end of the file: none expired or evicted early."""
    early = {k: int(v) for k, v in re.findall(r"([a-z.]+(?: 2 GiB)?) =\s+(\d+)", out) if k != "flushed"}
    if any(early.values()):
        raise SystemExit(f"exporter_bench: softflowd expired flows before the end of the file: {early}")
    if find(r"flushed =\s+(\d+)", out, "softflowd") < summary["flows"]:
        raise SystemExit(f"exporter_bench: softflowd held fewer flows than the file has:\n{out}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["throughput", "memory"])
    p.add_argument("--pcap", required=True)
    p.add_argument("--summary", required=True, help="the generator's JSON summary of --pcap")
    p.add_argument("--baseline-pcap", help="memory: a tiny file, for each tool's RSS without flows")
    p.add_argument("--work", required=True, help="scratch directory")
    p.add_argument("--podflow", required=True)
    p.add_argument("--floor", help="throughput: the pcap-read-floor binary")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--snaplen", default="?")
    p.add_argument("--idle-timeout", type=int, default=15)
    p.add_argument("--active-timeout", type=int, default=60)
    p.add_argument("--tcp-linger", type=int, default=2)
    p.add_argument("--max-flows", type=int, default=1 << 20)
    args = p.parse_args()
    with open(args.summary) as f:
        summary = json.load(f)
    if args.mode == "throughput":
        throughput(args, summary)
    else:
        memory(args, summary, args.baseline_pcap)


if __name__ == "__main__":
    main()
