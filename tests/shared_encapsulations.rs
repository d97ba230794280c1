//! The shared captures (../shared/pcaps, see its MANIFEST.csv) against the rules of
//! docs/flows.md that do not need per-file expectations: `--decap` loses no packet, and
//! `--vlan-key none` joins one 5-tuple seen on several VLANs.

use std::path::{Path, PathBuf};

use flowaudit::decode::{DecodeOptions, VlanKey};
use flowaudit::engine::run::{run_files, RunOptions};
use flowaudit::engine::EngineConfig;

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("skipping: {} not found", dir.display());
    None
}

fn cfg(decode: DecodeOptions) -> EngineConfig {
    EngineConfig {
        decode,
        ..EngineConfig::default()
    }
}

/// (packets, packets in flows, packets skipped, flows) of one run, or None if it cannot open.
fn counts(path: &Path, decode: DecodeOptions) -> Option<(u64, u64, u64, u64)> {
    let out = run_files(&[path.to_path_buf()], cfg(decode), &RunOptions::default()).ok()?;
    let s = &out.stats;
    Some((
        s.packets,
        s.flow_packets,
        s.skipped_total(),
        out.flows.len(),
    ))
}

#[test]
fn decap_and_default_count_the_same_packets_in_flows_plus_skipped() {
    let Some(dir) = shared() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "{} captures", files.len());
    let mut checked = 0;
    for f in &files {
        let plain = counts(f, DecodeOptions::with_decap(false));
        let decap = counts(f, DecodeOptions::with_decap(true));
        let (Some(p), Some(d)) = (plain, decap) else {
            assert_eq!(plain.is_none(), decap.is_none(), "{}", f.display());
            continue;
        };
        assert_eq!(p.0, d.0, "{}: packets read", f.display());
        assert_eq!(p.1 + p.2, p.0, "{}: default", f.display());
        assert_eq!(d.1 + d.2, d.0, "{}: --decap", f.display());
        // No capture here carries a tunnel payload the decoder cannot read, so even the split
        // between flows and skipped is the same.
        assert_eq!((p.1, p.2), (d.1, d.2), "{}", f.display());
        checked += 1;
    }
    assert!(checked >= 38, "checked {checked}");
}

#[test]
fn vlan_collisions_capture_is_one_tcp_flow_with_vlan_key_none() {
    // MANIFEST.csv: one TCP 5-tuple seen untagged, on VLAN 42 and on VLANs 10/20; tshark's
    // conversation table (which ignores VLANs) counts 1 TCP flow, a VLAN-aware key 3.
    let Some(dir) = shared() else { return };
    let path = dir.join("pcap-vlan-collisions-same-5tuple-per-vlan.pcap");
    let tcp_flows = |vlan_key| {
        let decode = DecodeOptions {
            decap: false,
            vlan_key,
        };
        let out = run_files(
            std::slice::from_ref(&path),
            cfg(decode),
            &RunOptions::default(),
        )
        .unwrap();
        out.flows
            .to_vec()
            .unwrap()
            .iter()
            .filter(|r| r.key.proto == flowaudit::decode::proto::TCP)
            .count()
    };
    assert_eq!(tcp_flows(VlanKey::Outer), 3);
    assert_eq!(tcp_flows(VlanKey::None), 1);
}
