//! Every capture in ../shared/pcaps against counts derived independently (tshark field exports
//! plus a Python reimplementation of the flow definition: tests/data/derive_expected.py, whose
//! notes column explains each difference from tshark's conversation tables).

use std::path::{Path, PathBuf};

use flowaudit::decode::{proto, Skip};
use flowaudit::engine::run::{run_files, RunOptions};
use flowaudit::engine::EngineConfig;

mod common;

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps");
    if dir.is_dir() {
        return Some(dir);
    }
    // CI always has ../shared: a missing one there is a broken setup, not a reason to skip.
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("skipping: {} not found", dir.display());
    None
}

#[test]
fn every_shared_capture_matches_independent_counts() {
    let Some(dir) = shared() else { return };
    let mut rdr = csv::Reader::from_path("tests/data/shared_pcaps_expected.csv").unwrap();
    let mut checked = 0;
    for rec in rdr.deserialize::<std::collections::HashMap<String, String>>() {
        let row = rec.unwrap();
        let file = &row["file"];
        let n = |k: &str| row[k].parse::<u64>().unwrap();
        // Mapped into memory or read with read calls, a file gives the same flows, counts and
        // errors (malformed files included).
        let mapped = common::run_mapped_and_read(&dir.join(file), EngineConfig::default());
        let out = match mapped {
            Ok(o) => o,
            Err(e) => {
                // Unreadable from the first bytes on (header damage): nothing to keep.
                assert_eq!(
                    row["error_offset"],
                    e.to_string()
                        .split("at byte ")
                        .nth(1)
                        .unwrap()
                        .split(':')
                        .next()
                        .unwrap(),
                    "{file}: {e}"
                );
                assert_eq!(n("packets"), 0, "{file}");
                assert_eq!(e.exit_code(), 3, "{file}");
                checked += 1;
                continue;
            }
        };
        let count = |p: fn(u8) -> bool| {
            out.flows
                .to_vec()
                .unwrap()
                .iter()
                .filter(|f| p(f.key.proto))
                .count() as u64
        };
        let skip = |s: Skip| out.stats.skipped.get(&s).copied().unwrap_or(0);
        assert_eq!(out.stats.packets, n("packets"), "{file}: packets");
        assert_eq!(
            count(|p| p == proto::TCP),
            n("tcp_flows"),
            "{file}: tcp flows"
        );
        assert_eq!(
            count(|p| p == proto::UDP),
            n("udp_flows"),
            "{file}: udp flows"
        );
        assert_eq!(
            count(|p| p != proto::TCP && p != proto::UDP),
            n("other_flows"),
            "{file}: other flows"
        );
        assert_eq!(
            skip(Skip::NotIp),
            n("non_ip_packets"),
            "{file}: non-IP packets"
        );
        assert_eq!(
            skip(Skip::OrphanFragment),
            n("orphan_fragments"),
            "{file}: orphan fragments"
        );
        let offset = &row["error_offset"];
        if offset.is_empty() {
            assert!(
                out.errors.is_empty() && out.stats.warnings.is_empty(),
                "{file}: {:?} {:?}",
                out.errors,
                out.stats.warnings
            );
        } else {
            let mut offsets: Vec<String> = out
                .errors
                .iter()
                .map(|e| match e {
                    flowaudit::capture::ReadError::Corrupt { offset, .. } => offset.to_string(),
                    other => panic!("{file}: {other}"),
                })
                .collect();
            offsets.extend(out.stats.warnings.iter().map(|(_, w)| w.offset.to_string()));
            assert!(
                offsets.contains(offset),
                "{file}: damage reported at {offsets:?}, expected {offset}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 40, "every capture in the manifest was checked");
}

#[test]
fn shared_capture_flows_match_independent_flow_lists() {
    let Some(dir) = shared() else { return };
    let flows_dir = Path::new("tests/data/shared_pcaps_flows");
    let mut files = 0;
    for entry in std::fs::read_dir(flows_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".csv")
            .to_string();
        let out = run_files(
            &[dir.join(&name)],
            EngineConfig::default(),
            &RunOptions::default(),
        )
        .unwrap();
        // The reference lists flows as unordered endpoint pairs: (vlan, proto, a, b, first, packets, bytes).
        let mut got: Vec<String> = out
            .flows
            .to_vec()
            .unwrap()
            .iter()
            .map(|f| {
                let (mut a, mut b) = (f.client(), f.server());
                let s = |x: (flowaudit::decode::Addr, u16)| (x.0.to_string(), x.1);
                if s(b) < s(a) {
                    std::mem::swap(&mut a, &mut b);
                }
                let port = |p: u16| {
                    if proto::has_ports(f.key.proto) {
                        p.to_string()
                    } else {
                        String::new()
                    }
                };
                format!(
                    "{},{},{},{},{},{},{},{},{}",
                    f.vlan().map(|v| v.to_string()).unwrap_or_default(),
                    f.key.proto,
                    a.0,
                    port(a.1),
                    b.0,
                    port(b.1),
                    flowaudit::report::format_ts(f.flow.first_ts),
                    f.flow.packets[0] + f.flow.packets[1],
                    f.flow.bytes[0] + f.flow.bytes[1]
                )
            })
            .collect();
        let mut want: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .skip(1)
            .map(String::from)
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}");
        files += 1;
    }
    assert!(files >= 30, "only {files} reference flow lists");
}
