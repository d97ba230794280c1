//! Server names from the wire (DNS answers, TLS SNI) against tshark's dissection of the same
//! capture, recorded in tests/data/https_sni.csv and https_dns_a.csv with:
//!   tshark -r F -Y "tls.handshake.type==1 && tls.handshake.extensions_server_name" \
//!     -T fields -E separator=, -e ip.dst -e tls.handshake.extensions_server_name | sort -u
//!   tshark -r F -Y "dns.flags.response==1 && dns.a" -T fields -e dns.qry.name -e dns.a

use std::collections::BTreeSet;
use std::path::Path;

use flowaudit::decode::Addr;
use flowaudit::engine::run::{run_files, RunOptions};
use flowaudit::engine::EngineConfig;

fn capture() -> Option<std::path::PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/pcaps/enterprise-https-tls-443-dns-stp.pcap");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but {} is missing",
        p.display()
    );
    None
}

fn addr(s: &str) -> Addr {
    Addr::from(s.parse::<std::net::IpAddr>().unwrap())
}

#[test]
fn sni_and_dns_names_match_tshark() {
    let Some(f) = capture() else { return };
    let out = run_files(&[f], EngineConfig::default(), &RunOptions::default()).unwrap();
    let names = &out.names;
    let sni = std::fs::read_to_string("tests/data/https_sni.csv").unwrap();
    let mut checked = 0;
    for line in sni.lines().skip(1) {
        let (a, n) = line.split_once(',').unwrap();
        assert!(
            names.get(&addr(a)).is_some_and(|s| s.contains(n)),
            "SNI {n} for {a}: have {:?}",
            names.get(&addr(a))
        );
        checked += 1;
    }
    assert_eq!(checked, 20);
    let dns = std::fs::read_to_string("tests/data/https_dns_a.csv").unwrap();
    let mut pairs = 0;
    for line in dns.lines().skip(1) {
        let mut cells = line.split([',', ';']);
        let q = cells.next().unwrap();
        for a in cells {
            assert!(
                names.get(&addr(a)).is_some_and(|s| s.contains(q)),
                "DNS {q} -> {a}: have {:?}",
                names.get(&addr(a))
            );
            pairs += 1;
        }
    }
    assert!(pairs >= 37, "{pairs}");
    assert_eq!(out.stats.names_dropped, 0);
}

#[test]
fn hostile_names_are_printable_and_bounded() {
    // A DNS response whose answer name loops on itself through a compression pointer, and one
    // with a label holding a newline and a formula character.
    let mut msg = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    msg.extend_from_slice(b"\x05a=b\nc\x03com\x00\x00\x01\x00\x01");
    // Answer 1: name = pointer to the question (offset 12), A 192.0.2.7.
    msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
    // Answer 2: a pointer to itself (offset of this answer): must be refused, not loop.
    let self_at = msg.len() as u8;
    msg.extend_from_slice(&[0xc0, self_at, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 8]);
    let got = flowaudit::decode::names::dns_answers(&msg);
    assert_eq!(got, vec![(addr("192.0.2.7"), "a=b\\x0ac.com".to_string())]);
    let set: BTreeSet<String> = got.into_iter().map(|(_, n)| n).collect();
    assert!(set.iter().all(|n| n.bytes().all(|b| b.is_ascii_graphic())));
    // A ClientHello cut short anywhere yields no name and no panic.
    let hello = b"\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x03\x03";
    for cut in 0..hello.len() {
        assert_eq!(flowaudit::decode::names::tls_sni(&hello[..cut]), None);
    }
}
