//! Packet decoding: link layer -> (VLAN, MPLS, PPPoE, ...) -> IP -> transport, into a fixed-size
//! [`Packet`].
//!
//! The decoder only reads; it never allocates. IPv4/IPv6 fixed headers are validated with
//! etherparse's zero-copy slices; the link layers and shims etherparse does not know and the
//! bounded IPv6 extension-header walk are ours. One file per family:
//! - [`linklayer`]: link types, the ethertype walk (VLAN, MPLS, PPPoE, PBB, VN-Tag, ...), PPP, HDLC,
//!   Frame Relay, LLC/SNAP;
//! - [`wlan`]: IEEE 802.11 data frames, bare or behind radiotap, PPI, Prism or AVS headers;
//! - [`tunnel`]: GRE, VXLAN and the mirror transports (ERSPAN, Aruba GRE, TZSP).
//!
//! docs/flows.md lists every link type and encapsulation and where each packet is counted.

mod linklayer;
mod tunnel;
mod wlan;

pub use linklayer::link_name;
pub use tunnel::{Mirror, MirrorSource};

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
pub mod names;
pub mod summary;
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

    /// The name reports give protocol `p` ([`IpProto`]'s), or its number.
    pub fn name(p: u8) -> std::borrow::Cow<'static, str> {
        match IpProto(p).name() {
            Some(n) => n.into(),
            None => p.to_string().into(),
        }
    }

    /// An IP protocol number with the names reports and input files use (`tcp`, `icmpv6`, ...):
    /// [`fmt::Display`] writes the name (or the number when it has none), [`std::str::FromStr`]
    /// reads a name, an alias (`ipv6-icmp`, `ipencap`) or a number. Shared by every writer and
    /// reader of protocol names, so that they cannot disagree.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct IpProto(pub u8);

    /// Number and name, as reports write them.
    const NAMES: [(u8, &str); 14] = [
        (ICMP, "icmp"),
        (2, "igmp"),
        (IPIP, "ipip"),
        (TCP, "tcp"),
        (UDP, "udp"),
        (IPV6, "ipv6"),
        (GRE, "gre"),
        (50, "esp"),
        (51, "ah"),
        (ICMPV6, "icmpv6"),
        (89, "ospf"),
        (103, "pim"),
        (112, "vrrp"),
        (SCTP, "sctp"),
    ];

    /// Names read but not written (reports write these numbers as numbers): other names in use
    /// for the same numbers (nft, /etc/protocols), and protocols firewall rules name.
    const ALIASES: [(u8, &str); 4] = [
        (IPIP, "ipencap"),
        (ICMPV6, "ipv6-icmp"),
        (33, "dccp"),
        (136, "udplite"),
    ];

    impl IpProto {
        /// The protocol's name, if it has one.
        pub fn name(self) -> Option<&'static str> {
            NAMES.iter().find(|(n, _)| *n == self.0).map(|(_, s)| *s)
        }
    }

    impl std::fmt::Display for IpProto {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.name() {
                Some(s) => f.write_str(s),
                None => self.0.fmt(f),
            }
        }
    }

    impl std::str::FromStr for IpProto {
        type Err = String;

        /// Names are matched without regard to case.
        fn from_str(s: &str) -> Result<IpProto, String> {
            let lower = s.to_ascii_lowercase();
            NAMES
                .iter()
                .chain(&ALIASES)
                .find(|(_, name)| *name == lower)
                .map(|(n, _)| IpProto(*n))
                .or_else(|| s.parse::<u8>().ok().map(IpProto))
                .ok_or_else(|| format!("unknown protocol {s:?}"))
        }
    }

    impl From<IpProto> for u8 {
        fn from(p: IpProto) -> u8 {
            p.0
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
    /// How tunnel decapsulation went (see [`Note`]); `Note::None` for nearly every packet.
    pub note: Note,
}

/// What `--decap` did with a tunnel packet, for the engine (one byte: it fits in padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Note {
    #[default]
    None,
    /// The packet is the inner packet of an outer first fragment: the engine maps the outer
    /// datagram to this packet's flow, so the outer's trailing fragments join it.
    TunnelFirstFragment,
    /// The tunnel's payload could not be decoded: the packet stays in its outer flow.
    Kept(Kept),
}

/// Why `--decap` left a tunnel packet in its outer flow (counted in the summary; the packet is
/// in a flow, so it is not a skip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kept {
    /// GRE keepalives, NHRP, PPP control or compressed frames, unknown protocol types.
    GrePayloadNotIp,
    /// VXLAN carrying ARP or another non-IP frame.
    VxlanPayloadNotIp,
    /// The inner IP or transport header is truncated or malformed.
    InnerMalformed,
    /// Tunnels nested deeper than the decoder follows.
    TooDeep,
}

impl Kept {
    pub fn label(&self) -> &'static str {
        match self {
            Kept::GrePayloadNotIp => {
                "GRE payload is not IP (keepalive, NHRP, PPP control, other protocol types)"
            }
            Kept::VxlanPayloadNotIp => "VXLAN payload is not IP (ARP, ...)",
            Kept::InnerMalformed => "inner packet truncated or malformed",
            Kept::TooDeep => "tunnels nested too deep",
        }
    }

    /// The reason for an inner packet that failed to decode with `skip`.
    fn of(skip: Skip, vxlan: bool) -> Kept {
        match skip {
            Skip::TunnelTooDeep => Kept::TooDeep,
            Skip::BadIpVersion
            | Skip::BadIpHeader
            | Skip::TruncatedIpHeader
            | Skip::TruncatedTransportHeader
            | Skip::ExtensionChainTooLong
            | Skip::TruncatedLinkHeader => Kept::InnerMalformed,
            _ if vxlan => Kept::VxlanPayloadNotIp,
            _ => Kept::GrePayloadNotIp,
        }
    }
}

impl Packet {
    /// The headers an ICMP destination-unreachable quoted, read from the `frame` this packet
    /// was decoded from. Other ICMP errors (time exceeded...) quote a packet too, but do not
    /// refuse it.
    pub fn unreach(&self, frame: &[u8]) -> Option<Quoted> {
        if !self.is_icmp_error() {
            return None;
        }
        // The ICMP header's 8 bytes sit just before the quoted packet; byte 0 is the type.
        let at = self.quote_at as usize;
        let ty = *frame.get(at.checked_sub(8)?)?;
        if !icmp::is_unreachable(self.proto, ty) {
            return None;
        }
        quoted(frame.get(at..)?)
    }

    /// An ICMP or ICMPv6 error message quoting the packet it answers (see [`icmp::is_error`]).
    pub fn is_icmp_error(&self) -> bool {
        self.quote_at != 0 && matches!(self.proto, proto::ICMP | proto::ICMPV6)
    }
}

/// ICMP message types that answer another packet: the network's or a host's reply to traffic,
/// not a conversation of their own (RFC 792, RFC 4443).
pub mod icmp {
    use super::proto;

    /// An error message (it quotes the packet it answers): destination unreachable (every code:
    /// port, host, net unreachable, administratively prohibited...), source quench, redirect,
    /// time exceeded, parameter problem; for ICMPv6 destination unreachable, packet too big,
    /// time exceeded, parameter problem.
    pub fn is_error(p: u8, ty: u8) -> bool {
        match p {
            proto::ICMP => matches!(ty, 3 | 4 | 5 | 11 | 12),
            proto::ICMPV6 => matches!(ty, 1..=4),
            _ => false,
        }
    }

    /// Destination unreachable (ICMP type 3, ICMPv6 type 1): the quoted attempt was refused.
    pub fn is_unreachable(p: u8, ty: u8) -> bool {
        (p == proto::ICMP && ty == 3) || (p == proto::ICMPV6 && ty == 1)
    }
}

/// Why a frame made no flow. Counted per reason in the summary. A closed list: each reason
/// names what the frame was, so "non-IP" never hides IP inside a wrapping we do not read.
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
    /// Mirror transports nested deeper than the decoder follows.
    TunnelTooDeep,
    /// IEEE 802.1AE: the payload is encrypted (or at least not ours to read).
    Macsec,
    /// PPPoE discovery (PADI, PADO, ...): session setup, no IP.
    PppoeDiscovery,
    /// PPP link, network or authentication control (LCP, IPCP, CHAP, ...) or a compressed or
    /// non-IP PPP protocol.
    PppNotIp,
    /// Cisco HDLC keepalives (SLARP) and CDP.
    HdlcNotIp,
    /// Frame Relay LMI or a payload that is not IP.
    FrameRelayNotIp,
    /// IEEE 802.11 management, control and null-data frames.
    WlanNotData,
    /// IEEE 802.11 data frames with the Protected bit: encrypted.
    WlanProtected,
    /// A mirror transport whose header is truncated or of an unknown version or frame type.
    MirrorNotDecoded(Mirror),
}

impl Skip {
    pub fn label(&self) -> String {
        match self {
            Skip::NotIp => "non-IP frame (ARP, STP, LLC, ...)".into(),
            Skip::UnsupportedLinkType(l) => match link_name(*l) {
                Some(name) => format!("unsupported link type {l} ({name})"),
                None => format!("unsupported link type {l}"),
            },
            Skip::TruncatedLinkHeader => "truncated link-layer header".into(),
            Skip::MplsNotIp => "MPLS payload is not IP".into(),
            Skip::BadIpVersion => "bad IP version".into(),
            Skip::BadIpHeader => "malformed IP header".into(),
            Skip::TruncatedIpHeader => "truncated IP header".into(),
            Skip::TruncatedTransportHeader => "truncated TCP/UDP header".into(),
            Skip::ExtensionChainTooLong => "IPv6 extension-header chain too long".into(),
            Skip::OrphanFragment => "fragment whose first fragment was never seen".into(),
            Skip::FragmentTableFull => "fragment dropped: pending-fragment table full".into(),
            Skip::TunnelTooDeep => "mirror transports nested too deep".into(),
            Skip::Macsec => "encrypted (MACsec)".into(),
            Skip::PppoeDiscovery => "PPPoE discovery".into(),
            Skip::PppNotIp => "PPP control or non-IP protocol (LCP, IPCP, CHAP, ...)".into(),
            Skip::HdlcNotIp => "Cisco HDLC keepalive or CDP (SLARP)".into(),
            Skip::FrameRelayNotIp => "Frame Relay LMI or non-IP payload".into(),
            Skip::WlanNotData => "802.11 management, control or null-data frame".into(),
            Skip::WlanProtected => "802.11 protected (encrypted) data frame".into(),
            Skip::MirrorNotDecoded(m) => format!(
                "{} payload not decoded (truncated, unknown version or frame type)",
                m.label()
            ),
        }
    }
}

/// How flows are keyed on VLAN ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VlanKey {
    /// The outermost 802.1Q/802.1ad tag is part of the flow key (Zeek's default).
    #[default]
    Outer,
    /// VLAN tags are ignored: both directions of a routed connection meet in one flow even when
    /// they cross the trunk on different VLANs.
    None,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Key flows on the innermost IP packet of GRE, VXLAN, IP-in-IP, 6in4 and 4in6 tunnels.
    pub decap: bool,
    pub vlan_key: VlanKey,
}

impl DecodeOptions {
    /// Options with `--decap` as given and every other choice at its default.
    pub fn with_decap(decap: bool) -> Self {
        DecodeOptions {
            decap,
            ..Default::default()
        }
    }
}

/// Link types we decode (LINKTYPE_* values).
pub mod link {
    pub const NULL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const PPP: u16 = 9;
    /// PPP in HDLC-like framing (RFC 1662), or Cisco HDLC framing.
    pub const PPP_HDLC: u16 = 50;
    /// PPPoE without the Ethernet header.
    pub const PPP_ETHER: u16 = 51;
    pub const ATM_RFC1483: u16 = 100;
    pub const RAW: u16 = 101;
    pub const C_HDLC: u16 = 104;
    pub const IEEE802_11: u16 = 105;
    pub const FRELAY: u16 = 107;
    pub const LOOP: u16 = 108;
    pub const LINUX_SLL: u16 = 113;
    pub const PRISM: u16 = 119;
    pub const RADIOTAP: u16 = 127;
    pub const AVS: u16 = 163;
    pub const PPI: u16 = 192;
    pub const PPP_WITH_DIR: u16 = 204;
    pub const C_HDLC_WITH_DIR: u16 = 205;
    pub const FRELAY_WITH_DIR: u16 = 206;
    pub const MPLS: u16 = 219;
    pub const IPNET: u16 = 226;
    pub const IPV4: u16 = 228;
    pub const IPV6: u16 = 229;
    pub const NFLOG: u16 = 239;
    pub const NETANALYZER: u16 = 240;
    pub const NETANALYZER_TRANSPARENT: u16 = 241;
    pub const IPOIB: u16 = 242;
    pub const LINUX_SLL2: u16 = 276;
    /// Some systems write raw IP as 12 or 14 (DLT_RAW values that leaked into files).
    pub const RAW_ALT1: u16 = 12;
    pub const RAW_ALT2: u16 = 14;
}

const MAX_TUNNEL_DEPTH: u8 = 4;
/// Mirror transports inside mirror transports (a switch mirroring a mirror session).
const MAX_MIRROR_DEPTH: u8 = 4;
/// The walk is bounded by the packet's length anyway; this caps the work on a hostile packet.
const MAX_IPV6_EXT_HEADERS: usize = 256;

/// Decodes one captured frame.
pub fn decode(
    link_type: u16,
    data: &[u8],
    ts_ns: i64,
    wire_len: u32,
    opts: DecodeOptions,
) -> Result<Packet, Skip> {
    decode_with_mirror(link_type, data, ts_ns, wire_len, opts).0
}

/// [`decode`], also returning the outermost mirror transport the packet arrived in, if any.
pub fn decode_with_mirror(
    link_type: u16,
    data: &[u8],
    ts_ns: i64,
    wire_len: u32,
    opts: DecodeOptions,
) -> (Result<Packet, Skip>, Option<MirrorSource>) {
    let mut cx = Ctx::new(opts, data);
    let r = cx.frame(link_type, data).map(|mut p| {
        p.ts_ns = ts_ns;
        p.wire_len = wire_len;
        p.vlan = match opts.vlan_key {
            VlanKey::Outer => cx.vlan,
            VlanKey::None => NO_VLAN,
        };
        p
    });
    (r, cx.mirror)
}

/// The outer datagram of a packet `--decap` decoded from an outer first fragment
/// ([`Note::TunnelFirstFragment`]): its source, destination, protocol, IP id and the datagram
/// bytes the first fragment carried. The engine maps it to the inner flow.
pub fn outer_first_fragment(link_type: u16, data: &[u8]) -> Option<(Addr, Addr, u8, u32, u32)> {
    let opts = DecodeOptions::default();
    let p = Ctx::new(opts, data).frame(link_type, data).ok()?;
    match p.frag {
        Frag::First { id, len } => Some((p.src, p.dst, p.proto, id, len)),
        _ => None,
    }
}

struct Ctx {
    opts: DecodeOptions,
    vlan: u16,
    depth: u8,
    mirror_depth: u8,
    /// The outermost mirror transport unwrapped.
    mirror: Option<MirrorSource>,
    /// Address of the frame's first byte, to turn sub-slices into offsets.
    base: usize,
}

impl Ctx {
    fn new(opts: DecodeOptions, data: &[u8]) -> Ctx {
        Ctx {
            opts,
            vlan: NO_VLAN,
            depth: 0,
            mirror_depth: 0,
            mirror: None,
            base: data.as_ptr() as usize,
        }
    }

    /// A whole frame of `link_type`.
    fn frame(&mut self, link_type: u16, data: &[u8]) -> Result<Packet, Skip> {
        let ip = self.link(link_type, data)?;
        self.ip(ip)
    }

    /// Offset in the frame of `hdr_len` bytes past the start of `d`, if captured.
    fn payload_at(&self, d: &[u8], hdr_len: usize) -> u16 {
        if d.len() <= hdr_len {
            return 0;
        }
        u16::try_from(d.as_ptr() as usize - self.base + hdr_len).unwrap_or(0)
    }
}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

impl Ctx {
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
            note: Note::None,
        };
        if let Frag::Later { offset, .. } = frag {
            p.tcp_flags = later_fragment_tcp_flags(proto_num, offset, d);
            return Ok(p);
        }
        // A first fragment may be an RFC 1858 tiny fragment: the ports (first 4 bytes) are
        // there even when the rest of the header is in the next fragment.
        let first_frag = matches!(frag, Frag::First { .. });
        match proto_num {
            proto::TCP => self.tcp(p, d, first_frag),
            proto::UDP | proto::SCTP => self.udp_or_sctp(p, d, first_frag),
            // An error quoting the packet it answers; other ICMP keeps no quote.
            proto::ICMP | proto::ICMPV6
                if d.len() >= 8 && icmp::is_error(proto_num, d[0]) && quoted(&d[8..]).is_some() =>
            {
                p.quote_at = (d[8..].as_ptr() as usize - self.base) as u32;
                Ok(p)
            }
            proto::IPIP | proto::IPV6 if self.opts.decap => self.decap(p, false, |cx| cx.ip(d)),
            proto::GRE => self.gre(p, d),
            _ => Ok(p),
        }
    }

    /// The TCP header `d` of packet `p` (not a later fragment): ports, flags, payload.
    #[inline]
    fn tcp(&mut self, mut p: Packet, d: &[u8], first_frag: bool) -> Result<Packet, Skip> {
        if d.len() < 14 {
            return tiny_first_fragment(p, d, first_frag);
        }
        // Ports and flags sit in the first 14 bytes; options may be cut by snaplen.
        p.sport = be16(d, 0);
        p.dport = be16(d, 2);
        p.tcp_flags = d[13];
        let hdr = ((d[12] >> 4) as u32 * 4).max(20);
        p.payload_len = p.payload_len.saturating_sub(hdr);
        p.payload_at = self.payload_at(d, hdr as usize);
        Ok(p)
    }

    /// The UDP or SCTP header `d` of packet `p` (not a later fragment); UDP may carry a tunnel.
    #[inline]
    fn udp_or_sctp(&mut self, mut p: Packet, d: &[u8], first_frag: bool) -> Result<Packet, Skip> {
        if d.len() < 8 {
            return tiny_first_fragment(p, d, first_frag);
        }
        p.sport = be16(d, 0);
        p.dport = be16(d, 2);
        p.payload_len = p.payload_len.saturating_sub(8);
        p.payload_at = self.payload_at(d, 8);
        if p.proto == proto::UDP {
            return self.udp_tunnel(p, &d[8..]);
        }
        Ok(p)
    }

    /// Decodes the inner packet of a tunnel with `f`; with `--decap` a payload that cannot be
    /// decoded leaves the packet in its outer flow (`outer`), the reason noted.
    fn decap(
        &mut self,
        outer: Packet,
        vxlan: bool,
        f: impl FnOnce(&mut Ctx) -> Result<Packet, Skip>,
    ) -> Result<Packet, Skip> {
        let kept = |why| {
            Ok(Packet {
                note: Note::Kept(why),
                ..outer
            })
        };
        if self.depth >= MAX_TUNNEL_DEPTH {
            return kept(Kept::TooDeep);
        }
        let vlan = self.vlan;
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        match r {
            Ok(mut inner) => {
                if matches!(outer.frag, Frag::First { .. }) && inner.note == Note::None {
                    inner.note = Note::TunnelFirstFragment;
                }
                Ok(inner)
            }
            Err(skip) => {
                self.vlan = vlan;
                kept(Kept::of(skip, vxlan))
            }
        }
    }

    /// Unwraps a mirror transport's payload with `f`: the mirrored frame is a packet of its own,
    /// seen on the monitored link, so tunnel depth and VLAN start afresh.
    fn mirrored(
        &mut self,
        source: MirrorSource,
        f: impl FnOnce(&mut Ctx) -> Result<Packet, Skip>,
    ) -> Result<Packet, Skip> {
        if self.mirror_depth >= MAX_MIRROR_DEPTH {
            return Err(Skip::TunnelTooDeep);
        }
        if self.mirror.is_none() {
            self.mirror = Some(source);
        }
        self.mirror_depth += 1;
        let depth = std::mem::replace(&mut self.depth, 0);
        self.vlan = NO_VLAN;
        let r = f(self);
        self.depth = depth;
        r
    }
}

/// A transport header cut short: a first fragment keeps the ports if it has them (RFC 1858's
/// tiny fragments put the rest of the header in the next fragment); anything else is skipped.
#[inline]
fn tiny_first_fragment(mut p: Packet, d: &[u8], first_frag: bool) -> Result<Packet, Skip> {
    if !first_frag || d.len() < 4 {
        return Err(Skip::TruncatedTransportHeader);
    }
    p.sport = be16(d, 0);
    p.dport = be16(d, 2);
    Ok(p)
}

/// The TCP flags a later fragment `d` at `offset` carries: RFC 1858's fragment at offset 8,
/// after a tiny first fragment of 8 TCP header bytes, holds them (TCP header byte 13); any other
/// later fragment carries none (0).
fn later_fragment_tcp_flags(proto_num: u8, offset: u32, d: &[u8]) -> u8 {
    if proto_num == proto::TCP && offset == 8 && d.len() >= 6 {
        d[5]
    } else {
        0
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine moves millions of packets per second: the decap note must not make one bigger.
    #[test]
    fn packet_stays_88_bytes() {
        assert_eq!(std::mem::size_of::<Packet>(), 88);
    }

    /// The names as IANA's protocol-numbers registry and /etc/protocols give them (ICMPv6 as
    /// reports have always written it), read back to the same number.
    #[test]
    fn protocol_names_round_trip() {
        use proto::IpProto;
        let expected = [
            (1, "icmp"),
            (2, "igmp"),
            (4, "ipip"),
            (6, "tcp"),
            (17, "udp"),
            (41, "ipv6"),
            (47, "gre"),
            (50, "esp"),
            (51, "ah"),
            (58, "icmpv6"),
            (89, "ospf"),
            (103, "pim"),
            (112, "vrrp"),
            (132, "sctp"),
        ];
        for (n, name) in expected {
            assert_eq!(IpProto(n).to_string(), name);
            assert_eq!(name.parse::<IpProto>(), Ok(IpProto(n)));
            assert_eq!(proto::name(n), name);
        }
        for n in 0..=255u8 {
            let shown = IpProto(n).to_string();
            assert_eq!(shown.parse::<IpProto>(), Ok(IpProto(n)), "{shown}");
        }
        // Unnamed protocols are written as numbers; aliases and any case are read.
        assert_eq!(IpProto(33).to_string(), "33");
        assert_eq!(IpProto(253).to_string(), "253");
        assert_eq!("dccp".parse::<IpProto>(), Ok(IpProto(33)));
        assert_eq!("udplite".parse::<IpProto>(), Ok(IpProto(136)));
        assert_eq!("ipv6-icmp".parse::<IpProto>(), Ok(IpProto(58)));
        assert_eq!("ipencap".parse::<IpProto>(), Ok(IpProto(4)));
        assert_eq!("TCP".parse::<IpProto>(), Ok(IpProto(6)));
        assert_eq!(
            "tcpp".parse::<IpProto>(),
            Err("unknown protocol \"tcpp\"".to_string())
        );
        assert!("256".parse::<IpProto>().is_err());
        assert!("".parse::<IpProto>().is_err());
    }

    /// RFC 1858: after a first fragment of 8 TCP header bytes, the fragment at offset 8 starts
    /// with TCP header byte 8, so byte 5 of it is header byte 13, the flags (here 0x12 SYN+ACK).
    #[test]
    fn a_later_fragment_at_offset_8_carries_the_tcp_flags() {
        let d = [0, 0, 0, 1, 0x50, 0x12, 0xff, 0xff];
        assert_eq!(later_fragment_tcp_flags(proto::TCP, 8, &d), 0x12);
        assert_eq!(later_fragment_tcp_flags(proto::TCP, 16, &d), 0);
        assert_eq!(later_fragment_tcp_flags(proto::UDP, 8, &d), 0);
        assert_eq!(later_fragment_tcp_flags(proto::TCP, 8, &d[..5]), 0);
    }

    /// A transport header cut after the ports keeps them only on a first fragment.
    #[test]
    fn a_tiny_first_fragment_keeps_its_ports() {
        let p = Packet {
            ts_ns: 0,
            clock: 0,
            wire_len: 0,
            payload_len: 4,
            vlan: NO_VLAN,
            proto: proto::TCP,
            tcp_flags: 0,
            src: Addr::v4([10, 0, 0, 1]),
            dst: Addr::v4([10, 0, 0, 2]),
            sport: 0,
            dport: 0,
            frag: Frag::First { id: 7, len: 4 },
            quote_at: 0,
            payload_at: 0,
            note: Note::None,
        };
        // 0x1f90 = 8080, 0x0035 = 53
        let q = tiny_first_fragment(p, &[0x1f, 0x90, 0x00, 0x35], true).unwrap();
        assert_eq!((q.sport, q.dport), (8080, 53));
        assert_eq!(
            tiny_first_fragment(p, &[0x1f, 0x90, 0x00, 0x35], false).err(),
            Some(Skip::TruncatedTransportHeader)
        );
        assert_eq!(
            tiny_first_fragment(p, &[0x1f, 0x90, 0x00], true).err(),
            Some(Skip::TruncatedTransportHeader)
        );
    }
}
