//! The audit end to end on the demo fixture, catalog self-checks, and lint/inventory errors.
//!
//! Expected values are worked out by hand from the demo plan (src/synth.rs `demo`), the catalog
//! rows named below, and frame sizes: a complete session is SYN, SYN-ACK, ACK (60-byte minimum
//! frames), 200 bytes of data (54 + 200 = 254), 1000 back (1054), FIN, FIN, ACK: 6 * 60 + 254 +
//! 1054 = 1668 bytes in 8 packets. A refused attempt is SYN + RST-ACK: 120 bytes.

mod common;

use common::read_csv;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use flowaudit::audit::catalog::{parse_ports, Catalogs, Roles};
use flowaudit::audit::inventory::Inventory;

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

fn run_demo_audit(dir: &Path, threads: &str) -> i32 {
    Command::new(BIN)
        .args([
            "audit",
            "fixtures/demo/backup-window.pcap",
            "-I",
            "fixtures/demo/hosts.csv",
            "-q",
            "-j",
            threads,
            "-o",
        ])
        .arg(dir)
        .status()
        .unwrap()
        .code()
        .unwrap()
}

#[test]
fn demo_fixture_is_what_the_generator_writes() {
    let mut buf = Vec::new();
    flowaudit::synth::demo(&mut buf).unwrap();
    assert_eq!(
        buf,
        std::fs::read("fixtures/demo/backup-window.pcap").unwrap()
    );
    assert_eq!(
        flowaudit::synth::DEMO_INVENTORY,
        std::fs::read_to_string("fixtures/demo/hosts.csv").unwrap()
    );
}

#[test]
fn demo_reports_match_expected_for_any_thread_count() {
    for threads in ["1", "2", "7"] {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(run_demo_audit(dir.path(), threads), 0);
        for f in [
            "services.csv",
            "rules.csv",
            "findings.csv",
            "summary.md",
            "manifest.json",
            "inventory.csv",
            "groups.csv",
        ] {
            let got = std::fs::read_to_string(dir.path().join(f)).unwrap();
            let want =
                std::fs::read_to_string(Path::new("fixtures/demo/expected").join(f)).unwrap();
            // summary.md names the report's inputs; both runs audit the same relative path.
            assert_eq!(got, want, "{f} differs with --threads {threads}");
        }
    }
}

#[test]
fn demo_verdicts_outcomes_and_rules_worked_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_demo_audit(dir.path(), "2"), 0);
    let services = read_csv(&dir.path().join("services.csv"));
    let find = |c: &str, s: &str, port: &str| {
        services
            .iter()
            .find(|r| r["client_addr"] == c && r["server_addr"] == s && r["server_port"] == port)
            .unwrap_or_else(|| panic!("no service {c} -> {s}:{port}"))
    };
    // (client, server, port, verdict, outcome, rule ids, flows, bytes)
    let expect = [
        // VBR-007: backup-server -> windows-server tcp/6162 (Data Mover).
        (
            "10.1.0.10",
            "10.1.0.20",
            "6162",
            "documented",
            "established",
            "VBR-007",
            "1",
            "1668",
        ),
        // VBR-002: backup-server -> windows-server tcp/6160, answered by RST.
        (
            "10.1.0.10",
            "10.1.0.20",
            "6160",
            "documented",
            "refused",
            "VBR-002",
            "1",
            "120",
        ),
        // VBR-016: backup-server -> linux-server tcp/6162, two SYNs and nothing back.
        (
            "10.1.0.10",
            "10.1.0.30",
            "6162",
            "documented",
            "unanswered",
            "VBR-016",
            "1",
            "120",
        ),
        (
            "10.1.0.10",
            "10.1.0.30",
            "22",
            "documented",
            "established",
            "VBR-015",
            "1",
            "1668",
        ),
        (
            "10.1.0.5",
            "10.1.0.10",
            "9392",
            "documented",
            "established",
            "VBR-036",
            "1",
            "1668",
        ),
        // EM-030: enterprise-manager -> windows-backup-server tcp/9392.
        (
            "10.1.0.11",
            "10.1.0.10",
            "9392",
            "documented",
            "established",
            "EM-030",
            "1",
            "1668",
        ),
        (
            "10.1.0.51",
            "10.1.0.50",
            "8006",
            "documented",
            "established",
            "PVE-001",
            "1",
            "1668",
        ),
        // AGT-001: backup-server -> agent-computer-windows tcp/6184 (Veeam Agent management).
        (
            "10.1.0.10",
            "10.1.0.40",
            "6184",
            "documented",
            "established",
            "AGT-001",
            "1",
            "1668",
        ),
        // BE-001/BE-005: be-server -> be-remote-agent 1025-65535; BE-003: the control port 10000,
        // listed first as the specific opening.
        (
            "10.1.0.60",
            "10.1.0.61",
            "10000",
            "documented",
            "established",
            "BE-003;BE-001;BE-005",
            "1",
            "1668",
        ),
        (
            "10.1.0.61",
            "10.1.0.60",
            "6101",
            "documented",
            "established",
            "BE-004;BE-002;BE-006",
            "1",
            "1668",
        ),
        // 3306 is in no specific rule: undocumented.
        (
            "10.1.0.20",
            "10.1.0.30",
            "3306",
            "undocumented",
            "established",
            "",
            "1",
            "1668",
        ),
        // 8006 is documented only towards proxmox-ve-server (PVE-001 from a worker, PVE-016 from
        // the backup server): an agent computer to a repository is the wrong roles.
        (
            "10.1.0.40",
            "10.1.0.30",
            "8006",
            "role-mismatch",
            "established",
            "PVE-001;PVE-016",
            "1",
            "1668",
        ),
        // SSH is documented backup-server -> linux-server (VBR-015), not the other way.
        (
            "10.1.0.30",
            "10.1.0.10",
            "22",
            "reverse",
            "established",
            "VBR-015",
            "1",
            "1668",
        ),
        (
            "10.1.0.99",
            "10.1.0.10",
            "443",
            "unknown-host",
            "established",
            "",
            "1",
            "1668",
        ),
    ];
    for (c, s, p, verdict, outcome, rules, flows, bytes) in expect {
        let r = find(c, s, p);
        assert_eq!(
            (
                r["verdict"].as_str(),
                r["outcome"].as_str(),
                r["rule_ids"].as_str(),
                r["flows"].as_str(),
                r["bytes"].as_str()
            ),
            (verdict, outcome, rules, flows, bytes),
            "{c} -> {s}:{p}"
        );
    }
    assert_eq!(
        find("10.1.0.99", "10.1.0.10", "443")["unknown_end"],
        "client"
    );
    assert_eq!(find("10.1.0.10", "10.1.0.2", "53")["unknown_end"], "server");
    // 21 planned TCP sessions, each its own service (data channels use distinct ports), and DNS.
    assert_eq!(services.len(), 22);

    // Rule usage and narrowed ranges: proxy -> repository used 2500, 2501, 2502 and 2505 of
    // VBR-058's 2500-3300; Backup Exec's data connections used 40000, 40001, 40003 of
    // 1025-65535 (the control port 10000 is BE-003's own, so it does not widen BE-001).
    let rules = read_csv(&dir.path().join("rules.csv"));
    let rule = |id: &str, c: &str, s: &str| {
        rules
            .iter()
            .find(|r| r["rule_id"] == id && r["client"] == c && r["server"] == s)
            .unwrap_or_else(|| panic!("no rule row {id} {c} {s}"))
    };
    let vbr058 = rule("VBR-058", "proxy01", "repo01");
    assert_eq!(
        (
            vbr058["status"].as_str(),
            vbr058["flows"].as_str(),
            vbr058["ports_seen"].as_str(),
            vbr058["suggested_range"].as_str()
        ),
        ("used", "4", "2500-2502;2505", "2500-2505")
    );
    let be001 = rule("BE-001", "bemedia01", "files01");
    assert_eq!(
        (
            be001["ports_seen"].as_str(),
            be001["suggested_range"].as_str()
        ),
        ("40000-40001;40003", "40000-40003")
    );
    // BE-002 (agent -> media server, 1025-65535) saw only 6101, which BE-004 documents on its
    // own: the wide range was not used.
    assert_eq!(rule("BE-002", "files01", "bemedia01")["status"], "unused");
    assert_eq!(rule("BE-004", "files01", "bemedia01")["status"], "used");
    // VBR-036 (console -> backup server 9392) is used; VBR-037 (console -> backup server 10003,
    // optional for Cloud Connect) is not, and says why it may stay.
    assert_eq!(rule("VBR-036", "admin01", "vbr01")["status"], "used");
    assert_eq!(rule("VBR-037", "admin01", "vbr01")["status"], "unused");
    let findings = read_csv(&dir.path().join("findings.csv"));
    let f037 = findings
        .iter()
        .find(|f| f["subject"].starts_with("VBR-037 "))
        .unwrap();
    assert!(f037["reason"].contains("optional"), "{}", f037["reason"]);
    // The two broken documented services are the high findings, and nothing else is.
    let high: Vec<&str> = findings
        .iter()
        .filter(|f| f["severity"] == "high")
        .map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(high, ["documented-refused", "documented-unanswered"]);
}

#[test]
fn fail_on_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let code = |sev: &str| {
        Command::new(BIN)
            .args([
                "audit",
                "fixtures/demo/backup-window.pcap",
                "-I",
                "fixtures/demo/hosts.csv",
                "-q",
                "--fail-on",
                sev,
                "-o",
            ])
            .arg(dir.path())
            .status()
            .unwrap()
            .code()
            .unwrap()
    };
    assert_eq!(code("high"), 1);
    assert_eq!(code("bogus"), 2);
}

#[test]
fn catalogs_self_check() {
    let cat = Catalogs::builtin(&[]).expect("built-in catalogs load without problems");
    let roles = Roles::builtin();
    let mut ids = std::collections::BTreeSet::new();
    for r in &cat.rules {
        assert!(ids.insert(r.id.clone()), "duplicate id {}", r.id);
        assert!(
            roles.contains(&r.from_role) && roles.contains(&r.to_role),
            "{}",
            r.id
        );
        assert!(!r.note.is_empty(), "{} has no note", r.id);
    }
    // Every document contributes rules, each from several sections (counts from the seeds'
    // table headings, as transcribed).
    let mut sections: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for r in &cat.rules {
        sections
            .entry(r.catalog.as_str())
            .or_default()
            .insert(r.section.as_str());
    }
    let got: BTreeMap<&str, usize> = sections.iter().map(|(k, v)| (*k, v.len())).collect();
    assert_eq!(got["veeam-proxmox"], 13);
    assert_eq!(got["veeam-em"], 7);
    assert_eq!(got["veeam-agent"], 7);
    assert_eq!(got["backup-exec"], 4);
    assert!(got["veeam-vbr"] >= 30, "{got:?}");
    for c in &cat.catalogs {
        assert!(!c.version.is_empty() && !c.product.is_empty(), "{c:?}");
    }
}

#[test]
fn lint_names_lines() {
    let text = "# catalog: mine\n# product: Mine\nid,section,from_role,to_role,protocol,ports,qualifiers,host_pattern,ref,note,decision,source_line\n\
X-1,S,backup-server,no-such-role,tcp,443,,,,n,,1\n\
X-2,S,backup-server,linux-server,tcp,137-139-445,,,,n,,2\n\
X-3,S,backup-server,linux-server,tcp,70000,,,,n,,3\n\
X-1,S,backup-server,linux-server,tcp,22,,,,n,,4\n\
X-5,S,backup-server,linux-server,,,,,Nowhere,n,,5\n";
    let problems: Vec<String> = Catalogs::lint("mine.csv", text)
        .iter()
        .map(|p| p.to_string())
        .collect();
    let want = [
        "mine.csv:4: X-1: unknown role \"no-such-role\" (see docs/roles.md)",
        "mine.csv:5: X-2: \"137-139-445\" has more than one '-': glued ranges must be separated with ';'",
        "mine.csv:6: X-3: port 70000 in \"70000\" is above 65535",
        "mine.csv:7: duplicate rule id X-1 (first on line 4)",
        "mine.csv:8: X-5: reference to section \"Nowhere\" of catalog mine, which has no rules",
    ];
    for w in want {
        assert!(
            problems.iter().any(|p| p == w),
            "missing {w:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), want.len(), "{problems:#?}");
    assert_eq!(parse_ports("135;137-139;445").unwrap().len(), 3);
}

#[test]
fn inventory_errors_name_lines_and_roles_merge() {
    let roles = Roles::builtin();
    let bad = "address,roles,name\n10.0.0.1,backup-server,a\n10.0.0.300,backup-server,b\n10.0.0.2,nope,c\n10.0.0.1,linux-server,other\n10.0.0.0/33,server,x\n";
    let err: Vec<String> = Inventory::parse("hosts.csv", bad, &roles)
        .unwrap_err()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        err,
        [
            "hosts.csv:3: \"10.0.0.300\" is not an IPv4/IPv6 address or CIDR block",
            "hosts.csv:4: unknown role \"nope\" (run `flowaudit catalog roles` for the list)",
            "hosts.csv:5: 10.0.0.1 is named \"other\" here but \"a\" on line 2",
            "hosts.csv:6: \"10.0.0.0/33\": prefix length must be 0 to 32",
        ]
    );
    let good =
        "10.0.0.0/24,linux-server,lab\n10.0.0.5,backup-repository,repo\n10.0.0.5,gateway-server\n";
    let inv = Inventory::parse("hosts.csv", good, &roles).unwrap();
    let h = inv
        .lookup(flowaudit::decode::Addr::v4([10, 0, 0, 5]), &roles)
        .unwrap();
    assert_eq!(h.name, "repo");
    // Own roles, the subnet's role, and their families (server is the parent of all three).
    assert_eq!(
        h.roles,
        [
            "backup-repository",
            "gateway-server",
            "linux-server",
            "server"
        ]
    );
    let other = inv
        .lookup(flowaudit::decode::Addr::v4([10, 0, 0, 9]), &roles)
        .unwrap();
    assert_eq!((other.name.as_str(), other.roles.len()), ("lab", 2));
    assert!(inv
        .lookup(flowaudit::decode::Addr::v4([10, 0, 1, 9]), &roles)
        .is_none());
}

#[test]
fn formula_cells_are_neutralised() {
    assert_eq!(
        flowaudit::report::safe_cell("=cmd|' /C calc'!A0"),
        "'=cmd|' /C calc'!A0"
    );
    assert_eq!(flowaudit::report::safe_cell("@SUM(1)"), "'@SUM(1)");
    assert_eq!(flowaudit::report::safe_cell("vbr01"), "vbr01");
}

/// A DNS response (10.1.0.2 -> gateway) naming 198.51.100.7 `bucket.s3.amazonaws.com`.
fn dns_response(client_port: u16) -> Vec<u8> {
    let mut dns = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in ["bucket", "s3", "amazonaws", "com"] {
        dns.push(label.len() as u8);
        dns.extend_from_slice(label.as_bytes());
    }
    dns.extend_from_slice(&[0, 0, 1, 0, 1]);
    dns.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, 7]);
    let mut udp = Vec::new();
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&client_port.to_be_bytes());
    udp.extend_from_slice(&((8 + dns.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&dns);
    let ip = flowaudit::synth::ip_packet(
        "10.1.0.2".parse().unwrap(),
        "10.1.0.70".parse().unwrap(),
        17,
        &udp,
    );
    flowaudit::synth::ethernet(&[], 0x0800, &ip)
}

#[test]
fn names_from_dns_match_internet_rules() {
    use flowaudit::synth::{tcp_session, Session};
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("s3.pcap");
    {
        let f = std::fs::File::create(&pcap).unwrap();
        let mut w = flowaudit::capture::writer::PcapWriter::new(f, 1, false).unwrap();
        let t0 = 1_767_225_600 * 1_000_000_000i64;
        let resp = dns_response(40000);
        w.write(t0, &resp, resp.len() as u32).unwrap();
        let gw = "10.1.0.70".parse().unwrap();
        // The named S3 endpoint, an unnamed public address, and an unnamed private one.
        let t = tcp_session(
            &mut w,
            t0 + 1_000_000,
            (gw, 50001),
            ("198.51.100.7".parse().unwrap(), 443),
            Session::Complete,
        )
        .unwrap();
        let t = tcp_session(
            &mut w,
            t,
            (gw, 50002),
            ("198.51.100.8".parse().unwrap(), 443),
            Session::Complete,
        )
        .unwrap();
        tcp_session(
            &mut w,
            t,
            (gw, 50003),
            ("10.9.9.9".parse().unwrap(), 443),
            Session::Complete,
        )
        .unwrap();
    }
    let inv = dir.path().join("hosts.csv");
    std::fs::write(&inv, "10.1.0.70,gateway-server,gw01\n").unwrap();
    let out = dir.path().join("r");
    let st = Command::new(BIN)
        .args(["audit", "-q", "--product", "veeam-vbr", "-I"])
        .arg(&inv)
        .arg("-o")
        .arg(&out)
        .arg(&pcap)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    let services = read_csv(&out.join("services.csv"));
    let svc = |server: &str| {
        services
            .iter()
            .find(|s| s["server_addr"] == server && s["server_port"] == "443")
            .unwrap()
    };
    let s3 = svc("198.51.100.7");
    // VBR-095 and VBR-117: gateway-server -> internet tcp/443 for *.amazonaws.com (object storage
    // and external repository sections).
    assert_eq!(
        (
            s3["verdict"].as_str(),
            s3["rule_ids"].as_str(),
            s3["server_dns"].as_str()
        ),
        ("documented", "VBR-095;VBR-117", "bucket.s3.amazonaws.com")
    );
    // No name, so no pattern rule applies; the VBR catalog has no pattern-less Internet rule for
    // gateways on 443: unknown host. A private address is never "the Internet".
    assert_eq!(svc("198.51.100.8")["verdict"], "unknown-host");
    assert_eq!(svc("10.9.9.9")["verdict"], "unknown-host");
}

#[test]
fn docs_roles_md_matches_the_vocabulary() {
    let want = flowaudit::audit::catalog::roles_markdown(&Roles::builtin());
    assert_eq!(
        std::fs::read_to_string("docs/roles.md").unwrap(),
        want,
        "regenerate: flowaudit catalog roles --markdown > docs/roles.md"
    );
}

/// tcpdump's view of the demo capture, in UTC: (time `YYYY-MM-DD HH:MM:SS.micros`, source
/// `addr.port`, destination `addr.port`) per packet. None (the test skips) without tcpdump,
/// except under CI=true.
fn tcpdump_packets() -> Option<Vec<(String, String, String)>> {
    let out = match Command::new("tcpdump")
        .args(["-tttt", "-n", "-r", "fixtures/demo/backup-window.pcap"])
        .env("TZ", "UTC")
        .output()
    {
        Ok(o) if o.status.success() => o,
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tcpdump is needed under CI=true: {other:?}"
            );
            eprintln!("skipped: tcpdump is not installed (apt-get install tcpdump)");
            return None;
        }
    };
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .map(|l| {
                // 2026-01-01 00:00:00.000000 IP 10.1.0.10.50001 > 10.1.0.20.6162: Flags [S], ...
                let w: Vec<&str> = l.split_whitespace().collect();
                assert_eq!((w[2], w[4]), ("IP", ">"), "{l}");
                (
                    format!("{} {}", w[0], w[1]),
                    w[3].to_string(),
                    w[5].trim_end_matches(':').to_string(),
                )
            })
            .collect(),
    )
}

/// tcpdump's `2026-01-01 00:00:03.048123` as the reports write it: ISO 8601, UTC, cut to the
/// millisecond.
fn iso_ms(tcpdump_time: &str) -> String {
    format!("{}Z", &tcpdump_time[..23].replacen(' ', "T", 1))
}

/// The seconds between two tcpdump times of one day, each cut to the millisecond first (as
/// the reports print them): `14.306`.
fn duration_ms(first: &str, last: &str) -> String {
    let ms = |t: &str| -> i64 {
        let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
        ((n(11..13) * 60 + n(14..16)) * 60 + n(17..19)) * 1000 + n(20..23)
    };
    let d = ms(last) - ms(first);
    format!("{}.{:03}", d / 1000, d % 1000)
}

#[test]
fn demo_times_are_the_packets_times_in_iso_8601_utc() {
    let Some(packets) = tcpdump_packets() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_demo_audit(dir.path(), "2"), 0);
    let services = read_csv(&dir.path().join("services.csv"));
    assert_eq!(services.len(), 22);
    for s in &services {
        let (c, sv, port) = (&s["client_addr"], &s["server_addr"], &s["server_port"]);
        let server_end = format!("{sv}.{port}");
        let times: Vec<&str> = packets
            .iter()
            .filter(|(_, src, dst)| {
                (src.starts_with(&format!("{c}.")) && *dst == server_end)
                    || (*src == server_end && dst.starts_with(&format!("{c}.")))
            })
            .map(|(t, _, _)| t.as_str())
            .collect();
        assert_eq!(times.len() as u64, s["packets"].parse::<u64>().unwrap());
        // Fixed-width times: the smallest text is the earliest.
        let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        assert_eq!(
            (&s["first_seen"], &s["duration"]),
            (&iso_ms(first), &duration_ms(first, last)),
            "{c} -> {server_end}"
        );
    }
    // summary.md starts with the capture window, the inputs and the inventory.
    let (first, last) = (&packets[0].0, &packets[packets.len() - 1].0);
    let secs = |t: &str| -> f64 {
        let hms: Vec<f64> = t[11..].split(':').map(|x| x.parse().unwrap()).collect();
        hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]
    };
    let inventory = std::fs::read_to_string("fixtures/demo/hosts.csv").unwrap();
    let listed: Vec<&str> = inventory
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut seen: Vec<String> = packets
        .iter()
        .flat_map(|(_, a, b)| [a, b])
        .map(|e| e.rsplit_once('.').unwrap().0.to_string())
        .collect();
    seen.sort();
    seen.dedup();
    let known = seen.iter().filter(|a| listed.contains(&a.as_str())).count();
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let head: Vec<&str> = summary.lines().take(6).collect();
    assert_eq!(
        head,
        [
            "# flowaudit audit".to_string(),
            String::new(),
            format!(
                "- Capture window: {} to {} (first and last packet, UTC; {:.3} s)",
                iso_ms(first),
                iso_ms(last),
                secs(last) - secs(first)
            ),
            "- Inputs (1): fixtures/demo/backup-window.pcap".to_string(),
            format!(
                "- Inventory: fixtures/demo/hosts.csv, {} entries; {known} of the {} hosts seen are in it",
                listed.len(),
                seen.len()
            ),
            String::new(),
        ]
    );
}

#[test]
fn jsonl_lines_are_the_csv_rows_typed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["audit", "fixtures/demo/backup-window.pcap", "-I"])
            .args(["fixtures/demo/hosts.csv", "-q", "-o"])
            .arg(dir.path())
            .args(extra)
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(run(&["--format", "jsonl"]), Some(0));
    // (file, rows of the demo's CSV in fixtures/demo/expected, the columns that are counts or
    // ports)
    let numeric: &[(&str, usize, &[&str])] = &[
        (
            "services",
            22,
            &[
                "server_port",
                "more_rules",
                "flows",
                "established",
                "refused",
                "unanswered",
                "packets",
                "bytes",
                "duration",
            ],
        ),
        ("rules", 49, &["host_pairs", "flows", "bytes"]),
        ("findings", 46, &["host_pairs", "flows", "bytes"]),
        ("groups", 11, &[]),
    ];
    for &(name, n_rows, numbers) in numeric {
        let mut r = csv::Reader::from_path(dir.path().join(format!("{name}.csv"))).unwrap();
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), n_rows, "{name}");
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.jsonl"))).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows.len(), "{name}: one line per CSV row");
        for (line, row) in lines.iter().zip(&rows) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), header.len(), "{name}: {line}");
            // The fields in column order, as the CSV's header.
            let mut at = 0;
            for (col, cell) in header.iter().zip(row.iter()) {
                let key = format!("\"{col}\":");
                let pos = line[at..]
                    .find(&key)
                    .unwrap_or_else(|| panic!("{name}: {col} out of order"));
                at += pos + key.len();
                let want = if numbers.contains(&col.as_str()) {
                    if cell.is_empty() {
                        serde_json::Value::Null
                    } else if let Ok(n) = cell.parse::<u64>() {
                        serde_json::Value::from(n)
                    } else {
                        serde_json::Value::from(cell.parse::<f64>().unwrap())
                    }
                } else {
                    serde_json::Value::from(cell)
                };
                assert_eq!(obj[col.as_str()], want, "{name}: {col} in {line}");
            }
        }
    }
    // The console's session (tests above): numbers and an ISO time.
    let services = std::fs::read_to_string(dir.path().join("services.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(services.lines().next().unwrap()).unwrap();
    assert_eq!(first["server_port"], 9392);
    assert_eq!(first["bytes"], 1668);
    assert_eq!(first["first_seen"], "2026-01-01T00:00:03.048Z");
    assert_eq!(first["duration"], 0.007);
    let manifest = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    assert!(manifest.contains("\"groups.jsonl\""), "{manifest}");
    // Without --format jsonl the files of the earlier run go.
    assert_eq!(run(&[]), Some(0));
    for name in ["services", "rules", "findings", "groups"] {
        assert!(!dir.path().join(format!("{name}.jsonl")).exists(), "{name}");
    }
    let manifest = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    assert!(!manifest.contains("jsonl"), "{manifest}");
}
