//! Every link layer, shim and mirror transport of docs/flows.md, on captures built byte by byte.
//!
//! Each test wraps the same two packets in one encapsulation: a SYN 10.0.0.9:50000 ->
//! 10.0.0.2:443 at 0 ms and its SYN-ACK at 1 ms (IPv4 + TCP without options: 40 bytes each).
//! The expected flow is worked out by hand: client 10.0.0.9:50000, server 10.0.0.2:443, basis
//! syn, state S1 (SYN and SYN-ACK seen, nothing else), one packet each way whose bytes are the
//! frame's length, which each test derives from the header sizes in its comment.

mod common;

use std::collections::BTreeMap;

use common::*;
use flowaudit::decode::{DecodeOptions, Kept, Mirror, MirrorSource, Skip, VlanKey};
use flowaudit::engine::{EngineConfig, Stats};
use flowaudit::report::flows::FlowRow;
use flowaudit::synth::{ethernet, ip_packet, Frame};

const C: &str = "10.0.0.9";
const S: &str = "10.0.0.2";
/// IPv4 (20) + TCP (20).
const IP_LEN: u64 = 40;

fn syn() -> Vec<u8> {
    Frame::tcp(v4(C), 50000, v4(S), 443, SYN, 0).ip()
}

fn synack() -> Vec<u8> {
    Frame::tcp(v4(S), 443, v4(C), 50000, SA, 0).ip()
}

/// The two records, each IP packet wrapped by `wrap`.
fn pair(wrap: impl Fn(&[u8]) -> Vec<u8>) -> Vec<Rec> {
    vec![rec(at_ms(0), wrap(&syn())), rec(at_ms(1), wrap(&synack()))]
}

/// The expected flow when each packet travelled in `overhead` bytes of wrapping.
fn expected(overhead: u64) -> FlowRow {
    let n = IP_LEN + overhead;
    row(
        at_ms(0),
        at_ms(1),
        "tcp",
        (C, 50000),
        (S, 443),
        "syn",
        "S1",
        (1, n),
        (1, n),
        ("S", "SA"),
    )
}

fn tagged(mut r: FlowRow, vlan: u16) -> FlowRow {
    r.vlan = vlan.to_string();
    r
}

/// Asserts the pair made exactly the expected flow and nothing was skipped.
fn assert_pair(link_type: u16, overhead: u64, wrap: impl Fn(&[u8]) -> Vec<u8>) -> Stats {
    let (flows, stats) = flows_pcap(link_type, &pair(wrap));
    assert_eq!(flows, vec![expected(overhead)], "link type {link_type}");
    assert_eq!(stats.skipped, BTreeMap::new(), "link type {link_type}");
    stats
}

/// Asserts that `frame` alone makes no flow and is skipped for `why`.
fn assert_skipped(link_type: u16, frame: Vec<u8>, why: Skip) {
    let (flows, stats) = flows_pcap(link_type, &[rec(at_ms(0), frame)]);
    assert_eq!(flows, vec![], "{why:?}");
    assert_eq!(stats.skipped, BTreeMap::from([(why, 1)]));
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const MACS: [u8; 12] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];

// ---------------------------------------------------------------------------------------------
// PPP, PPPoE, HDLC, Frame Relay

#[test]
fn ppp_with_and_without_address_control_and_compressed_protocol() {
    // Link type 9: FF 03 + protocol 0x0021 = 4 bytes; protocol-field compression: 0x21 = 1 byte.
    assert_pair(9, 4, |ip| cat(&[&[0xff, 0x03, 0x00, 0x21], ip]));
    assert_pair(9, 2, |ip| cat(&[&[0x00, 0x21], ip]));
    assert_pair(9, 1, |ip| cat(&[&[0x21], ip]));
    // LCP (0xC021) carries no IP.
    assert_skipped(9, vec![0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4], Skip::PppNotIp);
}

#[test]
fn ppp_in_hdlc_framing_and_cisco_hdlc() {
    // Link type 50: FF 03 00 21 (4 bytes), or Cisco HDLC 0F 00 08 00 (4 bytes).
    assert_pair(50, 4, |ip| cat(&[&[0xff, 0x03, 0x00, 0x21], ip]));
    assert_pair(50, 4, |ip| cat(&[&[0x0f, 0x00, 0x08, 0x00], ip]));
    // Link type 104: Cisco HDLC; SLARP keepalives (0x8035) are counted as such.
    assert_pair(104, 4, |ip| cat(&[&[0x0f, 0x00, 0x08, 0x00], ip]));
    let slarp = cat(&[&[0x8f, 0x00, 0x80, 0x35], &[0u8; 20]]);
    assert_skipped(104, slarp, Skip::HdlcNotIp);
}

/// PPPoE session header (version/type 0x11, code 0, session 0x0042, length) + PPP protocol.
fn pppoe(ip: &[u8]) -> Vec<u8> {
    let len = (ip.len() + 2) as u16;
    cat(&[
        &[0x11, 0x00, 0x00, 0x42],
        &len.to_be_bytes(),
        &[0x00, 0x21],
        ip,
    ])
}

#[test]
fn pppoe_session_plain_in_vlan_and_in_qinq() {
    // Ethernet 14 + PPPoE 6 + PPP protocol 2 = 22 bytes.
    assert_pair(1, 22, |ip| ethernet(&[], 0x8864, &pppoe(ip)));
    // One 802.1Q tag: 26 bytes, VLAN 7.
    let (flows, _) = flows_pcap(1, &pair(|ip| ethernet(&[7], 0x8864, &pppoe(ip))));
    assert_eq!(flows, vec![tagged(expected(26), 7)]);
    // QinQ: 802.1ad 100 then 802.1Q 7: 30 bytes, keyed on the outer tag 100.
    let qinq_pppoe = |ip: &[u8]| {
        cat(&[
            &MACS,
            &[0x88, 0xa8, 0, 100, 0x81, 0x00, 0, 7, 0x88, 0x64],
            &pppoe(ip),
        ])
    };
    let (flows, _) = flows_pcap(1, &pair(qinq_pppoe));
    assert_eq!(flows, vec![tagged(expected(30), 100)]);
    // Link type 51 (PPPoE without Ethernet): 8 bytes.
    assert_pair(51, 8, pppoe);
    // Discovery (PADI, ethertype 0x8863) and LCP inside a session are named, not "non-IP".
    let padi = ethernet(&[], 0x8863, &[0x11, 0x09, 0, 0, 0, 4, 1, 1, 0, 0]);
    assert_skipped(1, padi, Skip::PppoeDiscovery);
    let lcp = ethernet(
        &[],
        0x8864,
        &[0x11, 0, 0, 0x42, 0, 6, 0xc0, 0x21, 1, 1, 0, 4],
    );
    assert_skipped(1, lcp, Skip::PppNotIp);
}

#[test]
fn frame_relay_rfc2427_cisco_and_lmi() {
    // Q.922 address for DLCI 100: 0x18 0x41 (EA bit on the second byte).
    // RFC 2427: address 2 + control 0x03 + NLPID 0xCC = 4 bytes.
    assert_pair(107, 4, |ip| cat(&[&[0x18, 0x41, 0x03, 0xcc], ip]));
    // SNAP: address 2 + 03 + pad 00 + NLPID 80 + OUI 000000 + ethertype 0800 = 10 bytes.
    assert_pair(107, 10, |ip| {
        cat(&[&[0x18, 0x41, 0x03, 0x00, 0x80, 0, 0, 0, 0x08, 0x00], ip])
    });
    // Cisco encapsulation: address 2 + ethertype 2 = 4 bytes.
    assert_pair(107, 4, |ip| cat(&[&[0x18, 0x41, 0x08, 0x00], ip]));
    // LMI status enquiry on DLCI 1023: Q.933 NLPID 0x08.
    let lmi = vec![0xfc, 0xf1, 0x03, 0x08, 0x00, 0x75, 0x95, 0x01, 0x01, 0x01];
    assert_skipped(107, lmi, Skip::FrameRelayNotIp);
}

// ---------------------------------------------------------------------------------------------
// Ethernet shims

#[test]
fn llc_snap_on_802_3() {
    // 802.3: MACs 12 + length 2 + LLC/SNAP 8 = 22 bytes.
    let snap = |ip: &[u8]| {
        let len = (8 + ip.len()) as u16;
        cat(&[
            &MACS,
            &len.to_be_bytes(),
            &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00],
            ip,
        ])
    };
    assert_pair(1, 22, snap);
    // Spanning tree (LLC 42-42-03) is not IP.
    let stp = cat(&[&MACS, &[0, 38, 0x42, 0x42, 0x03], &[0u8; 35]]);
    assert_skipped(1, stp, Skip::NotIp);
}

#[test]
fn provider_backbone_bridging() {
    // Backbone MACs 12 + B-TAG (88a8, VLAN 200) 4 + I-TAG (88e7 + 4) 6 + customer MACs 12
    // + ethertype 2 = 36 bytes; the flow is keyed on the backbone VLAN 200.
    let pbb = |ip: &[u8]| {
        cat(&[
            &MACS,
            &[0x88, 0xa8, 0, 200],
            &[0x88, 0xe7, 0, 0x01, 0x00, 0x01],
            &MACS,
            &[0x08, 0x00],
            ip,
        ])
    };
    let (flows, stats) = flows_pcap(1, &pair(pbb));
    assert_eq!(flows, vec![tagged(expected(36), 200)]);
    assert_eq!(stats.skipped, BTreeMap::new());
}

#[test]
fn vn_tag_etag_and_fabricpath() {
    // VN-Tag: MACs 12 + 8926 + 4 bytes of tag + ethertype 2 = 20 bytes.
    assert_pair(1, 20, |ip| {
        cat(&[&MACS, &[0x89, 0x26, 0x80, 0x05, 0x00, 0x03, 0x08, 0x00], ip])
    });
    // 802.1BR E-Tag: MACs 12 + 893f + 6 bytes + ethertype 2 = 22 bytes.
    assert_pair(1, 22, |ip| {
        cat(&[&MACS, &[0x89, 0x3f, 0, 0, 0, 0x10, 0, 0, 0x08, 0x00], ip])
    });
    // FabricPath: outer MACs 12 + 8903 + FTag/TTL 2 + inner MACs 12 + ethertype 2 = 30 bytes.
    assert_pair(1, 30, |ip| {
        cat(&[&MACS, &[0x89, 0x03, 0x00, 0x3f], &MACS, &[0x08, 0x00], ip])
    });
}

#[test]
fn macsec_is_counted_as_encrypted() {
    // SecTAG (TCI/AN, SL, PN) then ciphertext: nothing to read.
    let frame = ethernet(&[], 0x88e5, &[0x2c, 0, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
    assert_skipped(1, frame.clone(), Skip::Macsec);
    assert_eq!(Skip::Macsec.label(), "encrypted (MACsec)");
    // Inside a VLAN tag too.
    let tagged_frame = add_vlan_tag(&frame, 5);
    assert_skipped(1, tagged_frame, Skip::Macsec);
}

// ---------------------------------------------------------------------------------------------
// Other link types

#[test]
fn ipnet_ipoib_mpls_and_netanalyzer_link_types() {
    // Solaris ipnet (226): 24-byte header, family 2.
    assert_pair(226, 24, |ip| {
        let mut h = vec![1u8, 2, 0, 0];
        h.extend_from_slice(&(ip.len() as u32).to_be_bytes());
        h.resize(24, 0);
        cat(&[&h, ip])
    });
    // IP over InfiniBand (242): ethertype 2 + reserved 2.
    assert_pair(242, 4, |ip| cat(&[&[0x08, 0x00, 0, 0], ip]));
    // Bare MPLS (219): one label with bottom-of-stack, 4 bytes.
    assert_pair(219, 4, |ip| cat(&[&[0x00, 0x01, 0x41, 0x40], ip]));
    // netANALYZER (240): 4 bytes + Ethernet 14.
    assert_pair(240, 18, |ip| cat(&[&[0u8; 4], &eth(ip)]));
}

#[test]
fn unsupported_link_type_names_the_link() {
    assert_eq!(
        Skip::UnsupportedLinkType(6).label(),
        "unsupported link type 6 (IEEE 802.5 Token Ring)"
    );
    assert_eq!(
        Skip::UnsupportedLinkType(4000).label(),
        "unsupported link type 4000"
    );
    assert_skipped(10, vec![0u8; 40], Skip::UnsupportedLinkType(10));
}

// ---------------------------------------------------------------------------------------------
// IEEE 802.11

/// An 802.11 data frame to the DS: frame control, duration, three addresses, sequence = 24
/// bytes (26 with QoS), then LLC/SNAP (8) and the IP packet.
fn wlan(ip: &[u8], qos: bool, protected: bool) -> Vec<u8> {
    let fc0 = if qos { 0x88 } else { 0x08 };
    let fc1 = 0x01 | if protected { 0x40 } else { 0 };
    let mut f = vec![fc0, fc1, 0, 0];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // BSSID
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x09]); // source
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination
    f.extend_from_slice(&[0x10, 0x00]); // sequence
    if qos {
        f.extend_from_slice(&[0x00, 0x00]);
    }
    f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
    f.extend_from_slice(ip);
    f
}

#[test]
fn wlan_data_frames_bare_radiotap_and_ppi() {
    // 105: 24 + 8 = 32 bytes; QoS data: 34 bytes.
    assert_pair(105, 32, |ip| wlan(ip, false, false));
    assert_pair(105, 34, |ip| wlan(ip, true, false));
    // Radiotap (127): an 8-byte header with no fields present.
    assert_pair(127, 40, |ip| {
        cat(&[&[0, 0, 8, 0, 0, 0, 0, 0], &wlan(ip, false, false)])
    });
    // PPI (192): an 8-byte header naming DLT 105.
    assert_pair(192, 40, |ip| {
        cat(&[&[0, 0, 8, 0, 105, 0, 0, 0], &wlan(ip, false, false)])
    });
    // Protected data, a beacon, and a null-data frame are counted by what they are.
    assert_skipped(105, wlan(&syn(), false, true), Skip::WlanProtected);
    let mut beacon = vec![0x80, 0x00];
    beacon.resize(36, 0);
    assert_skipped(105, beacon, Skip::WlanNotData);
    let mut null = vec![0x48, 0x01];
    null.resize(24, 0);
    assert_skipped(105, null, Skip::WlanNotData);
}

// ---------------------------------------------------------------------------------------------
// Mirror transports

const SWITCH: &str = "10.9.9.1";
const COLLECTOR: &str = "10.9.9.2";

/// Ethernet (tagged with the collector network's VLAN 999) + IPv4 from the switch to the
/// collector + GRE with `gre_header` + `body`: 18 + 20 + header bytes.
fn over_gre(gre_header: &[u8], body: &[u8]) -> Vec<u8> {
    let ip = ip_packet(v4(SWITCH), v4(COLLECTOR), 47, &cat(&[gre_header, body]));
    ethernet(&[999], 0x0800, &ip)
}

fn mirrored_stats(kind: Mirror, session: u16) -> BTreeMap<MirrorSource, u64> {
    let from = flowaudit::decode::Addr::from(v4(SWITCH));
    BTreeMap::from([(
        MirrorSource {
            kind,
            from,
            session,
        },
        2,
    )])
}

#[test]
fn erspan_type_i_ii_and_iii_are_unwrapped_by_default() {
    // Type I: GRE 4 bytes, no sequence; the inner Ethernet 14. Overhead 18 + 20 + 4 + 14 = 56.
    let t1 = |ip: &[u8]| over_gre(&[0x00, 0x00, 0x88, 0xbe], &eth(ip));
    let s = assert_pair(1, 56, t1);
    assert_eq!(s.mirrors, mirrored_stats(Mirror::ErspanI, 0));
    // Type II: GRE with sequence 8 + ERSPAN 8 (version 1, session 7) = 18 + 20 + 16 + 14 = 68.
    let t2 = |ip: &[u8]| {
        let gre = [0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
        let erspan = [0x10, 0x00, 0x00, 0x07, 0, 0, 0, 0];
        over_gre(&gre, &cat(&[&erspan, &eth(ip)]))
    };
    let s = assert_pair(1, 68, t2);
    assert_eq!(s.mirrors, mirrored_stats(Mirror::ErspanII, 7));
    // Type III: GRE 4 + ERSPAN 12 (version 2, session 9, frame type 0) = 18 + 20 + 16 + 14 = 68.
    let t3 = |ip: &[u8]| {
        let erspan = [0x20, 0x00, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x00];
        over_gre(&[0x00, 0x00, 0x22, 0xeb], &cat(&[&erspan, &eth(ip)]))
    };
    let s = assert_pair(1, 68, t3);
    assert_eq!(s.mirrors, mirrored_stats(Mirror::ErspanIII, 9));
    // Type III with the 8-byte platform subheader (O bit) and frame type 2 (IP, no Ethernet):
    // 18 + 20 + 4 + 20 = 62.
    let t3ip = |ip: &[u8]| {
        let erspan = [0x20, 0x00, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0x08, 0x01];
        over_gre(&[0x00, 0x00, 0x22, 0xeb], &cat(&[&erspan, &[0u8; 8], ip]))
    };
    assert_pair(1, 62, t3ip);
}

#[test]
fn erspan_inner_vlan_is_the_key_not_the_collector_vlan() {
    // The mirrored frame carries VLAN 30; the transport VLAN 999 is the collector's.
    // Overhead 18 + 20 + 4 + 18 = 60.
    let t1 = |ip: &[u8]| over_gre(&[0x00, 0x00, 0x88, 0xbe], &ethernet(&[30], 0x0800, ip));
    let (flows, _) = flows_pcap(1, &pair(t1));
    assert_eq!(flows, vec![tagged(expected(60), 30)]);
    // Type II whose switch removed the tag: the ERSPAN header's VLAN field (31) is the key.
    let t2 = |ip: &[u8]| {
        let gre = [0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
        let erspan = [0x10, 31, 0x00, 0x07, 0, 0, 0, 0];
        over_gre(&gre, &cat(&[&erspan, &eth(ip)]))
    };
    let (flows, _) = flows_pcap(1, &pair(t2));
    assert_eq!(flows, vec![tagged(expected(68), 31)]);
}

#[test]
fn aruba_gre_and_tzsp_are_unwrapped_by_default() {
    // Aruba GRE 0x8210: 802.11 data frame (32 bytes before IP): 18 + 20 + 4 + 32 = 74.
    let aruba = |ip: &[u8]| over_gre(&[0x00, 0x00, 0x82, 0x10], &wlan(ip, false, false));
    let s = assert_pair(1, 74, aruba);
    assert_eq!(s.mirrors, mirrored_stats(Mirror::ArubaGre, 0));
    // TZSP: UDP 40000 -> 37008 (8), header 4 + end tag 1, Ethernet 14: 18 + 20 + 8 + 5 + 14 = 65.
    let tzsp = |ip: &[u8]| {
        let body = cat(&[&[1, 0, 0, 1, 1], &eth(ip)]);
        let udp = udp_datagram_with(40000, 37008, &body);
        ethernet(
            &[999],
            0x0800,
            &ip_packet(v4(SWITCH), v4(COLLECTOR), 17, &udp),
        )
    };
    let s = assert_pair(1, 65, tzsp);
    assert_eq!(s.mirrors, mirrored_stats(Mirror::Tzsp, 0));
    // A TZSP header of an unknown version is named.
    let bad = ethernet(
        &[],
        0x0800,
        &ip_packet(
            v4(SWITCH),
            v4(COLLECTOR),
            17,
            &udp_datagram_with(40000, 37008, &[9, 0, 0, 1, 1]),
        ),
    );
    assert_skipped(1, bad, Skip::MirrorNotDecoded(Mirror::Tzsp));
}

/// A UDP header (checksum 0) + `body`.
fn udp_datagram_with(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
    let len = (8 + body.len()) as u16;
    cat(&[
        &sport.to_be_bytes(),
        &dport.to_be_bytes(),
        &len.to_be_bytes(),
        &[0, 0],
        body,
    ])
}

// ---------------------------------------------------------------------------------------------
// --decap never loses a packet

fn decap_cfg() -> EngineConfig {
    EngineConfig {
        decode: DecodeOptions::with_decap(true),
        ..EngineConfig::default()
    }
}

const T1: &str = "10.1.1.1";
const T2: &str = "10.1.1.2";

/// GRE from T1 to T2 with protocol type `proto_type`: 14 + 20 + 4 bytes + `body`.
fn gre_frame(proto_type: u16, body: &[u8]) -> Vec<u8> {
    gre_between(T1, T2, proto_type, body)
}

fn gre_between(src: &str, dst: &str, proto_type: u16, body: &[u8]) -> Vec<u8> {
    let g = cat(&[&[0, 0], &proto_type.to_be_bytes(), body]);
    eth(&ip_packet(v4(src), v4(dst), 47, &g))
}

#[test]
fn decap_keeps_undecodable_tunnel_payloads_in_their_outer_flow() {
    // 1 GRE carrying the SYN (decodable), then five the decoder cannot read:
    // 2 keepalive (type 0, empty), 3 PPP LCP (0x880B), 4 NHRP (0x2001),
    // 5 IPv4 type with a broken inner header (version 4, 10 bytes), 6 VXLAN carrying ARP;
    // and 7 IP-in-IP whose inner TCP header is cut to 6 bytes.
    let arp = ethernet(&[], 0x0806, &[0u8; 28]);
    let vxlan = cat(&[&[0x08, 0, 0, 0, 0, 0, 0x64, 0], &arp]);
    let mut cut_tcp = syn();
    cut_tcp.truncate(26);
    cut_tcp[2..4].copy_from_slice(&26u16.to_be_bytes());
    cut_tcp[10..12].copy_from_slice(&[0, 0]);
    let sum = ipv4_checksum(&cut_tcp[..20]);
    cut_tcp[10..12].copy_from_slice(&sum.to_be_bytes());
    let recs = vec![
        rec(at_ms(0), gre_frame(0x0800, &syn())),
        rec(at_ms(1), gre_frame(0x0000, &[])),
        rec(
            at_ms(2),
            gre_frame(0x880b, &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4]),
        ),
        rec(at_ms(3), gre_frame(0x2001, &[0u8; 20])),
        rec(
            at_ms(4),
            gre_frame(0x0800, &[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6]),
        ),
        rec(
            at_ms(5),
            eth(&ip_packet(
                v4(T1),
                v4(T2),
                17,
                &udp_datagram_with(5000, 4789, &vxlan),
            )),
        ),
        rec(at_ms(6), eth(&ip_packet(v4(T1), v4(T2), 4, &cut_tcp))),
    ];
    let (plain, plain_stats) = flows_eth(&recs);
    let (decap, decap_stats) = flows_eth_cfg(&recs, decap_cfg());
    for s in [&plain_stats, &decap_stats] {
        assert_eq!(s.packets, 7);
        assert_eq!(s.flow_packets + s.skipped_total(), 7);
        assert_eq!(s.skipped_total(), 0);
    }
    // Default: one GRE flow (5 packets), one UDP flow, one IP-in-IP flow.
    assert_eq!(
        plain
            .iter()
            .map(|r| (r.proto.as_str(), r.client_packets + r.server_packets))
            .collect::<Vec<_>>(),
        vec![("gre", 5), ("udp", 1), ("ipip", 1)]
    );
    // --decap: the SYN's inner flow; the others stay in their outer flows, reasons counted.
    assert_eq!(
        decap
            .iter()
            .map(|r| (r.proto.as_str(), r.client_packets + r.server_packets))
            .collect::<Vec<_>>(),
        vec![("tcp", 1), ("gre", 4), ("udp", 1), ("ipip", 1)]
    );
    assert_eq!(
        decap_stats.decap_kept,
        BTreeMap::from([
            (Kept::GrePayloadNotIp, 3),
            (Kept::VxlanPayloadNotIp, 1),
            (Kept::InnerMalformed, 2),
        ])
    );
    assert_eq!(plain_stats.decap_kept, BTreeMap::new());
}

#[test]
fn decap_trailing_fragments_of_a_tunnel_packet_join_the_inner_flow() {
    // A GRE packet carrying a SYN with 100 bytes of payload (inner IP 140 bytes; GRE payload
    // 144 bytes), fragmented by the outer IP at GRE payload offset 48 (GRE 4 + inner IP 20 +
    // TCP 20 + 4 bytes of data) and 96. Frames: 14 + 20 + 48 = 82, 14 + 20 + 48 = 82,
    // 14 + 20 + 48 = 82. Then the SYN-ACK in one GRE packet back from 10.1.1.2: 14 + 20 + 4 + 40
    // = 78 bytes.
    let big = Frame::tcp(v4(C), 50000, v4(S), 443, SYN, 100).ip();
    let gre = cat(&[&[0, 0, 0x08, 0x00], &big]);
    assert_eq!(gre.len(), 144);
    let frags = ipv4_fragments(T1, T2, 47, &gre, 0x4242, &[48, 96]);
    // The middle and last fragments first, then the first: arrival order must not matter.
    let recs = vec![
        rec(at_ms(0), eth(&frags[1])),
        rec(at_ms(1), eth(&frags[0])),
        rec(at_ms(2), eth(&frags[2])),
        rec(at_ms(3), gre_between(T2, T1, 0x0800, &synack())),
    ];
    let (plain, ps) = flows_eth(&recs);
    let (decap, ds) = flows_eth_cfg(&recs, decap_cfg());
    for s in [&ps, &ds] {
        assert_eq!(s.flow_packets + s.skipped_total(), 4);
        assert_eq!(s.skipped_total(), 0);
    }
    // Default: one GRE flow, 3 + 1 packets.
    assert_eq!(plain.len(), 1);
    assert_eq!((plain[0].client_packets, plain[0].server_packets), (3, 1));
    // --decap: the inner TCP flow holds all four, the fragments on the client's side.
    let want = row(
        at_ms(0),
        at_ms(3),
        "tcp",
        (C, 50000),
        (S, 443),
        "syn",
        "S1",
        (3, 246),
        (1, 78),
        ("S", "SA"),
    );
    // The middle fragment arrived first and waited for its first fragment: the flow starts
    // with the inner SYN (basis syn), and its first_seen is the earliest packet's.
    assert_eq!(decap, vec![want]);
}

// ---------------------------------------------------------------------------------------------
// RFC 1858 tiny fragments

#[test]
fn tiny_first_fragment_still_gives_the_ports_and_the_syn() {
    // The SYN's TCP header split after 8 bytes (ports, sequence number): first fragment
    // 14 + 20 + 8 = 42 bytes, second 14 + 20 + 12 = 46. Then the SYN-ACK, 54 bytes.
    let seg = tcp_segment(50000, 443, SYN, 0);
    let frags = ipv4_fragments(C, S, 6, &seg, 7, &[8]);
    let recs = vec![
        rec(at_ms(0), eth(&frags[0])),
        rec(at_ms(1), eth(&frags[1])),
        rec(at_ms(2), tcp4(S, 443, C, 50000, SA, 0)),
    ];
    let (flows, stats) = flows_eth(&recs);
    assert_eq!(stats.skipped, BTreeMap::new());
    // The first packet has no flags (they are in the second fragment): basis first-packet.
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(2),
            "tcp",
            (C, 50000),
            (S, 443),
            "first-packet",
            "S1",
            (2, 88),
            (1, 54),
            ("S", "SA"),
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Direction by ranked server ports

#[test]
fn ranked_server_ports_decide_when_both_ports_are_listed() {
    // DHCP: the server's answer 67 -> 68 is the first packet seen: 67 outranks 68, so the
    // sender is the server (basis port). UDP 42 + 300 = 342 bytes.
    let recs = vec![
        rec(at_ms(0), udp4("10.0.0.1", 67, "10.0.0.50", 68, 300)),
        rec(at_ms(1), udp4("10.0.0.50", 68, "10.0.0.1", 67, 300)),
    ];
    let (flows, _) = flows_eth(&recs);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "udp",
            ("10.0.0.50", 68),
            ("10.0.0.1", 67),
            "port",
            "SF",
            (1, 342),
            (1, 342),
            ("", ""),
        )]
    );
    // IEC 60870-5-104 (TCP 2404) mid-stream from the server to an unlisted port: the port
    // decides.
    let (flows, _) = flows_eth(&[rec(
        at_ms(0),
        tcp4("10.0.0.1", 2404, "10.0.0.50", 50001, PA, 10),
    )]);
    assert_eq!(flows[0].server_port, "2404");
    assert_eq!(flows[0].basis, "port");
    // X11 (6001) and CAPWAP (5246) are listed.
    let (flows, _) = flows_eth(&[rec(
        at_ms(0),
        tcp4("10.0.0.1", 6001, "10.0.0.50", 50001, PA, 10),
    )]);
    assert_eq!(
        (flows[0].server_port.as_str(), flows[0].basis),
        ("6001", "port")
    );
    let (flows, _) = flows_eth(&[rec(
        at_ms(0),
        udp4("10.0.0.1", 5246, "10.0.0.50", 50001, 10),
    )]);
    assert_eq!(
        (flows[0].server_port.as_str(), flows[0].basis),
        ("5246", "port")
    );
    // DHCPv6: 547 outranks 546.
    let (flows, _) = flows_eth(&[rec(at_ms(0), udp4("10.0.0.1", 547, "10.0.0.50", 546, 10))]);
    assert_eq!(
        (flows[0].server_port.as_str(), flows[0].basis),
        ("547", "port")
    );
}

// ---------------------------------------------------------------------------------------------
// One connection on two VLANs

#[test]
fn vlan_key_none_joins_directions_seen_on_different_vlans() {
    // The SYN on VLAN 10, the SYN-ACK on VLAN 20 (a routed trunk): 58 bytes each.
    let recs = vec![
        rec(at_ms(0), add_vlan_tag(&tcp4(C, 50000, S, 443, SYN, 0), 10)),
        rec(at_ms(1), add_vlan_tag(&tcp4(S, 443, C, 50000, SA, 0), 20)),
    ];
    // Outer (default): two half flows, and the summary counts the split 5-tuple.
    let (flows, stats) = flows_eth(&recs);
    assert_eq!(flows.len(), 2);
    assert_eq!(
        flows.iter().map(|f| f.vlan.as_str()).collect::<Vec<_>>(),
        vec!["10", "20"]
    );
    assert_eq!(stats.vlan_split_tuples, 1);
    // None: one flow, S1, untagged.
    let cfg = EngineConfig {
        decode: DecodeOptions {
            decap: false,
            vlan_key: VlanKey::None,
        },
        ..EngineConfig::default()
    };
    let (flows, stats) = flows_eth_cfg(&recs, cfg);
    assert_eq!(flows, vec![expected(18)]);
    assert_eq!(stats.vlan_split_tuples, 0);
}

// ---------------------------------------------------------------------------------------------
// Absurd original lengths

#[test]
fn an_absurd_original_length_is_capped_and_counted() {
    // A 54-byte SYN whose record claims 808,464,432 bytes on the wire (seen in a damaged file),
    // then its 54-byte SYN-ACK. The claim counts as 262,144 bytes (docs/flows.md).
    let mut first = rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0));
    first.orig_len = 808_464_432;
    let recs = vec![first, rec(at_ms(1), tcp4(S, 443, C, 50000, SA, 0))];
    let (flows, stats) = flows_eth(&recs);
    assert_eq!(flows, vec![expected_bytes(262_144, 54)]);
    assert_eq!(stats.wire_bytes, 262_144 + 54);
    assert_eq!(stats.capped_wire_len, 1);
}

fn expected_bytes(c: u64, s: u64) -> FlowRow {
    row(
        at_ms(0),
        at_ms(1),
        "tcp",
        (C, 50000),
        (S, 443),
        "syn",
        "S1",
        (1, c),
        (1, s),
        ("S", "SA"),
    )
}
