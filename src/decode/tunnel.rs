//! Tunnels and mirror transports.
//!
//! Mirror transports (ERSPAN I/II/III, Aruba GRE, TZSP) carry copies of frames from a switch or
//! access point to a collector: the traffic of interest is always inside, so they are unwrapped
//! whatever `--decap` says, and the outer flow between switch and collector is not kept.
//! Tunnels (GRE, VXLAN, IP-in-IP) carry real traffic between two endpoints, which is what a
//! firewall between them sees: they are unwrapped only with `--decap`, and a payload that cannot
//! be decoded leaves the packet in its outer flow.

use super::{be16, Addr, Ctx, Packet, Skip};

const VXLAN_PORT: u16 = 4789;
const TZSP_PORT: u16 = 37008;

/// A mirror transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mirror {
    /// GRE 0x88BE without a sequence number: the frame follows the GRE header.
    ErspanI,
    /// GRE 0x88BE with a sequence number: an 8-byte ERSPAN header, then the frame.
    ErspanII,
    /// GRE 0x22EB: a 12-byte header (20 with the platform subheader), then a frame or IP packet.
    ErspanIII,
    /// GRE 0x8200-0x8370 (steps of 0x10) and 0x9000: 802.11 frames from Aruba access points
    /// (the protocol types Zeek registers for its 802.11 analyzer).
    ArubaGre,
    /// TaZmen Sniffer Protocol (UDP 37008), e.g. MikroTik's packet sniffer streaming.
    Tzsp,
}

impl Mirror {
    pub fn label(&self) -> &'static str {
        match self {
            Mirror::ErspanI => "ERSPAN type I",
            Mirror::ErspanII => "ERSPAN type II",
            Mirror::ErspanIII => "ERSPAN type III",
            Mirror::ArubaGre => "Aruba GRE",
            Mirror::Tzsp => "TZSP",
        }
    }
}

/// Where mirrored packets came from: the transport, the sending switch (outer source address)
/// and the ERSPAN session id (0 for the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MirrorSource {
    pub kind: Mirror,
    pub from: Addr,
    pub session: u16,
}

/// A parsed GRE header.
struct Gre<'a> {
    proto: u16,
    /// The sequence-number bit (tells ERSPAN type I from II).
    seq: bool,
    payload: &'a [u8],
}

/// Parses GRE version 0 (RFC 2784/2890) and version 1 (PPTP's enhanced GRE).
fn gre_header(d: &[u8]) -> Option<Gre<'_>> {
    let h = d.get(..4)?;
    let (flags, version) = (h[0], h[1] & 0x07);
    if flags & 0x40 != 0 {
        return None; // source routing (RFC 1701), obsolete
    }
    let seq = flags & 0x10 != 0;
    let mut len = 4;
    match version {
        0 => {
            len += 4 * ((flags & 0x80 != 0) as usize + (flags & 0x20 != 0) as usize);
        }
        // Payload length and call id, then the acknowledgment number when its bit is set.
        1 => len += 4 + 4 * (h[1] & 0x80 != 0) as usize,
        _ => return None,
    }
    len += 4 * seq as usize;
    Some(Gre {
        proto: be16(h, 2),
        seq,
        payload: d.get(len..)?,
    })
}

fn mirror_kind(g: &Gre) -> Option<Mirror> {
    Some(match g.proto {
        0x88be if g.seq => Mirror::ErspanII,
        0x88be => Mirror::ErspanI,
        0x22eb => Mirror::ErspanIII,
        0x8200..=0x8370 if g.proto & 0x0f == 0 => Mirror::ArubaGre,
        0x9000 => Mirror::ArubaGre,
        _ => return None,
    })
}

impl Ctx {
    /// A GRE packet `p` (already keyed on its outer header) with GRE bytes `d`.
    pub(super) fn gre(&mut self, p: Packet, d: &[u8]) -> Result<Packet, Skip> {
        let Some(g) = gre_header(d) else {
            return Ok(p); // not a GRE header we read: the outer flow, as without --decap
        };
        if let Some(kind) = mirror_kind(&g) {
            return self.gre_mirror(kind, p.src, g.payload);
        }
        if !self.opts.decap {
            return Ok(p);
        }
        self.decap(p, false, |cx| {
            let inner = match g.proto {
                // Transparent Ethernet bridging: an Ethernet frame follows.
                0x6558 => cx.ethernet(g.payload)?,
                0x880b => cx.ppp(g.payload)?,
                // WCCP: a 4-byte redirect header (version 2) before the IP packet.
                0x883e => match g.payload.first() {
                    Some(b) if b >> 4 == 4 => g.payload,
                    _ => g.payload.get(4..).ok_or(Skip::TruncatedLinkHeader)?,
                },
                et => cx.ethertype(et, g.payload)?,
            };
            cx.ip(inner)
        })
    }

    fn gre_mirror(&mut self, kind: Mirror, from: Addr, d: &[u8]) -> Result<Packet, Skip> {
        let bad = Skip::MirrorNotDecoded(kind);
        let source = |session| MirrorSource {
            kind,
            from,
            session,
        };
        match kind {
            Mirror::ErspanI => self.mirrored(source(0), |cx| {
                let ip = cx.ethernet(d)?;
                cx.ip(ip)
            }),
            Mirror::ErspanII => {
                let h = d.get(..8).filter(|h| h[0] >> 4 == 1).ok_or(bad)?;
                let session = be16(h, 2) & 0x03ff;
                let vlan = be16(h, 0) & 0x0fff;
                self.mirrored(source(session), |cx| {
                    let ip = cx.ethernet(&d[8..])?;
                    cx.erspan_vlan(vlan);
                    cx.ip(ip)
                })
            }
            Mirror::ErspanIII => {
                let h = d.get(..12).filter(|h| h[0] >> 4 == 2).ok_or(bad)?;
                let session = be16(h, 2) & 0x03ff;
                let vlan = be16(h, 0) & 0x0fff;
                let frame_type = (h[10] >> 2) & 0x1f;
                let len = if h[11] & 0x01 != 0 { 20 } else { 12 };
                let rest = d.get(len..).ok_or(bad)?;
                self.mirrored(source(session), |cx| {
                    let ip = match frame_type {
                        0 => cx.ethernet(rest)?,
                        2 => rest,
                        _ => return Err(bad),
                    };
                    cx.erspan_vlan(vlan);
                    cx.ip(ip)
                })
            }
            Mirror::ArubaGre | Mirror::Tzsp => self.mirrored(source(0), |cx| {
                let ip = cx.wlan(d)?;
                cx.ip(ip)
            }),
        }
    }

    /// ERSPAN carries the mirrored frame's VLAN in its header when the switch removed the tag.
    fn erspan_vlan(&mut self, vlan: u16) {
        if self.vlan == super::NO_VLAN && vlan != 0 {
            self.vlan = vlan;
        }
    }

    /// A UDP packet `p` with UDP payload `d`: TZSP is always unwrapped, VXLAN with `--decap`.
    pub(super) fn udp_tunnel(&mut self, p: Packet, d: &[u8]) -> Result<Packet, Skip> {
        if p.dport == TZSP_PORT {
            return self.tzsp(p.src, d);
        }
        if self.opts.decap && p.dport == VXLAN_PORT && d.len() >= 8 && d[0] & 0x08 != 0 {
            return self.decap(p, true, |cx| {
                let ip = cx.ethernet(&d[8..])?;
                cx.ip(ip)
            });
        }
        Ok(p)
    }

    /// TZSP: version 1, type (0 received, 1 transmitted), encapsulation, tagged fields ending
    /// with tag 1, then the frame (Ethernet or 802.11).
    fn tzsp(&mut self, from: Addr, d: &[u8]) -> Result<Packet, Skip> {
        let bad = Skip::MirrorNotDecoded(Mirror::Tzsp);
        let h = d.get(..4).filter(|h| h[0] == 1 && h[1] <= 1).ok_or(bad)?;
        let encap = be16(h, 2);
        let mut rest = &d[4..];
        loop {
            match rest {
                [0, tail @ ..] => rest = tail, // padding
                [1, tail @ ..] => {
                    rest = tail; // end of the tagged fields
                    break;
                }
                [_, len, tail @ ..] => rest = tail.get(*len as usize..).ok_or(bad)?,
                _ => return Err(bad),
            }
        }
        let source = MirrorSource {
            kind: Mirror::Tzsp,
            from,
            session: 0,
        };
        self.mirrored(source, |cx| {
            let ip = match encap {
                1 => cx.ethernet(rest)?,
                18 => cx.wlan(rest)?,
                _ => return Err(bad),
            };
            cx.ip(ip)
        })
    }
}
