//! Catalog and role precision (issue 12): one id per role, role families that match the
//! documents, rules that fit the documents.
//!
//! Each audit test writes a small capture of complete TCP sessions, gives its hosts roles in a
//! small inventory and checks the verdict and rule ids the audit gives each service. The
//! expected rule ids are worked out by hand from the catalog rows named in the comments (the
//! rows of `catalogs/*.csv` that cover the port between those roles); line numbers in lint
//! messages are counted by hand in the files the tests write or in `catalogs/roles*.csv`.

mod common;

use common::read_csv;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use flowaudit::audit::catalog::{Catalogs, Roles};
use flowaudit::audit::inventory::Inventory;
use flowaudit::capture::writer::PcapWriter;
use flowaudit::synth::{tcp_session, Session};

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

/// One TCP conversation: client, client port, server, server port.
type Conv = (&'static str, u16, &'static str, u16);

/// The result of one audit run: services.csv rows and what the audit said on stderr.
struct Run {
    services: Vec<BTreeMap<String, String>>,
    rules: Vec<BTreeMap<String, String>>,
    findings: Vec<BTreeMap<String, String>>,
    stderr: String,
}

impl Run {
    /// (verdict, rule ids) of the service client -> server:port.
    /// Asserts the verdict and rule ids of the service client -> server:port.
    #[track_caller]
    fn expect(&self, client: &str, server: &str, port: u16, verdict: &str, rules: &str) {
        assert_eq!(
            self.verdict(client, server, port),
            pair(verdict, rules),
            "{client} -> {server}:{port}"
        );
    }

    fn verdict(&self, client: &str, server: &str, port: u16) -> (String, String) {
        let s = self
            .services
            .iter()
            .find(|r| {
                r["client_addr"] == client
                    && r["server_addr"] == server
                    && r["server_port"] == port.to_string()
            })
            .unwrap_or_else(|| panic!("no service {client} -> {server}:{port}"));
        (s["verdict"].clone(), s["rule_ids"].clone())
    }
}

/// A DNS answer from 10.99.0.53 to 10.99.0.99 giving `name` the IPv4 address `addr`.
fn dns_answer(name: &str, addr: Ipv4Addr, client_port: u16) -> Vec<u8> {
    let mut dns = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in name.split('.') {
        dns.push(label.len() as u8);
        dns.extend_from_slice(label.as_bytes());
    }
    dns.extend_from_slice(&[0, 0, 1, 0, 1]);
    dns.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    dns.extend_from_slice(&addr.octets());
    let mut udp = Vec::new();
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&client_port.to_be_bytes());
    udp.extend_from_slice(&((8 + dns.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&dns);
    let ip = flowaudit::synth::ip_packet(
        "10.99.0.53".parse().unwrap(),
        "10.99.0.99".parse().unwrap(),
        17,
        &udp,
    );
    flowaudit::synth::ethernet(&[], 0x0800, &ip)
}

/// Audits complete sessions `convs` with the inventory text `hosts` against `products`.
fn audit(hosts: &str, convs: &[Conv], products: &[&str]) -> Run {
    audit_named(hosts, &[], convs, products)
}

/// [`audit`], with DNS answers naming addresses (name, address) before the sessions.
fn audit_named(hosts: &str, names: &[(&str, &str)], convs: &[Conv], products: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("c.pcap");
    {
        let f = std::fs::File::create(&pcap).unwrap();
        let mut w = PcapWriter::new(f, 1, false).unwrap();
        let mut t = 1_767_225_600 * 1_000_000_000i64;
        for (i, (name, addr)) in names.iter().enumerate() {
            let frame = dns_answer(name, addr.parse().unwrap(), 40000 + i as u16);
            w.write(t, &frame, frame.len() as u32).unwrap();
            t += 1_000_000;
        }
        for (c, cp, s, sp) in convs {
            let c: Ipv4Addr = c.parse().unwrap();
            let s: Ipv4Addr = s.parse().unwrap();
            t = tcp_session(&mut w, t, (c, *cp), (s, *sp), Session::Complete).unwrap();
        }
    }
    let inv = dir.path().join("hosts.csv");
    std::fs::write(&inv, hosts).unwrap();
    let out = dir.path().join("r");
    let mut cmd = Command::new(BIN);
    cmd.args(["audit", "-q", "-I"])
        .arg(&inv)
        .arg("-o")
        .arg(&out);
    for p in products {
        cmd.args(["--product", p]);
    }
    let o = cmd.arg(&pcap).output().unwrap();
    let stderr =
        String::from_utf8_lossy(&o.stderr).replace(&inv.display().to_string(), "hosts.csv");
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    Run {
        services: read_csv(&out.join("services.csv")),
        rules: read_csv(&out.join("rules.csv")),
        findings: read_csv(&out.join("findings.csv")),
        stderr,
    }
}

fn lint_file(name: &str, text: &str) -> Vec<String> {
    Catalogs::lint(name, text)
        .iter()
        .map(|p| p.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. One id per role

#[test]
fn builtin_catalogs_and_roles_lint_clean() {
    assert_eq!(Catalogs::lint_builtin(), []);
    let o = Command::new(BIN)
        .args(["catalog", "lint"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "built-in catalogs and roles: 0 problems\n"
    );
}

#[test]
fn old_role_ids_resolve_to_the_merged_role() {
    let roles = Roles::builtin();
    for (old, new) in [
        ("gateway-server-windows", "windows-gateway-server"),
        ("guest-vm-windows", "windows-guest-vm"),
        ("guest-vm-linux", "linux-guest-vm"),
        ("mssql-guest-vm", "sql-guest-vm"),
    ] {
        assert_eq!(roles.canonical(old), Some((new, true)), "{old}");
        assert_eq!(roles.canonical(new), Some((new, false)), "{new}");
        assert!(!roles.contains(old), "{old} is still a role of its own");
    }
    assert_eq!(roles.canonical("no-such-role"), None);
    // The SQL Server guest keeps the Windows family the Proxmox catalog gave it (a Windows
    // guest with application-aware processing is a Windows server to the VBR document).
    assert_eq!(
        roles.with_ancestors("sql-guest-vm"),
        [
            "sql-guest-vm",
            "windows-guest-vm",
            "guest-vm",
            "windows-server",
            "server"
        ]
    );
}

#[test]
fn roles_lint_finds_duplicate_roles_with_lines() {
    // Line 1 comment, 2 header, roles from line 3 on.
    let text = "# my roles\n\
id,parent,description,aliases\n\
gw-on-windows,gateway-server,A gateway box,Gateway server (Microsoft Windows)\n\
guest-vm-linux,guest-vm,A Linux guest,Linux guest\n\
linux-vm-guest,guest-vm,Some Linux guest,Another wording\n\
mine-a,server,Same words here,Wording A\n\
mine-b,server,same  words here,Wording B\n\
orphan,no-such-parent,An orphan,Orphan\n";
    let tail = "merge them (keep one id, list the other in `replaces`)";
    let want = [
        // The agent document's wording, already a wording of the VBR role (roles-veeam-vbr.csv
        // line 7).
        format!("my-roles.csv:3: role gw-on-windows may duplicate another role: wording \"Gateway server (Microsoft Windows)\" is already an alias of windows-gateway-server (roles-veeam-vbr.csv:7); {tail}"),
        "my-roles.csv:4: role guest-vm-linux is an old id of linux-guest-vm; define linux-guest-vm instead".to_string(),
        // Same words as linux-guest-vm (roles-veeam-vbr.csv line 20) in another order.
        format!("my-roles.csv:5: role linux-vm-guest may duplicate another role: its id has the same words as linux-guest-vm (roles-veeam-vbr.csv:20); {tail}"),
        format!("my-roles.csv:7: role mine-b may duplicate another role: description is the same as mine-a's (my-roles.csv:6); {tail}"),
        "my-roles.csv:8: role orphan has unknown parent no-such-parent".to_string(),
    ];
    assert_eq!(lint_file("my-roles.csv", text), want);
}

#[test]
fn roles_lint_finds_the_pairs_the_catalogs_had() {
    // The four pairs as the catalogs defined them before the merge, as a user file would:
    // each is found against the merged built-in role.
    let text = "id,parent,description,aliases\n\
gw-win,gateway-server,A gateway server running on Microsoft Windows,Windows gateway server\n\
vm-win,guest-vm,A VM whose guest OS is Microsoft Windows,VM guest OS (Windows)\n\
vm-lin,guest-vm,A VM whose guest OS is Linux,Linux VM guest OS\n\
vm-sql,guest-vm,A VM running Microsoft SQL Server whose transaction logs are backed up,Microsoft SQL VM guest OS\n";
    let got = lint_file("old.csv", text);
    let lines: Vec<(&str, &str)> = got
        .iter()
        .map(|p| {
            let (at, rest) = p.split_at(p.find(": role").unwrap());
            let other = rest.split(" already an alias of ").nth(1).unwrap_or("");
            (at, other.split(' ').next().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("old.csv:2", "windows-gateway-server"),
            ("old.csv:3", "windows-guest-vm"),
            ("old.csv:4", "linux-guest-vm"),
            ("old.csv:5", "sql-guest-vm"),
        ]
    );
}

#[test]
fn catalog_lint_names_old_role_ids() {
    let text = "# catalog: mine\n# product: Mine\n\
id,section,from_role,to_role,protocol,ports,qualifiers,host_pattern,ref,note,decision,source_line\n\
X-1,S,agent-computer,gateway-server-windows,tcp,445,,,,n,,1\n\
X-2,S,backup-server,windows-gateway-server,tcp,445,,,,n,,2\n";
    assert_eq!(
        lint_file("mine.csv", text),
        ["mine.csv:4: X-1: role \"gateway-server-windows\" is an old id of \"windows-gateway-server\"; write windows-gateway-server"]
    );
    // The file still loads: the old id means the new role.
    let mut cat = Catalogs::builtin(&[]).unwrap();
    assert!(cat.add_file("mine.csv", text).is_empty());
    let x1 = cat.rules.iter().find(|r| r.id == "X-1").unwrap();
    assert_eq!(x1.to_role, "windows-gateway-server");
}

#[test]
fn inventory_old_ids_work_with_a_note() {
    let roles = Roles::builtin();
    let text = "address,roles,name\n10.0.0.1,gateway-server-windows,gw\n10.0.0.2,mssql-guest-vm;linux-server,db\n";
    let inv = Inventory::parse("hosts.csv", text, &roles).unwrap();
    let roles_of: Vec<Vec<String>> = inv.entries.iter().map(|e| e.roles.clone()).collect();
    assert_eq!(
        roles_of,
        [
            vec!["windows-gateway-server".to_string()],
            vec!["sql-guest-vm".to_string(), "linux-server".to_string()]
        ]
    );
    let notes: Vec<String> = inv.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        notes,
        [
            "hosts.csv:2: role \"gateway-server-windows\" is an old id of \"windows-gateway-server\"; write windows-gateway-server (the old id still works)",
            "hosts.csv:3: role \"mssql-guest-vm\" is an old id of \"sql-guest-vm\"; write sql-guest-vm (the old id still works)",
        ]
    );
}

#[test]
fn agent_to_windows_gateway_smb_is_documented_under_either_id() {
    // AGT-034: agent-computer -> windows-gateway-server tcp/445 (agent document, backup
    // repositories table). Before the merge the agent rule named gateway-server-windows, so a
    // gateway tagged windows-gateway-server came out role-mismatch.
    let hosts = "10.2.0.1,agent-computer-windows,ws1\n10.2.0.2,windows-gateway-server,gw-new\n10.2.0.3,gateway-server-windows,gw-old\n";
    let run = audit(
        hosts,
        &[
            ("10.2.0.1", 50001, "10.2.0.2", 445),
            ("10.2.0.1", 50002, "10.2.0.3", 445),
        ],
        &["veeam-agent"],
    );
    for gw in ["10.2.0.2", "10.2.0.3"] {
        assert_eq!(
            run.verdict("10.2.0.1", gw, 445),
            ("documented".to_string(), "AGT-034".to_string()),
            "{gw}"
        );
    }
    assert!(
        run.stderr.contains("flowaudit: warning: hosts.csv:3: role \"gateway-server-windows\" is an old id of \"windows-gateway-server\""),
        "{}",
        run.stderr
    );
}

#[test]
fn sql_guest_gets_the_rules_of_both_documents() {
    // VBR-226: backup-server -> sql-guest-vm tcp/1433 (item restore, VBR document); PVE-052:
    // guest-interaction-proxy -> sql-guest-vm tcp/6167 (Proxmox document, was mssql-guest-vm).
    // The host is tagged with the old Proxmox id.
    let hosts = "10.3.0.1,backup-server,vbr\n10.3.0.2,guest-interaction-proxy,gip\n10.3.0.3,mssql-guest-vm,sql\n";
    let run = audit(
        hosts,
        &[
            ("10.3.0.1", 50001, "10.3.0.3", 1433),
            ("10.3.0.2", 50002, "10.3.0.3", 6167),
        ],
        &["veeam-vbr", "veeam-proxmox"],
    );
    assert_eq!(
        run.verdict("10.3.0.1", "10.3.0.3", 1433),
        ("documented".to_string(), "VBR-226".to_string())
    );
    // 6167 from a guest interaction proxy: VBR-181 (-> windows-guest-vm, SQL log shipping),
    // VBR-191 (-> guest-vm, persistent agent log shipping) and PVE-052 (-> the SQL guest).
    assert_eq!(
        run.verdict("10.3.0.2", "10.3.0.3", 6167),
        (
            "documented".to_string(),
            "VBR-181;VBR-191;PVE-052".to_string()
        )
    );
}

fn pair(verdict: &str, rules: &str) -> (String, String) {
    (verdict.to_string(), rules.to_string())
}

// ---------------------------------------------------------------------------------------------
// 2. Role families that match the documents

#[test]
fn windows_and_linux_components_get_the_server_ports() {
    // VBR document (seed 003): the Windows server table (VBR-001 tcp/445, VBR-007 tcp/6162) is
    // for every Windows component; the document calls the Windows repository, the Hyper-V host
    // and the tape server Windows servers. The Linux server table (VBR-015 tcp/22) likewise.
    let hosts = "10.4.0.1,backup-server,vbr\n10.4.0.2,windows-backup-repository,repo-win\n\
10.4.0.3,hyperv-host,hv\n10.4.0.4,tape-server,tape\n10.4.0.5,mount-server,mount\n\
10.4.0.6,linux-backup-repository,repo-lin\n";
    let run = audit(
        hosts,
        &[
            ("10.4.0.1", 50001, "10.4.0.2", 445),
            ("10.4.0.1", 50002, "10.4.0.3", 445),
            ("10.4.0.1", 50003, "10.4.0.4", 6162),
            ("10.4.0.1", 50004, "10.4.0.5", 445),
            ("10.4.0.1", 50005, "10.4.0.6", 22),
        ],
        &["veeam-vbr"],
    );
    // Was role-mismatch: the repository was not a windows-server.
    run.expect("10.4.0.1", "10.4.0.2", 445, "documented", "VBR-001");
    // VBR-021 is the Hyper-V table's own 135;445 row.
    run.expect("10.4.0.1", "10.4.0.3", 445, "documented", "VBR-001;VBR-021");
    // VBR-160 is the tape server row referring to the Windows server table.
    run.expect(
        "10.4.0.1",
        "10.4.0.4",
        6162,
        "documented",
        "VBR-007;VBR-160/VBR-007",
    );
    // A mount server is not made a Windows server: only the mount server row's reference
    // (restore-only) documents 445.
    run.expect("10.4.0.1", "10.4.0.5", 445, "documented", "VBR-195/VBR-001");
    // Was role-mismatch: the Linux repository was not a linux-server.
    run.expect("10.4.0.1", "10.4.0.6", 22, "documented", "VBR-015");
}

#[test]
fn the_enterprise_manager_appliance_hosts_the_website() {
    // Enterprise Manager document (seed 002): EM-023 browser -> website tcp/443 (appliance
    // table), EM-049 tcp/9443 (Windows table). The appliance used to miss the website role; a
    // Windows Enterprise Manager server holds it only when tagged so (see `catalog show
    // em-website`), and 9443 is documented only towards em-website (EM-049).
    let hosts = "10.5.0.1,web-browser,pc\n10.5.0.2,enterprise-manager-appliance,em-lin\n\
10.5.0.3,enterprise-manager;em-website,em-win\n10.5.0.4,enterprise-manager,em-win2\n";
    let run = audit(
        hosts,
        &[
            ("10.5.0.1", 50001, "10.5.0.2", 443),
            ("10.5.0.1", 50002, "10.5.0.3", 9443),
            ("10.5.0.1", 50003, "10.5.0.4", 9443),
        ],
        &["veeam-em"],
    );
    run.expect("10.5.0.1", "10.5.0.2", 443, "documented", "EM-023");
    run.expect("10.5.0.1", "10.5.0.3", 9443, "documented", "EM-049");
    run.expect("10.5.0.1", "10.5.0.4", 9443, "role-mismatch", "EM-049");
}

#[test]
fn backup_exec_servers_stay_outside_the_veeam_families() {
    // Backup Exec article (seed 000): its media server is a be-server only; the Veeam Windows
    // server table does not apply to it. BE-001/BE-005 (1025-65535) and BE-003 (10000).
    let roles = Roles::builtin();
    assert_eq!(roles.with_ancestors("be-server"), ["be-server", "server"]);
    let run = audit(
        "10.10.0.1,be-server,media\n10.10.0.2,be-remote-agent,files\n",
        &[
            ("10.10.0.1", 50001, "10.10.0.2", 10000),
            ("10.10.0.2", 50002, "10.10.0.1", 6101),
        ],
        &["backup-exec"],
    );
    run.expect(
        "10.10.0.1",
        "10.10.0.2",
        10000,
        "documented",
        "BE-003;BE-001;BE-005",
    );
    run.expect(
        "10.10.0.2",
        "10.10.0.1",
        6101,
        "documented",
        "BE-004;BE-002;BE-006",
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Rules that fit the documents

#[test]
fn enterprise_manager_reaches_both_helpers() {
    // EM-085 (added: the helper host) and EM-057 (helper appliance), tcp/2500-6000.
    let hosts = "10.5.1.1,enterprise-manager,em\n10.5.1.2,flr-helper-host,helper\n\
10.5.1.3,flr-helper-appliance,appliance\n";
    let run = audit(
        hosts,
        &[
            ("10.5.1.1", 50001, "10.5.1.2", 2500),
            ("10.5.1.1", 50002, "10.5.1.3", 2500),
        ],
        &["veeam-em"],
    );
    run.expect("10.5.1.1", "10.5.1.2", 2500, "documented", "EM-085");
    run.expect("10.5.1.1", "10.5.1.3", 2500, "documented", "EM-057");
}

#[test]
fn ibm_rule_targets_ibm_object_storage() {
    // VBR-114 now names ibm-cloud-object-storage, like AGT-069 in the agent document; an
    // S3-compatible device (object-storage) no longer gets it.
    let hosts = "10.8.0.1,gateway-server,gw\n10.8.0.2,ibm-cloud-object-storage,ibm\n10.8.0.3,object-storage,s3\n";
    let run = audit(
        hosts,
        &[
            ("10.8.0.1", 50001, "10.8.0.2", 443),
            ("10.8.0.1", 50002, "10.8.0.3", 443),
        ],
        &["veeam-vbr", "veeam-agent"],
    );
    let common = [
        "VBR-094", "VBR-099", "VBR-108", "VBR-115", "VBR-116", "VBR-121", "VBR-130",
    ];
    let ibm = "VBR-094;VBR-099;VBR-108;VBR-114;VBR-115;VBR-116;VBR-121;VBR-130;AGT-069;AGT-071";
    run.expect("10.8.0.1", "10.8.0.2", 443, "documented", ibm);
    assert_eq!(
        run.verdict("10.8.0.1", "10.8.0.3", 443),
        pair("documented", &format!("{};AGT-071", common.join(";")))
    );
}

#[test]
fn agent_revocation_rule_needs_the_role_not_any_internet_host() {
    // AGT-040: agent-computer-windows -> revocation-endpoint tcp/80;443. Before, it named the
    // Internet without a pattern, so any public host on 80 was documented.
    let hosts = "10.7.0.1,agent-computer-windows,ws\n10.7.0.2,revocation-endpoint,crl\n";
    let run = audit(
        hosts,
        &[
            ("10.7.0.1", 50001, "198.51.100.30", 80),
            ("10.7.0.1", 50002, "10.7.0.2", 80),
            ("10.7.0.1", 50003, "10.7.0.2", 443),
        ],
        &["veeam-agent"],
    );
    run.expect("10.7.0.1", "198.51.100.30", 80, "unknown-host", "");
    run.expect("10.7.0.1", "10.7.0.2", 80, "documented", "AGT-040");
    run.expect("10.7.0.1", "10.7.0.2", 443, "documented", "AGT-040");
}

#[test]
fn update_repository_is_matched_by_name_in_both_documents() {
    // Proxmox document (seed 001) names the Veeam Update Repository repository.veeam.com,
    // served through CloudFront: PVE-009 (worker), and now EM-016 / EM-086 (appliance, seed
    // 002, which gives no name).
    let hosts = "10.6.0.1,enterprise-manager-appliance,em\n10.6.0.2,proxmox-worker,worker\n";
    let run = audit_named(
        hosts,
        &[
            ("repository.veeam.com", "198.51.100.20"),
            ("d1x2.cloudfront.net", "198.51.100.21"),
        ],
        &[
            ("10.6.0.1", 50001, "198.51.100.20", 443),
            ("10.6.0.2", 50002, "198.51.100.20", 443),
            ("10.6.0.1", 50003, "198.51.100.21", 443),
            ("10.6.0.1", 50004, "198.51.100.22", 443),
        ],
        &["veeam-em", "veeam-proxmox"],
    );
    run.expect("10.6.0.1", "198.51.100.20", 443, "documented", "EM-016");
    run.expect("10.6.0.2", "198.51.100.20", 443, "documented", "PVE-009");
    run.expect("10.6.0.1", "198.51.100.21", 443, "documented", "EM-086");
    // A public host without a name is not the update repository.
    run.expect("10.6.0.1", "198.51.100.22", 443, "unknown-host", "");
}

#[test]
fn nfs_helper_ports_are_dynamic_and_name_the_port_to_pin() {
    // VBR-068 (mountd), VBR-069 (statd) and VBR-070 (lockd over TCP): 1-65535, qualifier
    // dynamic. A gateway reaching an NFS share's mountd on 20048.
    let run = audit(
        "10.9.0.1,gateway-server,gw\n10.9.0.2,nfs-share,nfs\n",
        &[("10.9.0.1", 50001, "10.9.0.2", 20048)],
        &["veeam-vbr"],
    );
    run.expect(
        "10.9.0.1",
        "10.9.0.2",
        20048,
        "documented",
        "VBR-068;VBR-069;VBR-070",
    );
    let row = run
        .rules
        .iter()
        .find(|r| r["rule_id"] == "VBR-068")
        .unwrap();
    assert_eq!(
        (row["qualifiers"].as_str(), row["ports_seen"].as_str()),
        ("dynamic;configurable;mode-dependent", "20048")
    );
    // The audit names the port to pin, and suggests no narrowed range of 1-65535.
    assert_eq!(row["suggested_range"], "");
    let f = run
        .findings
        .iter()
        .find(|f| f["subject"] == "VBR-068 gw -> nfs (1-65535)")
        .expect("a finding for VBR-068");
    assert_eq!(f["kind"], "narrow-range");
    assert_eq!(
        f["reason"],
        "mountd service on an NFSv3 share: the port is assigned at run time; seen on port 20048: pin it in the service's settings and open only that port instead of 1-65535"
    );
    let cat = Catalogs::builtin(&[]).unwrap();
    let rule = |id: &str| cat.rules.iter().find(|r| r.id == id).unwrap();
    let seen: std::collections::BTreeSet<u16> = [20048].into();
    assert_eq!(
        flowaudit::audit::catalog::pin_advice(rule("VBR-068"), &seen).as_deref(),
        Some("mountd service on an NFSv3 share: the port is assigned at run time; seen on port 20048: pin it in the service's settings and open only that port instead of 1-65535")
    );
    // A dynamic-range rule (Windows RPC ports) is a range to keep, not a port to pin.
    assert_eq!(
        flowaudit::audit::catalog::pin_advice(rule("VBR-009"), &seen),
        None
    );
    assert_eq!(
        flowaudit::audit::catalog::pin_advice(rule("VBR-068"), &Default::default()),
        None
    );
}

#[test]
fn catalog_show_prints_the_decisions() {
    let show = |id: &str| {
        let o = Command::new(BIN)
            .args(["catalog", "show", id])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{id}");
        String::from_utf8(o.stdout).unwrap()
    };
    for (id, words) in [
        (
            "VBR-001",
            "windows-server role covers every Windows component",
        ),
        ("VBR-015", "linux-server role covers every Linux component"),
        (
            "EM-023",
            "the Enterprise Manager appliance holds em-website",
        ),
        ("EM-085", "flr-helper-host (EM-085, added later"),
        (
            "VBR-114",
            "IBM Cloud object storage role, as in the agent document",
        ),
        ("AGT-040", "targets the revocation-endpoint role"),
        (
            "EM-016",
            "names the Veeam Update Repository repository.veeam.com",
        ),
        ("VBR-068", "The rule is marked dynamic"),
        (
            "wan-accelerator",
            "a WAN accelerator is a Microsoft Windows server",
        ),
        ("mount-server", "Left a plain server"),
        (
            "enterprise-manager-appliance",
            "the appliance serves the website (HTTPS 443) itself",
        ),
        (
            "em-website",
            "tag it em-website as well when it serves the website",
        ),
        (
            "mssql-guest-vm",
            "mssql-guest-vm is an old id of sql-guest-vm",
        ),
    ] {
        let text = show(id);
        assert!(text.contains(words), "{id}: {text}");
    }
}
