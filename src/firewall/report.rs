//! What the firewall check writes into the report directory: firewall.csv (one row per rule),
//! firewall_services.csv (one row per service: which rule decided it), a section of summary.md
//! and rows of findings.csv. Every file is replaced atomically; running the check again
//! replaces its own rows and section instead of adding to them.

use crate::csvtext::md_cell as md;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use super::check::{entry_text, position, Check, RuleVerdict};
use super::eval::{Trace, Verdict};
use super::input::{AuditDir, Service};
use super::model::Ruleset;
use crate::report::{safe_cell, AtomicFile};

pub const FIREWALL_COLUMNS: &[&str] = &[
    "position",
    "chain",
    "index",
    "handle",
    "text",
    "action",
    "verdict",
    "services",
    "flows",
    "bytes",
    "new_services",
    "established_services",
    "covering_ports",
    "covering_clients",
    "covering_servers",
    "reason",
    "counter_packets",
    "counter_bytes",
    "origin",
];

pub const FIREWALL_SERVICES_COLUMNS: &[&str] = &[
    "client_addr",
    "server_addr",
    "proto",
    "server_port",
    "verdict",
    "outcome",
    "flows",
    "bytes",
    "decision",
    "decided_by",
    "decided_by_text",
    "established",
    "path",
    "note",
];

/// findings.csv kinds this check writes (and replaces when run again).
pub const KIND_PREFIX: &str = "firewall-";

/// The heading of the summary.md section (replaced when the check runs again).
pub const SUMMARY_HEADING: &str = "## Firewall ruleset";

fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
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

pub fn write_firewall_csv(dir: &Path, check: &Check) -> io::Result<()> {
    let rows: Vec<Vec<String>> = check
        .rows
        .iter()
        .map(|r| {
            vec![
                r.position.clone(),
                r.chain.clone(),
                r.index.clone(),
                r.handle.clone(),
                r.text.clone(),
                r.action.clone(),
                r.verdict.as_str().into(),
                r.services.to_string(),
                r.flows.to_string(),
                r.bytes.to_string(),
                r.new_services.to_string(),
                r.established_services.to_string(),
                r.covering_ports.clone(),
                r.covering_clients.clone(),
                r.covering_servers.clone(),
                r.reason.clone(),
                r.counter.map(|c| c.0.to_string()).unwrap_or_default(),
                r.counter.map(|c| c.1.to_string()).unwrap_or_default(),
                r.origin.clone(),
            ]
        })
        .collect();
    write_csv(&dir.join("firewall.csv"), FIREWALL_COLUMNS, &rows)
}

/// `accept`, `drop`, `not-evaluated` or `not-filtered`, for a trace.
fn decision(t: &Trace) -> &'static str {
    t.verdict.as_str()
}

fn established_cell(rs: &Ruleset, e: &Option<(Trace, Trace)>) -> String {
    match e {
        None => String::new(),
        Some((o, r)) => {
            let one = |t: &Trace| match (&t.verdict, t.by) {
                (Verdict::Drop | Verdict::NotEvaluated(_), Some(at)) => {
                    format!("{} at {}", decision(t), position(rs, at))
                }
                _ => decision(t).to_string(),
            };
            format!("out {}; back {}", one(o), one(r))
        }
    }
}

/// Why the service's row matters, in words.
fn note(rs: &Ruleset, s: &Service, t: &Trace, est: &Option<(Trace, Trace)>) -> String {
    let at = t.by.map(|a| position(rs, a)).unwrap_or_default();
    match (&t.verdict, s.documented()) {
        (Verdict::Drop, true) if s.outcome == "established" => format!(
            "the ruleset drops this documented service at {at}, yet the capture shows it established: the capture was not taken behind this firewall, or another ruleset ran"
        ),
        (Verdict::Drop, true) => format!(
            "the ruleset drops this documented service at {at}: that explains the {} outcome",
            s.outcome
        ),
        (Verdict::Drop, false) => format!("dropped at {at}"),
        (Verdict::Accept, false) => format!(
            "the ruleset lets this {} service through (decided at {at})",
            s.verdict
        ),
        (Verdict::Accept, true) if s.outcome != "established" => {
            let back = est.as_ref().filter(|(o, r)| {
                o.verdict != Verdict::Accept || r.verdict != Verdict::Accept
            });
            match back {
                Some(_) => "the ruleset accepts the first packet but not the rest of the connection".into(),
                None => format!(
                    "the ruleset accepts it: the {} outcome comes from elsewhere (the server, another firewall)",
                    s.outcome
                ),
            }
        }
        (Verdict::NotEvaluated(why), _) => format!("cannot be decided at {at}: {why}"),
        (Verdict::NotFiltered, _) => {
            "no evaluated chain sees this address family: the ruleset does not filter it".into()
        }
        _ => String::new(),
    }
}

pub fn write_services_csv(
    dir: &Path,
    rs: &Ruleset,
    audit: &AuditDir,
    check: &Check,
) -> io::Result<()> {
    let rows: Vec<Vec<String>> = audit
        .services
        .iter()
        .zip(&check.results)
        .map(|(s, r)| {
            vec![
                s.client.to_string(),
                s.server.to_string(),
                s.proto_name.clone(),
                s.port.map(|p| p.to_string()).unwrap_or_default(),
                s.verdict.clone(),
                s.outcome.clone(),
                s.flows.to_string(),
                s.bytes.to_string(),
                decision(&r.new).into(),
                r.new.by.map(|a| position(rs, a)).unwrap_or_default(),
                r.new.by.map(|a| entry_text(rs, a)).unwrap_or_default(),
                established_cell(rs, &r.established),
                r.new
                    .matched
                    .iter()
                    .map(|a| position(rs, *a))
                    .collect::<Vec<_>>()
                    .join(";"),
                note(rs, s, &r.new, &r.established),
            ]
        })
        .collect();
    write_csv(
        &dir.join("firewall_services.csv"),
        FIREWALL_SERVICES_COLUMNS,
        &rows,
    )
}

/// One findings.csv row: severity, kind, subject, reason, evidence.
pub type FindingRow = [String; 5];

pub fn findings(rs: &Ruleset, audit: &AuditDir, check: &Check) -> Vec<FindingRow> {
    let mut out: Vec<FindingRow> = Vec::new();
    for (s, r) in audit.services.iter().zip(&check.results) {
        if s.documented() && r.new.verdict == Verdict::Drop {
            let at = r.new.by.expect("a drop is decided somewhere");
            out.push([
                "high".into(),
                "firewall-drops-documented".into(),
                s.label.clone(),
                note(rs, s, &r.new, &r.established),
                format!(
                    "{}: {}; outcome {}; {} flows",
                    position(rs, at),
                    entry_text(rs, at),
                    s.outcome,
                    s.flows
                ),
            ]);
        }
    }
    for row in &check.rows {
        let (sev, kind) = match row.verdict {
            RuleVerdict::AllowsUndocumented => ("medium", "firewall-allows-undocumented"),
            RuleVerdict::TooWide => ("low", "firewall-too-wide"),
            RuleVerdict::Unused => ("info", "firewall-unused-rule"),
            RuleVerdict::NotEvaluated => ("info", "firewall-not-evaluated"),
            RuleVerdict::Needed | RuleVerdict::DropsDocumented => continue,
        };
        let evidence = if row.verdict == RuleVerdict::TooWide {
            format!(
                "{} services, {} flows, {} bytes; covering ports {}; clients {}; servers {}",
                row.services,
                row.flows,
                row.bytes,
                empty_dash(&row.covering_ports),
                row.covering_clients,
                row.covering_servers
            )
        } else {
            format!(
                "{} services, {} flows, {} bytes",
                row.services, row.flows, row.bytes
            )
        };
        out.push([
            sev.into(),
            kind.into(),
            format!("firewall {}: {}", row.position, row.text),
            row.reason.clone(),
            evidence,
        ]);
    }
    out
}

fn empty_dash(s: &str) -> &str {
    if s.is_empty() {
        "(none)"
    } else {
        s
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "high" => 0,
        "medium" => 1,
        "low" => 2,
        _ => 3,
    }
}

/// Re-writes findings.csv with this check's rows in place of any it wrote before: its columns
/// kept as they are (unknown ones included), sorted by severity (high first), stable.
pub fn merge_findings(dir: &Path, new: &[FindingRow]) -> Result<(), String> {
    let path = dir.join("findings.csv");
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("{shown}: not valid CSV: {e}"))?
        .iter()
        .map(String::from)
        .collect();
    let col = |n: &str| header.iter().position(|h| h == n);
    let (sev, kind) = match (col("severity"), col("kind")) {
        (Some(s), Some(k)) => (s, k),
        _ => {
            return Err(format!(
                "{shown}: no severity and kind columns: not an audit's findings.csv"
            ))
        }
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| format!("{shown}: not valid CSV: {e}"))?;
        let mut row: Vec<String> = rec.iter().map(String::from).collect();
        row.resize(header.len(), String::new());
        if !row[kind].starts_with(KIND_PREFIX) {
            rows.push(row);
        }
    }
    let names = ["severity", "kind", "subject", "reason", "evidence"];
    for f in new {
        let mut row = vec![String::new(); header.len()];
        for (n, v) in names.iter().zip(f) {
            if let Some(i) = col(n) {
                row[i] = v.clone();
            }
        }
        rows.push(row);
    }
    rows.sort_by_key(|r| severity_rank(&r[sev]));
    write_csv(
        &path,
        &header.iter().map(String::as_str).collect::<Vec<_>>(),
        &rows,
    )
    .map_err(|e| format!("{shown}: cannot write: {e}"))
}

/// The summary.md section.
pub fn summary_section(rs: &Ruleset, audit: &AuditDir, check: &Check) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "\n{SUMMARY_HEADING}\n");
    what_was_evaluated(&mut t, rs, check);
    count_tables(&mut t, audit, check);
    dropped_documented(&mut t, rs, audit, check);
    rules_to_look_at(&mut t, check);
    let skipped: Vec<&String> = rs.skipped.iter().chain(&audit.skipped).collect();
    if !skipped.is_empty() {
        let _ = writeln!(t, "\nSkipped input ({}):\n", skipped.len());
        for s in skipped.iter().take(20) {
            let _ = writeln!(t, "- {}", md(s));
        }
    }
    let _ = writeln!(
        t,
        "\nAn unused rule may still be needed by jobs that did not run in this window (restores, monthly jobs)."
    );
    t
}

/// The files read, the chains evaluated and not, and how services were evaluated.
fn what_was_evaluated(t: &mut String, rs: &Ruleset, check: &Check) {
    for s in &rs.sources {
        let _ = writeln!(t, "- Read {}", md(s));
    }
    let _ = writeln!(
        t,
        "- Evaluated chains: {}",
        if check.evaluated_chains.is_empty() {
            "none".to_string()
        } else {
            check.evaluated_chains.join(", ")
        }
    );
    if !check.other_chains.is_empty() {
        let _ = writeln!(
            t,
            "- Not evaluated (another hook, not a filter chain, or not reached; choose with --firewall-chain): {}",
            check.other_chains.join(", ")
        );
    }
    let _ = writeln!(
        t,
        "- Each service's first packet is evaluated as ct state new; when it was answered, its later packets both ways as ct state established.\n"
    );
}

/// Rules per verdict, and services (documented among them) per decision.
fn count_tables(t: &mut String, audit: &AuditDir, check: &Check) {
    let _ = writeln!(t, "| rule verdict | rules |\n|---|---|");
    for v in RuleVerdict::ALL {
        let n = check.rows.iter().filter(|r| r.verdict == v).count();
        let _ = writeln!(t, "| {} | {n} |", v.as_str());
    }
    let _ = writeln!(
        t,
        "\n| service decision | services | documented |\n|---|---|---|"
    );
    for d in ["accept", "drop", "not-evaluated", "not-filtered"] {
        let of: Vec<&Service> = audit
            .services
            .iter()
            .zip(&check.results)
            .filter(|(_, r)| decision(&r.new) == d)
            .map(|(s, _)| s)
            .collect();
        let doc = of.iter().filter(|s| s.documented()).count();
        let _ = writeln!(t, "| {d} | {} | {doc} |", of.len());
    }
}

/// The first 20 documented services the ruleset drops, with the rule that drops each.
fn dropped_documented(t: &mut String, rs: &Ruleset, audit: &AuditDir, check: &Check) {
    let dropped: Vec<(&Service, &Trace)> = audit
        .services
        .iter()
        .zip(&check.results)
        .filter(|(s, r)| s.documented() && r.new.verdict == Verdict::Drop)
        .map(|(s, r)| (s, &r.new))
        .collect();
    if dropped.is_empty() {
        return;
    }
    let _ = writeln!(t, "\nDocumented services the ruleset drops:\n");
    for (s, tr) in dropped.iter().take(20) {
        let at = tr.by.map(|a| position(rs, a)).unwrap_or_default();
        let _ = writeln!(t, "- {} ({}) at {}", md(&s.label), s.outcome, md(&at));
    }
    if dropped.len() > 20 {
        let _ = writeln!(
            t,
            "- ... and {} more (firewall_services.csv)",
            dropped.len() - 20
        );
    }
}

/// The first 20 rules that let undocumented traffic through, are too wide or were not
/// evaluated.
fn rules_to_look_at(t: &mut String, check: &Check) {
    let listed: Vec<_> = check
        .rows
        .iter()
        .filter(|r| {
            matches!(
                r.verdict,
                RuleVerdict::AllowsUndocumented | RuleVerdict::TooWide | RuleVerdict::NotEvaluated
            )
        })
        .collect();
    if listed.is_empty() {
        return;
    }
    let _ = writeln!(t, "\nRules to look at:\n");
    for r in listed.iter().take(20) {
        let _ = writeln!(
            t,
            "- **{}** {}: `{}` — {}",
            r.verdict.as_str(),
            md(&r.position),
            r.text.replace('`', "'"),
            md(&r.reason)
        );
    }
    if listed.len() > 20 {
        let _ = writeln!(t, "- ... and {} more (firewall.csv)", listed.len() - 20);
    }
}

/// Appends the section to summary.md, replacing the one an earlier run appended.
pub fn append_summary(dir: &Path, section: &str) -> Result<(), String> {
    let path = dir.join("summary.md");
    let shown = path.display().to_string();
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    let marker = format!("\n{SUMMARY_HEADING}\n");
    if let Some(start) = text.find(&marker) {
        let after = start + marker.len();
        let end = text[after..]
            .find("\n## ")
            .map(|i| after + i)
            .unwrap_or(text.len());
        text.replace_range(start..end, "");
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(section);
    let mut f = AtomicFile::create(&path).map_err(|e| format!("{shown}: cannot write: {e}"))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.commit())
        .map_err(|e| format!("{shown}: cannot write: {e}"))
}
