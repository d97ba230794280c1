//! Comparing two audits (docs/diff.md): reads two report directories (manifest.json,
//! services.csv, rules.csv, findings.csv), lists what changed between them as `diff.csv` rows and
//! a Markdown summary, and evaluates the change gates (`--fail-on`).
//!
//! A directory that is not an audit, or reports of another schema version, are errors: the diff
//! is never computed from files it does not understand.

use crate::csvtext::md_cell as md;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use crate::audit::findings::{service_subject, FindingKind, PARTLY_WAIVED};
use crate::audit::hosts::GroupKind;
use crate::audit::waiver::{self, Date, ServiceRef, Waivers};
use crate::audit::{Outcome, Severity, Verdict};
use crate::decode::{proto, Addr};
use crate::report::rows::{
    read_rows, FindingsRow, GroupsRow, ReportRow, RuleStatus, RulesRow, ServicesRow,
};
use crate::report::{safe_cell, SCHEMA_VERSION};
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// Report schema versions a diff reads. Schema 3 writes times as ISO 8601 where schema 2 wrote
/// epoch seconds, and schema 4 gives services a duration instead of a last time; the diff
/// compares no times, so baselines of schema 2 and 3 diff against a schema 4 audit. Schema 1
/// (per-pair findings) is refused.
const READS_SCHEMAS: [u64; 3] = [2, 3, 4];

/// diff.csv's columns, in order.
pub const DIFF_COLUMNS: &[&str] = &[
    "change", "subject", "client", "server", "proto", "port", "rule_id", "kind", "baseline",
    "current", "severity", "waiver",
];

/// What changed. diff.csv lists rows in this order, then by subject within each change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ChangeKind {
    #[default]
    HostNew,
    HostGone,
    HostRolesChanged,
    ServiceNew,
    ServiceGone,
    VerdictChanged,
    OutcomeChanged,
    RuleUsed,
    RuleUnused,
    RangeWidened,
    RangeNarrowed,
    RangeShifted,
    FindingNew,
    FindingResolved,
    FindingKindChanged,
    FindingUnwaived,
    FindingWaived,
    FirewallRuleNew,
    FirewallRuleGone,
    FirewallVerdictChanged,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 20] = [
        ChangeKind::HostNew,
        ChangeKind::HostGone,
        ChangeKind::HostRolesChanged,
        ChangeKind::ServiceNew,
        ChangeKind::ServiceGone,
        ChangeKind::VerdictChanged,
        ChangeKind::OutcomeChanged,
        ChangeKind::RuleUsed,
        ChangeKind::RuleUnused,
        ChangeKind::RangeWidened,
        ChangeKind::RangeNarrowed,
        ChangeKind::RangeShifted,
        ChangeKind::FindingNew,
        ChangeKind::FindingResolved,
        ChangeKind::FindingKindChanged,
        ChangeKind::FindingUnwaived,
        ChangeKind::FindingWaived,
        ChangeKind::FirewallRuleNew,
        ChangeKind::FirewallRuleGone,
        ChangeKind::FirewallVerdictChanged,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::HostNew => "host-new",
            ChangeKind::HostGone => "host-gone",
            ChangeKind::HostRolesChanged => "host-roles-changed",
            ChangeKind::ServiceNew => "service-new",
            ChangeKind::ServiceGone => "service-gone",
            ChangeKind::VerdictChanged => "verdict-changed",
            ChangeKind::OutcomeChanged => "outcome-changed",
            ChangeKind::RuleUsed => "rule-used",
            ChangeKind::RuleUnused => "rule-unused",
            ChangeKind::RangeWidened => "range-widened",
            ChangeKind::RangeNarrowed => "range-narrowed",
            ChangeKind::RangeShifted => "range-shifted",
            ChangeKind::FindingNew => "finding-new",
            ChangeKind::FindingResolved => "finding-resolved",
            ChangeKind::FindingKindChanged => "finding-kind-changed",
            ChangeKind::FindingUnwaived => "finding-unwaived",
            ChangeKind::FindingWaived => "finding-waived",
            ChangeKind::FirewallRuleNew => "firewall-rule-new",
            ChangeKind::FirewallRuleGone => "firewall-rule-gone",
            ChangeKind::FirewallVerdictChanged => "firewall-verdict-changed",
        }
    }

    /// A heading for the Markdown summary.
    fn title(&self) -> &'static str {
        match self {
            ChangeKind::HostNew => "Hosts newly seen",
            ChangeKind::HostGone => "Hosts no longer seen",
            ChangeKind::HostRolesChanged => "Hosts whose inventory roles changed",
            ChangeKind::ServiceNew => "Services newly seen",
            ChangeKind::ServiceGone => "Services no longer seen",
            ChangeKind::VerdictChanged => "Verdict changes",
            ChangeKind::OutcomeChanged => "Outcome changes",
            ChangeKind::RuleUsed => "Rules newly used",
            ChangeKind::RuleUnused => "Rules newly unused",
            ChangeKind::RangeWidened => "Port ranges that widened",
            ChangeKind::RangeNarrowed => "Port ranges that narrowed",
            ChangeKind::RangeShifted => "Port ranges that moved",
            ChangeKind::FindingNew => "New findings",
            ChangeKind::FindingResolved => "Resolved findings",
            ChangeKind::FindingKindChanged => "Findings that changed kind (not resolved)",
            ChangeKind::FindingUnwaived => "Findings whose waiver expired or was removed",
            ChangeKind::FindingWaived => "Findings newly waived",
            ChangeKind::FirewallRuleNew => "Firewall rules newly checked",
            ChangeKind::FirewallRuleGone => "Firewall rules no longer there",
            ChangeKind::FirewallVerdictChanged => "Firewall rule verdict changes",
        }
    }
}

/// A change gate: when it holds, `--fail-on` makes the exit code 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gate {
    /// A service that is not documented (any verdict but documented) is new, or its verdict
    /// changed; its finding is not waived.
    NewUndocumented,
    /// A documented service is newly refused or unanswered (it was absent, not documented, or
    /// established); its finding is not waived.
    NewRefused,
    /// A finding counts now that did not count before (it was absent or waived).
    NewFindings,
    /// diff.csv has any row.
    AnyChange,
}

impl Gate {
    pub const ALL: [Gate; 4] = [
        Gate::NewUndocumented,
        Gate::NewRefused,
        Gate::NewFindings,
        Gate::AnyChange,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Gate::NewUndocumented => "new-undocumented",
            Gate::NewRefused => "new-refused",
            Gate::NewFindings => "new-findings",
            Gate::AnyChange => "any-change",
        }
    }

    pub fn parse(s: &str) -> Result<Gate, String> {
        Gate::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a change gate; use {}",
                    Gate::ALL.map(|g| g.as_str()).join(", ")
                )
            })
    }
}

/// One row of services.csv, as the diff needs it.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub client: Addr,
    pub server: Addr,
    pub client_group: String,
    pub server_group: String,
    /// The groups' roles, from groups.csv.
    pub client_roles: Vec<String>,
    pub server_roles: Vec<String>,
    pub proto: String,
    proto_num: u8,
    pub port: Option<u16>,
    pub verdict: Verdict,
    pub outcome: Outcome,
    pub rule_ids: String,
    /// The service's waiver cell (empty, `waived until ...` or `EXPIRED on ...`).
    pub waiver: String,
}

type ServiceKey = (Addr, Addr, u8, Option<u16>);

impl ServiceRow {
    fn key(&self) -> ServiceKey {
        (self.client, self.server, self.proto_num, self.port)
    }

    /// The host pair: `group (client) -> group (server) proto/port`.
    pub fn label(&self) -> String {
        service_subject(
            &host_label(&self.client_group, self.client),
            &host_label(&self.server_group, self.server),
            &self.proto,
            self.port,
        )
    }

    /// The finding this service falls under, as findings.csv names it: (kind, subject).
    pub fn finding(&self) -> Option<(String, String)> {
        let kind = FindingKind::of_service(self.verdict, self.outcome)?;
        let group = |g: &str, a: Addr| {
            if g.is_empty() {
                crate::audit::inventory::Cidr::unlisted_net(a).to_string()
            } else {
                g.to_string()
            }
        };
        Some((
            kind.as_str().to_string(),
            service_subject(
                &group(&self.client_group, self.client),
                &group(&self.server_group, self.server),
                &self.proto,
                self.port,
            ),
        ))
    }

    fn state(&self) -> String {
        format!("{}/{}", self.verdict.as_str(), self.outcome.as_str())
    }

    fn waiver_ref(&self) -> ServiceRef<'_> {
        ServiceRef {
            client: self.client,
            server: self.server,
            proto: &self.proto,
            port: self.port,
            client_roles: &self.client_roles,
            server_roles: &self.server_roles,
        }
    }

    fn blocked(&self) -> bool {
        self.verdict == Verdict::Documented && self.outcome != Outcome::Established
    }

    /// Counts for the gates: no waiver, or an expired one.
    fn counts(&self) -> bool {
        self.waiver.is_empty() || self.waiver.starts_with("EXPIRED")
    }
}

/// A host as the diff names it: `group (address)`, or the address alone outside the inventory.
fn host_label(group: &str, a: Addr) -> String {
    if group.is_empty() {
        a.to_string()
    } else {
        format!("{group} ({a})")
    }
}

/// One row of rules.csv, as the diff needs it.
#[derive(Debug, Clone)]
pub struct RuleRow {
    pub rule_id: String,
    pub client: String,
    pub server: String,
    pub proto: String,
    pub ports: String,
    pub used: bool,
    /// Lowest and highest port seen.
    pub span: Option<(u16, u16)>,
}

impl RuleRow {
    /// The name findings.csv gives the rule instance.
    pub fn label(&self) -> String {
        crate::audit::findings::rule_subject(&self.rule_id, &self.client, &self.server, &self.ports)
    }
}

/// One row of findings.csv: the report's own row type.
pub type FindingRow = FindingsRow;

impl FindingRow {
    /// The rule a rule finding is about (the subject's first word).
    fn rule_id(&self) -> String {
        match FindingKind::parse(&self.kind) {
            Some(FindingKind::UnusedRule | FindingKind::NarrowRange) => {
                self.subject.split(' ').next().unwrap_or("").to_string()
            }
            _ => String::new(),
        }
    }

    /// Counts for the gates: no waiver, an expired one, or one covering only some host pairs.
    pub fn counts(&self) -> bool {
        self.waiver.is_empty()
            || self.waiver.starts_with("EXPIRED")
            || self.waiver.starts_with(PARTLY_WAIVED)
    }

    fn state(&self) -> &'static str {
        if self.counts() {
            "counts"
        } else {
            "waived"
        }
    }
}

/// Most severe first.
fn severity_rank(s: Severity) -> Reverse<Severity> {
    Reverse(s)
}

/// An audit report directory, read and checked.
#[derive(Debug, Clone)]
pub struct Report {
    pub dir: String,
    pub services: Vec<ServiceRow>,
    pub rules: Vec<RuleRow>,
    pub findings: Vec<FindingRow>,
    /// firewall.csv, when the audit ran the firewall check.
    pub firewall: Option<Vec<crate::firewall::diff::FirewallRow>>,
}

fn proto_number(s: &str) -> Option<u8> {
    s.parse::<proto::IpProto>().ok().map(u8::from)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// Lowest and highest port of a `ports_seen` cell (`2500-2502;2505`).
fn span_of(s: &str) -> Result<Option<(u16, u16)>, String> {
    let r = crate::audit::catalog::parse_ports(s)?;
    Ok(r.iter()
        .map(|x| x.lo)
        .min()
        .zip(r.iter().map(|x| x.hi).max()))
}

fn fmt_span((lo, hi): (u16, u16)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

impl Report {
    /// Reads an audit report directory; anything that is not a readable audit of a schema
    /// version it reads is an error naming the directory or file (and line).
    pub fn load(dir: &Path) -> Result<Report, String> {
        crate::report::manifest::check_audit_dir(dir, &READS_SCHEMAS)?;
        let groups = read_groups(dir)?;
        Ok(Report {
            dir: dir.display().to_string(),
            services: read_services(dir, &groups)?,
            rules: read_rules(dir)?,
            findings: read_findings(dir)?,
            firewall: crate::firewall::diff::load(dir)?,
        })
    }

    /// Re-judges the waiver cell of every service, then of every service finding (from its
    /// host pairs, as the audit does), against `w` on `today`.
    pub fn apply_waivers(&mut self, w: &Waivers, today: Date) {
        let mut cells: BTreeMap<(String, String), Vec<Option<crate::audit::waiver::Mark>>> =
            BTreeMap::new();
        for s in &mut self.services {
            let Some(f) = s.finding() else { continue };
            let m = w.find(&s.waiver_ref(), today);
            s.waiver = m.as_ref().map(|m| m.to_string()).unwrap_or_default();
            cells.entry(f).or_default().push(m);
        }
        for f in &mut self.findings {
            if !waiver::SERVICE_FINDING_KINDS.contains(&f.kind.as_str()) {
                continue;
            }
            let marks = cells.get(&(f.kind.clone(), f.subject.clone()));
            f.waiver = marks.map(|m| finding_cell(m)).unwrap_or_default();
        }
    }
}

/// groups.csv as the services need it.
#[derive(Default)]
struct Groups {
    /// Each group's roles.
    roles: BTreeMap<String, Vec<String>>,
    /// The groups of addresses outside the inventory (their /24 or /64).
    unlisted: BTreeSet<String>,
}

fn read_groups(dir: &Path) -> Result<Groups, String> {
    let mut g = Groups::default();
    for (_, row) in read_rows::<GroupsRow>(dir)? {
        if row.kind == GroupKind::Unlisted {
            g.unlisted.insert(row.group.clone());
        }
        g.roles.insert(row.group, split_list(&row.roles));
    }
    Ok(g)
}

fn read_services(dir: &Path, groups: &Groups) -> Result<Vec<ServiceRow>, String> {
    let shown = dir.join(ServicesRow::FILE).display().to_string();
    let mut services = Vec::new();
    let mut seen = BTreeMap::new();
    for (line, r) in read_rows::<ServicesRow>(dir)? {
        let bad = |m: String| format!("{shown}:{line}: {m}");
        let proto_num =
            proto_number(&r.proto).ok_or_else(|| bad(format!("unknown protocol {:?}", r.proto)))?;
        // A host outside the inventory has no name of its own: its group is its /24 or /64.
        let group = |g: String| {
            if groups.unlisted.contains(&g) {
                String::new()
            } else {
                g
            }
        };
        let (client_group, server_group) = (group(r.client_group), group(r.server_group));
        let roles = |g: &str| groups.roles.get(g).cloned().unwrap_or_default();
        let row = ServiceRow {
            client: r.client_addr.into(),
            server: r.server_addr.into(),
            client_roles: roles(&client_group),
            server_roles: roles(&server_group),
            client_group,
            server_group,
            proto: r.proto,
            proto_num,
            port: r.server_port,
            verdict: r.verdict,
            outcome: r.outcome,
            rule_ids: r.rule_ids,
            waiver: r.waiver,
        };
        if let Some(first) = seen.insert(row.key(), line) {
            return Err(bad(format!(
                "the same service as on line {first}: not a report flowaudit wrote"
            )));
        }
        services.push(row);
    }
    Ok(services)
}

fn read_rules(dir: &Path) -> Result<Vec<RuleRow>, String> {
    let shown = dir.join(RulesRow::FILE).display().to_string();
    read_rows::<RulesRow>(dir)?
        .into_iter()
        .map(|(line, r)| {
            let span =
                span_of(&r.ports_seen).map_err(|e| format!("{shown}:{line}: ports_seen: {e}"))?;
            Ok(RuleRow {
                rule_id: r.rule_id,
                proto: r.proto,
                ports: r.ports,
                client: r.client,
                server: r.server,
                used: r.status == RuleStatus::Used,
                span,
            })
        })
        .collect()
}

fn read_findings(dir: &Path) -> Result<Vec<FindingRow>, String> {
    Ok(read_rows::<FindingsRow>(dir)?
        .into_iter()
        .map(|(_, f)| f)
        .collect())
}

/// A finding's waiver cell from its host pairs' marks, as the audit writes it.
fn finding_cell(marks: &[Option<crate::audit::waiver::Mark>]) -> String {
    let marked = marks.iter().flatten().count();
    let waived = marks.iter().flatten().filter(|m| !m.expired).count();
    if marked == 0 {
        String::new()
    } else if marked < marks.len() {
        format!(
            "{PARTLY_WAIVED}: {waived} of {} host pairs have a waiver in force; the others count",
            marks.len()
        )
    } else {
        let first_expired = marks.iter().flatten().find(|m| m.expired);
        first_expired
            .or(marks.iter().flatten().next())
            .map(|m| m.to_string())
            .unwrap_or_default()
    }
}

/// One row of diff.csv.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub change: ChangeKind,
    pub subject: String,
    pub client: String,
    pub server: String,
    pub proto: String,
    pub port: String,
    pub rule_id: String,
    pub kind: String,
    pub baseline: String,
    pub current: String,
    pub severity: String,
    pub waiver: String,
}

impl Change {
    pub fn cells(&self) -> [&str; 12] {
        [
            self.change.as_str(),
            &self.subject,
            &self.client,
            &self.server,
            &self.proto,
            &self.port,
            &self.rule_id,
            &self.kind,
            &self.baseline,
            &self.current,
            &self.severity,
            &self.waiver,
        ]
    }
}

/// A gate asked for with `--fail-on`, and what makes it hold (empty: it does not).
#[derive(Debug, Clone)]
pub struct GateResult {
    pub gate: Gate,
    pub hits: Vec<String>,
}

/// Waiver notes for the Markdown summary.
#[derive(Debug, Clone)]
pub struct WaiverNotes {
    pub file: String,
    pub today: Date,
    pub expiring: Vec<String>,
    pub expired: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Diff {
    pub baseline: String,
    pub current: String,
    pub changes: Vec<Change>,
    pub gates: Vec<GateResult>,
    /// Findings of the current audit with a waiver cell: (severity, kind, subject, waiver).
    pub waived: Vec<[String; 4]>,
    pub waiver_notes: Option<WaiverNotes>,
}

impl Diff {
    /// Whether any requested gate holds (exit code 1).
    pub fn failed(&self) -> bool {
        self.gates.iter().any(|g| !g.hits.is_empty())
    }

    pub fn count(&self, k: ChangeKind) -> usize {
        self.changes.iter().filter(|c| c.change == k).count()
    }
}

/// What the diff is given besides the two reports.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Re-judge the current audit's findings against these waivers (the baseline keeps the
    /// waiver cells it was written with).
    pub waivers: Option<&'a Waivers>,
    pub today: Date,
    pub gates: &'a [Gate],
}

fn host_map(r: &Report) -> BTreeMap<Addr, (String, String)> {
    let mut m = BTreeMap::new();
    for s in &r.services {
        for (a, g, roles) in [
            (s.client, &s.client_group, &s.client_roles),
            (s.server, &s.server_group, &s.server_roles),
        ] {
            m.entry(a).or_insert_with(|| {
                let r = if roles.is_empty() {
                    "not-in-inventory".to_string()
                } else {
                    roles.join(";")
                };
                (host_label(g, a), r)
            });
        }
    }
    m
}

/// Compares two loaded reports.
pub fn diff(base: &Report, cur: &Report, opts: &Options) -> Diff {
    let mut cur = cur.clone();
    if let Some(w) = opts.waivers {
        cur.apply_waivers(w, opts.today);
    }
    let (base, cur) = (Side::of(base), Side::of(&cur));
    let mut out = host_changes(base.report, cur.report);
    out.extend(service_changes(&base, &cur));
    out.extend(rule_changes(&base, &cur));
    out.extend(finding_changes(&base, &cur));
    out.extend(crate::firewall::diff::changes(
        base.report.firewall.as_deref(),
        cur.report.firewall.as_deref(),
    ));
    // Stable: keeps the order within each change kind.
    out.sort_by_key(|c| c.change);
    let gates = opts
        .gates
        .iter()
        .map(|&gate| GateResult {
            gate,
            hits: gate_hits(gate, &base, &cur, &out),
        })
        .collect();
    Diff {
        baseline: base.report.dir.clone(),
        current: cur.report.dir.clone(),
        changes: out,
        gates,
        waived: waived_rows(cur.report),
        waiver_notes: waiver_notes(opts),
    }
}

type FindingKey = (String, String);

/// One audit of the two, with its services and findings by key.
struct Side<'a> {
    report: &'a Report,
    services: BTreeMap<ServiceKey, &'a ServiceRow>,
    findings: BTreeMap<FindingKey, &'a FindingRow>,
}

impl<'a> Side<'a> {
    fn of(report: &'a Report) -> Side<'a> {
        Side {
            report,
            services: report.services.iter().map(|s| (s.key(), s)).collect(),
            findings: report.findings.iter().map(|f| (fkey(f), f)).collect(),
        }
    }

    /// The unused-rule or narrow-range finding about a rule instance.
    fn rule_finding(&self, label: &str) -> Option<&'a FindingRow> {
        ["unused-rule", "narrow-range"].into_iter().find_map(|k| {
            self.findings
                .get(&(k.to_string(), label.to_string()))
                .copied()
        })
    }
}

fn fkey(f: &FindingRow) -> FindingKey {
    (f.kind.clone(), f.subject.clone())
}

/// The change, with the kind, severity and waiver of the finding it falls under.
fn with_finding(mut c: Change, f: Option<&FindingRow>) -> Change {
    if let Some(f) = f {
        c.kind = f.kind.clone();
        c.severity = f.severity.as_str().into();
        c.waiver = f.waiver.clone();
    }
    c
}

fn host_changes(base: &Report, cur: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    let (bh, ch) = (host_map(base), host_map(cur));
    for (a, (label, roles)) in &ch {
        match bh.get(a) {
            None => out.push(Change {
                change: ChangeKind::HostNew,
                subject: label.clone(),
                client: a.to_string(),
                current: roles.clone(),
                ..Default::default()
            }),
            Some((_, old)) if old != roles => out.push(Change {
                change: ChangeKind::HostRolesChanged,
                subject: label.clone(),
                client: a.to_string(),
                baseline: old.clone(),
                current: roles.clone(),
                ..Default::default()
            }),
            Some(_) => {}
        }
    }
    for (a, (label, roles)) in &bh {
        if !ch.contains_key(a) {
            out.push(Change {
                change: ChangeKind::HostGone,
                subject: label.clone(),
                client: a.to_string(),
                baseline: roles.clone(),
                ..Default::default()
            });
        }
    }
    out
}

fn service_change(k: ChangeKind, s: &ServiceRow) -> Change {
    Change {
        change: k,
        subject: s.label(),
        client: s.client.to_string(),
        server: s.server.to_string(),
        proto: s.proto.clone(),
        port: s.port.map(|p| p.to_string()).unwrap_or_default(),
        rule_id: s.rule_ids.clone(),
        ..Default::default()
    }
}

fn service_changes(base: &Side, cur: &Side) -> Vec<Change> {
    let mut out = Vec::new();
    for (k, s) in &cur.services {
        let f = s.finding().and_then(|k| cur.findings.get(&k).copied());
        let Some(b) = base.services.get(k) else {
            let c = Change {
                current: s.state(),
                ..service_change(ChangeKind::ServiceNew, s)
            };
            out.push(with_finding(c, f));
            continue;
        };
        if b.verdict != s.verdict {
            let c = Change {
                baseline: b.verdict.as_str().into(),
                current: s.verdict.as_str().into(),
                ..service_change(ChangeKind::VerdictChanged, s)
            };
            out.push(with_finding(c, f));
        }
        if b.outcome != s.outcome {
            let c = Change {
                baseline: b.outcome.as_str().into(),
                current: s.outcome.as_str().into(),
                ..service_change(ChangeKind::OutcomeChanged, s)
            };
            out.push(with_finding(c, f));
        }
    }
    for (k, b) in &base.services {
        if !cur.services.contains_key(k) {
            let c = Change {
                baseline: b.state(),
                ..service_change(ChangeKind::ServiceGone, b)
            };
            out.push(with_finding(
                c,
                b.finding().and_then(|k| base.findings.get(&k).copied()),
            ));
        }
    }
    out
}

type RuleKey = (String, String, String);

fn rule_map(r: &Report) -> BTreeMap<RuleKey, &RuleRow> {
    r.rules
        .iter()
        .map(|u| ((u.rule_id.clone(), u.client.clone(), u.server.clone()), u))
        .collect()
}

fn rule_change(k: ChangeKind, u: &RuleRow) -> Change {
    Change {
        change: k,
        subject: u.label(),
        client: u.client.clone(),
        server: u.server.clone(),
        proto: u.proto.clone(),
        port: u.ports.clone(),
        rule_id: u.rule_id.clone(),
        ..Default::default()
    }
}

fn rule_status(u: Option<&RuleRow>) -> &'static str {
    match u {
        None => "",
        Some(u) if u.used => "used",
        Some(_) => "unused",
    }
}

fn rule_changes(base: &Side, cur: &Side) -> Vec<Change> {
    let mut out = Vec::new();
    let (br, cr) = (rule_map(base.report), rule_map(cur.report));
    let mut keys: Vec<&RuleKey> = br.keys().chain(cr.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (b, c) = (br.get(k).copied(), cr.get(k).copied());
        let u = c.or(b).expect("a key of one of the maps");
        let f = if c.is_some() { cur } else { base }.rule_finding(&u.label());
        if let Some(change) = rule_change_of(b, c) {
            out.push(with_finding(change, f));
        }
    }
    out
}

/// What changed about one rule instance: used or not, or the range of ports it saw.
fn rule_change_of(b: Option<&RuleRow>, c: Option<&RuleRow>) -> Option<Change> {
    let (bu, cu) = (b.is_some_and(|u| u.used), c.is_some_and(|u| u.used));
    let u = c.or(b)?;
    if bu != cu {
        let kind = if cu {
            ChangeKind::RuleUsed
        } else {
            ChangeKind::RuleUnused
        };
        return Some(Change {
            baseline: rule_status(b).into(),
            current: rule_status(c).into(),
            ..rule_change(kind, u)
        });
    }
    let (Some((bl, bh)), Some((cl, ch))) = (b?.span, c?.span) else {
        return None;
    };
    if !(bu && cu) || (bl, bh) == (cl, ch) {
        return None;
    }
    let kind = if cl <= bl && ch >= bh {
        ChangeKind::RangeWidened
    } else if cl >= bl && ch <= bh {
        ChangeKind::RangeNarrowed
    } else {
        ChangeKind::RangeShifted
    };
    Some(Change {
        baseline: fmt_span((bl, bh)),
        current: fmt_span((cl, ch)),
        ..rule_change(kind, u)
    })
}

/// A service finding's rules: those of its first host pair.
fn rules_of(r: &Report) -> BTreeMap<FindingKey, String> {
    let mut m = BTreeMap::new();
    for s in &r.services {
        if let Some(k) = s.finding() {
            m.entry(k).or_insert_with(|| s.rule_ids.clone());
        }
    }
    m
}

fn finding_change(k: ChangeKind, f: &FindingRow, rules: &BTreeMap<FindingKey, String>) -> Change {
    Change {
        change: k,
        subject: f.subject.clone(),
        kind: f.kind.clone(),
        severity: f.severity.as_str().into(),
        waiver: f.waiver.clone(),
        client: f.client_group.clone(),
        server: f.server_group.clone(),
        proto: f.proto.clone(),
        port: f.ports.clone(),
        rule_id: match f.rule_id() {
            id if !id.is_empty() => id,
            _ => rules.get(&fkey(f)).cloned().unwrap_or_default(),
        },
        ..Default::default()
    }
}

/// A subject whose finding only changed kind (a refused connection whose verdict changed, an
/// undocumented service now a role-mismatch) still needs a look: it is not resolved.
/// Baseline-only and current-only findings of one subject pair up, most severe first.
fn kind_changes<'a>(base: &Side<'a>, cur: &Side<'a>) -> BTreeMap<FindingKey, &'a FindingRow> {
    let only = |m: &BTreeMap<FindingKey, &FindingRow>,
                other: &BTreeMap<FindingKey, &FindingRow>| {
        let mut by_subject: BTreeMap<String, Vec<FindingKey>> = BTreeMap::new();
        for (k, f) in m {
            if !other.contains_key(k) {
                by_subject
                    .entry(f.subject.clone())
                    .or_default()
                    .push(k.clone());
            }
        }
        for v in by_subject.values_mut() {
            v.sort_by_key(|k| (severity_rank(m[k].severity), k.0.clone()));
        }
        by_subject
    };
    let (gone, came) = (
        only(&base.findings, &cur.findings),
        only(&cur.findings, &base.findings),
    );
    let mut changed_to = BTreeMap::new();
    for (subject, olds) in &gone {
        if let Some(news) = came.get(subject) {
            for (o, n) in olds.iter().zip(news) {
                changed_to.insert(o.clone(), cur.findings[n]);
            }
        }
    }
    changed_to
}

fn finding_changes(base: &Side, cur: &Side) -> Vec<Change> {
    let (brules, crules) = (rules_of(base.report), rules_of(cur.report));
    let changed_to = kind_changes(base, cur);
    let changed_from: std::collections::BTreeSet<FindingKey> =
        changed_to.values().map(|f| fkey(f)).collect();
    let mut fchanges: Vec<(Reverse<Severity>, Change)> = Vec::new();
    for (k, f) in &cur.findings {
        let rank = severity_rank(f.severity);
        match base.findings.get(k) {
            None if changed_from.contains(k) => {}
            None => fchanges.push((
                rank,
                Change {
                    current: f.state().into(),
                    ..finding_change(ChangeKind::FindingNew, f, &crules)
                },
            )),
            Some(b) if b.counts() != f.counts() => {
                let kind = if f.counts() {
                    ChangeKind::FindingUnwaived
                } else {
                    ChangeKind::FindingWaived
                };
                fchanges.push((
                    rank,
                    Change {
                        baseline: b.state().into(),
                        current: f.state().into(),
                        ..finding_change(kind, f, &crules)
                    },
                ))
            }
            Some(_) => {}
        }
    }
    for (k, b) in &base.findings {
        if let Some(f) = changed_to.get(k) {
            fchanges.push((
                severity_rank(f.severity),
                Change {
                    baseline: format!("{} ({})", b.kind, b.severity.as_str()),
                    current: format!("{} ({})", f.kind, f.severity.as_str()),
                    ..finding_change(ChangeKind::FindingKindChanged, f, &crules)
                },
            ));
        } else if !cur.findings.contains_key(k) {
            fchanges.push((
                severity_rank(b.severity),
                Change {
                    baseline: b.state().into(),
                    ..finding_change(ChangeKind::FindingResolved, b, &brules)
                },
            ));
        }
    }
    fchanges.sort_by(|a, b| (a.0, &a.1.kind, &a.1.subject).cmp(&(b.0, &b.1.kind, &b.1.subject)));
    fchanges.into_iter().map(|(_, c)| c).collect()
}

/// What trips a gate. A host pair counts when it has no waiver in force (its own cell in
/// services.csv).
fn gate_hits(gate: Gate, base: &Side, cur: &Side, out: &[Change]) -> Vec<String> {
    let (bs, cs) = (&base.services, &cur.services);
    match gate {
        Gate::NewUndocumented => cs
            .iter()
            .filter(|(k, s)| {
                s.verdict != Verdict::Documented
                    && bs.get(*k).is_none_or(|b| b.verdict != s.verdict)
                    && s.counts()
            })
            .map(|(_, s)| format!("{} ({})", s.label(), s.verdict.as_str()))
            .collect(),
        Gate::NewRefused => cs
            .iter()
            .filter(|(k, s)| s.blocked() && bs.get(*k).is_none_or(|b| !b.blocked()) && s.counts())
            .map(|(_, s)| format!("{} ({})", s.label(), s.outcome.as_str()))
            .collect(),
        Gate::NewFindings => cur
            .findings
            .iter()
            .filter(|(k, f)| f.counts() && base.findings.get(*k).is_none_or(|b| !b.counts()))
            .map(|(_, f)| format!("{} {}: {}", f.severity.as_str(), f.kind, f.subject))
            .collect(),
        Gate::AnyChange => out
            .iter()
            .map(|c| format!("{} {}", c.change.as_str(), c.subject))
            .collect(),
    }
}

fn waived_rows(cur: &Report) -> Vec<[String; 4]> {
    cur.findings
        .iter()
        .filter(|f| !f.waiver.is_empty())
        .map(|f| {
            [
                f.severity.as_str().into(),
                f.kind.clone(),
                f.subject.clone(),
                f.waiver.clone(),
            ]
        })
        .collect()
}

fn waiver_notes(opts: &Options) -> Option<WaiverNotes> {
    let describe = |v: Vec<&crate::audit::waiver::Waiver>, w: &Waivers| -> Vec<String> {
        v.into_iter()
            .map(|x| waiver::describe(x, &w.file, opts.today))
            .collect()
    };
    opts.waivers.map(|w| WaiverNotes {
        file: w.file.clone(),
        today: opts.today,
        expiring: describe(w.expiring(opts.today), w),
        expired: describe(w.expired(opts.today), w),
    })
}

/// Writes diff.csv (atomically; `-` is stdout).
pub fn write_csv(dest: &Path, d: &Diff) -> io::Result<()> {
    crate::report::write_output(Some(dest), |w| write_csv_to(w, d))
}

pub fn write_csv_to(w: &mut dyn Write, d: &Diff) -> io::Result<()> {
    let mut c = csv::Writer::from_writer(w);
    c.write_record(DIFF_COLUMNS)?;
    for ch in &d.changes {
        c.write_record(ch.cells().iter().map(|s| safe_cell(s).into_owned()))?;
    }
    c.flush()
}

/// Writes the Markdown summary to a file, atomically (a device such as /dev/null is written in
/// place: renaming over it would replace the device).
pub fn write_md(dest: &Path, d: &Diff) -> io::Result<()> {
    crate::report::write_output(Some(dest), |w| w.write_all(markdown(d).as_bytes()))
}

/// Most items listed per section of the Markdown summary; diff.csv has them all.
const MD_LIST_MAX: usize = 50;

/// The Markdown summary, for a change ticket or a pull-request comment.
pub fn markdown(d: &Diff) -> String {
    let mut t = String::new();
    md_counts(&mut t, d);
    md_gates(&mut t, d);
    md_changes(&mut t, d);
    md_waivers(&mut t, d);
    t
}

/// The heading, the two directories and the count of each kind of change.
fn md_counts(t: &mut String, d: &Diff) {
    let _ = writeln!(t, "## flowaudit diff\n");
    let _ = writeln!(
        t,
        "Baseline `{}`, current `{}` (report schema version {SCHEMA_VERSION}).\n",
        d.baseline.replace('`', "'"),
        d.current.replace('`', "'")
    );
    if d.changes.is_empty() {
        let _ = writeln!(t, "No changes.");
    } else {
        let _ = writeln!(t, "| change | count |\n|---|---|");
        for k in ChangeKind::ALL {
            let n = d.count(k);
            if n > 0 {
                let _ = writeln!(t, "| {} | {n} |", k.as_str());
            }
        }
    }
}

/// Each gate, passed or failed, with up to ten of the items that failed it.
fn md_gates(t: &mut String, d: &Diff) {
    if !d.gates.is_empty() {
        let _ = writeln!(t, "\n### Gates\n");
        for g in &d.gates {
            if g.hits.is_empty() {
                let _ = writeln!(t, "- `{}`: passed", g.gate.as_str());
            } else {
                let _ = writeln!(
                    t,
                    "- `{}`: **FAILED** ({} item{})",
                    g.gate.as_str(),
                    g.hits.len(),
                    if g.hits.len() == 1 { "" } else { "s" }
                );
                if g.gate != Gate::AnyChange {
                    for h in g.hits.iter().take(10) {
                        let _ = writeln!(t, "  - {}", md(h));
                    }
                    if g.hits.len() > 10 {
                        let _ = writeln!(t, "  - ... and {} more", g.hits.len() - 10);
                    }
                }
            }
        }
    }
}

/// The changes by kind; info-level rows folded away.
fn md_changes(t: &mut String, d: &Diff) {
    for k in ChangeKind::ALL {
        let rows: Vec<&Change> = d.changes.iter().filter(|c| c.change == k).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(t, "\n### {} ({})\n", k.title(), rows.len());
        // Info-level rows are folded, so a pull-request comment shows what needs a look.
        let (info, rest): (Vec<&Change>, Vec<&Change>) =
            rows.into_iter().partition(|c| c.severity == "info");
        md_list(t, &rest);
        if !info.is_empty() {
            if !rest.is_empty() {
                t.push('\n');
            }
            let _ = writeln!(
                t,
                "<details><summary>{} info-level row{}</summary>\n",
                info.len(),
                if info.len() == 1 { "" } else { "s" }
            );
            md_list(t, &info);
            let _ = writeln!(t, "\n</details>");
        }
    }
}

/// Findings under a waiver, and waivers that expire soon or have expired.
fn md_waivers(t: &mut String, d: &Diff) {
    if !d.waived.is_empty() || d.waiver_notes.is_some() {
        let _ = writeln!(t, "\n### Waivers\n");
        if !d.waived.is_empty() {
            let _ = writeln!(t, "Findings of the current audit under a waiver:\n");
            for [sev, kind, subject, w] in d.waived.iter().take(MD_LIST_MAX) {
                let _ = writeln!(t, "- {sev} {kind}: {} — {}", md(subject), md(w));
            }
            if d.waived.len() > MD_LIST_MAX {
                let _ = writeln!(t, "- ... and {} more", d.waived.len() - MD_LIST_MAX);
            }
        }
        if let Some(n) = &d.waiver_notes {
            if n.expiring.is_empty() {
                let _ = writeln!(
                    t,
                    "\nNo waiver in {} expires within {} days of {}.",
                    md(&n.file),
                    waiver::EXPIRY_WARNING_DAYS,
                    n.today
                );
            } else {
                let _ = writeln!(
                    t,
                    "\nWaivers expiring within {} days of {}:\n",
                    waiver::EXPIRY_WARNING_DAYS,
                    n.today
                );
                for x in &n.expiring {
                    let _ = writeln!(t, "- {}", md(x));
                }
            }
            if !n.expired.is_empty() {
                let _ = writeln!(t, "\nExpired waivers (renew or remove them):\n");
                for x in &n.expired {
                    let _ = writeln!(t, "- {}", md(x));
                }
            }
        }
    }
}

/// Up to MD_LIST_MAX items as a Markdown list.
fn md_list(t: &mut String, rows: &[&Change]) {
    for c in rows.iter().take(MD_LIST_MAX) {
        let _ = writeln!(t, "- {}", md(&md_item(c)));
    }
    if rows.len() > MD_LIST_MAX {
        let _ = writeln!(
            t,
            "- ... and {} more (see diff.csv)",
            rows.len() - MD_LIST_MAX
        );
    }
}

/// Rule ids shown per item in the Markdown summary; diff.csv has them all.
const MD_RULES_MAX: usize = 3;

/// The rules of a service item, trimmed for the summary: services.csv lists a documented
/// service's rules specific openings first (a wide or dynamic range that also allows it comes
/// after), and the others' closest rules first, so the first ones are those to read.
fn md_rules(c: &Change) -> String {
    let ids: Vec<&str> = c.rule_id.split(';').filter(|r| !r.is_empty()).collect();
    // Rule rows and rule findings name their rule in the subject already.
    if ids.is_empty() || c.subject.starts_with(&format!("{} ", ids[0])) {
        return String::new();
    }
    let shown = ids[..ids.len().min(MD_RULES_MAX)].join(", ");
    let word = if ids.len() == 1 { "rule" } else { "rules" };
    match ids.len().saturating_sub(MD_RULES_MAX) {
        0 => format!(" ({word} {shown})"),
        more => format!(" ({word} {shown} and {more} more in diff.csv)"),
    }
}

fn md_item(c: &Change) -> String {
    let rules = md_rules(c);
    let finding = if c.kind.is_empty() {
        rules
    } else {
        let w = if c.waiver.is_empty() {
            String::new()
        } else {
            format!("; {}", c.waiver)
        };
        format!("{rules} [{} {}{w}]", c.severity, c.kind)
    };
    let arrow = |a: &str, b: &str| {
        format!(
            "{} → {}",
            if a.is_empty() { "(absent)" } else { a },
            if b.is_empty() { "(absent)" } else { b }
        )
    };
    match c.change {
        ChangeKind::HostNew => format!("{} ({})", c.subject, c.current),
        ChangeKind::HostGone => format!("{} ({})", c.subject, c.baseline),
        ChangeKind::ServiceNew => format!("{}: {}{finding}", c.subject, c.current),
        ChangeKind::ServiceGone => format!("{}: was {}{finding}", c.subject, c.baseline),
        ChangeKind::FindingNew | ChangeKind::FindingResolved => {
            let w = if c.waiver.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.waiver)
            };
            format!(
                "**{}** {}: {}{}{w}",
                c.severity,
                c.kind,
                c.subject,
                md_rules(c)
            )
        }
        ChangeKind::FindingUnwaived | ChangeKind::FindingWaived => {
            let w = if c.waiver.is_empty() {
                "waiver removed".to_string()
            } else {
                c.waiver.clone()
            };
            format!("**{}** {}: {} ({w})", c.severity, c.kind, c.subject)
        }
        _ => format!("{}: {}{finding}", c.subject, arrow(&c.baseline, &c.current)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_items_show_at_most_three_rules_and_none_twice() {
        let service = |ids: &str| Change {
            change: ChangeKind::OutcomeChanged,
            subject: "a (10.0.0.1) -> b (10.0.0.2) tcp/2500".into(),
            rule_id: ids.into(),
            baseline: "established".into(),
            current: "refused".into(),
            ..Default::default()
        };
        assert_eq!(
            md_item(&service("VBR-058;VBR-005;BE-001;BE-005;VBR-009")),
            "a (10.0.0.1) -> b (10.0.0.2) tcp/2500: established → refused \
             (rules VBR-058, VBR-005, BE-001 and 2 more in diff.csv)"
        );
        assert_eq!(
            md_item(&service("VBR-058")),
            "a (10.0.0.1) -> b (10.0.0.2) tcp/2500: established → refused (rule VBR-058)"
        );
        assert_eq!(
            md_item(&service("")),
            "a (10.0.0.1) -> b (10.0.0.2) tcp/2500: established → refused"
        );
        // A rule row names its rule in the subject already.
        let rule = Change {
            change: ChangeKind::RuleUnused,
            subject: "VBR-036 admin01 -> vbr01 (9392)".into(),
            rule_id: "VBR-036".into(),
            baseline: "used".into(),
            current: "unused".into(),
            ..Default::default()
        };
        assert_eq!(
            md_item(&rule),
            "VBR-036 admin01 -> vbr01 (9392): used → unused"
        );
    }
}
