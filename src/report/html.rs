//! report.html: the audit as one self-contained page for people (docs/reports.md). It is written
//! from the same [`Audit`] as the CSV reports and says nothing they do not; it only arranges it:
//! the capture window and inputs, services by verdict and outcome, a role-to-role matrix,
//! coverage per product and the findings with filters.
//!
//! Self-contained: inline CSS, inline SVG and one small inline script ([`STYLE`], [`SCRIPT`]);
//! a Content-Security-Policy forbids every fetch, so the page works offline and cannot leak.
//! Every string that came from input (names, notes, roles of custom catalogs) goes through
//! [`esc`]. Deterministic: only sorted or ordered data, no clock.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use rustc_hash::FxHashMap;

use super::SCHEMA_VERSION;
use super::{format_iso, AtomicFile};
use crate::audit::{Audit, FindingKind, HostIdx, Outcome, RuleUse, Service, Severity, Verdict};
use crate::decode::proto;
use crate::engine::run::RunOutput;

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/script.js");

/// Findings listed in the page; the rest are in findings.csv (a browser slows down past this).
const MAX_FINDING_ROWS: usize = 5000;
/// Links to findings listed per role pair.
const MAX_PAIR_LINKS: usize = 25;
/// Rule instances listed per table; the rest are in rules.csv.
const MAX_RULE_ROWS: usize = 2000;

const SEVERITIES: [Severity; 4] = [
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

/// Appends formatted text to a `String` (writing to a `String` cannot fail).
macro_rules! put {
    ($h:expr, $($arg:tt)*) => {{
        let _ = write!($h, $($arg)*);
    }};
}

/// Writes `dir/report.html` atomically.
pub fn write_html(dir: &Path, a: &Audit, run: &RunOutput, inputs: &[String]) -> io::Result<()> {
    let mut f = AtomicFile::create(&dir.join("report.html"))?;
    f.write_all(render(a, run, inputs).as_bytes())?;
    f.commit()
}

/// The whole page.
pub fn render(a: &Audit, run: &RunOutput, inputs: &[String]) -> String {
    let mut h = String::with_capacity(64 << 10);
    head(&mut h, a, inputs);
    overview(&mut h, a, run, inputs);
    services(&mut h, a);
    matrix(&mut h, a, &Matrix::build(a));
    coverage(&mut h, a);
    findings(&mut h, a);
    put!(
        h,
        "</main>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
    );
    h
}

/// Text made safe for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A span of time for people: `3.048 s`, `4 min 05 s`, `2 h 03 min 09 s`.
fn duration(ns: i64) -> String {
    let ms = ns.max(0) / 1_000_000;
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}.{:03} s", ms % 1000),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min {:02} s", s / 3600, s / 60 % 60, s % 60),
    }
}

fn opt_iso(t: Option<i64>) -> String {
    t.map(format_iso).unwrap_or_default()
}

fn head(h: &mut String, a: &Audit, inputs: &[String]) {
    put!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
<title>flowaudit audit: {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<header>\n\
<h1>flowaudit audit</h1>\n<p class=\"muted\">Schema version {SCHEMA_VERSION}; findings grouped by {} \
(<code>--group-by</code>). The CSV reports and summary.md beside this file hold the same audit.</p>\n\
<nav><a href=\"#window\">Capture</a><a href=\"#services\">Services</a><a href=\"#matrix\">Roles</a>\
<a href=\"#coverage\">Coverage</a><a href=\"#findings\">Findings</a></nav>\n</header>\n<main>\n",
        esc(&inputs.join(", ")),
        a.group_by.as_str()
    );
}

fn overview(h: &mut String, a: &Audit, run: &RunOutput, inputs: &[String]) {
    let s = &run.stats;
    put!(h, "<h2 id=\"window\">Capture</h2>\n<dl class=\"facts\">\n");
    match (s.first_ts, s.last_ts) {
        (Some(first), Some(last)) => put!(
            h,
            "<dt>First packet</dt><dd><time id=\"first-packet\">{}</time></dd>\n\
<dt>Last packet</dt><dd><time id=\"last-packet\">{}</time></dd>\n\
<dt>Window</dt><dd>{}</dd>\n",
            format_iso(first),
            format_iso(last),
            duration(last - first)
        ),
        _ => put!(h, "<dt>Capture window</dt><dd>no packets</dd>\n"),
    }
    put!(h, "<dt>Inputs</dt><dd>");
    for (i, f) in inputs.iter().enumerate() {
        put!(
            h,
            "{}<code>{}</code>",
            if i > 0 { ", " } else { "" },
            esc(f)
        );
    }
    put!(
        h,
        "</dd>\n<dt>Packets</dt><dd id=\"packets\">{}</dd>\n<dt>Flows</dt><dd id=\"flows\">{}</dd>\n\
<dt>Services</dt><dd id=\"services-total\">{}</dd>\n<dt>Inventory</dt><dd id=\"inventory-entries\">{}</dd>\n</dl>\n",
        s.packets,
        a.flow_count,
        a.services.len(),
        a.inventory.len()
    );
    put!(
        h,
        "<details{}><summary>Inventory: {} entries (inventory.csv)</summary>\n\
<table class=\"inventory\"><thead><tr><th>address</th><th>roles</th><th>name</th></tr></thead><tbody>\n",
        if a.inventory.len() <= 50 { " open" } else { "" },
        a.inventory.len()
    );
    for e in &a.inventory {
        put!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
            e.cidr,
            esc(&e.roles.join(", ")),
            esc(&e.name)
        );
    }
    put!(h, "</tbody></table>\n</details>\n");
}

/// Services per verdict and outcome, as `counts[verdict][outcome]`.
fn verdict_counts(a: &Audit) -> [[u64; 3]; 5] {
    let mut counts = [[0u64; 3]; 5];
    for s in &a.services {
        counts[s.verdict as usize][s.outcome as usize] += 1;
    }
    counts
}

fn services(h: &mut String, a: &Audit) {
    let counts = verdict_counts(a);
    put!(
        h,
        "<h2 id=\"services\">Services by verdict and outcome</h2>\n<p class=\"muted\">A service is \
one client host to one server host on a protocol and port (services.csv).</p>\n\
<table class=\"verdicts\"><thead><tr><th>verdict</th><th class=\"n\">services</th>"
    );
    for o in Outcome::ALL {
        put!(h, "<th class=\"n\">{}</th>", o.as_str());
    }
    put!(h, "</tr></thead><tbody>\n");
    let mut totals = [0u64; 3];
    for v in Verdict::ALL {
        let c = counts[v as usize];
        let name = v.as_str();
        put!(
            h,
            "<tr><td class=\"v-{name}\">{name}</td><td class=\"n\" id=\"sv-{name}-total\">{}</td>",
            c.iter().sum::<u64>()
        );
        for o in Outcome::ALL {
            totals[o as usize] += c[o as usize];
            put!(
                h,
                "<td class=\"n\" id=\"sv-{name}-{}\">{}</td>",
                o.as_str(),
                c[o as usize]
            );
        }
        put!(h, "</tr>\n");
    }
    put!(
        h,
        "<tr><th>all</th><th class=\"n\" id=\"sv-all-total\">{}</th>",
        totals.iter().sum::<u64>()
    );
    for o in Outcome::ALL {
        put!(
            h,
            "<th class=\"n\" id=\"sv-all-{}\">{}</th>",
            o.as_str(),
            totals[o as usize]
        );
    }
    put!(h, "</tr>\n</tbody></table>\n");
    verdict_bars(h, &counts);
}

/// One bar per verdict, split by outcome: the table above as a picture.
fn verdict_bars(h: &mut String, counts: &[[u64; 3]; 5]) {
    const FILL: [&str; 3] = ["#4caf50", "#e53935", "#9e9e9e"];
    const ROW: u64 = 26;
    const WIDTH: u64 = 560;
    let max = counts
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let height = ROW * 5 + 30;
    put!(
        h,
        "<svg width=\"800\" height=\"{height}\" viewBox=\"0 0 800 {height}\" role=\"img\" \
aria-label=\"services by verdict and outcome\">\n"
    );
    for (i, v) in Verdict::ALL.iter().enumerate() {
        let y = i as u64 * ROW;
        put!(h, "<text x=\"0\" y=\"{}\">{}</text>", y + 17, v.as_str());
        let mut x = 120u64;
        for (o, fill) in FILL.iter().enumerate() {
            let n = counts[*v as usize][o];
            let w = n * WIDTH / max;
            if w > 0 {
                put!(
                    h,
                    "<rect x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"{}\" fill=\"{fill}\"><title>{} {}: {n}</title></rect>",
                    y + 4,
                    ROW - 8,
                    v.as_str(),
                    Outcome::ALL[o].as_str()
                );
            }
            x += w;
        }
        put!(
            h,
            "<text x=\"{}\" y=\"{}\">{}</text>\n",
            x + 6,
            y + 17,
            counts[*v as usize].iter().sum::<u64>()
        );
    }
    let y = ROW * 5 + 14;
    for (o, fill) in FILL.iter().enumerate() {
        let x = 120 + o as u64 * 130;
        put!(
            h,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{fill}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            y - 10,
            x + 16,
            y,
            Outcome::ALL[o].as_str()
        );
    }
    put!(h, "\n</svg>\n");
}

/// An axis label of the role matrix: a role, or why a host has none.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Axis {
    Role(String),
    NoRole,
    NotInInventory,
}

impl Axis {
    fn label(&self) -> Cow<'_, str> {
        match self {
            Axis::Role(r) => esc(r),
            Axis::NoRole => "(no role)".into(),
            Axis::NotInInventory => "(not in inventory)".into(),
        }
    }
}

/// Services between hosts holding one client role and one server role.
#[derive(Default)]
struct Cell {
    by_verdict: [u64; 5],
    /// Documented services that were refused or unanswered.
    failed: u64,
    /// Indices into `Audit::findings`.
    findings: BTreeSet<usize>,
}

impl Cell {
    fn total(&self) -> u64 {
        self.by_verdict.iter().sum()
    }

    /// The worst verdict present, from documented (best) to undocumented.
    fn worst(&self) -> Verdict {
        const ORDER: [Verdict; 5] = [
            Verdict::Undocumented,
            Verdict::RoleMismatch,
            Verdict::Reverse,
            Verdict::UnknownHost,
            Verdict::Documented,
        ];
        ORDER
            .into_iter()
            .find(|v| self.by_verdict[*v as usize] > 0)
            .unwrap_or(Verdict::Documented)
    }
}

/// Client roles x server roles. A host counts under each of its most specific roles, so a
/// service between a host with two roles and one with one counts in two cells.
struct Matrix {
    clients: Vec<Axis>,
    servers: Vec<Axis>,
    cells: BTreeMap<(usize, usize), Cell>,
}

impl Matrix {
    fn build(a: &Audit) -> Matrix {
        // Labels are interned: a capture has few roles and may have millions of services.
        let mut names: Vec<Axis> = Vec::new();
        let mut ids: BTreeMap<Axis, u32> = BTreeMap::new();
        let mut labels: FxHashMap<HostIdx, Vec<u32>> = FxHashMap::default();
        let index = finding_index(a);
        let mut raw: FxHashMap<(u32, u32), Cell> = FxHashMap::default();
        // Services alike in all the matrix reads are counted together, then placed once each.
        for (s, n) in tally(a) {
            for h in [s.key.client, s.key.server] {
                labels.entry(h).or_insert_with(|| {
                    let intern = |x: Axis| {
                        *ids.entry(x.clone()).or_insert_with(|| {
                            names.push(x);
                            names.len() as u32 - 1
                        })
                    };
                    host_axes(a, h).into_iter().map(intern).collect()
                });
            }
            let finding = FindingKind::of_service(s.verdict, s.outcome)
                .and_then(|k| service_finding(a, &index, k, s));
            for &c in &labels[&s.key.client] {
                for &sv in &labels[&s.key.server] {
                    let cell = raw.entry((c, sv)).or_default();
                    cell.by_verdict[s.verdict as usize] += n;
                    if s.verdict == Verdict::Documented && s.outcome != Outcome::Established {
                        cell.failed += n;
                    }
                    cell.findings.extend(finding);
                }
            }
        }
        let axis = |pick: fn(&(u32, u32)) -> u32| -> Vec<Axis> {
            let used: BTreeSet<&Axis> = raw.keys().map(|k| &names[pick(k) as usize]).collect();
            used.into_iter().cloned().collect()
        };
        let (clients, servers) = (axis(|k| k.0), axis(|k| k.1));
        let pos = |v: &[Axis], i: u32| {
            v.binary_search(&names[i as usize])
                .expect("an axis holds its labels")
        };
        let cells = raw
            .into_iter()
            .map(|((c, s), cell)| ((pos(&clients, c), pos(&servers, s)), cell))
            .collect();
        Matrix {
            clients,
            servers,
            cells,
        }
    }
}

/// A host's most specific roles (a `windows-backup-server`, not also a `backup-server`).
fn host_axes(a: &Audit, h: HostIdx) -> Vec<Axis> {
    let host = a.hosts.get(h);
    if !host.in_inventory() {
        return vec![Axis::NotInInventory];
    }
    let roles = a.catalog.roles.most_specific(&host.roles);
    if roles.is_empty() {
        return vec![Axis::NoRole];
    }
    roles
        .into_iter()
        .map(|r| Axis::Role(r.to_string()))
        .collect()
}

/// The services in groups that the matrix cannot tell apart: the same inventory roles and
/// group at both ends, verdict, outcome, protocol and port. Each group is given as its first
/// service, with the number of services in it; groups come in the order of their first service.
fn tally(a: &Audit) -> Vec<(&Service, u64)> {
    let shape = |h: HostIdx| {
        let host = a.hosts.get(h);
        (host.in_inventory(), host.roles, host.group)
    };
    let mut seen: FxHashMap<_, usize> = FxHashMap::default();
    let mut groups: Vec<(&Service, u64)> = Vec::new();
    for s in &a.services {
        let k = s.key;
        let key = (
            shape(k.client),
            shape(k.server),
            s.verdict,
            s.outcome,
            k.proto,
            k.port,
        );
        let i = *seen.entry(key).or_insert_with(|| {
            groups.push((s, 0));
            groups.len() - 1
        });
        groups[i].1 += 1;
    }
    groups
}

/// The key findings.csv groups service findings by, as the finding holds it.
type FindingKey<'a> = (FindingKind, &'a str, &'a str, &'a str, &'a str);

fn finding_index(a: &Audit) -> FxHashMap<FindingKey<'_>, usize> {
    a.findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let k = (
                f.kind,
                f.client_group.as_str(),
                f.server_group.as_str(),
                f.proto.as_str(),
                f.ports.as_str(),
            );
            (k, i)
        })
        .collect()
}

/// The finding a service is part of.
fn service_finding(
    a: &Audit,
    index: &FxHashMap<FindingKey<'_>, usize>,
    kind: FindingKind,
    s: &crate::audit::Service,
) -> Option<usize> {
    let cg = a.group_label(a.hosts.get(s.key.client).group);
    let sg = a.group_label(a.hosts.get(s.key.server).group);
    let p = proto::name(s.key.proto);
    let port = if proto::has_ports(s.key.proto) {
        s.key.port.to_string()
    } else {
        String::new()
    };
    index
        .get(&(kind, cg, sg, p.as_ref(), port.as_str()))
        .copied()
}

fn matrix(h: &mut String, a: &Audit, m: &Matrix) {
    put!(
        h,
        "<h2 id=\"matrix\">Role to role</h2>\n<p class=\"muted\">Services between hosts by their most \
specific roles: client roles down, server roles across. A host with two roles counts under both. \
Each cell is coloured by its worst verdict and links to its findings; a red frame marks documented \
services that were refused or unanswered.</p>\n<p class=\"legend\">"
    );
    for v in Verdict::ALL {
        put!(h, "<span class=\"v-{0}\">{0}</span>", v.as_str());
    }
    put!(
        h,
        "</p>\n<table class=\"matrix\"><thead><tr><th class=\"corner\">client \\ server</th>"
    );
    for s in &m.servers {
        put!(h, "<th>{}</th>", s.label());
    }
    put!(h, "</tr></thead><tbody>\n");
    for (ci, c) in m.clients.iter().enumerate() {
        put!(h, "<tr><th>{}</th>", c.label());
        for si in 0..m.servers.len() {
            match m.cells.get(&(ci, si)) {
                Some(cell) => matrix_cell(h, ci, si, cell),
                None => put!(h, "<td></td>"),
            }
        }
        put!(h, "</tr>\n");
    }
    put!(h, "</tbody></table>\n");
    pair_list(h, a, m);
}

fn matrix_cell(h: &mut String, ci: usize, si: usize, cell: &Cell) {
    let worst = cell.worst().as_str();
    let mut title = Vec::new();
    for v in Verdict::ALL {
        let n = cell.by_verdict[v as usize];
        if n > 0 {
            title.push(format!("{n} {}", v.as_str()));
        }
    }
    let mut note = String::new();
    if !cell.findings.is_empty() {
        let n = cell.findings.len();
        note = format!("{n} finding{}", if n == 1 { "" } else { "s" });
    }
    if cell.failed > 0 {
        title.push(format!("{} documented but not answered", cell.failed));
    }
    put!(
        h,
        "<td class=\"cell v-{worst}{}\" id=\"m-{ci}-{si}\" data-services=\"{}\" data-worst=\"{worst}\" \
data-findings=\"{}\"><a href=\"#rp-{ci}-{si}\" title=\"{}\"><b>{}</b><small>{note}</small></a></td>",
        if cell.failed > 0 { " failed" } else { "" },
        cell.total(),
        cell.findings.len(),
        title.join(", "),
        cell.total()
    );
}

/// What each matrix cell links to: its findings.
fn pair_list(h: &mut String, a: &Audit, m: &Matrix) {
    put!(h, "<h3>Findings per role pair</h3>\n<ul class=\"pairs\">\n");
    for (&(ci, si), cell) in &m.cells {
        put!(
            h,
            "<li id=\"rp-{ci}-{si}\"><b>{} &rarr; {}</b>: {} service{}",
            m.clients[ci].label(),
            m.servers[si].label(),
            cell.total(),
            if cell.total() == 1 { "" } else { "s" }
        );
        if cell.findings.is_empty() {
            put!(h, ", no findings (documented and established)</li>\n");
            continue;
        }
        put!(h, "; findings: ");
        for (n, &f) in cell.findings.iter().take(MAX_PAIR_LINKS).enumerate() {
            let fd = &a.findings[f];
            let sep = if n > 0 { "; " } else { "" };
            if f < MAX_FINDING_ROWS {
                put!(
                    h,
                    "{sep}<a href=\"#f-{f}\">{} {}</a>",
                    fd.kind.as_str(),
                    esc(&fd.subject)
                );
            } else {
                put!(h, "{sep}{} {}", fd.kind.as_str(), esc(&fd.subject));
            }
        }
        if cell.findings.len() > MAX_PAIR_LINKS {
            put!(h, "; and {} more", cell.findings.len() - MAX_PAIR_LINKS);
        }
        put!(h, "</li>\n");
    }
    put!(h, "</ul>\n");
}

/// Rule instances of one product.
#[derive(Default)]
struct Product<'a> {
    used: Vec<&'a RuleUse>,
    unused: Vec<&'a RuleUse>,
}

fn coverage(h: &mut String, a: &Audit) {
    let mut products: BTreeMap<&str, Product> = BTreeMap::new();
    for u in &a.rules {
        let p = products
            .entry(a.catalog.rule(u.rule).product.as_str())
            .or_default();
        if u.used() {
            p.used.push(u);
        } else {
            p.unused.push(u);
        }
    }
    put!(
        h,
        "<h2 id=\"coverage\">Coverage per product</h2>\n<p class=\"muted\">Every catalog rule \
instantiated between the inventory's groups that hold its roles (rules.csv): used in this capture, \
or documented but unused. Distinct rules count a rule once however many group pairs it has.</p>\n\
<table class=\"coverage\"><thead><tr><th>product</th><th class=\"n\">rule instances</th>\
<th class=\"n\">used</th><th class=\"n\">unused</th><th class=\"n\">distinct rules used</th>\
<th class=\"n\">distinct rules never used</th><th>used share</th></tr></thead><tbody>\n"
    );
    for (i, (name, p)) in products.iter().enumerate() {
        let used_ids: BTreeSet<&str> = p.used.iter().map(|u| a.rule_id(u.rule)).collect();
        let never: BTreeSet<&str> = p
            .unused
            .iter()
            .map(|u| a.rule_id(u.rule))
            .filter(|id| !used_ids.contains(id))
            .collect();
        let n = p.used.len() + p.unused.len();
        let w = p.used.len() * 200 / n.max(1);
        put!(
            h,
            "<tr id=\"cov-{i}\"><td>{}</td><td class=\"n\">{n}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><svg width=\"200\" \
height=\"12\" viewBox=\"0 0 200 12\"><rect width=\"200\" height=\"12\" fill=\"#e0e0e0\"/>\
<rect width=\"{w}\" height=\"12\" fill=\"#4caf50\"/></svg></td></tr>\n",
            esc(name),
            p.used.len(),
            p.unused.len(),
            used_ids.len(),
            never.len()
        );
    }
    put!(h, "</tbody></table>\n");
    for (name, p) in &products {
        put!(h, "<h3>{}</h3>\n", esc(name));
        rule_table(h, a, "Used", &p.used, p.used.len() <= 50);
        rule_table(h, a, "Documented but unused", &p.unused, false);
    }
}

/// A folded table of rule instances.
fn rule_table(h: &mut String, a: &Audit, what: &str, rules: &[&RuleUse], open: bool) {
    if rules.is_empty() {
        put!(h, "<p class=\"muted\">{what}: none.</p>\n");
        return;
    }
    put!(
        h,
        "<details{}><summary>{what}: {} rule instance{}</summary>\n<table class=\"rules\"><thead><tr>\
<th>rule</th><th>roles</th><th>proto/ports</th><th>client group &rarr; server group</th>\
<th class=\"n\">host pairs</th><th class=\"n\">flows</th><th>ports seen</th><th>note</th></tr></thead><tbody>\n",
        if open { " open" } else { "" },
        rules.len(),
        if rules.len() == 1 { "" } else { "s" }
    );
    for u in rules.iter().take(MAX_RULE_ROWS) {
        let r = a.catalog.rule(u.rule);
        let q = r.qualifiers_str();
        put!(
            h,
            "<tr><td><code>{}</code></td><td>{} &rarr; {}</td><td>{} {}{}</td><td>{} &rarr; {}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&r.id),
            esc(&r.from_role),
            esc(&r.to_role),
            esc(&r.protocols_str()),
            esc(&r.ports_str()),
            if q.is_empty() {
                String::new()
            } else {
                format!(" <small>({})</small>", esc(&q))
            },
            esc(a.group_label(u.client)),
            esc(a.group_label(u.server)),
            u.host_pairs,
            u.flows,
            super::audit::compress_ports(&u.ports_seen),
            esc(&r.note)
        );
    }
    put!(h, "</tbody></table>\n");
    if rules.len() > MAX_RULE_ROWS {
        put!(
            h,
            "<p>{} more are in rules.csv (this page lists the first {MAX_RULE_ROWS}).</p>\n",
            rules.len() - MAX_RULE_ROWS
        );
    }
    put!(h, "</details>\n");
}

fn findings(h: &mut String, a: &Audit) {
    put!(
        h,
        "<h2 id=\"findings\">Findings</h2>\n<p class=\"muted\">One row per kind, client group, server \
group, protocol and port (or rule), as findings.csv; sorted by severity, then kind, then \
subject.</p>\n<table class=\"severities\"><thead><tr><th>severity</th><th class=\"n\">findings</th>\
<th class=\"n\">host pairs</th></tr></thead><tbody>\n"
    );
    for sev in SEVERITIES {
        let of = a.findings.iter().filter(|f| f.severity == sev);
        let name = sev.as_str();
        put!(
            h,
            "<tr><td class=\"s-{name}\">{name}</td><td class=\"n\" id=\"fs-{name}\">{}</td>\
<td class=\"n\" id=\"fh-{name}\">{}</td></tr>\n",
            of.clone().count(),
            of.map(|f| f.host_pairs).sum::<u64>()
        );
    }
    put!(h, "</tbody></table>\n");
    let listed = &a.findings[..a.findings.len().min(MAX_FINDING_ROWS)];
    filters(h, listed);
    let waivers = listed.iter().any(|f| !f.waiver.is_empty());
    put!(
        h,
        "<table class=\"findings\"><thead><tr><th>severity</th><th>kind</th><th>subject</th>\
<th class=\"n\">host pairs</th><th class=\"n\">flows</th><th class=\"n\">bytes</th>\
<th>first and last seen</th><th>examples</th><th>reason</th><th>evidence</th>{}</tr></thead><tbody>\n",
        if waivers { "<th>waiver</th>" } else { "" }
    );
    for (i, f) in listed.iter().enumerate() {
        let (sev, kind) = (f.severity.as_str(), f.kind.as_str());
        put!(
            h,
            "<tr id=\"f-{i}\" data-severity=\"{sev}\" data-kind=\"{kind}\"><td class=\"s-{sev}\">{sev}</td>\
<td class=\"nw\">{kind}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"nw\">{}<br>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&f.subject),
            f.host_pairs,
            f.flows,
            f.bytes,
            opt_iso(f.first_ts),
            opt_iso(f.last_ts),
            esc(&f.examples.join("; ")),
            esc(&f.reason),
            esc(&f.evidence)
        );
        if waivers {
            put!(h, "<td>{}</td>", esc(&f.waiver));
        }
        put!(h, "</tr>\n");
    }
    put!(h, "</tbody></table>\n");
    if a.findings.len() > listed.len() {
        put!(
            h,
            "<p>{} more findings are in findings.csv (this page lists the first {MAX_FINDING_ROWS}).</p>\n",
            a.findings.len() - listed.len()
        );
    }
}

/// Check boxes per severity and kind present; the script hides the rows they leave out.
fn filters(h: &mut String, listed: &[crate::audit::Finding]) {
    put!(
        h,
        "<div class=\"filters\"><fieldset><legend>Severity</legend>"
    );
    for sev in SEVERITIES {
        let n = listed.iter().filter(|f| f.severity == sev).count();
        if n > 0 {
            put!(
                h,
                "<label><input type=\"checkbox\" name=\"severity\" value=\"{0}\" checked> {0} ({n})</label>",
                sev.as_str()
            );
        }
    }
    put!(h, "</fieldset><fieldset><legend>Kind</legend>");
    for kind in FindingKind::ALL {
        let n = listed.iter().filter(|f| f.kind == kind).count();
        if n > 0 {
            put!(
                h,
                "<label><input type=\"checkbox\" name=\"kind\" value=\"{0}\" checked> {0} ({n})</label>",
                kind.as_str()
            );
        }
    }
    put!(
        h,
        "</fieldset> <span id=\"shown\" class=\"muted\"></span>\
<noscript>(the filters need JavaScript; every finding is listed)</noscript></div>\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert!(matches!(esc("vbr01"), Cow::Borrowed("vbr01")));
    }

    #[test]
    fn times_are_iso_8601_utc_with_milliseconds() {
        // 2026-01-01T00:00:00Z is 1767225600 s (20454 days of 86400 s since 1970-01-01).
        assert_eq!(
            format_iso(1_767_225_603_048_900_000),
            "2026-01-01T00:00:03.048Z"
        );
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso(-1), "1969-12-31T23:59:59.999Z");
        // 2024-02-29T23:59:59.5Z (a leap day): 1709251199.5 s.
        assert_eq!(
            format_iso(1_709_251_199_500_000_000),
            "2024-02-29T23:59:59.500Z"
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(3_048_000_000), "3.048 s");
        assert_eq!(duration(245_000_000_000), "4 min 05 s");
        assert_eq!(duration(7_389_000_000_000), "2 h 03 min 09 s");
    }
}
