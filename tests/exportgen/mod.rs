//! Hand-built NetFlow v9 and IPFIX export messages (RFC 3954, RFC 7011), byte by byte, for
//! tests whose expected values come from what the test itself put in.
#![allow(dead_code)]

use std::net::Ipv4Addr;

/// One flow record of the test template.
#[derive(Clone, Copy)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub flags: u8,
    pub packets: u64,
    pub bytes: u64,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// The template's (information element, length) pairs; a sampling interval (34) when asked.
pub fn fields(sampling: bool) -> Vec<(u16, u16)> {
    let mut f = vec![
        (8, 4),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (6, 1),
        (2, 8),
        (1, 8),
        (152, 8),
        (153, 8),
    ];
    if sampling {
        f.push((34, 4));
    }
    f
}

pub fn record(f: &Flow, sampling: Option<u32>) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend(f.src.octets());
    r.extend(f.dst.octets());
    r.extend(f.sport.to_be_bytes());
    r.extend(f.dport.to_be_bytes());
    r.push(f.proto);
    r.push(f.flags);
    r.extend(f.packets.to_be_bytes());
    r.extend(f.bytes.to_be_bytes());
    r.extend(f.start_ms.to_be_bytes());
    r.extend(f.end_ms.to_be_bytes());
    if let Some(s) = sampling {
        r.extend(s.to_be_bytes());
    }
    r
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let mut s = Vec::new();
    s.extend(id.to_be_bytes());
    s.extend(((body.len() + 4) as u16).to_be_bytes());
    s.extend(body);
    s
}

fn template_body(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(id.to_be_bytes());
    b.extend((fields.len() as u16).to_be_bytes());
    for (ie, len) in fields {
        b.extend(ie.to_be_bytes());
        b.extend(len.to_be_bytes());
    }
    b
}

/// IPFIX template set (set id 2).
pub fn ipfix_template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    set(2, &template_body(id, fields))
}

/// IPFIX template withdrawal: the template id with a field count of 0.
pub fn ipfix_withdrawal(id: u16) -> Vec<u8> {
    set(2, &template_body(id, &[]))
}

pub fn data_set(id: u16, records: &[Vec<u8>]) -> Vec<u8> {
    set(id, &records.concat())
}

pub fn ipfix_message(domain: u32, seq: u32, export_secs: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body = sets.concat();
    let mut m = Vec::new();
    m.extend(10u16.to_be_bytes());
    m.extend(((body.len() + 16) as u16).to_be_bytes());
    m.extend(export_secs.to_be_bytes());
    m.extend(seq.to_be_bytes());
    m.extend(domain.to_be_bytes());
    m.extend(body);
    m
}

/// NetFlow v9 template flowset (flowset id 0).
pub fn v9_template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    set(0, &template_body(id, fields))
}

pub fn v9_message(source_id: u32, seq: u32, unix_secs: u32, flowsets: &[Vec<u8>]) -> Vec<u8> {
    let body = flowsets.concat();
    let mut m = Vec::new();
    m.extend(9u16.to_be_bytes());
    m.extend((flowsets.len() as u16).to_be_bytes());
    m.extend(1_000_000u32.to_be_bytes()); // sysUptime, ms
    m.extend(unix_secs.to_be_bytes());
    m.extend(seq.to_be_bytes());
    m.extend(source_id.to_be_bytes());
    m.extend(body);
    m
}

/// An IPv4/UDP packet (raw IP, link type 101) from `src` to the collector.
pub fn udp_packet(src: Ipv4Addr, sport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0x45, 0];
    p.extend((total as u16).to_be_bytes());
    p.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend(src.octets());
    p.extend([192, 0, 2, 250]);
    p.extend(sport.to_be_bytes());
    p.extend(2055u16.to_be_bytes());
    p.extend(((8 + payload.len()) as u16).to_be_bytes());
    p.extend([0, 0]);
    p.extend(payload);
    p
}
