//! Flows from hand-made captures whose every expected value is worked out by hand.
//!
//! Frame sizes used throughout (see tests/common and `flowaudit::synth::Frame`):
//! - Ethernet + IPv4 + TCP without options: 14 + 20 + 20 = 54 bytes, + payload
//! - Ethernet + IPv4 + UDP: 14 + 20 + 8 = 42 bytes, + payload
//! - Ethernet + IPv6 + TCP: 14 + 40 + 20 = 74 bytes, + payload
//! - each 802.1Q tag adds 4 bytes
//!
//! Unless a test says otherwise the client is 10.0.0.9 and the server 10.0.0.2: the client has the
//! *higher* address, so it is endpoint `b` of the canonical key and a client/server mix-up cannot
//! hide behind the key order. Byte counts are wire lengths (the frames' original lengths).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use flowaudit::decode::{proto, DecodeOptions, Skip};
use flowaudit::engine::run::RunOptions;
use flowaudit::engine::EngineConfig;
use flowaudit::flow::Timeouts;
use flowaudit::report::flows::FlowRow;
use flowaudit::synth::{ip_packet, Frame};

const C: &str = "10.0.0.9";
const S: &str = "10.0.0.2";

fn no_skips() -> BTreeMap<Skip, u64> {
    BTreeMap::new()
}

/// The 8-packet connection of `tcp_full_handshake_data_and_fin_both_ways_is_sf`, from `t` ms on.
fn full_connection(t: i64) -> Vec<Rec> {
    vec![
        rec(at_ms(t), tcp4(C, 50000, S, 443, SYN, 0)),     // 54
        rec(at_ms(t + 1), tcp4(S, 443, C, 50000, SA, 0)),  // 54
        rec(at_ms(t + 2), tcp4(C, 50000, S, 443, ACK, 0)), // 54
        rec(at_ms(t + 3), tcp4(C, 50000, S, 443, PA, 100)), // 154
        rec(at_ms(t + 4), tcp4(S, 443, C, 50000, PA, 200)), // 254
        rec(at_ms(t + 5), tcp4(C, 50000, S, 443, FA, 0)),  // 54
        rec(at_ms(t + 6), tcp4(S, 443, C, 50000, FA, 0)),  // 54
        rec(at_ms(t + 7), tcp4(C, 50000, S, 443, ACK, 0)), // 54
    ]
}

/// Client: SYN, ACK, data(100), FIN, ACK = 5 packets, 54+54+154+54+54 = 370 bytes, flags S|A|P|F.
/// Server: SYN-ACK, data(200), FIN = 3 packets, 54+254+54 = 362 bytes, flags S|A|P|F.
/// SYN seen -> basis syn; both sides sent FIN, nobody RST -> SF.
fn full_connection_row(t: i64) -> FlowRow {
    row(
        at_ms(t),
        at_ms(t + 7),
        "tcp",
        (C, 50000),
        (S, 443),
        "syn",
        "SF",
        (5, 370),
        (3, 362),
        ("SAPF", "SAPF"),
    )
}

#[test]
fn tcp_full_handshake_data_and_fin_both_ways_is_sf() {
    let (flows, stats) = flows_eth(&full_connection(0));
    assert_eq!(flows, vec![full_connection_row(0)]);
    // 8 packets, 370 + 362 = 732 bytes, all of them in a flow, nothing skipped.
    assert_eq!(stats.packets, 8);
    assert_eq!(stats.flow_packets, 8);
    assert_eq!(stats.wire_bytes, 732);
    assert_eq!(stats.skipped, no_skips());
    assert_eq!(stats.first_ts, Some(at_ms(0)));
    assert_eq!(stats.last_ts, Some(at_ms(7)));
}

#[test]
fn tcp_syn_only_is_s0() {
    // One SYN (54 bytes) that nobody answers: client 1/54, server 0/0 -> S0.
    let (flows, _) = flows_eth(&[rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0))]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(0),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S0",
            (1, 54),
            (0, 0),
            ("S", "")
        )]
    );
}

#[test]
fn tcp_syn_then_rst_from_server_is_rej() {
    // SYN (54) answered by RST|ACK (54): the attempt was rejected -> REJ. Server flags A|R -> "AR".
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(1), tcp4(S, 443, C, 50000, RA, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "REJ",
            (1, 54),
            (1, 54),
            ("S", "AR")
        )]
    );
}

#[test]
fn tcp_midstream_from_server_port_uses_port_basis() {
    // No SYN; the first packet goes 445 -> 50000. 445 is a likely server port and 50000 is not, so
    // the receiver (10.0.0.9:50000) is the client: basis port.
    // Server: data(100) 154 + data(100) 154 = 2 packets, 308 bytes, flags A|P.
    // Client: one ACK, 54 bytes. No SYN, no FIN, no RST -> OTH.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(S, 445, C, 50000, PA, 100)),
        rec(at_ms(1), tcp4(C, 50000, S, 445, ACK, 0)),
        rec(at_ms(2), tcp4(S, 445, C, 50000, PA, 100)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(2),
            "tcp",
            (C, 50000),
            (S, 445),
            "port",
            "OTH",
            (1, 54),
            (2, 308),
            ("A", "AP")
        )]
    );
}

#[test]
fn tcp_midstream_without_server_port_uses_first_packet() {
    // 40000 and 50000 are both ephemeral: the sender of the first packet is the client.
    // First packet 10.0.0.9:40000 -> 10.0.0.2:50000 data(10) = 64 bytes; reply ACK 54. OTH.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 40000, S, 50000, PA, 10)),
        rec(at_ms(1), tcp4(S, 50000, C, 40000, ACK, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "tcp",
            (C, 40000),
            (S, 50000),
            "first-packet",
            "OTH",
            (1, 64),
            (1, 54),
            ("AP", "A")
        )]
    );
    // The same with the lower address sending first: the client follows the packet, not the order.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(S, 40000, C, 50000, PA, 10)),
        rec(at_ms(1), tcp4(C, 50000, S, 40000, ACK, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "tcp",
            (S, 40000),
            (C, 50000),
            "first-packet",
            "OTH",
            (1, 64),
            (1, 54),
            ("AP", "A")
        )]
    );
}

#[test]
fn tcp_first_packet_synack_makes_the_receiver_the_client() {
    // The SYN was not captured: the SYN-ACK's receiver (10.0.0.9:50000) is the client.
    // Server: SYN-ACK 54. Client: ACK 54 + data(20) 74 = 128 bytes, flags A|P.
    // No SYN seen from the client, so the handshake is incomplete: OTH (Zeek: no SYN, midstream).
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(S, 443, C, 50000, SA, 0)),
        rec(at_ms(1), tcp4(C, 50000, S, 443, ACK, 0)),
        rec(at_ms(2), tcp4(C, 50000, S, 443, PA, 20)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(2),
            "tcp",
            (C, 50000),
            (S, 443),
            "synack",
            "OTH",
            (2, 128),
            (1, 54),
            ("AP", "SA")
        )]
    );
}

#[test]
fn tcp_established_then_rst_from_client_is_rsto() {
    // Handshake, client data(10) = 64 bytes, then the client resets (RST|ACK 54).
    // Client: SYN 54 + ACK 54 + data 64 + RST 54 = 4 packets, 226 bytes, flags S|A|P|R.
    // Server: SYN-ACK 54. Originator reset an established connection -> RSTO.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(1), tcp4(S, 443, C, 50000, SA, 0)),
        rec(at_ms(2), tcp4(C, 50000, S, 443, ACK, 0)),
        rec(at_ms(3), tcp4(C, 50000, S, 443, PA, 10)),
        rec(at_ms(4), tcp4(C, 50000, S, 443, RA, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(4),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "RSTO",
            (4, 226),
            (1, 54),
            ("SAPR", "SA")
        )]
    );
}

#[test]
fn tcp_established_then_rst_from_server_is_rstr() {
    // Handshake, server data(10) = 64 bytes, then the server resets (RST|ACK 54).
    // Client: SYN + ACK = 2 packets, 108 bytes. Server: SYN-ACK 54 + 64 + 54 = 3 packets, 172.
    // Responder reset an established connection -> RSTR.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(1), tcp4(S, 443, C, 50000, SA, 0)),
        rec(at_ms(2), tcp4(C, 50000, S, 443, ACK, 0)),
        rec(at_ms(3), tcp4(S, 443, C, 50000, PA, 10)),
        rec(at_ms(4), tcp4(S, 443, C, 50000, RA, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(4),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "RSTR",
            (2, 108),
            (3, 172),
            ("SA", "SAPR")
        )]
    );
}

#[test]
fn tcp_syn_then_fin_without_answer_is_sh() {
    // SYN then a bare FIN, both 54 bytes, no answer: "originator sent a SYN followed by a FIN,
    // never a SYN-ACK from the responder" -> SH. Client flags S|F.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(1), tcp4(C, 50000, S, 443, FIN, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "SH",
            (2, 108),
            (0, 0),
            ("SF", "")
        )]
    );
}

#[test]
fn tcp_port_reuse_after_fin_both_ways_starts_a_new_flow() {
    // The full connection (t = 0..7 ms) closes with FIN from both sides; a SYN on the same
    // 5-tuple at t = 1000 ms starts a second connection: SYN, SYN-ACK, ACK.
    // Second flow: client SYN + ACK = 2 packets, 108 bytes; server SYN-ACK 54; established,
    // nobody closed -> S1.
    let mut recs = full_connection(0);
    recs.push(rec(at_ms(1000), tcp4(C, 50000, S, 443, SYN, 0)));
    recs.push(rec(at_ms(1001), tcp4(S, 443, C, 50000, SA, 0)));
    recs.push(rec(at_ms(1002), tcp4(C, 50000, S, 443, ACK, 0)));
    let (flows, stats) = flows_eth(&recs);
    assert_eq!(
        flows,
        vec![
            full_connection_row(0),
            row(
                at_ms(1000),
                at_ms(1002),
                "tcp",
                (C, 50000),
                (S, 443),
                "syn",
                "S1",
                (2, 108),
                (1, 54),
                ("SA", "SA")
            ),
        ]
    );
    assert_eq!(stats.flow_packets, 11);
}

#[test]
fn tcp_port_reuse_after_rst_starts_a_new_flow() {
    // SYN, RST|ACK (REJ); a new SYN 2 s later on the same 5-tuple: a RST closes a flow too.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(1), tcp4(S, 443, C, 50000, RA, 0)),
        rec(at_ms(2000), tcp4(C, 50000, S, 443, SYN, 0)),
    ]);
    assert_eq!(
        flows,
        vec![
            row(
                at_ms(0),
                at_ms(1),
                "tcp",
                (C, 50000),
                (S, 443),
                "syn",
                "REJ",
                (1, 54),
                (1, 54),
                ("S", "AR")
            ),
            row(
                at_ms(2000),
                at_ms(2000),
                "tcp",
                (C, 50000),
                (S, 443),
                "syn",
                "S0",
                (1, 54),
                (0, 0),
                ("S", "")
            ),
        ]
    );
}

#[test]
fn tcp_syn_retransmission_on_open_flow_stays_one_flow() {
    // SYN at 0, 1 s and 3 s (retransmissions): the flow is not closed, so one flow with
    // 3 client packets, 162 bytes, S0.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(1000), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(3000), tcp4(C, 50000, S, 443, SYN, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(3000),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S0",
            (3, 162),
            (0, 0),
            ("S", "")
        )]
    );
    // A SYN after the handshake (not closed) also stays in the flow: client SYN 54 + ACK 54 +
    // SYN 54 = 162, server SYN-ACK 54, established -> S1.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(1), tcp4(S, 443, C, 50000, SA, 0)),
        rec(at_ms(2), tcp4(C, 50000, S, 443, ACK, 0)),
        rec(at_ms(3), tcp4(C, 50000, S, 443, SYN, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(3),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S1",
            (3, 162),
            (1, 54),
            ("SA", "SA")
        )]
    );
}

#[test]
fn udp_idle_timeout_61s_splits_59s_does_not() {
    // Query 10.0.0.9:40000 -> 10.0.0.2:53 with 30 bytes of payload: 42 + 30 = 72 bytes.
    // Response 53 -> 40000 with 50 bytes: 42 + 50 = 92 bytes.
    let query = || udp4(C, 40000, S, 53, 30);
    let answer = || udp4(S, 53, C, 40000, 50);

    // 61 s apart: more than the 60 s UDP timeout -> two flows.
    // Flow 1: the query alone; 40000 -> 53 is not "from a server port", so first-packet; only the
    //         client spoke -> S0.
    // Flow 2: the answer alone; it comes from 53 (a server port) to 40000 -> basis port, the
    //         client is 10.0.0.9:40000 even though it sent nothing; only the responder spoke -> SHR.
    let (flows, _) = flows_eth(&[rec(at_ms(0), query()), rec(at_ms(61_000), answer())]);
    assert_eq!(
        flows,
        vec![
            row(
                at_ms(0),
                at_ms(0),
                "udp",
                (C, 40000),
                (S, 53),
                "first-packet",
                "S0",
                (1, 72),
                (0, 0),
                ("", "")
            ),
            row(
                at_ms(61_000),
                at_ms(61_000),
                "udp",
                (C, 40000),
                (S, 53),
                "port",
                "SHR",
                (0, 0),
                (1, 92),
                ("", "")
            ),
        ]
    );

    // 59 s apart: one flow, both sides spoke -> SF.
    let (flows, _) = flows_eth(&[rec(at_ms(0), query()), rec(at_ms(59_000), answer())]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(59_000),
            "udp",
            (C, 40000),
            (S, 53),
            "first-packet",
            "SF",
            (1, 72),
            (1, 92),
            ("", "")
        )]
    );
}

#[test]
fn tcp_idle_timeout_301s_splits_299s_does_not() {
    // Handshake at 0/1/2 ms, then client data(10) = 64 bytes after a gap.
    let recs = |gap_ms: i64| {
        vec![
            rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
            rec(at_ms(1), tcp4(S, 443, C, 50000, SA, 0)),
            rec(at_ms(2), tcp4(C, 50000, S, 443, ACK, 0)),
            rec(at_ms(2 + gap_ms), tcp4(C, 50000, S, 443, PA, 10)),
        ]
    };
    // 301 s > 300 s: the handshake is one flow (client 108, server 54, S1); the late data starts a
    // new flow: no SYN, 50000 is not a server port -> first-packet, client sent, server silent, OTH.
    let (flows, _) = flows_eth(&recs(301_000));
    assert_eq!(
        flows,
        vec![
            row(
                at_ms(0),
                at_ms(2),
                "tcp",
                (C, 50000),
                (S, 443),
                "syn",
                "S1",
                (2, 108),
                (1, 54),
                ("SA", "SA")
            ),
            row(
                at_ms(301_002),
                at_ms(301_002),
                "tcp",
                (C, 50000),
                (S, 443),
                "first-packet",
                "OTH",
                (1, 64),
                (0, 0),
                ("AP", "")
            ),
        ]
    );
    // 299 s: one flow, client 54 + 54 + 64 = 172 bytes.
    let (flows, _) = flows_eth(&recs(299_000));
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(299_002),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S1",
            (3, 172),
            (1, 54),
            ("SAP", "SA")
        )]
    );
}

fn icmp_echo(src: &str, dst: &str) -> Vec<u8> {
    // Ethernet + IPv4 + 8-byte ICMP echo request: 14 + 20 + 8 = 42 bytes.
    Frame {
        src: v4(src),
        dst: v4(dst),
        proto: proto::ICMP,
        sport: 0,
        dport: 0,
        flags: 0,
        payload: 0,
        vlans: Vec::new(),
    }
    .ethernet()
}

#[test]
fn custom_timeouts_from_engine_config() {
    // UDP packets 6 s apart (42 bytes each), TCP SYN retransmissions 11 s apart (54 each), ICMP
    // echos 3 s apart (42 each). Defaults (60/300/60 s): three flows.
    // Timeouts UDP 5 s, TCP 10 s, other 2 s: every gap is past its timeout -> six flows.
    let recs = vec![
        rec(at_ms(0), udp4(C, 40000, S, 9999, 0)),
        rec(at_ms(1), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(2), icmp_echo(C, S)),
        rec(at_ms(3002), icmp_echo(C, S)),
        rec(at_ms(6000), udp4(C, 40000, S, 9999, 0)),
        rec(at_ms(11_001), tcp4(C, 50000, S, 443, SYN, 0)),
    ];
    let udp = |t: i64, n: u64| {
        row(
            at_ms(t),
            at_ms(t + if n == 2 { 6000 } else { 0 }),
            "udp",
            (C, 40000),
            (S, 9999),
            "first-packet",
            "S0",
            (n, 42 * n),
            (0, 0),
            ("", ""),
        )
    };
    let tcp = |t: i64, n: u64| {
        row(
            at_ms(t),
            at_ms(t + if n == 2 { 11_000 } else { 0 }),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S0",
            (n, 54 * n),
            (0, 0),
            ("S", ""),
        )
    };
    let icmp = |t: i64, n: u64| {
        row(
            at_ms(t),
            at_ms(t + if n == 2 { 3000 } else { 0 }),
            "icmp",
            (C, 0),
            (S, 0),
            "first-packet",
            "S0",
            (n, 42 * n),
            (0, 0),
            ("", ""),
        )
    };

    let (flows, _) = flows_eth(&recs);
    assert_eq!(flows, vec![udp(0, 2), tcp(1, 2), icmp(2, 2)]);

    let cfg = EngineConfig {
        timeouts: Timeouts {
            tcp_ns: 10 * SEC,
            udp_ns: 5 * SEC,
            other_ns: 2 * SEC,
        },
        ..EngineConfig::default()
    };
    let (flows, _) = flows_eth_cfg(&recs, cfg);
    assert_eq!(
        flows,
        vec![
            udp(0, 1),
            tcp(1, 1),
            icmp(2, 1),
            icmp(3002, 1),
            udp(6000, 1),
            tcp(11_001, 1)
        ]
    );
}

#[test]
fn vlan_tagged_and_untagged_same_5tuple_are_two_flows() {
    // The same UDP 5-tuple with 20 bytes of payload: on VLAN 10 (42 + 20 + 4 = 66 bytes) and
    // untagged (62 bytes). The VLAN is part of the key -> two flows, vlan "10" and "".
    let mut tagged = Frame::udp(v4(C), 40000, v4(S), 9999, 20);
    tagged.vlans = vec![10];
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), tagged.ethernet()),
        rec(at_ms(1), udp4(C, 40000, S, 9999, 20)),
    ]);
    assert_eq!(
        flows,
        vec![
            FlowRow {
                vlan: "10".into(),
                ..row(
                    at_ms(0),
                    at_ms(0),
                    "udp",
                    (C, 40000),
                    (S, 9999),
                    "first-packet",
                    "S0",
                    (1, 66),
                    (0, 0),
                    ("", "")
                )
            },
            row(
                at_ms(1),
                at_ms(1),
                "udp",
                (C, 40000),
                (S, 9999),
                "first-packet",
                "S0",
                (1, 62),
                (0, 0),
                ("", "")
            ),
        ]
    );
}

#[test]
fn qinq_outer_vlan_is_the_key() {
    // SYN in QinQ outer 100 / inner 200: 54 + 8 = 62 bytes.
    // SYN-ACK with a single 802.1Q tag 100: 54 + 4 = 58 bytes -> same outer VLAN, same flow.
    // SYN in QinQ outer 101 / inner 200 (62 bytes) -> another flow, vlan 101.
    let syn = Frame::tcp(v4(C), 50000, v4(S), 443, SYN, 0).ip();
    let mut synack = Frame::tcp(v4(S), 443, v4(C), 50000, SA, 0);
    synack.vlans = vec![100];
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), qinq(100, 200, &syn)),
        rec(at_ms(1), synack.ethernet()),
        rec(at_ms(2), qinq(101, 200, &syn)),
    ]);
    assert_eq!(
        flows,
        vec![
            FlowRow {
                vlan: "100".into(),
                ..row(
                    at_ms(0),
                    at_ms(1),
                    "tcp",
                    (C, 50000),
                    (S, 443),
                    "syn",
                    "S1",
                    (1, 62),
                    (1, 58),
                    ("S", "SA")
                )
            },
            FlowRow {
                vlan: "101".into(),
                ..row(
                    at_ms(2),
                    at_ms(2),
                    "tcp",
                    (C, 50000),
                    (S, 443),
                    "syn",
                    "S0",
                    (1, 62),
                    (0, 0),
                    ("S", "")
                )
            },
        ]
    );
}

#[test]
fn mpls_two_labels_then_ipv4() {
    // SYN under two MPLS labels: 14 + 2*4 + 20 + 20 = 62 bytes. The SYN-ACK comes back as plain
    // Ethernet (54): labels are not part of the key, so one flow, S1.
    let syn = Frame::tcp(v4(C), 50000, v4(S), 443, SYN, 0).ip();
    let (flows, stats) = flows_eth(&[
        rec(at_ms(0), mpls(&[1000, 2000], &syn)),
        rec(at_ms(1), tcp4(S, 443, C, 50000, SA, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S1",
            (1, 62),
            (1, 54),
            ("S", "SA")
        )]
    );
    assert_eq!(stats.skipped, no_skips());
}

#[test]
fn ipv6_extension_headers_before_tcp() {
    // SYN 2001:db8::9:50000 -> 2001:db8::2:443 behind hop-by-hop (8) + destination options (8) +
    // routing (8 + 16 = 24): IPv6 payload 40 + TCP 20 -> 14 + 40 + 40 + 20 = 114 bytes.
    // SYN-ACK without extension headers: 14 + 40 + 20 = 74 bytes.
    let c6: std::net::Ipv6Addr = "2001:db8::9".parse().unwrap();
    let s6: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    let exts = [
        ext_options(EXT_HOP_BY_HOP, 1),
        ext_options(EXT_DEST_OPTS, 1),
        ext_routing("2001:db8::77".parse().unwrap()),
    ];
    let syn = ipv6_ext(c6, s6, &exts, proto::TCP, &tcp_segment(50000, 443, SYN, 0));
    assert_eq!(syn.len(), 100);
    let synack = Frame::tcp(s6.into(), 443, c6.into(), 50000, SA, 0).ethernet();
    let (flows, stats) = flows_eth(&[rec(at_ms(0), eth(&syn)), rec(at_ms(1), synack)]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "tcp",
            ("2001:db8::9", 50000),
            ("2001:db8::2", 443),
            "syn",
            "S1",
            (1, 114),
            (1, 74),
            ("S", "SA")
        )]
    );
    assert_eq!(stats.skipped, no_skips());
}

/// A UDP datagram 10.0.0.9:40000 -> 10.0.0.2:5000 with 1000 bytes of payload (1008 bytes with the
/// UDP header) cut at 400 and 800: fragments of 400, 400 and 208 bytes, i.e. Ethernet frames of
/// 14 + 20 + 400 = 434, 434 and 14 + 20 + 208 = 242 bytes.
fn udp_fragments() -> Vec<Vec<u8>> {
    let upper = udp_datagram(40000, 5000, 1000);
    assert_eq!(upper.len(), 1008);
    ipv4_fragments(C, S, proto::UDP, &upper, 0x4242, &[400, 800])
        .iter()
        .map(|ip| eth(ip))
        .collect()
}

#[test]
fn ipv4_fragments_out_of_order_make_one_flow_with_real_ports() {
    // Delivered last fragment first (t 0), then the first (t 1), then the middle one (t 2).
    // One flow: 3 packets, 242 + 434 + 434 = 1110 bytes, ports 40000 -> 5000 (never 0);
    // first_seen is the early last fragment. 5000 is not a server port -> first-packet; S0.
    let f = udp_fragments();
    let recs = vec![
        rec(at_ms(0), f[2].clone()),
        rec(at_ms(1), f[0].clone()),
        rec(at_ms(2), f[1].clone()),
    ];
    let want = vec![row(
        at_ms(0),
        at_ms(2),
        "udp",
        (C, 40000),
        (S, 5000),
        "first-packet",
        "S0",
        (3, 1110),
        (0, 0),
        ("", ""),
    )];
    let (flows, stats) = flows_eth(&recs);
    assert_eq!(flows, want);
    assert_eq!(stats.packets, 3);
    assert_eq!(stats.flow_packets, 3);
    assert_eq!(stats.wire_bytes, 1110);
    assert_eq!(stats.skipped, no_skips());

    // The same with one packet per batch, so the held fragment waits across batches.
    for threads in [1, 3] {
        let file = write_pcap(link::ETHERNET, true, &recs);
        let out = run_paths(
            &[file.path().to_path_buf()],
            EngineConfig::default(),
            &RunOptions {
                threads,
                batch_packets: 1,
                progress: false,
                mmap: true,
            },
        );
        assert_eq!(rows(&out), want, "threads {threads}, batch 1");
        assert_eq!(out.stats, stats);
    }
}

#[test]
fn ipv6_fragments_out_of_order_make_one_flow_with_real_ports() {
    // UDP 2001:db8::9:40000 -> 2001:db8::2:5000 with 100 bytes (108 with the header), cut at 56:
    // first fragment 40 + 8 (fragment header) + 56 = 104 -> 118 bytes on Ethernet,
    // last fragment 40 + 8 + 52 = 100 -> 114 bytes. Last delivered first. One flow, 232 bytes.
    let c6: std::net::Ipv6Addr = "2001:db8::9".parse().unwrap();
    let s6: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    let upper = udp_datagram(40000, 5000, 100);
    let first = ipv6_ext(
        c6,
        s6,
        &[ext_fragment(0, true, 0xabcdef)],
        proto::UDP,
        &upper[..56],
    );
    let last = ipv6_ext(
        c6,
        s6,
        &[ext_fragment(7, false, 0xabcdef)],
        proto::UDP,
        &upper[56..],
    );
    let (flows, stats) = flows_eth(&[rec(at_ms(0), eth(&last)), rec(at_ms(1), eth(&first))]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "udp",
            ("2001:db8::9", 40000),
            ("2001:db8::2", 5000),
            "first-packet",
            "S0",
            (2, 232),
            (0, 0),
            ("", "")
        )]
    );
    assert_eq!(stats.skipped, no_skips());
}

#[test]
fn orphan_fragment_is_skipped_and_makes_no_flow() {
    // Only the middle fragment (434 bytes) of the datagram, plus an unrelated UDP packet (42 bytes).
    // The fragment never gets ports: Skip::OrphanFragment, and only the UDP packet makes a flow.
    let f = udp_fragments();
    let (flows, stats) = flows_eth(&[
        rec(at_ms(0), f[1].clone()),
        rec(at_ms(1), udp4(C, 40001, S, 9999, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(1),
            at_ms(1),
            "udp",
            (C, 40001),
            (S, 9999),
            "first-packet",
            "S0",
            (1, 42),
            (0, 0),
            ("", "")
        )]
    );
    assert_eq!(stats.skipped, BTreeMap::from([(Skip::OrphanFragment, 1)]));
    assert_eq!(stats.flow_packets, 1);
}

#[test]
fn orphan_fragment_still_counts_as_a_packet_read() {
    // 2 packets read (434 + 42 = 476 bytes): 1 made a flow, 1 skipped as an orphan fragment.
    // Every skip reason counts in `packets` (packets = flow_packets + skipped), orphans too: a
    // held fragment is counted when its first fragment arrives, or as skipped at the end.
    let f = udp_fragments();
    let (_, stats) = flows_eth(&[
        rec(at_ms(0), f[1].clone()),
        rec(at_ms(1), udp4(C, 40001, S, 9999, 0)),
    ]);
    assert_eq!(stats.skipped_total(), 1);
    assert_eq!(stats.packets, stats.flow_packets + stats.skipped_total());
    assert_eq!(stats.packets, 2);
    assert_eq!(stats.wire_bytes, 476);
}

/// The flow every link type must give: SYN (40-byte IPv4 / 60-byte IPv6 packet), SYN-ACK (same
/// size), client data with 3 bytes of payload (43 / 63 bytes). Byte counts vary with the link
/// header and are given per case.
fn link_flow(client: &str, server: &str, c_bytes: u64, s_bytes: u64) -> FlowRow {
    row(
        at_ms(0),
        at_ms(2),
        "tcp",
        (client, 50000),
        (server, 443),
        "syn",
        "S1",
        (2, c_bytes),
        (1, s_bytes),
        ("SAP", "SA"),
    )
}

fn link_packets(src: std::net::IpAddr, dst: std::net::IpAddr) -> [Vec<u8>; 3] {
    [
        Frame::tcp(src, 50000, dst, 443, SYN, 0).ip(),
        Frame::tcp(dst, 443, src, 50000, SA, 0).ip(),
        Frame::tcp(src, 50000, dst, 443, PA, 3).ip(),
    ]
}

#[test]
fn every_link_type_gives_the_same_flow() {
    type Wrap = fn(&[u8]) -> Vec<u8>;
    let ip4 = link_packets(v4(C), v4(S));
    assert_eq!([ip4[0].len(), ip4[1].len(), ip4[2].len()], [40, 40, 43]);
    let ip6 = link_packets(v6("2001:db8::9"), v6("2001:db8::2"));
    assert_eq!([ip6[0].len(), ip6[1].len(), ip6[2].len()], [60, 60, 63]);

    // (link type, frame builder, client bytes, server bytes), worked out as
    // client = (SYN + h) + (data + h), server = SYN-ACK + h, with h the link header:
    // Ethernet 14, SLL 16, SLL2 20, null/loop 4, raw 0. NFLOG: 4-byte header + prefix TLV 12 +
    // hw TLV 8 + payload TLV header 4 = 28, and the payload TLV is padded to 4 bytes
    // (43 -> 44, 63 -> 64).
    let v4_cases: Vec<(u16, Wrap, u64, u64)> = vec![
        (link::ETHERNET, |ip| eth(ip), 54 + 57, 54),
        (link::LINUX_SLL, |ip| sll(ET_IPV4, ip), 56 + 59, 56),
        (link::LINUX_SLL2, |ip| sll2(ET_IPV4, ip), 60 + 63, 60),
        (link::NULL, |ip| null_link(2, ip), 44 + 47, 44),
        (
            link::LOOP,
            |ip| {
                let mut f = 2u32.to_be_bytes().to_vec();
                f.extend_from_slice(ip);
                f
            },
            44 + 47,
            44,
        ),
        (link::RAW, |ip| ip.to_vec(), 40 + 43, 40),
        (link::IPV4, |ip| ip.to_vec(), 40 + 43, 40),
        (
            link::NFLOG,
            |ip| nflog(2, ip),
            (28 + 40) + (28 + 44),
            28 + 40,
        ),
    ];
    let v6_cases: Vec<(u16, Wrap, u64, u64)> = vec![
        (link::ETHERNET, |ip| eth(ip), 74 + 77, 74),
        (link::LINUX_SLL, |ip| sll(ET_IPV6, ip), 76 + 79, 76),
        (link::LINUX_SLL2, |ip| sll2(ET_IPV6, ip), 80 + 83, 80),
        (link::NULL, |ip| null_link(24, ip), 64 + 67, 64),
        (link::NULL, |ip| null_link(28, ip), 64 + 67, 64),
        (link::NULL, |ip| null_link(30, ip), 64 + 67, 64),
        (link::RAW, |ip| ip.to_vec(), 60 + 63, 60),
        (link::IPV6, |ip| ip.to_vec(), 60 + 63, 60),
        (
            link::NFLOG,
            |ip| nflog(10, ip),
            (28 + 60) + (28 + 64),
            28 + 60,
        ),
    ];
    for (ips, cases, client, server) in [
        (&ip4, &v4_cases, C, S),
        (&ip6, &v6_cases, "2001:db8::9", "2001:db8::2"),
    ] {
        for (i, &(lt, wrap, cb, sb)) in cases.iter().enumerate() {
            let recs: Vec<Rec> = ips
                .iter()
                .enumerate()
                .map(|(k, ip)| rec(at_ms(k as i64), wrap(ip)))
                .collect();
            let (flows, stats) = flows_pcap(lt, &recs);
            let want = link_flow(client, server, cb, sb);
            assert_eq!(
                flows,
                vec![want],
                "link type {lt} (case {i}, client {client})"
            );
            assert_eq!(stats.skipped, no_skips(), "link type {lt}");
        }
    }
}

#[test]
fn unsupported_link_type_is_counted_and_skipped() {
    // Two records on link type 147 (LINKTYPE_USER0): no flow, both skipped for that reason.
    let ip = Frame::tcp(v4(C), 50000, v4(S), 443, SYN, 0).ip();
    let (flows, stats) = flows_pcap(147, &[rec(at_ms(0), ip.clone()), rec(at_ms(1), ip)]);
    assert!(flows.is_empty());
    assert_eq!(
        stats.skipped,
        BTreeMap::from([(Skip::UnsupportedLinkType(147), 2)])
    );
    assert_eq!(stats.packets, 2);
    assert_eq!(stats.flow_packets, 0);
}

#[test]
fn arp_is_not_ip() {
    // An ARP request (Ethernet 14 + 28 = 42 bytes) and one SYN (54): the ARP frame is
    // Skip::NotIp, the SYN still makes its flow.
    let mut arp = vec![0u8, 1, 0x08, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 9, 10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    let arp = flowaudit::synth::ethernet(&[], ET_ARP, &arp);
    assert_eq!(arp.len(), 42);
    let (flows, stats) = flows_eth(&[
        rec(at_ms(0), arp),
        rec(at_ms(1), tcp4(C, 50000, S, 443, SYN, 0)),
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(1),
            at_ms(1),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S0",
            (1, 54),
            (0, 0),
            ("S", "")
        )]
    );
    assert_eq!(stats.skipped, BTreeMap::from([(Skip::NotIp, 1)]));
}

#[test]
fn snaplen_truncated_packet_counts_its_original_length() {
    // SYN (54), SYN-ACK (54), then client data with 1000 bytes of payload (1054 on the wire)
    // captured with a 68-byte snaplen: caplen 68 < orig_len 1054. Bytes count orig_len:
    // client 54 + 1054 = 1108.
    // A fourth packet captured with only 44 bytes (14 + 20 + 10: half a TCP header) has no
    // ports: Skip::TruncatedTransportHeader.
    let data = tcp4(C, 50000, S, 443, PA, 1000);
    assert_eq!(data.len(), 1054);
    let cut = Rec {
        ts: at_ms(2),
        data: data[..68].to_vec(),
        orig_len: 1054,
        iface: 0,
    };
    let cut_hdr = Rec {
        ts: at_ms(3),
        data: data[..44].to_vec(),
        orig_len: 1054,
        iface: 0,
    };
    let (flows, stats) = flows_eth(&[
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(1), tcp4(S, 443, C, 50000, SA, 0)),
        cut,
        cut_hdr,
    ]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(2),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S1",
            (2, 1108),
            (1, 54),
            ("SAP", "SA")
        )]
    );
    assert_eq!(
        stats.skipped,
        BTreeMap::from([(Skip::TruncatedTransportHeader, 1)])
    );
}

#[test]
fn pcap_microsecond_and_nanosecond_timestamps() {
    // T0 + 123456789 ns. A microsecond pcap stores 123456 us -> "1700000000.123456000";
    // a nanosecond pcap stores it all -> "1700000000.123456789".
    let t = T0 + 123_456_789;
    let recs = [rec(t, udp4(C, 40000, S, 9999, 0))];
    for (nanos, want) in [
        (false, "1700000000.123456000"),
        (true, "1700000000.123456789"),
    ] {
        let f = write_pcap(link::ETHERNET, nanos, &recs);
        let out = run_paths(&[f.path().to_path_buf()], EngineConfig::default(), &opts());
        let r = rows(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].first_seen_epoch, want, "nanos {nanos}");
        assert_eq!(r[0].last_seen_epoch, want, "nanos {nanos}");
        assert_eq!(r[0].first_seen, "2023-11-14T22:13:20.123Z");
    }
}

#[test]
fn pcapng_two_interfaces_with_different_link_types() {
    // Interface 0 is Ethernet, interface 1 raw IP.
    // Flow A (UDP, 10 bytes of payload: 52 bytes on Ethernet) both ways on interface 0 -> SF.
    // Flow B: SYN and SYN-ACK on interface 1 (40 bytes each, raw), then the client's ACK on
    // interface 0 (54): client 40 + 54 = 94, server 40; S1.
    let recs = vec![
        rec_on(0, at_ms(0), udp4(C, 40000, S, 53, 10)),
        rec_on(0, at_ms(1), udp4(S, 53, C, 40000, 10)),
        rec_on(
            1,
            at_ms(2),
            Frame::tcp(v4(C), 50000, v4(S), 443, SYN, 0).ip(),
        ),
        rec_on(
            1,
            at_ms(3),
            Frame::tcp(v4(S), 443, v4(C), 50000, SA, 0).ip(),
        ),
        rec_on(0, at_ms(4), tcp4(C, 50000, S, 443, ACK, 0)),
    ];
    let f = write_pcapng(&[link::ETHERNET, link::RAW], &recs);
    let out = run_paths(&[f.path().to_path_buf()], EngineConfig::default(), &opts());
    assert_eq!(
        rows(&out),
        vec![
            row(
                at_ms(0),
                at_ms(1),
                "udp",
                (C, 40000),
                (S, 53),
                "first-packet",
                "SF",
                (1, 52),
                (1, 52),
                ("", "")
            ),
            row(
                at_ms(2),
                at_ms(4),
                "tcp",
                (C, 50000),
                (S, 443),
                "syn",
                "S1",
                (2, 94),
                (1, 40),
                ("SA", "SA")
            ),
        ]
    );
    assert_eq!(out.stats.skipped, no_skips());
    assert_eq!(out.stats.reader_skipped, 0);
}

#[test]
fn icmp_port_unreachable_marks_the_udp_flow() {
    // UDP 10.0.0.9:40000 -> 10.0.0.2:9999 with 10 bytes: 52 on Ethernet (IP packet 38 bytes).
    // 10.0.0.2 answers ICMP type 3 code 3 quoting the whole 38-byte packet:
    // 14 + 20 + 8 + 38 = 80 bytes.
    // Flows: the UDP flow (S0) marked icmp_unreachable, and the ICMP flow itself (client is its
    // sender 10.0.0.2: no ports, first-packet; S0). No second UDP flow from the quoted headers.
    let udp = Frame::udp(v4(C), 40000, v4(S), 9999, 10);
    let icmp = icmp4_unreachable(S, C, &udp.ip());
    let (flows, stats) = flows_eth(&[rec(at_ms(0), udp.ethernet()), rec(at_ms(1), eth(&icmp))]);
    assert_eq!(
        flows,
        vec![
            FlowRow {
                icmp_unreachable: true,
                ..row(
                    at_ms(0),
                    at_ms(0),
                    "udp",
                    (C, 40000),
                    (S, 9999),
                    "first-packet",
                    "S0",
                    (1, 52),
                    (0, 0),
                    ("", "")
                )
            },
            row(
                at_ms(1),
                at_ms(1),
                "icmp",
                (S, 0),
                (C, 0),
                "first-packet",
                "S0",
                (1, 80),
                (0, 0),
                ("", "")
            ),
        ]
    );
    assert_eq!(stats.flow_packets, 2);
}

#[test]
fn gre_is_one_flow_by_default_and_the_inner_flow_with_decap() {
    // Inner SYN 192.168.1.9:50000 -> 192.168.1.2:22 (40 bytes) and its SYN-ACK, each in GRE
    // (4-byte header) between 10.1.1.1 and 10.1.1.2: 14 + 20 + 4 + 40 = 78 bytes per frame.
    let syn = Frame::tcp(v4("192.168.1.9"), 50000, v4("192.168.1.2"), 22, SYN, 0).ip();
    let synack = Frame::tcp(v4("192.168.1.2"), 22, v4("192.168.1.9"), 50000, SA, 0).ip();
    let recs = [
        rec(at_ms(0), eth(&gre4("10.1.1.1", "10.1.1.2", &syn))),
        rec(at_ms(1), eth(&gre4("10.1.1.2", "10.1.1.1", &synack))),
    ];
    // Default: the outer packets, one GRE flow with no ports; both sides spoke -> SF.
    let (flows, _) = flows_eth(&recs);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "gre",
            ("10.1.1.1", 0),
            ("10.1.1.2", 0),
            "first-packet",
            "SF",
            (1, 78),
            (1, 78),
            ("", "")
        )]
    );
    // decap: the inner TCP flow, S1, with the outer frames' wire bytes.
    let cfg = EngineConfig {
        decode: DecodeOptions::with_decap(true),
        ..EngineConfig::default()
    };
    let (flows, _) = flows_eth_cfg(&recs, cfg);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(1),
            "tcp",
            ("192.168.1.9", 50000),
            ("192.168.1.2", 22),
            "syn",
            "S1",
            (1, 78),
            (1, 78),
            ("S", "SA")
        )]
    );
}

#[test]
fn two_files_are_merged_in_time_order() {
    // Each side of the link captured into its own file:
    // file 1 (client side): SYN 0, ACK 2, FIN|ACK 4, ACK 6, new SYN 7 ms; UDP query at 10 s and
    //   110 s (42 bytes each)
    // file 2 (server side): SYN-ACK 1, FIN|ACK 5, SYN-ACK 8 ms; UDP answer at 60 s (42 bytes)
    // In time order: the first connection closes with both FINs at 5 ms, so the SYN at 7 ms is a
    // new connection (2 TCP flows), and the UDP gaps are 50 s + 50 s (< 60 s, one UDP flow).
    // Read file after file instead, the SYN at 7 ms would come before any server FIN (a
    // retransmission: 1 TCP flow), and the UDP gap 10 s -> 110 s would split the UDP flow.
    // Flow 1: client SYN, ACK, FIN, ACK = 4 x 54 = 216; server SYN-ACK, FIN = 108 -> SF.
    // Flow 2: SYN 54 / SYN-ACK 54 -> S1.
    // UDP: client 2 x 42 = 84, server 42 -> SF.
    let f1 = vec![
        rec(at_ms(0), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(2), tcp4(C, 50000, S, 443, ACK, 0)),
        rec(at_ms(4), tcp4(C, 50000, S, 443, FA, 0)),
        rec(at_ms(6), tcp4(C, 50000, S, 443, ACK, 0)),
        rec(at_ms(7), tcp4(C, 50000, S, 443, SYN, 0)),
        rec(at_ms(10_000), udp4(C, 40000, S, 9999, 0)),
        rec(at_ms(110_000), udp4(C, 40000, S, 9999, 0)),
    ];
    let f2 = vec![
        rec(at_ms(1), tcp4(S, 443, C, 50000, SA, 0)),
        rec(at_ms(5), tcp4(S, 443, C, 50000, FA, 0)),
        rec(at_ms(8), tcp4(S, 443, C, 50000, SA, 0)),
        rec(at_ms(60_000), udp4(S, 9999, C, 40000, 0)),
    ];
    let want = vec![
        row(
            at_ms(0),
            at_ms(6),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "SF",
            (4, 216),
            (2, 108),
            ("SAF", "SAF"),
        ),
        row(
            at_ms(7),
            at_ms(8),
            "tcp",
            (C, 50000),
            (S, 443),
            "syn",
            "S1",
            (1, 54),
            (1, 54),
            ("S", "SA"),
        ),
        row(
            at_ms(10_000),
            at_ms(110_000),
            "udp",
            (C, 40000),
            (S, 9999),
            "first-packet",
            "SF",
            (2, 84),
            (1, 42),
            ("", ""),
        ),
    ];
    let a = write_pcap(link::ETHERNET, true, &f1);
    let b = write_pcapng(&[link::ETHERNET], &f2);
    let pa: PathBuf = a.path().to_path_buf();
    let pb: PathBuf = b.path().to_path_buf();
    for paths in [vec![pa.clone(), pb.clone()], vec![pb, pa]] {
        for (threads, batch) in [(1, 1), (2, 2), (2, 16384)] {
            let out = run_paths(
                &paths,
                EngineConfig::default(),
                &RunOptions {
                    threads,
                    batch_packets: batch,
                    progress: false,
                    mmap: true,
                },
            );
            assert_eq!(
                rows(&out),
                want,
                "files {paths:?}, threads {threads}, batch {batch}"
            );
            assert_eq!(out.stats.packets, 11);
        }
    }
}

#[test]
fn icmp_unreachable_for_an_unseen_flow_creates_no_udp_flow() {
    // Only the ICMP error (quoting IP header + 8 UDP bytes, 28 bytes: 14 + 20 + 8 + 28 = 70).
    // The quoted UDP attempt was never captured: no UDP flow appears from the quote.
    let quoted = Frame::udp(v4(C), 40000, v4(S), 9999, 10).ip();
    let icmp = icmp4_unreachable(S, C, &quoted[..28]);
    let (flows, _) = flows_eth(&[rec(at_ms(0), eth(&icmp))]);
    assert_eq!(
        flows,
        vec![row(
            at_ms(0),
            at_ms(0),
            "icmp",
            (S, 0),
            (C, 0),
            "first-packet",
            "S0",
            (1, 70),
            (0, 0),
            ("", "")
        )]
    );
}

#[test]
fn helpers_build_the_same_frames_as_synth() {
    // Sanity for the helpers: ip_packet + eth gives the same bytes as Frame::ethernet.
    let f = Frame::udp(v4(C), 40000, v4(S), 53, 7);
    assert_eq!(
        eth(&ip_packet(v4(C), v4(S), proto::UDP, &f.transport())),
        f.ethernet()
    );
}

#[test]
fn ipv4_fragment_id_reuse_does_not_borrow_stale_ports() {
    // Datagram A (id 0x4242, 40000 -> 5000) arrives complete and in order at 0-2 ms: one flow.
    // Later datagram B between the same hosts reuses id 0x4242 (IPv4 ids are 16 bits and wrap)
    // for 40001 -> 5000, and its last fragment arrives before its first (10, 11 ms).
    // B's last fragment belongs to 40001 -> 5000: A's flow has 3 packets (1110 bytes),
    // B's flow 2 packets: its first fragment (434) + its last (242) = 676 bytes.
    let a = udp_fragments();
    let upper_b = udp_datagram(40001, 5000, 1000);
    let b: Vec<Vec<u8>> = ipv4_fragments(C, S, proto::UDP, &upper_b, 0x4242, &[400])
        .iter()
        .map(|ip| eth(ip))
        .collect();
    // b[0]: 14 + 20 + 400 = 434; b[1]: 14 + 20 + 608 = 642.
    let (flows, _) = flows_eth(&[
        rec(at_ms(0), a[0].clone()),
        rec(at_ms(1), a[1].clone()),
        rec(at_ms(2), a[2].clone()),
        rec(at_ms(10), b[1].clone()),
        rec(at_ms(11), b[0].clone()),
    ]);
    assert_eq!(
        flows,
        vec![
            row(
                at_ms(0),
                at_ms(2),
                "udp",
                (C, 40000),
                (S, 5000),
                "first-packet",
                "S0",
                (3, 1110),
                (0, 0),
                ("", "")
            ),
            row(
                at_ms(10),
                at_ms(11),
                "udp",
                (C, 40001),
                (S, 5000),
                "first-packet",
                "S0",
                (2, 434 + 642),
                (0, 0),
                ("", "")
            ),
        ]
    );
}

/// Hand-made pcapng blocks (little-endian) for timestamp resolutions the writer does not produce.
fn ng_block(btype: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let total = (12 + body.len()) as u32;
    let mut b = btype.to_le_bytes().to_vec();
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(&body);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

fn ng_capture(idb_options: &[u8], ts_units: u64, frame: &[u8]) -> Vec<u8> {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut idb = link::ETHERNET.to_le_bytes().to_vec();
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    idb.extend_from_slice(idb_options);
    let mut epb = 0u32.to_le_bytes().to_vec();
    epb.extend_from_slice(&((ts_units >> 32) as u32).to_le_bytes());
    epb.extend_from_slice(&(ts_units as u32).to_le_bytes());
    epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    epb.extend_from_slice(frame);
    let mut out = ng_block(0x0a0d_0d0a, &shb);
    out.extend(ng_block(1, &idb));
    out.extend(ng_block(6, &epb));
    out
}

#[test]
fn pcapng_timestamp_resolutions_and_offset() {
    let frame = udp4(C, 40000, S, 9999, 0);
    let cases: Vec<(Vec<u8>, u64, &str)> = vec![
        // No if_tsresol: microseconds. 1700000000123456 us -> .123456000
        (
            vec![0, 0, 0, 0],
            1_700_000_000_123_456,
            "1700000000.123456000",
        ),
        // if_tsresol 3: milliseconds. 1700000000123 ms -> .123000000
        (
            vec![9, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0],
            1_700_000_000_123,
            "1700000000.123000000",
        ),
        // if_tsresol 0x8a: 2^-10 s. 1700000000 * 1024 + 512 units -> .5 s
        (
            vec![9, 0, 1, 0, 0x8a, 0, 0, 0, 0, 0, 0, 0],
            1_700_000_000 * 1024 + 512,
            "1700000000.500000000",
        ),
        // if_tsoffset 1700000000 s (option 14, 8 bytes) + 2500 us -> .002500000
        (
            [
                vec![14, 0, 8, 0],
                1_700_000_000i64.to_le_bytes().to_vec(),
                vec![0, 0, 0, 0],
            ]
            .concat(),
            2500,
            "1700000000.002500000",
        ),
    ];
    for (idb_opts, units, want) in cases {
        let f = temp_file(&ng_capture(&idb_opts, units, &frame), ".pcapng");
        let out = run_paths(&[f.path().to_path_buf()], EngineConfig::default(), &opts());
        let r = rows(&out);
        assert_eq!(r.len(), 1, "{want}");
        assert_eq!(r[0].first_seen_epoch, want);
    }
}

#[test]
fn idle_time_follows_the_capture_clock_so_sweeps_cannot_change_flows() {
    // The clock steps forward and back (a clock step, or two sensors merged badly):
    // - 256 small flows Y_i (UDP 10.6.0.x:3000+i -> 10.6.0.1:4000) send one packet at T0,
    // - a heavy flow H (UDP 10.5.0.1:1000 -> 10.5.0.2:2000) sends 65536 packets stamped T0+1000 s,
    // - each Y_i sends a second packet stamped T0+0.5 s.
    // Idle time is measured against the capture clock (the latest timestamp seen, like Zeek's
    // network_time): when Y_i's second packet arrives the clock says T0+1000 s, so Y_i has been
    // idle 1000 s > 60 s and the packet starts a new flow. That holds for every Y_i, whichever
    // shard it shares with H, so a sweep (which ends the same flows earlier) changes nothing:
    // 256 + 256 one-packet Y flows and one H flow.
    let y = |i: u16| {
        udp4(
            &format!("10.6.{}.{}", 1 + i / 200, 1 + i % 200),
            3000 + i,
            "10.6.0.1",
            4000,
            0,
        )
    };
    let mut recs = Vec::new();
    for i in 0..256 {
        recs.push(rec(T0, y(i)));
    }
    let h = udp4("10.5.0.1", 1000, "10.5.0.2", 2000, 0);
    for k in 0..65_536 {
        recs.push(rec(T0 + 1000 * SEC + k, h.clone()));
    }
    for i in 0..256 {
        recs.push(rec(T0 + 500 * MS, y(i)));
    }
    let f = write_pcap(link::ETHERNET, true, &recs);
    let out = run_paths(
        &[f.path().to_path_buf()],
        EngineConfig::default(),
        &RunOptions {
            threads: 2,
            batch_packets: 16384,
            progress: false,
            mmap: true,
        },
    );
    let r = rows(&out);
    let y_rows: Vec<&FlowRow> = r.iter().filter(|f| f.server_port == "4000").collect();
    assert_eq!(y_rows.len(), 512);
    assert!(
        y_rows.iter().all(|f| f.client_packets == 1),
        "every Y flow holds one packet"
    );
    assert_eq!(r.len(), 513);
}

#[test]
fn skipped_frames_count_their_bytes_like_orphans_do() {
    // An ARP frame (42 bytes) and a SYN (54): stats.packets counts both (2); stats.wire_bytes,
    // "sum of original frame lengths", should be 42 + 54 = 96, as it is when the skipped packet
    // is an orphan fragment (orphan_fragment_still_counts_as_a_packet_read). The summary shows
    // "packets: 2 bytes: 54".
    let mut arp = vec![0u8, 1, 0x08, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&[0u8; 20]);
    let arp = flowaudit::synth::ethernet(&[], ET_ARP, &arp);
    assert_eq!(arp.len(), 42);
    let (_, stats) = flows_eth(&[
        rec(at_ms(0), arp),
        rec(at_ms(1), tcp4(C, 50000, S, 443, SYN, 0)),
    ]);
    assert_eq!(stats.packets, 2);
    assert_eq!(stats.wire_bytes, 96);
}
