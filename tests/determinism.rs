//! The result must not depend on the thread count or the batch size: random captures (the synth
//! generator plus hand-made fragments, ICMP errors, VLAN copies and junk) run with 1, 2 and 7
//! threads and random batch sizes (and finished flows spilled to disk at random points) give
//! identical flows and stats; the binary's CSV is byte-identical for --threads 1 and 2, and with
//! spilling.

mod common;

use std::process::Command;

use common::*;
use flowaudit::decode::{proto, DecodeOptions};
use flowaudit::engine::run::RunOptions;
use flowaudit::engine::EngineConfig;
use flowaudit::flow::Timeouts;
use flowaudit::synth::{generate, Frame, Rng, SynthSpec};
use proptest::prelude::*;

/// Parses the little-endian microsecond pcap `generate` writes back into records.
fn parse_pcap(b: &[u8]) -> Vec<Rec> {
    assert_eq!(&b[..4], &0xa1b2_c3d4u32.to_le_bytes());
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 24;
    while at < b.len() {
        let secs = u32_at(at) as i64;
        let us = u32_at(at + 4) as i64;
        let caplen = u32_at(at + 8) as usize;
        let orig = u32_at(at + 12);
        let data = b[at + 16..at + 16 + caplen].to_vec();
        out.push(Rec {
            ts: secs * SEC + us * 1000,
            data,
            orig_len: orig,
            iface: 0,
        });
        at += 16 + caplen;
    }
    out
}

/// Frames that exercise the order-sensitive parts of the engine: fragments (some out of order,
/// some orphaned), ICMP errors quoting captured packets, VLAN copies of captured frames, junk.
/// Each extra goes before record `index` of the synth capture, with a timestamp near it.
fn extras(base: &[Rec], seed: u64, count: usize) -> Vec<(usize, Rec)> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut out: Vec<(usize, Rec)> = Vec::new();
    let n = base.len();
    let mut id: u16 = 1;
    while out.len() < count {
        let index = rng.below(n as u64 + 1) as usize;
        let ts = base[index.min(n - 1)].ts - rng.below(3) as i64 * 1000;
        match rng.below(5) {
            0 => {
                // A fragmented UDP datagram, fragments shuffled and spread over a few records;
                // one time in four the first fragment is lost (the rest become orphans).
                let src = format!("172.16.{}.{}", rng.below(4), 1 + rng.below(50));
                let dst = format!("172.17.0.{}", 1 + rng.below(20));
                let upper = udp_datagram(
                    30000 + rng.below(50) as u16,
                    5000 + rng.below(3) as u16,
                    100 + rng.below(2000) as usize,
                );
                let pieces = 2 + rng.below(3) as usize;
                let step = (upper.len() / pieces / 8).max(1) * 8;
                let cuts: Vec<usize> = (1..pieces)
                    .map(|k| k * step)
                    .filter(|&c| c < upper.len())
                    .collect();
                id = id.wrapping_add(1);
                let mut frags = ipv4_fragments(&src, &dst, proto::UDP, &upper, id, &cuts);
                if rng.below(4) == 0 {
                    frags.remove(0);
                }
                // Fisher-Yates with the seeded generator.
                for i in (1..frags.len()).rev() {
                    let j = rng.below(i as u64 + 1) as usize;
                    frags.swap(i, j);
                }
                let vlan = rng.below(3) == 0;
                for (k, ip) in frags.iter().enumerate() {
                    let mut f = eth(ip);
                    if vlan {
                        f = add_vlan_tag(&f, 77);
                    }
                    let at = (index + k * rng.below(40) as usize).min(n);
                    out.push((at, rec(ts, f)));
                }
            }
            1 => {
                // An ICMP port unreachable quoting a captured IPv4 packet (IP header + 8 bytes).
                let q = &base[rng.below(n as u64) as usize].data;
                if q.len() >= 14 + 28 && q[12..14] == [0x08, 0x00] {
                    let ip = &q[14..14 + 28];
                    let from = format!("{}.{}.{}.{}", ip[16], ip[17], ip[18], ip[19]);
                    let to = format!("{}.{}.{}.{}", ip[12], ip[13], ip[14], ip[15]);
                    out.push((index, rec(ts, eth(&icmp4_unreachable(&from, &to, ip)))));
                }
            }
            2 => {
                // A captured frame again, on a VLAN (a second capture point).
                let f = &base[rng.below(n as u64) as usize].data;
                out.push((index, rec(ts, add_vlan_tag(f, 1 + rng.below(3) as u16))));
            }
            3 => {
                // GRE around a TCP segment (one flow by default, the inner one with decap).
                let inner = Frame::tcp(
                    v4("192.168.9.1"),
                    40000 + rng.below(5) as u16,
                    v4("192.168.9.2"),
                    22,
                    if rng.below(2) == 0 { SYN } else { ACK },
                    0,
                )
                .ip();
                out.push((index, rec(ts, eth(&gre4("10.99.0.1", "10.99.0.2", &inner)))));
            }
            _ => {
                // Junk: ARP, a truncated IPv4 header, a frame cut inside its TCP header.
                let f = match rng.below(3) {
                    0 => flowaudit::synth::ethernet(&[], ET_ARP, &[0u8; 28]),
                    1 => flowaudit::synth::ethernet(&[], ET_IPV4, &[0x45, 0, 0, 40, 0, 0]),
                    _ => {
                        let b = &base[rng.below(n as u64) as usize].data;
                        b[..b.len().min(40)].to_vec()
                    }
                };
                out.push((index, rec(ts, f)));
            }
        }
    }
    out
}

/// The synth capture with the extras woven in.
fn capture(spec: &SynthSpec, extra: usize) -> Vec<u8> {
    let mut synth = Vec::new();
    generate(spec, &mut synth).expect("generate");
    let base = parse_pcap(&synth);
    let mut ex = extras(&base, spec.seed, extra);
    ex.sort_by_key(|(i, _)| *i); // stable: extras at one index keep their order
    let mut recs = Vec::with_capacity(base.len() + ex.len());
    let mut ex = ex.into_iter().peekable();
    for (i, r) in base.into_iter().enumerate() {
        while ex.peek().is_some_and(|(at, _)| *at <= i) {
            recs.push(ex.next().unwrap().1);
        }
        recs.push(r);
    }
    recs.extend(ex.map(|(_, r)| r));
    pcap_bytes(link::ETHERNET, true, &recs)
}

fn config(
    small_table: Option<usize>,
    short_timeouts: Option<(i64, i64, i64)>,
    decap: bool,
) -> EngineConfig {
    let mut cfg = EngineConfig {
        decode: DecodeOptions::with_decap(decap),
        ..EngineConfig::default()
    };
    if let Some(m) = small_table {
        cfg.max_flows = m;
    }
    if let Some((t, u, o)) = short_timeouts {
        // The synth capture advances 1-2 us per packet: timeouts of tens of microseconds split
        // flows all the time.
        cfg.timeouts = Timeouts {
            tcp_ns: t,
            udp_ns: u,
            other_ns: o,
        };
    }
    cfg
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn same_flows_and_stats_for_any_threads_and_batch(
        seed in any::<u64>(),
        packets in 2000u64..20000,
        flows in 1u64..3000,
        concurrent in 1u64..500,
        small in any::<bool>(),
        extra in 0usize..400,
        batches in proptest::array::uniform3(1usize..5000),
        small_table in proptest::option::of(64usize..4000),
        short_timeouts in proptest::option::of((10_000i64..2_000_000, 10_000i64..2_000_000, 10_000i64..2_000_000)),
        decap in any::<bool>(),
        spill_after in proptest::option::of(1usize..3000),
    ) {
        let spec = SynthSpec { packets, flows, concurrent, seed, small };
        let file = temp_file(&capture(&spec, extra), ".pcap");
        let mut cfg = config(small_table, short_timeouts, decap);
        if let Some(n) = spill_after {
            cfg.spill_after = n;
        }
        let mut first: Option<(Vec<flowaudit::report::flows::FlowRow>, flowaudit::engine::Stats)> = None;
        for (threads, batch) in [1usize, 2, 7].into_iter().zip(batches) {
            let out = run_paths(
                &[file.path().to_path_buf()],
                cfg.clone(),
                &RunOptions { threads, batch_packets: batch, progress: false, mmap: threads != 1 },
            );
            let mut stats = out.stats.clone();
            // When finished flows go to disk depends on the batch boundaries; what comes back
            // must not.
            stats.spilled_flows = 0;
            let got = (rows(&out), stats);
            prop_assert_eq!(
                got.1.packets,
                got.1.flow_packets + got.1.skipped_total(),
                "every packet is in a flow or skipped (seed {})",
                seed
            );
            prop_assert!(!got.0.is_empty());
            match &first {
                None => first = Some(got),
                Some(f) => {
                    prop_assert_eq!(&got.0, &f.0, "flows differ: threads {} batch {}", threads, batch);
                    prop_assert_eq!(&got.1, &f.1, "stats differ: threads {} batch {}", threads, batch);
                }
            }
        }
    }
}

#[test]
fn cli_csv_is_byte_identical_for_one_and_two_threads() {
    let spec = SynthSpec {
        packets: 20_000,
        flows: 1500,
        concurrent: 300,
        seed: 7,
        small: false,
    };
    let file = temp_file(&capture(&spec, 300), ".pcap");
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    let runs = [
        ("1", "16384", "4000000", "1000000"),
        ("2", "16384", "4000000", "1000000"),
        ("2", "37", "4000000", "1000000"),
        // A small table (flows evicted, so they finish during the run), in memory...
        ("2", "16384", "256", "1000000"),
        // ... and spilled to disk every few batches (more than 64 runs, so they are also
        // merged on disk during the run).
        ("2", "37", "256", "3"),
    ];
    for (threads, batch, max_flows, spill) in runs {
        let out = dir
            .path()
            .join(format!("flows-{threads}-{batch}-{max_flows}-{spill}.csv"));
        let st = Command::new(env!("CARGO_BIN_EXE_flowaudit"))
            .args(["flows"])
            .arg(file.path())
            .arg("-o")
            .arg(&out)
            .args(["--threads", threads, "--batch", batch])
            .args(["--max-flows", max_flows, "--spill-after", spill])
            .output()
            .unwrap();
        let summary = String::from_utf8_lossy(&st.stderr);
        let spilled = summary.contains("written to the spill directory");
        assert_eq!(spilled, spill == "3", "{summary}");
        assert!(
            st.status.success(),
            "threads {threads}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert!(outputs[0].len() > 1000);
    assert!(
        outputs[0] == outputs[1],
        "CSV differs between --threads 1 and 2"
    );
    assert!(
        outputs[0] == outputs[2],
        "CSV differs between --batch 16384 and 37"
    );
    assert!(
        outputs[3] == outputs[4],
        "CSV differs when finished flows are spilled to disk"
    );
    assert!(outputs[3] != outputs[0], "the small table evicted nothing");
}

#[test]
fn the_extras_reach_the_order_sensitive_paths() {
    // Guards the generator above: a fixed capture must contain out-of-order fragments that make
    // flows, orphans, ICMP-refused flows, VLAN flows, GRE and junk, or the property proves little.
    let spec = SynthSpec {
        packets: 5000,
        flows: 400,
        concurrent: 50,
        seed: 11,
        small: true,
    };
    let file = temp_file(&capture(&spec, 400), ".pcap");
    let out = run_paths(
        &[file.path().to_path_buf()],
        EngineConfig::default(),
        &opts(),
    );
    let r = rows(&out);
    let skipped = &out.stats.skipped;
    use flowaudit::decode::Skip;
    assert!(
        skipped.get(&Skip::OrphanFragment).copied().unwrap_or(0) > 0,
        "{skipped:?}"
    );
    assert!(
        skipped.get(&Skip::NotIp).copied().unwrap_or(0) > 0,
        "{skipped:?}"
    );
    assert!(
        skipped.get(&Skip::TruncatedIpHeader).copied().unwrap_or(0) > 0,
        "{skipped:?}"
    );
    assert!(
        skipped
            .get(&Skip::TruncatedTransportHeader)
            .copied()
            .unwrap_or(0)
            > 0,
        "{skipped:?}"
    );
    let frag_flows: Vec<_> = r
        .iter()
        .filter(|f| f.client_addr.starts_with("172.16."))
        .collect();
    assert!(frag_flows.len() > 10);
    assert!(
        frag_flows
            .iter()
            .all(|f| f.client_port != "0" && f.server_port != "0"),
        "{frag_flows:?}"
    );
    assert!(frag_flows.iter().any(|f| f.client_packets > 1));
    assert!(frag_flows.iter().any(|f| f.vlan == "77"));
    assert!(r.iter().any(|f| f.icmp_unreachable));
    assert!(r
        .iter()
        .any(|f| f.vlan == "1" || f.vlan == "2" || f.vlan == "3"));
    assert!(r.iter().any(|f| f.proto == "gre"));
}
