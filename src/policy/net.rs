//! Address blocks and port lists as the policy writers need them: IPv4 and IPv6 apart, blocks
//! inside other blocks of the same group dropped (an nftables interval set refuses overlaps),
//! ports merged into the fewest ranges.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::audit::catalog::PortRange;

/// An IPv4 or IPv6 address block; `addr` is the network address (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    /// `10.1.0.5`, `10.1.0.0/24`, `2001:db8::/64`. Host bits are cleared, as a firewall would.
    pub fn parse(s: &str) -> Result<Net, String> {
        let (ip, len) = match s.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s.trim(), None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{s:?} is not an IPv4/IPv6 address or CIDR block"))?;
        let max = Net::max_prefix(ip);
        let prefix = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
        };
        Ok(Net {
            addr: mask(ip, prefix),
            prefix,
        })
    }

    fn max_prefix(ip: IpAddr) -> u8 {
        if ip.is_ipv4() {
            32
        } else {
            128
        }
    }

    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// A single address (/32 or /128).
    pub fn is_host(&self) -> bool {
        self.prefix == Net::max_prefix(self.addr)
    }

    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_v4() && mask(ip, self.prefix) == self.addr
    }

    pub fn contains(&self, other: &Net) -> bool {
        other.prefix >= self.prefix && self.contains_ip(other.addr)
    }

    /// The dotted netmask of an IPv4 block (Cisco's `network-object ADDR MASK`).
    pub fn v4_mask(&self) -> Option<Ipv4Addr> {
        self.is_v4().then(|| {
            let bits = if self.prefix == 0 {
                0
            } else {
                u32::MAX << (32 - self.prefix)
            };
            Ipv4Addr::from(bits)
        })
    }
}

impl fmt::Display for Net {
    /// A host as its bare address, a block as `addr/prefix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & bits))
        }
        IpAddr::V6(a) => {
            let bits = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & bits))
        }
    }
}

/// Sorted (IPv4 first), without duplicates and without blocks inside another block of the list.
pub fn normalize(mut nets: Vec<Net>) -> Vec<Net> {
    // Shorter prefixes first so that a covering block is kept before what it covers.
    nets.sort_by_key(|n| (n.prefix, n.addr));
    let mut kept: Vec<Net> = Vec::new();
    for n in nets {
        if !kept.iter().any(|k| k.contains(&n)) {
            kept.push(n);
        }
    }
    kept.sort_by_key(|n| (!n.is_v4(), n.addr, n.prefix));
    kept
}

/// Ports as the fewest sorted inclusive ranges: 2500, 2501, 2502, 2505 -> 2500-2502, 2505.
pub fn compact(ports: impl IntoIterator<Item = PortRange>) -> Vec<PortRange> {
    let mut v: Vec<PortRange> = ports.into_iter().collect();
    v.sort();
    let mut out: Vec<PortRange> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(last) if r.lo as u32 <= last.hi as u32 + 1 => last.hi = last.hi.max(r.hi),
            _ => out.push(r),
        }
    }
    out
}

/// `2500-2502;2505`, the catalog's own notation.
pub fn ports_str(r: &[PortRange], sep: &str) -> String {
    r.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Net {
        Net::parse(s).unwrap()
    }

    #[test]
    fn blocks_parse_masked_and_print_hosts_bare() {
        assert_eq!(n("10.1.0.5").to_string(), "10.1.0.5");
        assert_eq!(n("10.1.0.5/24").to_string(), "10.1.0.0/24");
        assert_eq!(n("2001:db8::1/64").to_string(), "2001:db8::/64");
        assert_eq!(n("2001:db8::1").to_string(), "2001:db8::1");
        assert!(Net::parse("10.1.0.0/33").is_err());
        assert!(Net::parse("host").is_err());
        assert_eq!(
            n("10.2.0.0/23").v4_mask().unwrap().to_string(),
            "255.255.254.0"
        );
        assert_eq!(
            n("10.2.0.9").v4_mask().unwrap().to_string(),
            "255.255.255.255"
        );
    }

    #[test]
    fn normalize_drops_covered_blocks_and_puts_ipv4_first() {
        let got = normalize(vec![
            n("2001:db8::1"),
            n("10.1.0.5"),
            n("10.1.0.0/24"),
            n("10.0.0.1"),
            n("10.1.0.0/24"),
        ]);
        let s: Vec<String> = got.iter().map(|x| x.to_string()).collect();
        assert_eq!(s, ["10.0.0.1", "10.1.0.0/24", "2001:db8::1"]);
    }

    #[test]
    fn compact_merges_adjacent_and_overlapping_ports() {
        let r = |lo, hi| PortRange { lo, hi };
        let got = compact([r(2505, 2505), r(2500, 2500), r(2501, 2501), r(2502, 2502)]);
        assert_eq!(ports_str(&got, ";"), "2500-2502;2505");
        let got = compact([r(1, 10), r(5, 20), r(65535, 65535), r(21, 21)]);
        assert_eq!(ports_str(&got, ","), "1-21,65535");
    }
}
