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
    (
        "veeam-vbr.csv",
        include_str!("../../catalogs/veeam-vbr.csv"),
    ),
    ("veeam-em.csv", include_str!("../../catalogs/veeam-em.csv")),
    (
        "veeam-agent.csv",
        include_str!("../../catalogs/veeam-agent.csv"),
    ),
    (
        "veeam-proxmox.csv",
        include_str!("../../catalogs/veeam-proxmox.csv"),
    ),
    (
        "backup-exec.csv",
        include_str!("../../catalogs/backup-exec.csv"),
    ),
];

pub const BUILTIN_ROLES: &[Source] = &[
    ("roles.csv", include_str!("../../catalogs/roles.csv")),
    (
        "roles-veeam-vbr.csv",
        include_str!("../../catalogs/roles-veeam-vbr.csv"),
    ),
    (
        "roles-veeam-em.csv",
        include_str!("../../catalogs/roles-veeam-em.csv"),
    ),
    (
        "roles-veeam-agent.csv",
        include_str!("../../catalogs/roles-veeam-agent.csv"),
    ),
    (
        "roles-veeam-proxmox.csv",
        include_str!("../../catalogs/roles-veeam-proxmox.csv"),
    ),
    (
        "roles-backup-exec.csv",
        include_str!("../../catalogs/roles-backup-exec.csv"),
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
    /// The families this role belongs to. Several when a host holding the role is, by the
    /// documents, also something else: a Windows backup repository is a backup repository and a
    /// Microsoft Windows server (docs/roles.md says which and why).
    pub parents: Vec<String>,
    pub description: String,
    pub aliases: Vec<String>,
    /// Old ids of this role: an inventory that still uses one gets this role and a deprecation
    /// note.
    pub replaces: Vec<String>,
    /// Where the documents left the role's family open: what we decided and why.
    pub decision: String,
    /// Where the role is defined (for lint messages).
    pub file: String,
    pub line: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub defs: BTreeMap<String, RoleDef>,
    /// Old id -> current id.
    pub old_ids: BTreeMap<String, String>,
}

/// Roles files: `id,parent,description,aliases[,replaces[,decision]]`.
pub const ROLE_COLUMNS: [&str; 6] = [
    "id",
    "parent",
    "description",
    "aliases",
    "replaces",
    "decision",
];

fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
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
            let def = RoleDef {
                id: id.clone(),
                parents: split_list(&get(1)),
                description: get(2),
                aliases: split_list(&get(3)),
                replaces: split_list(&get(4)),
                decision: get(5),
                file: file.to_string(),
                line,
            };
            if let Some(old) = self.defs.get(&id) {
                if old.parents != def.parents {
                    problems.push(prob(
                        file,
                        line,
                        format!(
                            "role {id} is defined again with another parent (first at {}:{})",
                            old.file, old.line
                        ),
                    ));
                }
                continue;
            }
            if let Some(cur) = self.old_ids.get(&id) {
                problems.push(prob(
                    file,
                    line,
                    format!("role {id} is an old id of {cur}; define {cur} instead"),
                ));
                continue;
            }
            for old in &def.replaces {
                if let Some(other) = self.old_ids.get(old) {
                    problems.push(prob(
                        file,
                        line,
                        format!("{id} replaces {old}, which {other} already replaces"),
                    ));
                } else if self.defs.contains_key(old) {
                    problems.push(prob(
                        file,
                        line,
                        format!("{id} replaces {old}, which is still defined as a role"),
                    ));
                } else {
                    self.old_ids.insert(old.clone(), id.clone());
                }
            }
            self.defs.insert(id, def);
        }
    }

    /// A current role id.
    pub fn contains(&self, id: &str) -> bool {
        self.defs.contains_key(id)
    }

    /// The current id for `id`: itself, or the role that replaced it (`deprecated` is then true).
    pub fn canonical<'a>(&'a self, id: &'a str) -> Option<(&'a str, bool)> {
        if self.defs.contains_key(id) {
            return Some((id, false));
        }
        self.old_ids.get(id).map(|c| (c.as_str(), true))
    }

    /// The role and every family it belongs to (its parents, transitively), nearest first.
    pub fn with_ancestors(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while i < out.len() {
            if let Some(d) = self.defs.get(&out[i]) {
                for p in &d.parents {
                    if !out.contains(p) {
                        out.push(p.clone()); // a cycle stops here: lint reports it
                    }
                }
            }
            i += 1;
        }
        out
    }

    /// Unknown parents, cycles, and the same role defined twice under two ids: a document
    /// wording or a description shared by two ids.
    pub fn lint(&self) -> Vec<Problem> {
        let mut v = Vec::new();
        for d in self.defs.values() {
            for p in &d.parents {
                if !self.defs.contains_key(p) {
                    v.push(prob(
                        &d.file,
                        d.line,
                        format!("role {} has unknown parent {p}", d.id),
                    ));
                }
            }
            if self.in_cycle(&d.id) {
                v.push(prob(
                    &d.file,
                    d.line,
                    format!("role {} is its own ancestor", d.id),
                ));
            }
        }
        v.extend(self.duplicates(|_| true));
        v.sort();
        v
    }

    fn in_cycle(&self, id: &str) -> bool {
        let mut stack: Vec<&str> = self
            .defs
            .get(id)
            .map(|d| d.parents.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            if x == id {
                return true;
            }
            if seen.insert(x) {
                if let Some(d) = self.defs.get(x) {
                    stack.extend(d.parents.iter().map(String::as_str));
                }
            }
        }
        false
    }

    /// Roles that say the same thing as an earlier role under another id: a shared document
    /// wording (alias) or the same description. Reported on the later definition (by file order
    /// of loading, then line), for the roles `check` selects.
    pub fn duplicates(&self, check: impl Fn(&RoleDef) -> bool) -> Vec<Problem> {
        let mut defs: Vec<&RoleDef> = self.defs.values().collect();
        defs.sort_by_key(|d| (self.file_rank(&d.file), d.line));
        let mut wording: BTreeMap<String, &RoleDef> = BTreeMap::new();
        let mut described: BTreeMap<String, &RoleDef> = BTreeMap::new();
        let mut named: BTreeMap<String, &RoleDef> = BTreeMap::new();
        let mut v = Vec::new();
        for d in defs {
            let mut said = Vec::new();
            for a in &d.aliases {
                match wording.get(&normal(a)) {
                    Some(first) if first.id != d.id => said.push(format!(
                        "wording {a:?} is already an alias of {} ({}:{})",
                        first.id, first.file, first.line
                    )),
                    Some(_) => {}
                    None => {
                        wording.insert(normal(a), d);
                    }
                }
            }
            match named.get(&normal(&d.id)) {
                Some(first) => said.push(format!(
                    "its id has the same words as {} ({}:{})",
                    first.id, first.file, first.line
                )),
                None => {
                    named.insert(normal(&d.id), d);
                }
            }
            if !d.description.is_empty() {
                match described.get(&normal(&d.description)) {
                    Some(first) => said.push(format!(
                        "description is the same as {}'s ({}:{})",
                        first.id, first.file, first.line
                    )),
                    None => {
                        described.insert(normal(&d.description), d);
                    }
                }
            }
            if check(d) {
                for s in said {
                    v.push(prob(
                        &d.file,
                        d.line,
                        format!("role {} may duplicate another role: {s}; merge them (keep one id, list the other in `replaces`)", d.id),
                    ));
                }
            }
        }
        v
    }

    /// Built-in files first, in their load order; other files after them.
    fn file_rank(&self, file: &str) -> usize {
        BUILTIN_ROLES
            .iter()
            .position(|(n, _)| *n == file)
            .unwrap_or(BUILTIN_ROLES.len())
    }
}

/// How two wordings (or ids) are compared: their words, lower case, sorted, without filler
/// words and the vendor name, so that "Gateway server (Microsoft Windows)" and "Windows gateway
/// server", or `sql-guest-vm` and `mssql-guest-vm`, come out the same.
fn normal(s: &str) -> String {
    const FILLER: [&str; 10] = [
        "a",
        "an",
        "the",
        "of",
        "with",
        "microsoft",
        "ms",
        "veeam",
        "machine",
        "virtual",
    ];
    let lower = s.to_lowercase();
    let mut words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !FILLER.contains(w))
        .map(|w| if w == "mssql" { "sql" } else { w })
        .collect();
    words.sort_unstable();
    words.dedup();
    words.join(" ")
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
    /// The service listens on a port assigned at run time that the document does not number
    /// (NFSv3 mountd, statd, lockd): the rule's ports are only where it may be. The audit should
    /// name the port seen so that it can be pinned (see [`pin_advice`]).
    Dynamic,
    UpgradeOnly,
}

impl Qualifier {
    pub const ALL: [Qualifier; 9] = [
        Qualifier::Optional,
        Qualifier::Legacy,
        Qualifier::FailoverOnly,
        Qualifier::RestoreOnly,
        Qualifier::ModeDependent,
        Qualifier::Configurable,
        Qualifier::DynamicRange,
        Qualifier::Dynamic,
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
            Qualifier::Dynamic => "dynamic",
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

/// What to do about a `dynamic` rule that saw traffic: the port is assigned at run time, so the
/// rule's range (often 1-65535) would open everything; name the port(s) seen, to pin and open
/// alone. None for other rules or when nothing was seen.
pub fn pin_advice(rule: &Rule, ports_seen: &BTreeSet<u16>) -> Option<String> {
    if !rule.has(Qualifier::Dynamic) || ports_seen.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports_seen.iter().map(|p| p.to_string()).collect();
    let (these, it) = if ports.len() == 1 {
        ("port", "it")
    } else {
        ("ports", "one of them")
    };
    Some(format!(
        "{}: the port is assigned at run time; seen on {these} {}: pin {it} in the service's settings and open only that port instead of {}",
        rule.note.trim_end_matches('.'),
        ports.join(", "),
        rule.ports_str()
    ))
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
    let masked = crate::csvtext::blank_comments(text);
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

/// A catalog file's `# catalog:`, `# product:`, `# version:`, `# document:` and `# seed:`
/// lines. Without a catalog id the file name stands in (and that is a problem).
fn catalog_meta(file: &str, text: &str, problems: &mut Vec<Problem>) -> Catalog {
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
    cat
}

/// Whether the first line that is neither a comment nor blank names the columns we expect, in
/// order (a problem says which when it does not).
fn header_ok(file: &str, text: &str, problems: &mut Vec<Problem>) -> bool {
    let Some((i, header)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim_start().starts_with('#') && !l.trim().is_empty())
    else {
        return true;
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if cols != COLUMNS {
        problems.push(prob(
            file,
            i as u64 + 1,
            format!("header must be: {}", COLUMNS.join(",")),
        ));
        return false;
    }
    true
}

/// The protocols catalog rows (and waivers) may name: those the vendors' documents use.
pub const CATALOG_PROTOCOLS: [u8; 6] = [
    proto::TCP,
    proto::UDP,
    proto::ICMP,
    proto::ICMPV6,
    proto::SCTP,
    proto::GRE,
];

fn parse_protocols(s: &str) -> Result<Vec<u8>, String> {
    let mut v = Vec::new();
    for p in s
        .split(';')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
    {
        v.push(match p.parse::<proto::IpProto>() {
            // By name only, as the documents write them.
            Ok(ip) if CATALOG_PROTOCOLS.contains(&ip.0) && ip.to_string() == p => ip.0,
            _ => {
                return Err(format!(
                    "unknown protocol {p:?} (tcp, udp, icmp, icmpv6, sctp, gre)"
                ))
            }
        });
    }
    Ok(v)
}

/// The id of a rule row with the right number of columns, new in this file; None (with the
/// problem added) otherwise.
fn row_id(
    file: &str,
    line: u64,
    rec: &csv::StringRecord,
    ids_here: &mut BTreeMap<String, u64>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    if rec.len() != COLUMNS.len() {
        problems.push(prob(
            file,
            line,
            format!("expected {} columns, found {}", COLUMNS.len(), rec.len()),
        ));
        return None;
    }
    let id = rec.get(0).unwrap_or("").trim().to_string();
    if id.is_empty() {
        problems.push(prob(file, line, "rule with an empty id"));
        return None;
    }
    if let Some(first) = ids_here.insert(id.clone(), line) {
        problems.push(prob(
            file,
            line,
            format!("duplicate rule id {id} (first on line {first})"),
        ));
        return None;
    }
    Some(id)
}

/// The `;`-separated qualifiers cell; an unknown qualifier is a problem (`bad`).
fn qualifiers(text: &str, bad: &mut impl FnMut(String)) -> Vec<Qualifier> {
    let mut qualifiers = Vec::new();
    for q in text.split(';').map(str::trim).filter(|q| !q.is_empty()) {
        match Qualifier::parse(q) {
            Some(q) => qualifiers.push(q),
            None => bad(format!("unknown qualifier {q:?}")),
        }
    }
    qualifiers
}

/// A plain rule names a protocol (and ports, for one that has them); a reference row (with a
/// `target`) names neither. What is wrong goes to `bad`.
fn check_rule_shape(
    target: &str,
    protocols: &[u8],
    ports: &[PortRange],
    bad: &mut impl FnMut(String),
) {
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

    /// Every problem in one catalog or roles file, checked against the built-in roles and
    /// catalogs. A roles file is recognised by its header (`id,parent,...`).
    pub fn lint(name: &str, text: &str) -> Vec<Problem> {
        if is_roles_file(text) {
            return lint_roles_file(name, text);
        }
        let mut base = Catalogs::builtin(&[]).unwrap_or_default();
        // Lint the file on its own ids: keep the built-in rules only as reference targets.
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
        problems.extend(old_role_ids(name, text, &base.roles));
        problems.sort();
        problems.dedup();
        problems
    }

    /// Every problem in the built-in catalogs and roles files (what `catalog lint` checks with
    /// no file): the same checks a user file gets.
    pub fn lint_builtin() -> Vec<Problem> {
        let mut v = Roles::builtin().lint();
        if let Err(p) = Catalogs::builtin(&[]) {
            v.extend(p);
        }
        let roles = Roles::builtin();
        for (name, text) in BUILTIN_CATALOGS {
            v.extend(old_role_ids(name, text, &roles));
        }
        v.sort();
        v.dedup();
        v
    }

    /// One catalog file: its `# key: value` lines, its header, then its rows; rules replace
    /// rules of the same id, reference rows go to `refs` to be expanded when all files are read.
    fn parse(
        &mut self,
        file: &str,
        text: &str,
        problems: &mut Vec<Problem>,
        refs: &mut Vec<RefRow>,
        only: &[String],
    ) {
        let cat = catalog_meta(file, text, problems);
        if !only.is_empty() && !only.contains(&cat.id) {
            return;
        }
        if !header_ok(file, text, problems) {
            return;
        }
        let mut ids_here: BTreeMap<String, u64> = BTreeMap::new();
        for (line, rec) in csv_records(file, text, problems) {
            let Some((rule, target)) =
                self.rule_row(file, line, &rec, &cat, &mut ids_here, problems)
            else {
                continue;
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

    /// One rule row: the rule and its reference target (empty for a plain rule), or None when
    /// the row cannot be used (its problems are added).
    fn rule_row(
        &self,
        file: &str,
        line: u64,
        rec: &csv::StringRecord,
        cat: &Catalog,
        ids_here: &mut BTreeMap<String, u64>,
        problems: &mut Vec<Problem>,
    ) -> Option<(Rule, String)> {
        let get = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
        let id = row_id(file, line, rec, ids_here, problems)?;
        let mut bad = |m: String| problems.push(prob(file, line, format!("{id}: {m}")));
        let from_role = self.role_id(get(2), &mut bad);
        let to_role = self.role_id(get(3), &mut bad);
        let protocols = parse_protocols(&get(4)).map_err(&mut bad).ok()?;
        let ports = parse_ports(&get(5)).map_err(&mut bad).ok()?;
        let qualifiers = qualifiers(&get(6), &mut bad);
        let target = get(8);
        check_rule_shape(&target, &protocols, &ports, &mut bad);
        let host_pattern = Some(get(7)).filter(|h| !h.is_empty());
        if get(9).is_empty() {
            bad("empty note".into());
        }
        let source_line = get(11).parse().unwrap_or_else(|_| {
            bad(format!("source_line {:?} is not a line number", get(11)));
            0
        });
        let rule = Rule {
            id,
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
        Some((rule, target))
    }

    /// A role cell as its current id: an old role id still works (lint says to write the new
    /// one); an unknown one is a problem (`bad`) and stays as written.
    fn role_id(&self, r: String, bad: &mut impl FnMut(String)) -> String {
        match self.roles.canonical(&r) {
            Some((id, _)) => id.to_string(),
            None => {
                bad(format!("unknown role {r:?} (see docs/roles.md)"));
                r
            }
        }
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

/// `catalog show ROLE`: the role, its families, wordings, old ids and decision.
pub fn role_text(roles: &Roles, id: &str) -> String {
    let Some((cur, old)) = roles.canonical(id) else {
        return String::new();
    };
    let d = &roles.defs[cur];
    let mut t = String::new();
    if old {
        t.push_str(&format!("{id} is an old id of {cur}\n"));
    }
    t.push_str(&format!(
        "role:        {}\nfamilies:    {}\nmeaning:     {}\nwordings:    {}\nold ids:     {}\ndecision:    {}\ndefined in:  {}:{}\n",
        d.id,
        roles.with_ancestors(cur)[1..].join(", "),
        d.description,
        d.aliases.join("; "),
        d.replaces.join(", "),
        d.decision,
        d.file,
        d.line
    ));
    t
}

/// Whether a file is a roles file (its header starts with `id,parent`).
pub fn is_roles_file(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|h| {
            let cols: Vec<&str> = h.split(',').map(str::trim).collect();
            cols.len() >= 2 && cols[0] == "id" && cols[1] == "parent"
        })
}

/// A user roles file checked on top of the built-in roles: format, parents, and roles that
/// duplicate a built-in or an earlier role of the file under another id.
fn lint_roles_file(name: &str, text: &str) -> Vec<Problem> {
    let mut roles = Roles::builtin();
    let mut problems = Vec::new();
    if let Some((line, h)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        let cols: Vec<&str> = h.split(',').map(str::trim).collect();
        if cols.len() < 4 || cols[..] != ROLE_COLUMNS[..cols.len().min(6)] {
            problems.push(prob(
                name,
                line as u64 + 1,
                format!("header must be: {}", ROLE_COLUMNS.join(",")),
            ));
            return problems;
        }
    }
    roles.parse(name, text, &mut problems);
    problems.extend(roles.lint().into_iter().filter(|p| p.file == name));
    problems.extend(roles.duplicates(|d| d.file == name));
    problems.sort();
    problems.dedup();
    problems
}

/// Rules of a catalog file that name a role by an old id.
fn old_role_ids(name: &str, text: &str, roles: &Roles) -> Vec<Problem> {
    let mut ignored = Vec::new();
    let mut v = Vec::new();
    for (line, rec) in csv_records(name, text, &mut ignored) {
        for col in [2, 3] {
            let r = rec.get(col).unwrap_or("").trim();
            if let Some((id, true)) = roles.canonical(r) {
                v.push(prob(
                    name,
                    line,
                    format!(
                        "{}: role {r:?} is an old id of {id:?}; write {id}",
                        rec.get(0).unwrap_or("").trim()
                    ),
                ));
            }
        }
    }
    v
}

/// docs/roles.md: the family tree, then every role with its families, the document wordings
/// that map to it, its old ids and the decisions behind its family.
pub fn roles_markdown(roles: &Roles) -> String {
    use std::fmt::Write;
    let mut t = String::from(
        "# Roles\n\n\
Generated by `flowaudit catalog roles --markdown` from `catalogs/roles*.csv`; a test keeps it in step.\n\n\
An inventory gives each host one or more role ids. A host holding a role also holds the role's\n\
families (its parents, and their parents...): a `windows-gateway-server` is a `gateway-server`, a\n\
`windows-server` and a `server`, so rules written for any of them apply to it. Rules name the most\n\
specific role the vendor document names; give hosts the most specific role you know.\n\n\
A role can have several parents where the documents say a component is also a kind of server\n\
(\"a WAN accelerator is a Microsoft Windows server\"): the decision column says why. An old id\n\
still works in an inventory (with a deprecation note); `flowaudit catalog lint` asks catalogs\n\
to use the current id.\n\n## Family tree\n\n\
A role with several parents appears under each of them.\n\n```\n",
    );
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in roles.defs.values() {
        for p in &d.parents {
            children.entry(p.as_str()).or_default().push(d.id.as_str());
        }
    }
    for d in roles.defs.values().filter(|d| d.parents.is_empty()) {
        tree_lines(&mut t, &children, &d.id, 0);
    }
    t.push_str("```\n\n## Roles\n\n| role | families | meaning | document wordings | old ids | decision |\n|---|---|---|---|---|---|\n");
    let cell = crate::csvtext::md_cell;
    for d in roles.defs.values() {
        let family = roles.with_ancestors(&d.id)[1..].join(", ");
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} | {} | {} |",
            d.id,
            family,
            cell(&d.description),
            cell(&d.aliases.join("; ")),
            d.replaces
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", "),
            cell(&d.decision)
        );
    }
    t
}

fn tree_lines(t: &mut String, children: &BTreeMap<&str, Vec<&str>>, id: &str, depth: usize) {
    t.push_str(&"    ".repeat(depth));
    t.push_str(id);
    t.push('\n');
    for c in children.get(id).into_iter().flatten() {
        if depth < 16 {
            tree_lines(t, children, c, depth + 1);
        }
    }
}
