//! IEEE 802.11: unprotected data frames to LLC/SNAP to IP, bare (link type 105) or behind the
//! radio headers capture tools put in front (radiotap 127, PPI 192, Prism 119, AVS 163).

use super::{link, Ctx, Skip};

impl Ctx {
    /// Strips a radio header of `link_type`, then reads the 802.11 frame behind it.
    pub(super) fn wlan_with_header<'a>(
        &mut self,
        link_type: u16,
        d: &'a [u8],
    ) -> Result<&'a [u8], Skip> {
        let short = Skip::TruncatedLinkHeader;
        let le16 = |i: usize| {
            d.get(i..i + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
        };
        let len = match link_type {
            // Radiotap: version, pad, little-endian header length.
            link::RADIOTAP => le16(2).ok_or(short)?,
            // PPI: version, flags, little-endian length, then the DLT of what follows.
            link::PPI => {
                let dlt = d.get(4..8).ok_or(short)?;
                let dlt = u32::from_le_bytes([dlt[0], dlt[1], dlt[2], dlt[3]]);
                let len = le16(2).ok_or(short)?;
                let rest = d.get(len..).ok_or(short)?;
                return match dlt {
                    105 => self.wlan(rest),
                    1 => self.ethernet(rest),
                    other => Err(Skip::UnsupportedLinkType(other.min(0xffff) as u16)),
                };
            }
            // Prism: message code, then the header length in the writer's byte order.
            link::PRISM => {
                let b = d.get(4..8).ok_or(short)?;
                let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let be = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                le.min(be) as usize
            }
            // AVS: version word, then the big-endian header length.
            _ => {
                let b = d.get(4..8).ok_or(short)?;
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
            }
        };
        self.wlan(d.get(len..).ok_or(short)?)
    }

    /// An 802.11 MAC frame: only data frames with a body and without the Protected bit carry
    /// readable IP (after LLC/SNAP).
    pub(super) fn wlan<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Skip> {
        let h = d.get(..24).ok_or(Skip::TruncatedLinkHeader)?;
        let (fc0, fc1) = (h[0], h[1]);
        let kind = (fc0 >> 2) & 0x03;
        let subtype = fc0 >> 4;
        // Version 0, type data, and a subtype with a body (bit 2 marks "no data").
        if fc0 & 0x03 != 0 || kind != 2 || subtype & 0x04 != 0 {
            return Err(Skip::WlanNotData);
        }
        if fc1 & 0x40 != 0 {
            return Err(Skip::WlanProtected);
        }
        let qos = subtype & 0x08 != 0;
        let mut len = 24;
        if fc1 & 0x03 == 0x03 {
            len += 6; // fourth address (to and from the distribution system)
        }
        let mut amsdu = false;
        if qos {
            let q = d.get(len..len + 2).ok_or(Skip::TruncatedLinkHeader)?;
            amsdu = q[0] & 0x80 != 0;
            len += 2;
            if fc1 & 0x80 != 0 {
                len += 4; // HT control
            }
        }
        if amsdu {
            // An A-MSDU: read the first subframe (destination, source, length, then LLC).
            len += 14;
        }
        self.llc(d.get(len..).ok_or(Skip::TruncatedLinkHeader)?)
    }
}
