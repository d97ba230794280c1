//! Server names seen on the wire: DNS answers (A/AAAA) and the TLS ClientHello's server name
//! (SNI). The audit matches them against catalog rules whose far end is a DNS name pattern.
//!
//! Everything here reads attacker-controlled bytes: every length is checked, name compression is
//! bounded, and names are reduced to printable ASCII before they go anywhere.

use crate::decode::Addr;

/// Longest DNS name we keep (RFC 1035 allows 255).
const MAX_NAME: usize = 255;
/// Compression pointers followed per name before giving up (a loop guard).
const MAX_JUMPS: usize = 16;

/// (address, name) pairs from a DNS response: every A/AAAA answer is bound to its owner name
/// and to the question name (which a CNAME chain may have led from).
pub fn dns_answers(msg: &[u8]) -> Vec<(Addr, String)> {
    let mut out = Vec::new();
    if msg.len() < 12 || msg[2] & 0x80 == 0 {
        return out; // not a response
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]) as usize;
    let an = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let mut at = 12;
    let mut qname = None;
    for _ in 0..qd.min(4) {
        let Some((name, next)) = read_name(msg, at) else {
            return out;
        };
        qname.get_or_insert(name);
        at = next + 4;
    }
    for _ in 0..an.min(64) {
        let Some((owner, next)) = read_name(msg, at) else {
            break;
        };
        if next + 10 > msg.len() {
            break;
        }
        let rtype = u16::from_be_bytes([msg[next], msg[next + 1]]);
        let class = u16::from_be_bytes([msg[next + 2], msg[next + 3]]);
        let rdlen = u16::from_be_bytes([msg[next + 8], msg[next + 9]]) as usize;
        let rdata = next + 10;
        if rdata + rdlen > msg.len() {
            break;
        }
        let addr = match (rtype, class, rdlen) {
            (1, 1, 4) => Some(Addr::v4(msg[rdata..rdata + 4].try_into().expect("4 bytes"))),
            (28, 1, 16) => Some(Addr::v6(
                msg[rdata..rdata + 16].try_into().expect("16 bytes"),
            )),
            _ => None,
        };
        if let Some(a) = addr {
            if let Some(q) = &qname {
                if *q != owner {
                    out.push((a, q.clone()));
                }
            }
            out.push((a, owner));
        }
        at = rdata + rdlen;
    }
    out
}

/// Reads a possibly compressed name at `at`; returns it and the offset after it.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(at)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Some((name, end.unwrap_or(at + 1)));
            }
            0x00 => {
                let label = msg.get(at + 1..at + 1 + len)?;
                if !name.is_empty() {
                    name.push('.');
                }
                push_printable(&mut name, label);
                if name.len() > MAX_NAME {
                    return None;
                }
                at += 1 + len;
            }
            0xc0 => {
                let ptr = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
                end.get_or_insert(at + 2);
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return None;
                }
                at = ptr;
            }
            _ => return None,
        }
    }
}

/// Appends bytes as lowercase printable ASCII; anything else becomes `\xNN`.
fn push_printable(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(b.to_ascii_lowercase() as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
}

/// The server name of a TLS ClientHello at the start of `p`, if there is one.
pub fn tls_sni(p: &[u8]) -> Option<String> {
    // Record: type 22 (handshake), version, length; handshake type 1 (ClientHello).
    if p.len() < 9 || p[0] != 22 || p[1] != 3 || p[5] != 1 {
        return None;
    }
    let mut at = 9 + 2 + 32; // handshake header, client version, random
    let sid = *p.get(at)? as usize;
    at += 1 + sid;
    let suites = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]) as usize;
    at += 2 + suites;
    let comp = *p.get(at)? as usize;
    at += 1 + comp;
    let ext_total = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]) as usize;
    at += 2;
    let end = (at + ext_total).min(p.len());
    while at + 4 <= end {
        let typ = u16::from_be_bytes([p[at], p[at + 1]]);
        let len = u16::from_be_bytes([p[at + 2], p[at + 3]]) as usize;
        let body = p.get(at + 4..at + 4 + len)?;
        if typ == 0 {
            // server_name list: total(2), then entries type(1) len(2) name.
            if body.len() >= 5 && body[2] == 0 {
                let n = u16::from_be_bytes([body[3], body[4]]) as usize;
                let name = body.get(5..5 + n.min(MAX_NAME))?;
                let mut s = String::new();
                push_printable(&mut s, name);
                return Some(s);
            }
            return None;
        }
        at += 4 + len;
    }
    None
}
