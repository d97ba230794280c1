//! The audit report directory: flows.csv, services.csv, rules.csv, findings.csv, summary.md and
//! manifest.json (schema version). Every file is written atomically.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use super::flows::{write_flows, Format};
use super::{format_ts, safe_cell, AtomicFile, SCHEMA_VERSION};
use crate::audit::{service_label, Audit, Outcome, Severity, Verdict};
use crate::decode::proto;
use crate::run::RunOutput;
use crate::waiver::{describe, Date, Mark, Waivers};

pub const SERVICES_COLUMNS: &[&str] = &[
    "client_addr",
    "client_name",
    "client_roles",
    "server_addr",
    "server_name",
    "server_roles",
    "server_dns",
    "proto",
    "server_port",
    "verdict",
    "outcome",
    "rule_ids",
    "unknown_end",
    "needed_roles",
    "flows",
    "established",
    "refused",
    "unanswered",
    "packets",
    "bytes",
    "first_seen",
    "last_seen",
    "direction_basis",
];

pub const RULES_COLUMNS: &[&str] = &[
    "rule_id",
    "product",
    "section",
    "from_role",
    "to_role",
    "proto",
    "ports",
    "qualifiers",
    "client",
    "client_name",
    "server",
    "server_name",
    "status",
    "flows",
    "bytes",
    "ports_seen",
    "suggested_range",
];

pub const INVENTORY_COLUMNS: &[&str] = &["address", "roles", "name"];

pub const FINDINGS_COLUMNS: &[&str] = &[
    "severity", "kind", "subject", "reason", "evidence", "waiver",
];

/// Waivers applied to an audit: the file, the date they were judged on, and one mark per
/// finding (in the order of `Audit::findings`).
pub struct WaiverReport<'a> {
    pub waivers: &'a Waivers,
    pub marks: &'a [Option<Mark>],
    pub today: Date,
}

fn csv_file(
    dir: &Path,
    name: &str,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> io::Result<()> {
    let mut f = AtomicFile::create(&dir.join(name))?;
    {
        let mut w = csv::Writer::from_writer(&mut f);
        w.write_record(header)?;
        for row in rows {
            w.write_record(row.iter().map(|c| safe_cell(c).into_owned()))?;
        }
        w.flush()?;
    }
    f.commit()
}

pub fn write_audit(dir: &Path, a: &Audit, run: &RunOutput, inputs: &[String]) -> io::Result<()> {
    write_audit_with(dir, a, run, inputs, None)
}

/// [`write_audit`] with waivers: findings.csv's `waiver` column is filled and summary.md gets a
/// Waivers section.
pub fn write_audit_with(
    dir: &Path,
    a: &Audit,
    run: &RunOutput,
    inputs: &[String],
    waivers: Option<&WaiverReport>,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = AtomicFile::create(&dir.join("flows.csv"))?;
    write_flows(&mut f, a.oriented(&run.flows), Format::Csv)?;
    f.commit()?;
    csv_file(
        dir,
        "services.csv",
        SERVICES_COLUMNS,
        a.services.iter().map(|s| {
            vec![
                s.key.client.to_string(),
                s.client_name.clone(),
                s.client_roles.join(";"),
                s.key.server.to_string(),
                s.server_name.clone(),
                s.server_roles.join(";"),
                s.server_dns.join(";"),
                proto::name(s.key.proto).into_owned(),
                if proto::has_ports(s.key.proto) {
                    s.key.port.to_string()
                } else {
                    String::new()
                },
                s.verdict.as_str().into(),
                s.outcome.as_str().into(),
                s.rule_ids.join(";"),
                s.unknown_end.into(),
                s.needed_roles
                    .iter()
                    .map(|(a, b)| format!("{a}>{b}"))
                    .collect::<Vec<_>>()
                    .join(";"),
                s.flows.to_string(),
                s.established.to_string(),
                s.refused.to_string(),
                s.unanswered.to_string(),
                s.packets.to_string(),
                s.bytes.to_string(),
                format_ts(s.first_ts),
                format_ts(s.last_ts),
                s.bases
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(";"),
            ]
        }),
    )?;
    csv_file(
        dir,
        "rules.csv",
        RULES_COLUMNS,
        a.rules.iter().map(|u| {
            vec![
                u.rule.id.clone(),
                u.rule.product.clone(),
                u.rule.section.clone(),
                u.rule.from_role.clone(),
                u.rule.to_role.clone(),
                u.rule.protocols_str(),
                u.rule.ports_str(),
                u.rule.qualifiers_str(),
                u.client.clone(),
                u.client_name.clone(),
                u.server.clone(),
                u.server_name.clone(),
                if u.used() { "used" } else { "unused" }.into(),
                u.flows.to_string(),
                u.bytes.to_string(),
                compress_ports(&u.ports_seen),
                u.suggested().map(|r| r.to_string()).unwrap_or_default(),
            ]
        }),
    )?;
    csv_file(
        dir,
        "findings.csv",
        FINDINGS_COLUMNS,
        a.findings.iter().enumerate().map(|(i, f)| {
            vec![
                f.severity.as_str().into(),
                f.kind.into(),
                f.subject.clone(),
                f.reason.clone(),
                f.evidence.clone(),
                waivers
                    .and_then(|w| w.marks.get(i).cloned().flatten())
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            ]
        }),
    )?;
    csv_file(
        dir,
        "inventory.csv",
        INVENTORY_COLUMNS,
        a.inventory
            .iter()
            .map(|e| vec![e.cidr.to_string(), e.roles.join(";"), e.name.clone()]),
    )?;
    let mut m = AtomicFile::create(&dir.join("summary.md"))?;
    let mut text = summary_md(a, run, inputs);
    if let Some(w) = waivers {
        text.push_str(&waivers_md(a, w));
    }
    m.write_all(text.as_bytes())?;
    m.commit()?;
    let mut j = AtomicFile::create(&dir.join("manifest.json"))?;
    serde_json::to_writer_pretty(
        &mut j,
        &serde_json::json!({
            "tool": "flowaudit",
            "kind": "audit",
            "schema_version": SCHEMA_VERSION,
            "files": ["flows.csv", "services.csv", "rules.csv", "findings.csv", "inventory.csv", "summary.md"],
        }),
    )?;
    j.write_all(b"\n")?;
    j.commit()
}

/// `1;2;3;7` -> `1-3;7`.
pub fn compress_ports(p: &std::collections::BTreeSet<u16>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = p.iter().copied().peekable();
    while let Some(lo) = it.next() {
        let mut hi = lo;
        while it.peek() == Some(&(hi.wrapping_add(1))) && hi != u16::MAX {
            hi = it.next().unwrap();
        }
        out.push(if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        });
    }
    out.join(";")
}

fn summary_md(a: &Audit, run: &RunOutput, inputs: &[String]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# flowaudit audit\n");
    let _ = writeln!(
        t,
        "Schema version {SCHEMA_VERSION}. Inputs: {}.\n",
        inputs.join(", ")
    );
    let s = &run.stats;
    let _ = writeln!(
        t,
        "{} packets, {} flows, {} services.\n",
        s.packets,
        a.flow_count,
        a.services.len()
    );
    let _ = writeln!(t, "## Services by verdict\n\n| verdict | services | established | refused | unanswered |\n|---|---|---|---|---|");
    for v in Verdict::ALL {
        let of: Vec<_> = a.services.iter().filter(|s| s.verdict == v).collect();
        let n = |o: Outcome| of.iter().filter(|s| s.outcome == o).count();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            v.as_str(),
            of.len(),
            n(Outcome::Established),
            n(Outcome::Refused),
            n(Outcome::Unanswered)
        );
    }
    let _ = writeln!(t, "\n## Findings\n\n| severity | count |\n|---|---|");
    for sev in [
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ] {
        let _ = writeln!(
            t,
            "| {} | {} |",
            sev.as_str(),
            a.findings.iter().filter(|f| f.severity == sev).count()
        );
    }
    let top: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Low)
        .take(15)
        .collect();
    if !top.is_empty() {
        let _ = writeln!(t, "\nTop findings:\n");
        for f in top {
            let _ = writeln!(
                t,
                "- **{}** {}: {} — {}",
                f.severity.as_str(),
                f.kind,
                md(&f.subject),
                md(&f.reason)
            );
        }
    }
    let _ = writeln!(t, "\n## Coverage per product\n\n| product | rule instances | used | unused |\n|---|---|---|---|");
    let mut products: Vec<&str> = a.rules.iter().map(|u| u.rule.product.as_str()).collect();
    products.sort();
    products.dedup();
    for p in products {
        let of: Vec<_> = a.rules.iter().filter(|u| u.rule.product == p).collect();
        let used = of.iter().filter(|u| u.used()).count();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} |",
            md(p),
            of.len(),
            used,
            of.len() - used
        );
    }
    let _ = writeln!(t, "\n## What this capture could not show\n");
    let c = &a.caveats;
    let mut any = false;
    if c.one_sided() {
        any = true;
        let _ = writeln!(t, "- {} of {} TCP flows were seen in one direction only: the mirror was probably one-sided, so `unanswered` outcomes and `unused` rules are weak evidence.", c.one_sided_tcp, c.tcp_flows);
    }
    if s.evicted_flows > 0 {
        any = true;
        let _ = writeln!(t, "- {} flows were evicted because the flow table was full (--max-flows); their counts may be split.", s.evicted_flows);
    }
    if s.skipped_total() > 0 {
        any = true;
        let _ = writeln!(t, "- {} packets made no flow:", s.skipped_total());
        for (r, n) in &s.skipped {
            let _ = writeln!(t, "  - {n}: {}", r.label());
        }
        if s.reader_skipped > 0 {
            let _ = writeln!(t, "  - {}: records the capture file could not attribute (e.g. an undefined pcapng interface)", s.reader_skipped);
        }
    }
    if !run.errors.is_empty() || !s.warnings.is_empty() {
        any = true;
        for e in &run.errors {
            let _ = writeln!(t, "- The capture is damaged: {}", md(&e.to_string()));
        }
        for (f, w) in &s.warnings {
            let _ = writeln!(t, "- {}: byte {}: {}", md(f), w.offset, md(&w.detail));
        }
    }
    if !any {
        let _ = writeln!(
            t,
            "- Nothing noted: both directions were seen and every packet was decoded."
        );
    }
    let _ = writeln!(t, "\nA rule never seen in one capture window may still be needed by jobs that did not run in it (restores, upgrades, monthly jobs).");
    let _ = service_label;
    t
}

/// The summary's Waivers section: waived findings, findings whose waiver expired, and waivers
/// that expire soon or have expired.
fn waivers_md(a: &Audit, w: &WaiverReport) -> String {
    let mut t = String::new();
    let marked: Vec<_> = a
        .findings
        .iter()
        .zip(w.marks)
        .filter_map(|(f, m)| m.as_ref().map(|m| (f, m)))
        .collect();
    let waived = marked.iter().filter(|(_, m)| !m.expired).count();
    let _ = writeln!(
        t,
        "\n## Waivers\n\nWaivers from {} judged on {}: waived findings (they do not count for --fail-on): {}; findings whose waiver expired (they count again): {}.\n",
        md(&w.waivers.file),
        w.today,
        waived,
        marked.len() - waived
    );
    if !marked.is_empty() {
        let _ = writeln!(t, "| severity | finding | waiver |\n|---|---|---|");
        for (f, m) in &marked {
            let _ = writeln!(
                t,
                "| {} | {}: {} | {} |",
                f.severity.as_str(),
                f.kind,
                md(&f.subject),
                md(&m.to_string())
            );
        }
        t.push('\n');
    }
    let soon = w.waivers.expiring(w.today);
    if soon.is_empty() {
        let _ = writeln!(
            t,
            "No waiver expires within {} days.",
            crate::waiver::EXPIRY_WARNING_DAYS
        );
    } else {
        let _ = writeln!(
            t,
            "Waivers expiring within {} days:\n",
            crate::waiver::EXPIRY_WARNING_DAYS
        );
        for x in soon {
            let _ = writeln!(t, "- {}", md(&describe(x, &w.waivers.file, w.today)));
        }
    }
    let gone = w.waivers.expired(w.today);
    if !gone.is_empty() {
        let _ = writeln!(t, "\nExpired waivers (renew or remove them):\n");
        for x in gone {
            let _ = writeln!(t, "- {}", md(&describe(x, &w.waivers.file, w.today)));
        }
    }
    t
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
