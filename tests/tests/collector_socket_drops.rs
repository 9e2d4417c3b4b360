//! Kernel-side loss made visible: with the collector stopped (SIGSTOP), datagrams overrun its socket's
//! receive buffer and the kernel drops them. Once it runs again, every datagram sent is either decoded
//! or counted in `podflow_collector_socket_drops_total` for that socket, exactly, and the kernel total
//! of `podflow_collector_dropped_datagrams_total` agrees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::time::Duration;

use podflow_e2e::collector::Collector;
use podflow_e2e::flows::{encode_messages, sample_flows};
use podflow_e2e::peer;
use rustix::process::{Pid, Signal, kill_process};

/// More datagrams than a 1 MiB receive buffer holds (each small datagram costs the kernel over a
/// kilobyte of buffer).
const SENT: u64 = 20_000;

#[test]
fn datagrams_the_kernel_drops_are_counted_per_socket() {
    let work = tempfile::tempdir().unwrap();
    let mut collector = Collector::start_with("drops", work.path(), 1, &["--receive-buffer", "1"]).unwrap();
    // One message with templates and IPv4 records: each copy decodes on its own.
    let message = encode_messages(&sample_flows()).unwrap().remove(0);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let exporter = "exporter=\"127.0.0.1\",protocol=\"ipfix\"";
    socket.send_to(&message, ("127.0.0.1", collector.port())).unwrap();
    let m = collector.wait_records(exporter, 1).unwrap();
    let first = m.get("podflow_collector_datagrams_total", exporter).unwrap();
    assert_eq!(first, 1);

    let pid = Pid::from_raw(collector.pid() as i32).unwrap();
    kill_process(pid, Signal::STOP).unwrap();
    for _ in 0..SENT {
        socket.send_to(&message, ("127.0.0.1", collector.port())).unwrap();
    }
    kill_process(pid, Signal::CONT).unwrap();

    let mut last = (0, 0);
    let counted = peer::wait_until(
        "every datagram decoded or counted as dropped",
        Duration::from_secs(60),
        || {
            let m = collector.scrape()?;
            let decoded = m.get("podflow_collector_datagrams_total", exporter).unwrap_or(0) - first;
            let dropped = m.sum("podflow_collector_socket_drops_total");
            last = (decoded, dropped);
            Ok(decoded + dropped == SENT)
        },
    );
    assert!(
        counted.is_ok(),
        "decoded {} + dropped {} != sent {SENT}",
        last.0,
        last.1
    );
    let (decoded, dropped) = last;
    assert!(
        dropped > 0,
        "the kernel dropped nothing: the test overran no buffer"
    );
    assert!(decoded > 0);
    let m = collector.scrape().unwrap();
    let port = collector.port();
    assert_eq!(
        m.get(
            "podflow_collector_socket_drops_total",
            &format!("socket=\"127.0.0.1:{port}\",index=\"0\"")
        ),
        Some(dropped),
        "{}",
        m.text
    );
    assert_eq!(
        m.get("podflow_collector_dropped_datagrams_total", "where=\"kernel\""),
        Some(dropped)
    );
    collector.stop().unwrap();
}
