//! Vendor port catalogs and the role vocabulary: parsing, reference resolution and lint.
//!
//! The five built-in catalogs are compiled in from `catalogs/`; users add or override rules with
//! their own files in the same format (docs/catalog-format.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::decode::proto;

/// A built-in file: (name, contents).
pub type Source = (&'static str, &'static str);

pub const BUILTIN_CATALOGS: &[Source] = &[
    ("veeam-vbr.csv", include_str!("../catalogs/veeam-vbr.csv")),
    ("veeam-em.csv", include_str!("../catalogs/veeam-em.csv")),
    (
        "veeam-agent.csv",
        include_str!("../catalogs/veeam-agent.csv"),
    ),
    (
        "veeam-proxmox.csv",
        include_str!("../catalogs/veeam-proxmox.csv"),
    ),
    (
        "backup-exec.csv",
        include_str!("../catalogs/backup-exec.csv"),
    ),
];

pub const BUILTIN_ROLES: &[Source] = &[
    ("roles.csv", include_str!("../catalogs/roles.csv")),
    (
        "roles-veeam-vbr.csv",
        include_str!("../catalogs/roles-veeam-vbr.csv"),
    ),
    (
        "roles-veeam-em.csv",
        include_str!("../catalogs/roles-veeam-em.csv"),
    ),
    (
        "roles-veeam-agent.csv",
        include_str!("../catalogs/roles-veeam-agent.csv"),
    ),
    (
        "roles-veeam-proxmox.csv",
        include_str!("../catalogs/roles-veeam-proxmox.csv"),
    ),
    (
        "roles-backup-exec.csv",
        include_str!("../catalogs/roles-backup-exec.csv"),
    ),
];

/// A problem in a catalog, role or inventory file, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// One role of the vocabulary.
#[derive(Debug, Clone)]
pub struct RoleDef {
    pub id: String,
    pub parent: Option<String>,
    pub description: String,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub defs: BTreeMap<String, RoleDef>,
}

impl Roles {
    pub fn builtin() -> Roles {
        let mut r = Roles::default();
        let mut problems = Vec::new();
        for (name, text) in BUILTIN_ROLES {
            r.parse(name, text, &mut problems);
        }
        debug_assert!(problems.is_empty(), "built-in roles: {problems:?}");
        r
    }

    pub fn parse(&mut self, file: &str, text: &str, problems: &mut Vec<Problem>) {
        for (line, rec) in csv_records(file, text, problems) {
            let get = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
            let id = get(0);
            if id.is_empty() {
                problems.push(prob(file, line, "role with an empty id"));
                continue;
            }
            if !is_role_id(&id) {
                problems.push(prob(
                    file,
                    line,
                    format!("role id {id:?} must be lowercase letters, digits and '-'"),
                ));
            }
            let parent = Some(get(1)).filter(|p| !p.is_empty());
            let def = RoleDef {
                id: id.clone(),
                parent,
                description: get(2),
                aliases: get(3)
                    .split(';')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            };
            if let Some(old) = self.defs.get(&id) {
                if old.parent != def.parent {
                    problems.push(prob(
                        file,
                        line,
                        format!("role {id} is defined again with another parent"),
                    ));
                }
                continue;
            }
            self.defs.insert(id, def);
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.defs.contains_key(id)
    }

    /// The role and every family it belongs to (its parents, transitively).
    pub fn with_ancestors(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut cur = id;
        while let Some(p) = self.defs.get(cur).and_then(|d| d.parent.as_deref()) {
            if out.iter().any(|o| o == p) {
                break; // a cycle: lint reports it
            }
            out.push(p.to_string());
            cur = p;
        }
        out
    }

    /// Parents that are not defined, and cycles.
    pub fn lint(&self, file: &str) -> Vec<Problem> {
        let mut v = Vec::new();
        for d in self.defs.values() {
            if let Some(p) = &d.parent {
                if !self.defs.contains_key(p) {
                    v.push(prob(
                        file,
                        0,
                        format!("role {} has unknown parent {p}", d.id),
                    ));
                }
            }
        }
        v
    }
}

fn is_role_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Why a rule may legitimately go unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Qualifier {
    Optional,
    Legacy,
    FailoverOnly,
    RestoreOnly,
    ModeDependent,
    Configurable,
    DynamicRange,
    UpgradeOnly,
}

impl Qualifier {
    pub const ALL: [Qualifier; 8] = [
        Qualifier::Optional,
        Qualifier::Legacy,
        Qualifier::FailoverOnly,
        Qualifier::RestoreOnly,
        Qualifier::ModeDependent,
        Qualifier::Configurable,
        Qualifier::DynamicRange,
        Qualifier::UpgradeOnly,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Qualifier::Optional => "optional",
            Qualifier::Legacy => "legacy",
            Qualifier::FailoverOnly => "failover-only",
            Qualifier::RestoreOnly => "restore-only",
            Qualifier::ModeDependent => "mode-dependent",
            Qualifier::Configurable => "configurable",
            Qualifier::DynamicRange => "dynamic-range",
            Qualifier::UpgradeOnly => "upgrade-only",
        }
    }

    pub fn parse(s: &str) -> Option<Qualifier> {
        Qualifier::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// An unused rule with this qualifier is expected, not a candidate to close.
    pub fn excuses_unused(&self) -> bool {
        matches!(
            self,
            Qualifier::Optional
                | Qualifier::Legacy
                | Qualifier::FailoverOnly
                | Qualifier::RestoreOnly
                | Qualifier::ModeDependent
                | Qualifier::UpgradeOnly
        )
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    pub fn width(&self) -> u32 {
        self.hi as u32 - self.lo as u32 + 1
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// Parses `443`, `2500-3300` or `135;137-139;445`. Errors say what is wrong with which piece.
pub fn parse_ports(s: &str) -> Result<Vec<PortRange>, String> {
    let mut out = Vec::new();
    for piece in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let parts: Vec<&str> = piece.split('-').map(str::trim).collect();
        let num = |t: &str| -> Result<u16, String> {
            let n: u64 = t
                .parse()
                .map_err(|_| format!("{t:?} in {piece:?} is not a port number"))?;
            if n > 65535 {
                return Err(format!("port {n} in {piece:?} is above 65535"));
            }
            Ok(n as u16)
        };
        let r = match parts.as_slice() {
            [one] => {
                let p = num(one)?;
                PortRange { lo: p, hi: p }
            }
            [a, b] => {
                let (lo, hi) = (num(a)?, num(b)?);
                if lo > hi {
                    return Err(format!("range {piece:?} runs backwards"));
                }
                PortRange { lo, hi }
            }
            _ => {
                return Err(format!(
                    "{piece:?} has more than one '-': glued ranges must be separated with ';'"
                ))
            }
        };
        out.push(r);
    }
    Ok(out)
}

/// One opening a vendor document asks for: from-role connects to to-role on these ports.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub catalog: String,
    pub product: String,
    pub section: String,
    pub from_role: String,
    pub to_role: String,
    /// IP protocol numbers.
    pub protocols: Vec<u8>,
    pub ports: Vec<PortRange>,
    pub qualifiers: Vec<Qualifier>,
    pub host_pattern: Option<String>,
    pub note: String,
    pub decision: String,
    pub source_line: u64,
    /// Set on rules that came from a reference row: the id of that row.
    pub via: Option<String>,
}

impl Rule {
    pub fn matches(&self, proto_num: u8, port: u16) -> bool {
        self.protocols.contains(&proto_num)
            && (self.ports.is_empty() && !proto::has_ports(proto_num)
                || self.ports.iter().any(|r| r.contains(port)))
    }

    pub fn has(&self, q: Qualifier) -> bool {
        self.qualifiers.contains(&q)
    }

    pub fn protocols_str(&self) -> String {
        self.protocols
            .iter()
            .map(|p| proto::name(*p))
            .collect::<Vec<_>>()
            .join(";")
    }

    pub fn ports_str(&self) -> String {
        self.ports
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(";")
    }

    pub fn qualifiers_str(&self) -> String {
        self.qualifiers
            .iter()
            .map(|q| q.as_str())
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Whether a DNS name matches this rule's pattern (`*.example.com` or an exact name).
    pub fn name_matches(&self, name: &str) -> bool {
        let Some(pat) = &self.host_pattern else {
            return false;
        };
        name_matches(pat, name)
    }
}

pub fn name_matches(pat: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let pat = pat.trim().to_ascii_lowercase();
    if pat == "*" {
        return true;
    }
    match pat.strip_prefix("*.") {
        Some(suffix) => name == suffix || name.ends_with(&format!(".{suffix}")),
        None => name == pat,
    }
}

/// A reference row before resolution.
#[derive(Debug, Clone)]
struct RefRow {
    rule: Rule,
    target: String,
    line: u64,
    file: String,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub id: String,
    pub product: String,
    pub version: String,
    pub document: String,
    pub seed: String,
}

/// All loaded rules, references resolved.
#[derive(Debug, Clone, Default)]
pub struct Catalogs {
    pub catalogs: Vec<Catalog>,
    pub rules: Vec<Rule>,
    pub roles: Roles,
}

const COLUMNS: [&str; 12] = [
    "id",
    "section",
    "from_role",
    "to_role",
    "protocol",
    "ports",
    "qualifiers",
    "host_pattern",
    "ref",
    "note",
    "decision",
    "source_line",
];

fn prob(file: &str, line: u64, m: impl Into<String>) -> Problem {
    Problem {
        file: file.to_string(),
        line,
        message: m.into(),
    }
}

/// Reads CSV records with their 1-based line numbers, skipping comments (`#`) and blank lines.
///
/// The csv crate's own line numbers go wrong after skipped comment lines, and users need exact
/// lines in error messages, so comments and blank lines are replaced by an empty quoted cell
/// (which keeps every line a record) and dropped here. A header row, if any, is returned too:
/// callers recognise it by its first cell.
pub fn csv_lines(
    file: &str,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(u64, csv::StringRecord)> {
    let mut masked = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            masked.push_str("\"\"\n");
        } else {
            masked.push_str(line);
            masked.push('\n');
        }
    }
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(masked.as_bytes());
    let mut out = Vec::new();
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map(|p| p.line()).unwrap_or(0);
                if r.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                out.push((line, r));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                problems.push(prob(file, line, format!("not valid CSV: {e}")));
            }
        }
    }
    out
}

/// [`csv_lines`] without the header row (the first record whose first cell is `first_column`).
fn csv_records(
    file: &str,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(u64, csv::StringRecord)> {
    let mut v = csv_lines(file, text, problems);
    if !v.is_empty() {
        v.remove(0);
    }
    v
}

fn parse_protocols(s: &str) -> Result<Vec<u8>, String> {
    let mut v = Vec::new();
    for p in s
        .split(';')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
    {
        v.push(match p.as_str() {
            "tcp" => proto::TCP,
            "udp" => proto::UDP,
            "icmp" => proto::ICMP,
            "icmpv6" => proto::ICMPV6,
            "sctp" => proto::SCTP,
            "gre" => proto::GRE,
            other => {
                return Err(format!(
                    "unknown protocol {other:?} (tcp, udp, icmp, icmpv6, sctp, gre)"
                ))
            }
        });
    }
    Ok(v)
}

impl Catalogs {
    /// The built-in catalogs (all products, or those whose catalog id is in `only`).
    pub fn builtin(only: &[String]) -> Result<Catalogs, Vec<Problem>> {
        let mut c = Catalogs {
            roles: Roles::builtin(),
            ..Default::default()
        };
        let mut problems = Vec::new();
        let mut refs = Vec::new();
        for (name, text) in BUILTIN_CATALOGS {
            c.parse(name, text, &mut problems, &mut refs, only);
        }
        c.resolve(refs, &mut problems);
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems)
        }
    }

    /// Adds a user catalog; rules with an id already loaded replace the old rule.
    pub fn add_file(&mut self, name: &str, text: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut refs = Vec::new();
        self.parse(name, text, &mut problems, &mut refs, &[]);
        self.resolve(refs, &mut problems);
        problems
    }

    /// Every problem in one catalog file, checked against the built-in roles and catalogs.
    pub fn lint(name: &str, text: &str) -> Vec<Problem> {
        let mut base = Catalogs::builtin(&[]).unwrap_or_default();
        // Lint the file on its own ids: keep the built-in rules only as reference targets.
        let builtin_ids: BTreeSet<String> = base.rules.iter().map(|r| r.id.clone()).collect();
        let before = base.rules.len();
        let mut problems = base.add_file(name, text);
        let mut seen = BTreeSet::new();
        for r in &base.rules[before..] {
            if r.via.is_none() && !seen.insert(r.id.clone()) {
                problems.push(prob(
                    name,
                    r.source_line,
                    format!("duplicate rule id {}", r.id),
                ));
            }
        }
        let _ = builtin_ids;
        problems.sort();
        problems.dedup();
        problems
    }

    fn parse(
        &mut self,
        file: &str,
        text: &str,
        problems: &mut Vec<Problem>,
        refs: &mut Vec<RefRow>,
        only: &[String],
    ) {
        let mut cat = Catalog::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix('#') else {
                continue;
            };
            if let Some((k, v)) = rest.split_once(':') {
                let v = v.trim().to_string();
                match k.trim() {
                    "catalog" => cat.id = v,
                    "product" => cat.product = v,
                    "version" => cat.version = v,
                    "document" => cat.document = v,
                    "seed" => cat.seed = v,
                    _ => {}
                }
            }
        }
        if cat.id.is_empty() {
            problems.push(prob(file, 1, "missing '# catalog: ID' line"));
            cat.id = file.trim_end_matches(".csv").to_string();
        }
        if !only.is_empty() && !only.contains(&cat.id) {
            return;
        }
        // Check the header names the columns we expect, in order.
        if let Some((i, header)) = text
            .lines()
            .enumerate()
            .find(|(_, l)| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        {
            let cols: Vec<&str> = header.split(',').map(str::trim).collect();
            if cols != COLUMNS {
                problems.push(prob(
                    file,
                    i as u64 + 1,
                    format!("header must be: {}", COLUMNS.join(",")),
                ));
                return;
            }
        }
        let mut ids_here: BTreeMap<String, u64> = BTreeMap::new();
        for (line, rec) in csv_records(file, text, problems) {
            let get = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
            if rec.len() != COLUMNS.len() {
                problems.push(prob(
                    file,
                    line,
                    format!("expected {} columns, found {}", COLUMNS.len(), rec.len()),
                ));
                continue;
            }
            let id = get(0);
            if id.is_empty() {
                problems.push(prob(file, line, "rule with an empty id"));
                continue;
            }
            if let Some(first) = ids_here.insert(id.clone(), line) {
                problems.push(prob(
                    file,
                    line,
                    format!("duplicate rule id {id} (first on line {first})"),
                ));
                continue;
            }
            let mut bad = |m: String| problems.push(prob(file, line, format!("{id}: {m}")));
            let from_role = get(2);
            let to_role = get(3);
            for r in [&from_role, &to_role] {
                if !self.roles.contains(r) {
                    bad(format!("unknown role {r:?} (see docs/roles.md)"));
                }
            }
            let protocols = match parse_protocols(&get(4)) {
                Ok(p) => p,
                Err(e) => {
                    bad(e);
                    continue;
                }
            };
            let ports = match parse_ports(&get(5)) {
                Ok(p) => p,
                Err(e) => {
                    bad(e);
                    continue;
                }
            };
            let mut qualifiers = Vec::new();
            for q in get(6).split(';').map(str::trim).filter(|q| !q.is_empty()) {
                match Qualifier::parse(q) {
                    Some(q) => qualifiers.push(q),
                    None => bad(format!("unknown qualifier {q:?}")),
                }
            }
            let target = get(8);
            if target.is_empty() {
                if protocols.is_empty() {
                    bad("no protocol".into());
                }
                if ports.is_empty() && protocols.iter().any(|p| proto::has_ports(*p)) {
                    bad("tcp/udp rule without ports".into());
                }
            } else if !protocols.is_empty() || !ports.is_empty() {
                bad("a reference row must leave protocol and ports empty".into());
            }
            let host_pattern = Some(get(7)).filter(|h| !h.is_empty());
            if get(9).is_empty() {
                bad("empty note".into());
            }
            let source_line = get(11).parse().unwrap_or_else(|_| {
                bad(format!("source_line {:?} is not a line number", get(11)));
                0
            });
            let rule = Rule {
                id: id.clone(),
                catalog: cat.id.clone(),
                product: cat.product.clone(),
                section: get(1),
                from_role,
                to_role,
                protocols,
                ports,
                qualifiers,
                host_pattern,
                note: get(9),
                decision: get(10),
                source_line,
                via: None,
            };
            if target.is_empty() {
                self.rules.retain(|r| r.id != rule.id);
                self.rules.push(rule);
            } else {
                refs.push(RefRow {
                    rule,
                    target,
                    line,
                    file: file.to_string(),
                });
            }
        }
        self.catalogs.retain(|c| c.id != cat.id);
        self.catalogs.push(cat);
    }

    /// Expands reference rows into copies of the referenced sections' rules (recursively).
    fn resolve(&mut self, refs: Vec<RefRow>, problems: &mut Vec<Problem>) {
        for r in &refs {
            let mut expanded = Vec::new();
            let mut stack = vec![(r.rule.catalog.clone(), r.target.clone())];
            let mut visited = BTreeSet::new();
            while let Some((cat, target)) = stack.pop() {
                let (cat, section) = match target.split_once(':') {
                    Some((c, s)) if self.catalogs.iter().any(|k| k.id == c) => {
                        (c.to_string(), s.to_string())
                    }
                    _ => (cat, target),
                };
                if !visited.insert((cat.clone(), section.clone())) {
                    continue;
                }
                let direct: Vec<&Rule> = self
                    .rules
                    .iter()
                    .filter(|x| x.catalog == cat && x.section == section && x.via.is_none())
                    .collect();
                let nested: Vec<&RefRow> = refs
                    .iter()
                    .filter(|x| x.rule.catalog == cat && x.rule.section == section)
                    .collect();
                if direct.is_empty() && nested.is_empty() {
                    problems.push(prob(
                        &r.file,
                        r.line,
                        format!(
                            "{}: reference to section {:?} of catalog {cat}, which has no rules",
                            r.rule.id, section
                        ),
                    ));
                    continue;
                }
                expanded.extend(direct.into_iter().cloned());
                for n in nested {
                    stack.push((cat.clone(), n.target.clone()));
                }
            }
            let mut seen_ports = BTreeSet::new();
            for t in expanded {
                // One rule per distinct opening: sections often list a port once per peer role.
                if !seen_ports.insert((t.protocols.clone(), t.ports.clone())) {
                    continue;
                }
                let mut q = r.rule.qualifiers.clone();
                for x in &t.qualifiers {
                    if !q.contains(x) {
                        q.push(*x);
                    }
                }
                self.rules.push(Rule {
                    id: format!("{}/{}", r.rule.id, t.id),
                    protocols: t.protocols.clone(),
                    ports: t.ports.clone(),
                    qualifiers: q,
                    via: Some(r.rule.id.clone()),
                    ..r.rule.clone()
                });
            }
        }
    }

    /// Rules that cover (proto, port) in any direction between any roles.
    pub fn rules_for_port(&self, proto_num: u8, port: u16) -> impl Iterator<Item = &Rule> {
        self.rules
            .iter()
            .filter(move |r| r.matches(proto_num, port))
    }
}

/// docs/roles.md: every role, its family and the document wordings that map to it.
pub fn roles_markdown(roles: &Roles) -> String {
    use std::fmt::Write;
    let mut t = String::from(
        "# Roles\n\n\
Generated by `flowaudit catalog roles --markdown` from `catalogs/roles*.csv`; a test keeps it in step.\n\n\
An inventory gives each host one or more role ids. A host holding a role also holds the role's\n\
family (its parent, and the parent's parent...): a `windows-gateway-server` is a `gateway-server` and\n\
a `server`, so rules written for any of them apply to it. Rules name the most specific role the\n\
vendor document names; give hosts the most specific role you know.\n\n\
| role | family | meaning | document wordings |\n|---|---|---|---|\n",
    );
    for d in roles.defs.values() {
        let family = roles.with_ancestors(&d.id)[1..].join(" > ");
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} |",
            d.id,
            family,
            d.description.replace('|', "\\|"),
            d.aliases.join("; ").replace('|', "\\|")
        );
    }
    t
}
