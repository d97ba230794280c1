//! The audit report directory: flows.csv, services.csv, rules.csv, findings.csv, summary.md and
//! manifest.json (schema version). Every file is written atomically.

use crate::csvtext::md_cell as md;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use rayon::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

use super::flows::{write_flows, Format};
use super::rows::{columns, FindingsRow, GroupsRow, RuleStatus, RulesRow};
use super::{
    format_iso, push_addr, push_duration, push_int, push_iso, safe_cell, AtomicFile, SCHEMA_VERSION,
};
use crate::audit::hosts::Group;
use crate::audit::waiver::{describe, Date, Waivers};
use crate::audit::{Audit, Outcome, Service, Severity, Verdict, NO_WAIVER};
use crate::decode::proto;
use crate::engine::run::RunOutput;
use crate::flow::Basis;

pub const SERVICES_COLUMNS: &[&str] = &[
    "client_addr",
    "client_group",
    "server_addr",
    "server_group",
    "server_dns",
    "proto",
    "server_port",
    "verdict",
    "outcome",
    "rule_ids",
    "more_rules",
    "unknown_end",
    "flows",
    "established",
    "refused",
    "unanswered",
    "packets",
    "bytes",
    "first_seen",
    "duration",
    "direction_basis",
    "waiver",
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
    "server",
    "status",
    "host_pairs",
    "flows",
    "bytes",
    "first_seen",
    "last_seen",
    "ports_seen",
    "suggested_range",
];

pub const INVENTORY_COLUMNS: &[&str] = &["address", "roles", "name"];

pub const GROUPS_COLUMNS: &[&str] = &["group", "kind", "roles", "blocks"];

pub const FINDINGS_COLUMNS: &[&str] = &[
    "severity",
    "kind",
    "subject",
    "client_group",
    "server_group",
    "proto",
    "ports",
    "host_pairs",
    "flows",
    "bytes",
    "first_seen",
    "last_seen",
    "examples",
    "reason",
    "evidence",
    "waiver",
];

/// Waivers applied to an audit: the file and the date they were judged on (the marks are in
/// the audit's findings).
pub struct WaiverReport<'a> {
    pub waivers: &'a Waivers,
    pub today: Date,
}

/// What to write besides the reports every audit has.
#[derive(Default)]
pub struct WriteOptions<'a> {
    /// flows.csv: one row per flow (large; the services carry the per-host-pair evidence).
    pub flows: bool,
    pub waivers: Option<&'a WaiverReport<'a>>,
    /// services.jsonl, findings.jsonl, rules.jsonl, groups.jsonl beside the CSV files.
    pub jsonl: bool,
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
    write_audit_with(dir, a, run, inputs, &WriteOptions::default())
}

/// Writes every report of an audit into `dir`, each atomically.
pub fn write_audit_with(
    dir: &Path,
    a: &Audit,
    run: &RunOutput,
    inputs: &[String],
    opts: &WriteOptions,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut files = vec![
        "services.csv",
        "rules.csv",
        "findings.csv",
        "groups.csv",
        "inventory.csv",
        "summary.md",
        "report.html",
    ];
    if opts.flows {
        let mut f = AtomicFile::create(&dir.join("flows.csv"))?;
        write_flows(&mut f, a.oriented(&run.flows), Format::Csv)?;
        f.commit()?;
        files.insert(0, "flows.csv");
    } else {
        // A flows.csv of an earlier run in the same directory would not belong to this audit.
        match std::fs::remove_file(dir.join("flows.csv")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let mut f = AtomicFile::create(&dir.join("services.csv"))?;
    write_services(&mut f, a)?;
    // services.csv is most of the bytes: its flush to disk overlaps writing the other reports.
    let (services, others) =
        rayon::join(|| f.commit(), || small_reports(dir, a, run, inputs, opts));
    services?;
    others?;
    // Made from the CSV files just written, so the two can never disagree.
    if opts.jsonl {
        super::audit_jsonl::write_all(dir)?;
    } else {
        super::audit_jsonl::remove_stale(dir)?;
    }
    let mut files: Vec<String> = files.into_iter().map(String::from).collect();
    if opts.jsonl {
        files.extend(super::audit_jsonl::file_names());
    }
    let mut j = AtomicFile::create(&dir.join("manifest.json"))?;
    serde_json::to_writer_pretty(
        &mut j,
        &serde_json::json!({
            "tool": "flowaudit",
            "kind": "audit",
            "schema_version": SCHEMA_VERSION,
            "group_by": a.group_by.as_str(),
            "files": files,
        }),
    )?;
    j.write_all(b"\n")?;
    j.commit()
}

/// The reports besides flows.csv, services.csv, the JSON Lines files and manifest.json.
fn small_reports(
    dir: &Path,
    a: &Audit,
    run: &RunOutput,
    inputs: &[String],
    opts: &WriteOptions,
) -> io::Result<()> {
    write_rules(dir, a)?;
    write_findings(dir, a)?;
    write_groups(dir, a)?;
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
    if let Some(w) = opts.waivers {
        text.push_str(&waivers_md(a, w));
    }
    m.write_all(text.as_bytes())?;
    m.commit()?;
    super::html::write_html(dir, a, run, inputs)?;
    Ok(())
}

/// Appends a CSV cell: made safe for spreadsheets, quoted when it holds a separator or quote.
fn push_cell(buf: &mut Vec<u8>, s: &str) {
    let s = safe_cell(s);
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        buf.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

/// services.csv, formatted in parallel in chunks and written in order.
fn write_services(out: &mut dyn Write, a: &Audit) -> io::Result<()> {
    out.write_all(SERVICES_COLUMNS.join(",").as_bytes())?;
    out.write_all(b"\n")?;
    let groups: Vec<Vec<u8>> = a
        .hosts
        .groups
        .iter()
        .map(|g| {
            let mut b = Vec::new();
            push_cell(&mut b, &g.label);
            b
        })
        .collect();
    // Rule ids that need no quoting or escaping are written as they are (all built-in ones).
    let plain: Vec<bool> = a
        .catalog
        .rules
        .iter()
        .map(|r| {
            let mut b = Vec::new();
            push_cell(&mut b, &r.id);
            b == r.id.as_bytes() && !r.id.contains(';')
        })
        .collect();
    for block in a.services.chunks(1 << 16) {
        let parts: Vec<Vec<u8>> = block
            .par_chunks(4096)
            .map(|piece| {
                let mut buf = Vec::with_capacity(piece.len() * 160);
                for s in piece {
                    service_row(&mut buf, a, &groups, &plain, s);
                }
                buf
            })
            .collect();
        for p in parts {
            out.write_all(&p)?;
        }
    }
    Ok(())
}

fn service_row(buf: &mut Vec<u8>, a: &Audit, groups: &[Vec<u8>], plain: &[bool], s: &Service) {
    let (c, sv) = (a.hosts.get(s.key.client), a.hosts.get(s.key.server));
    push_addr(buf, c.addr);
    buf.push(b',');
    buf.extend_from_slice(&groups[c.group as usize]);
    buf.push(b',');
    push_addr(buf, sv.addr);
    buf.push(b',');
    buf.extend_from_slice(&groups[sv.group as usize]);
    buf.push(b',');
    let names = a.names_of(s.key.server);
    if !names.is_empty() {
        push_cell(buf, &names.join(";"));
    }
    buf.push(b',');
    buf.extend_from_slice(proto::name(s.key.proto).as_bytes());
    buf.push(b',');
    if proto::has_ports(s.key.proto) {
        push_int(buf, s.key.port);
    }
    buf.push(b',');
    buf.extend_from_slice(s.verdict.as_str().as_bytes());
    buf.push(b',');
    buf.extend_from_slice(s.outcome.as_str().as_bytes());
    buf.push(b',');
    let more = push_rule_ids(buf, a, plain, s);
    buf.push(b',');
    push_int(buf, more);
    buf.push(b',');
    buf.extend_from_slice(s.unknown.as_str().as_bytes());
    for n in [s.flows, s.established, s.refused, s.unanswered] {
        buf.push(b',');
        push_int(buf, n);
    }
    for n in [s.packets, s.bytes] {
        buf.push(b',');
        push_int(buf, n);
    }
    buf.push(b',');
    push_iso(buf, s.first_ts);
    buf.push(b',');
    push_duration(buf, s.first_ts, s.last_ts);
    buf.push(b',');
    push_bases(buf, s);
    buf.push(b',');
    if s.waiver != NO_WAIVER {
        push_cell(buf, &a.waiver_marks[s.waiver as usize].to_string());
    }
    buf.push(b'\n');
}

/// The rule_ids cell: a documented service lists every rule that allows it, the others their
/// closest few. Returns how many more rules there are (the more_rules cell).
fn push_rule_ids(buf: &mut Vec<u8>, a: &Audit, plain: &[bool], s: &Service) -> u16 {
    let all;
    let (listed, more) = if s.verdict == Verdict::Documented && s.more > 0 {
        let cx = crate::audit::aggregate::Ctx {
            cc: &a.catalog,
            hosts: &a.hosts,
            names: &a.names,
        };
        let (c, sv) = (cx.end(s.key.client), cx.end(s.key.server));
        all = crate::audit::classify::allowing(&a.catalog, s.key.proto, s.key.port, &c, &sv);
        (all.as_slice(), 0)
    } else {
        (s.listed_rules(), s.more)
    };
    if listed.iter().all(|&r| plain[r as usize]) {
        for (i, &r) in listed.iter().enumerate() {
            if i > 0 {
                buf.push(b';');
            }
            buf.extend_from_slice(a.rule_id(r).as_bytes());
        }
    } else {
        let ids: Vec<&str> = listed.iter().map(|&r| a.rule_id(r)).collect();
        push_cell(buf, &ids.join(";"));
    }
    more
}

/// The direction_basis cell: flows per basis, `syn=3;port=1`.
fn push_bases(buf: &mut Vec<u8>, s: &Service) {
    let mut first = true;
    for (i, n) in s.bases.iter().enumerate() {
        if *n > 0 {
            if !first {
                buf.push(b';');
            }
            first = false;
            buf.extend_from_slice(BASES[i].as_str().as_bytes());
            buf.push(b'=');
            push_int(buf, *n);
        }
    }
}

/// The bases in `Basis as usize` order.
const BASES: [Basis; 5] = [
    Basis::Syn,
    Basis::SynAck,
    Basis::Port,
    Basis::FirstPacket,
    Basis::Catalog,
];

/// Writes `name`: the header of `T`'s columns (even without rows), then `rows` serialized; the
/// row types make their free-text cells safe (rows.rs).
fn rows_file<T: Serialize + DeserializeOwned>(
    dir: &Path,
    name: &str,
    rows: impl Iterator<Item = T>,
) -> io::Result<()> {
    let mut f = AtomicFile::create(&dir.join(name))?;
    {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut f);
        w.write_record(columns::<T>())?;
        for row in rows {
            w.serialize(row)?;
        }
        w.flush()?;
    }
    f.commit()
}

fn write_rules(dir: &Path, a: &Audit) -> io::Result<()> {
    rows_file(
        dir,
        "rules.csv",
        a.rules.iter().map(|u| {
            let r = a.catalog.rule(u.rule);
            RulesRow {
                rule_id: r.id.clone(),
                product: r.product.clone(),
                section: r.section.clone(),
                from_role: r.from_role.clone(),
                to_role: r.to_role.clone(),
                proto: r.protocols_str(),
                ports: r.ports_str(),
                qualifiers: r.qualifiers_str(),
                client: a.group_label(u.client).to_string(),
                server: a.group_label(u.server).to_string(),
                status: if u.used() {
                    RuleStatus::Used
                } else {
                    RuleStatus::Unused
                },
                host_pairs: u.host_pairs,
                flows: u.flows,
                bytes: u.bytes,
                first_seen: u.used().then(|| format_iso(u.first_ts)),
                last_seen: u.used().then(|| format_iso(u.last_ts)),
                ports_seen: compress_ports(&u.ports_seen),
                suggested_range: u
                    .suggested(&a.catalog)
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
            }
        }),
    )
}

fn write_findings(dir: &Path, a: &Audit) -> io::Result<()> {
    rows_file(
        dir,
        "findings.csv",
        a.findings.iter().map(|f| FindingsRow {
            severity: f.severity,
            kind: f.kind.as_str().into(),
            subject: f.subject.clone(),
            client_group: f.client_group.clone(),
            server_group: f.server_group.clone(),
            proto: f.proto.clone(),
            ports: f.ports.clone(),
            host_pairs: Some(f.host_pairs),
            flows: Some(f.flows),
            bytes: Some(f.bytes),
            first_seen: f.first_ts.map(format_iso),
            last_seen: f.last_ts.map(format_iso),
            examples: f.examples.join(";"),
            reason: f.reason.clone(),
            evidence: f.evidence.clone(),
            waiver: f.waiver.clone(),
        }),
    )
}

fn write_groups(dir: &Path, a: &Audit) -> io::Result<()> {
    let mut order: Vec<&Group> = a.hosts.groups.iter().collect();
    order.sort_by(|x, y| (x.kind, &x.label).cmp(&(y.kind, &y.label)));
    rows_file(
        dir,
        "groups.csv",
        order.into_iter().map(|g| GroupsRow {
            group: g.label.clone(),
            kind: g.kind,
            roles: a.catalog.roles.names(&g.roles).join(";"),
            blocks: g
                .blocks
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(";"),
        }),
    )
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
    header_md(&mut t, a, run, inputs);
    let s = &run.stats;
    let _ = writeln!(
        t,
        "Schema version {SCHEMA_VERSION}. {} packets, {} flows, {} services (host pairs by protocol and port); findings grouped by {} (`--group-by`).\n",
        s.packets,
        a.flow_count,
        a.services.len(),
        a.group_by.as_str()
    );
    verdicts_md(&mut t, a);
    findings_md(&mut t, a);
    coverage_md(&mut t, a);
    caveats_md(&mut t, a, run);
    t
}

/// Services per verdict and outcome.
fn verdicts_md(t: &mut String, a: &Audit) {
    let _ = writeln!(t, "## Services by verdict\n\n| verdict | services | established | refused | unanswered |\n|---|---|---|---|---|");
    let mut counts = [[0u64; 3]; 5];
    for sv in &a.services {
        counts[sv.verdict as usize][sv.outcome as usize] += 1;
    }
    for v in Verdict::ALL {
        let c = counts[v as usize];
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            v.as_str(),
            c.iter().sum::<u64>(),
            c[Outcome::Established as usize],
            c[Outcome::Refused as usize],
            c[Outcome::Unanswered as usize]
        );
    }
}

/// Findings per severity, then the groups that matter most.
fn findings_md(t: &mut String, a: &Audit) {
    let _ = writeln!(
        t,
        "\n## Findings\n\n| severity | findings | host pairs |\n|---|---|---|"
    );
    for sev in [
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ] {
        let of = a.findings.iter().filter(|f| f.severity == sev);
        let _ = writeln!(
            t,
            "| {} | {} | {} |",
            sev.as_str(),
            of.clone().count(),
            of.map(|f| f.host_pairs).sum::<u64>()
        );
    }
    // The groups that matter most: by severity, then by how much traffic they hold.
    let mut top: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Low)
        .collect();
    top.sort_by(|x, y| {
        y.severity
            .cmp(&x.severity)
            .then(y.flows.cmp(&x.flows))
            .then(x.subject.cmp(&y.subject))
    });
    if !top.is_empty() {
        let _ = writeln!(t, "\nTop findings:\n");
        for f in top.iter().take(15) {
            let _ = writeln!(
                t,
                "- **{}** {}: {} ({} host {}, {} {}) — {}",
                f.severity.as_str(),
                f.kind.as_str(),
                md(&f.subject),
                f.host_pairs,
                if f.host_pairs == 1 { "pair" } else { "pairs" },
                f.flows,
                if f.flows == 1 { "flow" } else { "flows" },
                md(&f.reason)
            );
        }
        if top.len() > 15 {
            let _ = writeln!(t, "- ... and {} more in findings.csv", top.len() - 15);
        }
    }
}

/// Rule instances per product, used and unused.
fn coverage_md(t: &mut String, a: &Audit) {
    let _ = writeln!(t, "\n## Coverage per product\n\n| product | rule instances | used | unused |\n|---|---|---|---|");
    let mut products: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for u in &a.rules {
        let e = products.entry(&a.catalog.rule(u.rule).product).or_default();
        e.0 += 1;
        e.1 += u.used() as usize;
    }
    for (p, (n, used)) in products {
        let _ = writeln!(t, "| {} | {} | {} | {} |", md(p), n, used, n - used);
    }
}

/// What the reader needs first: when the capture ran, what was read, against which inventory.
fn header_md(t: &mut String, a: &Audit, run: &RunOutput, inputs: &[String]) {
    let s = &run.stats;
    let what = if s.flow_input.is_some() {
        "first and last flow record"
    } else {
        "first and last packet"
    };
    match (s.first_ts, s.last_ts) {
        (Some(first), Some(last)) => {
            let _ = writeln!(
                t,
                "- Capture window: {} to {} ({what}, UTC; {} s)",
                format_iso(first),
                format_iso(last),
                format_duration(last - first)
            );
        }
        _ => {
            let _ = writeln!(t, "- Capture window: none (no packet was read)");
        }
    }
    let _ = writeln!(
        t,
        "- Inputs ({}): {}",
        inputs.len(),
        inputs.iter().map(|i| md(i)).collect::<Vec<_>>().join(", ")
    );
    let known = a.hosts.hosts.iter().filter(|h| h.in_inventory()).count();
    let _ = writeln!(
        t,
        "- Inventory: {}, {} {}; {} of the {} hosts seen are in it\n",
        md(&a.inventory_file),
        a.inventory.len(),
        if a.inventory.len() == 1 {
            "entry"
        } else {
            "entries"
        },
        known,
        a.hosts.hosts.len()
    );
}

/// Nanoseconds as seconds with three decimals (cut, as the times are).
fn format_duration(ns: i64) -> String {
    let ms = ns.div_euclid(1_000_000);
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn caveats_md(t: &mut String, a: &Audit, run: &RunOutput) {
    let s = &run.stats;
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
    for n in c.notes() {
        any = true;
        let _ = writeln!(t, "- {}", md(&n));
    }
    if let Some(fi) = &s.flow_input {
        for c in fi.caveats() {
            any = true;
            let _ = writeln!(t, "- {}.", md(&c));
        }
    }
    if !any {
        let _ = writeln!(
            t,
            "- Nothing noted: both directions were seen and every packet was decoded."
        );
    }
    let _ = writeln!(t, "\nA rule never seen in one capture window may still be needed by jobs that did not run in it (restores, upgrades, monthly jobs).");
}

/// The summary's Waivers section: waived findings, findings whose waiver expired, and waivers
/// that expire soon or have expired.
fn waivers_md(a: &Audit, w: &WaiverReport) -> String {
    let mut t = String::new();
    let marked: Vec<_> = a.findings.iter().filter(|f| !f.waiver.is_empty()).collect();
    let waived = marked.iter().filter(|f| !f.counts).count();
    let _ = writeln!(
        t,
        "\n## Waivers\n\nWaivers from {} judged on {}: waived findings (they do not count for --fail-on): {}; findings whose waiver expired or covers only some host pairs (they count): {}.\n",
        md(&w.waivers.file),
        w.today,
        waived,
        marked.len() - waived
    );
    if !marked.is_empty() {
        let _ = writeln!(t, "| severity | finding | waiver |\n|---|---|---|");
        for f in &marked {
            let _ = writeln!(
                t,
                "| {} | {}: {} | {} |",
                f.severity.as_str(),
                f.kind.as_str(),
                md(&f.subject),
                md(&f.waiver)
            );
        }
        t.push('\n');
    }
    let soon = w.waivers.expiring(w.today);
    if soon.is_empty() {
        let _ = writeln!(
            t,
            "No waiver expires within {} days.",
            crate::audit::waiver::EXPIRY_WARNING_DAYS
        );
    } else {
        let _ = writeln!(
            t,
            "Waivers expiring within {} days:\n",
            crate::audit::waiver::EXPIRY_WARNING_DAYS
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Addr;
    use crate::report::rows::ServicesRow;

    /// services.csv's hand formatter and the row type `diff` reads it with agree: each row of
    /// the demo capture's services.csv reads back as a `ServicesRow` holding its service.
    #[test]
    fn services_rows_read_back_as_their_services() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
        let run = crate::engine::run::run_files(
            &[demo.join("backup-window.pcap")],
            Default::default(),
            &Default::default(),
        )
        .unwrap();
        let cat = crate::audit::catalog::Catalogs::builtin(&[]).unwrap();
        let text = std::fs::read_to_string(demo.join("hosts.csv")).unwrap();
        let inv =
            crate::audit::inventory::Inventory::parse("hosts.csv", &text, &cat.roles).unwrap();
        let a =
            crate::audit::audit(&run.flows, &cat, &inv, &run.names, &Default::default()).unwrap();
        let mut buf = Vec::new();
        write_services(&mut buf, &a).unwrap();
        let rows: Vec<ServicesRow> = csv::Reader::from_reader(buf.as_slice())
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), a.services.len());
        for (r, s) in rows.iter().zip(&a.services) {
            let (c, sv) = (a.hosts.get(s.key.client), a.hosts.get(s.key.server));
            assert_eq!(Addr::from(r.client_addr), c.addr);
            assert_eq!(Addr::from(r.server_addr), sv.addr);
            assert_eq!(r.client_group, a.hosts.groups[c.group as usize].label);
            assert_eq!(r.server_group, a.hosts.groups[sv.group as usize].label);
            assert_eq!(r.proto, proto::name(s.key.proto));
            assert_eq!(r.server_port.is_some(), proto::has_ports(s.key.proto));
            assert_eq!(r.server_port.unwrap_or(s.key.port), s.key.port);
            assert_eq!((r.verdict, r.outcome), (s.verdict, s.outcome));
            assert_eq!(r.unknown_end, s.unknown);
            let counts = [s.flows, s.established, s.refused, s.unanswered].map(u64::from);
            assert_eq!([r.flows, r.established, r.refused, r.unanswered], counts);
            assert_eq!((r.packets, r.bytes), (s.packets, s.bytes));
            assert_eq!(r.first_seen, format_iso(s.first_ts));
        }
        // The first row, as fixtures/demo/expected/services.csv (checked by hand) has it.
        let first = ServicesRow {
            client_addr: "10.1.0.5".parse().unwrap(),
            client_group: "admin01".into(),
            server_addr: "10.1.0.10".parse().unwrap(),
            server_group: "vbr01".into(),
            server_dns: String::new(),
            proto: "tcp".into(),
            server_port: Some(9392),
            verdict: Verdict::Documented,
            outcome: Outcome::Established,
            rule_ids: "VBR-036".into(),
            more_rules: 0,
            unknown_end: crate::audit::UnknownEnd::None,
            flows: 1,
            established: 1,
            refused: 0,
            unanswered: 0,
            packets: 8,
            bytes: 1668,
            first_seen: "2026-01-01T00:00:03.048Z".into(),
            duration: Some("0.007".into()),
            direction_basis: "syn=1".into(),
            waiver: String::new(),
        };
        assert_eq!(rows[0], first);
    }
}
