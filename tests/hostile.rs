//! Hostile captures: the shapes a broken capturer or an attacker produces. None may panic, hang
//! or grow memory without bound; every packet is either in a flow or counted as skipped; every
//! eviction is counted and reported; every damaged file is reported with its name and the byte
//! offset of the damage (exit 3 from the command line), after the packets before it were used.
//!
//! Sizes are small so the whole file runs in a few seconds in release mode. Expected counts are
//! derived in the comments from the documented rules (docs/flows.md, src/flow.rs `evict`).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use flowaudit::capture::ReadError;
use flowaudit::decode::Skip;
use flowaudit::engine::run::{run_files, RunOptions, RunOutput};
use flowaudit::engine::{EngineConfig, Stats};
use flowaudit::flow::FlowRecord;
use flowaudit::synth::{ip_packet, Frame};

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

// ---------------------------------------------------------------------------------------------
// Helpers

/// Big batches (the small ones of `common::opts` are slow with 50k packets); the output does not
/// depend on the batch size (tests/determinism.rs).
fn big_opts() -> RunOptions {
    RunOptions {
        threads: 2,
        batch_packets: 4096,
        progress: false,
        mmap: true,
    }
}

fn run_bytes(
    bytes: &[u8],
    suffix: &str,
    cfg: EngineConfig,
) -> (RunOutput, tempfile::NamedTempFile) {
    let f = temp_file(bytes, suffix);
    let out = run_files(&[f.path().to_path_buf()], cfg, &big_opts()).expect("opens");
    (out, f)
}

fn skipped(s: &Stats, why: Skip) -> u64 {
    s.skipped.get(&why).copied().unwrap_or(0)
}

/// The accounting every run must satisfy: each packet read is in exactly one flow or counted
/// as skipped for one reason; evictions are the flows marked evicted; the live table never
/// held more than the cap.
fn check_accounting(out: &RunOutput, max_flows: usize) {
    let s = &out.stats;
    // `packets` may or may not include the records the reader skipped (undefined pcapng
    // interfaces); either way each record is counted exactly once.
    let skipped: u64 = s.skipped.values().sum();
    let accounted = s.flow_packets + skipped;
    assert!(
        s.packets == accounted || s.packets == accounted + s.reader_skipped,
        "every packet is in a flow or skipped: {s:?}"
    );
    let in_flows: u64 = out
        .flows
        .to_vec()
        .unwrap()
        .iter()
        .map(|f| f.flow.packets[0] + f.flow.packets[1])
        .sum();
    assert_eq!(in_flows, s.flow_packets, "flow packet counts add up");
    let evicted = out
        .flows
        .to_vec()
        .unwrap()
        .iter()
        .filter(|f| f.flow.evicted)
        .count() as u64;
    assert_eq!(evicted, s.evicted_flows, "evicted rows == evicted count");
    assert!(
        s.peak_live_flows <= max_flows as u64,
        "live table above the cap: {} > {max_flows}",
        s.peak_live_flows
    );
}

fn corrupt_at(out: &RunOutput, path: &Path) -> (u64, String) {
    assert_eq!(out.errors.len(), 1, "one read error expected");
    let msg = out.errors[0].to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "the error names the file: {msg}"
    );
    match &out.errors[0] {
        ReadError::Corrupt { offset, .. } => {
            assert!(msg.contains(&format!("at byte {offset}")), "{msg}");
            (*offset, msg)
        }
        e => panic!("expected a corrupt-capture error, got {e:?}"),
    }
}

fn cli(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run flowaudit")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `flowaudit flows FILE -o - -q` (stdout captured): exit code, stderr, stdout.
fn flows_cli(path: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["flows".as_ref(), path.as_os_str()];
    args.extend(["-o", "-"].iter().map(std::ffi::OsStr::new));
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let o = cli(&args);
    (
        o.status.code().expect("exited"),
        stderr(&o),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn syn(i: u32) -> Vec<u8> {
    // 10.x.y.z -> 192.0.2.1:443, a distinct source address (and port) per flow.
    let src = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    tcp4(&src, 1024 + (i % 60000) as u16, "192.0.2.1", 443, SYN, 0)
}

/// A SYN flood: `n` distinct flows of one SYN each, 1 µs apart (well inside every timeout, so
/// only eviction can end a flow early).
fn syn_flood(n: u32) -> Vec<u8> {
    let recs: Vec<Rec> = (0..n).map(|i| rec(T0 + i as i64 * 1000, syn(i))).collect();
    pcap_bytes(link::ETHERNET, true, &recs)
}

// pcap and pcapng bytes written by hand, for the fields the writers keep valid.

fn pcap_header(link: u32, snaplen: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&link.to_le_bytes());
    h
}

fn pcap_record(out: &mut Vec<u8>, secs: u32, usecs: u32, caplen: u32, orig: u32, data: &[u8]) {
    for v in [secs, usecs, caplen, orig] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(data);
}

/// A pcapng block with an explicit total length (the body is padded to 4 bytes).
fn block_len(btype: u32, body: &[u8], total: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&btype.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    while b.len() % 4 != 0 {
        b.push(0);
    }
    b.extend_from_slice(&total.to_le_bytes());
    b
}

fn block(btype: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + body.len().div_ceil(4) * 4) as u32;
    block_len(btype, body, total)
}

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const SPB: u32 = 3;
const EPB: u32 = 6;

fn shb() -> Vec<u8> {
    let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    block(SHB, &body) // 28 bytes
}

/// An IDB with microsecond timestamps (no options): 20 bytes. `opts` are appended raw.
fn idb(link: u16, opts: &[u8]) -> Vec<u8> {
    let mut body = link.to_le_bytes().to_vec();
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&262_144u32.to_le_bytes());
    body.extend_from_slice(opts);
    block(IDB, &body)
}

fn epb_body(iface: u32, ts: u64, caplen: u32, orig: u32, data: &[u8]) -> Vec<u8> {
    let mut body = iface.to_le_bytes().to_vec();
    body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(ts as u32).to_le_bytes());
    body.extend_from_slice(&caplen.to_le_bytes());
    body.extend_from_slice(&orig.to_le_bytes());
    body.extend_from_slice(data);
    body
}

/// An EPB on `iface` at `ts` microseconds (the IDB above has no if_tsresol: microseconds).
fn epb(iface: u32, ts_us: u64, data: &[u8]) -> Vec<u8> {
    block(
        EPB,
        &epb_body(iface, ts_us, data.len() as u32, data.len() as u32, data),
    )
}

const T0_US: u64 = 1_700_000_000 * 1_000_000;

/// A TCP handshake's first two packets between 10.0.0.9:50000 and 10.0.0.2:443.
fn syn_synack() -> (Vec<u8>, Vec<u8>) {
    (
        tcp4("10.0.0.9", 50000, "10.0.0.2", 443, SYN, 0),
        tcp4("10.0.0.2", 443, "10.0.0.9", 50000, SA, 0),
    )
}

// ---------------------------------------------------------------------------------------------
// Millions of distinct flows: a SYN flood against --max-flows

/// Eviction rule (src/flow.rs): each of the 64 shards holds at most c = max_flows / 64 flows;
/// inserting a new flow into a full shard first ends its e = max(c / 8, 1) longest-idle flows,
/// marked evicted. With max_flows = 64, c = 1 and e = 1: every new flow in a shard evicts the
/// one before it, so only the last flow of each shard survives. 50,000 random-looking keys
/// reach all 64 shards (peak_live_flows = 64 proves it), hence exactly 50,000 - 64 evictions.
#[test]
fn syn_flood_50000_flows_with_max_flows_64_evicts_all_but_one_per_shard() {
    let n = 50_000u32;
    let cfg = EngineConfig {
        max_flows: 64,
        ..EngineConfig::default()
    };
    let (out, _f) = run_bytes(&syn_flood(n), ".pcap", cfg);
    assert!(out.errors.is_empty());
    check_accounting(&out, 64);
    let s = &out.stats;
    assert_eq!(s.packets, n as u64);
    assert_eq!(s.flow_packets, n as u64);
    assert_eq!(
        out.flows.to_vec().unwrap().len(),
        n as usize,
        "one flow per distinct SYN"
    );
    assert!(out
        .flows
        .to_vec()
        .unwrap()
        .iter()
        .all(|f| f.flow.packets == [1, 0]));
    assert_eq!(s.peak_live_flows, 64, "every shard reached its cap of 1");
    assert_eq!(s.evicted_flows, (n - 64) as u64);
    // The newest flow overall is the newest of its shard: never evicted. The oldest is evicted.
    let by_time = sorted_by_first(&out.flows.to_vec().unwrap());
    assert!(!by_time.last().unwrap().flow.evicted);
    assert!(by_time[0].flow.evicted);
}

fn sorted_by_first(flows: &[FlowRecord]) -> Vec<FlowRecord> {
    let mut v = flows.to_vec();
    v.sort_by_key(|f| f.flow.first_ts);
    v
}

/// max_flows = 6,400: c = 100 per shard, e = 12 evicted each time a shard is full. A shard that
/// receives n_s flows (n_s > c) is full at inserts c+1, c+1+e, c+1+2e, ... so it evicts
/// e * ceil((n_s - c) / e) flows and keeps n_s - evicted, between c - e + 1 = 89 and c = 100.
/// Summed over 64 shards (50,000 flows: about 781 each, so all overflow):
/// evicted is a multiple of 12 in [50,000 - 6,400, 50,000 - 64 * 89] = [43,600, 44,304], and
/// the peak live table is exactly 64 * 100. Within a shard the evicted flows are its oldest:
/// the first e = 12 flows of the capture are each among the first 12 of their shard (evicted),
/// and the last 89 are each among the last 89 of theirs (kept).
#[test]
fn syn_flood_50000_flows_with_max_flows_6400_evicts_the_longest_idle_in_steps_of_an_eighth() {
    let n = 50_000u32;
    let cfg = EngineConfig {
        max_flows: 6_400,
        ..EngineConfig::default()
    };
    let (out, _f) = run_bytes(&syn_flood(n), ".pcap", cfg);
    assert!(out.errors.is_empty());
    check_accounting(&out, 6_400);
    let s = &out.stats;
    assert_eq!(out.flows.to_vec().unwrap().len(), n as usize);
    assert_eq!(s.peak_live_flows, 6_400);
    assert_eq!(
        s.evicted_flows % 12,
        0,
        "evictions come in eighths of a shard"
    );
    assert!(
        (43_600..=44_304).contains(&s.evicted_flows),
        "evicted {}",
        s.evicted_flows
    );
    let by_time = sorted_by_first(&out.flows.to_vec().unwrap());
    assert!(by_time[..12].iter().all(|f| f.flow.evicted));
    assert!(by_time[by_time.len() - 89..]
        .iter()
        .all(|f| !f.flow.evicted));
    // No flow was split: every SYN's key appears exactly once.
    let mut keys: Vec<_> = out.flows.to_vec().unwrap().iter().map(|f| f.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n as usize);
}

/// The same flood without a cap problem (default --max-flows 4,000,000): nothing is evicted.
#[test]
fn syn_flood_under_the_default_cap_evicts_nothing() {
    let (out, _f) = run_bytes(&syn_flood(20_000), ".pcap", EngineConfig::default());
    check_accounting(&out, 4_000_000);
    assert_eq!(out.flows.to_vec().unwrap().len(), 20_000);
    assert_eq!(out.stats.evicted_flows, 0);
    assert_eq!(out.stats.peak_live_flows, 20_000);
}

/// Evictions reach the user: the `flows` summary on stderr and the `audit` caveats in
/// summary.md both give the count, and the CSV marks the same number of rows evicted.
#[test]
fn evictions_are_reported_in_the_flows_summary_and_the_audit_caveats() {
    let f = temp_file(&syn_flood(20_000), ".pcap");
    // max_flows 64: 20,000 - 64 evictions (see above).
    let (code, err, csv) = flows_cli(f.path(), &["--max-flows", "64"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("evicted flows: 19936 "),
        "the summary counts evictions: {err}"
    );
    // `evicted` is column 18 of flows.csv (docs/reports.md).
    let evicted_rows = csv
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(17) == Some("true"))
        .count();
    assert_eq!(evicted_rows, 19_936);
    assert_eq!(csv.lines().count(), 1 + 20_000);

    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("hosts.csv");
    std::fs::write(&inv, "address,roles,name\n192.0.2.1,backup-server,vbr01\n").unwrap();
    let report = dir.path().join("report");
    let o = cli(&[
        "audit".as_ref(),
        f.path().as_os_str(),
        "--inventory".as_ref(),
        inv.as_os_str(),
        "-o".as_ref(),
        report.as_os_str(),
        "--max-flows".as_ref(),
        "64".as_ref(),
        "-q".as_ref(),
    ]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "audit failed: {}",
        stderr(&o)
    );
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(
        summary.contains("19936 flows were evicted"),
        "the audit caveats count evictions: {summary}"
    );
}

// ---------------------------------------------------------------------------------------------
// Thousands of VLANs

/// The same TCP handshake on all 4096 VLAN ids (0..=4095): the VLAN is part of the key, so
/// 4096 flows of 2 packets each, every one tagged.
#[test]
fn the_same_connection_on_4096_vlans_is_4096_flows() {
    let (s, sa) = syn_synack();
    let mut recs = Vec::new();
    for vlan in 0..4096u16 {
        let t = T0 + vlan as i64 * 1000;
        recs.push(rec(t, add_vlan_tag(&s, vlan)));
        recs.push(rec(t + 500, add_vlan_tag(&sa, vlan)));
    }
    let (out, _f) = run_bytes(
        &pcap_bytes(link::ETHERNET, true, &recs),
        ".pcap",
        EngineConfig::default(),
    );
    check_accounting(&out, 4_000_000);
    assert_eq!(out.stats.packets, 8192);
    assert_eq!(out.flows.to_vec().unwrap().len(), 4096);
    let mut vlans: Vec<u16> = out
        .flows
        .to_vec()
        .unwrap()
        .iter()
        .map(|f| f.key.vlan)
        .collect();
    vlans.sort();
    assert_eq!(vlans, (0..4096).collect::<Vec<u16>>());
    assert!(out
        .flows
        .to_vec()
        .unwrap()
        .iter()
        .all(|f| f.flow.packets == [1, 1]));
}

/// 3,000 stacked 802.1Q/802.1ad tags in one frame (12 KB of tags): the outermost id keys the
/// flow; the walk is linear and ends.
#[test]
fn a_frame_with_3000_stacked_vlan_tags_is_keyed_on_the_outermost() {
    let ip = Frame::tcp(v4("10.0.0.9"), 50000, v4("10.0.0.2"), 443, SYN, 0).ip();
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    for i in 0..3000u16 {
        f.extend_from_slice(&(if i % 2 == 0 { 0x88a8u16 } else { 0x8100 }).to_be_bytes());
        f.extend_from_slice(&(100 + i % 4000).to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&ip);
    let (rows, stats) = flows_eth(&[rec(T0, f)]);
    assert_eq!(stats.packets, 1);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].vlan, "100");
    // And a frame that is nothing but tags (no payload after them) is a truncated link header.
    let mut only_tags = vec![0u8; 12];
    for _ in 0..3000 {
        only_tags.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    }
    let (rows, stats) = flows_eth(&[rec(T0, only_tags)]);
    assert!(rows.is_empty());
    assert_eq!(skipped(&stats, Skip::TruncatedLinkHeader), 1);
}

// ---------------------------------------------------------------------------------------------
// Streams of 100% fragments

/// A later IPv4 fragment (offset 8 bytes) of datagram `id` from a distinct source per `i`.
fn later_fragment(i: u32, id: u16) -> Vec<u8> {
    let src = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let mut ip = ip_packet(v4(&src), v4("192.0.2.1"), 17, &[0u8; 16]);
    set_ipv4_frag(&mut ip, id, false, 1);
    eth(&ip)
}

/// Only later fragments, never a first one: nothing can key them, so no flow; each is held as
/// pending (up to max_pending_fragments) and counted as an orphan at the end of the capture.
#[test]
fn only_later_fragments_are_all_counted_as_orphans() {
    let recs: Vec<Rec> = (0..5_000)
        .map(|i| rec(T0 + i as i64 * 1000, later_fragment(i, 7)))
        .collect();
    let (out, _f) = run_bytes(
        &pcap_bytes(link::ETHERNET, true, &recs),
        ".pcap",
        EngineConfig::default(),
    );
    check_accounting(&out, 4_000_000);
    assert_eq!(out.stats.packets, 5_000);
    assert!(out.flows.to_vec().unwrap().is_empty());
    assert_eq!(out.stats.flow_packets, 0);
    assert_eq!(skipped(&out.stats, Skip::OrphanFragment), 5_000);
    assert_eq!(skipped(&out.stats, Skip::FragmentTableFull), 0);
}

/// More orphan fragments than max_pending_fragments (100): the first 100 are held (orphans at
/// the end), every later one is dropped and counted as "pending-fragment table full".
#[test]
fn orphan_fragments_beyond_the_pending_limit_are_counted_as_table_full() {
    let recs: Vec<Rec> = (0..1_000)
        .map(|i| rec(T0 + i as i64 * 1000, later_fragment(i, 7)))
        .collect();
    let cfg = EngineConfig {
        max_pending_fragments: 100,
        ..EngineConfig::default()
    };
    let (out, _f) = run_bytes(&pcap_bytes(link::ETHERNET, true, &recs), ".pcap", cfg);
    check_accounting(&out, 4_000_000);
    assert!(out.flows.to_vec().unwrap().is_empty());
    assert_eq!(skipped(&out.stats, Skip::OrphanFragment), 100);
    assert_eq!(skipped(&out.stats, Skip::FragmentTableFull), 900);
}

/// 100% fragments, every datagram complete but its later fragment arriving first (held, then
/// released when the first arrives): 2,000 datagrams of 2 fragments each between one pair of
/// ports, so one UDP flow of 4,000 packets, nothing skipped. With max_pending_fragments 100
/// the pending table never fills: each held fragment is released by the next packet.
#[test]
fn fragments_arriving_before_their_first_are_all_joined_to_their_flow() {
    let udp = udp_datagram(40000, 53, 40); // 48 bytes: cut at 8 and 40
    let mut recs = Vec::new();
    for id in 0..2_000u16 {
        let frags = ipv4_fragments("10.0.0.9", "10.0.0.2", 17, &udp, id, &[24]);
        let t = T0 + id as i64 * 1000;
        recs.push(rec(t, eth(&frags[1])));
        recs.push(rec(t + 1, eth(&frags[0])));
    }
    let cfg = EngineConfig {
        max_pending_fragments: 100,
        ..EngineConfig::default()
    };
    let (out, _f) = run_bytes(&pcap_bytes(link::ETHERNET, true, &recs), ".pcap", cfg);
    check_accounting(&out, 4_000_000);
    assert_eq!(out.stats.skipped, Default::default(), "nothing skipped");
    assert_eq!(out.flows.to_vec().unwrap().len(), 1);
    let f = &out.flows.to_vec().unwrap()[0];
    assert_eq!((f.key.a_port, f.key.b_port), (53, 40000));
    assert_eq!(f.flow.packets[0] + f.flow.packets[1], 4_000);
}

/// `n` IPv6 packets 10 µs apart, 2001:db8::9:40000 -> 2001:db8::2:53 UDP (one flow). With
/// `first_fragments`, each is the first fragment (offset 0, more fragments) of its own datagram
/// (32-bit ids 0..n) whose later fragments never come: the cheapest fragment flood.
fn ipv6_first_fragment_flood(n: u32, first_fragments: bool) -> Vec<u8> {
    let (src, dst) = (
        "2001:db8::9".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
    );
    let udp = udp_datagram(40000, 53, 8);
    let mut w =
        flowaudit::capture::writer::PcapWriter::new(Vec::new(), link::ETHERNET, true).unwrap();
    for id in 0..n {
        let exts = if first_fragments {
            vec![ext_fragment(0, true, id)]
        } else {
            vec![]
        };
        let f = eth(&ipv6_ext(src, dst, &exts, 17, &udp));
        w.write(T0 + id as i64 * 10_000, &f, f.len() as u32)
            .unwrap();
    }
    w.into_inner()
}

/// Peak RSS in KiB of `flowaudit flows FILE -o - -q [extra]` (stdout discarded), measured by
/// /usr/bin/time (Debian package `time`, in the base image). Not wait4(2) on our own child: Linux
/// carries the parent's RSS high-water mark across fork/exec, so that would report this test
/// process's size.
fn peak_rss_kib(capture: &Path, extra: &[&str]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("rss");
    let st = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(BIN)
        .arg("flows")
        .arg(capture)
        .args(["-o", "-", "-q"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("/usr/bin/time (apt-get install time)");
    // 3: a hostile file may also be reported as damaged; memory is what is measured here.
    assert!(matches!(st.code(), Some(0 | 3)), "{st:?}");
    let text = std::fs::read_to_string(&report).unwrap();
    text.trim()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .expect("KiB")
}

/// Each first fragment's ports are remembered (for its later fragments) for 60 s of capture
/// time. Found 2026-11-24: with no limit on how many, 500,000 first fragments in 5 s cost about
/// 100 MB more than the same packets unfragmented (about 200 bytes per datagram; a 10 Gb/s flood
/// of minimum-size first fragments is ~14 M datagrams/s, ~840 M in 60 s). That memory must be
/// bounded like the pending later fragments (max_pending_fragments), counting what it drops.
#[test]
fn a_flood_of_first_fragments_does_not_grow_memory_without_bound() {
    let whole = temp_file(&ipv6_first_fragment_flood(500_000, false), ".pcap");
    let frags = temp_file(&ipv6_first_fragment_flood(500_000, true), ".pcap");
    let rss_whole = peak_rss_kib(whole.path(), &[]);
    let rss_frags = peak_rss_kib(frags.path(), &[]);
    eprintln!("peak RSS: unfragmented {rss_whole} KiB, first fragments {rss_frags} KiB");
    assert!(
        rss_frags < rss_whole + 32 * 1024,
        "500k first fragments cost {} KiB more than the same packets unfragmented",
        rss_frags.saturating_sub(rss_whole)
    );
}

/// Found 2026-11-24: the same flood cost time quadratic in the number of remembered datagrams
/// (every 1,024 packets, `forget_old_fragments` walked the whole table, and within 60 s nothing
/// was old enough to go): 500k first fragments 1.7 s, 1M 15 s, 2M 45 s, against 0.1 s for 500k
/// unfragmented packets. 1M must take about as long as 1M
/// unfragmented packets (here: at most 4x + 2 s, generous for a loaded machine).
#[test]
fn a_flood_of_first_fragments_takes_linear_time() {
    let n = 1_000_000;
    let whole = temp_file(&ipv6_first_fragment_flood(n, false), ".pcap");
    let frags = temp_file(&ipv6_first_fragment_flood(n, true), ".pcap");
    let time = |p: &Path| {
        let t = std::time::Instant::now();
        let out = run_files(&[p.to_path_buf()], EngineConfig::default(), &big_opts()).unwrap();
        assert_eq!(out.stats.packets, n as u64);
        assert_eq!(out.flows.to_vec().unwrap().len(), 1);
        t.elapsed()
    };
    let t_whole = time(whole.path());
    let t_frags = time(frags.path());
    eprintln!("unfragmented {t_whole:?}, first fragments {t_frags:?}");
    assert!(
        t_frags < t_whole * 4 + std::time::Duration::from_secs(2),
        "1M first fragments took {t_frags:?}, 1M unfragmented packets {t_whole:?}"
    );
}

/// --max-flows bounds memory, not only the live table: evicted and finished flows are spilled to
/// disk (found 2026-11-24: they all stayed in memory, 225 B each, so a SYN flood of N distinct
/// flows cost O(N) memory whatever --max-flows said). 1,600,000 flows under --max-flows 6400 must
/// not need much more memory than 400,000 do.
#[test]
fn a_syn_flood_under_max_flows_runs_in_bounded_memory() {
    // Both sizes spill finished flows to disk many times (every 65,536 under this cap). Kept in
    // memory, 1.2 M more flows would cost about 260 MiB (225 B each, measured before spilling);
    // spilled, the peak levels off (measured 2026-11-24: 400k 38.5 MiB, 1.6 M 51.9 MiB, 3.2 M
    // 53.4 MiB; the step is allocator and merge buffers, at most 64 runs of 64 KiB).
    let small = temp_file(&syn_flood(400_000), ".pcap");
    let big = temp_file(&syn_flood(1_600_000), ".pcap");
    let rss_small = peak_rss_kib(small.path(), &["--max-flows", "6400"]);
    let rss_big = peak_rss_kib(big.path(), &["--max-flows", "6400"]);
    eprintln!("peak RSS, --max-flows 6400: 400k flows {rss_small} KiB, 1.6M flows {rss_big} KiB");
    assert!(
        rss_big < rss_small + 48 * 1024,
        "1.2M more flows cost {} KiB",
        rss_big.saturating_sub(rss_small)
    );
}

/// Evicted flows spilled to disk come back complete and in the same order as when all of them
/// stay in memory: the same 50,000 one-SYN flows, the same eviction counts.
#[test]
fn a_syn_flood_spilled_to_disk_gives_the_same_flows_as_in_memory() {
    let n = 50_000u32;
    let bytes = syn_flood(n);
    let in_memory = EngineConfig {
        max_flows: 640,
        ..EngineConfig::default()
    };
    let spilled = EngineConfig {
        spill_after: 1_000,
        ..in_memory.clone()
    };
    let (a, _fa) = run_bytes(&bytes, ".pcap", in_memory);
    let (b, _fb) = run_bytes(&bytes, ".pcap", spilled);
    assert_eq!(a.stats.spilled_flows, 0);
    // Every evicted flow finished during the run; at least all but the last 1,000 of them went
    // to disk (the rest, and the live ones, were still in memory at the end).
    let evicted = b.stats.evicted_flows;
    assert!(evicted >= (n - 640) as u64, "{evicted}");
    assert!(
        b.stats.spilled_flows + 1_000 > evicted && b.stats.spilled_flows <= evicted,
        "spilled {} of {evicted} evicted",
        b.stats.spilled_flows
    );
    check_accounting(&b, 640);
    let (fa, fb) = (a.flows.to_vec().unwrap(), b.flows.to_vec().unwrap());
    assert_eq!(fb.len(), n as usize);
    assert!(fa == fb, "spilled flows differ from in-memory flows");
    let mut stats_b = b.stats.clone();
    stats_b.spilled_flows = 0;
    assert_eq!(a.stats, stats_b);
}

/// The pending-fragment limit is a command-line option: the summary's label for dropped
/// fragments tells the user to raise `--max-fragments`, so it must exist.
#[test]
fn the_pending_fragment_limit_named_in_the_summary_is_an_option() {
    let recs: Vec<Rec> = (0..20)
        .map(|i| rec(T0 + i as i64 * 1000, later_fragment(i, 7)))
        .collect();
    let f = write_pcap(link::ETHERNET, true, &recs);
    let (code, err, _) = flows_cli(f.path(), &["--max-fragments", "10"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("10  fragment whose first fragment was never seen"),
        "{err}"
    );
    assert!(
        err.contains("10  fragment dropped: pending-fragment table full"),
        "{err}"
    );
}

/// Dropped and orphaned fragments reach the audit too: its "What this capture could not show"
/// itemizes them (20 orphan fragments, --max-fragments 10: 10 held then orphaned, 10 dropped).
#[test]
fn orphan_and_dropped_fragments_are_in_the_audit_caveats() {
    let recs: Vec<Rec> = (0..20)
        .map(|i| rec(T0 + i as i64 * 1000, later_fragment(i, 7)))
        .collect();
    let f = write_pcap(link::ETHERNET, true, &recs);
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("hosts.csv");
    std::fs::write(&inv, "address,roles,name\n192.0.2.1,backup-server,vbr01\n").unwrap();
    let report = dir.path().join("report");
    let o = cli(&[
        "audit".as_ref(),
        f.path().as_os_str(),
        "--inventory".as_ref(),
        inv.as_os_str(),
        "-o".as_ref(),
        report.as_os_str(),
        "--max-fragments".as_ref(),
        "10".as_ref(),
        "-q".as_ref(),
    ]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "audit failed: {}",
        stderr(&o)
    );
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(summary.contains("- 20 packets made no flow:"), "{summary}");
    assert!(
        summary.contains("  - 10: fragment whose first fragment was never seen"),
        "{summary}"
    );
    assert!(
        summary.contains("  - 10: fragment dropped: pending-fragment table full"),
        "{summary}"
    );
}

/// Through the command line with the default limit (100,000): 100,050 orphan fragments give
/// 100,000 orphans and 50 dropped, both in the summary.
#[test]
fn orphan_and_dropped_fragments_are_in_the_summary() {
    let n = 100_050u32;
    let recs: Vec<Rec> = (0..n)
        .map(|i| rec(T0 + i as i64 * 1000, later_fragment(i, 7)))
        .collect();
    let f = write_pcap(link::ETHERNET, true, &recs);
    let (code, err, csv) = flows_cli(f.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(csv.lines().count(), 1, "no flows: {csv}");
    assert!(err.contains("skipped packets: 100050 "), "{err}");
    assert!(
        err.contains("100000  fragment whose first fragment was never seen"),
        "{err}"
    );
    assert!(
        err.contains("50  fragment dropped: pending-fragment table full"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Timestamps going backwards

/// Idle time is measured against the capture clock (the latest timestamp so far), never moved
/// back by an older timestamp (docs/flows.md):
///   0 ms     A: SYN 10.0.0.9:50000 -> 10.0.0.2:443
///   1 ms     A: SYN-ACK
///   1000 s   B: UDP 10.0.0.9:40000 -> 10.0.0.2:53, 30 bytes payload     (clock 1000 s)
///   10 s     A: ACK   -> A idle for 1000 s - 1 ms > 300 s: A ends, A2 starts (first-packet, OTH)
///   5 s      B: reply (50 bytes) -> B idle 0 s by the clock: joins B, whose first_seen is 5 s
///   999 s    A: ACK   -> A2 idle for 1000 s - 10 s > 300 s: A2 ends, A3 starts
#[test]
fn timestamps_going_backwards_never_move_the_capture_clock_back() {
    let (c, s) = ("10.0.0.9", "10.0.0.2");
    let recs = vec![
        rec(T0, tcp4(c, 50000, s, 443, SYN, 0)),
        rec(at_ms(1), tcp4(s, 443, c, 50000, SA, 0)),
        rec(T0 + 1000 * SEC, udp4(c, 40000, s, 53, 30)),
        rec(T0 + 10 * SEC, tcp4(c, 50000, s, 443, ACK, 0)),
        rec(T0 + 5 * SEC, udp4(s, 53, c, 40000, 50)),
        rec(T0 + 999 * SEC, tcp4(c, 50000, s, 443, ACK, 0)),
    ];
    let (rows, stats) = flows_eth(&recs);
    assert_eq!(stats.packets, 6);
    assert_eq!(stats.first_ts, Some(T0));
    assert_eq!(stats.last_ts, Some(T0 + 1000 * SEC));
    let want = vec![
        row(
            T0,
            at_ms(1),
            "tcp",
            (c, 50000),
            (s, 443),
            "syn",
            "S1",
            (1, 54),
            (1, 54),
            ("S", "SA"),
        ),
        row(
            T0 + 5 * SEC,
            T0 + 1000 * SEC,
            "udp",
            (c, 40000),
            (s, 53),
            "first-packet",
            "SF",
            (1, 72),
            (1, 92),
            ("", ""),
        ),
        row(
            T0 + 10 * SEC,
            T0 + 10 * SEC,
            "tcp",
            (c, 50000),
            (s, 443),
            "first-packet",
            "OTH",
            (1, 54),
            (0, 0),
            ("A", ""),
        ),
        row(
            T0 + 999 * SEC,
            T0 + 999 * SEC,
            "tcp",
            (c, 50000),
            (s, 443),
            "first-packet",
            "OTH",
            (1, 54),
            (0, 0),
            ("A", ""),
        ),
    ];
    assert_eq!(rows, want);
}

/// Timestamps at the ends of the range: 1970 in a pcap, and a pcapng interface whose
/// if_tsoffset pushes timestamps past i64 nanoseconds (clamped, not wrapped, not a panic).
#[test]
fn extreme_timestamps_are_clamped_not_wrapped() {
    let (s, sa) = syn_synack();
    let (rows, stats) = flows_eth(&[rec(0, s.clone()), rec(1, sa.clone())]);
    assert_eq!(rows.len(), 1);
    assert_eq!(stats.first_ts, Some(0));
    // if_tsoffset (option 14, 8 bytes) = i64::MAX seconds; end of options.
    let mut opts = 14u16.to_le_bytes().to_vec();
    opts.extend_from_slice(&8u16.to_le_bytes());
    opts.extend_from_slice(&i64::MAX.to_le_bytes());
    opts.extend_from_slice(&[0; 4]);
    let mut ng = shb();
    ng.extend(idb(1, &opts));
    ng.extend(epb(0, u64::MAX, &s));
    ng.extend(epb(0, 0, &sa));
    let (out, _f) = run_bytes(&ng, ".pcapng", EngineConfig::default());
    assert!(out.errors.is_empty());
    check_accounting(&out, 4_000_000);
    assert_eq!(out.flows.to_vec().unwrap().len(), 1);
    assert_eq!(out.stats.last_ts, Some(i64::MAX));
    let f = temp_file(&ng, ".pcapng");
    let (code, err, csv) = flows_cli(f.path(), &["-q"]);
    assert_eq!(code, 0, "{err}");
    // The last nanosecond i64 holds: `date -u -d @9223372036` is 2262-04-11T23:47:16.
    let row = csv.lines().nth(1).unwrap();
    assert!(row.starts_with("2262-04-11T23:47:16.854Z,"), "{csv}");
    assert!(row.ends_with(",9223372036.854775807"), "{csv}");
}

// ---------------------------------------------------------------------------------------------
// Zero-length and gigantic records

/// Zero-length records are packets with no bytes: counted, skipped as a truncated link header,
/// their wire length still counted; the records around them are read normally.
#[test]
fn zero_length_records_are_counted_and_skipped() {
    let (s, sa) = syn_synack();
    let mut p = pcap_header(1, 262_144);
    pcap_record(&mut p, 1_700_000_000, 0, 0, 0, &[]);
    pcap_record(&mut p, 1_700_000_000, 1, 54, 54, &s);
    pcap_record(&mut p, 1_700_000_000, 2, 0, 1500, &[]);
    pcap_record(&mut p, 1_700_000_000, 3, 54, 54, &sa);
    let (out, _f) = run_bytes(&p, ".pcap", EngineConfig::default());
    assert!(out.errors.is_empty());
    check_accounting(&out, 4_000_000);
    assert_eq!(out.stats.packets, 4);
    assert_eq!(out.stats.wire_bytes, 54 + 1500 + 54);
    assert_eq!(skipped(&out.stats, Skip::TruncatedLinkHeader), 2);
    assert_eq!(out.flows.to_vec().unwrap().len(), 1);

    // The same in pcapng: an EPB and an SPB with no packet bytes.
    let mut ng = shb();
    ng.extend(idb(1, &[]));
    ng.extend(epb(0, T0_US, &[]));
    ng.extend(epb(0, T0_US + 1, &s));
    ng.extend(block(SPB, &0u32.to_le_bytes()));
    ng.extend(epb(0, T0_US + 2, &sa));
    let (out, _f) = run_bytes(&ng, ".pcapng", EngineConfig::default());
    assert!(out.errors.is_empty());
    check_accounting(&out, 4_000_000);
    assert_eq!(out.stats.packets, 4);
    assert_eq!(skipped(&out.stats, Skip::TruncatedLinkHeader), 2);
    assert_eq!(out.flows.to_vec().unwrap().len(), 1);
}

/// A record claiming 4 GiB in a small file: corrupt at that record's offset (after the header
/// and one 54-byte record: 24 + 16 + 54 = 94); the packet before it is kept. Exit 3 from the
/// command line, naming the file and the offset. Nothing of the claimed size is allocated.
#[test]
fn a_record_length_past_the_end_of_the_file_is_corrupt_at_its_offset() {
    let (s, _) = syn_synack();
    let mut p = pcap_header(1, 262_144);
    pcap_record(&mut p, 1_700_000_000, 0, 54, 54, &s);
    pcap_record(
        &mut p,
        1_700_000_000,
        1,
        0xffff_fff0,
        0xffff_fff0,
        &[0; 100],
    );
    let (out, f) = run_bytes(&p, ".pcap", EngineConfig::default());
    let (offset, msg) = corrupt_at(&out, f.path());
    assert_eq!(offset, 94);
    assert!(msg.contains("4294967280"), "{msg}");
    assert_eq!(out.stats.packets, 1);
    assert_eq!(out.flows.to_vec().unwrap().len(), 1);
    let (code, err, csv) = flows_cli(f.path(), &["-q"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&f.path().display().to_string()) && err.contains("byte 94"),
        "{err}"
    );
    assert_eq!(
        csv.lines().count(),
        2,
        "the flow before the damage is written"
    );
}

/// A record whose bytes are all there but larger than any packet (16 MiB + 1, snaplen 262144)
/// is corrupt, not a 16 MiB allocation per record.
#[test]
fn a_gigantic_record_present_in_the_file_is_corrupt() {
    let big = flowaudit::capture::MAX_RECORD_LEN + 1;
    let mut p = pcap_header(1, 262_144);
    pcap_record(&mut p, 1_700_000_000, 0, big, big, &vec![0; big as usize]);
    let (out, f) = run_bytes(&p, ".pcap", EngineConfig::default());
    let (offset, msg) = corrupt_at(&out, f.path());
    assert_eq!(offset, 24);
    assert!(msg.contains(&big.to_string()), "{msg}");
    assert_eq!(out.stats.packets, 0);
}

/// The size limit holds "whatever the header's snaplen says" (capture/mod.rs MAX_RECORD_LEN).
/// Through gzip (or stdin) the file size is unknown, so only that limit stops a huge record: a
/// 32 MiB record in a 32 KiB .pcap.gz whose header claims snaplen 0xffffffff must be corrupt,
/// not read (a few MB of gzip could otherwise make one record of up to 4 GiB, and records past
/// 4 GiB of batch data overflow the u32 offsets of `RecordMeta`).
#[test]
fn a_gigantic_record_is_corrupt_whatever_the_snaplen_says() {
    let big: u32 = 32 << 20;
    let mut p = pcap_header(1, u32::MAX);
    pcap_record(&mut p, 1_700_000_000, 0, big, big, &vec![0; big as usize]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&p).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 1 << 20);
    let (out, f) = run_bytes(&gz, ".pcap.gz", EngineConfig::default());
    let (offset, _) = corrupt_at(&out, f.path());
    assert_eq!(offset, 24);
    assert_eq!(out.stats.packets, 0);
}

/// A .pcap.gz of `n` records of 16 MiB (MAX_RECORD_LEN, accepted) starting with a UDP header:
/// gzip members concatenated (the reader decompresses multi-member streams), so only one 16 MiB
/// record is ever compressed here.
fn gz_of_16mib_records(n: usize) -> tempfile::NamedTempFile {
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    let size = flowaudit::capture::MAX_RECORD_LEN;
    let mut rec = Vec::with_capacity(16 + size as usize);
    pcap_record(
        &mut rec,
        1_700_000_000,
        0,
        size,
        size,
        &udp4("10.0.0.1", 40000, "10.0.0.2", 53, 0),
    );
    rec.resize(16 + size as usize, 0);
    let member = gz(&rec);
    let mut file = gz(&pcap_header(1, 262_144));
    for _ in 0..n {
        file.extend_from_slice(&member);
    }
    temp_file(&file, ".pcap.gz")
}

/// Reading several captures as one (run.rs `Inputs::fill`, the time-ordered merge) must keep a
/// byte budget per batch as one input does (64 MiB). Found 2026-11-24 without one: two 1.7 MB
/// .pcap.gz inputs of 24 records of 16 MiB each peaked at 828 MiB, against 138 MiB for one input
/// holding the same 48 records.
#[test]
fn merging_inputs_with_gigantic_records_keeps_batches_within_their_byte_budget() {
    let one = gz_of_16mib_records(48);
    let half = gz_of_16mib_records(24);
    let rss_one = peak_rss_kib(one.path(), &[]);
    let rss_two = peak_rss_kib(half.path(), &[half.path().to_str().unwrap()]);
    eprintln!("peak RSS: one input {rss_one} KiB, the same records in two inputs {rss_two} KiB");
    assert!(
        rss_two < rss_one + 128 * 1024,
        "two inputs cost {} KiB more than one",
        rss_two.saturating_sub(rss_one)
    );
}

/// The crash that followed (found 2026-11-24): record offsets in a batch are u32
/// (`RecordMeta::start`), so a merged batch past 4 GiB wrapped them. Two inputs of 128 records
/// of 16 MiB (9 MB of gzip each; here the same file twice) put 256 records = 4 GiB in one batch,
/// and the engine panicked: "slice index starts at 4278190080 but ends at 0" (engine.rs,
/// `r.start + r.caplen`), exit 101, no report. Decompresses 4 GiB (a few seconds).
#[test]
fn merging_inputs_past_4_gib_of_records_does_not_panic() {
    let f = gz_of_16mib_records(128);
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .arg("flows")
        .arg(f.path())
        .arg(f.path())
        .args(["-o", "-", "-q"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout);
    // 256 packets of one UDP flow.
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .contains(",udp,10.0.0.1,40000,10.0.0.2,53,"),
        "{csv}"
    );
}

/// pcap record lengths past the end: the stream ends inside the record's data or its header.
#[test]
fn pcap_cut_inside_a_record_header_or_data_through_gzip_names_the_offset() {
    let (s, sa) = syn_synack();
    let mut p = pcap_header(1, 262_144);
    pcap_record(&mut p, 1_700_000_000, 0, 54, 54, &s);
    pcap_record(&mut p, 1_700_000_000, 1, 54, 54, &sa);
    for cut in [94 + 10, 94 + 16 + 20] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&p[..cut]).unwrap();
        let (out, f) = run_bytes(&gz.finish().unwrap(), ".pcap.gz", EngineConfig::default());
        let (offset, _) = corrupt_at(&out, f.path());
        assert_eq!(offset, 94, "cut at {cut}");
        assert_eq!(out.stats.packets, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// pcapng blocks with bad lengths, unknown types, undefined interfaces

/// SHB 28 + IDB 20 = 48 bytes, then EPBs with 54-byte packets: 12 + 20 + 56 = 88 bytes each.
fn ng_prefix() -> Vec<u8> {
    let (s, _) = syn_synack();
    let mut ng = shb();
    ng.extend(idb(1, &[]));
    assert_eq!(ng.len(), 48);
    ng.extend(epb(0, T0_US, &s));
    assert_eq!(ng.len(), 136);
    ng
}

fn ng_corrupt(ng: &[u8], want_offset: u64, want_text: &str) {
    let (out, f) = run_bytes(ng, ".pcapng", EngineConfig::default());
    let (offset, msg) = corrupt_at(&out, f.path());
    assert_eq!(offset, want_offset, "{msg}");
    assert!(msg.contains(want_text), "{msg}");
    assert_eq!(out.stats.packets, 1, "the packet before the damage is kept");
    assert_eq!(out.flows.to_vec().unwrap().len(), 1);
    let (code, err, _) = flows_cli(f.path(), &["-q"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("byte {want_offset}")), "{err}");
}

#[test]
fn pcapng_block_length_not_a_multiple_of_4_is_corrupt_at_the_block() {
    let (_, sa) = syn_synack();
    let mut ng = ng_prefix();
    let mut b = block(EPB, &epb_body(0, T0_US + 1, 54, 54, &sa));
    b[4..8].copy_from_slice(&86u32.to_le_bytes());
    ng.extend(b);
    ng_corrupt(&ng, 136, "impossible length 86");
}

#[test]
fn pcapng_block_length_shorter_than_12_is_corrupt_at_the_block() {
    for len in [0u32, 4, 8] {
        let mut ng = ng_prefix();
        ng.extend(block_len(EPB, &[0; 20], len));
        ng_corrupt(&ng, 136, &format!("impossible length {len}"));
    }
}

#[test]
fn pcapng_block_length_beyond_the_end_of_the_file_is_corrupt_at_the_block() {
    let (_, sa) = syn_synack();
    let mut ng = ng_prefix();
    let mut b = block(EPB, &epb_body(0, T0_US + 1, 54, 54, &sa));
    b[4..8].copy_from_slice(&4000u32.to_le_bytes());
    ng.extend(b);
    ng_corrupt(&ng, 136, "claims 4000 bytes but only 88 remain");
    // An absurd length (4 GiB - 4) is refused before anything is read or allocated.
    let mut ng = ng_prefix();
    ng.extend(block_len(0x0bad, &[0; 8], 0xffff_fffc));
    ng_corrupt(&ng, 136, "impossible length 4294967292");
    // A cut file: the last block ends early.
    let mut ng = ng_prefix();
    ng.extend(&block(EPB, &epb_body(0, T0_US + 1, 54, 54, &sa))[..40]);
    ng_corrupt(&ng, 136, "only 40 remain");
}

/// Through gzip the file size is unknown: the same cut is found by running out of bytes.
#[test]
fn pcapng_block_cut_short_through_gzip_is_corrupt_at_the_block() {
    let (_, sa) = syn_synack();
    let mut ng = ng_prefix();
    ng.extend(&block(EPB, &epb_body(0, T0_US + 1, 54, 54, &sa))[..40]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&ng).unwrap();
    let (out, f) = run_bytes(&gz.finish().unwrap(), ".pcapng.gz", EngineConfig::default());
    let (offset, _) = corrupt_at(&out, f.path());
    assert_eq!(offset, 136);
    assert_eq!(out.stats.packets, 1);
}

#[test]
fn a_section_header_shorter_than_28_bytes_is_corrupt() {
    let mut b = shb();
    b[4..8].copy_from_slice(&24u32.to_le_bytes());
    let f = temp_file(&b, ".pcapng");
    let out = run_files(
        &[f.path().to_path_buf()],
        EngineConfig::default(),
        &big_opts(),
    )
    .unwrap();
    let (offset, msg) = corrupt_at(&out, f.path());
    assert_eq!(offset, 0);
    assert!(msg.contains("impossible length 24"), "{msg}");
}

/// A trailing length that disagrees with the leading one loses nothing: a warning naming the
/// block's offset, and reading goes on with the leading length.
#[test]
fn a_pcapng_trailer_length_mismatch_is_a_warning() {
    let (_, sa) = syn_synack();
    let mut ng = ng_prefix();
    let mut b = block(EPB, &epb_body(0, T0_US + 1, 54, 54, &sa));
    let n = b.len();
    b[n - 4..].copy_from_slice(&92u32.to_le_bytes());
    ng.extend(b);
    let (out, _f) = run_bytes(&ng, ".pcapng", EngineConfig::default());
    assert!(out.errors.is_empty());
    assert_eq!(out.stats.packets, 2);
    assert_eq!(out.stats.warnings.len(), 1);
    assert_eq!(out.stats.warnings[0].1.offset, 136);
}

/// EPBs naming interfaces that do not exist (id 1 and 0xffffffff when only 0 is defined, and
/// any id in a section whose interfaces were reset by a new SHB) are skipped, counted as
/// reader-skipped and warned about with their offsets; the other packets are read.
#[test]
fn packets_on_undefined_interfaces_are_skipped_counted_and_warned() {
    let (s, sa) = syn_synack();
    let mut ng = ng_prefix(); // one packet on interface 0 at 48
    ng.extend(epb(1, T0_US + 1, &sa)); // at 136
    ng.extend(epb(u32::MAX, T0_US + 2, &sa)); // at 224
    ng.extend(epb(0, T0_US + 3, &sa)); // at 312: ok
    let second_section = ng.len() as u64; // 400
    ng.extend(shb());
    ng.extend(epb(0, T0_US + 4, &s)); // at 428: section 2 has no interface yet
    ng.extend(idb(1, &[]));
    ng.extend(epb(0, T0_US + 5, &s)); // ok
    let (out, f) = run_bytes(&ng, ".pcapng", EngineConfig::default());
    assert!(out.errors.is_empty());
    check_accounting(&out, 4_000_000);
    assert_eq!(out.stats.flow_packets, 3);
    assert_eq!(out.stats.reader_skipped, 3);
    let offsets: Vec<u64> = out.stats.warnings.iter().map(|(_, w)| w.offset).collect();
    assert_eq!(offsets, vec![136, 224, second_section + 28]);
    assert!(out.stats.warnings[1]
        .1
        .detail
        .contains("interface 4294967295"));
    // The command line's summary says so.
    // Damage the reader stepped over still makes the capture corrupt: exit 3 (src/main.rs).
    let (code, err, _) = flows_cli(f.path(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("3  records the capture file could not attribute"),
        "{err}"
    );
    assert!(err.contains("byte 136: packet names interface 1"), "{err}");
}

/// 2 packets on interface 0 (one flow) and 2 on undefined interfaces 5 and 7 (at 136 and 224).
fn two_good_two_unattributed() -> Vec<u8> {
    let (s, sa) = syn_synack();
    let mut ng = ng_prefix();
    ng.extend(epb(5, T0_US + 1, &sa));
    ng.extend(epb(0, T0_US + 2, &sa));
    ng.extend(epb(7, T0_US + 3, &s));
    ng
}

/// The `flows` summary's counts add up: 4 packet records were read, 2 are in the flow, 2 were
/// skipped. Found 2026-11-24: it printed "packets: 2 ... flows: 1" and "skipped packets: 2"
/// (`packets` left out the records the reader skipped while `skipped packets` counted them, so
/// skipped could exceed packets).
#[test]
fn the_summary_counts_every_packet_record_read() {
    let f = temp_file(&two_good_two_unattributed(), ".pcapng");
    let (code, err, _) = flows_cli(f.path(), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("skipped packets: 2 "), "{err}");
    assert!(err.starts_with("packets: 4 "), "{err}");
}

/// The audit's "What this capture could not show" itemizes why packets made no flow; the
/// records the reader could not attribute must be in the list too (found 2026-11-24: the list
/// was empty here, "- 2 packets made no flow:" and nothing under it, so nothing explained them
/// once their warnings were past the 1,000 kept).
#[test]
fn the_audit_caveats_itemize_records_the_reader_skipped() {
    let f = temp_file(&two_good_two_unattributed(), ".pcapng");
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("hosts.csv");
    std::fs::write(&inv, "address,roles,name\n10.0.0.2,backup-server,vbr01\n").unwrap();
    let report = dir.path().join("report");
    let o = cli(&[
        "audit".as_ref(),
        f.path().as_os_str(),
        "--inventory".as_ref(),
        inv.as_os_str(),
        "-o".as_ref(),
        report.as_os_str(),
        "-q".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    let at = summary
        .find("- 2 packets made no flow:")
        .expect("the total")
        + 25;
    let next = summary[at..].lines().nth(1).unwrap_or("");
    assert!(
        next.starts_with("  - 2: "),
        "the reason for the 2 records is itemized under the total: {summary}"
    );
}

/// A packet block before any interface description (and an SPB, which always means interface
/// 0) is skipped the same way.
#[test]
fn packets_before_any_interface_are_skipped() {
    let (s, _) = syn_synack();
    let mut ng = shb();
    ng.extend(epb(0, T0_US, &s));
    let mut spb = (s.len() as u32).to_le_bytes().to_vec();
    spb.extend_from_slice(&s);
    ng.extend(block(SPB, &spb));
    let (out, _f) = run_bytes(&ng, ".pcapng", EngineConfig::default());
    assert!(out.errors.is_empty());
    check_accounting(&out, 4_000_000);
    assert_eq!(out.stats.flow_packets, 0);
    assert_eq!(out.stats.reader_skipped, 2);
}

/// Unknown block types (reserved, local-use with the high bit set, custom 0x0BAD/0x40000BAD,
/// obsolete and statistics blocks) are skipped by their length, whatever their body.
#[test]
fn unknown_block_types_are_skipped_by_length() {
    let (s, sa) = syn_synack();
    let mut ng = ng_prefix();
    for t in [
        0x0bad_u32,
        0x4000_0bad,
        0x8000_0001,
        0x7fff_ffff,
        5,
        4,
        0x0a0d_0d0b,
        0,
    ] {
        ng.extend(block(t, &[0xa5; 37]));
        ng.extend(block(t, &[]));
    }
    ng.extend(epb(0, T0_US + 1, &sa));
    let mut spb = (s.len() as u32).to_le_bytes().to_vec();
    spb.extend_from_slice(&s);
    ng.extend(block(SPB, &spb));
    let (out, _f) = run_bytes(&ng, ".pcapng", EngineConfig::default());
    assert!(out.errors.is_empty());
    assert!(out.stats.warnings.is_empty(), "{:?}", out.stats.warnings);
    assert_eq!(out.stats.packets, 3);
    assert_eq!(out.flows.to_vec().unwrap().len(), 1);
}

/// An EPB whose caplen runs past its own block, and one too short to hold its fixed fields:
/// skipped with a warning, and reading goes on.
#[test]
fn packet_blocks_inconsistent_with_their_length_are_skipped() {
    let (_, sa) = syn_synack();
    let mut ng = ng_prefix();
    ng.extend(block(EPB, &epb_body(0, T0_US + 1, 5000, 5000, &sa))); // at 136
    ng.extend(block(EPB, &[0; 12])); // at 224
    ng.extend(epb(0, T0_US + 2, &sa));
    let (out, _f) = run_bytes(&ng, ".pcapng", EngineConfig::default());
    assert!(out.errors.is_empty());
    check_accounting(&out, 4_000_000);
    assert_eq!(out.stats.flow_packets, 2);
    assert_eq!(out.stats.reader_skipped, 2);
    let offsets: Vec<u64> = out.stats.warnings.iter().map(|(_, w)| w.offset).collect();
    assert_eq!(offsets, vec![136, 224]);
}

/// Every IDB adds an interface (interface ids are u32). Found 2026-11-24 with no limit: 20 M
/// IDBs of 20 bytes gzip to 970 KB and cost 475 MB of RSS (about 500x the compressed size), for
/// a file with no packet at all. 5 M IDBs (100 MB decompressed, ~250 KB of gzip) must not cost more than 64 MB;
/// interfaces past a sane limit can be refused with a warning like undefined ones.
#[test]
fn a_flood_of_interface_descriptions_is_bounded() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&shb()).unwrap();
    let chunk = idb(1, &[]).repeat(100_000);
    for _ in 0..50 {
        gz.write_all(&chunk).unwrap();
    }
    let f = temp_file(&gz.finish().unwrap(), ".pcapng.gz");
    let rss = peak_rss_kib(f.path(), &[]);
    eprintln!("5M IDBs: peak RSS {rss} KiB");
    assert!(rss < 64 * 1024, "5M interface descriptions cost {rss} KiB");
}

/// Many bad records: warnings are capped (1,000) while every skipped record is still counted.
#[test]
fn a_flood_of_bad_records_is_counted_with_bounded_warnings() {
    let (_, sa) = syn_synack();
    let mut ng = shb();
    for i in 0..20_000u64 {
        ng.extend(epb(3, T0_US + i, &sa));
    }
    let (out, _f) = run_bytes(&ng, ".pcapng", EngineConfig::default());
    assert!(out.errors.is_empty());
    assert_eq!(out.stats.reader_skipped, 20_000);
    assert_eq!(out.stats.warnings.len(), 1_000);
}

// ---------------------------------------------------------------------------------------------
// Every capture shipped in ../shared/pcaps and fixtures, cut at about 40 places: no panic,
// and damage (if any) is reported at an offset inside the file.

#[test]
fn every_prefix_of_the_sample_captures_reads_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = vec![root.join("fixtures/demo/backup-window.pcap")];
    match std::fs::read_dir(root.join("../shared/pcaps")) {
        Ok(dir) => files.extend(
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng")),
        ),
        // As tests/shared_pcaps.rs: CI must have them; elsewhere the fixture alone is used.
        Err(e) => assert!(
            std::env::var("CI").is_err(),
            "../shared/pcaps is missing on CI: {e}"
        ),
    }
    files.sort();
    let files_read = files.len();
    let mut runs = 0;
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let bytes = &bytes[..bytes.len().min(200_000)];
        // About 40 cuts per file, always including the odd offsets just past each header.
        let step = (bytes.len() / 40).max(1) | 1;
        let mut cut = 0;
        while cut < bytes.len() {
            let f = temp_file(&bytes[..cut], ".pcap");
            match run_files(
                &[f.path().to_path_buf()],
                EngineConfig::default(),
                &big_opts(),
            ) {
                Ok(out) => {
                    check_accounting(&out, 4_000_000);
                    for e in &out.errors {
                        if let ReadError::Corrupt { offset, .. } = e {
                            assert!(*offset <= cut as u64, "{}: {e}", path.display());
                        }
                    }
                }
                Err(e) => assert!(e.to_string().contains(&f.path().display().to_string())),
            }
            runs += 1;
            cut += step;
        }
    }
    assert!(
        runs >= 10 * files_read,
        "{runs} runs over {files_read} files"
    );
}
