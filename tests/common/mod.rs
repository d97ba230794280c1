//! Shared helpers for the integration tests: capture files built in memory, runs of the engine
//! over them, expected rows, and builders for the link layers and IP features the crate's own
//! `synth` module does not build (SLL, SLL2, BSD null, NFLOG, MPLS, QinQ, IPv6 extension headers,
//! IPv4/IPv6 fragments, ICMP errors, GRE).
#![allow(dead_code)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use flowaudit::capture::writer::{PcapWriter, PcapngWriter};
use flowaudit::capture::ReadError;
use flowaudit::decode::{proto, tcp_flags};
use flowaudit::engine::run::{run_files, RunOptions, RunOutput};
use flowaudit::engine::{EngineConfig, Stats};
use flowaudit::report::flows::FlowRow;
use flowaudit::synth::{ethernet, ip_packet, Frame};
use tempfile::NamedTempFile;

pub use flowaudit::decode::link;

// ---------------------------------------------------------------------------------------------
// Time

/// 2023-11-14T22:13:20Z in nanoseconds: the base of every hand-made capture.
pub const T0: i64 = 1_700_000_000 * 1_000_000_000;
pub const MS: i64 = 1_000_000;
pub const SEC: i64 = 1_000_000_000;

/// `T0 + n` milliseconds.
pub fn at_ms(n: i64) -> i64 {
    T0 + n * MS
}

/// The report's time format, written independently of the crate: "seconds.nanoseconds".
pub fn ts(ns: i64) -> String {
    format!("{}.{:09}", ns.div_euclid(SEC), ns.rem_euclid(SEC))
}

/// A report time (ISO 8601, UTC, milliseconds) within the first second after [`T0`], which
/// `date -u -d @1700000000` shows as 2023-11-14T22:13:20.
pub fn iso_t0(ns: i64) -> String {
    let ms = (ns - T0) / MS;
    assert!((0..1000).contains(&ms), "{ns}: not within a second of T0");
    format!("2023-11-14T22:13:20.{ms:03}Z")
}

/// Rewrites a report CSV of schema 3 as schema 2 wrote it: every ISO time of 2026-01-01 (the
/// day the demo and the diff captures start, `date -u -d 2026-01-01 +%s` = 1767225600) becomes
/// epoch seconds with nine decimals. Panics on an ISO time of another day.
pub fn iso_to_epoch_seconds(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let cell = |c: &str| -> String {
        let Some(rest) = c.strip_prefix("2026-01-01T") else {
            assert!(!c.ends_with('Z') || !c.contains('T'), "{c}: not 2026-01-01");
            return c.to_string();
        };
        // HH:MM:SS.mmmZ
        let n = |r: std::ops::Range<usize>| rest[r].parse::<i64>().unwrap();
        let secs = 1_767_225_600 + n(0..2) * 3600 + n(3..5) * 60 + n(6..8);
        format!("{secs}.{}000000", &rest[9..12])
    };
    let out: Vec<String> = text
        .lines()
        .map(|l| l.split(',').map(cell).collect::<Vec<_>>().join(","))
        .collect();
    std::fs::write(path, out.join("\n") + "\n").unwrap();
}

/// A small capture: a full TCP connection (8 packets: 54, 54, 54, 154 bytes from the client
/// side, the server's 254-byte answer, FINs and the last ACK) and a UDP exchange (72 bytes out,
/// 92 back), in this order in time.
pub fn sample_recs() -> Vec<Rec> {
    let (c, s) = ("10.0.0.9", "10.0.0.2");
    vec![
        rec(at_ms(0), tcp4(c, 50000, s, 443, SYN, 0)),
        rec(at_ms(1), tcp4(s, 443, c, 50000, SA, 0)),
        rec(at_ms(2), tcp4(c, 50000, s, 443, ACK, 0)),
        rec(at_ms(3), tcp4(c, 50000, s, 443, PA, 100)),
        rec(at_ms(4), udp4(c, 40000, s, 53, 30)),
        rec(at_ms(5), udp4(s, 53, c, 40000, 50)),
        rec(at_ms(6), tcp4(s, 443, c, 50000, PA, 200)),
        rec(at_ms(7), tcp4(c, 50000, s, 443, FA, 0)),
        rec(at_ms(8), tcp4(s, 443, c, 50000, FA, 0)),
        rec(at_ms(9), tcp4(c, 50000, s, 443, ACK, 0)),
    ]
}

/// Rewrites a schema 4 services.csv as schema 3 wrote it: `last_seen` (ISO 8601) in place of
/// `duration`, worked out by hand for the demo's times (all on 2026-01-01, CSV without quotes).
pub fn duration_to_last_seen(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (first, dur) = (col("first_seen"), col("duration"));
    let mut out = vec![header.join(",").replacen(",duration,", ",last_seen,", 1)];
    for l in lines {
        let mut cells: Vec<String> = l.split(',').map(String::from).collect();
        let t = cells[first]
            .strip_prefix("2026-01-01T")
            .expect("a demo time");
        let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
        let start_ms = ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12);
        let (s, ms) = cells[dur].split_once('.').unwrap();
        let end = start_ms + s.parse::<i64>().unwrap() * 1000 + ms.parse::<i64>().unwrap();
        cells[dur] = format!(
            "2026-01-01T{:02}:{:02}:{:02}.{:03}Z",
            end / 3_600_000,
            end / 60_000 % 60,
            end / 1000 % 60,
            end % 1000
        );
        out.push(cells.join(","));
    }
    std::fs::write(path, out.join("\n") + "\n").unwrap();
}

// ---------------------------------------------------------------------------------------------
// Addresses and TCP flags

pub fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().expect("IPv4 literal"))
}

pub fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("IPv6 literal"))
}

pub const SYN: u8 = tcp_flags::SYN;
pub const ACK: u8 = tcp_flags::ACK;
pub const FIN: u8 = tcp_flags::FIN;
pub const RST: u8 = tcp_flags::RST;
pub const PSH: u8 = tcp_flags::PSH;
pub const SA: u8 = SYN | ACK;
pub const FA: u8 = FIN | ACK;
pub const PA: u8 = PSH | ACK;
pub const RA: u8 = RST | ACK;

/// Ethernet + IPv4 + TCP (no options): 14 + 20 + 20 = 54 bytes + payload.
pub fn tcp4(src: &str, sport: u16, dst: &str, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    Frame::tcp(v4(src), sport, v4(dst), dport, flags, payload).ethernet()
}

/// Ethernet + IPv4 + UDP: 14 + 20 + 8 = 42 bytes + payload.
pub fn udp4(src: &str, sport: u16, dst: &str, dport: u16, payload: usize) -> Vec<u8> {
    Frame::udp(v4(src), sport, v4(dst), dport, payload).ethernet()
}

// ---------------------------------------------------------------------------------------------
// Packets in a capture

/// One record: timestamp, captured bytes, and the length on the wire (>= captured bytes).
#[derive(Clone, Debug)]
pub struct Rec {
    pub ts: i64,
    pub data: Vec<u8>,
    pub orig_len: u32,
    /// pcapng interface id (ignored for pcap).
    pub iface: u32,
}

pub fn rec(ts: i64, data: Vec<u8>) -> Rec {
    let orig_len = data.len() as u32;
    Rec {
        ts,
        data,
        orig_len,
        iface: 0,
    }
}

pub fn rec_on(iface: u32, ts: i64, data: Vec<u8>) -> Rec {
    Rec {
        iface,
        ..rec(ts, data)
    }
}

/// Classic pcap bytes (little-endian; micro- or nanosecond timestamps).
pub fn pcap_bytes(link: u16, nanos: bool, recs: &[Rec]) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), link, nanos).expect("pcap header");
    for r in recs {
        w.write(r.ts, &r.data, r.orig_len).expect("pcap record");
    }
    w.into_inner()
}

/// pcapng bytes: one interface per entry of `links` (snaplen 262144), records on `Rec::iface`.
pub fn pcapng_bytes(links: &[u16], recs: &[Rec]) -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new()).expect("SHB");
    for &l in links {
        w.add_interface(l, 262_144).expect("IDB");
    }
    for r in recs {
        w.write(r.iface, r.ts, &r.data, r.orig_len).expect("EPB");
    }
    w.into_inner()
}

/// A temporary file with `bytes`, named `*.suffix`.
pub fn temp_file(bytes: &[u8], suffix: &str) -> NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("flowaudit-test-")
        .suffix(suffix)
        .tempfile()
        .expect("tempfile");
    f.write_all(bytes).expect("write tempfile");
    f.flush().expect("flush tempfile");
    f
}

pub fn write_pcap(link: u16, nanos: bool, recs: &[Rec]) -> NamedTempFile {
    temp_file(&pcap_bytes(link, nanos, recs), ".pcap")
}

pub fn write_pcapng(links: &[u16], recs: &[Rec]) -> NamedTempFile {
    temp_file(&pcapng_bytes(links, recs), ".pcapng")
}

// ---------------------------------------------------------------------------------------------
// Running the engine

/// Runs the engine over files; asserts that no reader reported damage.
pub fn run_paths(paths: &[PathBuf], cfg: EngineConfig, opts: &RunOptions) -> RunOutput {
    let out = run_files(paths, cfg, opts).expect("run_files");
    assert!(
        out.errors.is_empty(),
        "unexpected read errors: {:?}",
        out.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    out
}

/// Runs `path` twice, mapped into memory and read with read calls, asserts that both give the
/// same flows, counts and errors (or fail to open with the same message), and returns the
/// mapped run.
pub fn run_mapped_and_read(path: &Path, cfg: EngineConfig) -> Result<RunOutput, ReadError> {
    let run = |mmap| {
        run_files(
            &[path.to_path_buf()],
            cfg.clone(),
            &RunOptions {
                threads: 2,
                mmap,
                ..Default::default()
            },
        )
    };
    let name = path.display();
    let (mapped, read) = (run(true), run(false));
    let errs = |o: &RunOutput| o.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>();
    match (&mapped, &read) {
        (Ok(a), Ok(b)) => {
            assert!(
                a.flows.to_vec().unwrap() == b.flows.to_vec().unwrap(),
                "{name}: mapped and read give different flows"
            );
            assert_eq!(a.stats, b.stats, "{name}");
            assert_eq!(errs(a), errs(b), "{name}");
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{name}"),
        _ => panic!("{name}: mapped and read disagree on whether it opens"),
    }
    mapped
}

pub fn rows(out: &RunOutput) -> Vec<FlowRow> {
    out.flows
        .to_vec()
        .unwrap()
        .iter()
        .map(FlowRow::from_record)
        .collect()
}

/// Default config, 2 threads, small batches (so that batching is exercised too).
pub fn opts() -> RunOptions {
    RunOptions {
        threads: 2,
        batch_packets: 3,
        progress: false,
        mmap: true,
    }
}

/// Writes `recs` as a pcap of `link` and returns its flows and stats (default config).
pub fn flows_pcap(link: u16, recs: &[Rec]) -> (Vec<FlowRow>, Stats) {
    flows_pcap_cfg(link, recs, EngineConfig::default())
}

pub fn flows_pcap_cfg(link: u16, recs: &[Rec], cfg: EngineConfig) -> (Vec<FlowRow>, Stats) {
    let f = write_pcap(link, false, recs);
    let out = run_paths(&[f.path().to_path_buf()], cfg, &opts());
    (rows(&out), out.stats)
}

/// Ethernet pcap with nanosecond timestamps (so any `ts` survives exactly).
pub fn flows_eth(recs: &[Rec]) -> (Vec<FlowRow>, Stats) {
    flows_eth_cfg(recs, EngineConfig::default())
}

pub fn flows_eth_cfg(recs: &[Rec], cfg: EngineConfig) -> (Vec<FlowRow>, Stats) {
    let f = write_pcap(link::ETHERNET, true, recs);
    let out = run_paths(&[f.path().to_path_buf()], cfg, &opts());
    (rows(&out), out.stats)
}

// ---------------------------------------------------------------------------------------------
// Expected rows

/// The side of a flow: (packets, bytes).
pub type Side = (u64, u64);

/// An expected flow row: untagged, not ICMP-refused, not evicted. Ports are printed only for
/// TCP, UDP and SCTP (as the report does), so `client.1`/`server.1` are ignored for others.
#[allow(clippy::too_many_arguments)]
pub fn row(
    first: i64,
    last: i64,
    proto_name: &str,
    client: (&str, u16),
    server: (&str, u16),
    basis: &'static str,
    conn_state: &'static str,
    c: Side,
    s: Side,
    flags: (&str, &str),
) -> FlowRow {
    let ported = matches!(proto_name, "tcp" | "udp" | "sctp");
    let port = |p: u16| if ported { p.to_string() } else { String::new() };
    FlowRow {
        first_seen: flowaudit::report::format_iso(first),
        last_seen: flowaudit::report::format_iso(last),
        vlan: String::new(),
        proto: proto_name.to_string(),
        client_addr: client.0.to_string(),
        client_port: port(client.1),
        server_addr: server.0.to_string(),
        server_port: port(server.1),
        basis,
        conn_state,
        client_packets: c.0,
        client_bytes: c.1,
        server_packets: s.0,
        server_bytes: s.1,
        client_flags: flags.0.to_string(),
        server_flags: flags.1.to_string(),
        icmp_unreachable: false,
        evicted: false,
        first_seen_epoch: ts(first),
        last_seen_epoch: ts(last),
    }
}

// ---------------------------------------------------------------------------------------------
// Link layers the crate does not build

pub const ET_IPV4: u16 = 0x0800;
pub const ET_IPV6: u16 = 0x86dd;
pub const ET_ARP: u16 = 0x0806;

pub fn ethertype_of(ip: &[u8]) -> u16 {
    match ip[0] >> 4 {
        4 => ET_IPV4,
        6 => ET_IPV6,
        v => panic!("not an IP packet (version {v})"),
    }
}

/// Plain Ethernet II around an IP packet.
pub fn eth(ip: &[u8]) -> Vec<u8> {
    ethernet(&[], ethertype_of(ip), ip)
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL 113): 16-byte header, protocol at bytes 14-15.
pub fn sll(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(16 + payload.len());
    f.extend_from_slice(&0u16.to_be_bytes()); // packet type: to us
    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    f.extend_from_slice(&6u16.to_be_bytes()); // link-layer address length
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x09, 0, 0]); // address, padded to 8
    f.extend_from_slice(&protocol.to_be_bytes());
    assert_eq!(f.len(), 16);
    f.extend_from_slice(payload);
    f
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2 276): 20-byte header, protocol at bytes 0-1.
pub fn sll2(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(20 + payload.len());
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes()); // reserved
    f.extend_from_slice(&3u32.to_be_bytes()); // interface index
    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    f.push(0); // packet type
    f.push(6); // address length
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x09, 0, 0]);
    assert_eq!(f.len(), 20);
    f.extend_from_slice(payload);
    f
}

/// BSD loopback (LINKTYPE_NULL 0): the address family as a 4-byte little-endian word.
/// AF_INET = 2; AF_INET6 = 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
pub fn null_link(af: u32, ip: &[u8]) -> Vec<u8> {
    let mut f = af.to_le_bytes().to_vec();
    f.extend_from_slice(ip);
    f
}

fn tlv(out: &mut Vec<u8>, typ: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&typ.to_le_bytes());
    out.extend_from_slice(value);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// NFLOG (LINKTYPE_NFLOG 239): family (2 = IPv4, 10 = IPv6), version 0, resource id (big-endian),
/// then little-endian TLVs padded to 4 bytes. A prefix (type 10, 7 bytes: padded) and a
/// hardware-protocol TLV (type 1) come before the payload (type 9), as iptables writes them.
/// Header 4 + prefix TLV 12 ("fw-log\0" = 7 bytes: 4 + 7 = 11, padded to 12) + hw TLV 8
/// + payload TLV header 4 = 28 bytes before the IP packet, then padding to 4.
pub fn nflog(family: u8, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![family, 0, 0, 7];
    tlv(&mut f, 10, b"fw-log\0");
    tlv(&mut f, 1, &[0x08, 0x00, 3, 0]);
    assert_eq!(f.len(), 24);
    tlv(&mut f, 9, ip);
    f
}

/// Bytes of an NFLOG frame around an IP packet of `ip_len` bytes (see [`nflog`]).
pub fn nflog_len(ip_len: usize) -> usize {
    28 + ip_len.div_ceil(4) * 4
}

/// Ethernet with an MPLS label stack (ethertype 0x8847); the bottom-of-stack bit (0x100 of the
/// 32-bit entry, i.e. 0x01 in the 3rd byte) is set on the last label only.
pub fn mpls(labels: &[u32], ip: &[u8]) -> Vec<u8> {
    let mut stack = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        let bottom = if i + 1 == labels.len() { 0x100 } else { 0 };
        let entry: u32 = (l << 12) | bottom | 64; // TTL 64
        stack.extend_from_slice(&entry.to_be_bytes());
    }
    stack.extend_from_slice(ip);
    ethernet(&[], 0x8847, &stack)
}

/// Ethernet with an 802.1ad outer tag (0x88a8) and an 802.1Q inner tag (0x8100).
pub fn qinq(outer: u16, inner: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    f.extend_from_slice(&0x88a8u16.to_be_bytes());
    f.extend_from_slice(&outer.to_be_bytes());
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&inner.to_be_bytes());
    f.extend_from_slice(&ethertype_of(ip).to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// Inserts an 802.1Q tag right after the MAC addresses of an Ethernet frame.
pub fn add_vlan_tag(frame: &[u8], vlan: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&vlan.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

// ---------------------------------------------------------------------------------------------
// IP features

/// The TCP header + zero payload for `sport -> dport` (same bytes as `Frame::transport`).
pub fn tcp_segment(sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    Frame::tcp(v4("0.0.0.0"), sport, v4("0.0.0.0"), dport, flags, payload).transport()
}

pub fn udp_datagram(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    Frame::udp(v4("0.0.0.0"), sport, v4("0.0.0.0"), dport, payload).transport()
}

/// An IPv6 extension header: (type, body after the next-header/length bytes).
/// Lengths are in 8-byte units past the first 8, so `body.len() + 2` must be a multiple of 8.
pub struct Ext {
    pub kind: u8,
    pub body: Vec<u8>,
}

pub const EXT_HOP_BY_HOP: u8 = 0;
pub const EXT_ROUTING: u8 = 43;
pub const EXT_FRAGMENT: u8 = 44;
pub const EXT_DEST_OPTS: u8 = 60;

/// Hop-by-hop or destination options with `n8` 8-byte units (PadN filling them).
pub fn ext_options(kind: u8, n8: usize) -> Ext {
    let total = 8 * n8;
    let padn = total - 2 - 2; // PadN option header is 2 bytes: type 1, length
    let mut body = vec![1u8, padn as u8];
    body.resize(total - 2, 0);
    Ext { kind, body }
}

/// A type-0-style routing header with one address: 8 + 16 = 24 bytes (Hdr Ext Len 2).
pub fn ext_routing(via: Ipv6Addr) -> Ext {
    let mut body = vec![0u8, 1, 0, 0, 0, 0]; // routing type 0, segments left 1, reserved
    body.extend_from_slice(&via.octets());
    Ext {
        kind: EXT_ROUTING,
        body,
    }
}

/// A fragment header: offset in 8-byte units, more-fragments flag, 32-bit id.
pub fn ext_fragment(offset8: u16, more: bool, id: u32) -> Ext {
    let mut body = Vec::with_capacity(6);
    body.extend_from_slice(&((offset8 << 3) | more as u16).to_be_bytes());
    body.extend_from_slice(&id.to_be_bytes());
    Ext {
        kind: EXT_FRAGMENT,
        body,
    }
}

/// An IPv6 packet with extension headers before `upper` (protocol `upper_proto`).
pub fn ipv6_ext(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    exts: &[Ext],
    upper_proto: u8,
    upper: &[u8],
) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, e) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(upper_proto, |n| n.kind);
        let len = e.body.len() + 2;
        assert_eq!(
            len % 8,
            0,
            "extension header length must be a multiple of 8"
        );
        chain.push(next);
        chain.push(if e.kind == EXT_FRAGMENT {
            0
        } else {
            (len / 8 - 1) as u8
        });
        chain.extend_from_slice(&e.body);
    }
    chain.extend_from_slice(upper);
    let first = exts.first().map_or(upper_proto, |e| e.kind);
    ip_packet(IpAddr::V6(src), IpAddr::V6(dst), first, &chain)
}

pub fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sets id, flags (MF) and fragment offset (8-byte units) in bytes 4-7 of an IPv4 header
/// made by `ip_packet`, and recomputes the header checksum.
pub fn set_ipv4_frag(ip: &mut [u8], id: u16, more: bool, offset8: u16) {
    assert!(offset8 < 0x2000);
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    let ff = ((more as u16) << 13) | offset8;
    ip[6..8].copy_from_slice(&ff.to_be_bytes());
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = ipv4_checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Splits an IPv4 datagram's payload (`upper`, transport header included) into fragments at
/// the given payload offsets (multiples of 8). Returns the IP packets in order.
pub fn ipv4_fragments(
    src: &str,
    dst: &str,
    proto_num: u8,
    upper: &[u8],
    id: u16,
    cuts: &[usize],
) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(upper.len());
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        assert_eq!(w[0] % 8, 0, "fragment offsets are multiples of 8");
        let mut ip = ip_packet(v4(src), v4(dst), proto_num, &upper[w[0]..w[1]]);
        let more = w[1] < upper.len();
        set_ipv4_frag(&mut ip, id, more, (w[0] / 8) as u16);
        out.push(ip);
    }
    out
}

/// An ICMPv4 destination unreachable (type 3, code 3: port) from `src` to `dst` quoting `quoted`
/// (the refused IP packet, as much of it as given).
pub fn icmp4_unreachable(src: &str, dst: &str, quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quoted);
    ip_packet(v4(src), v4(dst), proto::ICMP, &icmp)
}

/// An ICMP (IPv4) or ICMPv6 (IPv6) error of `ty` and `code` from `src` to `dst` quoting `quoted`
/// (the IP packet it answers). The checksum is left zero: the decoder does not check it.
pub fn icmp_error(src: IpAddr, dst: IpAddr, ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![ty, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quoted);
    let p = if src.is_ipv4() {
        proto::ICMP
    } else {
        proto::ICMPV6
    };
    ip_packet(src, dst, p, &icmp)
}

/// GRE (version 0, no options) carrying an IPv4 or IPv6 packet.
pub fn gre4(src: &str, dst: &str, inner: &[u8]) -> Vec<u8> {
    let mut g = vec![0u8, 0];
    g.extend_from_slice(&ethertype_of(inner).to_be_bytes());
    g.extend_from_slice(inner);
    ip_packet(v4(src), v4(dst), proto::GRE, &g)
}

/// A report row by column name.
pub type Row = std::collections::BTreeMap<String, String>;

/// Every row of a CSV report, by column name; panics naming the file when it cannot be read.
pub fn read_csv(path: &Path) -> Vec<Row> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            h.iter()
                .map(String::from)
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}
