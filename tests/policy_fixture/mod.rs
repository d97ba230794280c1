//! Report directories the policy tests share: the demo audit, and a small audit of a capture
//! made here (documented in tests/policy.rs), audited by the real `flowaudit audit`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, rec, v4, v6, write_pcap, Rec, ACK, FA, PA, SA, SYN};
use flowaudit::decode::link;
use flowaudit::synth::Frame;

pub const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

pub const SMALL_INVENTORY: &str = "address,roles,name
10.9.0.5,backup-console,con
10.9.0.20,backup-proxy,px
2001:db8:9::20,backup-proxy,px
10.9.0.30,backup-repository,repo
2001:db8:9::30,backup-repository,repo
";

/// One complete TCP session (handshake, data both ways, FINs), 1 ms between packets.
pub fn session(recs: &mut Vec<Rec>, t: &mut i64, c: &str, cp: u16, s: &str, sp: u16) {
    let ip = |a: &str| if a.contains(':') { v6(a) } else { v4(a) };
    let (ca, sa) = (ip(c), ip(s));
    for (fwd, flags, len) in [
        (true, SYN, 0),
        (false, SA, 0),
        (true, ACK, 0),
        (true, PA, 100),
        (false, PA, 300),
        (true, FA, 0),
        (false, FA, 0),
        (true, ACK, 0),
    ] {
        let f = if fwd {
            Frame::tcp(ca, cp, sa, sp, flags, len)
        } else {
            Frame::tcp(sa, sp, ca, cp, flags, len)
        };
        recs.push(rec(*t, f.ethernet()));
        *t += common::MS;
    }
    *t += 100 * common::MS;
}

/// The small audit's report directory (see tests/policy.rs).
pub fn small_audit(dir: &Path) -> PathBuf {
    let mut recs = Vec::new();
    let mut t = common::T0;
    session(&mut recs, &mut t, "10.9.0.20", 40001, "10.9.0.30", 2500);
    session(&mut recs, &mut t, "10.9.0.20", 40002, "10.9.0.30", 2501);
    session(
        &mut recs,
        &mut t,
        "2001:db8:9::20",
        40003,
        "2001:db8:9::30",
        2503,
    );
    session(&mut recs, &mut t, "10.9.0.5", 40004, "10.9.0.30", 2600);
    session(&mut recs, &mut t, "10.9.0.20", 40005, "10.9.0.30", 3306);
    audit(dir, &recs, SMALL_INVENTORY, "report")
}

/// Writes the capture and inventory into `dir` and audits them into `dir/name`.
pub fn audit(dir: &Path, recs: &[Rec], inventory: &str, name: &str) -> PathBuf {
    let pcap = write_pcap(link::ETHERNET, false, recs);
    let inv = dir.join(format!("{name}-hosts.csv"));
    std::fs::write(&inv, inventory).unwrap();
    let out = dir.join(name);
    let st = Command::new(BIN)
        .args(["audit", "-q", "-I"])
        .arg(&inv)
        .arg(pcap.path())
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    out
}

/// The demo audit (fixtures/demo) into `dir/demo`.
pub fn demo_audit(dir: &Path) -> PathBuf {
    let out = dir.join("demo");
    let st = Command::new(BIN)
        .args([
            "audit",
            "fixtures/demo/backup-window.pcap",
            "-I",
            "fixtures/demo/hosts.csv",
            "-q",
            "-o",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    out
}
