//! What an address without a Kubernetes owner is: outside the cluster (`external`, or the name of an
//! `--external-cidr`), or inside it with no owner at the flow's time (`unknown`); and the protocol
//! label.
//!
//! Which addresses are the cluster's is configured (`--cluster-cidr`), by default the private ranges a
//! cluster's pods, Services and nodes take their addresses from (RFC 1918, RFC 6598 shared space,
//! RFC 4193 unique local, loopback and link-local). Named external ranges are checked first, so an
//! on-premises network inside 10/8 can be told apart from the cluster.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

/// An address range, `ADDR/PREFIX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// Why a range or a `NAME=CIDR` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// Not `ADDR/PREFIX` with a prefix the family allows.
    #[error("{0:?} is not ADDR/PREFIX (e.g. 10.0.0.0/8, fd00::/8)")]
    Range(String),
    /// Not `NAME=CIDR` with a non-empty name.
    #[error("{0:?} is not NAME=CIDR (e.g. corp=192.168.0.0/16)")]
    Named(String),
}

impl Cidr {
    /// True when `ip` lies in the range (an IPv4-mapped IPv6 address is taken as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError::Range(s.to_owned());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// A named external range, `NAME=CIDR` (`--external-cidr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedCidr {
    /// The name the metrics give its addresses (as workload).
    pub name: Arc<str>,
    /// The range.
    pub cidr: Cidr,
}

impl FromStr for NamedCidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, cidr) = s
            .split_once('=')
            .filter(|(n, _)| !n.trim().is_empty())
            .ok_or_else(|| CidrError::Named(s.to_owned()))?;
        Ok(NamedCidr {
            name: name.trim().into(),
            cidr: cidr.parse()?,
        })
    }
}

/// The cluster's ranges when none are configured.
pub const DEFAULT_CLUSTER_CIDRS: [&str; 9] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
];

/// Where unattributed addresses belong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers {
    /// Named external ranges, checked first, in order.
    pub external: Vec<NamedCidr>,
    /// The cluster's ranges: an address in them without an owner is `unknown`.
    pub cluster: Vec<Cidr>,
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            external: Vec::new(),
            cluster: DEFAULT_CLUSTER_CIDRS
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
        }
    }
}

/// An address without an owner: outside (`External(0)` plain, `External(i + 1)` the i-th named
/// range), or inside the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unowned {
    /// Outside the cluster.
    External(u16),
    /// In the cluster, no owner at the flow's time.
    Unknown,
}

impl Peers {
    /// What `ip` is, having no owner.
    pub fn classify(&self, ip: IpAddr) -> Unowned {
        if let Some(i) = self.external.iter().position(|n| n.cidr.contains(ip)) {
            return Unowned::External(u16::try_from(i + 1).unwrap_or(u16::MAX));
        }
        if self.cluster.iter().any(|c| c.contains(ip)) {
            Unowned::Unknown
        } else {
            Unowned::External(0)
        }
    }

    /// The workload name of `External(i)`.
    pub fn external_name(&self, i: u16) -> Option<&Arc<str>> {
        let i = usize::from(i).checked_sub(1)?;
        self.external.get(i).map(|n| &n.name)
    }
}

/// The protocol label: the IANA keyword in lower case for the common ones, else the number.
pub fn protocol_name(proto: u8) -> std::borrow::Cow<'static, str> {
    let name = match proto {
        1 => "icmp",
        2 => "igmp",
        4 => "ipip",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        89 => "ospf",
        103 => "pim",
        112 => "vrrp",
        132 => "sctp",
        136 => "udplite",
        _ => return proto.to_string().into(),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.244.1.5".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()), "v4-mapped");
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("fd00::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let host: Cidr = "2001:db8::1/128".parse().unwrap();
        assert!(host.contains("2001:db8::1".parse().unwrap()));
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let n: NamedCidr = "corp=192.168.0.0/16".parse().unwrap();
        assert_eq!(&*n.name, "corp");
        assert!("=10.0.0.0/8".parse::<NamedCidr>().is_err());
        assert!("corp".parse::<NamedCidr>().is_err());
    }

    #[test]
    fn named_ranges_come_first_then_the_cluster_then_outside() {
        let peers = Peers {
            external: vec!["db=10.50.0.0/16".parse().unwrap()],
            ..Peers::default()
        };
        assert_eq!(peers.classify("10.50.1.1".parse().unwrap()), Unowned::External(1));
        assert_eq!(peers.external_name(1).map(|n| &**n), Some("db"));
        assert_eq!(peers.classify("10.244.0.9".parse().unwrap()), Unowned::Unknown);
        assert_eq!(peers.classify("8.8.8.8".parse().unwrap()), Unowned::External(0));
        assert_eq!(peers.external_name(0), None);
        assert_eq!(protocol_name(6), "tcp");
        assert_eq!(protocol_name(58), "icmpv6");
        assert_eq!(protocol_name(253), "253");
    }
}
