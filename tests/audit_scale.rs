//! The audit at network scale: thousands of hosts in a few inventory entries give one finding
//! per (kind, client group, server group, protocol, port), with exact host-pair, flow and byte
//! counts worked out from the capture the test writes; `--group-by host` and `role`; the same
//! bytes for any thread count and with flows spilled to disk.
//!
//! Sizes on the wire (src/synth.rs `tcp_session`, frames padded to 60 bytes): a complete TCP
//! session is 6 x 60 + (54 + 200) + (54 + 1000) = 1,668 bytes; a refused one 60 + 60 = 120.

mod common;

use common::{read_csv, Row};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use flowaudit::capture::writer::PcapWriter;
use flowaudit::decode::link;
use flowaudit::synth::{tcp_session, Session};

const COMPLETE: u64 = 1_668;
const REFUSED: u64 = 120;
const PROXIES: u32 = 2_000;
const UNDOCUMENTED: u32 = 1_500;
const REFUSED_PAIRS: u32 = 40;

fn proxy(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn repo(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 128, 0, (i % 4 + 1) as u8)
}

/// The backup window: every proxy sends a job to its repository on tcp/2500-2505 (VBR-058,
/// backup-proxy -> backup-repository 2500-3300); 1,500 of them also reach tcp/3306 (in no
/// catalog); 40 are refused on tcp/2600 (VBR-058 again); 150 hosts outside the inventory, in
/// two /24s, reach a repository on tcp/2500.
fn write_capture(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(std::io::BufWriter::new(f), link::ETHERNET, false).unwrap();
    let mut ts = 1_767_225_600_000_000_000i64;
    let mut port = 20_000u16;
    let mut next = || {
        port = if port == 60_000 { 20_000 } else { port + 1 };
        port
    };
    for i in 0..PROXIES {
        let job = 2500 + (i % 6) as u16;
        ts = tcp_session(
            &mut w,
            ts,
            (proxy(i), next()),
            (repo(i), job),
            Session::Complete,
        )
        .unwrap();
        if i < UNDOCUMENTED {
            ts = tcp_session(
                &mut w,
                ts,
                (proxy(i), next()),
                (repo(i), 3306),
                Session::Complete,
            )
            .unwrap();
        }
        if i < REFUSED_PAIRS {
            ts = tcp_session(
                &mut w,
                ts,
                (proxy(i), next()),
                (repo(i), 2600),
                Session::Refused,
            )
            .unwrap();
        }
    }
    for (net, n) in [(5u8, 100u8), (6, 50)] {
        for h in 1..=n {
            let c = Ipv4Addr::new(192, 168, net, h);
            ts = tcp_session(&mut w, ts, (c, next()), (repo(0), 2500), Session::Complete).unwrap();
        }
    }
    w.into_inner().into_inner().unwrap();
}

const INVENTORY: &str = "address,roles,name
10.0.0.0/16,backup-proxy,proxies
10.128.0.0/24,windows-backup-repository,repos
";

struct Site {
    _dir: tempfile::TempDir,
    capture: std::path::PathBuf,
    inventory: std::path::PathBuf,
    root: std::path::PathBuf,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("window.pcap");
    write_capture(&capture);
    let inventory = dir.path().join("hosts.csv");
    std::fs::write(&inventory, INVENTORY).unwrap();
    Site {
        root: dir.path().to_path_buf(),
        _dir: dir,
        capture,
        inventory,
    }
}

fn audit(s: &Site, out: &str, extra: &[&str]) -> std::path::PathBuf {
    let dir = s.root.join(out);
    let st = Command::new(env!("CARGO_BIN_EXE_flowaudit"))
        .arg("audit")
        .arg(&s.capture)
        .arg("--inventory")
        .arg(&s.inventory)
        .arg("-o")
        .arg(&dir)
        .arg("-q")
        .args(extra)
        .status()
        .unwrap();
    assert!(st.success(), "audit {extra:?} failed: {st}");
    dir
}

/// (kind, subject, host_pairs, flows, bytes) of the findings that are not about unused rules.
fn findings(dir: &Path) -> Vec<(String, String, u64, u64, u64)> {
    read_csv(&dir.join("findings.csv"))
        .into_iter()
        .filter(|r| r["kind"] != "unused-rule")
        .map(|r| {
            let n = |k: &str| r[k].parse::<u64>().unwrap();
            (
                r["kind"].clone(),
                r["subject"].clone(),
                n("host_pairs"),
                n("flows"),
                n("bytes"),
            )
        })
        .collect()
}

#[test]
fn thousands_of_hosts_give_one_finding_per_group_pair_and_port() {
    let s = site();
    let dir = audit(&s, "entry", &[]);
    let f = |k: &str, subj: &str, pairs: u32, flows: u32, bytes: u64| {
        (
            k.to_string(),
            subj.to_string(),
            pairs as u64,
            flows as u64,
            bytes,
        )
    };
    let r = REFUSED_PAIRS;
    assert_eq!(
        findings(&dir),
        [
            f(
                "documented-refused",
                "proxies -> repos tcp/2600",
                r,
                r,
                r as u64 * REFUSED
            ),
            f(
                "undocumented",
                "proxies -> repos tcp/3306",
                UNDOCUMENTED,
                UNDOCUMENTED,
                UNDOCUMENTED as u64 * COMPLETE
            ),
            f(
                "unknown-host",
                "192.168.5.0/24 -> repos tcp/2500",
                100,
                100,
                100 * COMPLETE
            ),
            f(
                "unknown-host",
                "192.168.6.0/24 -> repos tcp/2500",
                50,
                50,
                50 * COMPLETE
            ),
            // Every proxy's job plus the refused attempts: 2,000 host pairs (the refused ones
            // are pairs that also ran a job), ports 2500-2505 and 2600.
            f(
                "narrow-range",
                "VBR-058 proxies -> repos (2500-3300)",
                PROXIES,
                PROXIES + r,
                PROXIES as u64 * COMPLETE + r as u64 * REFUSED
            ),
        ]
    );
    let rules = read_csv(&dir.join("rules.csv"));
    let used: Vec<&Row> = rules.iter().filter(|u| u["status"] == "used").collect();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0]["ports_seen"], "2500-2505;2600");
    assert_eq!(used[0]["suggested_range"], "2500-2600");
    // services.csv keeps the evidence per host pair: 2,000 jobs, 1,500 + 40 more services of
    // the proxies, 150 of the unlisted hosts.
    let services = read_csv(&dir.join("services.csv"));
    assert_eq!(services.len(), 2_000 + 1_500 + 40 + 150);
    let first = &services[0];
    assert_eq!(
        (
            first["client_addr"].as_str(),
            first["client_group"].as_str(),
            first["server_group"].as_str()
        ),
        ("10.0.0.1", "proxies", "repos")
    );
}

#[test]
fn group_by_host_gives_one_row_per_host_pair_and_role_one_per_role_set() {
    let s = site();
    let host = findings(&audit(&s, "host", &["--group-by", "host"]));
    let count =
        |v: &[(String, String, u64, u64, u64)], k: &str| v.iter().filter(|f| f.0 == k).count();
    assert_eq!(count(&host, "undocumented"), UNDOCUMENTED as usize);
    assert_eq!(count(&host, "unknown-host"), 150);
    assert_eq!(count(&host, "documented-refused"), REFUSED_PAIRS as usize);
    assert!(host
        .iter()
        .filter(|f| f.0 != "narrow-range")
        .all(|f| f.2 == 1));
    assert!(host.contains(&(
        "undocumented".into(),
        "proxies (10.0.0.1) -> repos (10.128.0.1) tcp/3306".into(),
        1,
        1,
        COMPLETE
    )));
    assert!(host.contains(&(
        "unknown-host".into(),
        "192.168.5.7 -> repos (10.128.0.1) tcp/2500".into(),
        1,
        1,
        COMPLETE
    )));
    let role = findings(&audit(&s, "role", &["--group-by", "role"]));
    assert!(role.contains(&(
        "undocumented".into(),
        "backup-proxy -> windows-backup-repository tcp/3306".into(),
        UNDOCUMENTED as u64,
        UNDOCUMENTED as u64,
        UNDOCUMENTED as u64 * COMPLETE
    )));
    assert_eq!(role.len(), 5);
}

fn assert_same_reports(a: &Path, b: &Path, what: &str, except: &[&str]) {
    for f in [
        "services.csv",
        "rules.csv",
        "findings.csv",
        "groups.csv",
        "inventory.csv",
        "summary.md",
        "report.html",
    ] {
        if except.contains(&f) {
            continue;
        }
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs {what}");
    }
}

#[test]
fn same_bytes_for_any_thread_count_and_with_flows_spilled_to_disk() {
    let s = site();
    let one = audit(&s, "j1", &["-j", "1", "--write-flows"]);
    let two = audit(&s, "j2", &["-j", "2", "--write-flows"]);
    let seven = audit(&s, "j7", &["-j", "7"]);
    assert_same_reports(&one, &two, "between -j1 and -j2", &[]);
    assert_same_reports(&one, &seven, "between -j1 and -j7", &[]);
    assert_eq!(
        std::fs::read(one.join("flows.csv")).unwrap(),
        std::fs::read(two.join("flows.csv")).unwrap()
    );
    // 3,690 flows through a table of 256: finished (closed) flows make room and go to disk three
    // at a time. Sessions follow each other, so none is cut by it; the summary says the table
    // was full, and nothing else differs.
    let out = Command::new(env!("CARGO_BIN_EXE_flowaudit"))
        .arg("audit")
        .arg(&s.capture)
        .arg("-I")
        .arg(&s.inventory)
        .arg("-o")
        .arg(s.root.join("spill"))
        .args([
            "--max-flows",
            "256",
            "--spill-after",
            "3",
            "--batch",
            "1000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    let spilled: u64 = said
        .lines()
        .find_map(|l| l.split("spill directory while running: ").nth(1))
        .and_then(|n| n.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no spill count in {said}"));
    assert!(spilled > 3_000, "only {spilled} flows spilled");
    let spill = s.root.join("spill");
    assert_same_reports(&one, &spill, "with flows spilled to disk", &["summary.md"]);
    let without_eviction = |d: &Path| {
        let t = std::fs::read_to_string(d.join("summary.md")).unwrap();
        let noted = |l: &&str| l.contains("evicted") || l.contains("Nothing noted");
        t.lines()
            .filter(|l| !noted(l))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_eviction(&one), without_eviction(&spill));
    assert!(
        !seven.join("flows.csv").exists(),
        "flows.csv is written on request only"
    );
}
