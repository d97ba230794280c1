//! `flowaudit diff`, waivers and the change gates, on pairs of audits made from captures that
//! differ in known ways. Every expected row is worked out by hand from the plans below, the demo
//! inventory (`synth::DEMO_INVENTORY`) and the catalog rows named in tests/audit.rs:
//!
//! - baseline: vbr01 -> proxy01 6162 (VBR-007) and 6160 (VBR-002), proxy01 -> repo01 2500, 2501
//!   and 2505 (VBR-058, 2500-3300), admin01 -> vbr01 9392 (VBR-036); every session completes.
//! - current: the same, except that 6160 is refused (a firewall change), 2505 and admin01's 9392
//!   are gone (VBR-036 becomes unused, VBR-058's range narrows to 2500-2501), and proxy01 ->
//!   repo01 3306 (undocumented) is new.
//!
//! Waivers are judged with `--today`, so the expiry tests do not depend on the clock.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flowaudit::audit::catalog::Roles;
use flowaudit::audit::waiver::{Date, ServiceRef, Waivers};
use flowaudit::capture::writer::PcapWriter;
use flowaudit::decode::{link, Addr};
use flowaudit::synth::{tcp_session, Session, DEMO_INVENTORY};

use Session::{Complete, Refused};

mod common;

/// diff.csv with no change: its header alone.
const DIFF_COLUMNS_LINE: &str =
    "change,subject,client,server,proto,port,rule_id,kind,baseline,current,severity,waiver\n";

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

type Plan = [(u8, u8, u16, Session)];

const BASELINE: &Plan = &[
    (10, 20, 6162, Complete),
    (10, 20, 6160, Complete),
    (20, 30, 2500, Complete),
    (20, 30, 2501, Complete),
    (20, 30, 2505, Complete),
    (5, 10, 9392, Complete),
];

const CURRENT: &Plan = &[
    (10, 20, 6162, Complete),
    (10, 20, 6160, Refused),
    (20, 30, 2500, Complete),
    (20, 30, 2501, Complete),
    (20, 30, 3306, Complete),
];

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, last)
}

/// Writes a capture of TCP sessions, as `synth::demo` does.
fn write_capture(path: &Path, plan: &Plan) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(std::io::BufWriter::new(f), link::ETHERNET, false).unwrap();
    let mut ts: i64 = 1_767_225_600 * 1_000_000_000;
    let mut port = 50_000u16;
    for &(c, s, sp, kind) in plan {
        port += 1;
        ts = tcp_session(&mut w, ts, (ip(c), port), (ip(s), sp), kind).unwrap();
        ts += 500_000_000;
    }
    w.into_inner().flush().unwrap();
}

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let w = Work {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(w.path("hosts.csv"), DEMO_INVENTORY).unwrap();
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes `NAME.pcap` from the plan and audits it into `NAME/`; returns the exit code.
    fn audit(&self, name: &str, plan: &Plan, extra: &[&str]) -> i32 {
        let cap = self.path(&format!("{name}.pcap"));
        if !cap.exists() {
            write_capture(&cap, plan);
        }
        let o = Command::new(BIN)
            .arg("audit")
            .arg(&cap)
            .arg("-I")
            .arg(self.path("hosts.csv"))
            .arg("-q")
            .arg("-o")
            .arg(self.path(name))
            .args(extra)
            .output()
            .unwrap();
        code(&o)
    }

    /// Runs `flowaudit diff BASE CUR -o NAME.csv --md NAME.md [extra]`.
    fn diff(&self, base: &str, cur: &str, name: &str, extra: &[&str]) -> Output {
        Command::new(BIN)
            .arg("diff")
            .arg(self.path(base))
            .arg(self.path(cur))
            .arg("-o")
            .arg(self.path(&format!("{name}.csv")))
            .arg("--md")
            .arg(self.path(&format!("{name}.md")))
            .args(extra)
            .output()
            .unwrap()
    }

    fn rows(&self, name: &str) -> Vec<Vec<String>> {
        read_rows(&self.path(name))
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap();
    r.records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect()
}

const HEADER: &str =
    "change,subject,client,server,proto,port,rule_id,kind,baseline,current,severity,waiver";

/// An expected diff.csv row, written as the file has it (no cell here holds a comma).
fn cells(line: &str) -> Vec<String> {
    let v: Vec<String> = line.split(',').map(String::from).collect();
    assert_eq!(v.len(), 12, "{line}");
    v
}

fn assert_rows(got: &[Vec<String>], want: &[Vec<String>]) {
    assert_eq!(got[0], cells(HEADER), "header");
    let got = &got[1..];
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "row {}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "rows: {got:#?}");
}

fn rows(lines: &[&str]) -> Vec<Vec<String>> {
    lines.iter().map(|l| cells(l)).collect()
}

const S_6160: &str = "vbr01 -> proxy01 tcp/6160";
const S_3306: &str = "proxy01 -> repo01 tcp/3306";
// The host pairs behind the two service findings, as services and gates name them.
const P_6160: &str = "vbr01 (10.1.0.10) -> proxy01 (10.1.0.20) tcp/6160";
const P_3306: &str = "proxy01 (10.1.0.20) -> repo01 (10.1.0.30) tcp/3306";
const R_036: &str = "VBR-036 admin01 -> vbr01 (9392)";
const R_058: &str = "VBR-058 proxy01 -> repo01 (2500-3300)";

/// baseline -> current, without waivers: every row.
fn forward_rows() -> Vec<Vec<String>> {
    rows(&[
        // 10.1.0.5 only ever appeared as admin01, the client of 9392.
        "host-gone,admin01 (10.1.0.5),10.1.0.5,,,,,,backup-console,,,",
        // MySQL from the proxy to the repository: in no rule, a medium finding.
        "service-new,proxy01 (10.1.0.20) -> repo01 (10.1.0.30) tcp/3306,10.1.0.20,10.1.0.30,tcp,3306,,undocumented,,undocumented/established,medium,",
        // Sorted by client address: 10.1.0.5 before 10.1.0.20. Documented and established:
        // no finding about them.
        "service-gone,admin01 (10.1.0.5) -> vbr01 (10.1.0.10) tcp/9392,10.1.0.5,10.1.0.10,tcp,9392,VBR-036,,documented/established,,,",
        "service-gone,proxy01 (10.1.0.20) -> repo01 (10.1.0.30) tcp/2505,10.1.0.20,10.1.0.30,tcp,2505,VBR-058,,documented/established,,,",
        // The firewall change: still documented (VBR-002), now answered by RST.
        "outcome-changed,vbr01 (10.1.0.10) -> proxy01 (10.1.0.20) tcp/6160,10.1.0.10,10.1.0.20,tcp,6160,VBR-002,documented-refused,established,refused,high,",
        "rule-unused,VBR-036 admin01 -> vbr01 (9392),admin01,vbr01,tcp,9392,VBR-036,unused-rule,used,unused,info,",
        // Ports seen 2500, 2501, 2505 -> 2500, 2501.
        "range-narrowed,VBR-058 proxy01 -> repo01 (2500-3300),proxy01,repo01,tcp,2500-3300,VBR-058,narrow-range,2500-2505,2500-2501,info,",
        // New findings by severity: high, medium, info.
        "finding-new,vbr01 -> proxy01 tcp/6160,vbr01,proxy01,tcp,6160,VBR-002,documented-refused,,counts,high,",
        "finding-new,proxy01 -> repo01 tcp/3306,proxy01,repo01,tcp,3306,,undocumented,,counts,medium,",
        "finding-new,VBR-036 admin01 -> vbr01 (9392),admin01,vbr01,tcp,9392,VBR-036,unused-rule,,counts,info,",
    ])
}

#[test]
fn diff_lists_every_change_and_gates_set_the_exit_code() {
    let w = Work::new();
    assert_eq!(w.audit("base", BASELINE, &[]), 0);
    assert_eq!(w.audit("cur", CURRENT, &[]), 0);

    let o = w.diff("base", "cur", "d", &[]);
    assert_eq!(code(&o), 0, "no gate asked: {}", stderr(&o));
    assert_rows(&w.rows("d.csv"), &forward_rows());

    // Each gate holds on its own.
    for gate in [
        "new-undocumented",
        "new-refused",
        "new-findings",
        "any-change",
    ] {
        let o = w.diff("base", "cur", "g", &["--fail-on", gate]);
        assert_eq!(code(&o), 1, "--fail-on {gate}: {}", stderr(&o));
    }
    let o = w.diff("base", "cur", "g", &["--fail-on", "bogus"]);
    assert_eq!(code(&o), 2);

    // The Markdown summary: counts, gates, and the items.
    let o = w.diff(
        "base",
        "cur",
        "m",
        &["--fail-on", "new-refused", "--fail-on", "new-undocumented"],
    );
    assert_eq!(code(&o), 1);
    let md = std::fs::read_to_string(w.path("m.md")).unwrap();
    for want in [
        "| service-gone | 2 |",
        "| finding-new | 3 |",
        "- `new-refused`: **FAILED** (1 item)",
        &format!("  - {P_6160} (refused)"),
        "- `new-undocumented`: **FAILED** (1 item)",
        &format!("  - {P_3306} (undocumented)"),
        &format!("- {P_6160}: established → refused (rule VBR-002) [high documented-refused]"),
        &format!("- {R_058}: 2500-2505 → 2500-2501 [info narrow-range]"),
    ] {
        assert!(md.contains(want), "missing {want:?} in\n{md}");
    }

    // Markdown on stdout when --md is not given.
    let o = Command::new(BIN)
        .arg("diff")
        .arg(w.path("base"))
        .arg(w.path("cur"))
        .arg("-o")
        .arg(w.path("s.csv"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("## flowaudit diff\n"));
}

#[test]
fn reverse_diff_widens_and_resolves() {
    let w = Work::new();
    assert_eq!(w.audit("base", BASELINE, &[]), 0);
    assert_eq!(w.audit("cur", CURRENT, &[]), 0);
    // current -> baseline: everything the other way round.
    let o = w.diff("cur", "base", "r", &[]);
    assert_eq!(code(&o), 0);
    assert_rows(
        &w.rows("r.csv"),
        &rows(&[
            "host-new,admin01 (10.1.0.5),10.1.0.5,,,,,,,backup-console,,",
            "service-new,admin01 (10.1.0.5) -> vbr01 (10.1.0.10) tcp/9392,10.1.0.5,10.1.0.10,tcp,9392,VBR-036,,,documented/established,,",
            "service-new,proxy01 (10.1.0.20) -> repo01 (10.1.0.30) tcp/2505,10.1.0.20,10.1.0.30,tcp,2505,VBR-058,,,documented/established,,",
            // Gone: described by the finding the earlier audit had.
            "service-gone,proxy01 (10.1.0.20) -> repo01 (10.1.0.30) tcp/3306,10.1.0.20,10.1.0.30,tcp,3306,,undocumented,undocumented/established,,medium,",
            "outcome-changed,vbr01 (10.1.0.10) -> proxy01 (10.1.0.20) tcp/6160,10.1.0.10,10.1.0.20,tcp,6160,VBR-002,,refused,established,,",
            "rule-used,VBR-036 admin01 -> vbr01 (9392),admin01,vbr01,tcp,9392,VBR-036,,unused,used,,",
            "range-widened,VBR-058 proxy01 -> repo01 (2500-3300),proxy01,repo01,tcp,2500-3300,VBR-058,narrow-range,2500-2501,2500-2505,info,",
            "finding-resolved,vbr01 -> proxy01 tcp/6160,vbr01,proxy01,tcp,6160,VBR-002,documented-refused,counts,,high,",
            "finding-resolved,proxy01 -> repo01 tcp/3306,proxy01,repo01,tcp,3306,,undocumented,counts,,medium,",
            "finding-resolved,VBR-036 admin01 -> vbr01 (9392),admin01,vbr01,tcp,9392,VBR-036,unused-rule,counts,,info,",
        ]),
    );
    // Nothing new is wrong: only any-change holds.
    for (gate, want) in [
        ("new-undocumented", 0),
        ("new-refused", 0),
        ("new-findings", 0),
        ("any-change", 1),
    ] {
        let o = w.diff("cur", "base", "g", &["--fail-on", gate]);
        assert_eq!(code(&o), want, "--fail-on {gate}");
    }
}

#[test]
fn identical_audits_have_no_changes() {
    let w = Work::new();
    assert_eq!(w.audit("a", BASELINE, &[]), 0);
    // The same capture audited again, into another directory.
    std::fs::copy(w.path("a.pcap"), w.path("b.pcap")).unwrap();
    assert_eq!(w.audit("b", BASELINE, &[]), 0);
    let all = [
        "--fail-on",
        "new-undocumented",
        "--fail-on",
        "new-refused",
        "--fail-on",
        "new-findings",
        "--fail-on",
        "any-change",
    ];
    let o = w.diff("a", "b", "d", &all);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_rows(&w.rows("d.csv"), &[]);
    let md = std::fs::read_to_string(w.path("d.md")).unwrap();
    assert!(md.contains("No changes."), "{md}");
    assert!(md.contains("- `any-change`: passed"), "{md}");
}

#[test]
fn inventory_fix_turns_an_unknown_host_documented() {
    // The demo capture audited with the demo inventory, then with 10.1.0.99 added as a second
    // Enterprise Manager: its tcp/443 to vbr01 is EM-031, and the other Enterprise Manager ->
    // Windows backup server rules (EM-029, EM-030, EM-032, EM-033, as for em01 in the demo)
    // appear unused for the new host. Rule instances that appear unused make no rule row.
    let w = Work::new();
    let run = |dir: &str, inv: &Path| {
        Command::new(BIN)
            .args(["audit", "fixtures/demo/backup-window.pcap", "-q", "-I"])
            .arg(inv)
            .arg("-o")
            .arg(w.path(dir))
            .status()
            .unwrap()
            .code()
            .unwrap()
    };
    assert_eq!(run("before", &w.path("hosts.csv")), 0);
    let fixed = w.write(
        "fixed.csv",
        &format!("{DEMO_INVENTORY}10.1.0.99,enterprise-manager,em02\n"),
    );
    assert_eq!(run("after", &fixed), 0);
    let o = w.diff("before", "after", "d", &["--fail-on", "new-undocumented"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_rows(
        &w.rows("d.csv"),
        &rows(&[
            "host-roles-changed,em02 (10.1.0.99),10.1.0.99,,,,,,not-in-inventory,enterprise-manager;server,,",
            "verdict-changed,em02 (10.1.0.99) -> vbr01 (10.1.0.10) tcp/443,10.1.0.99,10.1.0.10,tcp,443,EM-031,,unknown-host,documented,,",
            "rule-used,EM-031 em02 -> vbr01 (443),em02,vbr01,tcp,443,EM-031,,,used,,",
            "finding-new,EM-029 em02 -> vbr01 (9405),em02,vbr01,tcp,9405,EM-029,unused-rule,,counts,info,",
            "finding-new,EM-030 em02 -> vbr01 (9392),em02,vbr01,tcp,9392,EM-030,unused-rule,,counts,info,",
            "finding-new,EM-032 em02 -> vbr01 (2500-2600),em02,vbr01,tcp,2500-2600,EM-032,unused-rule,,counts,info,",
            "finding-new,EM-033 em02 -> vbr01 (49152-65535),em02,vbr01,tcp,49152-65535,EM-033,unused-rule,,counts,info,",
            // The finding named the host by address only: it is resolved, not renamed.
            "finding-resolved,10.1.0.0/24 -> vbr01 tcp/443,10.1.0.0/24,vbr01,tcp,443,,unknown-host,counts,,low,",
        ]),
    );
    let o = w.diff("before", "after", "d", &["--fail-on", "new-findings"]);
    assert_eq!(code(&o), 1, "four unused-rule findings are new");
}

const WAIVERS: &str = "client,server,proto,ports,reason,owner,expires
role:backup-proxy,role:backup-repository,tcp,3306,catalog replica,alice,2026-02-01
10.1.0.10,10.1.0.20/32,tcp,6160-6161,installer port closed,bob,2026-01-10
";
const W_3306: &str = "waived until 2026-02-01 by alice: catalog replica";
const W_6160: &str = "waived until 2026-01-10 by bob: installer port closed";
const X_6160: &str = "EXPIRED on 2026-01-10, was waived by bob: installer port closed";

/// `forward_rows` with waiver cells set: (subject, waiver, finding state).
fn waived_rows(marks: &[(&str, &str, &str)]) -> Vec<Vec<String>> {
    let mut rows = forward_rows();
    // A service row carries the waiver of the finding its host pair falls under.
    let pair = |subject: &str| match subject {
        S_6160 => P_6160,
        S_3306 => P_3306,
        _ => "",
    };
    for r in &mut rows {
        for &(subject, mark, state) in marks {
            if (r[1] == subject || r[1] == pair(subject)) && !r[7].is_empty() {
                r[11] = mark.to_string();
                if r[0] == "finding-new" {
                    r[9] = state.to_string();
                }
            }
        }
    }
    rows
}

#[test]
fn waivers_in_diff_with_a_fixed_clock() {
    let w = Work::new();
    assert_eq!(w.audit("base", BASELINE, &[]), 0);
    assert_eq!(w.audit("cur", CURRENT, &[]), 0);
    let wf = w.write("waivers.csv", WAIVERS);
    let wf_s = wf.display().to_string();
    let gates = |today: &str| -> Vec<i32> {
        [
            "new-undocumented",
            "new-refused",
            "new-findings",
            "any-change",
        ]
        .iter()
        .map(|g| {
            let o = w.diff(
                "base",
                "cur",
                "g",
                &["--waivers", &wf_s, "--today", today, "--fail-on", g],
            );
            code(&o)
        })
        .collect()
    };

    // 2026-01-05: both waivers hold. The waived findings are still listed, as waived; only the
    // new unused-rule finding (not waivable) and the changes themselves make gates hold.
    let o = w.diff(
        "base",
        "cur",
        "d",
        &["--waivers", &wf_s, "--today", "2026-01-05"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_rows(
        &w.rows("d.csv"),
        &waived_rows(&[(S_3306, W_3306, "waived"), (S_6160, W_6160, "waived")]),
    );
    assert_eq!(gates("2026-01-05"), [0, 0, 1, 1]);
    let md = std::fs::read_to_string(w.path("d.md")).unwrap();
    for want in [
        format!("- medium undocumented: {S_3306} — {W_3306}"),
        "Waivers expiring within 30 days of 2026-01-05:".to_string(),
        format!("- {wf_s}:2: `role:backup-proxy -> role:backup-repository tcp/3306` expires 2026-02-01 (in 27 days), owner alice: catalog replica"),
        format!("- {wf_s}:3: `10.1.0.10 -> 10.1.0.20/32 tcp/6160-6161` expires 2026-01-10 (in 5 days), owner bob: installer port closed"),
    ] {
        assert!(md.contains(&want), "missing {want:?} in\n{md}");
    }

    // 2026-01-09 is the last day bob's waiver holds.
    assert_eq!(gates("2026-01-09"), [0, 0, 1, 1]);

    // 2026-01-10: bob's waiver has expired, so the refused service counts again.
    let o = w.diff(
        "base",
        "cur",
        "d",
        &["--waivers", &wf_s, "--today", "2026-01-10"],
    );
    assert_eq!(code(&o), 0);
    assert_rows(
        &w.rows("d.csv"),
        &waived_rows(&[(S_3306, W_3306, "waived"), (S_6160, X_6160, "counts")]),
    );
    assert_eq!(gates("2026-01-10"), [0, 1, 1, 1]);
    let md = std::fs::read_to_string(w.path("d.md")).unwrap();
    assert!(md.contains(&format!("- {wf_s}:3: `10.1.0.10 -> 10.1.0.20/32 tcp/6160-6161` EXPIRED on 2026-01-10, owner bob: installer port closed")), "{md}");
    assert!(md.contains("expires 2026-02-01 (in 22 days)"), "{md}");

    // 2026-02-01: both expired.
    assert_eq!(gates("2026-02-01"), [1, 1, 1, 1]);

    // A bad waiver line is an input error naming the line.
    let bad = w.write(
        "bad.csv",
        "client,server,proto,ports,reason,owner,expires\n*,*,tcp,22,ok,me,2026-01-01\n*,role:no-such-role,tcp,22,r,o,2026-01-01\n",
    );
    let o = w.diff(
        "base",
        "cur",
        "x",
        &["--waivers", &bad.display().to_string()],
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains(&format!(
            "{}:3: server: unknown role \"no-such-role\"",
            bad.display()
        )),
        "{}",
        stderr(&o)
    );
    assert!(!w.path("x.csv").exists(), "no diff on bad input");
}

#[test]
fn waivers_in_the_audit_and_audit_with_a_baseline() {
    let w = Work::new();
    let wf = w.write("waivers.csv", WAIVERS);
    let wf_s = wf.display().to_string();
    assert_eq!(w.audit("base", BASELINE, &[]), 0);

    // The only high finding of the current capture is the refused 6160: waived until
    // 2026-01-10, so --fail-on high passes before that day and fails from it on.
    let high = |today: &str| {
        w.audit(
            "cur",
            CURRENT,
            &["--waivers", &wf_s, "--today", today, "--fail-on", "high"],
        )
    };
    assert_eq!(high("2026-01-09"), 0);
    let findings = read_rows(&w.path("cur/findings.csv"));
    assert_eq!(findings[0].last().unwrap(), "waiver");
    let cell = |subject: &str| {
        findings
            .iter()
            .find(|r| r[2] == subject)
            .unwrap_or_else(|| panic!("no finding {subject}"))
            .last()
            .unwrap()
            .clone()
    };
    assert_eq!(
        cell(S_6160),
        "waived until 2026-01-10 by bob: installer port closed"
    );
    assert_eq!(cell(S_3306), W_3306);
    assert_eq!(cell(R_036), "", "rule findings are never waived");
    // Findings stay sorted as without waivers.
    let kinds: Vec<&str> = findings[1..4].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        kinds,
        ["documented-refused", "undocumented", "narrow-range"]
    );
    let summary = std::fs::read_to_string(w.path("cur/summary.md")).unwrap();
    for want in [
        "## Waivers",
        &format!("Waivers from {wf_s} judged on 2026-01-09: waived findings (they do not count for --fail-on): 2; findings whose waiver expired or covers only some host pairs (they count): 0."),
        &format!("| high | documented-refused: {S_6160} | {W_6160} |"),
        &format!("| medium | undocumented: {S_3306} | {W_3306} |"),
        "Waivers expiring within 30 days:",
        "expires 2026-01-10 (in 1 day), owner bob",
        "expires 2026-02-01 (in 23 days), owner alice",
    ] {
        assert!(summary.contains(want), "missing {want:?} in\n{summary}");
    }

    assert_eq!(high("2026-01-10"), 1, "expired: the finding counts again");
    let findings = read_rows(&w.path("cur/findings.csv"));
    assert_eq!(findings[1][2], S_6160);
    assert_eq!(findings[1].last().unwrap(), X_6160);
    let summary = std::fs::read_to_string(w.path("cur/summary.md")).unwrap();
    assert!(
        summary.contains("Expired waivers (renew or remove them):"),
        "{summary}"
    );
    assert!(summary.contains("waived findings (they do not count for --fail-on): 1; findings whose waiver expired or covers only some host pairs (they count): 1."), "{summary}");

    // audit --baseline: diff.csv and diff.md in the report directory, the same rows as
    // `flowaudit diff`, and --fail-on-change gates.
    let base = w.path("base").display().to_string();
    assert_eq!(
        w.audit(
            "cur",
            CURRENT,
            &["--baseline", &base, "--fail-on-change", "new-refused"]
        ),
        1
    );
    assert_rows(&w.rows("cur/diff.csv"), &forward_rows());
    assert!(std::fs::read_to_string(w.path("cur/diff.md"))
        .unwrap()
        .contains("- `new-refused`: **FAILED** (1 item)"));
    let with_waivers = |today: &str, gate: &str| {
        w.audit(
            "cur",
            CURRENT,
            &[
                "--baseline",
                &base,
                "--waivers",
                &wf_s,
                "--today",
                today,
                "--fail-on-change",
                gate,
            ],
        )
    };
    assert_eq!(with_waivers("2026-01-09", "new-refused"), 0);
    assert_eq!(with_waivers("2026-01-09", "new-undocumented"), 0);
    assert_eq!(with_waivers("2026-01-09", "new-findings"), 1);
    assert_eq!(with_waivers("2026-01-10", "new-refused"), 1);
    assert_rows(
        &w.rows("cur/diff.csv"),
        &waived_rows(&[(S_3306, W_3306, "waived"), (S_6160, X_6160, "counts")]),
    );
    // --fail-on-change needs --baseline; a bad baseline fails before the capture is read.
    assert_eq!(
        w.audit("cur", CURRENT, &["--fail-on-change", "any-change"]),
        2
    );
    let not_audit = w.path("hosts.csv").display().to_string();
    assert_eq!(w.audit("cur", CURRENT, &["--baseline", &not_audit]), 2);

    // Bad waiver lines: every problem, each naming its line; exit 2.
    let bad = w.write(
        "bad.csv",
        "# accepted exceptions\nclient,server,proto,ports,reason,owner,expires\n\
10.1.0.300,*,tcp,22,r,o,2026-01-01\n\n\
*,*,tcp,22,r,,2026-02-30\n\
*,*,icmp,8,r,o,2026-01-01\n\
*,*,tcp\n",
    );
    let o = Command::new(BIN)
        .arg("audit")
        .arg(w.path("cur.pcap"))
        .arg("-I")
        .arg(w.path("hosts.csv"))
        .args(["-q", "-o"])
        .arg(w.path("never"))
        .arg("--waivers")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    let b = bad.display();
    let err = stderr(&o);
    let want = [
        format!("flowaudit: {b}:3: client: \"10.1.0.300\" is not an address, a CIDR block, role:ROLE or *"),
        format!("flowaudit: {b}:5: no owner given"),
        format!("flowaudit: {b}:5: expires: \"2026-02-30\" is not a calendar day"),
        format!("flowaudit: {b}:6: ports: icmp has no ports; use *"),
        format!("flowaudit: {b}:7: expected 7 columns (client,server,proto,ports,reason,owner,expires); found 3"),
    ];
    assert_eq!(err.lines().collect::<Vec<_>>(), want, "{err}");
    assert!(!w.path("never").exists());
}

#[test]
fn not_an_audit_or_another_schema_is_an_error() {
    let w = Work::new();
    assert_eq!(w.audit("base", BASELINE, &[]), 0);
    let copy = |name: &str| {
        let d = w.path(name);
        std::fs::create_dir(&d).unwrap();
        for f in std::fs::read_dir(w.path("base")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), d.join(f.file_name())).unwrap();
        }
        d
    };
    let check = |dir: &str, want: &str| {
        let o = w.diff("base", dir, "x", &["--fail-on", "any-change"]);
        assert_eq!(code(&o), 2, "{dir}");
        assert!(stderr(&o).contains(want), "{dir}: {}", stderr(&o));
        assert!(!w.path("x.csv").exists(), "{dir}: no diff written");
        assert!(!w.path("x.md").exists(), "{dir}: no summary written");
    };
    // A directory that is not an audit.
    std::fs::create_dir(w.path("empty")).unwrap();
    check(
        "empty",
        "empty: not an audit report directory: it has no manifest.json",
    );
    check("missing", "missing: no such directory");
    check("hosts.csv", "hosts.csv: not a directory");
    // Another schema version: an audit of schema 1 (per-pair findings) is refused, not misread.
    let v1 = copy("v1");
    let m = std::fs::read_to_string(v1.join("manifest.json")).unwrap();
    std::fs::write(
        v1.join("manifest.json"),
        m.replace("\"schema_version\": 4", "\"schema_version\": 1"),
    )
    .unwrap();
    check(
        "v1",
        "v1: reports of schema version 1, but this command reads schema versions 2, 3 and 4: \
         re-run the audit of that capture with this flowaudit",
    );
    // Schema 2 wrote the same columns with epoch seconds for times: a baseline of schema 2
    // diffs against this audit, and nothing changed.
    let v2 = copy("v2");
    std::fs::write(
        v2.join("manifest.json"),
        m.replace("\"schema_version\": 4", "\"schema_version\": 2"),
    )
    .unwrap();
    common::duration_to_last_seen(&v2.join("services.csv"));
    for f in ["services.csv", "rules.csv", "findings.csv"] {
        common::iso_to_epoch_seconds(&v2.join(f));
    }
    assert!(std::fs::read_to_string(v2.join("services.csv"))
        .unwrap()
        .contains(",1767225600.000000000,"));
    let o = w.diff("v2", "base", "v2-base", &["--fail-on", "any-change"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(w.path("v2-base.csv")).unwrap(),
        DIFF_COLUMNS_LINE
    );
    // Some other tool's manifest.
    let other = copy("other");
    std::fs::write(
        other.join("manifest.json"),
        "{\"tool\": \"other\", \"schema_version\": 1}",
    )
    .unwrap();
    check("other", "not the manifest of a flowaudit audit");
    let broken = copy("broken");
    std::fs::write(broken.join("manifest.json"), "schema_version = 1").unwrap();
    check("broken", "manifest.json: not valid JSON");
    // A report file missing, or without the columns of this schema.
    let nosvc = copy("nosvc");
    std::fs::remove_file(nosvc.join("services.csv")).unwrap();
    check("nosvc", "services.csv: cannot read");
    let cols = copy("cols");
    let s = std::fs::read_to_string(cols.join("services.csv")).unwrap();
    std::fs::write(
        cols.join("services.csv"),
        s.replacen(",verdict,", ",status,", 1),
    )
    .unwrap();
    check(
        "cols",
        "services.csv: no \"verdict\" column: not a flowaudit audit report of schema version 4",
    );
    let val = copy("val");
    let s = std::fs::read_to_string(val.join("services.csv")).unwrap();
    std::fs::write(
        val.join("services.csv"),
        s.replacen(",documented,", ",fine,", 1),
    )
    .unwrap();
    check(
        "val",
        "services.csv:2: \"fine\" is not a verdict; use documented, role-mismatch, reverse, \
         unknown-host, undocumented",
    );
    // The baseline is checked too.
    let o = w.diff("empty", "base", "x", &[]);
    assert_eq!(code(&o), 2);
}

#[test]
fn dates_and_waiver_matching() {
    // Civil dates.
    let d = |s: &str| Date::parse(s).unwrap();
    assert_eq!(d("1970-01-01").days(), 0);
    assert_eq!(d("2026-01-01").days(), 20_454);
    assert_eq!(Date::from_days(20_454), d("2026-01-01"));
    assert_eq!(d("2024-02-29").days() + 1, d("2024-03-01").days());
    assert_eq!(d("2000-02-29").days_until(d("2001-02-28")), 365);
    for n in [-800_000, -1, 0, 59, 60, 11_016, 20_454, 2_932_896] {
        assert_eq!(Date::from_days(n).days(), n);
    }
    assert_eq!(d("2026-01-05").to_string(), "2026-01-05");
    for bad in [
        "2025-02-29",
        "1900-02-29",
        "2026-13-01",
        "2026-04-31",
        "2026-1-05",
        "26-01-05",
        "2026/01/05",
        "2026-01-00",
        "",
    ] {
        assert!(Date::parse(bad).is_err(), "{bad}");
    }
    assert!(d("2026-01-09") < d("2026-01-10") && d("2025-12-31") < d("2026-01-01"));
    let today = Date::today_utc();
    assert!(today >= d("2025-01-01"), "{today}");

    // Matching.
    let roles = Roles::builtin();
    let text = "# header-less is fine too
10.1.0.0/24,*,udp,53,dns,net,2026-03-01
*,role:server,tcp,9000-9010;9100,tools,ops,2026-02-01
*,role:server,tcp,9005,tools extended,ops,2026-04-01
*,10.1.0.7,*,*,anything to .7,sec,2026-01-01
2001:db8::/32,*,icmp,*,ping,net,2026-06-01
";
    let w = Waivers::parse("w.csv", text, &roles).unwrap();
    assert_eq!(w.list.len(), 5);
    assert_eq!(w.list[0].line, 2);
    let server = vec!["backup-server".to_string(), "server".to_string()];
    let none: Vec<String> = Vec::new();
    let svc = |c: &str, s: &str, proto: &'static str, port: Option<u16>, sr: &Vec<String>| {
        let a = |x: &str| Addr::from(x.parse::<std::net::IpAddr>().unwrap());
        (a(c), a(s), proto, port, sr.clone())
    };
    let find = |t: &(Addr, Addr, &str, Option<u16>, Vec<String>), today: &str| {
        w.find(
            &ServiceRef {
                client: t.0,
                server: t.1,
                proto: t.2,
                port: t.3,
                client_roles: &none,
                server_roles: &t.4,
            },
            d(today),
        )
        .map(|m| m.to_string())
    };
    let dns = svc("10.1.0.9", "8.8.8.8", "udp", Some(53), &none);
    assert_eq!(
        find(&dns, "2026-01-05").as_deref(),
        Some("waived until 2026-03-01 by net: dns")
    );
    assert_eq!(
        find(
            &svc("10.2.0.9", "8.8.8.8", "udp", Some(53), &none),
            "2026-01-05"
        ),
        None
    );
    assert_eq!(
        find(
            &svc("10.1.0.9", "8.8.8.8", "tcp", Some(53), &none),
            "2026-01-05"
        ),
        None
    );
    // By role, in a port list: 9100 matches the first only.
    let t9100 = svc("10.9.9.9", "10.8.8.8", "tcp", Some(9100), &server);
    assert_eq!(
        find(&t9100, "2026-01-05").as_deref(),
        Some("waived until 2026-02-01 by ops: tools")
    );
    assert_eq!(
        find(
            &svc("10.9.9.9", "10.8.8.8", "tcp", Some(9100), &none),
            "2026-01-05"
        ),
        None
    );
    // Two waivers in force: the one lasting longest. After it expires, the most recent one.
    let t9005 = svc("10.9.9.9", "10.8.8.8", "tcp", Some(9005), &server);
    assert_eq!(
        find(&t9005, "2026-01-05").as_deref(),
        Some("waived until 2026-04-01 by ops: tools extended")
    );
    assert_eq!(
        find(&t9005, "2026-04-01").as_deref(),
        Some("EXPIRED on 2026-04-01, was waived by ops: tools extended")
    );
    // 9100 is in the first of the two only.
    assert_eq!(
        find(&t9100, "2026-02-01").as_deref(),
        Some("EXPIRED on 2026-02-01, was waived by ops: tools")
    );
    // `*` ports match services without ports; a CIDR matches IPv6 too.
    let ping6 = svc("2001:db8::1", "2001:db8::2", "icmp", None, &none);
    assert_eq!(
        find(&ping6, "2026-01-05").as_deref(),
        Some("waived until 2026-06-01 by net: ping")
    );
    assert_eq!(
        find(
            &svc("10.1.0.1", "10.1.0.7", "gre", None, &none),
            "2025-12-31"
        )
        .as_deref(),
        Some("waived until 2026-01-01 by sec: anything to .7")
    );
    // Expiring within 30 days of 2026-01-05: line 3 (in 27 days); line 5 has expired already.
    let soon: Vec<u64> = w.expiring(d("2026-01-05")).iter().map(|x| x.line).collect();
    assert_eq!(soon, [3]);
    let soon: Vec<u64> = w.expiring(d("2026-02-01")).iter().map(|x| x.line).collect();
    assert_eq!(soon, [2]);
    let gone: Vec<u64> = w.expired(d("2026-02-01")).iter().map(|x| x.line).collect();
    assert_eq!(gone, [3, 5]);
}

/// diff.md folds info-level rows under `<details>` (a pull-request comment shows what needs a
/// look first), and an audit without --baseline removes the diff.csv and diff.md an earlier
/// run left in its report directory.
#[test]
fn info_rows_are_folded_and_a_reused_directory_loses_its_stale_diff() {
    let w = Work::new();
    assert_eq!(w.audit("base", BASELINE, &[]), 0);
    assert_eq!(w.audit("cur", CURRENT, &[]), 0);
    let o = w.diff("base", "cur", "d", &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let md = std::fs::read_to_string(w.path("d.md")).unwrap();
    // forward_rows' three new findings: high and medium listed, the info one folded.
    let findings = format!(
        "### New findings (3)\n\n\
         - **high** documented-refused: {S_6160} (rule VBR-002)\n\
         - **medium** undocumented: {S_3306}\n\n\
         <details><summary>1 info-level row</summary>\n\n\
         - **info** unused-rule: {R_036}\n\n\
         </details>\n"
    );
    assert!(md.contains(&findings), "missing\n{findings}\nin\n{md}");
    // A section of info rows only is folded whole.
    let unused = format!(
        "### Rules newly unused (1)\n\n\
         <details><summary>1 info-level row</summary>\n\n\
         - {R_036}: used → unused [info unused-rule]\n\n\
         </details>\n"
    );
    assert!(md.contains(&unused), "missing\n{unused}\nin\n{md}");
    // Rows without a severity (hosts, services without a finding) stay listed.
    assert!(
        md.contains("### Hosts no longer seen (1)\n\n- admin01 (10.1.0.5)"),
        "{md}"
    );

    let base = w.path("base").display().to_string();
    assert_eq!(w.audit("cur", CURRENT, &["--baseline", &base]), 0);
    assert!(w.path("cur/diff.csv").exists() && w.path("cur/diff.md").exists());
    assert_eq!(w.audit("cur", CURRENT, &[]), 0);
    assert!(!w.path("cur/diff.csv").exists(), "stale diff.csv removed");
    assert!(!w.path("cur/diff.md").exists(), "stale diff.md removed");
    assert!(w.path("cur/findings.csv").exists());
}

/// A refused connection whose verdict changed (an inventory fix: proxy01 is a Linux repository
/// after all) is still refused: its finding changed kind, it is not resolved. VBR-002 documents
/// 6160 from a backup server to a Windows server only, so 10.1.0.10 -> 10.1.0.20 tcp/6160 is
/// documented-refused (high) in the baseline and role-mismatch (medium) in the current audit.
#[test]
fn a_still_refused_service_whose_verdict_changed_is_not_resolved() {
    let w = Work::new();
    let plan: &Plan = &[(10, 20, 6160, Refused), (10, 20, 6162, Complete)];
    assert_eq!(w.audit("base", plan, &[]), 0);
    let fixed = DEMO_INVENTORY.replace(
        "10.1.0.20,backup-proxy;windows-server,proxy01",
        "10.1.0.20,backup-repository;linux-server,proxy01",
    );
    assert_ne!(fixed, DEMO_INVENTORY);
    w.write("hosts.csv", &fixed);
    assert_eq!(w.audit("cur", plan, &[]), 0);
    let o = w.diff("base", "cur", "d", &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows = w.rows("d.csv");
    let subject = "vbr01 -> proxy01 tcp/6160";
    let about: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|r| {
            r[1] == subject || r[1].starts_with("vbr01 (10.1.0.10) -> proxy01 (10.1.0.20) tcp/6160")
        })
        .map(|r| (r[0].as_str(), r[8].as_str(), r[9].as_str()))
        .collect();
    assert_eq!(
        about,
        [
            ("verdict-changed", "documented", "role-mismatch"),
            (
                "finding-kind-changed",
                "documented-refused (high)",
                "role-mismatch (medium)"
            ),
        ],
        "{rows:?}"
    );
    // Its rules: role-mismatch lists the closest rules on the port, VBR-002 (the one that
    // documents 6160 to Windows servers) first; diff.md shows them, three at most.
    let changed = rows
        .iter()
        .find(|r| r[0] == "finding-kind-changed")
        .unwrap();
    let ids: Vec<&str> = changed[6].split(';').collect();
    assert_eq!(ids[0], "VBR-002", "{changed:?}");
    assert!(ids.len() <= 3, "{changed:?}");
    let md = std::fs::read_to_string(w.path("d.md")).unwrap();
    assert!(
        md.contains(&format!(
            "### Findings that changed kind (not resolved) (1)\n\n- {subject}: documented-refused (high) → role-mismatch (medium) (rules {}) [medium role-mismatch]\n",
            ids.join(", ")
        )),
        "{md}"
    );
    let resolved = md.split("### Resolved findings").nth(1).unwrap_or("");
    let resolved = resolved.split("\n### ").next().unwrap();
    assert!(!resolved.contains(subject), "{md}");
}
