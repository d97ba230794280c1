//! Link layers and the shims between them and IP: each function returns the bytes of the IP
//! packet a frame carries, or the reason it carries none.

use super::{be16, link, Ctx, Skip, NO_VLAN};

/// Ethertypes (and PPP protocol numbers) the walk knows.
mod et {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD1: u16 = 0x9100;
    pub const QINQ_OLD2: u16 = 0x9200;
    pub const QINQ_OLD3: u16 = 0x9300;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const MACSEC: u16 = 0x88e5;
    /// IEEE 802.1ah provider backbone bridging: a 4-byte I-TAG, then the customer's MAC
    /// addresses and ethertype.
    pub const PBB_ITAG: u16 = 0x88e7;
    /// Cisco VN-Tag: 4 bytes of tag, then the next ethertype.
    pub const VNTAG: u16 = 0x8926;
    /// IEEE 802.1BR E-Tag: 6 bytes of tag, then the next ethertype.
    pub const ETAG: u16 = 0x893f;
    /// Cisco FabricPath (DCE): 2 bytes of FTag/TTL, then the classical Ethernet frame.
    pub const FABRICPATH: u16 = 0x8903;
    /// Cisco SLARP keepalives and CDP (on Cisco HDLC links).
    pub const SLARP: u16 = 0x8035;
    pub const CDP: u16 = 0x2000;
}

/// Common names of link types we do not decode, for the skip reason.
pub fn link_name(l: u16) -> Option<&'static str> {
    Some(match l {
        3 => "AX.25",
        6 => "IEEE 802.5 Token Ring",
        7 => "ARCNET",
        8 => "SLIP",
        10 => "FDDI",
        138 => "Apple IP over IEEE 1394",
        139..=142 => "SS7 MTP2/MTP3/SCCP",
        143 => "DOCSIS",
        147..=162 => "user-defined (DLT_USER)",
        165 => "SIGTRAN M2PA",
        187 | 201 => "Bluetooth HCI H4",
        189 | 220 => "Linux USB",
        195 | 215 | 230 | 283 => "IEEE 802.15.4",
        247 => "Netlink",
        249 => "USBPcap",
        251 | 256 => "Bluetooth LE link layer",
        252 => "Wireshark upper PDU",
        253 => "OpenFlow",
        254 => "SDLC",
        264 => "ISO 14443 (NFC)",
        265 => "RDS",
        266 => "USB Darwin",
        272 => "Nordic BLE",
        274 => "Ethernet mPackets (802.3br)",
        277 => "Linux SocketCAN (CAN FD)",
        279 => "Linux vsock",
        281 => "DSA tag (Broadcom)",
        _ => return None,
    })
}

impl Ctx {
    /// The IP packet inside a frame of `link_type`.
    pub(super) fn link<'a>(&mut self, link_type: u16, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        match link_type {
            link::ETHERNET => self.ethernet(d),
            link::RAW | link::RAW_ALT1 | link::RAW_ALT2 | link::IPV4 | link::IPV6 => Ok(d),
            link::NULL | link::LOOP => bsd_null(d),
            link::LINUX_SLL => {
                let h = d.get(..16).ok_or(Skip::TruncatedLinkHeader)?;
                self.ethertype(be16(h, 14), &d[16..])
            }
            link::LINUX_SLL2 => {
                let h = d.get(..20).ok_or(Skip::TruncatedLinkHeader)?;
                self.ethertype(be16(h, 0), &d[20..])
            }
            link::NFLOG => nflog(d),
            link::PPP => self.ppp(d),
            link::PPP_HDLC => self.ppp_serial(d),
            link::PPP_ETHER => self.pppoe_session(d),
            link::PPP_WITH_DIR => self.ppp(d.get(1..).ok_or(Skip::TruncatedLinkHeader)?),
            link::C_HDLC => self.cisco_hdlc(d),
            link::C_HDLC_WITH_DIR => self.cisco_hdlc(d.get(1..).ok_or(Skip::TruncatedLinkHeader)?),
            link::FRELAY => self.frame_relay(d),
            link::FRELAY_WITH_DIR => self.frame_relay(d.get(1..).ok_or(Skip::TruncatedLinkHeader)?),
            link::ATM_RFC1483 => self.llc(d),
            link::MPLS => self.ethertype(et::MPLS, d),
            link::IPNET => ipnet(d),
            link::IPOIB => {
                // RFC 4391: a 2-byte ethertype and 2 reserved bytes.
                let h = d.get(..4).ok_or(Skip::TruncatedLinkHeader)?;
                self.ethertype(be16(h, 0), &d[4..])
            }
            link::NETANALYZER => self.ethernet(d.get(4..).ok_or(Skip::TruncatedLinkHeader)?),
            link::NETANALYZER_TRANSPARENT => {
                // 4-byte header, then preamble and start-of-frame delimiter.
                self.ethernet(d.get(12..).ok_or(Skip::TruncatedLinkHeader)?)
            }
            link::IEEE802_11 => self.wlan(d),
            link::RADIOTAP | link::PPI | link::PRISM | link::AVS => {
                self.wlan_with_header(link_type, d)
            }
            other => Err(Skip::UnsupportedLinkType(other)),
        }
    }

    pub(super) fn ethernet<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        if d.len() < 14 {
            return Err(Skip::TruncatedLinkHeader);
        }
        self.ethertype(be16(d, 12), &d[14..])
    }

    /// Follows an ethertype through any number of VLAN tags and shims (PBB, VN-Tag, E-Tag,
    /// FabricPath, PPPoE, LLC/SNAP) to IP, or an MPLS label stack.
    pub(super) fn ethertype<'a>(&mut self, mut et: u16, mut d: &'a [u8]) -> Result<&'a [u8], Skip> {
        // Each step consumes at least 4 bytes, so the loop ends with the frame.
        loop {
            let (skip, next_at) = match et {
                et::IPV4 | et::IPV6 => return Ok(d),
                et::VLAN | et::QINQ | et::QINQ_OLD1 | et::QINQ_OLD2 | et::QINQ_OLD3 => {
                    let h = d.get(..4).ok_or(Skip::TruncatedLinkHeader)?;
                    // Only the outermost tag identifies the segment the firewall sees.
                    if self.vlan == NO_VLAN && self.depth == 0 {
                        self.vlan = be16(h, 0) & 0x0fff;
                    }
                    (4, 2)
                }
                et::MPLS | et::MPLS_MC => return mpls(d),
                et::PPPOE_SESSION => return self.pppoe_session(d),
                et::PPPOE_DISCOVERY => return Err(Skip::PppoeDiscovery),
                et::MACSEC => return Err(Skip::Macsec),
                et::PBB_ITAG => (18, 16),
                et::VNTAG => (6, 4),
                et::ETAG => (8, 6),
                et::FABRICPATH => (16, 14),
                len if len <= 1500 => return self.llc(d),
                _ => return Err(Skip::NotIp),
            };
            let h = d.get(..skip).ok_or(Skip::TruncatedLinkHeader)?;
            et = be16(h, next_at);
            d = &d[skip..];
        }
    }

    /// IEEE 802.2 LLC: SNAP (AA-AA-03, OUI, ethertype) leads back to the ethertype walk; the
    /// rest (STP, NetBIOS, IPX, ...) carries no IP.
    pub(super) fn llc<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        match d {
            // SNAP with an ethertype (OUI 00-00-00, or 00-00-F8 for 802.1H bridge tunnels).
            [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00 | 0xf8, a, b, ..] => {
                self.ethertype(u16::from_be_bytes([*a, *b]), &d[8..])
            }
            [0xaa, 0xaa, 0x03, ..] if d.len() < 8 => Err(Skip::TruncatedLinkHeader),
            // LLC SAP 0x06: IP directly (RFC 1042 allows it, rarely seen).
            [0x06, 0x06, 0x03, rest @ ..] => Ok(rest),
            _ => Err(Skip::NotIp),
        }
    }

    /// PPP (link type 9): optional HDLC address/control bytes, then a 1- or 2-byte protocol.
    pub(super) fn ppp<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        let d = match d {
            [0xff, 0x03, rest @ ..] => rest,
            _ => d,
        };
        // Protocol-field compression: an odd first byte is a 1-byte protocol.
        match d {
            [p, rest @ ..] if p & 1 == 1 => self.ppp_protocol(*p as u16, rest),
            [a, b, rest @ ..] => self.ppp_protocol(u16::from_be_bytes([*a, *b]), rest),
            _ => Err(Skip::TruncatedLinkHeader),
        }
    }

    /// Link type 50: PPP in HDLC-like framing, or Cisco HDLC (address 0x0F or 0x8F).
    fn ppp_serial<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        match d.first() {
            Some(0x0f | 0x8f) => self.cisco_hdlc(d),
            Some(_) => self.ppp(d),
            None => Err(Skip::TruncatedLinkHeader),
        }
    }

    /// A PPP protocol number and the bytes after it.
    pub(super) fn ppp_protocol<'a>(&mut self, p: u16, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        match p {
            0x0021 | 0x0057 => Ok(d),
            0x0281 | 0x0283 => mpls(d),
            _ => Err(Skip::PppNotIp),
        }
    }

    /// A PPPoE session header (version/type, code, session id, length), then PPP.
    fn pppoe_session<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        let h = d.get(..8).ok_or(Skip::TruncatedLinkHeader)?;
        if h[1] != 0 {
            return Err(Skip::PppoeDiscovery); // code 0 is session data; others are discovery
        }
        self.ppp_protocol(be16(h, 6), &d[8..])
    }

    /// Cisco HDLC: address, control, then an ethertype.
    fn cisco_hdlc<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        let h = d.get(..4).ok_or(Skip::TruncatedLinkHeader)?;
        match be16(h, 2) {
            et::SLARP | et::CDP => Err(Skip::HdlcNotIp),
            e => self.ethertype(e, &d[4..]),
        }
    }

    /// Frame Relay: a Q.922 address (2 to 4 bytes, ending with the EA bit), then either RFC 2427
    /// (UI control 0x03, optional pad, NLPID) or Cisco's encapsulation (an ethertype).
    fn frame_relay<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        let addr_len = d
            .iter()
            .take(4)
            .position(|b| b & 1 == 1)
            .map(|i| i + 1)
            .ok_or(Skip::TruncatedLinkHeader)?;
        let rest = &d[addr_len..];
        match rest {
            [0x03, 0x00, nlpid, tail @ ..] | [0x03, nlpid, tail @ ..] if *nlpid != 0 => {
                match nlpid {
                    0xcc | 0x8e => Ok(tail),
                    // SNAP: OUI then an ethertype (routed); other OUIs are bridged frames.
                    0x80 => match tail {
                        [0, 0, 0, a, b, ip @ ..] => {
                            self.ethertype(u16::from_be_bytes([*a, *b]), ip)
                        }
                        _ if tail.len() < 5 => Err(Skip::TruncatedLinkHeader),
                        _ => Err(Skip::FrameRelayNotIp),
                    },
                    _ => Err(Skip::FrameRelayNotIp),
                }
            }
            [0x03, ..] => Err(Skip::TruncatedLinkHeader),
            [a, b, tail @ ..] => match u16::from_be_bytes([*a, *b]) {
                e @ (et::IPV4 | et::IPV6) => self.ethertype(e, tail),
                _ => Err(Skip::FrameRelayNotIp),
            },
            _ => Err(Skip::TruncatedLinkHeader),
        }
    }
}

/// An MPLS label stack, then IPv4 or IPv6 (told apart by the version nibble, as routers do).
fn mpls(mut d: &[u8]) -> Result<&[u8], Skip> {
    loop {
        let h = d.get(..4).ok_or(Skip::TruncatedLinkHeader)?;
        let bottom = h[2] & 0x01 != 0;
        d = &d[4..];
        if bottom {
            break;
        }
    }
    match d.first().map(|b| b >> 4) {
        Some(4) | Some(6) => Ok(d),
        _ => Err(Skip::MplsNotIp),
    }
}

/// BSD loopback: a 4-byte address family in the writer's byte order (NULL) or network order
/// (LOOP); accept either. AF_INET is 2 everywhere; AF_INET6 is 10, 24, 28 or 30 by OS.
fn bsd_null(d: &[u8]) -> Result<&[u8], Skip> {
    let h = d.get(..4).ok_or(Skip::TruncatedLinkHeader)?;
    let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let be = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let is_ip = |af: u32| matches!(af, 2 | 10 | 24 | 28 | 30);
    if !is_ip(le) && !is_ip(be) {
        return Err(Skip::NotIp);
    }
    Ok(&d[4..])
}

/// Solaris ipnet: a 24-byte header whose second byte is the address family (2 IPv4, 26 IPv6).
fn ipnet(d: &[u8]) -> Result<&[u8], Skip> {
    let h = d.get(..24).ok_or(Skip::TruncatedLinkHeader)?;
    match h[1] {
        2 | 26 => Ok(&d[24..]),
        _ => Err(Skip::NotIp),
    }
}

/// Unwraps NFLOG's TLVs to the packet payload (attribute 9).
fn nflog(d: &[u8]) -> Result<&[u8], Skip> {
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
                2 | 10 => Ok(payload),
                _ => Err(Skip::NotIp),
            };
        }
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    Err(Skip::NotIp)
}
