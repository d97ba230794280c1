//! Issue 12, items 5 and 6: one host per inventory name (no rule instances or services between
//! a host's own addresses), overlapping inventory entries warned once per host, ICMP errors as
//! the outcome of the flow they answer, role-mismatch evidence citing this site's roles first,
//! old role ids in waivers.
//!
//! Every audit runs the Backup Exec catalog (whose roles no host here holds) plus a small
//! catalog of rules on ports no built-in rule of that catalog uses, so every rule instance and
//! verdict can be counted by hand from the rules written below.

mod common;

use std::process::Command;

use common::*;
use flowaudit::synth::Frame;

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

/// The test catalog. Line numbers are the rule ids' order.
const CATALOG: &str = "# catalog: test\n# product: Test\n\
id,section,from_role,to_role,protocol,ports,qualifiers,host_pattern,ref,note,decision,source_line\n\
T-001,S,backup-server,windows-server,tcp,47001,,,,n,,1\n\
T-002,S,backup-proxy,backup-server,tcp,47002,,,,n,,2\n\
T-003,S,backup-proxy,backup-server,udp,47003,,,,n,,3\n\
T-005,S,backup-server,windows-server,tcp,47005,,,,n,,5\n\
T-006,S,hyperv-host,backup-repository,tcp,47005,,,,n,,6\n\
T-007,S,gateway-server,smb-share,tcp,47005,,,,n,,7\n";

struct Run {
    services: Vec<Row>,
    rules: Vec<Row>,
    findings: Vec<Row>,
    summary: String,
    stderr: String,
}

/// Audits the packets `recs` with inventory `hosts` (and `extra` arguments); paths of the
/// temporary files read `hosts.csv` and `waivers.csv` in the output.
fn audit(hosts: &str, recs: &[Rec], extra: &[&str], waivers: Option<&str>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let pcap = write_pcap(link::ETHERNET, false, recs);
    let inv = dir.path().join("hosts.csv");
    std::fs::write(&inv, hosts).unwrap();
    let cat = dir.path().join("test.csv");
    std::fs::write(&cat, CATALOG).unwrap();
    let out = dir.path().join("r");
    let mut cmd = Command::new(BIN);
    cmd.args(["audit", "-q", "--product", "backup-exec", "--catalog"])
        .arg(&cat)
        .arg("-I")
        .arg(&inv)
        .arg("-o")
        .arg(&out)
        .args(extra);
    let w = dir.path().join("waivers.csv");
    if let Some(text) = waivers {
        std::fs::write(&w, text).unwrap();
        cmd.arg("--waivers").arg(&w).args(["--today", "2026-01-01"]);
    }
    let o = cmd.arg(pcap.path()).output().unwrap();
    let clean = |s: String| {
        s.replace(&inv.display().to_string(), "hosts.csv")
            .replace(&w.display().to_string(), "waivers.csv")
    };
    let stderr = clean(String::from_utf8_lossy(&o.stderr).into_owned());
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    Run {
        services: read_csv(&out.join("services.csv")),
        rules: read_csv(&out.join("rules.csv")),
        findings: read_csv(&out.join("findings.csv")),
        summary: clean(std::fs::read_to_string(out.join("summary.md")).unwrap()),
        stderr,
    }
}

/// A complete TCP session (handshake, data both ways, FINs) as Ethernet records from `t`.
fn session(t: i64, c: &str, cp: u16, s: &str, sp: u16) -> Vec<Rec> {
    let (c, s) = (v4(c), v4(s));
    let frames = [
        (true, SYN, 0),
        (false, SA, 0),
        (true, ACK, 0),
        (true, PA, 200),
        (false, PA, 1000),
        (true, FA, 0),
        (false, FA, 0),
        (true, ACK, 0),
    ];
    frames
        .iter()
        .enumerate()
        .map(|(i, &(c2s, flags, len))| {
            let f = if c2s {
                Frame::tcp(c, cp, s, sp, flags, len)
            } else {
                Frame::tcp(s, sp, c, cp, flags, len)
            };
            rec(t + i as i64 * MS, f.ethernet())
        })
        .collect()
}

/// (client, server, proto, port, verdict, outcome, rule ids) of every service, in file order.
fn services(r: &Run) -> Vec<[String; 7]> {
    r.services
        .iter()
        .map(|s| {
            [
                "client_addr",
                "server_addr",
                "proto",
                "server_port",
                "verdict",
                "outcome",
                "rule_ids",
            ]
            .map(|k| s[k].clone())
        })
        .collect()
}

/// (rule, client group, server group, status) of every rule instance, in file order.
fn instances(r: &Run) -> Vec<[String; 4]> {
    r.rules
        .iter()
        .map(|u| ["rule_id", "client", "server", "status"].map(|k| u[k].clone()))
        .collect()
}

fn strs<const N: usize>(rows: &[[&str; N]]) -> Vec<[String; N]> {
    rows.iter().map(|r| r.map(String::from)).collect()
}

/// vbr01 has two IPv4 addresses and an IPv6 one; its IPv6 line gives only windows-server, so
/// backup-server reaches that address only because the rows are one host.
const DUAL_STACK: &str = "address,roles,name\n\
10.1.0.10,windows-backup-server,vbr01\n\
10.1.0.11,windows-backup-server,vbr01\n\
2001:db8::10,windows-server,vbr01\n\
10.1.0.20,backup-proxy;windows-server,proxy01\n";

fn dual_stack_capture() -> Vec<Rec> {
    let mut recs = session(at_ms(0), "10.1.0.10", 50000, "10.1.0.11", 47001);
    recs.extend(session(at_ms(100), "10.1.0.10", 50001, "10.1.0.20", 47001));
    recs
}

#[test]
fn a_host_does_not_audit_traffic_between_its_own_addresses() {
    let r = audit(DUAL_STACK, &dual_stack_capture(), &[], None);
    // 10.1.0.10 -> 10.1.0.11 is vbr01 talking to itself: no service (T-001 would document it).
    assert_eq!(
        services(&r),
        strs(&[[
            "10.1.0.10",
            "10.1.0.20",
            "tcp",
            "47001",
            "documented",
            "established",
            "T-001"
        ]])
    );
    // By entry (rows of one name are one group): T-001 backup-server -> windows-server gives
    // vbr01 -> proxy01 only (vbr01 -> vbr01 is one group); T-002 backup-proxy -> backup-server
    // gives proxy01 -> vbr01. T-003 (udp) likewise proxy01 -> vbr01. T-005 as T-001. T-006 and
    // T-007: nobody holds hyperv-host, gateway-server.
    assert_eq!(
        instances(&r),
        strs(&[
            ["T-001", "vbr01", "proxy01", "used"],
            ["T-002", "proxy01", "vbr01", "unused"],
            ["T-003", "proxy01", "vbr01", "unused"],
            ["T-005", "vbr01", "proxy01", "unused"],
        ])
    );
    assert!(
        r.summary.contains("- 1 flows were own-host traffic, between two addresses of one inventory host (vbr01): not audited as services.\n"),
        "{}",
        r.summary
    );
    assert_eq!(
        r.findings
            .iter()
            .filter(|f| f["kind"] == "unused-rule")
            .count(),
        3
    );
}

#[test]
fn by_host_no_rule_instance_joins_two_addresses_of_one_host() {
    let r = audit(
        DUAL_STACK,
        &dual_stack_capture(),
        &["--group-by", "host"],
        None,
    );
    // Rule groups are the inventory lines. T-001: each of vbr01's three lines (the IPv6 one
    // through the union of its rows' roles) -> proxy01; never vbr01 -> vbr01 (six more before).
    // T-002, T-003: proxy01 -> each of vbr01's three lines. T-005 as T-001. 12 in all.
    let mut want = Vec::new();
    for (rule, to_vbr) in [
        ("T-001", false),
        ("T-002", true),
        ("T-003", true),
        ("T-005", false),
    ] {
        for v in ["10.1.0.10", "10.1.0.11", "2001:db8::10"] {
            let used = rule == "T-001" && v == "10.1.0.10";
            let status = if used { "used" } else { "unused" };
            let (c, s) = if to_vbr {
                ("10.1.0.20", v)
            } else {
                (v, "10.1.0.20")
            };
            want.push([rule, c, s, status].map(String::from));
        }
    }
    let mut got = instances(&r);
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn overlapping_entries_are_warned_once_per_host_with_their_lines() {
    // Line 2 covers vbr01's IPv4 address (line 3), proxy01 (line 5, adds nothing it does not
    // hold) and the lab block (line 6). vbr01's IPv6 address (line 4) is outside it.
    let hosts = "address,roles,name\n\
10.1.0.0/16,backup-proxy\n\
10.1.0.10,windows-backup-server,vbr01\n\
2001:db8::10,windows-backup-server,vbr01\n\
10.1.0.20,backup-proxy,proxy01\n\
10.1.5.0/24,linux-server,lab\n";
    let r = audit(hosts, &dual_stack_capture()[8..], &[], None);
    let vbr = "hosts.csv:3: vbr01 gets roles from several inventory lines: 10.1.0.10 (line 3) is inside 10.1.0.0/16 (line 2: backup-proxy); it holds the union of their roles";
    let lab = "hosts.csv:6: lab gets roles from several inventory lines: 10.1.5.0/24 (line 6) is inside 10.1.0.0/16 (line 2: backup-proxy); it holds the union of their roles";
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("flowaudit: warning: "))
        .collect();
    assert_eq!(warnings, [vbr, lab]);
    assert!(
        r.summary.contains(&format!("- Inventory: {vbr}.\n")),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains(&format!("- Inventory: {lab}.\n")),
        "{}",
        r.summary
    );
    // Groups: 10.1.0.0/16 (backup-proxy), vbr01 (windows-backup-server, and backup-proxy from
    // line 2 on both its addresses: one host), proxy01 (backup-proxy), lab (linux-server,
    // backup-proxy). T-001/T-005 backup-server -> windows-server: only vbr01 holds either,
    // and a group does not serve itself. T-002/T-003 backup-proxy -> backup-server: every
    // other group -> vbr01. Nothing was used (vbr01 -> proxy01 tcp/47001 fits no rule).
    let mut want = Vec::new();
    for rule in ["T-002", "T-003"] {
        for c in ["10.1.0.0/16", "lab", "proxy01"] {
            want.push([rule, c, "vbr01", "unused"]);
        }
    }
    assert_eq!(instances(&r), strs(&want));
}

#[test]
fn overlap_warnings_name_twenty_hosts_then_count_the_rest() {
    let mut hosts = String::from("address,roles,name\n10.2.0.0/16,backup-proxy\n");
    for i in 0..25 {
        hosts.push_str(&format!("10.2.0.{},windows-server,h{i:02}\n", i + 1));
    }
    let r = audit(
        &hosts,
        &session(at_ms(0), "10.1.0.1", 50000, "10.1.0.2", 47001),
        &[],
        None,
    );
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("flowaudit: warning: "))
        .collect();
    assert_eq!(warnings.len(), 21);
    // Hosts in line order: h00 is on line 3.
    assert_eq!(warnings[0], "hosts.csv:3: h00 gets roles from several inventory lines: 10.2.0.1 (line 3) is inside 10.2.0.0/16 (line 2: backup-proxy); it holds the union of their roles");
    assert!(
        warnings[19].starts_with("hosts.csv:22: h19 "),
        "{}",
        warnings[19]
    );
    assert_eq!(
        warnings[20],
        "hosts.csv:0: and 5 more hosts or blocks get roles from several inventory lines"
    );
}

/// The first `n` bytes of an IP packet: what an ICMP error quotes (header + 8 bytes).
fn head(ip: Vec<u8>, n: usize) -> Vec<u8> {
    ip[..n].to_vec()
}

#[test]
fn icmp_errors_are_the_outcome_of_the_flow_they_answer() {
    let hosts = "address,roles,name\n\
10.1.0.10,windows-backup-server,vbr01\n\
2001:db8::10,windows-backup-server,vbr01\n\
10.1.0.20,backup-proxy,proxy01\n\
2001:db8::20,backup-proxy,proxy01\n\
10.1.0.30,backup-proxy,proxy02\n";
    let udp = Frame::udp(v4("10.1.0.20"), 50011, v4("10.1.0.10"), 47003, 10);
    let syn6 = Frame::tcp(v6("2001:db8::20"), 50010, v6("2001:db8::10"), 47002, SYN, 0);
    let probe = Frame::udp(v4("10.1.0.20"), 50012, v4("10.1.0.10"), 47004, 10);
    let ping = Frame {
        proto: 1,
        ..Frame::udp(v4("10.1.0.20"), 0, v4("10.1.0.30"), 0, 0)
    };
    let recs = vec![
        // proxy01 -> vbr01 udp/47003, answered by vbr01: port unreachable (3/3).
        rec(at_ms(0), udp.ethernet()),
        rec(
            at_ms(1),
            eth(&icmp_error(
                v4("10.1.0.10"),
                v4("10.1.0.20"),
                3,
                3,
                &head(udp.ip(), 28),
            )),
        ),
        // proxy01 -> vbr01 tcp/47002 over IPv6, refused by a router outside the inventory:
        // administratively prohibited (ICMPv6 1/1).
        rec(at_ms(2), syn6.ethernet()),
        rec(
            at_ms(3),
            eth(&icmp_error(
                v6("2001:db8::1"),
                v6("2001:db8::20"),
                1,
                1,
                &head(syn6.ip(), 48),
            )),
        ),
        // A probe to an undocumented port that a router answers with time exceeded (11/0):
        // an answer, but no refusal.
        rec(at_ms(4), probe.ethernet()),
        rec(
            at_ms(5),
            eth(&icmp_error(
                v4("10.1.0.1"),
                v4("10.1.0.20"),
                11,
                0,
                &head(probe.ip(), 28),
            )),
        ),
        // An echo request: ICMP someone sent on purpose, a service like any other.
        rec(at_ms(6), ping.ethernet()),
    ];
    let r = audit(hosts, &recs, &[], None);
    // Services sort by client address then server address (IPv4 as mapped addresses first).
    assert_eq!(
        services(&r),
        strs(&[
            [
                "10.1.0.20",
                "10.1.0.10",
                "udp",
                "47003",
                "documented",
                "refused",
                "T-003"
            ],
            [
                "10.1.0.20",
                "10.1.0.10",
                "udp",
                "47004",
                "undocumented",
                "unanswered",
                ""
            ],
            [
                "10.1.0.20",
                "10.1.0.30",
                "icmp",
                "",
                "undocumented",
                "unanswered",
                ""
            ],
            [
                "2001:db8::20",
                "2001:db8::10",
                "tcp",
                "47002",
                "documented",
                "refused",
                "T-002"
            ],
        ])
    );
    // No finding is about an ICMP error: the two refusals are high, the probe and the ping
    // medium; nothing names the routers.
    let kinds: Vec<(String, String)> = r
        .findings
        .iter()
        .filter(|f| f["kind"] != "unused-rule")
        .map(|f| (f["kind"].clone(), f["subject"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("documented-refused", "proxy01 -> vbr01 tcp/47002"),
            ("documented-refused", "proxy01 -> vbr01 udp/47003"),
            ("undocumented", "proxy01 -> proxy02 icmp"),
            ("undocumented", "proxy01 -> vbr01 udp/47004"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(
        r.summary.contains("- 3 flows were only ICMP errors (destination unreachable, time exceeded, ...) answering other traffic: they are answers, not services; 2 attempts an ICMP destination unreachable answered count as refused.\n"),
        "{}",
        r.summary
    );
}

#[test]
fn role_mismatch_cites_the_rules_of_this_site_first() {
    // tcp/47005 from a proxy to a Windows repository: T-005 (backup-server -> windows-server)
    // and T-006 (hyperv-host -> backup-repository) each fit one end; T-007 (gateway-server ->
    // smb-share) fits none, but gw01 and nas01 hold its roles while nobody holds backup-server
    // or hyperv-host. Before: T-005;T-006;T-007.
    let hosts = "address,roles,name\n\
10.1.0.20,backup-proxy,proxy01\n\
10.1.0.30,windows-backup-repository,repo01\n\
10.1.0.40,gateway-server,gw01\n\
10.1.0.50,smb-share,nas01\n";
    let r = audit(
        hosts,
        &session(at_ms(0), "10.1.0.20", 50000, "10.1.0.30", 47005),
        &[],
        None,
    );
    assert_eq!(
        services(&r),
        strs(&[[
            "10.1.0.20",
            "10.1.0.30",
            "tcp",
            "47005",
            "role-mismatch",
            "established",
            "T-007;T-005;T-006"
        ]])
    );
    let f = r
        .findings
        .iter()
        .find(|f| f["kind"] == "role-mismatch")
        .unwrap();
    assert_eq!(f["reason"], "the port is documented, but only between other roles (gateway-server -> smb-share, backup-server -> windows-server, hyperv-host -> backup-repository); fix the inventory or the traffic");
    assert_eq!(f["evidence"], "closest rules T-007;T-005;T-006; client roles backup-proxy; server roles windows-backup-repository; 1 flows (1 established, 0 refused, 0 unanswered)");
}

#[test]
fn a_waiver_with_an_old_role_id_waives_hosts_of_the_merged_role() {
    // guest-vm-windows is the old id of windows-guest-vm (a windows-server). proxy01 -> vm01
    // tcp/47001 is not documented: T-001 starts from backup-server.
    let hosts = "address,roles,name\n\
10.1.0.20,backup-proxy,proxy01\n\
10.1.0.60,windows-guest-vm,vm01\n";
    let waivers = "client,server,proto,ports,reason,owner,expires\n\
role:backup-proxy,role:guest-vm-windows,tcp,47001,test,me,2027-01-01\n";
    let r = audit(
        hosts,
        &session(at_ms(0), "10.1.0.20", 50000, "10.1.0.60", 47001),
        &[],
        Some(waivers),
    );
    assert!(
        r.stderr.contains("flowaudit: warning: waivers.csv:2: role \"guest-vm-windows\" is an old id of \"windows-guest-vm\"; write role:windows-guest-vm (the old id still works)\n"),
        "{}",
        r.stderr
    );
    // T-001 holds tcp/47001 between other roles: a role-mismatch, which the waiver covers.
    let f = r
        .findings
        .iter()
        .find(|f| f["kind"] == "role-mismatch")
        .unwrap();
    assert_eq!(f["waiver"], "waived until 2027-01-01 by me: test");
}
