//! Packet decoding: link layer -> (VLAN, MPLS) -> IP -> transport, into a fixed-size [`Packet`].
//!
//! The decoder only reads; it never allocates. IPv4/IPv6 fixed headers are validated with
//! etherparse's zero-copy slices; the link layers etherparse does not know (NFLOG, SLL2, BSD null,
//! any-depth VLAN stacks, MPLS) and the bounded IPv6 extension-header walk are ours.

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address stored in 16 bytes; IPv4 as an IPv4-mapped IPv6 address. Ordering is by bytes,
/// which sorts all IPv4 addresses together, by value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub fn v4(b: [u8; 4]) -> Addr {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&b);
        Addr(a)
    }

    pub fn v6(b: [u8; 16]) -> Addr {
        Addr(b)
    }

    pub fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self.0)).to_canonical()
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => Addr::v4(v4.octets()),
            IpAddr::V6(v6) => Addr::v6(v6.octets()),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Addr {
        Addr::v4(ip.octets())
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// IP protocol numbers the engine treats specially.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;

    /// Protocols whose flows are keyed by ports.
    pub fn has_ports(p: u8) -> bool {
        matches!(p, TCP | UDP | SCTP)
    }

    pub fn name(p: u8) -> std::borrow::Cow<'static, str> {
        match p {
            ICMP => "icmp".into(),
            2 => "igmp".into(),
            IPIP => "ipip".into(),
            TCP => "tcp".into(),
            UDP => "udp".into(),
            IPV6 => "ipv6".into(),
            GRE => "gre".into(),
            50 => "esp".into(),
            51 => "ah".into(),
            ICMPV6 => "icmpv6".into(),
            89 => "ospf".into(),
            103 => "pim".into(),
            112 => "vrrp".into(),
            SCTP => "sctp".into(),
            other => other.to_string().into(),
        }
    }
}

/// TCP flag bits as on the wire.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// No 802.1Q tag.
pub const NO_VLAN: u16 = 0xffff;

/// Fragment position of a packet within its IP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented.
    Whole,
    /// The fragment at offset 0, which carries the transport header; `id` identifies the datagram
    /// and `len` is the number of datagram bytes it carries.
    First { id: u32, len: u32 },
    /// A later fragment: its ports come from the first fragment. `offset` and `len` place its
    /// bytes in the datagram; `last` is set on the fragment without "more fragments".
    Later {
        id: u32,
        offset: u32,
        len: u32,
        last: bool,
    },
}

/// The headers of a packet an ICMP unreachable quoted: the attempt that was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub proto: u8,
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
}

/// Everything the flow stage needs from one packet. Fixed size, `Copy`, no pointers into the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub ts_ns: i64,
    /// The capture clock when this packet was handled: the latest timestamp seen so far in the
    /// capture (set by the engine, in capture order). Idle timeouts are measured against it,
    /// like Zeek's network_time, so a packet stamped in the past never moves time backwards.
    pub clock: i64,
    /// Original length of the frame on the wire.
    pub wire_len: u32,
    /// Transport payload bytes (as the IP lengths say, even when snaplen cut them).
    pub payload_len: u32,
    pub vlan: u16,
    pub proto: u8,
    pub tcp_flags: u8,
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub frag: Frag,
    /// For ICMP/ICMPv6 destination-unreachable: where the quoted (refused) packet starts in the
    /// captured frame, 0 for none; [`Packet::unreach`] reads it. An offset rather than the
    /// headers themselves keeps every packet 40 bytes smaller for a rare case: the engine moves
    /// millions of these per second.
    pub quote_at: u32,
    /// Where the TCP/UDP payload starts in the captured frame (0: no payload captured), so later
    /// stages can read DNS answers and TLS server names without decoding again.
    pub payload_at: u16,
}

impl Packet {
    /// The headers an ICMP destination-unreachable quoted, read from the `frame` this packet
    /// was decoded from.
    pub fn unreach(&self, frame: &[u8]) -> Option<Quoted> {
        if self.quote_at == 0 {
            return None;
        }
        quoted(frame.get(self.quote_at as usize..)?)
    }
}

/// Why a frame made no flow. Counted per reason in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// ARP, STP, LLC and other frames that carry no IP.
    NotIp,
    UnsupportedLinkType(u16),
    TruncatedLinkHeader,
    /// MPLS whose payload is neither IPv4 nor IPv6 (e.g. an Ethernet pseudowire).
    MplsNotIp,
    BadIpVersion,
    BadIpHeader,
    TruncatedIpHeader,
    /// The transport header is cut short (snaplen or a broken packet): no ports to key on.
    TruncatedTransportHeader,
    /// An IPv6 extension-header chain longer than we walk.
    ExtensionChainTooLong,
    /// A non-first fragment whose first fragment never arrived.
    OrphanFragment,
    /// The pending-fragment table was full (see `--max-fragments`).
    FragmentTableFull,
    TunnelTooDeep,
}

impl Skip {
    pub fn label(&self) -> String {
        match self {
            Skip::NotIp => "non-IP frame (ARP, STP, LLC, ...)".into(),
            Skip::UnsupportedLinkType(l) => format!("unsupported link type {l}"),
            Skip::TruncatedLinkHeader => "truncated link-layer header".into(),
            Skip::MplsNotIp => "MPLS payload is not IP".into(),
            Skip::BadIpVersion => "bad IP version".into(),
            Skip::BadIpHeader => "malformed IP header".into(),
            Skip::TruncatedIpHeader => "truncated IP header".into(),
            Skip::TruncatedTransportHeader => "truncated TCP/UDP header".into(),
            Skip::ExtensionChainTooLong => "IPv6 extension-header chain too long".into(),
            Skip::OrphanFragment => "fragment whose first fragment was never seen".into(),
            Skip::FragmentTableFull => "fragment dropped: pending-fragment table full".into(),
            Skip::TunnelTooDeep => "tunnel nesting too deep".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Key flows on the innermost IP packet of GRE, VXLAN, IP-in-IP, 6in4 and 4in6 tunnels.
    pub decap: bool,
}

/// Link types we decode (LINKTYPE_* values).
pub mod link {
    pub const NULL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const RAW: u16 = 101;
    pub const LOOP: u16 = 108;
    pub const LINUX_SLL: u16 = 113;
    pub const IPV4: u16 = 228;
    pub const IPV6: u16 = 229;
    pub const NFLOG: u16 = 239;
    pub const LINUX_SLL2: u16 = 276;
    /// Some systems write raw IP as 12 or 14 (DLT_RAW values that leaked into files).
    pub const RAW_ALT1: u16 = 12;
    pub const RAW_ALT2: u16 = 14;
}

const MAX_TUNNEL_DEPTH: u8 = 4;
/// The walk is bounded by the packet's length anyway; this caps the work on a hostile packet.
const MAX_IPV6_EXT_HEADERS: usize = 256;
const VXLAN_PORT: u16 = 4789;

/// Decodes one captured frame.
pub fn decode(
    link_type: u16,
    data: &[u8],
    ts_ns: i64,
    wire_len: u32,
    opts: DecodeOptions,
) -> Result<Packet, Skip> {
    let mut cx = Ctx {
        opts,
        vlan: NO_VLAN,
        depth: 0,
        base: data.as_ptr() as usize,
    };
    let ip = cx.link(link_type, data)?;
    let mut p = cx.ip(ip)?;
    p.ts_ns = ts_ns;
    p.wire_len = wire_len;
    p.vlan = cx.vlan;
    Ok(p)
}

struct Ctx {
    opts: DecodeOptions,
    vlan: u16,
    depth: u8,
    /// Address of the frame's first byte, to turn sub-slices into offsets.
    base: usize,
}

impl Ctx {
    /// Offset in the frame of `hdr_len` bytes past the start of `d`, if captured.
    fn payload_at(&self, d: &[u8], hdr_len: usize) -> u16 {
        if d.len() <= hdr_len {
            return 0;
        }
        u16::try_from(d.as_ptr() as usize - self.base + hdr_len).unwrap_or(0)
    }
}

/// The network-layer bytes a link layer carried.
enum Net<'a> {
    Ip(&'a [u8]),
}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

impl Ctx {
    fn link<'a>(&mut self, link_type: u16, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        let Net::Ip(ip) = match link_type {
            link::ETHERNET => self.ethernet(d)?,
            link::RAW | link::RAW_ALT1 | link::RAW_ALT2 | link::IPV4 | link::IPV6 => Net::Ip(d),
            link::NULL | link::LOOP => {
                if d.len() < 4 {
                    return Err(Skip::TruncatedLinkHeader);
                }
                // The address family is in the writer's byte order (NULL) or network order (LOOP);
                // accept either. AF_INET is 2 everywhere; AF_INET6 is 10, 24, 28 or 30 by OS.
                let le = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                let be = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
                let is_ip = |af: u32| matches!(af, 2 | 10 | 24 | 28 | 30);
                if !is_ip(le) && !is_ip(be) {
                    return Err(Skip::NotIp);
                }
                Net::Ip(&d[4..])
            }
            link::LINUX_SLL => {
                if d.len() < 16 {
                    return Err(Skip::TruncatedLinkHeader);
                }
                self.ethertype(be16(d, 14), &d[16..])?
            }
            link::LINUX_SLL2 => {
                if d.len() < 20 {
                    return Err(Skip::TruncatedLinkHeader);
                }
                self.ethertype(be16(d, 0), &d[20..])?
            }
            link::NFLOG => nflog(d)?,
            other => return Err(Skip::UnsupportedLinkType(other)),
        };
        Ok(ip)
    }

    fn ethernet<'a>(&mut self, d: &'a [u8]) -> Result<Net<'a>, Skip> {
        if d.len() < 14 {
            return Err(Skip::TruncatedLinkHeader);
        }
        self.ethertype(be16(d, 12), &d[14..])
    }

    /// Follows an ethertype through any number of VLAN tags and an MPLS label stack.
    fn ethertype<'a>(&mut self, mut et: u16, mut d: &'a [u8]) -> Result<Net<'a>, Skip> {
        loop {
            match et {
                0x8100 | 0x88a8 | 0x9100 | 0x9200 => {
                    if d.len() < 4 {
                        return Err(Skip::TruncatedLinkHeader);
                    }
                    // Only the outermost tag identifies the segment the firewall sees.
                    if self.vlan == NO_VLAN && self.depth == 0 {
                        self.vlan = be16(d, 0) & 0x0fff;
                    }
                    et = be16(d, 2);
                    d = &d[4..];
                }
                0x8847 | 0x8848 => {
                    loop {
                        if d.len() < 4 {
                            return Err(Skip::TruncatedLinkHeader);
                        }
                        let bottom = d[2] & 0x01 != 0;
                        d = &d[4..];
                        if bottom {
                            break;
                        }
                    }
                    return match d.first().map(|b| b >> 4) {
                        Some(4) | Some(6) => Ok(Net::Ip(d)),
                        _ => Err(Skip::MplsNotIp),
                    };
                }
                0x0800 | 0x86dd => return Ok(Net::Ip(d)),
                _ => return Err(Skip::NotIp),
            }
        }
    }

    fn ip(&mut self, d: &[u8]) -> Result<Packet, Skip> {
        match d.first().map(|b| b >> 4) {
            Some(4) => self.ipv4(d),
            Some(6) => self.ipv6(d),
            Some(_) => Err(Skip::BadIpVersion),
            None => Err(Skip::TruncatedIpHeader),
        }
    }

    fn ipv4(&mut self, d: &[u8]) -> Result<Packet, Skip> {
        let h = Ipv4HeaderSlice::from_slice(d).map_err(|e| match e {
            etherparse::err::ipv4::HeaderSliceError::Len(_) => Skip::TruncatedIpHeader,
            etherparse::err::ipv4::HeaderSliceError::Content(_) => Skip::BadIpHeader,
        })?;
        let hlen = h.slice().len();
        // A total length of 0 (or less than the header) comes from TCP segmentation offload on
        // the capturing host: the captured bytes are the packet, as tshark also assumes.
        let total = match h.total_len() as usize {
            t if t < hlen => d.len(),
            t => t,
        };
        let payload = &d[hlen..d.len().min(total)];
        let payload_len = (total - hlen) as u32;
        let offset = h.fragments_offset().value();
        let frag = if offset > 0 {
            Frag::Later {
                id: h.identification() as u32,
                offset: offset as u32 * 8,
                len: payload_len,
                last: !h.more_fragments(),
            }
        } else if h.more_fragments() {
            Frag::First {
                id: h.identification() as u32,
                len: payload_len,
            }
        } else {
            Frag::Whole
        };
        let src = Addr::v4(h.source());
        let dst = Addr::v4(h.destination());
        self.transport(h.protocol().0, src, dst, payload, payload_len, frag)
    }

    fn ipv6(&mut self, d: &[u8]) -> Result<Packet, Skip> {
        let h = Ipv6HeaderSlice::from_slice(d).map_err(|e| match e {
            etherparse::err::ipv6::HeaderSliceError::Len(_) => Skip::TruncatedIpHeader,
            etherparse::err::ipv6::HeaderSliceError::Content(_) => Skip::BadIpHeader,
        })?;
        let declared = h.payload_length() as usize;
        let mut rest = &d[40..];
        // A zero payload length means a jumbogram or an unset field: trust the capture.
        let mut payload_len = if declared == 0 { rest.len() } else { declared };
        if declared != 0 && rest.len() > declared {
            rest = &rest[..declared];
        }
        let src = Addr::v6(h.source());
        let dst = Addr::v6(h.destination());
        let mut next = h.next_header().0;
        let mut frag = Frag::Whole;
        for _ in 0..MAX_IPV6_EXT_HEADERS {
            let ext_len = match next {
                // Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len+1)*8 bytes.
                0 | 43 | 60 | 135 | 139 | 140 => {
                    if rest.len() < 8 {
                        return Err(Skip::TruncatedIpHeader);
                    }
                    (rest[1] as usize + 1) * 8
                }
                44 => {
                    if rest.len() < 8 {
                        return Err(Skip::TruncatedIpHeader);
                    }
                    let offset = be16(rest, 2) >> 3;
                    let more = rest[3] & 1 != 0;
                    let id = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
                    let len = payload_len.saturating_sub(8) as u32;
                    frag = if offset > 0 {
                        Frag::Later {
                            id,
                            offset: offset as u32 * 8,
                            len,
                            last: !more,
                        }
                    } else if more {
                        Frag::First { id, len }
                    } else {
                        Frag::Whole
                    };
                    8
                }
                // Authentication header: (len+2)*4 bytes.
                51 => {
                    if rest.len() < 8 {
                        return Err(Skip::TruncatedIpHeader);
                    }
                    (rest[1] as usize + 2) * 4
                }
                _ => {
                    return self.transport(next, src, dst, rest, payload_len as u32, frag);
                }
            };
            if ext_len > rest.len() {
                return Err(Skip::TruncatedIpHeader);
            }
            next = rest[0];
            rest = &rest[ext_len..];
            payload_len = payload_len.saturating_sub(ext_len);
            if matches!(frag, Frag::Later { .. }) {
                // Later fragments carry no further headers, only data.
                return self.transport(next, src, dst, rest, payload_len as u32, frag);
            }
        }
        Err(Skip::ExtensionChainTooLong)
    }

    fn transport(
        &mut self,
        proto_num: u8,
        src: Addr,
        dst: Addr,
        d: &[u8],
        ip_payload_len: u32,
        frag: Frag,
    ) -> Result<Packet, Skip> {
        let mut p = Packet {
            ts_ns: 0,
            clock: 0,
            wire_len: 0,
            payload_len: ip_payload_len,
            vlan: NO_VLAN,
            proto: proto_num,
            tcp_flags: 0,
            src,
            dst,
            sport: 0,
            dport: 0,
            frag,
            quote_at: 0,
            payload_at: 0,
        };
        if matches!(frag, Frag::Later { .. }) {
            return Ok(p);
        }
        match proto_num {
            proto::TCP => {
                // Ports and flags sit in the first 14 bytes; options may be cut by snaplen.
                if d.len() < 14 {
                    return Err(Skip::TruncatedTransportHeader);
                }
                p.sport = be16(d, 0);
                p.dport = be16(d, 2);
                p.tcp_flags = d[13];
                let hdr = ((d[12] >> 4) as u32 * 4).max(20);
                p.payload_len = ip_payload_len.saturating_sub(hdr);
                p.payload_at = self.payload_at(d, hdr as usize);
            }
            proto::UDP | proto::SCTP => {
                if d.len() < 8 {
                    return Err(Skip::TruncatedTransportHeader);
                }
                p.sport = be16(d, 0);
                p.dport = be16(d, 2);
                p.payload_len = ip_payload_len.saturating_sub(8);
                p.payload_at = self.payload_at(d, 8);
                if proto_num == proto::UDP
                    && self.opts.decap
                    && p.dport == VXLAN_PORT
                    && d.len() >= 16
                    && d[8] & 0x08 != 0
                {
                    return self.inner(|cx| match cx.ethernet(&d[16..])? {
                        Net::Ip(ip) => cx.ip(ip),
                    });
                }
            }
            proto::ICMP | proto::ICMPV6 => {
                let unreach_type = if proto_num == proto::ICMP { 3 } else { 1 };
                if d.len() >= 8 && d[0] == unreach_type && quoted(&d[8..]).is_some() {
                    p.quote_at = (d[8..].as_ptr() as usize - self.base) as u32;
                }
            }
            proto::IPIP | proto::IPV6 if self.opts.decap => {
                return self.inner(|cx| cx.ip(d));
            }
            proto::GRE if self.opts.decap => {
                if let Some((et, inner)) = gre(d) {
                    return self.inner(|cx| match cx.ethertype(et, inner)? {
                        Net::Ip(ip) => cx.ip(ip),
                    });
                }
            }
            _ => {}
        }
        Ok(p)
    }

    fn inner(&mut self, f: impl FnOnce(&mut Ctx) -> Result<Packet, Skip>) -> Result<Packet, Skip> {
        if self.depth >= MAX_TUNNEL_DEPTH {
            return Err(Skip::TunnelTooDeep);
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }
}

/// Parses a GRE header; returns the payload's ethertype and bytes.
fn gre(d: &[u8]) -> Option<(u16, &[u8])> {
    if d.len() < 4 {
        return None;
    }
    let flags = d[0];
    if d[1] & 0x07 != 0 {
        return None; // only GRE version 0 carries packets; version 1 is PPTP
    }
    let mut len = 4;
    if flags & 0x80 != 0 {
        len += 4; // checksum + reserved
    }
    if flags & 0x20 != 0 {
        len += 4; // key
    }
    if flags & 0x10 != 0 {
        len += 4; // sequence number
    }
    let et = be16(d, 2);
    let et = if et == 0x6558 {
        // Transparent Ethernet bridging: an Ethernet frame follows.
        if d.len() < len + 14 {
            return None;
        }
        return Some((be16(d, len + 12), &d[len + 14..]));
    } else {
        et
    };
    d.get(len..).map(|rest| (et, rest))
}

/// Unwraps NFLOG's TLVs to the packet payload (attribute 9).
fn nflog(d: &[u8]) -> Result<Net<'_>, Skip> {
    if d.len() < 4 {
        return Err(Skip::TruncatedLinkHeader);
    }
    let family = d[0];
    let mut rest = &d[4..];
    while rest.len() >= 4 {
        // TLV lengths are in the host byte order of the capturing machine; real files are
        // little-endian, and a big-endian length would be implausibly large.
        let mut len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let mut typ = u16::from_le_bytes([rest[2], rest[3]]);
        if len < 4 || len > rest.len() {
            len = be16(rest, 0) as usize;
            typ = be16(rest, 2);
            if len < 4 || len > rest.len() {
                return Err(Skip::TruncatedLinkHeader);
            }
        }
        if typ & 0x7fff == 9 {
            let payload = &rest[4..len];
            return match family {
                2 | 10 => Ok(Net::Ip(payload)),
                _ => Err(Skip::NotIp),
            };
        }
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    Err(Skip::NotIp)
}

/// Reads the IP + first 8 transport bytes an ICMP error quotes.
fn quoted(d: &[u8]) -> Option<Quoted> {
    let (proto_num, src, dst, rest) = match d.first()? >> 4 {
        4 => {
            let ihl = (d[0] & 0x0f) as usize * 4;
            if d.len() < ihl.max(20) {
                return None;
            }
            let s: [u8; 4] = d[12..16].try_into().ok()?;
            let t: [u8; 4] = d[16..20].try_into().ok()?;
            (d[9], Addr::v4(s), Addr::v4(t), &d[ihl.max(20)..])
        }
        6 => {
            if d.len() < 40 {
                return None;
            }
            let s: [u8; 16] = d[8..24].try_into().ok()?;
            let t: [u8; 16] = d[24..40].try_into().ok()?;
            (d[6], Addr::v6(s), Addr::v6(t), &d[40..])
        }
        _ => return None,
    };
    let (sport, dport) = if proto::has_ports(proto_num) && rest.len() >= 4 {
        (be16(rest, 0), be16(rest, 2))
    } else if proto::has_ports(proto_num) {
        return None;
    } else {
        (0, 0)
    };
    Some(Quoted {
        proto: proto_num,
        src,
        dst,
        sport,
        dport,
    })
}
