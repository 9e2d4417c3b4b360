//! The netlink sockets of conntrack learning (the I/O shell around [`super::Conntrack`]).
//!
//! One socket is subscribed to the conntrack event groups (new, update, destroy) and read without
//! waiting; its receive buffer is made large (past `net.core.rmem_max`, which CAP_NET_ADMIN allows) so
//! event storms fit. When the kernel still drops events it reports ENOBUFS once on that socket; the
//! caller then takes a full dump over the second socket, which only ever sends dump requests.

use std::io;
use std::time::Duration;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use rustix::io::Errno;
use rustix::net::sockopt;

use super::{Poll, Source};

/// `NFNLGRP_CONNTRACK_NEW`, `_UPDATE`, `_DESTROY`.
const GROUPS: [u32; 3] = [1, 2, 3];

/// Largest datagram read: dumps come in datagrams of at most 32 KiB.
const DATAGRAM: usize = 64 * 1024;

/// Most event datagrams read by one [`Source::poll`], so a storm cannot keep the engine from its
/// packets for long.
const MAX_PER_POLL: usize = 65_536;

/// How long a dump may go without a datagram before it is given up.
const DUMP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why conntrack learning could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The probe lacks CAP_NET_ADMIN (EPERM).
    #[error("{what}: {source} (reading conntrack needs CAP_NET_ADMIN)")]
    Permission {
        /// The step that failed.
        what: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// The kernel has no conntrack netlink interface (module not loaded, or not built).
    #[error(
        "{what}: {source} (the kernel offers no conntrack over netlink: nf_conntrack_netlink is not loaded)"
    )]
    Unsupported {
        /// The step that failed.
        what: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// Anything else.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The system's error.
        source: io::Error,
    },
}

impl OpenError {
    /// Classifies the error of step `what` by its errno.
    pub fn classify(what: &'static str) -> impl FnOnce(io::Error) -> OpenError {
        move |source| {
            let errno = source.raw_os_error().map(Errno::from_raw_os_error);
            match errno {
                Some(Errno::PERM | Errno::ACCESS) => OpenError::Permission { what, source },
                Some(
                    Errno::PROTONOSUPPORT
                    | Errno::AFNOSUPPORT
                    | Errno::OPNOTSUPP
                    | Errno::INVAL
                    | Errno::NOENT,
                ) => OpenError::Unsupported { what, source },
                _ => OpenError::Io { what, source },
            }
        }
    }
}

/// conntrack over netlink: an event socket and a dump socket.
pub struct NetlinkSource {
    events: Socket,
    dump: Socket,
    buf: Vec<u8>,
    seq: u32,
    receive_buffer: usize,
}

impl NetlinkSource {
    /// Opens both sockets and subscribes to conntrack events, asking for a receive buffer of
    /// `buffer_bytes` for events.
    pub fn open(buffer_bytes: usize) -> Result<Self, OpenError> {
        let c = OpenError::classify;
        let mut events = Socket::new(NETLINK_NETFILTER).map_err(c("opening a netfilter netlink socket"))?;
        events
            .bind_auto()
            .map_err(c("binding the conntrack event socket"))?;
        // FORCE goes past net.core.rmem_max (it needs CAP_NET_ADMIN, which subscribing needs anyway).
        if sockopt::set_socket_recv_buffer_size_force(&events, buffer_bytes).is_err() {
            sockopt::set_socket_recv_buffer_size(&events, buffer_bytes)
                .map_err(|e| c("sizing the conntrack event buffer")(e.into()))?;
        }
        for g in GROUPS {
            events
                .add_membership(g)
                .map_err(c("subscribing to conntrack events"))?;
        }
        events
            .set_non_blocking(true)
            .map_err(c("making the conntrack event socket non-blocking"))?;
        let receive_buffer = sockopt::socket_recv_buffer_size(&events).unwrap_or(0);

        let mut dump = Socket::new(NETLINK_NETFILTER).map_err(c("opening a netfilter netlink socket"))?;
        dump.bind_auto().map_err(c("binding the conntrack dump socket"))?;
        dump.connect(&SocketAddr::new(0, 0))
            .map_err(c("connecting the conntrack dump socket"))?;
        sockopt::set_socket_timeout(&dump, sockopt::Timeout::Recv, Some(DUMP_TIMEOUT))
            .map_err(|e| c("setting the conntrack dump timeout")(e.into()))?;
        Ok(NetlinkSource {
            events,
            dump,
            buf: vec![0; DATAGRAM],
            seq: 0,
            receive_buffer,
        })
    }

    /// The event socket's receive buffer as the kernel granted it, in octets of data (the kernel
    /// reserves as much again for its bookkeeping and reports the double).
    pub fn receive_buffer(&self) -> usize {
        self.receive_buffer / 2
    }

    /// Reads and drops whatever a failed dump left on the dump socket.
    fn drain_dump_socket(&mut self) {
        let flags = rustix::net::RecvFlags::DONTWAIT.bits() as i32;
        while self.dump.recv(&mut &mut self.buf[..], flags).is_ok() {}
    }
}

/// A dump request for every conntrack entry of every address family.
fn dump_request(seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0),
            ConntrackMessage::Get(vec![]),
        )),
    );
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// `MSG_TRUNC`: recv returns a datagram's real length even when it was cut.
fn trunc() -> i32 {
    rustix::net::RecvFlags::TRUNC.bits() as i32
}

impl Source for NetlinkSource {
    fn poll(&mut self, datagram: &mut dyn FnMut(&[u8])) -> Poll {
        let mut overrun = false;
        for _ in 0..MAX_PER_POLL {
            match self.events.recv(&mut &mut self.buf[..], trunc()) {
                // A cut datagram ends in an incomplete message, which decodes as malformed.
                Ok(n) => datagram(&self.buf[..n.min(DATAGRAM)]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(Errno::NOBUFS.raw_os_error()) => overrun = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Failed(e),
            }
        }
        if overrun { Poll::Overrun } else { Poll::Drained }
    }

    fn dump(&mut self, datagram: &mut dyn FnMut(&[u8]) -> io::Result<bool>) -> io::Result<()> {
        self.drain_dump_socket();
        self.seq = self.seq.wrapping_add(1);
        self.dump.send(&dump_request(self.seq), 0)?;
        loop {
            match self.dump.recv(&mut &mut self.buf[..], trunc()) {
                Ok(n) => {
                    if datagram(&self.buf[..n.min(DATAGRAM)])? {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
