//! Catalog and role precision (issue 12): one id per role, role families that match the
//! documents, rules that fit the documents.
//!
//! Each audit test writes a small capture of complete TCP sessions, gives its hosts roles in a
//! small inventory and checks the verdict and rule ids the audit gives each service. The
//! expected rule ids are worked out by hand from the catalog rows named in the comments (the
//! rows of `catalogs/*.csv` that cover the port between those roles); line numbers in lint
//! messages are counted by hand in the files the tests write or in `catalogs/roles*.csv`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use flowaudit::capture::writer::PcapWriter;
use flowaudit::catalog::{Catalogs, Roles};
use flowaudit::inventory::Inventory;
use flowaudit::synth::{tcp_session, Session};

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .map(String::from)
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

/// One TCP conversation: client, client port, server, server port.
type Conv = (&'static str, u16, &'static str, u16);

/// The result of one audit run: services.csv rows and what the audit said on stderr.
struct Run {
    services: Vec<BTreeMap<String, String>>,
    stderr: String,
}

impl Run {
    /// (verdict, rule ids) of the service client -> server:port.
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

/// Audits complete sessions `convs` with the inventory text `hosts` against `products`.
fn audit(hosts: &str, convs: &[Conv], products: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("c.pcap");
    {
        let f = std::fs::File::create(&pcap).unwrap();
        let mut w = PcapWriter::new(f, 1, false).unwrap();
        let mut t = 1_767_225_600 * 1_000_000_000i64;
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
    // The SQL Server guest keeps the Windows family the Proxmox catalog gave it.
    assert_eq!(
        roles.with_ancestors("sql-guest-vm"),
        ["sql-guest-vm", "windows-guest-vm", "guest-vm"]
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
