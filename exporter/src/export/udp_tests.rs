//! Send failure accounting against real sockets on 127.0.0.1: a collector that is not listening, then
//! listens, then goes away and comes back on the same port. Every record is either received or counted as
//! failed, exactly.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use super::udp::Collectors;

/// An IPFIX-shaped message: header with sequence number `seq`, one data set of `records` 8-octet records.
fn message(seq: u32, records: u32) -> Vec<u8> {
    let set_len = 4 + 8 * records as usize;
    let len = 16 + set_len;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&10u16.to_be_bytes());
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&1u32.to_be_bytes());
    m.extend_from_slice(&256u16.to_be_bytes());
    m.extend_from_slice(&(set_len as u16).to_be_bytes());
    for r in 0..records {
        m.extend_from_slice(&(u64::from(seq) * 1000 + u64::from(r)).to_be_bytes());
    }
    m
}

/// Sends `n` messages, counting the records into `sent` and remembering each message's record count.
fn send_some(c: &mut Collectors, seq: &mut u32, n: u32, sent: &mut u64, counts: &mut HashMap<u32, u64>) {
    for i in 0..n {
        let records = 1 + (i % 7);
        c.send(&message(*seq, records));
        counts.insert(*seq, u64::from(records));
        *seq += records;
        *sent += u64::from(records);
    }
}

/// Reads every datagram waiting on `rx`, adding up the records of the messages received.
fn drain(rx: &UdpSocket, counts: &HashMap<u32, u64>) -> u64 {
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while let Ok(n) = rx.recv(&mut buf) {
        assert!(n >= 16);
        let seq = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        got += counts[&seq];
    }
    got
}

fn listen(port: u16) -> UdpSocket {
    let rx = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    rx.set_nonblocking(true).unwrap();
    rx
}

#[test]
fn every_record_is_received_or_counted_failed() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = Collectors::connect(&[format!("127.0.0.1:{port}")]).unwrap();
    let (mut seq, mut sent, mut received) = (0u32, 0u64, 0u64);
    let mut counts = HashMap::new();

    // Nobody listens: every message is refused.
    send_some(&mut c, &mut seq, 40, &mut sent, &mut counts);
    let before_listen = sent;
    // The collector starts, receives, stops; starts again on the same port.
    let rx = listen(port);
    send_some(&mut c, &mut seq, 40, &mut sent, &mut counts);
    received += drain(&rx, &counts);
    drop(rx);
    send_some(&mut c, &mut seq, 40, &mut sent, &mut counts);
    let rx = listen(port);
    send_some(&mut c, &mut seq, 40, &mut sent, &mut counts);

    let deadline = Instant::now() + Duration::from_secs(5);
    let failed = loop {
        received += drain(&rx, &counts);
        c.poll_errors();
        let failed = c.stats().map(|s| s.failed_records).sum::<u64>();
        if received + failed == sent || Instant::now() > deadline {
            break failed;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        received + failed,
        sent,
        "received {received}, failed {failed}, sent {sent}"
    );
    // What was sent before anyone listened never arrived, and all of it is counted.
    assert!(failed >= before_listen, "failed {failed} < {before_listen}");
    let s = c.stats().next().unwrap();
    assert!(s.failed_messages >= 80, "{s:?}");
}
