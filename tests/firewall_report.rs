//! `flowaudit firewall` on a hand-made report directory: reading by column name (schema
//! versions 1 and 2, unknown columns ignored, bad rows skipped with their line), interface
//! matches through --firewall-iface, what cannot be evaluated, covering ports and address
//! groups from inventory.csv, findings.csv merged in severity order, byte-identical reruns, and
//! the firewall rows of `flowaudit diff`. Every expected row was worked out by hand from the
//! ruleset and services below.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

const SERVICES: &str = "\
zone,client_addr,client_name,client_roles,server_addr,server_name,server_roles,proto,server_port,verdict,outcome,rule_ids,flows,established,bytes
a,10.1.0.10,vbr01,backup-server,10.2.0.5,,backup-proxy,tcp,6162,documented,established,VBR-1,3,3,1000
a,10.1.0.11,vbr01,backup-server,10.2.0.6,,backup-proxy,tcp,2500,documented,established,VBR-2,2,2,500
a,10.1.0.10,vbr01,backup-server,10.2.0.6,,backup-proxy,tcp,443,undocumented,established,,1,1,100
a,10.9.9.9,,,10.2.0.5,,backup-proxy,tcp,6163,unknown-host,refused,,1,0,60
a,10.9.9.x,,,10.2.0.5,,backup-proxy,tcp,6163,unknown-host,refused,,1,0,60
";

const INVENTORY: &str = "address,roles,name\n10.1.0.10,backup-server,vbr01\n10.1.0.11,backup-server,vbr01\n10.2.0.0/24,backup-proxy,\n";

const FINDINGS: &str = "\
severity,kind,subject,reason,evidence,waiver
high,documented-refused,x,r,e,
medium,undocumented,y,r,e,
info,unused-rule,z,r,e,
";

const RULES: &str = "*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i lan1 -p tcp -m tcp --dport 6160:6170 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 2500:3300 -j ACCEPT
-A FORWARD -p tcp -m tcp --sport 1024:65535 --dport 443 -j ACCEPT
COMMIT
";

fn report_dir(dir: &Path, schema: u32) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!("{{\"tool\": \"flowaudit\", \"kind\": \"audit\", \"schema_version\": {schema}}}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("services.csv"), SERVICES).unwrap();
    std::fs::write(dir.join("inventory.csv"), INVENTORY).unwrap();
    std::fs::write(dir.join("findings.csv"), FINDINGS).unwrap();
    std::fs::write(
        dir.join("rules.csv"),
        "rule_id,proto,ports,client,server,status,ports_seen\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("summary.md"),
        "# flowaudit audit\n\n## Findings\n\nnone\n",
    )
    .unwrap();
}

fn firewall(args: &[&str]) -> (bool, String) {
    let o = Command::new(BIN)
        .arg("firewall")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn column(path: &Path, cols: &[&str]) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    let idx: Vec<usize> = cols
        .iter()
        .map(|c| h.iter().position(|x| x == *c).unwrap())
        .collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            idx.iter().map(|&i| rec[i].to_string()).collect()
        })
        .collect()
}

#[test]
fn firewall_rows_services_findings_and_summary_from_a_report_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    report_dir(&dir, 2);
    let rules = tmp.path().join("rules.v4");
    std::fs::write(&rules, RULES).unwrap();
    let args = [
        rules.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--firewall-iface",
        "lan1=10.1.0.0/16",
        "--firewall-iface",
        "dmz=10.2.0.0/24",
    ];
    let (ok, err) = firewall(&args);
    assert!(ok, "{err}");
    assert!(err.contains("1 input lines skipped"), "{err}");
    let f = "iptables filter FORWARD";
    let rows = column(
        &dir.join("firewall.csv"),
        &[
            "position",
            "verdict",
            "services",
            "flows",
            "bytes",
            "covering_ports",
            "covering_clients",
            "covering_servers",
            "reason",
        ],
    );
    let want: Vec<Vec<String>> = [
        [&format!("{f} #1"), "needed", "2", "5", "1500", "", "", "", "carries the established traffic (later packets both ways) of 2 services"],
        [
            &format!("{f} #2"),
            "not-evaluated",
            "1",
            "3",
            "1000",
            "",
            "",
            "",
            "interface match: give the interfaces' address blocks with --firewall-iface",
        ],
        [
            &format!("{f} #3"),
            "too-wide",
            "1",
            "2",
            "500",
            "2500",
            "vbr01 (10.1.0.10 10.1.0.11)",
            "10.2.0.0/24",
            "admits more ports, clients and servers than the 1 documented services it accepted need: narrow it to the covering ports and address groups",
        ],
        [
            &format!("{f} #4"),
            "not-evaluated",
            "0",
            "0",
            "0",
            "",
            "",
            "",
            "matches the client's port, which the audit does not keep per service",
        ],
        [&format!("{f} policy"), "unused", "0", "0", "0", "", "", "", "no observed traffic reached the policy in this capture window"],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(rows, want);

    let svc = column(
        &dir.join("firewall_services.csv"),
        &[
            "client_addr",
            "server_port",
            "decision",
            "decided_by",
            "established",
        ],
    );
    assert_eq!(
        svc,
        vec![
            vec![
                "10.1.0.10",
                "6162",
                "accept",
                &format!("{f} #2"),
                "out accept; back accept"
            ],
            vec![
                "10.1.0.11",
                "2500",
                "accept",
                &format!("{f} #3"),
                "out accept; back accept"
            ],
            vec!["10.1.0.10", "443", "not-evaluated", &format!("{f} #4"), ""],
            vec!["10.9.9.9", "6163", "not-evaluated", &format!("{f} #2"), ""],
        ]
    );

    let findings = column(&dir.join("findings.csv"), &["severity", "kind", "subject"]);
    let want: Vec<Vec<&str>> = vec![
        vec!["high", "documented-refused", "x"],
        vec!["medium", "undocumented", "y"],
        vec!["low", "firewall-too-wide", "firewall iptables filter FORWARD #3: -A FORWARD -p tcp -m tcp --dport 2500:3300 -j ACCEPT"],
        vec!["info", "unused-rule", "z"],
        vec![
            "info",
            "firewall-not-evaluated",
            "firewall iptables filter FORWARD #2: -A FORWARD -i lan1 -p tcp -m tcp --dport 6160:6170 -j ACCEPT",
        ],
        vec![
            "info",
            "firewall-not-evaluated",
            "firewall iptables filter FORWARD #4: -A FORWARD -p tcp -m tcp --sport 1024:65535 --dport 443 -j ACCEPT",
        ],
        vec!["info", "firewall-unused-rule", "firewall iptables filter FORWARD policy: policy drop"],
    ];
    assert_eq!(findings, want);
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.starts_with("# flowaudit audit\n\n## Findings\n\nnone\n\n## Firewall ruleset\n"),
        "{summary}"
    );
    assert!(
        summary.contains(":6: client_addr \"10.9.9.x\" is not an address"),
        "{summary}"
    );

    // Run again: every file byte for byte the same (the check replaces its own rows and section).
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let files = [
        "firewall.csv",
        "firewall_services.csv",
        "findings.csv",
        "summary.md",
    ];
    let first: Vec<Vec<u8>> = files.iter().map(|n| read(n)).collect();
    assert!(firewall(&args).0);
    let second: Vec<Vec<u8>> = files.iter().map(|n| read(n)).collect();
    assert_eq!(first, second);
}

#[test]
fn bad_inputs_are_errors_that_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    report_dir(&dir, 5);
    let rules = tmp.path().join("rules.v4");
    std::fs::write(&rules, RULES).unwrap();
    let (ok, err) = firewall(&[rules.to_str().unwrap(), dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("report: reports of schema version 5, but this command reads schema versions 1, 2, 3 and 4"),
        "{err}"
    );
    report_dir(&dir, 1);
    let (ok, err) = firewall(&[
        rules.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--firewall-chain",
        "input",
    ]);
    assert!(!ok);
    assert!(
        err.contains("no filter base chain matches --firewall-chain input: the ruleset has iptables filter FORWARD (forward hook, filter)"),
        "{err}"
    );
    let junk = tmp.path().join("junk.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    let (ok, err) = firewall(&[junk.to_str().unwrap(), dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("junk.txt: neither `nft -j list ruleset` JSON"),
        "{err}"
    );
}

#[test]
fn diff_lists_firewall_rules_that_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, cur) = (tmp.path().join("base"), tmp.path().join("cur"));
    for d in [&base, &cur] {
        report_dir(d, 2);
        // `diff` reads schema 2 (groups, the services' waiver cells, the findings' group
        // columns) and refuses a report with a bad row: leave out the one the other test skips.
        let good: String = SERVICES
            .lines()
            .filter(|l| !l.contains("10.9.9.x"))
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    format!("{l},client_group,server_group,waiver\n")
                } else {
                    let c = if l.contains("vbr01") {
                        "vbr01"
                    } else {
                        "10.9.9.0/24"
                    };
                    format!("{l},{c},10.2.0.0/24,\n")
                }
            })
            .collect();
        std::fs::write(d.join("services.csv"), good).unwrap();
        std::fs::write(
            d.join("groups.csv"),
            "group,kind,roles,blocks\nvbr01,entry,backup-server;server,10.1.0.10;10.1.0.11\n\
10.2.0.0/24,entry,backup-proxy;server,10.2.0.0/24\n10.9.9.0/24,not-in-inventory,,10.9.9.0/24\n",
        )
        .unwrap();
        std::fs::write(
            d.join("findings.csv"),
            "severity,kind,subject,client_group,server_group,proto,ports,reason,evidence,waiver\n",
        )
        .unwrap();
    }
    let r1 = tmp.path().join("r1.v4");
    std::fs::write(&r1, RULES).unwrap();
    // The change: the 443 rule goes, a 22 rule comes first.
    let r2 = tmp.path().join("r2.v4");
    std::fs::write(
        &r2,
        RULES
            .replace(
                "-A FORWARD -p tcp -m tcp --sport 1024:65535 --dport 443 -j ACCEPT\n",
                "",
            )
            .replace(
                ":FORWARD DROP [0:0]\n",
                ":FORWARD DROP [0:0]\n-A FORWARD -p tcp -m tcp --dport 443 -j ACCEPT\n",
            ),
    )
    .unwrap();
    assert!(firewall(&[r1.to_str().unwrap(), base.to_str().unwrap()]).0);
    assert!(firewall(&[r2.to_str().unwrap(), cur.to_str().unwrap()]).0);
    let out = tmp.path().join("diff.csv");
    let o = Command::new(BIN)
        .args([
            "diff",
            base.to_str().unwrap(),
            cur.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--md",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = column(&out, &["change", "subject", "baseline", "current"]);
    let fw: Vec<Vec<String>> = rows
        .into_iter()
        .filter(|r| r[0].starts_with("firewall-"))
        .collect();
    let f = "firewall iptables filter FORWARD";
    assert_eq!(
        fw,
        vec![
            vec![
                "firewall-rule-new".to_string(),
                format!("{f} #1: -A FORWARD -p tcp -m tcp --dport 443 -j ACCEPT"),
                String::new(),
                "allows-undocumented".into()
            ],
            vec![
                "firewall-rule-gone".to_string(),
                format!(
                    "{f} #4: -A FORWARD -p tcp -m tcp --sport 1024:65535 --dport 443 -j ACCEPT"
                ),
                "not-evaluated".into(),
                String::new()
            ],
        ]
    );
}
