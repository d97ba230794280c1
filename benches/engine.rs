//! Criterion benchmarks of the capture engine's hot path (docs/performance.md).
//!
//! - `decode/*`: `decode::decode` over a batch of typical frames (IPv4 TCP and UDP on Ethernet,
//!   an 802.1Q-tagged frame, IPv6), one element = one frame.
//! - `flow_table/*`: `FlowTable::update` over packets decoded beforehand from a synthetic capture
//!   whose flows are all open at once, spread over 1k and 100k flows. `fresh` starts from an empty
//!   table (inserts, growth, handshakes and FINs included); `warm` replays only the data packets
//!   into a table that already holds every flow (pure lookup + update). `warm-prefetched` is
//!   `warm` the way the engine's shard loop runs it: each packet's hash computed beforehand (the
//!   engine does that in its parallel decode stage), the index slot prefetched 8 packets ahead and
//!   the entry 4 ahead.
//! - `engine/*`: `Engine::process` over 16k-packet batches read with `capture::open_capture` from a
//!   synthetic capture (IMIX frames, and minimum-size frames in many concurrent flows), on 2 worker
//!   threads and on 1.
//!
//! Throughput is in elements = packets. Each benchmark measures for about 3 s, so the whole run
//! takes one to two minutes: `cargo bench --bench engine` (filter: `cargo bench --bench engine -- decode`).

use std::hint::black_box;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};

use flowaudit::capture::{open_capture, Batch};
use flowaudit::decode::{decode, link, tcp_flags as F, DecodeOptions, Packet};
use flowaudit::engine::{Engine, EngineConfig};
use flowaudit::flow::map::{hash_key, map_hash};
use flowaudit::flow::{FlowConfig, FlowKey, FlowTable, Prefetch, ServerPorts, Timeouts};
use flowaudit::synth::{generate, Frame, SynthSpec};

/// Packets per batch, as `flowaudit flows` hands them to the workers (RunOptions's default).
const BATCH_PACKETS: usize = 16 * 1024;

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

fn v6(n: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))
}

/// The `i`th frame of a kind; addresses and ports vary so that no two frames are identical.
fn frame(kind: &str, i: u32) -> Vec<u8> {
    let client = v4(0x0a00_0000 | (i % 60_000 + 1));
    let server = v4(0x0a80_0001 + i % 200);
    let sport = 1024 + (i % 50_000) as u16;
    match kind {
        "ipv4_tcp_ack" => Frame::tcp(client, sport, server, 445, F::ACK, 0).ethernet(),
        "ipv4_tcp_data" => Frame::tcp(server, 445, client, sport, F::ACK | F::PSH, 1460).ethernet(),
        "ipv4_udp" => Frame::udp(client, sport, server, 53, 40).ethernet(),
        "vlan_tcp" => {
            let mut f = Frame::tcp(client, sport, server, 10000, F::ACK | F::PSH, 540);
            f.vlans = vec![100 + (i % 8) as u16];
            f.ethernet()
        }
        "ipv6_tcp" => Frame::tcp(v6(i as u16), sport, v6(0xffff), 443, F::ACK, 0).ethernet(),
        "ipv6_udp" => Frame::udp(v6(i as u16), sport, v6(0xfffe), 123, 48).ethernet(),
        other => panic!("unknown frame kind {other}"),
    }
}

/// A batch of `n` frames cycling through `kinds`, stored as the readers store them.
fn frame_batch(kinds: &[&str], n: usize) -> Batch {
    let mut b = Batch::default();
    for i in 0..n {
        let f = frame(kinds[i % kinds.len()], i as u32);
        let wire = f.len().max(60) as u32;
        b.push(
            1_700_000_000_000_000_000 + i as i64 * 1000,
            link::ETHERNET,
            wire,
            &f,
        );
    }
    b
}

fn decode_batch(b: &Batch) -> usize {
    let opts = DecodeOptions::default();
    let mut ok = 0;
    for r in &b.records {
        let data = b.record_bytes(r);
        if decode(r.link, black_box(data), r.ts_ns, r.orig_len, opts).is_ok() {
            ok += 1;
        }
    }
    ok
}

fn bench_decode(c: &mut Criterion) {
    const N: usize = 4096;
    let mut g = c.benchmark_group("decode");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(N as u64));
    // A typical mix: mostly IPv4 TCP, some UDP, a tagged frame and IPv6.
    let mix = [
        "ipv4_tcp_ack",
        "ipv4_tcp_data",
        "ipv4_tcp_ack",
        "ipv4_tcp_data",
        "ipv4_udp",
        "vlan_tcp",
        "ipv6_tcp",
        "ipv6_udp",
    ];
    let batches: Vec<(&str, Batch)> = vec![
        ("mix", frame_batch(&mix, N)),
        (
            "ipv4_tcp",
            frame_batch(&["ipv4_tcp_ack", "ipv4_tcp_data"], N),
        ),
        ("ipv4_udp", frame_batch(&["ipv4_udp"], N)),
        ("vlan_tcp", frame_batch(&["vlan_tcp"], N)),
        ("ipv6_tcp", frame_batch(&["ipv6_tcp"], N)),
    ];
    for (name, b) in &batches {
        assert_eq!(decode_batch(b), N, "every {name} frame decodes");
        g.bench_function(*name, |bench| bench.iter(|| decode_batch(black_box(b))));
    }
    g.finish();
}

/// A synthetic capture (all flows open at once), read back into batches of 16k packets.
fn synth_batches(spec: &SynthSpec) -> Vec<Batch> {
    let mut pcap = Vec::new();
    generate(spec, &mut pcap).expect("generating in memory");
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(&pcap).expect("writing the capture");
    file.flush().expect("flushing the capture");
    let mut reader = open_capture(file.path()).expect("reading back the synthetic capture");
    let mut batches = Vec::new();
    loop {
        let mut b = Batch::default();
        let more = reader
            .fill(&mut b, BATCH_PACKETS, 64 << 20)
            .expect("a clean synthetic capture");
        if !b.is_empty() {
            batches.push(b);
        }
        if !more {
            break;
        }
    }
    batches
}

fn spec(packets: u64, flows: u64, small: bool) -> SynthSpec {
    SynthSpec {
        packets,
        flows,
        concurrent: flows,
        seed: 1,
        small,
    }
}

fn flow_config() -> FlowConfig {
    FlowConfig {
        timeouts: Timeouts::default(),
        ports: ServerPorts::default(),
        max_flows_per_shard: usize::MAX,
    }
}

fn bench_flow_table(c: &mut Criterion) {
    const PACKETS: u64 = 800_000;
    let cfg = flow_config();
    let mut g = c.benchmark_group("flow_table");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        // Iterations take 30-200 ms: the same count per sample keeps the run near 3 s.
        .sampling_mode(SamplingMode::Flat);
    for (label, flows) in [("1k", 1_000u64), ("100k", 100_000)] {
        let packets: Vec<Packet> = synth_batches(&spec(PACKETS, flows, false))
            .iter()
            .flat_map(|b| {
                b.records.iter().map(|r| {
                    let data = b.record_bytes(r);
                    decode(r.link, data, r.ts_ns, r.orig_len, DecodeOptions::default())
                        .expect("synthetic frames decode")
                })
            })
            .collect();

        // From an empty table: the whole life of every flow.
        g.throughput(Throughput::Elements(packets.len() as u64));
        g.bench_function(format!("fresh/{label}"), |bench| {
            bench.iter_batched(
                FlowTable::default,
                |mut t| {
                    for p in &packets {
                        t.update(black_box(p), &cfg);
                    }
                    t // dropped outside the timed part
                },
                BatchSize::PerIteration,
            )
        });

        // Every flow already live: data packets only, so nothing is inserted or ended.
        let data: Vec<Packet> = packets
            .iter()
            .copied()
            .filter(|p| p.tcp_flags & (F::SYN | F::FIN | F::RST) == 0)
            .collect();
        let mut warm = FlowTable::default();
        for p in &packets {
            warm.update(p, &cfg);
        }
        assert!(
            warm.live_len() as u64 >= flows * 9 / 10,
            "the warm table holds the flows"
        );
        let done_before = warm.done.len();
        g.throughput(Throughput::Elements(data.len() as u64));
        g.bench_function(format!("warm/{label}"), |bench| {
            bench.iter(|| {
                for p in &data {
                    warm.update(black_box(p), &cfg);
                }
            })
        });
        assert_eq!(warm.done.len(), done_before, "the warm replay ends no flow");

        // The engine's shard loop (src/engine.rs, PREFETCH_SLOT_AHEAD and PREFETCH_ENTRY_AHEAD).
        let hashes: Vec<u32> = data
            .iter()
            .map(|p| map_hash(hash_key(&FlowKey::of_packet(p).0)))
            .collect();
        g.bench_function(format!("warm-prefetched/{label}"), |bench| {
            bench.iter(|| {
                for (j, p) in data.iter().enumerate() {
                    if let Some(&h) = hashes.get(j + 8) {
                        warm.prefetch(h, Prefetch::Slot);
                    }
                    if let Some(&h) = hashes.get(j + 4) {
                        warm.prefetch(h, Prefetch::Entry);
                    }
                    warm.update_hashed(black_box(p), hashes[j], &cfg);
                }
            })
        });
        assert_eq!(warm.done.len(), done_before, "the warm replay ends no flow");
    }
    g.finish();
}

fn bench_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        // Iterations take 30-200 ms: the same count per sample keeps the run near 3 s.
        .sampling_mode(SamplingMode::Flat);
    let shapes = [
        // IMIX frames (64/594/1518 in 7:4:1), 18 packets per flow like the 1 GiB benchmark file.
        ("imix", spec(360_000, 20_000, false)),
        // Minimum-size frames, 10 packets per flow, every flow open at once.
        ("small", spec(500_000, 50_000, true)),
    ];
    let pools: Vec<(usize, rayon::ThreadPool)> = [2usize, 1]
        .into_iter()
        .map(|n| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("worker pool");
            (n, pool)
        })
        .collect();
    for (name, s) in &shapes {
        let batches = synth_batches(s);
        let packets: usize = batches.iter().map(|b| b.len()).sum();
        g.throughput(Throughput::Elements(packets as u64));
        for (threads, pool) in &pools {
            g.bench_function(format!("{name}/threads={threads}"), |bench| {
                bench.iter_batched(
                    || Engine::new(EngineConfig::default()),
                    |mut engine| {
                        pool.install(|| {
                            for b in &batches {
                                engine.process(black_box(b));
                            }
                        });
                        engine // dropped outside the timed part
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_flow_table, bench_engine);
criterion_main!(benches);
